"""Metrics of one depth profile, shared by every workflow that compares or benchmarks profiles:
front position, native plateau, foreign inventory, L2 distance, layer averages.

Depths in nm, concentrations as fractions of n_bulk.
"""
from __future__ import annotations

import math

import numpy as np

PLATEAU_WINDOW = (0.25, 0.75)  # native plateau: median over [0.25, 0.75] x front position
FRONT_LEVEL = 0.5  # front: foreign fraction crosses FRONT_LEVEL x its reference level
SURFACE_SKIP_NM = 0.5  # reference level of the front ignores the surface layer (double layer)


def front_position(depth, foreign, level):
    """Deepest depth where ``foreign`` falls through ``level`` (linear interpolation).

    Parameters
    ----------
    depth : ndarray of float, shape (n,), nm, increasing
    foreign : ndarray of float, shape (n,), fraction of n_bulk
    level : float

    Returns
    -------
    float
        Depth [nm]; 0 when no point reaches ``level``, NaN for NaN input.
    """
    depth = np.asarray(depth, float)
    c = np.asarray(foreign, float)
    if not np.isfinite(c).all():
        return math.nan
    above = np.flatnonzero(c >= level)
    if above.size == 0:
        return 0.0
    k = above[-1]
    if k == c.size - 1:
        return float(depth[-1])
    # between k (>= level) and k + 1 (< level)
    w = (c[k] - level) / (c[k] - c[k + 1])
    return float(depth[k] + w * (depth[k + 1] - depth[k]))


def front_reference(depth, foreign, skip_nm=SURFACE_SKIP_NM):
    """Reference foreign level: the maximum of the profile below ``skip_nm`` (fraction)."""
    depth = np.asarray(depth, float)
    c = np.asarray(foreign, float)
    sel = depth >= skip_nm
    if not sel.any():
        sel = np.ones_like(sel)
    return float(np.nanmax(c[sel])) if np.isfinite(c[sel]).any() else math.nan


RESAMPLE_NM = 0.1  # point profiles (NPP nodes) are resampled this finely for the plateau


def weighted_median(values, weights) -> float:
    """Median of `values` with non-negative `weights` (the midpoint where the cumulative weight
    crosses one half exactly)."""
    v = np.asarray(values, float)
    w = np.asarray(weights, float)
    keep = (w > 0) & np.isfinite(v)
    if not keep.any():
        return math.nan
    order = np.argsort(v[keep], kind="stable")
    v, w = v[keep][order], w[keep][order]
    c = np.cumsum(w)
    half = 0.5 * c[-1]
    k = int(np.searchsorted(c, half))
    if np.isclose(c[k], half, rtol=1e-12, atol=0.0) and k + 1 < v.size:
        return float(0.5 * (v[k] + v[k + 1]))
    return float(v[k])


def plateau_level(depth, native, front_nm, window=PLATEAU_WINDOW, edges=None):
    """The native plateau: the length-weighted median of the native fraction over depths in
    ``[window[0], window[1]] * front_nm`` (docs/physics.md §8).

    Parameters
    ----------
    depth, native : ndarray of float, shape (n,)
        Depths [nm] and native fractions.
    edges : ndarray of float, shape (n + 1,), optional
        The profile is constant on the cells ``[edges[i], edges[i+1]]`` (KMC layers): each
        value weighs its overlap with the window. Without edges the profile is linear between
        the points (NPP nodes) and is resampled on a uniform grid of ``RESAMPLE_NM`` (at least
        21 points in the window).

    Returns
    -------
    float
        NaN when ``front_nm`` is 0 or NaN.
    """
    depth = np.asarray(depth, float)
    native = np.asarray(native, float)
    if not (np.isfinite(front_nm) and front_nm > 0):
        return math.nan
    lo, hi = window[0] * front_nm, window[1] * front_nm
    if edges is not None:
        e = np.asarray(edges, float)
        overlap = np.clip(np.minimum(e[1:], hi) - np.maximum(e[:-1], lo), 0.0, None)
        return weighted_median(native, overlap)
    n = max(21, int(np.ceil((hi - lo) / RESAMPLE_NM)) + 1)
    x = np.linspace(lo, hi, n)
    return weighted_median(np.interp(x, depth, native), np.ones(n))


def inventory(depth_edges, profile):
    """Areal inventory ``integral c dx`` [nm] of layer values on layers with ``depth_edges``."""
    return float(np.sum(np.diff(depth_edges) * np.asarray(profile, float)))


def l2_distance(a, b, weights=None):
    """Root-mean-square difference of two profiles on the same layers (fractions)."""
    d = np.asarray(a, float) - np.asarray(b, float)
    w = np.ones_like(d) if weights is None else np.asarray(weights, float)
    return float(np.sqrt(np.sum(w * d * d) / np.sum(w)))


def layer_average(x_nm, c, edges_nm, n_sub=16):
    """Average of a piecewise-linear profile ``c(x_nm)`` over each layer ``[edges[l], edges[l+1]]``.

    The NPP solution lives on a graded mesh; the KMC records layer counts, so the NPP profile is
    averaged over the same layers before any comparison (midpoint rule with ``n_sub`` points).
    """
    edges = np.asarray(edges_nm, float)
    t = (np.arange(n_sub) + 0.5) / n_sub
    pts = edges[:-1, None] + t[None, :] * np.diff(edges)[:, None]
    return np.interp(pts, np.asarray(x_nm, float), np.asarray(c, float)).mean(axis=1)


METRICS = {
    "front_position": "deepest depth where the foreign fraction falls through 0.5 x its maximum "
                      "below 0.5 nm [nm]",
    "plateau": "length-weighted median of the native fraction over [0.25, 0.75] x front "
               "position [1]",
    "inventory": "foreign areal inventory, integral of the foreign fraction over depth [nm]",
    "l2": "rms difference KMC - NPP over all layers [1]",
    "l2_sem": "rms of (KMC - NPP) / KMC standard error over all layers [1]",
}


def profile_metrics(depth, edges, native, foreign, level=None):
    """Front, plateau and inventory of one profile (layers); ``level`` default from the profile.

    Without foreign ions (a reference level of 0) there is no front yet: front 0, plateau NaN.
    """
    if level is None:
        level = FRONT_LEVEL * front_reference(depth, foreign)
    front = 0.0 if level == 0 else front_position(depth, foreign, level)
    return {"front_position": front, "plateau": plateau_level(depth, native, front, edges=edges),
            "inventory": inventory(edges, foreign), "level": level}


def front_and_plateau_of(depth, native, foreign, edges=None):
    """Front position [nm] and native plateau of one profile (points, or layers with `edges`);
    no foreign ions (reference level 0): front 0, plateau NaN."""
    level = FRONT_LEVEL * front_reference(depth, foreign)
    front = 0.0 if level == 0 else front_position(depth, foreign, level)
    return front, plateau_level(depth, native, front, edges=edges)


def front_and_plateau(ds, native: str, time_index: int = -1):
    """Front position [nm] and native plateau of a dataset with the output contract
    (``concentration(species, time, depth)``) at one output time; all foreign species together."""
    c = ds.concentration.isel(time=time_index)
    depth = np.asarray(ds.depth.values, float)
    foreign = c.drop_sel(species=native).sum("species").values
    return front_and_plateau_of(depth, c.sel(species=native).values, foreign)
