"""Equilibrium transport at fixed composition: tracer D*, Onsager L, Haven ratio, D_eff vs x.

A fully periodic lattice without field holds ``n_ions = (1 - f_vac) n_sites`` ions (the
material's filling), ``round(x n_ions)`` native and the rest of species[1] (docs/physics.md §6).
After ``n_equilibration_events`` events the clock and displacements are reset and the run is
recorded at the ends of ``n_blocks`` equal time blocks; :mod:`kmc.analysis` turns every block
into one independent sample, and samples of all replicas are pooled (``error_source`` says so).

The block length is set in events: ``block_s = events_per_block / R`` with ``R`` the total event
rate after equilibration, measured on a probe run of the same seed (the equilibrated state is
reproduced exactly by the measuring run, since equilibration is deterministic given the seed).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import xarray as xr

from kmc import analysis
from kmc.engine import Simulation
from kmc.errors import KMCConfigError


@dataclass(frozen=True)
class EquilibriumOptions:
    """How to measure (all counts per composition and replica)."""

    n_blocks: int = 20                   # independent time blocks after equilibration
    events_per_block: int = 200_000      # expected events per block (sets the block length)
    n_equilibration_events: int = 200_000  # discarded events before the clock starts
    n_ions: int | None = None            # total ions (default: (1 - f_vac) n_sites)
    chunk_events: int = 1_000_000        # events between checks of the stop flag

    def __post_init__(self):
        for key in ("n_blocks", "events_per_block", "chunk_events"):
            if int(getattr(self, key)) < 1:
                raise KMCConfigError(f"`{key}` must be >= 1, got {getattr(self, key)}")
        if int(self.n_equilibration_events) < 0:
            raise KMCConfigError(f"`n_equilibration_events` must be >= 0, got "
                                 f"{self.n_equilibration_events}")


def equilibrium_params(params, x: float, options: EquilibriumOptions):
    """The engine parameters of one composition: periodic, no field, no histograms."""
    if not 0.0 <= x <= 1.0:
        raise KMCConfigError(f"composition x must be in [0, 1], got {x}")
    if x < 1.0 and len(params.species) < 2:
        raise KMCConfigError("composition x < 1 needs a foreign species (species[1])")
    return replace(params, geometry="periodic", composition_x=float(x), n_ions=options.n_ions,
                   electrostatics=False, periodic_field_V_per_m=0.0, phases=(),
                   record_histograms=True, record_ions=True, n_slabs=1)


def block_length_s(params, seed: int, options: EquilibriumOptions) -> float:
    """Block length from the total rate of the equilibrated probe run [s]."""
    probe = Simulation(replace(params, record_ions=False, output_times_s=(1.0,), duration_s=1.0), seed)
    if options.n_equilibration_events:
        probe.equilibrate(options.n_equilibration_events)
    rate = probe.total_rate()
    if not rate > 0:
        raise KMCConfigError("no event is possible in the equilibrium lattice (no ions or no "
                             "vacancies): choose a filling with both")
    return options.events_per_block / rate


def measure(params, x: float, seed: int, options: EquilibriumOptions = EquilibriumOptions(),
            stop=None, progress=None) -> xr.Dataset:
    """Block samples (see :func:`kmc.analysis.block_samples`) of one composition and seed.

    Parameters
    ----------
    params : kmc.engine.KMCParams
        Lattice, species (``species[0]`` native, ``species[1]`` the foreign species used),
        temperature; geometry, fields and records are overridden.
    x : float
        n_native / (n_native + n_foreign).
    seed : int
    stop : callable, optional
        Polled between chunks; when True the run ends early and the completed blocks are used
        (attrs ``status = "interrupted"``).
    progress : callable, optional
        ``progress(sim)`` between chunks.

    Returns
    -------
    xarray.Dataset
        ``D_star(block, species)``, ``D_eff(block, species)``, ``L(block, species, species2)``,
        ``block_length(block)``, ``n_ions(species)``; attrs ``x``, ``seed``, ``n_events``,
        ``status``.
    """
    p = equilibrium_params(params, x, options)
    tau = block_length_s(p, seed, options)
    times = tau * np.arange(options.n_blocks + 1)
    p = replace(p, output_times_s=tuple(times), duration_s=float(times[-1]))
    sim = Simulation(p, seed)
    if options.n_equilibration_events:
        sim.equilibrate(options.n_equilibration_events)
    status = "ok"
    while not sim.advance(options.chunk_events):
        if progress is not None:
            progress(sim)
        if stop is not None and stop():
            status = "interrupted"
            break
    ds = sim.to_dataset()
    n_rec = ds.sizes["time"]
    species = ds.ion_species.values
    ions = np.flatnonzero(species >= 0)
    names = [str(s) for s in ds.species.values]
    volume = sim.n_sites * sim.a_m ** 3
    if n_rec < 2:  # stopped before the first block ended: no sample
        samples = analysis.block_samples(np.zeros((2, ions.size, 3)), [0.0, 1.0], species[ions],
                                         names, volume, p.temperature_K, n_blocks=1).isel(block=slice(0, 0))
    else:
        pos_m = ds.ion_displacement.values[:, ions, :] * 1e-9
        samples = analysis.block_samples(pos_m, ds.time.values, species[ions], names, volume,
                                         p.temperature_K, n_blocks=n_rec - 1)
    n_blocks_done = max(n_rec - 1, 0)
    events = np.diff(ds["n_events"].values) if "n_events" in ds and n_rec > 1 else None
    hops = (float(np.mean(events)) if events is not None and events.size
            else float(options.events_per_block)) / max(ions.size, 1)
    samples.attrs.update(x=float(x), seed=int(seed), n_events=sim.n_events, status=status,
                         block_events_target=int(options.events_per_block))
    samples["hops_per_ion_per_block"] = ((), hops)
    # occupancy by site energy, summed over the block boundaries (the equilibrated states)
    if n_blocks_done > 0:
        occ = ds["occupancy_count"].isel(time=slice(1, None)).sum(("time", "slab"))
        samples["occupied_count"] = (("energy", "species"), occ.values.astype(np.int64))
        samples["site_count"] = (("energy", "species"),
                                 ds["site_count"].sum("slab").values.astype(np.int64))
        samples["n_states"] = ((), int(n_blocks_done))
        samples = samples.assign_coords(energy=ds["energy"].values)
    return samples


def equilibrium_replica(seed, replica, params, xs, options=EquilibriumOptions(), stop=None):
    """All compositions for one replica (top-level, so dask can ship it to a worker).

    Returns
    -------
    xarray.Dataset
        Block samples with a leading ``x`` dim (blocks of a composition stopped early are NaN);
        attrs ``status``, ``n_events`` (total).
    """
    out, status, n_events = [], "ok", 0
    for x in xs:
        if stop is not None and stop():
            status = "interrupted"
            break
        s = measure(params, x, seed, options, stop=stop)
        n_events += int(s.attrs["n_events"])
        if s.attrs["status"] != "ok":
            status = "interrupted"
        out.append(s.expand_dims(x=[float(x)]))
    if not out:
        raise KMCConfigError("interrupted before the first composition was measured")
    ds = xr.concat(out, dim="x", data_vars="all", coords="minimal", compat="override",
                   join="outer", combine_attrs="drop_conflicts")
    ds.attrs.update(status=status, n_events=n_events, seed=int(seed), replica=int(replica))
    return ds


def summarize_replicas(replicas) -> xr.Dataset:
    """Pool the blocks of all replicas per composition: ``D_star(species, x)``, ``L(species,
    species2, x)``, ``haven(species, x)``, ``D_eff(species, x)``, each with ``_sem``."""
    per_x = []
    xs = replicas[0].x.values
    for k, x in enumerate(xs):
        blocks = [r.isel(x=k).dropna("block", how="all", subset=["block_length"])
                  for r in replicas if k < r.sizes["x"]]
        pooled = xr.concat([b.drop_vars("x", errors="ignore") for b in blocks], dim="block",
                           data_vars="minimal", coords="minimal", compat="override",
                           combine_attrs="drop_conflicts")
        pooled.attrs["n_replicas"] = len(blocks)
        pooled.attrs["error_source"] = "blocks" if len(blocks) == 1 else "blocks x replicas"
        summary = analysis.summarize(pooled)
        summary = summary.merge(_block_records(pooled), combine_attrs="override")
        summary = summary.merge(_occupancy([r.isel(x=k) for r in replicas if k < r.sizes["x"]]),
                                combine_attrs="override")
        per_x.append(summary.expand_dims(x=[float(x)]))
    ds = xr.concat(per_x, dim="x", data_vars="all", coords="minimal", compat="override",
                   join="outer", combine_attrs="drop_conflicts")
    order = [d for d in ("species", "species2", "x", "sample", "energy")]
    for v in ds.data_vars:
        ds[v] = ds[v].transpose(*[d for d in order if d in ds[v].dims])
    ds["x"].attrs.update(units="1", long_name="n_native / (n_native + n_foreign)")
    ds.attrs["n_samples_per_x"] = np.array([int(sum(
        r.isel(x=k).block_length.notnull().sum() for r in replicas)) for k in range(xs.size)])
    ds.attrs["error_source"] = ("blocks" if len(replicas) == 1 else
                                f"blocks x replicas (pooled, {len(replicas)} replicas)")
    ds.attrs["n_replicas"] = len(replicas)
    return ds


def _block_records(pooled) -> xr.Dataset:
    """The pooled per-block samples of one composition (dim ``sample``: blocks x replicas)."""
    out = {}
    for name, long in (("D_star", "tracer D* of each block"),
                       ("D_eff", "D_eff = kT L_ss / n_s of each block")):
        da = pooled[name].transpose("block", "species")
        out[f"{name}_blocks"] = (("sample", "species"), da.values,
                                 {"units": da.attrs.get("units", "cm^2/s"), "long_name": long})
    out["block_length_s"] = (("sample",), pooled["block_length"].values,
                             {"units": "s", "long_name": "length of each block"})
    return xr.Dataset(out, coords={"species": pooled.species.values})


def _occupancy(per_replica) -> xr.Dataset:
    """Occupation probability of the sites per own-species energy bin, over the equilibrated
    states of all replicas (block boundaries), and the mean hops per ion per block."""
    have = [r for r in per_replica if "occupied_count" in r and np.isfinite(
        np.asarray(r["n_states"], dtype=float)).all()]
    hops = [float(r["hops_per_ion_per_block"]) for r in per_replica
            if "hops_per_ion_per_block" in r and np.isfinite(float(r["hops_per_ion_per_block"]))]
    out = {"hops_per_ion_per_block": ((), float(np.mean(hops)) if hops else np.nan,
                                      {"units": "1", "long_name": "mean hops per ion in one "
                                                                  "block (tracer estimator)"})}
    if not have:
        return xr.Dataset(out)
    occ = sum(np.nan_to_num(r["occupied_count"].values) for r in have)
    sites = sum(np.nan_to_num(r["site_count"].values) * float(r["n_states"]) for r in have)
    with np.errstate(invalid="ignore", divide="ignore"):
        prob = np.where(sites > 0, occ / np.where(sites > 0, sites, 1), np.nan)
    out["occupation"] = (("energy", "species"), prob,
                         {"units": "1", "long_name": "occupied fraction of the sites per "
                                                     "own-species energy bin (equilibrium)"})
    out["occupied_count"] = (("energy", "species"), occ,
                             {"units": "1", "long_name": "occupied sites summed over the "
                                                         "equilibrated states"})
    return xr.Dataset(out, coords={"energy": ("energy", have[0]["energy"].values,
                                              {"units": "eV", "long_name": "site energy (bin "
                                                                           "centre, own species)"}),
                                   "species": have[0].species.values})
