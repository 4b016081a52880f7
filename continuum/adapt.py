"""Solution-adaptive mesh: the user sets a tolerance, not cells (docs/npp.md "Adaptive mesh").

With one time window the mesh is static, designed from the solution's whole history, so it is
fine wherever a profile has structure at any output time (the space-charge layer, the foreign
front along its whole path, a native pile-up) and coarse elsewhere. With ``windows`` > 1 (the
CLI default, ``[npp] mesh_windows``) every equal time window gets such a mesh designed from
the profiles inside it (and the nearest output on either side), and the solvers move their
state between the meshes conservatively (docs/npp.md "Meshes in time windows"); the
space-charge layer at the surface keeps its refinement in every window. The steps below are
done per window:

1. **Pilot**: a cheap run on a coarse graded mesh (``PILOT_CELLS`` cells) with extra output
   times (:func:`pilot_times_s`, uniform and geometric over every phase), so that the monitor sees the front at every
   stage of its path, not only at the requested output times.
2. **Monitor**: from a solution, the curvature ``M(x) = max over species and times |c''|``
   (fraction of n_bulk per nm^2). Piecewise-linear interpolation of a profile with curvature
   ``M`` on cells of size ``h`` errs by ``h^2 M / 8``, so the target size is
   ``h(x) = sqrt(8 eta / M(x))`` with the mesh tolerance ``eta``. ``h(x)`` is then limited so
   that neighbouring cells differ by at most ``exp(growth)`` (``h`` Lipschitz with slope
   ``growth``), capped by the graded mesh's surface (and electrode) refinement
   ``h_surface + growth x`` and by ``H_MAX_FRACTION x L``; nodes equidistribute ``∫ dx / h``.
   Monitors of successive rounds are combined by their maximum (refinement only grows).
3. **Check**: the run on that mesh gets the shadow-run error estimate of
   :mod:`continuum.accuracy` (which contains the space and the time error). The time
   tolerances follow ``tol`` (``rtol <= RTOL_PER_TOL x tol``, ``atol <= ATOL_PER_TOL x tol``).
   Beyond ``tol`` the mesh tolerance and the time tolerances shrink by
   ``SAFETY x tol / estimate`` (the space error is second order in ``h``: proportional to
   ``eta``; the time error is about proportional to ``rtol``) and the monitor is taken from the
   new, better resolved solution (spread like the pilot's); at most ``max_rounds`` rounds, and
   no more once a round fails to halve the previous estimate (``STALL``): refining does not
   converge there, and the result is marked "inaccurate".

The first ``eta`` is ``ETA0 x tol``: calibrated on the bundled inputs so that one round usually
suffices (docs/npp.md gives the measured rounds and cells).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from continuum import accuracy
from continuum.errors import SolverError

PILOT_CELLS = 160         # cells of the pilot's graded mesh
PILOT_TIMES = 32          # extra output times of the pilot (uniform over the schedule)
ETA0 = 0.06               # first mesh tolerance / tol (measured: estimate ~ 7-9 eta at rtol = 0.1 tol)
SAFETY = 0.6              # next eta = eta x SAFETY x tol / estimate
H_MAX_FRACTION = 0.05     # no cell wider than this fraction of L
H_MIN_NM = 1e-3           # no cell narrower [nm]
MAX_ROUNDS = 4
SURFACE_DEBYE = 10.0      # windows: the space-charge layer (this many Debye lengths) keeps the
                          # refinement of every window (a pinned structure the pilot resolves early only)
STALL = 0.5               # stop when a round did not halve the estimate of the previous one
DILATE = 0.2             # the pilot's structure may sit this fraction of its depth off
MIN_SHRINK = 0.3          # a round shrinks the tolerances by at most this factor
RTOL_PER_TOL = 0.1        # time tolerances follow tol: rtol <= 0.1 tol, atol <= 1e-4 tol
ATOL_PER_TOL = 1e-4


def pilot_times_s(problem):
    """Extra output times of the pilot [s]: per phase ``PILOT_TIMES`` uniform and as many
    geometric (from 1e-4 of the phase on: a front moving as sqrt(t) covers its first tenth
    in the first 1 % of the phase) after the phase start."""
    out = []
    t0 = 0.0
    for ph in problem.phases:
        d = float(ph.duration_s)
        out.append(t0 + np.linspace(0.0, d, PILOT_TIMES + 1)[1:])
        out.append(t0 + np.geomspace(1e-4 * d, d, PILOT_TIMES))
        t0 += d
    return np.unique(np.minimum(np.concatenate(out), problem.total_duration_s))


def curvature(ds):
    """Monitor ``M`` at the result's depths: max over species and times of |c''|, ndarray of
    shape (n_depth,) [1/nm^2] (one-sided at the two ends: the neighbour's value)."""
    return _curvature_of(np.asarray(ds.depth.values, float),
                         np.asarray(ds["concentration"].values, float))


def _curvature_of(x, c):
    """:func:`curvature` of profiles ``c`` (species, time, depth) at depths ``x``."""
    h = np.diff(x)
    slope = np.diff(c, axis=-1) / h
    d2 = np.abs(2.0 * np.diff(slope, axis=-1) / (h[1:] + h[:-1]))
    d2 = np.nan_to_num(d2, nan=0.0, posinf=0.0).reshape(-1, len(x) - 2).max(axis=0)
    return np.concatenate(([d2[0]], d2, [d2[-1]]))


def dilate(x, monitor, fraction=DILATE, floor_nm=0.1, spread=None):
    """``max monitor(y)`` over ``|y - x| <= fraction (y + floor_nm)``, at the points `x`
    (sorted), ndarray like `monitor`; only points where the bool mask `spread` is true are
    spread (default all; a boundary layer pinned at the back is not a front that can move).

    A pilot on a coarse mesh misplaces its fronts (an under-resolved native level behind the
    front changes the front speed: measured 11 % behind at 123 instead of 138 nm); every
    structure is therefore spread over a window proportional to its depth. Computed as a
    running maximum over a window of constant width in ``log(x + floor_nm)``."""
    if fraction <= 0:
        return monitor.copy()
    u = np.log(np.asarray(x, float) + floor_nm)
    n_bins = 4096
    edges = np.linspace(u[0], u[-1] + 1e-12, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, u, side="right") - 1, 0, n_bins - 1)
    binned = np.zeros(n_bins)
    src = np.ones(len(u), bool) if spread is None else np.asarray(spread, bool)
    np.maximum.at(binned, idx[src], monitor[src])
    width = max(1, int(np.ceil(np.log1p(fraction) / (edges[1] - edges[0]))))
    from scipy.ndimage import maximum_filter1d

    spread = maximum_filter1d(binned, size=2 * width + 1, mode="nearest")
    return np.maximum(monitor, spread[idx])


def _pinned(x, length, h_back):
    """Points of structures pinned to an electrode at the back (its depletion layer, growing
    into the last ~10 % of the sample): they do not move with the front and are not spread."""
    if h_back is None:
        return np.zeros(len(x), bool)
    return x > length - max(20.0 * h_back, 0.1 * length)


def _limit_growth(xs, h, growth):
    """Smallest function <= h with |dh/dx| <= growth (two sweeps over the samples)."""
    h = h.copy()
    dx = np.diff(xs)
    for i in range(1, len(h)):
        h[i] = min(h[i], h[i - 1] + growth * dx[i - 1])
    for i in range(len(h) - 2, -1, -1):
        h[i] = min(h[i], h[i + 1] + growth * dx[i])
    return h


def size_function(x_mon, monitor, eta, length_nm, h_surface_nm, growth=0.1, h_back_nm=None,
                  n_samples=4000):
    """Target cell size [nm] on sample points: (samples, sizes), both shape (n,).

    ``monitor`` is given at depths ``x_mon`` (interpolated linearly; taken as its maximum over
    each sample's neighbourhood so that narrow peaks are not missed between samples)."""
    length = float(length_nm)
    h_max = H_MAX_FRACTION * length
    geo = np.geomspace(min(h_surface_nm, h_back_nm or h_surface_nm) * 1e-2, length, n_samples // 4)
    xs = np.unique(np.concatenate((np.linspace(0.0, length, n_samples), geo, length - geo,
                                   x_mon)))
    xs = xs[(xs >= 0) & (xs <= length)]
    m = np.interp(xs, x_mon, monitor)
    # every monitor point also raises its bracketing samples (peaks narrower than the samples)
    k = np.clip(np.searchsorted(xs, x_mon), 1, len(xs) - 1)
    np.maximum.at(m, k, monitor)
    np.maximum.at(m, k - 1, monitor)
    with np.errstate(divide="ignore", over="ignore"):
        h = np.where(m > 0, np.sqrt(8.0 * eta / m), h_max)
    h = np.minimum(h, h_max)
    h = np.minimum(h, h_surface_nm + growth * xs)
    if h_back_nm is not None:
        h = np.minimum(h, h_back_nm + growth * (length - xs))
    h = np.maximum(h, H_MIN_NM)
    return xs, _limit_growth(xs, h, growth)


def nodes_from_sizes(xs, h):
    """Nodes [nm] equidistributing ∫ dx / h (h linear between samples), ndarray (n + 1,)."""
    from continuum.mesh import _cell_count

    s = _cell_count(xs, h)
    n = max(8, int(np.ceil(s[-1])))
    nodes = np.interp(np.linspace(0.0, s[-1], n + 1), s, xs)
    nodes[0], nodes[-1] = xs[0], xs[-1]
    return nodes


@dataclasses.dataclass
class AdaptiveResult:
    """The accepted result (with ``profile_error`` and the error attrs when checked), its
    problem (explicit nodes: a fit's frozen forward model reuses them) and one dict per round
    (``n_cells``, ``eta``, ``error_estimate``)."""

    ds: object
    problem: object
    rounds: list


def _at_times(ds, times):
    """`ds` restricted to the requested output times (a pilot has more)."""
    keep = np.isin(np.asarray(ds.time.values, float), np.asarray(times, float))
    return ds.isel(time=np.flatnonzero(keep))


def _pilot(problem):
    """The pilot problem: coarse graded mesh, extra output times, adaptive time steps."""
    from continuum.errors import ProblemError
    from continuum.problem import mesh_nodes_nm

    spec = problem.mesh
    times = tuple(float(t) for t in np.union1d(np.asarray(problem.output_times_s, float),
                                               pilot_times_s(problem)))
    for n_cells in (min(int(spec.n_cells), PILOT_CELLS), int(spec.n_cells)):
        pilot = dataclasses.replace(problem, output_times_s=times, fixed_times_s=None,
                                    mesh=dataclasses.replace(spec, n_cells=n_cells, nodes_nm=None))
        try:
            mesh_nodes_nm(pilot)
            return pilot
        except ProblemError:          # too few cells for this grading: the user's count
            continue
    return pilot


def window_starts(problem, windows):
    """Start times [s] of `windows` equal time windows over the schedule (the first at 0)."""
    return [problem.total_duration_s * w / windows for w in range(windows)]


def _window_of(times, starts, end):
    """Index of the mesh window of each time: window w holds (start_w, start_w+1] (and 0)."""
    edges = np.asarray(list(starts[1:]) + [end], float)
    return np.minimum(np.searchsorted(edges * (1 + 1e-13), np.asarray(times, float)),
                      len(starts) - 1)


def _window_outputs(t, lo, hi):
    """Indices of the output times `t` inside [lo, hi] and of the nearest one on either side
    (a structure moving through the window is seen where it enters and where it leaves)."""
    t = np.asarray(t, float)
    inside = np.flatnonzero((t >= lo * (1 - 1e-13)) & (t <= hi * (1 + 1e-13)))
    before = np.flatnonzero(t < lo * (1 - 1e-13))[-1:]
    after = np.flatnonzero(t > hi * (1 + 1e-13))[:1]
    return np.concatenate((before, inside, after)).astype(int)


def _curvature_on(ds, points, keep):
    """:func:`curvature` of the result's profiles at the output times `keep` (bool mask),
    evaluated on `points` (where one window's mesh holds its unknowns: a subset of the
    result's depth grid)."""
    x = np.asarray(ds.depth.values, float)
    c = np.asarray(ds["concentration"].values, float)[:, keep]
    k, nt = c.shape[:2]
    on = np.array([np.interp(points, x, row) for row in c.reshape(k * nt, -1)])
    return _curvature_of(np.asarray(points, float), on.reshape(k, nt, len(points)))


def _own_points(ds, mesh):
    """Where a mesh holds its unknowns: its nodes (full solver) or its cell centres
    (electroneutral solver, whose mesh nodes are cell faces)."""
    mesh = np.asarray(mesh, float)
    if str(ds.attrs.get("engine", "")) == "npp-electroneutral":
        return 0.5 * (mesh[1:] + mesh[:-1])
    return mesh


def solve_adaptive(problem, solve, tol, *, check=True, native=None, plateau=None,
                   max_rounds=MAX_ROUNDS, progress=False, stop=None, windows=1):
    """Solve `problem` on a mesh adapted until the shadow-run estimate is within `tol`.

    Parameters
    ----------
    problem : continuum.problem.NPPProblem
        Its ``mesh`` gives ``h_surface_nm``, ``growth`` and ``h_back_nm``; ``n_cells`` and
        ``zone_nm`` only shape the pilot.
    solve : callable
        ``solve(problem, progress=..., stop=...) -> xr.Dataset`` (either solver).
    tol : float
        Accepted profile error [fraction of n_bulk].
    check : bool
        Run the shadow runs (error estimate, further rounds). Without: one round, no estimate.
    native, plateau
        As :func:`continuum.accuracy.annotate` (the plateau error attr).
    max_rounds : int
        Rounds of mesh design + run (+ shadow run) at most.
    progress, stop
        Passed to the runs on the adapted meshes (`stop` to every run).
    windows : int
        Equal time windows with a mesh of their own (either solver; 1: one static mesh). Each window's mesh is designed from the pilot's profiles inside it, so it is
        fine only where the profiles have structure during that window; the state moves
        between meshes conservatively (:func:`continuum.mesh.conservative_transfer`).

    Returns
    -------
    AdaptiveResult
        ``ds`` has the attrs ``mesh = "adaptive"``, ``adapt_rounds``, ``adapt_cells`` (the
        largest window's cells per round), ``adapt_mean_cells`` and ``adapt_error_estimates``
        (per round); with `check`, the error attrs of :func:`continuum.accuracy.annotate`
        and, when the last round still misses `tol`, status "inaccurate".

    Raises
    ------
    continuum.errors.SolverInterrupted
        When `stop` ends a run; its ``partial`` is the last complete result on an adapted mesh
        (the pilot's partial at the requested times if there is none yet).
    """
    from continuum.errors import SolverInterrupted
    from continuum.problem import BACKS, debye_length_nm

    length = problem.thickness_m * 1e9
    spec = problem.mesh
    h_back = spec.h_back_nm
    if h_back is None and BACKS[problem.back] == BACKS["electrode"]:
        h_back = spec.h_surface_nm
    windows = max(1, int(windows))
    starts = window_starts(problem, windows)
    ends = starts[1:] + [problem.total_duration_s]
    done = None                               # last complete result on an adapted mesh
    try:
        ds = solve(_pilot(problem), progress=False, stop=stop)
    except SolverInterrupted as err:
        if err.partial is not None:
            err.partial = _at_times(err.partial, problem.output_times_s)
        raise
    x0 = np.asarray(ds.depth.values, float)
    spread0 = ~_pinned(x0, length, h_back)
    if windows == 1:
        mons = [(x0, dilate(x0, curvature(ds), spread=spread0))]
    else:
        layer = x0 <= SURFACE_DEBYE * debye_length_nm(problem)
        every = np.where(layer, curvature(ds), 0.0)
        mons = [(x0, dilate(x0, np.maximum(curvature(ds.isel(time=_window_outputs(
            ds.time.values, lo, hi))), every), spread=spread0))
            for lo, hi in zip(starts, ends)]
    eta = ETA0 * tol                          # (measured: the same with windows)
    rtol = min(problem.rtol, RTOL_PER_TOL * tol)
    atol = min(problem.atol, ATOL_PER_TOL * tol)
    rounds, shadow = [], None
    for r in range(max_rounds if check else 1):
        meshes = [nodes_from_sizes(*size_function(x_mon, mon, eta, length, spec.h_surface_nm,
                                                  spec.growth, h_back))
                  for x_mon, mon in mons]
        if windows == 1:
            new_spec = dataclasses.replace(spec, nodes_nm=tuple(float(v) for v in meshes[0]))
        else:
            new_spec = dataclasses.replace(spec, nodes_nm=None, windows=tuple(
                (float(t0), tuple(float(v) for v in x)) for t0, x in zip(starts, meshes)))
        current = dataclasses.replace(problem, mesh=new_spec, rtol=rtol, atol=atol)
        try:
            ds = solve(current, progress=progress, stop=stop)
        except SolverInterrupted as err:
            if done is not None:
                err.partial = done
            raise
        done = ds
        cells = [len(x) - 1 for x in meshes]
        rounds.append(dict(n_cells=max(cells), mean_cells=float(np.mean(cells)), eta=eta,
                           rtol=rtol, error_estimate=np.nan))
        if not check:
            break
        shadow = accuracy.shadow_run(solve, current, ds, stop=stop)
        if isinstance(shadow, SolverError):
            break
        est = accuracy.compare_to_shadow(ds, shadow)["error_estimate"]
        rounds[-1]["error_estimate"] = est
        if not np.isfinite(est) or est <= tol or r == max_rounds - 1:
            break
        if r > 0 and est > STALL * rounds[-2]["error_estimate"]:
            break                 # refining does not help here (see docs/npp.md): stop, marked
        # space error ~ eta, time error ~ rtol; a large miss is a misplaced structure (the new
        # monitor moves it), not a too loose eta: shrink by MIN_SHRINK at most
        shrink = max(MIN_SHRINK, SAFETY * tol / est)
        eta, rtol, atol = eta * shrink, rtol * shrink, atol * shrink
        # a round that missed tol may have misplaced its structures too: spread them as well.
        # Each output's curvature is taken on the mesh it was computed on; a window's monitor
        # is the maximum over its outputs and the nearest output on either side (a window
        # without outputs learns from its neighbours)
        t_out = np.asarray(ds.time.values, float)
        where = _window_of(t_out, starts, problem.total_duration_s)
        if windows == 1:      # one mesh: the result's own grid (for either solver)
            own = [np.asarray(ds.depth.values, float)]
        else:
            own = [_own_points(ds, x) for x in meshes]
        per = [np.asarray(_curvature_on(ds, own[where[k]], np.arange(len(t_out)) == k))
               for k in range(len(t_out))]
        new = []
        for w, (x_mon, mon) in enumerate(mons):
            x_w = meshes[w]
            idx = _window_outputs(t_out, starts[w], ends[w])
            old = np.interp(x_w, x_mon, mon)
            if len(idx):
                cur = np.max([np.interp(x_w, own[where[k]], per[k]) for k in idx], axis=0)
                old = np.maximum(dilate(x_w, cur, spread=~_pinned(x_w, length, h_back)), old)
            new.append((x_w, old))
        mons = new
    ds.attrs.update(mesh="adaptive", adapt_rounds=len(rounds),
                    adapt_cells=np.asarray([q["n_cells"] for q in rounds], np.int64),
                    adapt_mean_cells=np.asarray([q["mean_cells"] for q in rounds], float),
                    adapt_error_estimates=np.asarray([q["error_estimate"] for q in rounds], float))
    if check:
        accuracy.attach(ds, shadow, tol, native=native, plateau=plateau)
    return AdaptiveResult(ds=ds, problem=current, rounds=rounds)
