"""`cait bench fit`: CPU time of the bundled fit and its recovery of the synthetic truth.

The bundled synthetic profiles (inputs/profiles/k_cait_synthetic.csv) were made by the NPP model
at known parameters (the fit input's ``[species]`` and ``[sed]`` values, listed in
:data:`TRUTH`) with Gaussian noise; the fit starts elsewhere (the ``start`` values of the input's
``[fit]`` parameters). The benchmark fits them with the input's default forward model and prints
the CPU time of the whole fit (all processes), the evaluations, and each parameter's distance from
the truth in units of its stated standard error.
"""
from __future__ import annotations

import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIT_INPUT = ROOT / "inputs" / "fit_k_cait.toml"
FIT_PROFILES = ROOT / "inputs" / "profiles" / "k_cait_synthetic.csv"
# parameters the synthetic profiles were made with (inputs/profiles/make_k_cait_synthetic.py)
TRUTH = {"species.K.D_cm2_s": 9e-17, "sed.fwhm_eV": 0.25, "species.Li.D_cm2_s": 1.5e-13}


def bench_fit(input_path=FIT_INPUT, profiles_path=FIT_PROFILES, truth=None, out=print):
    """Fit `profiles_path` with `input_path` once and report cost and recovery.

    Returns
    -------
    dict
        ``cpu_s`` (all processes), ``wall_s``, ``n_evaluations``, ``model_error`` and per
        parameter ``best``, ``stderr``, ``z`` ((best - truth) / stderr; nan without a truth).
    """
    import math

    from compare.io.config import load_config
    from compare.io.profiles import read_profiles
    from compare.workflows.fit import fit

    truth = TRUTH if truth is None else truth
    cfg = load_config(input_path)
    measured = read_profiles(profiles_path, cfg.species_names,
                             time_s=cfg.fit.time_s if cfg.fit.time_s >= 0 else None,
                             error_floor=cfg.fit.error_floor)
    t0 = time.perf_counter()
    ds = fit(cfg, measured, log=None)
    wall = time.perf_counter() - t0
    row = dict(cpu_s=float(ds["cpu_time"]), wall_s=wall, n_evaluations=int(ds["n_evaluations"]),
               model_error=float(ds.attrs.get("model_error_estimate", math.nan)), params={})
    out(f"fit of {Path(profiles_path).name} with {Path(input_path).name} "
        f"({cfg.fit.solver or cfg.npp.solver} NPP, {cfg.npp.mesh} mesh, tol {cfg.npp.tol:g}):")
    out(f"  {row['cpu_s']:.1f} s CPU (all processes), {wall:.1f} s wall, {row['n_evaluations']} "
        f"evaluations, model error estimate {row['model_error']:.2g} of n_bulk")
    for name, best, se in zip(ds["param"].values, ds["best"].values, ds["stderr_natural"].values):
        t = truth.get(str(name), math.nan)
        z = (float(best) - t) / float(se) if float(se) > 0 else math.nan
        row["params"][str(name)] = dict(best=float(best), stderr=float(se), z=z)
        out(f"  {str(name):20s} {float(best):.5g} ± {float(se):.2g}   truth {t:.5g}   "
            f"(best - truth) / stderr = {z:+.2f}")
    return row
