"""Graded 1D meshes for the NPP solver (vertex-centred finite volumes).

The mesh is described by a target cell-size function ``h(x)`` (piecewise linear):

* fine at the surface, ``h = h_surface`` at x = 0, growing linearly with slope ``growth``
  (equidistribution then makes neighbouring cells differ by the factor ``exp(growth)``: a
  geometric grading);
* capped at a plateau size ``H`` through the replacement zone ``[0, zone]``;
* growing again with slope ``growth`` beyond the zone, towards the back x = L;
* optionally fine again at the back (``h_back``, for an absorbing electrode).

``H`` is found by bisection so that exactly ``n_cells`` cells fit, and the nodes equidistribute
``∫ dx / h(x)``. The node positions are a smooth map of a uniform grid, and `refine` bisects
every cell, so refined meshes keep that map (needed for clean convergence rates).
"""

import numpy as np

from continuum.errors import ProblemError


def _size_function(x, length, h_surface, plateau, zone, growth, h_back):
    """Target cell size [nm] at positions x [nm] (vectorised, piecewise linear)."""
    h = np.minimum(h_surface + growth * x, np.maximum(plateau, plateau + growth * (x - zone)))
    if h_back is not None:
        h = np.minimum(h, h_back + growth * (length - x))
    return h


def _cell_count(xs, h):
    """Cumulative ∫ dx/h on sample points xs, exact for h linear between the samples."""
    dx = np.diff(xs)
    dh = np.diff(h)
    linear = np.abs(dh) > 1e-12 * h[:-1]
    ratio = np.where(linear, h[1:] / h[:-1], 1.0)
    slope = np.where(linear, dh / np.where(linear, dx, 1.0), 1.0)
    piece = np.where(linear, np.log(ratio) / slope, dx / h[:-1])
    return np.concatenate(([0.0], np.cumsum(piece)))


def graded_mesh(length_nm, n_cells, h_surface_nm, zone_nm=None, growth=0.1, h_back_nm=None):
    """Node positions of a graded mesh on [0, length].

    Parameters
    ----------
    length_nm : float
        Sample thickness L [nm].
    n_cells : int
        Number of cells (intervals); the mesh has ``n_cells + 1`` nodes.
    h_surface_nm : float
        Cell size at the front x = 0 [nm].
    zone_nm : float, optional
        Depth [nm] of the (nearly) uniform replacement zone; default ``min(L, 300 nm)``.
    growth : float
        Growth of the cell size per unit length (dimensionless); neighbouring cells differ by
        the factor ``exp(growth)``.
    h_back_nm : float, optional
        If given, the mesh is also refined towards the back to this size [nm].

    Returns
    -------
    ndarray of float64, shape (n_cells + 1,)
        Strictly increasing node positions [nm], first 0, last `length_nm`.

    Raises
    ------
    ProblemError
        If the parameters are out of range or `n_cells` is too small to reach `length_nm`
        with this grading.
    """
    length = float(length_nm)
    if not length > 0:
        raise ProblemError(f"mesh length must be > 0 nm, got {length_nm}")
    if int(n_cells) != n_cells or n_cells < 4:
        raise ProblemError(f"`n_cells` must be an integer >= 4, got {n_cells}")
    if not 0 < h_surface_nm < length:
        raise ProblemError(f"`h_surface_nm` must be in (0, L={length:g}), got {h_surface_nm}")
    if not 0 < growth <= 1:
        raise ProblemError(f"mesh growth must be in (0, 1], got {growth}")
    if h_back_nm is not None and not 0 < h_back_nm < length:
        raise ProblemError(f"`h_back_nm` must be in (0, L={length:g}), got {h_back_nm}")
    zone = min(length, 300.0) if zone_nm is None else float(zone_nm)
    if not 0 < zone <= length:
        raise ProblemError(f"mesh zone must be in (0, L={length:g}] nm, got {zone_nm}")
    n_cells = int(n_cells)
    h_min = min(h_surface_nm, h_back_nm or h_surface_nm)
    # Sample points include all kinks of h(x) closely enough: dense near both ends.
    geo = np.geomspace(h_min * 1e-3, length, 4000)
    xs = np.unique(np.concatenate(([0.0, length, zone], np.linspace(0, length, 4001), geo,
                                   length - geo)))
    xs = xs[(xs >= 0) & (xs <= length)]

    def count(plateau):
        h = _size_function(xs, length, h_surface_nm, plateau, zone, growth, h_back_nm)
        return _cell_count(xs, h)

    lo, hi = h_min * 1e-6, length
    if count(hi)[-1] > n_cells:
        raise ProblemError(
            f"`n_cells` = {n_cells} is too small for h_surface = {h_surface_nm} nm and growth "
            f"{growth} on L = {length:g} nm; need at least {int(np.ceil(count(hi)[-1]))}")
    for _ in range(200):  # bisection in log(H): count decreases monotonically with H
        mid = np.sqrt(lo * hi)
        if count(mid)[-1] > n_cells:
            lo = mid
        else:
            hi = mid
        if hi / lo - 1 < 1e-13:
            break
    plateau = hi
    h = _size_function(xs, length, h_surface_nm, plateau, zone, growth, h_back_nm)
    s = _cell_count(xs, h)
    s *= n_cells / s[-1]  # remove the bisection residual; the map stays smooth
    targets = np.arange(n_cells + 1, dtype=float)
    k = np.clip(np.searchsorted(s, targets, side="right") - 1, 0, len(xs) - 2)
    x1, h1, s1 = xs[k], h[k], s[k]
    dx = xs[k + 1] - x1
    slope = (h[k + 1] - h1) / dx
    ds = (targets - s1) * (s[-1] / n_cells)
    # Inside a piece with linear h: s - s1 = ln(h(x)/h1)/slope  =>  x = x1 + h1*expm1(slope*ds)/slope
    curved = np.abs(slope * dx) > 1e-12 * h1
    safe = np.where(curved, slope, 1.0)
    nodes = x1 + np.where(curved, h1 * np.expm1(safe * ds) / safe, h1 * ds)
    nodes[0], nodes[-1] = 0.0, length
    if np.any(np.diff(nodes) <= 0):
        raise ProblemError("mesh generation produced non-increasing nodes; change mesh parameters")
    return nodes


def refine(nodes, pieces=2):
    """Cut every cell of a mesh into `pieces` equal cells (default: bisect).

    Parameters
    ----------
    nodes : ndarray of float64, shape (n + 1,)
        Node positions (any unit).
    pieces : int
        Cells per old cell.

    Returns
    -------
    ndarray of float64, shape (pieces n + 1,)
        The old nodes at indices divisible by `pieces`, equally spaced new ones between.
    """
    nodes = np.asarray(nodes, dtype=float)
    out = np.empty(pieces * (len(nodes) - 1) + 1)
    out[0::pieces] = nodes
    if pieces == 2:
        out[1::2] = 0.5 * (nodes[:-1] + nodes[1:])
    else:
        h = np.diff(nodes)
        for k in range(1, pieces):
            out[k::pieces] = nodes[:-1] + h * (k / pieces)
    return out


def _cumulative(x, c, xq):
    """``F(xq) = integral from x[0] to xq`` of the piecewise-linear interpolant of ``c`` on
    nodes ``x`` (last axis), for query points ``xq`` inside ``[x[0], x[-1]]``."""
    dx = np.diff(x)
    seg = 0.5 * dx * (c[..., 1:] + c[..., :-1])
    F = np.concatenate([np.zeros(c.shape[:-1] + (1,)), np.cumsum(seg, axis=-1)], axis=-1)
    i = np.clip(np.searchsorted(x, xq, side="right") - 1, 0, len(x) - 2)
    d = np.clip(xq - x[i], 0.0, dx[i])
    slope = (c[..., i + 1] - c[..., i]) / dx[i]
    return F[..., i] + c[..., i] * d + 0.5 * slope * d * d


def control_volumes(nodes):
    """Control-volume lengths of the vertex-centred finite volumes on `nodes` (half cells at
    the two ends), ndarray of the nodes' shape."""
    dx = np.diff(nodes)
    vol = np.zeros(len(nodes))
    vol[:-1] += 0.5 * dx
    vol[1:] += 0.5 * dx
    return vol


def nodal_values_of_averages(x, c):
    """Nodal values ``d`` whose piecewise-linear interpolant has the control-volume means
    ``c`` (last axis = nodes): the inverse of the averaging in :func:`conservative_transfer`.

    Over the half cell of length ``h/2`` next to node j, the interpolant's mean is
    ``(3 d_j + d_neighbour) / 4``, so ``vol_j c_j = h_{j-1} (d_{j-1} + 3 d_j) / 8 +
    h_j (3 d_j + d_{j+1}) / 8``: a tridiagonal system, diagonally dominant (3/8 + 3/8 against
    1/8 + 1/8), solved exactly."""
    from scipy.linalg import solve_banded

    h = np.diff(x)
    n = len(x)
    ab = np.zeros((3, n))
    ab[1, :-1] += 3.0 * h / 8.0
    ab[1, 1:] += 3.0 * h / 8.0
    ab[0, 1:] = h / 8.0            # super-diagonal: d_{j+1} in row j
    ab[2, :-1] = h / 8.0           # sub-diagonal: d_{j-1} in row j
    rhs = (control_volumes(x) * np.asarray(c, float).reshape(-1, n)).T
    return solve_banded((1, 1), ab, rhs).T.reshape(np.shape(c))


def conservative_transfer(x_old, c_old, x_new, sharp=True):
    """Move a finite-volume state to other nodes without changing its inventory.

    The nodal values of the vertex-centred scheme are read as control-volume means (the
    inventory is ``sum(vol * c)``). With `sharp` (default) the old values are first turned into
    the nodal values of a piecewise-linear profile with exactly those means
    (:func:`nodal_values_of_averages`); each new value is then that profile's mean over the new
    control volume ``[x_{j-1/2}, x_{j+1/2}]``. So:

    * ``sum(vol_new * c_new) = sum(vol_old * c_old)`` up to round-off, for every row;
    * onto the same nodes the state is unchanged (to round-off);
    * the error is second order in the cell size for a smooth profile.

    Where the sharp transfer comes out negative (the reconstruction under- and overshoots next
    to a step that its cells do not resolve, or at the foot of a front), the negative values are
    set to 0 and the row is rescaled to its inventory: non-negative, conservative, and continuous
    in the old values (a forward model of a fit stays a continuous function of the parameters;
    switching the whole row to another transfer would not be). Without `sharp` the new values
    are the means of the old values' own piecewise-linear interpolant (non-negative, smoothing
    by ``h^2 c'' / 24``). Both meshes span the same interval; the last axis holds the nodes.
    """
    x_old = np.asarray(x_old, float)
    x_new = np.asarray(x_new, float)
    c_old = np.asarray(c_old, float)
    faces = np.concatenate(([x_old[0]], 0.5 * (x_new[1:] + x_new[:-1]), [x_old[-1]]))
    vol = control_volumes(x_new)
    smooth = np.diff(_cumulative(x_old, c_old, faces), axis=-1) / vol
    if not sharp:
        return smooth
    d = nodal_values_of_averages(x_old, c_old)
    out = np.diff(_cumulative(x_old, d, faces), axis=-1) / vol
    rows = out.reshape(-1, len(x_new))
    neg = rows.min(axis=1) < 0.0
    if neg.any():
        target = (rows[neg] * vol).sum(axis=1)          # the inventory (= the old one)
        clipped = np.maximum(rows[neg], 0.0)
        kept = (clipped * vol).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(kept > 0, target / kept, 0.0)
        rows[neg] = clipped * np.maximum(scale, 0.0)[:, None]
    return out


def conservative_transfer_cells(faces_old, u_old, faces_new):
    """Move cell means (cell-centred finite volumes, cells on the FIRST axis, e.g. shape
    (n_cells, n_species)) to other cells without changing any inventory.

    Each old cell holds a linear profile through its mean. Its slope is the central difference
    of the neighbouring means times one limiter factor per cell, the same for every column: the
    smallest ratio minmod / central over the columns (minmod: the smaller one-sided difference,
    0 at an extremum). So every column stays between its neighbouring means (non-negative for
    non-negative means), and the transfer stays linear across columns: fractions that sum to 1
    in every cell still do (the electroneutral solver's constraint). Each new cell gets the
    profile's mean over it. ``sum(h_new u_new) = sum(h_old u_old)`` up to round-off; onto the
    same cells nothing changes; second order where the profiles are smooth and not at an
    extremum. Both meshes span the same interval.
    """
    f = np.asarray(faces_old, float)
    g = np.asarray(faces_new, float)
    u = np.asarray(u_old, float)
    h = np.diff(f)
    xc = 0.5 * (f[1:] + f[:-1])
    extra = (1,) * (u.ndim - 1)
    slope = np.zeros_like(u)
    if len(h) > 2:
        dl = (u[1:-1] - u[:-2]) / (xc[1:-1] - xc[:-2]).reshape((-1,) + extra)
        dr = (u[2:] - u[1:-1]) / (xc[2:] - xc[1:-1]).reshape((-1,) + extra)
        central = (u[2:] - u[:-2]) / (xc[2:] - xc[:-2]).reshape((-1,) + extra)
        mm = np.where(dl * dr > 0, np.sign(dl) * np.minimum(np.abs(dl), np.abs(dr)), 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(central != 0, mm / central, 1.0)
        phi = np.clip(ratio.reshape(len(h) - 2, -1).min(axis=1), 0.0, 1.0)
        slope[1:-1] = phi.reshape((-1,) + extra) * central
    F = np.concatenate([np.zeros((1,) + u.shape[1:]),
                        np.cumsum(u * h.reshape((-1,) + extra), axis=0)], axis=0)

    def cumulative(x):
        i = np.clip(np.searchsorted(f, x, side="right") - 1, 0, len(h) - 1)
        a = np.clip(x - f[i], 0.0, h[i]).reshape((-1,) + extra)
        lo = (f[i] - xc[i]).reshape((-1,) + extra)
        return F[i] + u[i] * a + 0.5 * slope[i] * ((lo + a) ** 2 - lo ** 2)

    gg = np.concatenate(([f[0]], g[1:-1], [f[-1]]))
    return np.diff(cumulative(gg), axis=0) / np.diff(g).reshape((-1,) + extra)
