"""Transport coefficients from unwrapped displacements: tracer D*, Onsager L, Haven ratio, D_eff.

Every estimator works on *independent samples*: non-overlapping time blocks of one trajectory
after equilibration, optionally pooled over independent replicas (both are independent draws of
the same increment for a stationary Markov process once a block is longer than the correlation
time). The value is the sample mean, the error bar the standard error of that mean; ratios
(Haven) use a leave-one-out jackknife over the same samples.

Units: positions in m, times in s, volume in m^3, temperature in K on input. Outputs: D in
cm^2/s, L in SI, 1/(J m s) (number flux density per unit force per particle: m^-2 s^-1 N^-1).

Definitions (docs/physics.md §6), for species s with N_s ions in volume V over a block of length t:

* tracer  ``D*_s = < |dr_i|^2 >_{i in s} / (6 t)``
* Onsager ``L_ss' = < dR_s . dR_s' > / (6 V kT t)`` with ``dR_s = sum_{i in s} dr_i``
* ``D_eff,s = kT L_ss / n_s`` with ``n_s = N_s / V`` (the "collective" or "sigma" D of s)
* Haven   ``H_s = D*_s / D_eff,s``
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.constants as sc
import xarray as xr

M2_TO_CM2 = 1.0e4  # m^2/s -> cm^2/s


@dataclass(frozen=True)
class Blocks:
    """Displacements over independent time blocks.

    Attributes
    ----------
    dx : ndarray of float64, shape (n_samples, n_ions, 3)
        Unwrapped displacement of each ion over each block, m.
    dt : ndarray of float64, shape (n_samples,)
        Block length, s.
    start : ndarray of int64, shape (n_samples,)
        Index of the first recorded time of each block (into the time axis).
    stop : ndarray of int64, shape (n_samples,)
        Index of the last recorded time of each block.
    replica : ndarray of int64, shape (n_samples,)
        Replica each sample comes from (0 when there is no replica axis).
    """

    dx: np.ndarray
    dt: np.ndarray
    start: np.ndarray
    stop: np.ndarray
    replica: np.ndarray

    @property
    def n_samples(self) -> int:
        return int(self.dt.shape[0])


def block_boundaries(times_s, n_blocks: int, t_equil_s: float = 0.0) -> np.ndarray:
    """Indices of the block edges on a recorded time axis.

    The recorded times from the first one ``>= t_equil_s`` to the last are split into
    ``n_blocks`` consecutive, non-overlapping windows of (as nearly as the grid allows) equal
    numbers of recorded intervals.

    Parameters
    ----------
    times_s : array_like of float64, shape (n_times,)
        Recording times, strictly increasing, s.
    n_blocks : int
        Number of blocks, >= 1.
    t_equil_s : float
        Equilibration time discarded at the start, s.

    Returns
    -------
    ndarray of int64, shape (n_blocks + 1,)
        Edges; block b spans ``times[edges[b]] .. times[edges[b + 1]]``.
    """
    t = np.asarray(times_s, dtype=float)
    if t.ndim != 1 or t.size < 2:
        raise ValueError(f"`times_s` must be 1-D with >= 2 entries, got shape {t.shape}")
    if np.any(np.diff(t) <= 0):
        raise ValueError("`times_s` must be strictly increasing")
    if int(n_blocks) < 1:
        raise ValueError(f"`n_blocks` must be >= 1, got {n_blocks}")
    i0 = int(np.searchsorted(t, t_equil_s, side="left"))
    n_intervals = t.size - 1 - i0
    if n_intervals < n_blocks:
        raise ValueError(
            f"only {max(n_intervals, 0)} recorded intervals after t_equil_s = {t_equil_s:g} s, "
            f"cannot form n_blocks = {n_blocks} blocks; record more often or use fewer blocks")
    return i0 + np.round(np.linspace(0, n_intervals, int(n_blocks) + 1)).astype(np.int64)


def make_blocks(positions_m, times_s, n_blocks: int, t_equil_s: float = 0.0) -> Blocks:
    """Cut unwrapped trajectories into independent blocks.

    Parameters
    ----------
    positions_m : array_like of float64, shape (n_times, n_ions, 3) or (n_replicas, n_times, n_ions, 3)
        Unwrapped positions (or displacements from any fixed origin) at the recording times, m.
        With a leading replica axis the blocks of all replicas are pooled.
    times_s : array_like of float64, shape (n_times,)
        Recording times (common to all replicas), s.
    n_blocks : int
        Blocks per replica.
    t_equil_s : float
        Equilibration time discarded at the start of every replica, s.
    """
    pos = np.asarray(positions_m, dtype=float)
    if pos.ndim == 3:
        pos = pos[None]
    if pos.ndim != 4 or pos.shape[-1] != 3:
        raise ValueError(
            "`positions_m` must have shape (n_times, n_ions, 3) or (n_replicas, n_times, n_ions, 3), "
            f"got {np.shape(positions_m)}")
    t = np.asarray(times_s, dtype=float)
    if pos.shape[1] != t.size:
        raise ValueError(f"`positions_m` has {pos.shape[1]} times but `times_s` has {t.size}")
    edges = block_boundaries(t, n_blocks, t_equil_s)
    start, stop = edges[:-1], edges[1:]
    n_rep = pos.shape[0]
    dx = (pos[:, stop] - pos[:, start]).reshape(n_rep * start.size, pos.shape[2], 3)
    return Blocks(dx=dx, dt=np.tile(t[stop] - t[start], n_rep), start=np.tile(start, n_rep),
                  stop=np.tile(stop, n_rep), replica=np.repeat(np.arange(n_rep), start.size))


def _species_index(species_of_ion, n_ions: int, n_species: int | None) -> tuple[np.ndarray, int]:
    sp = np.asarray(species_of_ion)
    if sp.shape != (n_ions,):
        raise ValueError(f"`species_of_ion` must have shape ({n_ions},), got {sp.shape}")
    sp = sp.astype(np.int64)
    if n_species is None:
        n_species = int(sp.max()) + 1 if sp.size else 0
    if sp.size and (sp.min() < 0 or sp.max() >= n_species):
        raise ValueError(f"`species_of_ion` entries must lie in [0, {n_species}), got "
                         f"[{sp.min()}, {sp.max()}]")
    return sp, n_species


def _safe_divide(num, den):
    """num / den with NaN where den == 0, without floating-point warnings."""
    num, den = np.broadcast_arrays(np.asarray(num, float), np.asarray(den, float))
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def tracer_samples(dx, dt, species_of_ion, n_species: int | None = None) -> np.ndarray:
    """Tracer diffusion coefficient of each species in each block.

    Parameters
    ----------
    dx : array_like of float64, shape (n_samples, n_ions, 3)
        Displacement of each ion over each block, m.
    dt : array_like of float64, shape (n_samples,)
        Block lengths, s.
    species_of_ion : array_like of int, shape (n_ions,)
        Species index of each ion.

    Returns
    -------
    ndarray of float64, shape (n_samples, n_species)
        ``<|dr|^2>/(6 dt)`` per species, m^2/s; NaN for a species without ions.
    """
    dx = np.asarray(dx, dtype=float)
    sp, n_species = _species_index(species_of_ion, dx.shape[1], n_species)
    r2 = np.einsum("bik,bik->bi", dx, dx)
    counts = np.bincount(sp, minlength=n_species).astype(float)
    sums = np.stack([np.bincount(sp, weights=row, minlength=n_species) for row in r2])
    return _safe_divide(sums, 6.0 * np.asarray(dt, float)[:, None] * counts[None, :])


def collective_displacements(dx, species_of_ion, n_species: int | None = None) -> np.ndarray:
    """Sum of the displacements of all ions of each species.

    Returns
    -------
    ndarray of float64, shape (n_samples, n_species, 3)
        ``dR_s`` per block, m.
    """
    dx = np.asarray(dx, dtype=float)
    sp, n_species = _species_index(species_of_ion, dx.shape[1], n_species)
    onehot = np.zeros((dx.shape[1], n_species))
    onehot[np.arange(sp.size), sp] = 1.0
    return np.einsum("bik,is->bsk", dx, onehot)


def onsager_samples(dR, dt, volume_m3: float, temperature_K: float) -> np.ndarray:
    """Onsager coefficients in each block from collective displacements.

    Parameters
    ----------
    dR : array_like of float64, shape (n_samples, n_species, 3)
        Collective displacement per species and block, m.
    dt : array_like of float64, shape (n_samples,)
        Block lengths, s.
    volume_m3 : float
        Volume of the simulation cell, m^3.
    temperature_K : float
        Temperature, K.

    Returns
    -------
    ndarray of float64, shape (n_samples, n_species, n_species)
        ``dR_s . dR_s' / (6 V kT dt)``, 1/(J m s).
    """
    if not volume_m3 > 0 or not temperature_K > 0:
        raise ValueError(f"volume and temperature must be > 0, got {volume_m3}, {temperature_K}")
    dR = np.asarray(dR, dtype=float)
    kT = sc.k * temperature_K
    return np.einsum("bsk,btk->bst", dR, dR) / (6.0 * volume_m3 * kT * np.asarray(dt, float)[:, None, None])


def mean_sem(samples, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Sample mean and its standard error (ddof = 1) along ``axis``; SEM is NaN for one sample."""
    s = np.asarray(samples, dtype=float)
    n = s.shape[axis]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.mean(s, axis=axis) if n > 0 else np.full(np.delete(s.shape, axis), np.nan)
        if n < 2:
            return mean, np.full(np.shape(mean), np.nan)
        sem = np.std(s, axis=axis, ddof=1) / np.sqrt(n)
    return mean, sem


def jackknife(func, *samples) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-out jackknife of a function of sample means.

    Parameters
    ----------
    func : callable
        ``func(*means) -> ndarray``; called with the mean of each ``samples`` array over axis 0.
    *samples : ndarray, shape (n_samples, ...)
        Independent samples (same ``n_samples`` for every array).

    Returns
    -------
    value, sem : ndarray
        ``func`` of the full means, and the jackknife standard error (NaN for < 2 samples).
    """
    arrs = [np.asarray(s, dtype=float) for s in samples]
    n = arrs[0].shape[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.asarray(func(*[a.mean(axis=0) for a in arrs]))
        if n < 2:
            return value, np.full(value.shape, np.nan)
        totals = [a.sum(axis=0) for a in arrs]
        loo = np.stack([np.asarray(func(*[(tot - a[k]) / (n - 1) for tot, a in zip(totals, arrs)]))
                        for k in range(n)])
        sem = np.sqrt((n - 1) / n * np.sum((loo - loo.mean(axis=0)) ** 2, axis=0))
    return value, sem


def msd_fit_samples(positions_m, times_s, edges, species_of_ion, n_species: int | None = None,
                    fit_window: tuple[float, float] = (0.2, 1.0)) -> np.ndarray:
    """Tracer D per block from a least-squares line through the block's MSD(lag).

    Within each block the MSD is taken from the block start at every recorded time; a straight
    line with free intercept (absorbing short-time, non-diffusive motion) is fitted over lags in
    ``fit_window`` (fractions of the block length), and ``D = slope / 6``.

    Parameters
    ----------
    positions_m : array_like of float64, shape (n_times, n_ions, 3)
        Unwrapped positions, m.
    times_s : array_like of float64, shape (n_times,)
        Recording times, s.
    edges : array_like of int, shape (n_blocks + 1,)
        Block edges from :func:`block_boundaries`.
    fit_window : (float, float)
        Lag window as fractions of the block length, ``0 <= lo < hi <= 1``.

    Returns
    -------
    ndarray of float64, shape (n_blocks, n_species)
        D per block and species, m^2/s (NaN where fewer than 2 lags fall in the window or a
        species has no ions).
    """
    lo, hi = fit_window
    if not 0.0 <= lo < hi <= 1.0:
        raise ValueError(f"`fit_window` must satisfy 0 <= lo < hi <= 1, got {fit_window}")
    pos = np.asarray(positions_m, dtype=float)
    t = np.asarray(times_s, dtype=float)
    sp, n_species = _species_index(species_of_ion, pos.shape[1], n_species)
    counts = np.bincount(sp, minlength=n_species).astype(float)
    edges = np.asarray(edges, dtype=np.int64)
    out = np.full((edges.size - 1, n_species), np.nan)
    for b, (i0, i1) in enumerate(zip(edges[:-1], edges[1:])):
        lag = t[i0:i1 + 1] - t[i0]
        sel = (lag >= lo * lag[-1]) & (lag <= hi * lag[-1]) & (lag > 0)
        if np.count_nonzero(sel) < 2:
            continue
        d = pos[i0:i1 + 1][sel] - pos[i0]
        r2 = np.einsum("tik,tik->ti", d, d)
        msd = _safe_divide(np.stack([np.bincount(sp, weights=row, minlength=n_species) for row in r2]),
                           counts[None, :])
        x = lag[sel] - lag[sel].mean()
        slope = (x[:, None] * (msd - msd.mean(axis=0))).sum(axis=0) / np.sum(x * x)
        out[b] = slope / 6.0
    return out


TRACER_METHODS = ("blocks", "fit")

_ATTRS = {
    "D_star": ("cm^2/s", "tracer diffusion coefficient"),
    "D_eff": ("cm^2/s", "effective (collective) diffusion coefficient kT L_ss/n_s"),
    "L": ("1/(J m s)", "Onsager coefficient"),
    "haven": ("1", "Haven ratio D_star/D_eff"),
}


def block_samples(positions_m, times_s, species_of_ion, species_names, volume_m3: float,
                  temperature_K: float, *, n_blocks: int = 10, t_equil_s: float = 0.0,
                  tracer_method: str = "blocks",
                  fit_window: tuple[float, float] = (0.2, 1.0)) -> xr.Dataset:
    """Per-block samples of D*, L and D_eff (the independent draws behind every error bar).

    Parameters are those of :func:`transport_coefficients`.

    Returns
    -------
    xarray.Dataset
        ``D_star(block, species)``, ``D_eff(block, species)`` [cm^2/s], ``L(block, species,
        species2)`` [1/(J m s)], ``block_length(block)`` [s], ``n_ions(species)``. Samples of
        several runs can be concatenated along ``block`` and passed to :func:`summarize`.
    """
    if tracer_method not in TRACER_METHODS:
        raise ValueError(f"unknown tracer_method {tracer_method!r}; legal: {', '.join(TRACER_METHODS)}")
    names = [str(n) for n in species_names]
    n_species = len(names)
    blocks = make_blocks(positions_m, times_s, n_blocks, t_equil_s)
    sp, _ = _species_index(species_of_ion, blocks.dx.shape[1], n_species)
    if tracer_method == "blocks":
        d_star = tracer_samples(blocks.dx, blocks.dt, sp, n_species)
    else:
        if np.ndim(positions_m) != 3:
            raise ValueError("tracer_method='fit' needs positions of shape (n_times, n_ions, 3)")
        edges = block_boundaries(times_s, n_blocks, t_equil_s)
        d_star = msd_fit_samples(positions_m, times_s, edges, sp, n_species, fit_window)
    dR = collective_displacements(blocks.dx, sp, n_species)
    L = onsager_samples(dR, blocks.dt, volume_m3, temperature_K)
    kT = sc.k * temperature_K
    counts = np.bincount(sp, minlength=n_species)
    d_eff = _safe_divide(kT * np.diagonal(L, axis1=1, axis2=2), counts[None, :] / volume_m3)

    def var(name, dims, values):
        units, long = _ATTRS[name]
        return dims, values, {"units": units, "long_name": long}

    n_rep = int(blocks.replica.max()) + 1
    return xr.Dataset(
        {"D_star": var("D_star", ("block", "species"), d_star * M2_TO_CM2),
         "D_eff": var("D_eff", ("block", "species"), d_eff * M2_TO_CM2),
         "L": var("L", ("block", "species", "species2"), L),
         "block_length": ("block", blocks.dt, {"units": "s", "long_name": "block length"}),
         "n_ions": ("species", counts, {"units": "1", "long_name": "ions per species"})},
        coords={"species": names, "species2": names},
        attrs={"error_source": "blocks" if n_rep == 1 else "blocks x replicas",
               "n_replicas": n_rep, "tracer_method": tracer_method,
               "temperature_K": float(temperature_K), "volume_m3": float(volume_m3)})


def summarize(samples: xr.Dataset) -> xr.Dataset:
    """Mean and standard error over the ``block`` dim of :func:`block_samples` output.

    Returns
    -------
    xarray.Dataset
        ``D_star``, ``D_eff``, ``L``, ``haven`` and their ``<name>_sem`` (sample SEM over
        blocks; jackknife for ``haven``), ``n_ions``; attrs ``n_samples``, ``error_source``,
        ``block_length_s``.
    """
    out = {}
    for name in ("D_star", "D_eff", "L"):
        da = samples[name]
        other = [d for d in da.dims if d != "block"]
        m, e = mean_sem(da.transpose("block", *other).values)
        units, long = _ATTRS[name]
        out[name] = (other, m, {"units": units, "long_name": long})
        out[f"{name}_sem"] = (other, e, {"units": units, "long_name": f"standard error of {name}"})
    h, h_sem = jackknife(_safe_divide, samples.D_star.transpose("block", "species").values,
                         samples.D_eff.transpose("block", "species").values)
    out["haven"] = ("species", h, {"units": "1", "long_name": _ATTRS["haven"][1]})
    out["haven_sem"] = ("species", h_sem, {"units": "1", "long_name": "jackknife standard error of haven"})
    out["n_ions"] = samples["n_ions"]
    attrs = dict(samples.attrs)
    attrs.update(n_samples=int(samples.sizes["block"]),
                 block_length_s=float(samples.block_length.mean()))
    if attrs.get("n_replicas", 1) > 1:
        attrs["error_source"] = f"blocks x replicas (pooled, {attrs['n_replicas']} replicas)"
    return xr.Dataset(out, coords={"species": samples.species.values,
                                   "species2": samples.species2.values}, attrs=attrs)


def transport_coefficients(positions_m, times_s, species_of_ion, species_names, volume_m3: float,
                           temperature_K: float, *, n_blocks: int = 10, t_equil_s: float = 0.0,
                           tracer_method: str = "blocks",
                           fit_window: tuple[float, float] = (0.2, 1.0)) -> xr.Dataset:
    """Tracer D*, Onsager L, D_eff and Haven ratio with standard errors from independent blocks.

    Parameters
    ----------
    positions_m : array_like of float64, shape (n_times, n_ions, 3) or (n_replicas, n_times, n_ions, 3)
        Unwrapped positions at the recording times, m. Blocks of all replicas are pooled.
    times_s : array_like of float64, shape (n_times,)
        Recording times, s.
    species_of_ion : array_like of int, shape (n_ions,)
        Species index of each ion (into ``species_names``); ions keep their species.
    species_names : sequence of str, length n_species
    volume_m3 : float
        Volume of the (each) simulation cell, m^3.
    temperature_K : float
    n_blocks : int
        Non-overlapping blocks per replica after ``t_equil_s``. Each block should be much longer
        than the correlation time of the collective motion, or the SEM is underestimated.
    t_equil_s : float
        Discarded equilibration time, s.
    tracer_method : {"blocks", "fit"}
        ``"blocks"``: D* from the block-end displacement; ``"fit"``: slope of the MSD within
        each block over ``fit_window`` (replica axis not supported).

    Returns
    -------
    xarray.Dataset
        ``D_star(species)``, ``D_eff(species)`` [cm^2/s], ``L(species, species2)`` [1/(J m s)],
        ``haven(species)`` [1], each with ``<name>_sem``; attrs ``n_samples``,
        ``error_source`` and ``block_length_s``.
    """
    return summarize(block_samples(positions_m, times_s, species_of_ion, species_names, volume_m3,
                                   temperature_K, n_blocks=n_blocks, t_equil_s=t_equil_s,
                                   tracer_method=tracer_method, fit_window=fit_window))
