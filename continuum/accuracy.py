"""A-posteriori error estimate of an NPP result: a shadow run on a finer mesh with a tighter
time tolerance (docs/npp.md "Error estimate").

The shadow problem has every cell of the result's mesh bisected (explicit nodes) and a
quarter of ``rtol`` and ``atol``. At the result's nodes (shadow nodes too) the two differ by
``delta``; for a second-order method the result's own error is ``delta x 4/3`` (Richardson:
the shadow's error is a quarter of the result's), so ``profile_error(species, time) =
4/3 max_depth |delta|`` and the attr ``error_estimate = max profile_error`` (fraction of
n_bulk). Also ``error_estimate_plateau``: 4/3 x the difference of the native plateau (the one
plateau metric, ``compare.workflows.profile_metrics``), max over the output times.

Why finer and not coarser: a coarser shadow under-resolves the front. Measured on the bundled
K CAIT input (400 cells): the result differs from a half-cell run by 0.084 of n_bulk at the
front but from a double-cell run by 0.0085, and a coarse shadow would call most results
inaccurate that are not.

When ``error_estimate > tol`` the result gets ``status = "inaccurate"`` and a one-line message.
"""
from __future__ import annotations

import dataclasses

import numpy as np

SHADOW_CELL_FACTOR = 2     # the shadow mesh has 2 x the cells
SHADOW_TOL_FACTOR = 4.0    # and 1/4 of the time tolerances
RICHARDSON = 4.0 / 3.0     # error of the result = delta x 2^p / (2^p - 1), p = 2


def shadow_problem(problem, nodes_nm=None):
    """The finer, tighter twin of an ``NPPProblem``: every cell of the result's mesh
    (`nodes_nm`, default ``problem.mesh.build`` of the full solver; with mesh windows, every
    window's) bisected, so the result's nodes are shadow nodes and the comparison needs no
    interpolation."""
    from continuum.mesh import refine
    from continuum.problem import map_meshes

    if nodes_nm is not None and problem.mesh.windows is None:
        problem = dataclasses.replace(problem, mesh=dataclasses.replace(
            problem.mesh, nodes_nm=tuple(float(v) for v in nodes_nm)))
    # each window's mesh when it has windows
    mesh = map_meshes(problem, lambda x: refine(x, SHADOW_CELL_FACTOR)).mesh
    return dataclasses.replace(problem, mesh=mesh, rtol=problem.rtol / SHADOW_TOL_FACTOR,
                               atol=problem.atol / SHADOW_TOL_FACTOR, fixed_times_s=None)


def compare_to_shadow(ds, shadow, native=None, plateau=None):
    """``profile_error`` (species, time) and the attrs of the module docstring.

    ``plateau(depth, native_profile, foreign_profile) -> float`` computes the plateau metric
    (injected so that this module does not depend on ``compare``)."""
    c = np.asarray(ds["concentration"].values, float)          # (species, time, depth)
    cs = np.asarray(shadow["concentration"].values, float)
    x, xs = np.asarray(ds.depth.values, float), np.asarray(shadow.depth.values, float)
    nt = min(c.shape[1], cs.shape[1])
    err = np.full(c.shape[:2], np.nan)
    for i in range(c.shape[0]):
        for k in range(nt):
            err[i, k] = RICHARDSON * float(np.max(np.abs(c[i, k] - np.interp(x, xs, cs[i, k]))))
    out = {"profile_error": err, "error_estimate": float(np.nanmax(err)) if nt else np.nan}
    if native is not None and plateau is not None:
        names = [str(s) for s in ds.species.values]
        j = names.index(native)
        others = [q for q in range(len(names)) if q != j]
        d = []
        for k in range(nt):
            a = plateau(x, c[j, k], c[others, k].sum(axis=0))
            b = plateau(xs, cs[j, k], cs[others, k].sum(axis=0))
            if np.isfinite(a) and np.isfinite(b):
                d.append(RICHARDSON * abs(a - b))
        out["error_estimate_plateau"] = float(max(d)) if d else np.nan
    return out


def annotate(ds, shadow, tol, native=None, plateau=None):
    """`ds` with ``profile_error``, the error attrs and, beyond `tol`, status "inaccurate"."""
    r = compare_to_shadow(ds, shadow, native, plateau)
    ds["profile_error"] = (("species", "time"), r.pop("profile_error"), {
        "units": "1", "long_name": "error estimate: 4/3 max over depth of |result - shadow run "
                                   "(2 x cells, 1/4 time tolerances)| / n_bulk"})
    ds.attrs.update(r)
    ds.attrs["tol"] = float(tol)
    est = ds.attrs["error_estimate"]
    if np.isfinite(est) and est > tol and ds.attrs.get("status", "ok") == "ok":
        ds.attrs["status"] = "inaccurate"
        hint = ("the adaptive mesh did not reach it in its rounds; check the validity note and "
                "the mesh's h_surface_nm" if ds.attrs.get("mesh") == "adaptive" else
                "use mesh = \"adaptive\", refine the mesh ([npp] n_cells, zone_nm) or tighten rtol")
        msg = (f"profile error estimate {est:.2g} of n_bulk exceeds [npp] tol = {tol:g} (from a "
               f"run on twice the cells with 1/4 of the time tolerances): {hint}")
        ds.attrs["message"] = "; ".join(m for m in (ds.attrs.get("message", ""), msg) if m)
    return ds


def shadow_run(solve, problem, result, nodes_nm=None, stop=None):
    """The shadow run of `problem` (:func:`shadow_problem`) with ``solve(problem, progress=,
    stop=)``, or the ``SolverError`` it failed with. An interrupt re-raises with the complete
    `result` as its ``partial`` (not the shadow's)."""
    from continuum.errors import SolverError, SolverInterrupted

    try:
        return solve(shadow_problem(problem, nodes_nm), progress=False, stop=stop)
    except SolverInterrupted as err:
        err.partial = result
        raise
    except SolverError as err:
        return err


def attach(ds, shadow, tol, native=None, plateau=None):
    """:func:`annotate` `ds` with a shadow run, or, when the shadow is the ``SolverError`` of
    :func:`shadow_run`, mark it unchecked: no estimate, status "inaccurate" with the reason."""
    from continuum.errors import SolverError

    if isinstance(shadow, SolverError):
        ds.attrs["error_estimate"] = float("nan")
        ds.attrs["status"] = "inaccurate"
        ds.attrs["message"] = f"no error estimate: the shadow run failed ({shadow})"
        return ds
    return annotate(ds, shadow, tol, native=native, plateau=plateau)
