"""`cait compare`: KMC ensemble against NPP on one scenario (see docs/comparison.md)."""
from __future__ import annotations

from compare.commands._args import add_replicas
from compare.errors import ConfigError


def _run(args) -> int:
    from compare.workflows.comparison import NPP_D_SOURCES, run_compare
    from compare.commands._args import replicas, x_list

    xs = x_list(args.x)
    if 1.0 not in xs and args.d_bulk == "equilibrium":
        raise ConfigError("`--d-bulk equilibrium` needs x = 1 in `--x`")
    res = run_compare(args.input, out_dir=args.output, replicas=replicas(args),
                      reuse=args.reuse, quiet=args.quiet, d_bulk=args.d_bulk, xs=xs,
                      sources=tuple(NPP_D_SOURCES), equilibrium=args.equilibrium)
    return int(res.get("exit_code", 0))


def register(sub) -> None:
    p = sub.add_parser("compare", help="KMC vs NPP on the same scenario -> compare.nc, "
                                       "compare.md and figures",
                       description="Run the KMC CAIT ensemble and the equilibrium D table of the "
                                   "input (or reuse them), then NPP on the KMC's domain with D(n) "
                                   "from the SED formula and from the KMC table; compare front, "
                                   "plateau, inventory and profiles (docs/comparison.md).")
    p.add_argument("input", help="scenario input file (TOML)")
    p.add_argument("-o", "--output", default=None,
                   help="output folder (default: outputs/<input name>_compare)")
    add_replicas(p)
    p.add_argument("--reuse", action="store_true",
                   help="reuse kmc.nc / kmc_equilibrium.nc already in the output folder")
    p.add_argument("--d-bulk", default="current", choices=("current", "equilibrium"),
                   help="KMC bulk D for NPP: ohmic native current of the CAIT run (default) or "
                        "equilibrium D_eff at x = 1")
    p.add_argument("--x", default="0,0.2,0.4,0.6,0.8,1",
                   help="compositions of the equilibrium table (default 0,0.2,0.4,0.6,0.8,1)")
    p.add_argument("--equilibrium", default=None, metavar="FILE",
                   help="use this kmc_equilibrium.nc (same material, SED and species; e.g. "
                        "made with longer blocks) instead of the input's own table")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=_run)
