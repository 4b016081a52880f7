"""`cait bench npp|kmc`: speed figures printed to the terminal (tests never assert timings)."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUNDLED_CAIT = ("li3b7o12_k_cait.toml", "li3b7o12_rb_cait.toml", "li3b7o12_cs_cait.toml",
                "li3b7o12_double_cait.toml", "li3b7o12_k_potentiostatic.toml")


def _positive_float(text):
    import argparse

    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


def _bench_npp(args) -> int:
    from compare.checks.bench_npp import bench_npp

    inputs = args.inputs or [ROOT / "inputs" / name for name in BUNDLED_CAIT]
    bench_npp([Path(p) for p in inputs], tol=args.tol, reference=args.reference)
    return 0


def _bench_fit(args) -> int:
    from compare.checks.bench_fit import FIT_INPUT, FIT_PROFILES, bench_fit

    bench_fit(args.input or FIT_INPUT, args.profiles or FIT_PROFILES)
    return 0


def _bench_kmc(args) -> int:
    import numpy as np

    from compare.checks.bench_kmc import PLATEAU_INPUT, bench_kmc, bench_plateau
    from compare.errors import ConfigError

    if args.plateau is not None:
        if not (0.0 < args.window <= 1.0):
            raise ConfigError(f"`--window` must be in (0, 1], got {args.window}")
        if not np.isfinite(args.bond_cap_kT):
            raise ConfigError(f"`--bond-cap-kT` must be finite, got {args.bond_cap_kT}")
        bench_plateau(args.plateau or ROOT / "inputs" / PLATEAU_INPUT,
                      window_fraction=args.window, bond_cap_kT=args.bond_cap_kT)
        return 0
    bench_kmc(sizes=tuple(args.sizes), n_events=args.events, repeats=args.repeats)
    return 0


def register(sub) -> None:
    p = sub.add_parser("bench", help="print speed benchmarks of the engines",
                       description="Speed figures of the engines, printed (tests never assert "
                                   "timings): `bench npp` times the default NPP runs of the bundled "
                                   "inputs, `bench fit` the bundled fit; `bench kmc` measures KMC "
                                   "events per CPU second and bytes per site on L^3 lattices.")
    bsub = p.add_subparsers(dest="bench_target", metavar="TARGET", required=True)
    pn = bsub.add_parser("npp", help="CPU time, mesh and error of the default NPP runs",
                         description="Run each input (default: the bundled K, Rb, Cs, double and "
                                     "potentiostatic CAIT) with its default numerics (adaptive "
                                     "mesh, error estimate) and print the CPU time of the whole "
                                     "run and of one solve on the accepted mesh, cells, rounds, "
                                     "steps, the error estimate and the native plateau.")
    pn.add_argument("inputs", nargs="*", help="input files (default: the bundled CAIT inputs)")
    pn.add_argument("--tol", type=_positive_float, default=None,
                    help="[npp] tol for every input (default: each input's own)")
    pn.add_argument("--reference", action="store_true",
                    help="also solve on a 4x refined mesh and print the true errors (slow)")
    pn.set_defaults(func=_bench_npp)
    pf = bsub.add_parser("fit", help="CPU time of the bundled fit and its recovery of the truth",
                         description="Fit the bundled synthetic K CAIT profiles with "
                                     "inputs/fit_k_cait.toml (or the given files) and print the "
                                     "CPU time of the whole fit, the evaluations and each "
                                     "parameter's distance from the synthetic truth in stderr.")
    pf.add_argument("--input", default=None, help="fit input (default: inputs/fit_k_cait.toml)")
    pf.add_argument("--profiles", default=None,
                    help="profiles (default: inputs/profiles/k_cait_synthetic.csv)")
    pf.set_defaults(func=_bench_fit)
    pk = bsub.add_parser("kmc", help="KMC events per second and memory per site",
                         description="KMC events per CPU second (best and median of --repeats "
                                     "measurements) and bytes per site on L^3 lattices with a 250 meV "
                                     "SED and a galvanostatic drive (docs/kmc.md, Benchmark).")
    pk.add_argument("--sizes", type=int, nargs="+", default=[20, 64, 160],
                    help="edge lengths L of L^3 lattices (default: 20 64 160)")
    pk.add_argument("--events", type=int, default=None,
                    help="events per repetition (default: 1000000)")
    pk.add_argument("--repeats", type=int, default=5,
                    help="repetitions per size, reported as best and median (default: 5)")
    pk.add_argument("--plateau", nargs="?", const="", default=None, metavar="INPUT",
                    help="instead: the accelerations on and off over the same simulated window, "
                         "interleaved: whole depth, moving back, moving back + bond cap (default "
                         "input: inputs/li3b7o12_kmc_plateau.toml)")
    pk.add_argument("--bond-cap-kT", type=float, default=0.0, metavar="X",
                    help="--plateau: bond_cap_kT of the \"back + cap\" build (default: 0)")
    pk.add_argument("--window", type=float, default=0.04,
                    help="--plateau: fraction of the beam schedule simulated (default: 0.04)")
    pk.set_defaults(func=_bench_kmc)
