"""The frozen native plateau of a KMC CAIT run, and the mobility ratio that should cause it.

Added to ``kmc.nc`` by ``cait kmc run`` (docs/plateau.md):

* ``front_position(replica, time)`` and ``plateau(replica, time)``: the one front and plateau
  metric of :mod:`compare.workflows.profile_metrics` (length-weighted median of the native
  fraction over 0.25-0.75 x front, KMC layers weighted by their overlap), per replica;
  ``plateau_mean(time)``, ``plateau_sem(time)`` over replicas;
* attrs ``plateau_level``, ``plateau_sem`` at the last output time, and ``plateau_change``,
  ``plateau_change_sem``: the change of the replica-mean plateau over the last third of the
  run (frozen: ``|change| < change_sem``, attr ``plateau_frozen``);
* attrs ``D_native_bulk_cm2_s`` (the run's own ohmic back current, as ``cait compare``
  measures it; with a moving back, where that is not possible, the natives' equilibrium D_eff
  at x = 1 from long blocks, ``D_native_bulk_source``), ``D_foreign_eff_cm2_s`` (an
  equilibrium run of the pure foreign species on the same landscape, x = 0) and their ratio
  ``D_ratio_native_over_foreign`` with its SE.
"""
from __future__ import annotations

import math

import numpy as np

from compare.workflows.profile_metrics import FRONT_LEVEL, front_and_plateau_of

FROZEN_FRACTION = 1.0 / 3.0   # the plateau must not move over this last fraction of the run
RATIO_BLOCKS = 200            # blocks of the foreign D_eff measurement (SE ~ 1/sqrt(blocks))
NATIVE_BLOCKS = 40            # native D_eff with a moving back: blocks ...
NATIVE_BLOCK_FACTOR = 40      # ... of this many x eq_events_per_block events (long blocks)


def _per_replica(ds):
    c = ds["concentration"]
    if "replica" not in c.dims:
        c = c.expand_dims(replica=[0])
    return c.transpose("replica", "species", "time", "depth")


def plateau_series(ds, native: str):
    """Front [nm] and plateau per replica and output time, arrays of shape (n_replica, n_time)."""
    c = _per_replica(ds)
    a = float(ds.attrs["a_nm"])
    depth = np.asarray(ds.depth.values, float)
    edges = np.concatenate(([0.0], depth + 0.5 * a))
    nat = c.sel(species=native).values
    foreign = c.drop_sel(species=native).sum("species").values
    n_rep, n_t = nat.shape[0], nat.shape[1]
    front = np.zeros((n_rep, n_t))
    plateau = np.full((n_rep, n_t), math.nan)
    for r in range(n_rep):
        for k in range(n_t):
            front[r, k], plateau[r, k] = front_and_plateau_of(depth, nat[r, k], foreign[r, k],
                                                              edges=edges)
    return front, plateau


def _mean_sem(x, axis=0):
    x = np.asarray(x, float)
    n = np.sum(np.isfinite(x), axis=axis)
    mean = np.nanmean(x, axis=axis) if np.any(n) else np.full(x.shape[1 - axis], math.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        sem = np.where(n > 1, np.nanstd(x, axis=axis, ddof=1) / np.sqrt(np.maximum(n, 1)), np.nan)
    return mean, sem


def add_plateau(ds, native: str):
    """``ds`` with the plateau variables and attrs (module docstring); returns ``ds``."""
    import warnings

    front, plateau = plateau_series(ds, native)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # all-NaN times before a front exists
        mean, sem = _mean_sem(plateau)
        fmean, fsem = _mean_sem(front)
    rep_dims = ("replica", "time") if "replica" in ds.dims else ("time",)
    squeeze = (lambda x: x) if "replica" in ds.dims else (lambda x: x[0])
    ds["front_position"] = (rep_dims, squeeze(front), {
        "units": "nm", "long_name": f"foreign front ({FRONT_LEVEL:g} x reference level)"})
    ds["plateau"] = (rep_dims, squeeze(plateau), {
        "units": "1", "long_name": "native plateau: length-weighted median of the native "
                                   "fraction over 0.25-0.75 x front"})
    ds["plateau_mean"] = (("time",), mean, {"units": "1", "long_name": "native plateau, replica mean"})
    ds["plateau_sem"] = (("time",), sem, {"units": "1", "long_name": "native plateau, SE over replicas"})
    ds["front_position_mean"] = (("time",), fmean, {"units": "nm", "long_name": "foreign front, replica mean"})
    t = np.asarray(ds.time.values, float)
    ds.attrs["plateau_level"] = float(mean[-1]) if mean.size else math.nan
    ds.attrs["plateau_sem"] = float(sem[-1]) if sem.size else math.nan
    ds.attrs["front_position_nm"] = float(fmean[-1]) if fmean.size else math.nan
    change, change_sem = plateau_change(t, plateau)
    ds.attrs["plateau_change"] = change
    ds.attrs["plateau_change_sem"] = change_sem
    ds.attrs["plateau_frozen"] = int(np.isfinite(change) and np.isfinite(change_sem)
                                     and abs(change) < change_sem)
    return ds


def plateau_change(t, plateau):
    """Change of the replica-mean plateau over the last third of the run and its SE.

    The change is the slope of a straight line fitted per replica to the plateau over
    ``t >= (1 - FROZEN_FRACTION) t_end`` times that window's length; SE over replicas (NaN for
    one replica or fewer than 3 times in the window)."""
    t = np.asarray(t, float)
    if t.size < 3:
        return math.nan, math.nan
    sel = t >= t[-1] - FROZEN_FRACTION * (t[-1] - t[0])
    if sel.sum() < 3:
        return math.nan, math.nan
    tw = t[sel]
    slopes = []
    for row in np.atleast_2d(plateau):
        y = row[sel]
        ok = np.isfinite(y)
        if ok.sum() >= 3:
            slopes.append(np.polyfit(tw[ok], y[ok], 1)[0])
    if not slopes:
        return math.nan, math.nan
    span = tw[-1] - tw[0]
    s = np.asarray(slopes) * span
    sem = float(np.std(s, ddof=1) / np.sqrt(s.size)) if s.size > 1 else math.nan
    return float(np.mean(s)), sem


def _equilibrium_d_eff(cfg, x, species, n_blocks, events_per_block, seed, stop=None):
    """D_eff [cm^2/s] of `species` at composition `x` on the input's landscape (``[kmc]
    eq_size``^3 periodic lattice): mean and SE over the blocks; NaN with fewer than 2."""
    from compare import scenario
    from kmc import equilibrium as eqm

    k = cfg.kmc
    opt = eqm.EquilibriumOptions(n_blocks=int(n_blocks), events_per_block=int(events_per_block),
                                 n_equilibration_events=int(k.eq_equilibration_events),
                                 chunk_events=int(k.chunk_events))
    s = eqm.measure(scenario.kmc_equilibrium_params(cfg), float(x), int(seed), opt, stop=stop)
    d = s["D_eff"].sel(species=species).values      # cm^2/s
    d = d[np.isfinite(d)]
    if d.size < 2:
        return math.nan, math.nan
    return float(np.mean(d)), float(np.std(d, ddof=1) / np.sqrt(d.size))


def foreign_d_eff(cfg, seed: int, stop=None):
    """D_eff [cm^2/s] of the first foreign species alone (x = 0), at least ``RATIO_BLOCKS``
    blocks of ``eq_events_per_block`` events (value, SE over blocks). The collective D_eff of a
    block is one sample of one summed displacement: its SE falls as 1/sqrt(blocks) only
    (20 blocks: ~20 %); 200 blocks give ~7 % for ~1e7 foreign hops."""
    k = cfg.kmc
    return _equilibrium_d_eff(cfg, 0.0, cfg.species[1].name, max(int(k.eq_blocks), RATIO_BLOCKS),
                              int(k.eq_events_per_block), seed, stop)


def native_d_eff(cfg, seed: int, stop=None):
    """D_eff [cm^2/s] of the natives alone (x = 1) from long blocks: ``NATIVE_BLOCKS`` blocks of
    ``NATIVE_BLOCK_FACTOR x eq_events_per_block`` events (value, SE over blocks). The
    short-block D is inflated by the rattling: on the plateau landscape 4.95, 4.07, 3.42e-14
    cm^2/s at 75, 743, 2974 hops per ion (docs/plateau.md)."""
    return _equilibrium_d_eff(cfg, 1.0, cfg.native.name, NATIVE_BLOCKS,
                              NATIVE_BLOCK_FACTOR * int(cfg.kmc.eq_events_per_block), seed, stop)


def add_mobility_ratio(ds, cfg, seed: int):
    """``ds`` with the attrs ``D_native_bulk_cm2_s``, ``D_foreign_eff_cm2_s``,
    ``D_ratio_native_over_foreign`` and their SEs (module docstring); returns ``ds``.

    With a moving back the back current gives no bulk field (``comparison.MOVING_BACK_NOTE``):
    the native D is then :func:`native_d_eff` (long equilibrium blocks, x = 1), said in
    ``D_native_bulk_source`` and ``D_ratio_note``."""
    from compare.workflows.comparison import MOVING_BACK_NOTE, NoBulkField, d_bulk_from_current

    source = "back current"
    try:
        with np.errstate(divide="ignore", invalid="ignore"):
            dn, dn_sem = d_bulk_from_current(ds, cfg)   # NaN when the run moved no native charge
    except NoBulkField:
        dn, dn_sem = native_d_eff(cfg, seed)
        source = f"equilibrium x = 1, {NATIVE_BLOCK_FACTOR} x eq_events_per_block per block"
        ds.attrs["D_ratio_note"] = MOVING_BACK_NOTE
    ds.attrs["D_native_bulk_source"] = source
    df, df_sem = foreign_d_eff(cfg, seed)
    r = dn / df if df > 0 and np.isfinite(dn) else math.nan
    rel = math.sqrt(sum((s / v) ** 2 for v, s in ((dn, dn_sem), (df, df_sem))
                        if np.isfinite(s) and v))
    ds.attrs.update(D_native_bulk_cm2_s=dn, D_native_bulk_sem_cm2_s=dn_sem,
                    D_foreign_eff_cm2_s=df, D_foreign_eff_sem_cm2_s=df_sem,
                    D_ratio_native_over_foreign=r, D_ratio_sem=abs(r) * rel)
    return ds
