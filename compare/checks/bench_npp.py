"""`cait bench npp`: CPU time of the NPP runs of the bundled inputs with their default numerics,
at the input's ``[npp] tol`` or one given, and (``--reference``) their true error.

For every input it times

* ``total``: the whole default run, :func:`compare.scenario.solve_npp`: with the adaptive mesh
  the pilot run, each round's run and its shadow run (the error estimate);
* ``solve``: one run on the accepted mesh with the accepted time tolerances (what a result
  costs once its mesh is known, e.g. a fit's forward model).

It prints the cells, rounds, steps, the error estimate and the native plateau (the one plateau
metric, `compare.workflows.profile_metrics`). With ``reference`` the accepted result is also
compared with a run on a 4x refined mesh (every cell cut in four, time tolerances / 16): the
true max-norm error and the plateau difference, what the convergence tests assert.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np


def _front_and_plateau(ds, time_index=-1):
    """Front depth [nm] and native plateau (fraction) with the team's definitions."""
    from compare.workflows.profile_metrics import front_and_plateau

    return front_and_plateau(ds, ds.attrs["native"], time_index)


def accepted_problem(cfg, ds):
    """The NPP problem of `cfg` on the mesh (or meshes in time) and time tolerances of its
    result `ds`."""
    from compare import scenario
    from continuum.problem import mesh_of_result

    problem = scenario.npp_problem(cfg)
    return dataclasses.replace(problem, mesh=mesh_of_result(ds),
                               rtol=float(ds.attrs["rtol"]), atol=float(ds.attrs["atol"]))


def refined_problem(problem, level=4):
    """`problem` with every cell of its mesh (of each window's mesh) cut into `level` pieces
    (explicit nodes), tolerances / level^2."""
    from continuum.mesh import refine
    from continuum.problem import map_meshes

    return dataclasses.replace(map_meshes(problem, lambda x: refine(x, level)),
                               rtol=problem.rtol / level ** 2, atol=problem.atol / level ** 2)


def true_errors(ds, ref, native):
    """Max-norm difference of all profiles (interpolated to `ds`'s nodes) and the largest
    difference of the native plateau over the output times, result `ds` against `ref`."""
    from compare.workflows.profile_metrics import front_and_plateau

    x, xr_ = np.asarray(ds.depth.values, float), np.asarray(ref.depth.values, float)
    c, cr = ds["concentration"].values, ref["concentration"].values
    emax = max(float(np.max(np.abs(c[i, k] - np.interp(x, xr_, cr[i, k]))))
               for i in range(c.shape[0]) for k in range(c.shape[1]))
    dplat = 0.0
    for k in range(c.shape[1]):
        a, b = front_and_plateau(ds, native, k)[1], front_and_plateau(ref, native, k)[1]
        if np.isfinite(a) and np.isfinite(b):
            dplat = max(dplat, abs(a - b))
    return emax, dplat


def bench_npp(input_paths, tol=None, reference=False, out=print):
    """Time the default NPP run of each input and report its mesh, error and plateau.

    Parameters
    ----------
    input_paths : iterable of path-like
        Input files (TOML).
    tol : float, optional
        ``[npp] tol`` for every input (default: each input's own).
    reference : bool
        Also solve on the 4x refined mesh and report the true errors.
    out : callable
        Where the table lines go (`print` by default).

    Returns
    -------
    list of dict
        One row per input: ``input``, ``tol``, ``n_cells``, ``rounds``, ``cpu_total_s``,
        ``cpu_solve_s``, ``n_steps``, ``error_estimate``, ``plateau``, ``front_nm``, ``status``
        and with `reference` ``err_true_max``, ``err_true_plateau``.
    """
    from compare import scenario
    from compare.io import config as config_mod
    from compare.io.config import load_config
    from continuum.npp import solve

    rows = []
    out(f"{'input':30s} {'tol':>7s} {'cells':>5s} {'win':>3s} {'rnds':>4s} {'total':>7s} {'solve':>6s} "
        f"{'steps':>5s} {'estimate':>8s} {'plateau':>7s} {'front':>6s} {'status':>10s}"
        + (f" | {'true max':>8s} {'dplat':>7s}" if reference else ""))
    warm = True
    for path in input_paths:
        cfg = config_mod.replace(load_config(path), "npp", solver="full")
        if tol is not None:
            cfg = config_mod.replace(cfg, "npp", tol=float(tol))
        problem = scenario.npp_problem(cfg)
        if warm:  # compile the numba kernels outside the timing
            short = dataclasses.replace(problem, output_times_s=(0.0,), phases=(
                dataclasses.replace(problem.phases[0], duration_s=1e-3),))
            solve(short)
            warm = False
        c0 = time.process_time()
        ds = scenario.solve_npp(cfg)
        cpu_total = time.process_time() - c0
        accepted = accepted_problem(cfg, ds)
        c0 = time.process_time()
        again = solve(accepted)
        cpu_solve = time.process_time() - c0
        front, plateau = _front_and_plateau(ds)
        # cells: mean over the mesh windows (the result's depth grid is their union)
        cells = np.atleast_1d(again.attrs.get("window_cells", again.attrs["n_cells"]))
        row = dict(input=Path(path).name, tol=float(cfg.npp.tol),
                   n_cells=int(round(float(np.mean(cells)))), windows=int(len(cells)),
                   rounds=int(ds.attrs.get("adapt_rounds", 1)), cpu_total_s=cpu_total,
                   cpu_solve_s=cpu_solve, n_steps=int(again.attrs["n_steps"]),
                   error_estimate=float(ds.attrs.get("error_estimate", np.nan)),
                   plateau=plateau, front_nm=front, status=str(ds.attrs.get("status", "ok")))
        line = (f"{row['input']:30s} {row['tol']:7.0e} {row['n_cells']:5d} {row['windows']:3d} "
                f"{row['rounds']:4d} "
                f"{cpu_total:7.2f} {cpu_solve:6.2f} {row['n_steps']:5d} "
                f"{row['error_estimate']:8.2e} {plateau:7.4f} {front:6.1f} {row['status']:>10s}")
        if reference:
            ref = solve(refined_problem(accepted))
            row["err_true_max"], row["err_true_plateau"] = true_errors(ds, ref, cfg.native.name)
            line += f" | {row['err_true_max']:8.2e} {row['err_true_plateau']:7.1e}"
        rows.append(row)
        out(line)
    out("CPU seconds of this process (total: pilot + rounds + shadow runs of the default run; "
        "solve: one run on the accepted mesh(es)); cells: mean over the mesh windows (win); errors in fractions of n_bulk; front in nm"
        + ("; true: against a 4x refined run" if reference else ""))
    return rows
