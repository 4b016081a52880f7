"""`cait bench npp`: wall time, steps and Newton iterations of the full NPP solver on the bundled
CAIT inputs, and its accuracy shown by refinement.

Accuracy is the difference (fraction of n_bulk, over species, depths and output times) to (a) the same run with rtol / 10 (time error) and (b) the same run on a mesh with every cell
bisected (space error, compared at the coarse nodes). The plateau is the native level left
behind the front at the end of the schedule (median of the native fraction where the foreign
fraction is read at 0.8 x the front depth, where the native fraction rises through 0.5).
Max-norm differences at a sharp front measure its shift in units of its width (a shift of
0.1 cell gives ~0.1); the relative L1 difference is the better profile measure there.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np


def _front(ds, time_index=-1):
    """Depth [nm] where the native fraction first rises through 0.5 (linear interpolation)."""
    c = ds.concentration.sel(species=ds.attrs["native"]).isel(time=time_index).values
    x = ds.depth.values
    above = np.nonzero(c >= 0.5)[0]
    if len(above) == 0:
        return float("nan")
    j = above[0]
    if j == 0:
        return 0.0
    return float(x[j - 1] + (0.5 - c[j - 1]) / (c[j] - c[j - 1]) * (x[j] - x[j - 1]))


def _plateau(ds, time_index=-1):
    """Native fraction at 0.8 x the front depth (inside the flat part behind the front)."""
    front = _front(ds, time_index)
    if not np.isfinite(front) or front <= 0:
        return float("nan")
    c = ds.concentration.sel(species=ds.attrs["native"]).isel(time=time_index).values
    return float(np.interp(0.8 * front, ds.depth.values, c))


def _profile_errors(coarse, fine, stride):
    """Max-norm and relative L1 difference of all profiles, compared at the coarse nodes.

    L1 is ``sum_j vol_j |dc_j|`` over depth (max over species and time), divided by the
    foreign inventory at the end: a front shifted by dx counts as dx * jump / inventory.
    """
    ca = coarse.concentration.values
    cb = fine.concentration.values[..., ::stride]
    x = coarse.depth.values
    vol = np.gradient(x)
    diff = np.abs(ca - cb)
    foreign = [i for i, s in enumerate(coarse.species.values) if s != coarse.attrs["native"]]
    inventory = float((ca[foreign, -1] * vol).sum())
    return float(diff.max()), float((diff * vol).sum(-1).max() / inventory)


def bench_npp(input_paths, accuracy=True, out=print):
    """Run the full NPP solver on each input and report speed and accuracy.

    Parameters
    ----------
    input_paths : iterable of path-like
        Input files (TOML).
    accuracy : bool
        Also run the rtol/10 and bisected-mesh references (3 runs per input).
    out : callable
        Where the table lines go (`print` by default).

    Returns
    -------
    list of dict
        One row per input: ``input``, ``wall_s``, ``n_steps``, ``n_newton``, ``n_rejected``,
        ``n_cells``, ``plateau``, ``front_nm``, ``err_time``, ``err_space``,
        ``plateau_err_space`` (fractions of n_bulk).
    """
    from compare.config import load_config
    from compare.run_npp import npp_problem_from_config
    from continuum.mesh import refine
    from continuum.npp import MeshSpec, _Setup, solve

    rows = []
    header = (f"{'input':28s} {'wall[s]':>7s} {'steps':>5s} {'newton':>6s} {'rej':>3s} "
              f"{'plateau':>7s} {'front':>7s} | {'time: max':>9s} {'L1':>7s} {'dplat':>7s} "
              f"{'dfront':>7s} | {'space: max':>10s} {'L1':>7s} {'dplat':>7s} {'dfront':>7s}")
    out(header)
    warm = True
    for path in input_paths:
        cfg = load_config(path)
        problem = npp_problem_from_config(cfg)
        if warm:  # compile the numba kernels outside the timing
            short = dataclasses.replace(problem, output_times_s=(0.0,), phases=(
                dataclasses.replace(problem.phases[0], duration_s=1e-3),))
            solve(short)
            warm = False
        t0 = time.perf_counter()
        ds = solve(problem)
        wall = time.perf_counter() - t0
        row = dict(input=Path(path).name, wall_s=wall, n_steps=ds.attrs["n_steps"],
                   n_newton=ds.attrs["n_newton"], n_rejected=ds.attrs["n_rejected"],
                   n_cells=ds.attrs["n_cells"], rtol=problem.rtol, plateau=_plateau(ds),
                   front_nm=_front(ds))
        line = (f"{row['input']:28s} {wall:7.3f} {row['n_steps']:5d} {row['n_newton']:6d} "
                f"{row['n_rejected']:3d} {row['plateau']:7.4f} {row['front_nm']:7.2f}")
        if accuracy:
            tight = solve(dataclasses.replace(problem, rtol=problem.rtol / 10))
            nodes = refine(_Setup(problem).nodes)
            fine = solve(dataclasses.replace(problem, mesh=MeshSpec(nodes_nm=tuple(nodes))))
            for key, ref, stride in (("time", tight, 1), ("space", fine, 2)):
                emax, el1 = _profile_errors(ds, ref, stride)
                row[f"err_{key}_max"] = emax
                row[f"err_{key}_l1"] = el1
                row[f"err_{key}_plateau"] = abs(_plateau(ref) - row["plateau"])
                row[f"err_{key}_front_nm"] = abs(_front(ref) - row["front_nm"])
                line += (f" | {emax:9.1e} {el1:7.1e} {row[f'err_{key}_plateau']:7.1e} "
                         f"{row[f'err_{key}_front_nm']:7.1e}")
        rows.append(row)
        out(line)
    out("errors: fractions of n_bulk (dfront in nm); time: vs rtol/10, space: vs bisected mesh")
    return rows
