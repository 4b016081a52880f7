"""`cait mixing DATASET [-o DIR] [--quiet]`: do the native and foreign populated SEDs intermix?"""
from __future__ import annotations


def _run(args) -> int:
    from compare.workflows.mixing import run_mixing

    run_mixing(args.dataset, args.output, quiet=args.quiet)
    return 0


def register(sub) -> None:
    p = sub.add_parser("mixing", help="populated SEDs, Fermi levels and intermixing of a KMC run",
                       description="From a KMC dataset (kmc.nc): populated SEDs per depth slab and "
                                   "time, step and fitted Fermi levels, distances to top-down "
                                   "depletion and to the two-species equilibrium, the relaxation "
                                   "time after the drive, and a verdict -> mixing.nc, mixing.md, "
                                   "figures (docs/mixing.md).")
    p.add_argument("dataset", help="KMC dataset written by `cait kmc run` (kmc.nc)")
    p.add_argument("-o", "--output", default=None,
                   help="output folder (default: the dataset's folder)")
    p.add_argument("--quiet", action="store_true", help="print nothing")
    p.set_defaults(func=_run)
