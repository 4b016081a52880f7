"""`cait double`: local D of the first beam species per phase of a double CAIT (docs/comparison.md)."""
from __future__ import annotations

from compare.commands._args import add_replicas


def _run(args) -> int:
    from compare.commands._args import replicas
    from compare.workflows.double_cait import run_double

    engines = tuple(e.strip() for e in args.engines.split(",") if e.strip())
    res = run_double(args.input, out_dir=args.output, engines=engines, replicas=replicas(args),
                     reuse=args.reuse, quiet=args.quiet, species=args.species,
                     convention=args.convention)
    return int(res.get("exit_code", 0))


def register(sub) -> None:
    from compare.workflows.double_cait import DRIVING_FORCES

    p = sub.add_parser("double", help="double CAIT: is D of the first beam species constant or "
                                      "concentration dependent in each phase? -> double.nc/md/png",
                       description="Local D of the first beam species from flux and driving force "
                                   "in each phase of a double CAIT (KMC and/or NPP), and whether it "
                                   "depends on its concentration (docs/comparison.md).")
    p.add_argument("input", help="double-CAIT input file (TOML)")
    p.add_argument("-o", "--output", default=None,
                   help="output folder (default: outputs/<input name>_double)")
    p.add_argument("--engines", default="kmc,npp",
                   help="comma-separated: kmc, npp (default both; experiment-sized inputs: npp)")
    add_replicas(p)
    p.add_argument("--species", default=None,
                   help="species to analyse (default: the species of the first beam phase)")
    p.add_argument("--convention", default=None, choices=tuple(DRIVING_FORCES),
                   help="driving force of the local D (default: the NPP run's flux convention "
                        "for NPP, nernst-planck for KMC)")
    p.add_argument("--reuse", action="store_true", help="reuse kmc.nc / npp.nc in the output folder")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=_run)
