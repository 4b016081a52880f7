"""SED mixing, the reference pictures and their statistics (used by :mod:`compare.workflows.mixing`).

* Fermi levels: step filling and a Fermi-function fit of the occupation;
* reference occupancies (registry :data:`MODELS`): ``"top-down"`` depletion and the two-species
  ``"equilibrium"`` lattice gas;
* distances between occupancy histograms, the segregation index and its sampling floor;
* the beam schedule as :class:`PhaseSpan` s and the relaxation fit after the drive.

Definitions in docs/mixing.md.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from compare.errors import ConfigError

N_NULL_DRAWS = 16          # parametric draws per (replica, time, slab) for the sampling floor
MIN_IONS_FIT = 20          # fewer ions of a species in a slab: no Fermi fit (NaN)
Z_SIGNIFICANT = 3.0        # "significantly > 0" means more than 3 standard errors


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
