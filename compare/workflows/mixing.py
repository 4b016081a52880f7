"""SED mixing: do the native and foreign populated SEDs intermix (PHYSICS.md section 6)?

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
from scipy.optimize import least_squares

from compare.errors import ConfigError

N_NULL_DRAWS = 16          # parametric draws per (replica, time, slab) for the sampling floor
ZONE_MIN_MINORITY = 0.10   # a slab is in the mixing zone when each species has >= 10 % of its ions
MIN_IONS_FIT = 20          # fewer ions of a species in a slab: no Fermi fit (NaN)
Z_SIGNIFICANT = 3.0        # "significantly > 0" means more than 3 standard errors


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


# ------------------------------------------------------------------------------ Fermi levels
def step_fermi_level(site_count, n_ions, edges):
    """Step-filling Fermi level: the energy where the cumulative site count equals ``n_ions``.

    Parameters
    ----------
    site_count : ndarray of float, shape (..., n_energy)
    n_ions : ndarray of float, shape (...)
    edges : ndarray of float64, shape (n_energy + 1,), eV

    Returns
    -------
    ndarray of float64, shape (...), eV -- linear interpolation of the cumulative count over
    the bin edges; NaN where ``n_ions <= 0`` or exceeds the sites.
    """
    sc = np.asarray(site_count, dtype=float)
    n = np.asarray(n_ions, dtype=float)
    cum = np.concatenate([np.zeros(sc.shape[:-1] + (1,)), np.cumsum(sc, axis=-1)], axis=-1)
    flat_c = cum.reshape(-1, cum.shape[-1])
    flat_n = np.broadcast_to(n, sc.shape[:-1]).reshape(-1)
    out = np.full(flat_n.size, np.nan)
    for j, (c, nj) in enumerate(zip(flat_c, flat_n)):
        if 0 < nj <= c[-1]:
            k = np.searchsorted(c, nj, side="left")  # c[k-1] < n <= c[k]
            out[j] = edges[k - 1] + (nj - c[k - 1]) / (c[k] - c[k - 1]) * (edges[k] - edges[k - 1])
    return out.reshape(sc.shape[:-1])


def fit_fermi(energy, site_count, occupied, kT0):
    """Fit ``occupied ~ site_count * A / (1 + exp((E - mu)/kT))`` (binomial weights).

    Parameters
    ----------
    energy : ndarray of float64, shape (n_energy,), eV (bin centres)
    site_count, occupied : ndarray of float, shape (n_energy,)
    kT0 : float
        Start value of kT [eV].

    Returns
    -------
    dict with ``mu, mu_err, kT, kT_err, amplitude`` (eV; NaN when fewer than
    :data:`MIN_IONS_FIT` ions or too few populated bins). ``kT`` includes the smearing of the
    bin width (about width/sqrt(12)).
    """
    nan = dict(mu=np.nan, mu_err=np.nan, kT=np.nan, kT_err=np.nan, amplitude=np.nan)
    ok = site_count > 0
    if occupied.sum() < MIN_IONS_FIT or ok.sum() < 4:
        return nan
    E, S, O = energy[ok], site_count[ok].astype(float), occupied[ok].astype(float)
    frac = O / S
    cum = np.cumsum(S)
    mu0 = float(np.interp(O.sum(), cum, E))
    a0 = float(min(1.0, max(frac.max(), 1e-3)))

    def res(x):
        mu, lkT, a = x
        p = a / (1.0 + np.exp(np.clip((E - mu) / np.exp(lkT), -700, 700)))
        return (O - S * p) / np.sqrt(S * p * (1 - p) + 1.0)

    lo = [E.min() - 1.0, np.log(1e-4), 1e-6]
    hi = [E.max() + 1.0, np.log(2.0), 1.0]
    x0 = np.clip([mu0, np.log(kT0), a0], np.add(lo, 1e-9), np.subtract(hi, 1e-9))
    r = least_squares(res, x0, bounds=(lo, hi), x_scale=[0.05, 0.5, 0.1])
    dof = max(1, E.size - 3)
    s2 = max(1.0, float(r.fun @ r.fun) / dof)
    try:
        cov = np.linalg.inv(r.jac.T @ r.jac) * s2
        err = np.sqrt(np.clip(np.diag(cov), 0, None))
    except np.linalg.LinAlgError:
        err = np.full(3, np.nan)
    kT = float(np.exp(r.x[1]))
    return dict(mu=float(r.x[0]), mu_err=float(err[0]), kT=kT, kT_err=float(kT * err[1]),
                amplitude=float(r.x[2]))


# ------------------------------------------------------------------------------ models
def equilibrium_occupancy(E, n_ions, kT, tol=1e-9, max_iter=100):
    """Generalised Fermi function of a multi-species lattice gas with site exclusion.

    Solves ``sum_i p_s(i) = n_ions[s]`` for the chemical potentials by Newton's method on the
    convex grand potential ``F(mu) = kT sum_i log(1 + sum_s e^{(mu_s - E_s(i))/kT}) - mu.N``.

    Parameters
    ----------
    E : ndarray of float64, shape (n_species, n_sites), eV
    n_ions : ndarray of float, shape (n_species,)
        Target counts; species with 0 get ``p = 0`` and ``mu = -inf``. If the total reaches the
        number of sites it is scaled to ``n_sites - 1/2`` (no vacancy left: the grand-canonical
        form needs one).
    kT : float, eV

    Returns
    -------
    p : ndarray of float64, shape (n_species, n_sites)
    mu : ndarray of float64, shape (n_species,), eV
    """
    E = np.asarray(E, dtype=float)
    N = np.asarray(n_ions, dtype=float).copy()
    n_sp, n = E.shape
    if N.sum() > n - 0.5:
        N *= (n - 0.5) / N.sum()
    act = np.flatnonzero(N > 0)
    p = np.zeros_like(E)
    mu = np.full(n_sp, -np.inf)
    if act.size == 0:
        return p, mu
    e = E[act] / kT
    Na = N[act]
    x = np.array([np.sort(ei)[min(int(ni), n - 1)] for ei, ni in zip(e, Na)])  # step levels

    def evaluate(x):
        a = x[:, None] - e
        m = np.maximum(a.max(axis=0), 0.0)
        w = np.exp(a - m)
        z = np.exp(-m) + w.sum(axis=0)
        F = float(np.sum(m + np.log(z)) - x @ Na)
        return F, w / z

    F, q = evaluate(x)
    for _ in range(max_iter):
        g = q.sum(axis=1) - Na
        if np.max(np.abs(g) / np.maximum(Na, 1.0)) < tol:
            break
        H = np.diag(q.sum(axis=1)) - q @ q.T
        step = np.linalg.solve(H + 1e-12 * np.eye(act.size), -g)
        t = 1.0
        while True:   # backtracking: F is convex, a damped Newton step always decreases it
            Fn, qn = evaluate(x + t * step)
            if Fn <= F + 1e-4 * t * (g @ step) or t < 1e-8:
                break
            t *= 0.5
        x, F, q = x + t * step, Fn, qn
    p[act] = q
    mu[act] = x * kT
    return p, mu


def top_down_occupancy(E, n_ions, n_native0, orders=None):
    """The paper's Fig. 3 picture as a deterministic occupancy (0/1, fractional at the edges).

    Natives occupy their ``n_ions[0]`` lowest-native-energy sites (the native PSED cut from the
    top). The vacated sites are the native ranks ``[n_ions[0], n_native0)`` (the top of the bulk
    step filling); foreign species (in index order) occupy the free vacated sites with the
    lowest own energy, and any excess the free non-vacated sites with the lowest own energy.

    Parameters
    ----------
    E : ndarray of float64, shape (n_species, n_sites), eV (row 0 native)
    n_ions : ndarray of float, shape (n_species,)
    n_native0 : float
        Native count of the slab before the exchange (bulk step filling).
    orders : ndarray of int, shape (n_species, n_sites), optional
        ``argsort`` of each row of ``E`` (precomputed when called for many times).

    Returns
    -------
    ndarray of float64, shape (n_species, n_sites) -- occupation (sums to ``n_ions``).
    """
    n_sp, n = E.shape
    occ = np.zeros((n_sp, n))
    if orders is None:
        orders = np.argsort(E, axis=1, kind="stable")
    order = orders[0]
    _fill(occ[0], order, float(n_ions[0]))
    free = np.ones(n) - occ[0]
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    vacated = rank < n_native0
    for s in range(1, n_sp):
        own = orders[s]
        left = float(n_ions[s])
        for subset in (vacated[own], ~vacated[own]):
            idx = own[subset]
            cap = free[idx]
            take = np.minimum(cap, np.clip(left - np.concatenate([[0.0], np.cumsum(cap)[:-1]]), 0, None))
            occ[s, idx] += take
            free[idx] -= take
            left -= take.sum()
    return occ


def _fill(row, order, n):
    k = int(np.floor(n))
    row[order[:k]] = 1.0
    if k < order.size and n > k:
        row[order[k]] = n - k


def occupancy_histogram(occ, bins, n_bins):
    """Expected counts per own-species energy bin: shape (n_bins, n_species)."""
    return np.stack([np.bincount(bins[s], weights=occ[s], minlength=n_bins)
                     for s in range(occ.shape[0])], axis=1)


def tv_distance(a, b):
    """Total-variation distance of two count arrays normalised to distributions (0..1)."""
    a = np.asarray(a, float).ravel()
    b = np.asarray(b, float).ravel()
    sa, sb = a.sum(), b.sum()
    if sa <= 0 or sb <= 0:
        return np.nan
    return 0.5 * float(np.abs(a / sa - b / sb).sum())


def hellinger_distance(a, b):
    """Hellinger distance of two count arrays normalised to distributions (0..1)."""
    a = np.asarray(a, float).ravel()
    b = np.asarray(b, float).ravel()
    sa, sb = a.sum(), b.sum()
    if sa <= 0 or sb <= 0:
        return np.nan
    return float(np.sqrt(max(0.0, 1.0 - np.sum(np.sqrt(a / sa * b / sb)))))


def segregation_index(obs, eq_hist, td_hist):
    """Where the observation lies between the two pictures: 0 equilibrium, 1 top-down.

    Weighted least-squares coefficient ``s`` of ``obs ~ eq + s (td - eq)`` (weights
    ``1/(eq + 1)``, about the inverse count variance). Unlike a distance it is linear in the
    counts, so sampling noise does not bias it (a relaxation fit on it is unbiased).

    Parameters
    ----------
    obs, eq_hist, td_hist : ndarray of float, same shape (counts per bin and species)

    Returns
    -------
    float (NaN when the two pictures coincide).
    """
    d = np.asarray(td_hist, float) - eq_hist
    w = 1.0 / (np.asarray(eq_hist, float) + 1.0)
    den = float(np.sum(w * d * d))
    if den <= 1e-12:
        return np.nan
    return float(np.sum(w * d * (np.asarray(obs, float) - eq_hist)) / den)


def null_distances(p, bins, n_bins, model_hist, rng, n_draws=N_NULL_DRAWS, other_hist=None):
    """TV distances of samples drawn from the occupation ``p`` to its expectation.

    Each site independently holds species s with probability ``p[s]`` (grand canonical), so
    the draws show the sampling floor of the distance for a slab of this size.

    Returns
    -------
    tv : ndarray of float64, shape (n_draws,)
    seg : ndarray of float64, shape (n_draws,)
        :func:`segregation_index` of each draw against ``(model_hist, other_hist)`` (NaN
        without ``other_hist``).
    """
    cum = np.cumsum(p, axis=0)
    tv = np.empty(n_draws)
    seg = np.full(n_draws, np.nan)
    for k in range(n_draws):
        u = rng.random(p.shape[1])
        sp = (u[None, :] >= cum).sum(axis=0)   # species index; n_species = vacant
        h = np.zeros((n_bins, p.shape[0]))
        for s in range(p.shape[0]):
            h[:, s] = np.bincount(bins[s][sp == s], minlength=n_bins)
        tv[k] = tv_distance(h, model_hist)
        if other_hist is not None:
            seg[k] = segregation_index(h, model_hist, other_hist)
    return tv, seg


def _top_down(E, N, n0, kT, orders=None):
    return top_down_occupancy(E, N, n0, orders), np.full(E.shape[0], np.nan)


def _equilibrium(E, N, n0, kT, orders=None):
    return equilibrium_occupancy(E, N, kT)


# Reference pictures: name -> f(E (n_sp, n), counts (n_sp,), native bulk count, kT, orders)
# -> (occupation (n_sp, n), mu (n_sp,) [eV] or NaN)
MODELS = {"top-down": _top_down, "equilibrium": _equilibrium}


def get_model(name):
    if name not in MODELS:
        raise ConfigError(f"unknown mixing model {name!r}; legal: {sorted(MODELS)}")
    return MODELS[name]


# ------------------------------------------------------------------------------ phases
@dataclass(frozen=True)
class PhaseSpan:
    """One beam phase on the time axis."""
    start_s: float
    end_s: float
    drive: str                    # "galvanostatic" | "potentiostatic" | "off"


def phases_from_config(cfg) -> tuple:
    return tuple(PhaseSpan(a, b, ph.drive)
                 for a, b, ph in zip(cfg.phase_starts_s, cfg.phase_ends_s, cfg.beam))


def phases_from_params(params) -> tuple:
    """Phase spans of a ``kmc.engine.KMCParams`` schedule (periodic runs: one "off" span)."""
    if not params.phases:
        end = params.duration_s if params.duration_s is not None else (
            params.output_times_s[-1] if params.output_times_s else 0.0)
        return (PhaseSpan(0.0, float(end), "off"),)
    ends = np.cumsum([ph.duration_s for ph in params.phases])
    starts = np.concatenate([[0.0], ends[:-1]])
    return tuple(PhaseSpan(float(a), float(b), ph.drive)
                 for a, b, ph in zip(starts, ends, params.phases))


def relaxation_window(phases):
    """(t_drive_end, t_end) of the first drive-off phase after a driven one, or None."""
    for k in range(1, len(phases)):
        if phases[k].drive == "off" and phases[k - 1].drive != "off":
            return phases[k].start_s, phases[k].end_s
    return None


def drive_duration(phases) -> float:
    return float(sum(p.end_s - p.start_s for p in phases if p.drive != "off"))


# ------------------------------------------------------------------------------ relaxation
def fit_relaxation(t, y, err, t0, stretched=False):
    """Fit ``y = y0 exp(-((t - t0)/tau)^beta)`` (beta = 1 unless ``stretched``).

    Parameters
    ----------
    t, y, err : ndarray of float64, shape (n,) -- times [s], floor-corrected distance, its error
    t0 : float
        Start of the relaxation [s] (the drive stops).

    Returns
    -------
    dict: ``tau_s, tau_err_s, beta, beta_err, y0, status`` where status is ``"fitted"``,
    ``"not reached within the run"`` (less than one e-fold of decay observed: tau is an
    extrapolation), ``"already mixed"`` (no significant distance when the drive stops) or
    ``"insufficient data"``.
    """
    out = dict(tau_s=np.nan, tau_err_s=np.nan, beta=1.0, beta_err=0.0, y0=np.nan,
               status="insufficient data")
    ok = np.isfinite(y) & np.isfinite(err)
    t, y, err = t[ok], y[ok], np.maximum(err[ok], 1e-6)
    if t.size < 3:
        return out
    if y[0] < Z_SIGNIFICANT * err[0]:
        out["status"] = "already mixed"
        out["y0"] = float(y[0])
        return out
    span = max(t[-1] - t0, 1e-300)
    s = t - t0

    def res(x):
        y0, ltau = x[0], x[1]
        beta = x[2] if stretched else 1.0
        return (y0 * np.exp(-(s / np.exp(ltau)) ** beta) - y) / err

    x0 = [y[0], np.log(span)] + ([0.7] if stretched else [])
    lo = [0.0, np.log(span) - 15] + ([0.1] if stretched else [])
    hi = [2.0, np.log(span) + 15] + ([1.0] if stretched else [])
    x0 = np.clip(x0, np.add(lo, 1e-9), np.subtract(hi, 1e-9))
    r = least_squares(res, x0, bounds=(lo, hi))
    s2 = max(1.0, float(r.fun @ r.fun) / max(1, t.size - len(x0)))
    try:
        e = np.sqrt(np.clip(np.diag(np.linalg.inv(r.jac.T @ r.jac) * s2), 0, None))
    except np.linalg.LinAlgError:
        e = np.full(len(x0), np.nan)
    tau = float(np.exp(r.x[1]))
    out.update(tau_s=tau, tau_err_s=float(tau * e[1]), y0=float(r.x[0]))
    if stretched:
        out.update(beta=float(r.x[2]), beta_err=float(e[2]))
    # an e-fold of decay must be seen in the data, not only in the fitted curve
    decayed = y[-1] + Z_SIGNIFICANT * err[-1] < y[0] * np.exp(-1.0)
    out["status"] = "fitted" if decayed and tau <= span else "not reached within the run"
    return out


# ------------------------------------------------------------------------------ analysis
def analyze(ds, landscape=None, phases=None, vacancy_fraction=None, n_null=N_NULL_DRAWS,
            seed=0, cfg=None) -> xr.Dataset:
    """Mixing analysis of a KMC dataset (see the module docstring; docs/mixing.md).

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

    Returns
    -------
    xarray.Dataset with dims ``time, slab, energy, species, model`` (see docs/mixing.md).
    """
    if cfg is None and ds.attrs.get("input_text", ""):
        cfg = config_of(ds)
    sc, oc = _records(ds)
    R, T, S, B, K = oc.shape
    if K < 2:
        raise ConfigError("mixing needs at least two species (a native and a foreign one)")
    edges = energy_edges(ds)
    centres = np.asarray(ds["energy"].values, dtype=float)
    dE = edges[1] - edges[0]
    kT = float(ds.attrs["kT_eV"])
    times = np.asarray(ds["time"].values, dtype=float)
    if landscape is None:
        landscape = landscape_from_dataset(ds, cfg)
    if len(landscape.energies) != R:
        raise ConfigError(f"landscape has {len(landscape.energies)} replica(s), dataset {R}")
    if phases is None:
        phases = phases_from_config(cfg) if cfg is not None else (
            PhaseSpan(0.0, float(times[-1]) if T else 0.0, "galvanostatic"),)
    lps = layers_per_slab(ds)
    n_sites_slab = sc[0, :, :, 0].sum(axis=1).astype(float)
    N = oc.sum(axis=3).astype(float)                              # (R, T, S, K)
    if vacancy_fraction is None:
        vacancy_fraction = (float(cfg.material.vacancy_fraction) if cfg is not None
                            else 1.0 - N[:, 0, -1, 0].mean() / n_sites_slab[-1])
    n_native0 = (1.0 - vacancy_fraction) * n_sites_slab
    names = list(MODELS)
    rng = np.random.default_rng(seed)

    d_tv = np.full((len(names), R, T, S), np.nan)
    d_hel = np.full_like(d_tv, np.nan)
    null_mean = np.full((R, T, S), np.nan)
    null_sd = np.full((R, T, S), np.nan)
    mu_eq = np.full((R, T, S, K), np.nan)
    seg = np.full((R, T, S), np.nan)
    seg_sd = np.full((R, T, S), np.nan)
    model_hist = np.zeros((len(names), T, S, B, K))
    for r, E in enumerate(landscape.energies):
        bins = bin_index(E, edges)
        slab_of = _slab_of_sites(E.shape[1], landscape.sites_per_layer, lps)
        for s in range(S):
            idx = np.flatnonzero(slab_of == s)
            Es, bs = E[:, idx], bins[:, idx]
            orders = np.argsort(Es, axis=1, kind="stable")
            for t in range(T):
                counts = N[r, t, s]
                if counts.sum() <= 0:
                    continue
                obs = oc[r, t, s]
                hists, occs = [], []
                for j, name in enumerate(names):
                    occ, mu = MODELS[name](Es, counts, n_native0[s], kT, orders)
                    H = occupancy_histogram(occ, bs, B)
                    hists.append(H)
                    occs.append(occ)
                    model_hist[j, t, s] += H
                    d_tv[j, r, t, s] = tv_distance(obs, H)
                    d_hel[j, r, t, s] = hellinger_distance(obs, H)
                    if name == "equilibrium":
                        mu_eq[r, t, s] = mu
                H_eq, H_td = hists[names.index("equilibrium")], hists[names.index("top-down")]
                seg[r, t, s] = segregation_index(obs, H_eq, H_td)
                nd, ns = null_distances(occs[names.index("equilibrium")], bs, B, H_eq, rng,
                                        n_null, other_hist=H_td)
                null_mean[r, t, s], null_sd[r, t, s] = nd.mean(), nd.std(ddof=1)
                seg_sd[r, t, s] = ns.std(ddof=1)

    def mean_sem(a, axis):
        m = _nanmean(a, axis)
        n = np.sum(np.isfinite(a), axis=axis)
        with np.errstate(invalid="ignore", divide="ignore"):
            sd = np.sqrt(np.nansum((a - np.expand_dims(m, axis)) ** 2, axis=axis) / np.maximum(n - 1, 1))
        sem = np.where(n >= 2, sd / np.sqrt(np.maximum(n, 1)), np.nan)
        return m, sem

    excess = d_tv - null_mean[None]                               # (M, R, T, S)
    # ---- per-slab summaries (replica means; counts summed over replicas)
    tv_m, tv_sem = mean_sem(d_tv, 1)
    hel_m, _ = mean_sem(d_hel, 1)
    ex_m, ex_sem = mean_sem(excess, 1)
    nm_m, _ = mean_sem(null_mean, 0)
    seg_m, seg_sem = mean_sem(seg, 0)
    seg_floor_sd = np.sqrt(_nanmean(seg_sd ** 2, 0))
    nsd_m = np.sqrt(_nanmean(null_sd ** 2, 0))
    # ---- mixing zone: slabs where each of native / foreign holds >= 10 % of the ions
    t_ref = _reference_index(times, phases)
    Nsum = N.sum(axis=0)                                          # (T, S, K)
    tot = Nsum.sum(axis=2)
    nat_frac = np.where(tot > 0, Nsum[..., 0] / np.maximum(tot, 1), np.nan)
    zone = np.zeros(S, dtype=bool)
    if t_ref is not None:
        f = nat_frac[t_ref]
        zone = np.isfinite(f) & (f >= ZONE_MIN_MINORITY) & (f <= 1 - ZONE_MIN_MINORITY)
    w = N.sum(axis=3) * zone[None, None, :]                        # (R, T, S) ion weights
    wsum = w.sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        agg = np.nansum(excess * w[None], axis=3) / wsum[None]     # (M, R, T)
        agg_tv = np.nansum(d_tv * w[None], axis=3) / wsum[None]
        agg_null = np.nansum(null_mean * w, axis=2) / wsum
        agg_nsd = np.sqrt(np.nansum((null_sd * w) ** 2, axis=2)) / wsum
        agg_seg = np.nansum(np.nan_to_num(seg) * w, axis=2) / wsum            # (R, T)
        agg_seg_sd = np.sqrt(np.nansum((seg_sd * w) ** 2, axis=2)) / wsum
    zone_ex, zone_sem = mean_sem(agg, 1)
    zone_tv, _ = mean_sem(agg_tv, 1)
    zone_null, _ = mean_sem(agg_null, 0)
    floor_err = np.sqrt(_nanmean(agg_nsd ** 2, 0)) / np.sqrt(R)
    # fewer than 3 replicas: the replica scatter is no usable error, use the sampling floor's
    zone_err = zone_sem if R >= 3 else np.broadcast_to(floor_err, zone_ex.shape)
    zone_seg, zone_seg_sem = mean_sem(agg_seg, 0)
    seg_floor_err = np.sqrt(_nanmean(agg_seg_sd ** 2, 0)) / np.sqrt(R)
    zone_seg_err = zone_seg_sem if R >= 3 else seg_floor_err
    # ---- Fermi levels from the replica-summed histograms
    scs = sc.sum(axis=0).astype(float)                             # (S, B, K)
    ocs = oc.sum(axis=0).astype(float)                             # (T, S, B, K)
    ef_step = np.stack([step_fermi_level(np.broadcast_to(scs[None, :, :, k], (T, S, B)),
                                         Nsum[..., k], edges) for k in range(K)], axis=-1)
    fits = {k: np.full((T, S, K), np.nan) for k in ("mu", "mu_err", "kT", "kT_err", "amplitude")}
    for t in range(T):
        for s in range(S):
            for k in range(K):
                res = fit_fermi(centres, scs[s, :, k], ocs[t, s, :, k], kT)
                for key in fits:
                    fits[key][t, s, k] = res[key]
    # ---- relaxation after the drive stops
    win = relaxation_window(phases)
    relax = dict(tau_s=np.nan, tau_err_s=np.nan, beta=1.0, beta_err=0.0, y0=np.nan,
                 status="no drive-off phase after a driven one")
    relax_s = dict(relax)
    relax_curve = np.full(T, np.nan)
    if win is not None:
        sel = (times >= win[0] - 1e-9 * max(1.0, win[0])) & (times <= win[1] * (1 + 1e-9))
        relax = fit_relaxation(times[sel], zone_seg[sel], zone_seg_err[sel], win[0])
        relax_s = (fit_relaxation(times[sel], zone_seg[sel], zone_seg_err[sel], win[0], True)
                   if sel.sum() >= 5 else dict(relax_s, status="insufficient data"))
        if np.isfinite(relax["tau_s"]):
            relax_curve[sel] = relax["y0"] * np.exp(-(times[sel] - win[0]) / relax["tau_s"])
    out = _build_dataset(ds, locals())
    verdict = build_verdict(out)
    out.attrs.update({f"verdict_{k}": v for k, v in verdict.items() if k != "table"})
    out.attrs["verdict_table"] = verdict["table"]
    return out


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
    """Labelled result of :func:`analyze` (``v`` = its local variables)."""
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


# ------------------------------------------------------------------------------ verdict
def build_verdict(mx) -> dict:
    """Answer "no intermixing on the experiment's time scale?" from an :func:`analyze` result.

    Returns a dict with ``answer`` ("supported", "not supported", "partly supported",
    "inconclusive"), ``reason`` and ``table`` (Markdown).
    """
    eq = list(mx.model.values).index("equilibrium")
    td = list(mx.model.values).index("top-down")
    t_ref_s = mx.attrs["reference_time_s"]
    n_zone = int(mx.in_zone.sum())
    rows = [("mixing-zone slabs (each species >= 10 % of the ions at the end of the drive)",
             f"{n_zone} of {mx.sizes['slab']}", "")]
    if n_zone == 0 or not np.isfinite(t_ref_s):
        return dict(answer="inconclusive", reason="no slab holds both species at the end of the drive",
                    table=_md(rows, "inconclusive"))
    k = int(np.argmin(np.abs(mx.time.values - t_ref_s)))
    d_eq = float(mx.zone_excess[eq, k])
    e_eq = float(mx.zone_excess_err[eq, k])
    d_td = float(mx.zone_excess[td, k])
    e_td = float(mx.zone_excess_err[td, k])
    sg = float(mx.zone_segregation[k])
    e_sg = float(mx.zone_segregation_err[k])
    segregated = d_eq > Z_SIGNIFICANT * e_eq and sg > 0.5
    rows += [
        (f"distance to equilibrium at end of drive (t = {t_ref_s:.4g} s), minus floor",
         f"{d_eq:.4f} +- {e_eq:.4f}", f"> {Z_SIGNIFICANT:g} s.e.: {'yes' if d_eq > Z_SIGNIFICANT * e_eq else 'no'}"),
        ("distance to top-down depletion at end of drive, minus floor", f"{d_td:.4f} +- {e_td:.4f}", ""),
        ("segregation index at end of drive (0 equilibrium, 1 top-down)", f"{sg:.3f} +- {e_sg:.3f}",
         f"> 0.5: {'yes' if sg > 0.5 else 'no'}"),
    ]
    t_drive = float(mx.attrs["drive_duration_s"])
    status = mx.attrs["relax_status"]
    tau, dtau = mx.attrs["relax_tau_s"], mx.attrs["relax_tau_err_s"]
    if np.isfinite(tau):
        rows.append(("intermixing time tau after the drive (exponential fit of the segregation index)",
                     f"{tau:.4g} +- {dtau:.3g} s ({status})", f"drive lasted {t_drive:.4g} s"))
        if np.isfinite(mx.attrs.get("relax_stretched_tau_s", np.nan)):
            rows.append(("stretched-exponential fit: tau, beta",
                         f"{mx.attrs['relax_stretched_tau_s']:.4g} s, beta = "
                         f"{mx.attrs['relax_stretched_beta']:.2f}", ""))
    else:
        rows.append(("intermixing relaxation time after the drive", status, ""))
    slow = status == "not reached within the run" or (status == "fitted" and tau > t_drive)
    fast = status in ("fitted", "already mixed") and not slow
    if not segregated:
        answer, reason = "not supported", "the populated SEDs are already intermixed at the end of the drive"
    elif slow:
        answer, reason = "supported", ("segregated (top-down-like) at the end of the drive and the "
                                       "intermixing relaxation is slower than the drive")
    elif fast:
        answer, reason = "partly supported", ("segregated while driven, but the SEDs intermix faster "
                                              "than the drive duration once it stops")
    else:
        answer, reason = "partly supported", ("segregated at the end of the drive; relaxation not "
                                              f"measured ({status})")
    return dict(answer=answer, reason=reason, table=_md(rows, f"**{answer}**: {reason}"))


def _md(rows, conclusion) -> str:
    lines = ["| quantity | value | criterion |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines) + f"\n\nDoes the run support \"no intermixing on the experiment's time scale\"? {conclusion}\n"


# ------------------------------------------------------------------------------ figures
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _pick(n, k=3):
    return sorted(set(np.linspace(0, n - 1, min(n, k)).round().astype(int).tolist()))


def figure_psed(mx):
    """Populated SEDs per species (paper Figs. 3-4 style): rows = slabs, columns = times."""
    plt = _plt()
    zone = np.flatnonzero(mx.in_zone.values)
    slabs = zone[_pick(zone.size)] if zone.size else np.array(_pick(mx.sizes["slab"]))
    t_ref = float(mx.attrs["reference_time_s"])
    k_ref = int(np.argmin(np.abs(mx.time.values - t_ref))) if np.isfinite(t_ref) else mx.sizes["time"] - 1
    tk = sorted({0, k_ref, mx.sizes["time"] - 1})
    fig, axes = plt.subplots(len(slabs), len(tk), figsize=(4.2 * len(tk), 2.8 * len(slabs)),
                             squeeze=False, sharex=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    eq = list(mx.model.values).index("equilibrium")
    E = mx.energy.values
    for i, s in enumerate(slabs):
        norm = float(mx.site_count.isel(slab=s, species=0).sum()) * (E[1] - E[0])
        for j, t in enumerate(tk):
            ax = axes[i, j]
            for k, name in enumerate(mx.species.values):
                c = colors[k % len(colors)]
                ax.plot(E, mx.site_density[s, :, k], "--", color=c, lw=0.8)
                ax.fill_between(E, mx.populated_density[t, s, :, k], color=c, alpha=0.35,
                                step="mid", label=f"{name} populated")
                ax.plot(E, mx.model_occupancy[eq, t, s, :, k] / norm, ":", color=c, lw=1.2,
                        label=f"{name} equilibrium" if (i, j) == (0, 0) else None)
                ef = float(mx.fermi_step[t, s, k])
                if np.isfinite(ef):
                    ax.axvline(ef, color=c, lw=0.8)
            ax.set_title(f"{float(mx.slab[s]):.3g} nm, t = {float(mx.time[t]):.3g} s", fontsize=8)
            if i == len(slabs) - 1:
                ax.set_xlabel("site energy, own species [eV]")
            if j == 0:
                ax.set_ylabel("density [1/eV per site]")
    axes[0, 0].legend(fontsize=6)
    fig.suptitle("populated SEDs (dashed: SED, solid line: step Fermi level, dotted: equilibrium)",
                 fontsize=9)
    return fig


def figure_distance(mx):
    """Distance to the reference pictures over time (mixing zone) and over depth."""
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    t = mx.time.values
    for j, name in enumerate(mx.model.values):
        a.errorbar(t, mx.zone_excess[j], yerr=mx.zone_excess_err[j], fmt="o-", ms=3, capsize=2,
                   label=f"{name} (minus floor)")
    a.plot(t, mx.zone_floor, "k:", label="sampling floor")
    if np.isfinite(mx.relaxation_fit.values).any():
        a.plot(t, mx.relaxation_fit, "k-", lw=1, label=f"fit, tau = {mx.attrs['relax_tau_s']:.3g} s")
    for s0, s1, d in zip(np.atleast_1d(mx.attrs["phase_starts_s"]), np.atleast_1d(mx.attrs["phase_ends_s"]),
                         mx.attrs["phase_drives"].split(", ")):
        if d == "off":
            a.axvspan(s0, s1, color="0.9", zorder=0)
    a.set_xlabel("time [s]")
    a.set_ylabel("TV distance over the mixing zone")
    a.plot(t, mx.zone_segregation, "k^-", ms=3, lw=0.8, label="segregation index (0 eq, 1 top-down)")
    a.set_title("grey: drive off", fontsize=8)
    a.legend(fontsize=7)
    t_ref = float(mx.attrs["reference_time_s"])
    for k, ls in ((int(np.argmin(np.abs(t - t_ref))) if np.isfinite(t_ref) else -1, "o-"), (-1, "s--")):
        for j, name in enumerate(mx.model.values):
            b.plot(mx.slab, mx.distance_excess[j, k], ls, ms=3, label=f"{name}, t = {t[k]:.3g} s")
    b.set_xlabel("depth [nm]")
    b.set_ylabel("TV distance minus floor")
    b.legend(fontsize=7)
    return fig


def figure_fermi(mx):
    """Step and fitted Fermi levels vs depth at the end of the drive and at the end."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    t = mx.time.values
    t_ref = float(mx.attrs["reference_time_s"])
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, ls in ((int(np.argmin(np.abs(t - t_ref))) if np.isfinite(t_ref) else -1, "-"), (-1, "--")):
        for s, name in enumerate(mx.species.values):
            c = colors[s % len(colors)]
            ax.plot(mx.slab, mx.fermi_step[k, :, s], ls, color=c, label=f"{name} step, t = {t[k]:.3g} s")
            ax.errorbar(mx.slab, mx.fermi_fit[k, :, s], yerr=mx.fermi_fit_err[k, :, s], fmt="o",
                        ms=3, color=c, mfc="none")
    ax.set_xlabel("depth [nm]")
    ax.set_ylabel("Fermi level, own landscape [eV]")
    ax.set_title("lines: step filling; circles: Fermi-function fit", fontsize=8)
    ax.legend(fontsize=7)
    return fig


FIGURES = {"mixing_psed.png": figure_psed, "mixing_distance.png": figure_distance,
           "mixing_fermi.png": figure_fermi}


# ------------------------------------------------------------------------------ command
def run_mixing(dataset_path, out_dir=None, quiet=False) -> dict:
    """`cait mixing DATASET`: analysis -> mixing.nc, mixing.md (verdict) and figures.

    Returns a dict name -> Path of the files written.
    """
    from compare.io.datasets import open_dataset, save_figure, write_dataset

    path = Path(dataset_path)
    ds = open_dataset(path)
    if ds.attrs.get("engine") != "kmc":
        raise ConfigError(f"{str(path)!r} is not a KMC dataset (engine = "
                          f"{ds.attrs.get('engine', '?')!r}); run `cait kmc run` first")
    out = Path(out_dir) if out_dir is not None else path.parent
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
    md.write_text(f"# SED mixing: {path.name}\n\nLandscape: {mx.attrs['landscape_source']}; "
                  f"{mx.attrs['n_replicas']} replica(s); {mx.sizes['slab']} slab(s).\n\n"
                  + mx.attrs["verdict_table"])
    paths["mixing.md"] = md
    for name, func in FIGURES.items():
        paths[name] = save_figure(func(mx), out / name)
    if not quiet:
        print(mx.attrs["verdict_table"])
        for p in paths.values():
            print(p)
    return paths
