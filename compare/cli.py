"""The `cait` command line.

Sub-commands live in ``compare/commands/<name>.py``; each module exposes
``register(subparsers)`` which adds its parser and sets ``func(args) -> int`` as the default.
Errors a user can cause (:class:`compare.errors.CaitError` and the engines' own error classes
listed in :data:`USER_ERRORS`) are printed as one line ``cait: error: ...`` with exit code 2.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from compare.errors import CaitError, RunInterrupted

# Sub-command modules, in the order `cait --help` lists them.
COMMANDS = ("npp", "kmc", "sed", "compare", "double", "fit", "dn", "mixing", "bench", "check",
            "demo")


def _user_errors() -> tuple:
    """Exception classes that mean bad input or a reported numerical failure, not a bug."""
    classes = [CaitError]
    for mod, name in (("continuum.errors", "SolverError"), ("continuum.errors", "ProblemError"),
                      ("kmc.errors", "KMCError")):
        try:
            classes.append(getattr(importlib.import_module(mod), name))
        except (ImportError, AttributeError):
            pass
    return tuple(classes)


def build_parser() -> argparse.ArgumentParser:
    from compare.io.datasets import package_version

    parser = argparse.ArgumentParser(
        prog="cait",
        description="Ion transport in glassy solid electrolytes through their site energy "
                    "landscape: kinetic Monte Carlo and Nernst-Planck-Poisson for CAIT.")
    parser.add_argument("--version", action="version", version=f"cait {package_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"compare.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"compare.commands.{name}":
                continue  # not built yet
            raise
        module.register(sub)
    return parser


def main(argv=None) -> int:
    # Matplotlib must never try to open a window from the CLI.
    os.environ.setdefault("MPLBACKEND", "Agg")
    from compare.io import datasets

    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    datasets.COMMAND_LINE[:] = ["cait", *argv]
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except RunInterrupted as exc:
        print(f"cait: interrupted: {exc}", file=sys.stderr)
        return exc.exit_code
    except _user_errors() as exc:
        print(f"cait: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cait: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
