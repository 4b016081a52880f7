"""`cait bench npp`: wall time, steps and Newton iterations of the full NPP solver on the bundled
CAIT inputs, and its accuracy shown by refinement.

Accuracy is the difference (fraction of n_bulk, over species, depths and output times) to (a) the same run with rtol / 10 (time error) and (b) the same run on a mesh with every cell
bisected (space error, compared at the coarse nodes). The plateau is the native level left
behind the front at the end of the schedule (native
fraction averaged over 0.25-0.75 x the front depth, `compare.workflows.comparison` definitions).
Max-norm differences at a sharp front measure its shift in units of its width (a shift of
0.1 cell gives ~0.1); the relative L1 difference is the better profile measure there.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np


def _front_and_plateau(ds, time_index=-1):
    """Front depth [nm] and native plateau (fraction) with the team's definitions
    (`compare.workflows.profile_metrics`: front where the foreign profile falls through half its
    level, plateau = length-weighted median native fraction over 0.25-0.75 x front)."""
    from compare.workflows.profile_metrics import front_and_plateau

    return front_and_plateau(ds, ds.attrs["native"], time_index)


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
    from compare.io.config import load_config
    from compare import scenario
    from continuum.mesh import refine
    from continuum.npp import solve
    from continuum.problem import MeshSpec, mesh_nodes_nm

    rows = []
    header = (f"{'input':26s} {'wall[s]':>7s} {'cpu[s]':>6s} {'steps':>5s} {'newton':>6s} "
              f"{'rej':>3s} {'plateau':>7s} {'front':>6s} | {'time: max':>9s} {'L1':>7s} "
              f"{'dplat':>7s} {'dfront':>7s} | {'space: max':>10s} {'L1':>7s} {'dplat':>7s} "
              f"{'dfront':>7s}")
    out(header)
    warm = True
    for path in input_paths:
        cfg = load_config(path)
        problem = scenario.npp_problem(cfg)
        if warm:  # compile the numba kernels outside the timing
            short = dataclasses.replace(problem, output_times_s=(0.0,), phases=(
                dataclasses.replace(problem.phases[0], duration_s=1e-3),))
            solve(short)
            warm = False
        t0, c0 = time.perf_counter(), time.process_time()
        ds = solve(problem)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        front, plateau = _front_and_plateau(ds)
        row = dict(input=Path(path).name, wall_s=wall, cpu_s=cpu, n_steps=ds.attrs["n_steps"],
                   n_newton=ds.attrs["n_newton"], n_rejected=ds.attrs["n_rejected"],
                   n_cells=ds.attrs["n_cells"], rtol=problem.rtol, plateau=plateau,
                   front_nm=front)
        line = (f"{row['input']:26s} {wall:7.3f} {cpu:6.3f} {row['n_steps']:5d} "
                f"{row['n_newton']:6d} {row['n_rejected']:3d} {plateau:7.4f} {front:6.1f}")
        if accuracy:
            tight = solve(dataclasses.replace(problem, rtol=problem.rtol / 10))
            nodes = refine(mesh_nodes_nm(problem))
            fine = solve(dataclasses.replace(problem, mesh=MeshSpec(nodes_nm=tuple(nodes))))
            for key, ref, stride in (("time", tight, 1), ("space", fine, 2)):
                emax, el1 = _profile_errors(ds, ref, stride)
                f_ref, p_ref = _front_and_plateau(ref)
                row[f"err_{key}_max"] = emax
                row[f"err_{key}_l1"] = el1
                row[f"err_{key}_plateau"] = abs(p_ref - plateau)
                row[f"err_{key}_front_nm"] = abs(f_ref - front)
                line += (f" | {emax:9.1e} {el1:7.1e} {row[f'err_{key}_plateau']:7.1e} "
                         f"{row[f'err_{key}_front_nm']:7.1e}")
        rows.append(row)
        out(line)
    out("cpu: process time (wall time is inflated when other jobs share the cores); errors in "
        "fractions of n_bulk (dfront in nm); time: vs rtol/10, space: vs every cell bisected")
    return rows
