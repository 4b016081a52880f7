"""SED mixing: do the native and foreign populated SEDs intermix (docs/physics.md section 6)?

From a KMC dataset's occupancy-vs-energy records (``site_count(slab, energy, species)``,
``occupancy_count(time, slab, energy, species)``; a site's energy is binned in the *occupying*
species' own landscape) this module computes, per depth slab and time:

(a) the populated SEDs of every species (counts and normalised densities);
(b) the Fermi levels: the step-filling level (cumulative site count of the species' landscape
    equals its ion count) and a finite-temperature Fermi-function fit of the occupation;
(c) the distance of the observed occupancy from two reference pictures at the same local
    composition (registry :data:`MODELS`):

    * ``"top-down"`` -- the paper's Fig. 3: natives occupy the lowest-energy sites of their
      landscape (step filling with the local native count: the native PSED is cut top-down),
      foreign ions fill the sites the natives vacated (the top of the bulk native PSED),
      lowest foreign energy first; any excess goes to the lowest-foreign-energy empty sites;
    * ``"equilibrium"`` -- the two-species lattice gas with site exclusion,
      ``p_s(i) = exp(-(E_s(i)-mu_s)/kT) / (1 + sum_s' exp(-(E_s'(i)-mu_s')/kT))`` with the
      ``mu_s`` solved so the expected counts equal the observed ones;

    the distance is the total-variation distance (and the Hellinger distance) between the joint
    (species, energy-bin) distributions of the occupied sites: 0 identical, 1 disjoint. The
    sampling floor of a finite slab is estimated by parametric draws from the equilibrium model;
(d) after the drive stops, the relaxation time of the (floor-corrected) distance to equilibrium;
(e) a verdict table on "no intermixing on the experiment's time scale".

Both reference models need the energy of every site in *every* species' landscape, which the
histograms do not contain. They come from a :class:`Landscape`: exact (from a ``Simulation``),
reconstructed bit-for-bit from the dataset's ``input_text`` and seed (checked against
``site_count``), or -- as a fallback -- approximated from the native site histogram and the
Gaussian-copula landscape model (``mu, sigma, rho``). See docs/mixing.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from compare.errors import ConfigError
from compare.workflows.mixing_models import (
    MODELS, N_NULL_DRAWS, PhaseSpan, drive_duration, fit_fermi, fit_relaxation,
    hellinger_distance, null_distances, occupancy_histogram, phases_from_config,
    relaxation_window, segregation_index, step_fermi_level, tv_distance)

ZONE_MIN_MINORITY = 0.10   # a slab is in the mixing zone when each species has >= 10 % of its ions


# ------------------------------------------------------------------------------ landscape
@dataclass(frozen=True)
class Landscape:
    """Site energies of every species' landscape, per replica.

    energies : list of ndarray of float64, shape (n_species, n_sites), eV -- one per replica
        (row 0 native; site order of ``kmc.lattice``: depth layer slowest).
    sites_per_layer : int
        ``ny * nz``.
    source : str
        ``"exact"``, ``"reconstructed"`` or ``"approximate"`` (see docs/mixing.md).
    """
    energies: list
    sites_per_layer: int
    source: str = "exact"


def landscape_from_simulation(*sims) -> Landscape:
    """Exact landscape(s) of ``kmc.engine.Simulation`` objects (one per replica)."""
    return Landscape([np.asarray(s.site_energies()) for s in sims], sims[0].m, "exact")


def landscape_from_params(params, seeds) -> Landscape:
    """Regenerate the landscapes of ``Simulation(params, seed)`` for each seed (bit-identical:
    the engine draws the landscape first from ``numpy.random.default_rng(seed)``)."""
    from kmc.engine import build_landscape

    E = [build_landscape(params, int(s)) for s in np.atleast_1d(seeds)]
    return Landscape(E, params.ny * params.nz, "reconstructed")


def approximate_landscape(site_count, energy_edges, layers_per_slab, sites_per_layer,
                          foreign, seed=0) -> Landscape:
    """Fallback joint landscape from the native site histogram and the copula model.

    Native energies are drawn uniformly inside their recorded bins (counts exact per slab);
    foreign energies from ``E_k = mu + sigma (rho z + sqrt(1 - rho^2) z')`` with ``z`` the
    standardised native energy. Binning errors of order (bin width)/sqrt(12) remain.

    Parameters
    ----------
    site_count : ndarray of int, shape (n_replica, n_slab, n_energy, n_species)
    energy_edges : ndarray of float64, shape (n_energy + 1,), eV
    layers_per_slab, sites_per_layer : int
    foreign : sequence of (mu_eV, sigma_eV, rho), one per foreign species
    """
    rng = np.random.default_rng(seed)
    out = []
    for rep in site_count:
        E0 = []
        for sl in rep:
            counts = sl[:, 0].astype(np.int64)
            lo = np.repeat(energy_edges[:-1], counts)
            w = np.repeat(np.diff(energy_edges), counts)
            e = lo + w * rng.random(lo.size)
            E0.append(rng.permutation(e))
        E0 = np.concatenate(E0)
        z = (E0 - E0.mean()) / (E0.std() or 1.0)
        rows = [E0] + [mu + sig * (rho * z + np.sqrt(1 - rho * rho) * rng.standard_normal(E0.size))
                       for mu, sig, rho in foreign]
        out.append(np.vstack(rows))
    return Landscape(out, sites_per_layer, "approximate")


# ------------------------------------------------------------------------------ dataset access
def energy_edges(ds) -> np.ndarray:
    """Bin edges [eV] of the (uniform) ``energy`` coordinate."""
    c = np.asarray(ds["energy"].values, dtype=float)
    if c.size < 2:
        raise ConfigError("dataset needs at least 2 energy bins")
    h = c[1] - c[0]
    return np.concatenate([c - 0.5 * h, [c[-1] + 0.5 * h]])


def bin_index(E, edges) -> np.ndarray:
    """Energy bin of each value, exactly as the KMC engine bins (overflow into the end bins)."""
    return np.clip(np.searchsorted(edges, E, side="right") - 1, 0, edges.size - 2)


def _with_replica(da):
    return da if "replica" in da.dims else da.expand_dims(replica=[0])


def _records(ds):
    """(site_count (R, S, B, K), occupancy (R, T, S, B, K)) as int64 arrays."""
    for v in ("site_count", "occupancy_count"):
        if v not in ds:
            raise ConfigError(f"dataset has no `{v}`: run the KMC with record_histograms = True")
    sc = _with_replica(ds["site_count"]).transpose("replica", "slab", "energy", "species")
    oc = _with_replica(ds["occupancy_count"]).transpose("replica", "time", "slab", "energy", "species")
    return (np.nan_to_num(sc.values).astype(np.int64), np.nan_to_num(oc.values).astype(np.int64))


def layers_per_slab(ds) -> int:
    """Depth layers per slab, from the slab centres ``(k + 1/2) lps a``."""
    return max(1, int(round(2.0 * float(ds["slab"].values[0]) / float(ds.attrs["a_nm"]))))


def dataset_seeds(ds) -> np.ndarray:
    if "seed" in ds.coords and "replica" in ds["seed"].dims:
        return np.asarray(ds["seed"].values, dtype=np.int64)
    return np.atleast_1d(np.asarray(ds.attrs["seed"], dtype=np.int64))


def config_of(ds):
    """The dataset's input (``input_text`` attr) as a Config, or None."""
    text = ds.attrs.get("input_text", "")
    if not text:
        return None
    from compare.io.config import parse_text

    path = ds.attrs.get("input_path", "")
    base = Path(path).parent if path else None
    return parse_text(text, base_dir=base)


def landscape_from_dataset(ds, cfg=None) -> Landscape:
    """Reconstruct the landscapes of a KMC dataset from its input text and seeds.

    The reconstruction is accepted only if it reproduces ``site_count`` exactly; otherwise (or
    without an input) the copula approximation :func:`approximate_landscape` is used.
    """
    cfg = cfg if cfg is not None else config_of(ds)
    edges = energy_edges(ds)
    sc, _ = _records(ds)
    lps = layers_per_slab(ds)
    m = int(ds.attrs["ny"]) * int(ds.attrs["nz"])
    if cfg is None:
        raise ConfigError("dataset has no `input_text`: pass a Landscape (mixing.analyze(ds, "
                          "landscape=...)) or the input file")
    from compare import scenario

    params = scenario.kmc_params(cfg)
    nx = int(ds.attrs["nx"])
    from dataclasses import replace

    params = replace(params, nx=nx, ny=int(ds.attrs["ny"]), nz=int(ds.attrs["nz"]))
    land = landscape_from_params(params, dataset_seeds(ds))
    if len(land.energies) == sc.shape[0] and np.array_equal(
            _site_hist(land, edges, lps, sc.shape[1]), sc):
        return land
    foreign = [(s.mu_eV, s.sigma_eV, s.rho) for s in params.species[1:]]
    return approximate_landscape(sc, edges, lps, m, foreign)


def _slab_of_sites(n_sites, m, lps):
    return (np.arange(n_sites) // m) // lps


def _site_hist(land, edges, lps, n_slab):
    out = []
    for E in land.energies:
        slab = _slab_of_sites(E.shape[1], land.sites_per_layer, lps)
        h = np.zeros((n_slab, edges.size - 1, E.shape[0]), dtype=np.int64)
        for k in range(E.shape[0]):
            np.add.at(h[:, :, k], (slab, bin_index(E[k], edges)), 1)
        out.append(h)
    return np.array(out)


# ------------------------------------------------------------------------------ analysis
class Results(dict):
    """A dict whose keys are also attributes (``results.zone_ex``), as in MDAnalysis."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self[name] = value


def _mean_sem(a, axis):
    """Mean and standard error over the finite entries along ``axis`` (NaN below 2 entries)."""
    m = _nanmean(a, axis)
    n = np.sum(np.isfinite(a), axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.sqrt(np.nansum((a - np.expand_dims(m, axis)) ** 2, axis=axis) / np.maximum(n - 1, 1))
    return m, np.where(n >= 2, sd / np.sqrt(np.maximum(n, 1)), np.nan)


class MixingAnalysis:
    """Mixing analysis of a KMC dataset (module docstring; docs/mixing.md).

    ``MixingAnalysis(ds, ...).run()`` prepares the records and the landscape, analyses one
    (replica, slab) at a time against the reference pictures, then concludes: replica
    summaries, the mixing zone, Fermi levels and the relaxation after the drive. The numbers
    are in :attr:`results`, the labelled dataset (with the verdict in its attrs) in
    :attr:`dataset`.

    Parameters
    ----------
    ds : xarray.Dataset
        ``kmc.engine`` dataset (single run or merged replicas with a ``replica`` dim) with
        ``site_count``, ``occupancy_count`` and attrs ``kT_eV, a_nm, nx, ny, nz``.
    landscape : Landscape, optional
        Site energies per replica; default :func:`landscape_from_dataset`.
    phases : sequence of PhaseSpan, optional
        Default: from the dataset's input text; without one, the whole run counts as driven.
    vacancy_fraction : float, optional
        Sets the bulk native count of a slab for the top-down picture; default from the input,
        else the native site fraction of the deepest slab at the first record.
    n_null : int
        Parametric draws per (replica, time, slab) for the sampling floor.
    seed : int
        Seed of those draws.
    cfg : Config, optional
        The run's input (default: parsed from the dataset's ``input_text``).
    """

    def __init__(self, ds, landscape=None, phases=None, vacancy_fraction=None,
                 n_null=N_NULL_DRAWS, seed=0, cfg=None):
        self.ds, self.landscape, self.phases = ds, landscape, phases
        self.vacancy_fraction, self.n_null, self.seed = vacancy_fraction, int(n_null), seed
        self.cfg = cfg if cfg is not None or not ds.attrs.get("input_text", "") else config_of(ds)
        self.results = Results()
        self.dataset = None

    def run(self):
        self._prepare()
        r = self.results
        for k, E in enumerate(self.landscape.energies):
            bins = bin_index(E, r.edges)
            slab_of = _slab_of_sites(E.shape[1], self.landscape.sites_per_layer, r.lps)
            for s in range(r.S):
                self._single_slab(k, s, E, bins, np.flatnonzero(slab_of == s))
        self._conclude()
        return self

    # -- prepare ---------------------------------------------------------------------------
    def _prepare(self):
        ds, cfg, r = self.ds, self.cfg, self.results
        r.sc, r.oc = _records(ds)
        R, T, S, B, K = r.oc.shape
        r.update(R=R, T=T, S=S, B=B, K=K)
        if K < 2:
            raise ConfigError("mixing needs at least two species (a native and a foreign one)")
        r.edges = energy_edges(ds)
        r.centres = np.asarray(ds["energy"].values, dtype=float)
        r.dE = r.edges[1] - r.edges[0]
        r.kT = float(ds.attrs["kT_eV"])
        r.times = np.asarray(ds["time"].values, dtype=float)
        if self.landscape is None:
            self.landscape = landscape_from_dataset(ds, cfg)
        if len(self.landscape.energies) != R:
            raise ConfigError(f"landscape has {len(self.landscape.energies)} replica(s), "
                              f"dataset {R}")
        r.landscape = self.landscape
        if self.phases is None:
            self.phases = phases_from_config(cfg) if cfg is not None else (
                PhaseSpan(0.0, float(r.times[-1]) if T else 0.0, "galvanostatic"),)
        r.phases = self.phases
        r.lps = layers_per_slab(ds)
        r.n_sites_slab = r.sc[0, :, :, 0].sum(axis=1).astype(float)
        r.N = r.oc.sum(axis=3).astype(float)                          # (R, T, S, K)
        f_vac = self.vacancy_fraction
        if f_vac is None:
            f_vac = (float(cfg.material.vacancy_fraction) if cfg is not None
                     else 1.0 - r.N[:, 0, -1, 0].mean() / r.n_sites_slab[-1])
        r.vacancy_fraction = f_vac
        r.n_native0 = (1.0 - f_vac) * r.n_sites_slab
        r.names = list(MODELS)
        r.n_null = self.n_null
        self._rng = np.random.default_rng(self.seed)
        M = len(r.names)
        for name, shape in (("d_tv", (M, R, T, S)), ("d_hel", (M, R, T, S)),
                            ("null_mean", (R, T, S)), ("null_sd", (R, T, S)),
                            ("mu_eq", (R, T, S, K)), ("seg", (R, T, S)), ("seg_sd", (R, T, S))):
            r[name] = np.full(shape, np.nan)
        r.model_hist = np.zeros((M, T, S, B, K))

    # -- one replica and slab --------------------------------------------------------------
    def _single_slab(self, k, s, E, bins, idx):
        """Every time of replica `k`, slab `s` (sites `idx`) against both reference pictures."""
        r = self.results
        names = r.names
        i_eq, i_td = names.index("equilibrium"), names.index("top-down")
        Es, bs = E[:, idx], bins[:, idx]
        orders = np.argsort(Es, axis=1, kind="stable")
        for t in range(r.T):
            counts = r.N[k, t, s]
            if counts.sum() <= 0:
                continue
            obs = r.oc[k, t, s]
            hists, occs = [], []
            for j, name in enumerate(names):
                occ, mu = MODELS[name](Es, counts, r.n_native0[s], r.kT, orders)
                H = occupancy_histogram(occ, bs, r.B)
                hists.append(H)
                occs.append(occ)
                r.model_hist[j, t, s] += H
                r.d_tv[j, k, t, s] = tv_distance(obs, H)
                r.d_hel[j, k, t, s] = hellinger_distance(obs, H)
                if j == i_eq:
                    r.mu_eq[k, t, s] = mu
            r.seg[k, t, s] = segregation_index(obs, hists[i_eq], hists[i_td])
            nd, ns = null_distances(occs[i_eq], bs, r.B, hists[i_eq], self._rng, self.n_null,
                                    other_hist=hists[i_td])
            r.null_mean[k, t, s], r.null_sd[k, t, s] = nd.mean(), nd.std(ddof=1)
            r.seg_sd[k, t, s] = ns.std(ddof=1)

    # -- conclude --------------------------------------------------------------------------
    def _conclude(self):
        self._replica_summaries()
        self._mixing_zone()
        self._fermi_levels()
        self._relaxation()
        out = _build_dataset(self.ds, self.results)
        from compare.reports.mixing import build_verdict

        verdict = build_verdict(out)
        out.attrs.update({f"verdict_{k}": v for k, v in verdict.items() if k != "table"})
        out.attrs["verdict_table"] = verdict["table"]
        self.dataset = out

    def _replica_summaries(self):
        """Per-slab replica means and standard errors of the distances and the segregation."""
        r = self.results
        r.excess = r.d_tv - r.null_mean[None]                          # (M, R, T, S)
        r.tv_m, r.tv_sem = _mean_sem(r.d_tv, 1)
        r.hel_m, _ = _mean_sem(r.d_hel, 1)
        r.ex_m, r.ex_sem = _mean_sem(r.excess, 1)
        r.nm_m, _ = _mean_sem(r.null_mean, 0)
        r.seg_m, r.seg_sem = _mean_sem(r.seg, 0)
        r.seg_floor_sd = np.sqrt(_nanmean(r.seg_sd ** 2, 0))
        r.nsd_m = np.sqrt(_nanmean(r.null_sd ** 2, 0))

    def _mixing_zone(self):
        """Ion-weighted aggregates over the slabs where each of native / foreign holds at least
        ZONE_MIN_MINORITY of the ions at the end of the drive."""
        r = self.results
        R, S = r.R, r.S
        r.t_ref = _reference_index(r.times, r.phases)
        r.Nsum = r.N.sum(axis=0)                                       # (T, S, K)
        tot = r.Nsum.sum(axis=2)
        nat_frac = np.where(tot > 0, r.Nsum[..., 0] / np.maximum(tot, 1), np.nan)
        zone = np.zeros(S, dtype=bool)
        if r.t_ref is not None:
            f = nat_frac[r.t_ref]
            zone = np.isfinite(f) & (f >= ZONE_MIN_MINORITY) & (f <= 1 - ZONE_MIN_MINORITY)
        r.zone = zone
        w = r.N.sum(axis=3) * zone[None, None, :]                      # (R, T, S) ion weights
        wsum = w.sum(axis=2)
        with np.errstate(invalid="ignore", divide="ignore"):
            agg = np.nansum(r.excess * w[None], axis=3) / wsum[None]   # (M, R, T)
            agg_tv = np.nansum(r.d_tv * w[None], axis=3) / wsum[None]
            agg_null = np.nansum(r.null_mean * w, axis=2) / wsum
            agg_nsd = np.sqrt(np.nansum((r.null_sd * w) ** 2, axis=2)) / wsum
            agg_seg = np.nansum(np.nan_to_num(r.seg) * w, axis=2) / wsum           # (R, T)
            agg_seg_sd = np.sqrt(np.nansum((r.seg_sd * w) ** 2, axis=2)) / wsum
        r.zone_ex, zone_sem = _mean_sem(agg, 1)
        r.zone_tv, _ = _mean_sem(agg_tv, 1)
        r.zone_null, _ = _mean_sem(agg_null, 0)
        floor_err = np.sqrt(_nanmean(agg_nsd ** 2, 0)) / np.sqrt(R)
        # fewer than 3 replicas: the replica scatter is no usable error, use the sampling floor's
        r.zone_err = zone_sem if R >= 3 else np.broadcast_to(floor_err, r.zone_ex.shape)
        r.zone_seg, zone_seg_sem = _mean_sem(agg_seg, 0)
        seg_floor_err = np.sqrt(_nanmean(agg_seg_sd ** 2, 0)) / np.sqrt(R)
        r.zone_seg_err = zone_seg_sem if R >= 3 else seg_floor_err

    def _fermi_levels(self):
        """Step and fitted Fermi levels from the replica-summed histograms."""
        r = self.results
        T, S, B, K = r.T, r.S, r.B, r.K
        r.scs = r.sc.sum(axis=0).astype(float)                         # (S, B, K)
        r.ocs = r.oc.sum(axis=0).astype(float)                         # (T, S, B, K)
        r.ef_step = np.stack([step_fermi_level(np.broadcast_to(r.scs[None, :, :, k], (T, S, B)),
                                               r.Nsum[..., k], r.edges) for k in range(K)], axis=-1)
        fits = {k: np.full((T, S, K), np.nan) for k in ("mu", "mu_err", "kT", "kT_err", "amplitude")}
        for t in range(T):
            for s in range(S):
                for k in range(K):
                    res = fit_fermi(r.centres, r.scs[s, :, k], r.ocs[t, s, :, k], r.kT)
                    for key in fits:
                        fits[key][t, s, k] = res[key]
        r.fits = fits

    def _relaxation(self):
        """Exponential (and stretched) decay of the zone segregation after the drive stops."""
        r = self.results
        times = r.times
        win = relaxation_window(r.phases)
        relax = dict(tau_s=np.nan, tau_err_s=np.nan, beta=1.0, beta_err=0.0, y0=np.nan,
                     status="no drive-off phase after a driven one")
        relax_s = dict(relax)
        r.relax_curve = np.full(r.T, np.nan)
        if win is not None:
            sel = (times >= win[0] - 1e-9 * max(1.0, win[0])) & (times <= win[1] * (1 + 1e-9))
            y, e = r.zone_seg[sel], np.asarray(r.zone_seg_err)[sel]
            relax = fit_relaxation(times[sel], y, e, win[0])
            relax_s = (fit_relaxation(times[sel], y, e, win[0], True)
                       if sel.sum() >= 5 else dict(relax_s, status="insufficient data"))
            if np.isfinite(relax["tau_s"]):
                r.relax_curve[sel] = relax["y0"] * np.exp(-(times[sel] - win[0]) / relax["tau_s"])
        r.relax, r.relax_s = relax, relax_s


def analyze(ds, landscape=None, phases=None, vacancy_fraction=None, n_null=N_NULL_DRAWS,
            seed=0, cfg=None) -> xr.Dataset:
    """The dataset of :class:`MixingAnalysis` (same parameters): dims ``time, slab, energy,
    species, model`` (docs/mixing.md), the verdict in its attrs."""
    return MixingAnalysis(ds, landscape, phases, vacancy_fraction, n_null, seed, cfg).run().dataset


def _nanmean(a, axis):
    """Mean over the finite entries along ``axis``; NaN (no warning) where there are none."""
    ok = np.isfinite(a)
    n = ok.sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.where(ok, a, 0.0).sum(axis=axis) / np.maximum(n, 1), np.nan)


def _reference_index(times, phases):
    """Index of the last record inside a driven phase (end of the drive), else the last one."""
    if times.size == 0:
        return None
    driven = [p for p in phases if p.drive != "off"]
    if not driven:
        return times.size - 1
    t_end = max(p.end_s for p in driven)
    k = np.flatnonzero(times <= t_end * (1 + 1e-9))
    return int(k[-1]) if k.size else 0


def _build_dataset(ds, v) -> xr.Dataset:
    """Labelled result of :class:`MixingAnalysis` (``v`` = its :attr:`~MixingAnalysis.results`)."""
    T, S, B, K = v["T"], v["S"], v["B"], v["K"]
    dims3 = ("time", "slab", "species")
    norm = v["n_sites_slab"][None, :, None, None] * v["dE"]
    with np.errstate(invalid="ignore", divide="ignore"):
        prob = np.where(v["scs"][None] > 0, v["ocs"] / np.maximum(v["scs"][None], 1), np.nan)
    R = v["R"]
    out = xr.Dataset(
        {
            "site_count": (("slab", "energy", "species"), v["scs"],
                           {"units": "1", "long_name": "sites per own-species energy bin (sum over replicas)"}),
            "site_density": (("slab", "energy", "species"), v["scs"] / norm[0] / R,
                             {"units": "1/eV", "long_name": "site energy distribution per site of the slab"}),
            "occupancy_count": (("time", "slab", "energy", "species"), v["ocs"],
                                {"units": "1", "long_name": "occupied sites per own-species energy bin (sum over replicas)"}),
            "populated_density": (("time", "slab", "energy", "species"), v["ocs"] / norm / R,
                                  {"units": "1/eV", "long_name": "populated SED per site of the slab"}),
            "occupation_probability": (("time", "slab", "energy", "species"), prob,
                                       {"units": "1", "long_name": "occupied / available sites"}),
            "model_occupancy": (("model", "time", "slab", "energy", "species"), v["model_hist"],
                                {"units": "1", "long_name": "reference-picture expected occupied sites (sum over replicas)"}),
            "n_ions": (dims3, v["Nsum"] / R, {"units": "1", "long_name": "ions in the slab (mean over replicas)"}),
            "site_fraction": (dims3, v["Nsum"] / R / v["n_sites_slab"][None, :, None],
                              {"units": "1", "long_name": "ions per site of the slab"}),
            "fermi_step": (dims3, v["ef_step"], {"units": "eV", "long_name": "step-filling Fermi level"}),
            "fermi_fit": (dims3, v["fits"]["mu"], {"units": "eV", "long_name": "Fermi level of a Fermi-function fit"}),
            "fermi_fit_err": (dims3, v["fits"]["mu_err"], {"units": "eV", "long_name": "standard error of fermi_fit"}),
            "kT_fit": (dims3, v["fits"]["kT"], {"units": "eV", "long_name": "effective kT of the Fermi-function fit (incl. bin smearing)"}),
            "kT_fit_err": (dims3, v["fits"]["kT_err"], {"units": "eV", "long_name": "standard error of kT_fit"}),
            "fit_amplitude": (dims3, v["fits"]["amplitude"], {"units": "1", "long_name": "maximum occupation of the Fermi-function fit"}),
            "mu_equilibrium": (dims3, _nanmean(v["mu_eq"], 0),
                               {"units": "eV", "long_name": "chemical potential of the two-species equilibrium at the local composition"}),
            "distance": (("model", "time", "slab"), v["tv_m"],
                         {"units": "1", "long_name": "total-variation distance observed vs model (0 same, 1 disjoint)"}),
            "distance_sem": (("model", "time", "slab"), v["tv_sem"],
                             {"units": "1", "long_name": "standard error of distance over replicas"}),
            "distance_hellinger": (("model", "time", "slab"), v["hel_m"],
                                   {"units": "1", "long_name": "Hellinger distance observed vs model"}),
            "distance_floor": (("time", "slab"), v["nm_m"],
                               {"units": "1", "long_name": "sampling floor of the distance (draws from the equilibrium)"}),
            "distance_floor_sd": (("time", "slab"), v["nsd_m"],
                                  {"units": "1", "long_name": "spread of the distance of one equilibrium sample"}),
            "distance_excess": (("model", "time", "slab"), v["ex_m"],
                                {"units": "1", "long_name": "distance minus its sampling floor"}),
            "segregation": (("time", "slab"), v["seg_m"],
                            {"units": "1", "long_name": "segregation index: 0 equilibrium, 1 top-down"}),
            "segregation_sem": (("time", "slab"), v["seg_sem"],
                                {"units": "1", "long_name": "standard error of segregation over replicas"}),
            "segregation_floor_sd": (("time", "slab"), v["seg_floor_sd"],
                                     {"units": "1", "long_name": "spread of the segregation index of one equilibrium sample"}),
            "zone_segregation": (("time",), v["zone_seg"],
                                 {"units": "1", "long_name": "ion-weighted segregation index over the mixing zone"}),
            "zone_segregation_err": (("time",), np.asarray(v["zone_seg_err"]),
                                     {"units": "1", "long_name": "standard error of zone_segregation"}),
            "in_zone": (("slab",), v["zone"].astype(np.int8),
                        {"units": "1", "long_name": "slab in the mixing zone (1) at the end of the drive"}),
            "zone_distance": (("model", "time"), v["zone_tv"],
                              {"units": "1", "long_name": "ion-weighted distance over the mixing zone"}),
            "zone_excess": (("model", "time"), v["zone_ex"],
                            {"units": "1", "long_name": "ion-weighted distance minus floor over the mixing zone"}),
            "zone_excess_err": (("model", "time"), np.array(v["zone_err"]),
                                {"units": "1", "long_name": "standard error of zone_excess"}),
            "zone_floor": (("time",), v["zone_null"], {"units": "1", "long_name": "sampling floor over the mixing zone"}),
            "relaxation_fit": (("time",), v["relax_curve"],
                               {"units": "1", "long_name": "exponential fit of zone_segregation after the drive"}),
        },
        coords={
            "time": ("time", v["times"], {"units": "s", "long_name": "time"}),
            "slab": ("slab", np.asarray(ds["slab"].values, float), {"units": "nm", "long_name": "depth of slab centre"}),
            "energy": ("energy", v["centres"], {"units": "eV", "long_name": "site energy (bin centre, own species)"}),
            "species": ("species", [str(x) for x in ds["species"].values], {"long_name": "ion species"}),
            "model": ("model", v["names"], {"long_name": "reference picture"}),
        },
        attrs={"engine": "mixing", "source_engine": ds.attrs.get("engine", ""),
               "landscape_source": v["landscape"].source, "n_replicas": int(R),
               "kT_eV": v["kT"], "vacancy_fraction": float(v["vacancy_fraction"]),
               "layers_per_slab": int(v["lps"]), "a_nm": float(ds.attrs["a_nm"]),
               "n_null_draws": int(v["n_null"]),
               "reference_time_s": float(v["times"][v["t_ref"]]) if v["t_ref"] is not None else np.nan,
               "drive_duration_s": drive_duration(v["phases"]),
               "phase_starts_s": np.array([p.start_s for p in v["phases"]]),
               "phase_ends_s": np.array([p.end_s for p in v["phases"]]),
               "phase_drives": ", ".join(p.drive for p in v["phases"]),
               "input_text": ds.attrs.get("input_text", "")},
    )
    for prefix, r in (("relax_", v["relax"]), ("relax_stretched_", v["relax_s"])):
        for key, val in r.items():
            out.attrs[prefix + key] = val if isinstance(val, str) else float(val)
    return out


# ------------------------------------------------------------------------------ command
def run_mixing(dataset_path, out_dir=None, quiet=False) -> dict:
    """`cait mixing DATASET`: analysis -> mixing.nc, mixing.md (verdict) and figures.

    Returns a dict name -> Path of the files written.
    """
    from compare.io.datasets import open_dataset, save_figure, write_dataset
    from compare.io.outputs import output_dir
    from compare.reports.mixing import FIGURES, report_markdown

    path = Path(dataset_path)
    ds = open_dataset(path)
    if ds.attrs.get("engine") != "kmc":
        raise ConfigError(f"{str(path)!r} is not a KMC dataset (engine = "
                          f"{ds.attrs.get('engine', '?')!r}); run `cait kmc run` first")
    with output_dir(Path(out_dir) if out_dir is not None else path.parent) as out:
        cfg = config_of(ds)
        mx = analyze(ds, cfg=cfg)
        if mx.sizes["slab"] == 1 and not quiet:
            print("cait mixing: note: the dataset has a single depth slab (the whole sample); "
                  "record more slabs for depth resolution")
        status = ds.attrs.get("status", "ok")
        msg = f"landscape {mx.attrs['landscape_source']}; verdict: {mx.attrs['verdict_answer']}"
        paths = {"mixing.nc": write_dataset(mx, out / "mixing.nc", cfg=cfg,
                                            seed=ds.attrs.get("seed"), status=status, message=msg)}
        md = out / "mixing.md"
        md.write_text(report_markdown(mx, path.name))
        paths["mixing.md"] = md
        for name, func in FIGURES.items():
            paths[name] = save_figure(func(mx, cfg), out / name)
        if not quiet:
            print(mx.attrs["verdict_table"])
            for p in paths.values():
                print(p)
        return paths
