"""`cait demo`: the main job on the bundled Li3B7O12 inputs (what `make demo` runs).

1. the native SED, Fermi level and D(n) of the glass (`cait sed`);
2. NPP depth profiles of the K+, Rb+ and Cs+ CAIT and of the Rb-then-Cs double CAIT
   (`cait npp run`), with the Li plateau of each printed;
3. a K+ CAIT by kinetic Monte Carlo on the KMC-sized scenario, compared with NPP on the same
   scenario (`cait compare`).
"""
from __future__ import annotations

import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NPP_INPUTS = ("li3b7o12_k_cait", "li3b7o12_rb_cait", "li3b7o12_cs_cait", "li3b7o12_double_cait")
KMC_INPUT = "li3b7o12_kmc_k_cait"


def _plateau(ds, native: str) -> float:
    """The native plateau at the last time (compare.workflows.profile_metrics, physics.md §8)."""
    from compare.workflows.profile_metrics import front_and_plateau

    return front_and_plateau(ds, native)[1]


def run_demo(out_dir: Path, kmc: bool = True, quiet: bool = False) -> dict:
    """Run the demo pipeline into `out_dir`; returns wall times per step [s]."""
    from compare.io.config import load_config
    from compare.workflows.run_npp import run_npp
    from compare.workflows.run_sed import run_sed

    def say(msg):
        if not quiet:
            print(msg, flush=True)

    out_dir = Path(out_dir)
    times = {}
    inputs = ROOT / "inputs"
    t0 = time.monotonic()
    cfg = load_config(inputs / f"{NPP_INPUTS[0]}.toml")
    run_sed(cfg, out_dir / "sed")
    times["sed"] = time.monotonic() - t0
    say(f"[demo] SED, E_F(n), D(n)           -> {out_dir / 'sed'}  ({times['sed']:.1f} s)")
    for name in NPP_INPUTS:
        t0 = time.monotonic()
        cfg = load_config(inputs / f"{name}.toml")
        ds, _ = run_npp(cfg, out_dir / name, progress=False)
        times[name] = time.monotonic() - t0
        say(f"[demo] NPP {name:<24s} -> {out_dir / name}  ({times[name]:.1f} s; Li plateau "
            f"{100 * _plateau(ds, cfg.native.name):.1f} %)")
    if kmc:
        from compare.workflows.comparison import run_compare

        t0 = time.monotonic()
        say(f"[demo] KMC vs NPP on {KMC_INPUT} (kinetic Monte Carlo: the run prints its measured "
            f"cost estimate) ...")
        res = run_compare(inputs / f"{KMC_INPUT}.toml", out_dir=out_dir / f"{KMC_INPUT}_compare",
                          quiet=quiet)
        times["kmc compare"] = time.monotonic() - t0
        if res.get("exit_code", 0):
            raise SystemExit(res["exit_code"])
        say(f"[demo] KMC vs NPP                  -> {out_dir / (KMC_INPUT + '_compare')}  "
            f"({times['kmc compare']:.1f} s)")
    say(f"[demo] done in {sum(times.values()):.1f} s; open the .nc files with xarray, see "
        f"docs/tutorial.md")
    return times


def _run(args) -> int:
    run_demo(Path(args.output), kmc=not args.no_kmc, quiet=args.quiet)
    return 0


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the bundled Li3B7O12 scenarios (what `make demo` runs)",
                       description="The main job on the bundled Li3B7O12 inputs: the SED and D(n), "
                                   "NPP profiles of the K, Rb and Cs CAIT and the Rb-then-Cs "
                                   "double CAIT, and KMC vs NPP on the KMC-sized K scenario.")
    p.add_argument("-o", "--output", default="outputs", help="output folder (default: outputs)")
    p.add_argument("--no-kmc", action="store_true", help="skip the KMC-vs-NPP comparison")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=_run)
