"""compare.workflows.mixing on synthetic occupancy records whose answer is known exactly.

* occupancies drawn from the two-species generalised Fermi function (explicit formula here,
  not the module's solver): the distance to the equilibrium picture is zero within its sampling
  floor, the distance to top-down depletion is large, and the solved chemical potentials agree
  with the true ones within their standard error (from the linear response of the counts);
* the top-down-depleted state (built here independently): distance to top-down exactly 0,
  distance to equilibrium far above the floor;
* a relaxation from top-down to equilibrium with a known time constant: the fitted tau agrees
  within N_SIGMA fit errors, and the verdicts follow.
"""
import numpy as np
import pytest
import xarray as xr

from compare.workflows import mixing as mx
from compare.workflows import mixing_models as mm

N_SIGMA = 5.0
KT = 0.025852
NX, M, LPS = 8, 2500, 2          # 8 layers of 2500 sites, 2 layers per slab -> 4 slabs
N_SITES = NX * M
EDGES = np.linspace(-0.6, 0.6, 41)
F_VAC = 0.10
MU_TRUE = np.array([-0.02, 0.06])   # eV; gives roughly 45 % / 40 % of the sites


def landscape(rng):
    z = rng.standard_normal(N_SITES)
    e0 = 0.10 * z
    e1 = 0.05 + 0.08 * (0.5 * z + np.sqrt(0.75) * rng.standard_normal(N_SITES))
    return np.vstack([e0, e1])


def gen_fermi(E, mu):
    """Explicit generalised Fermi function, shape (2, n)."""
    w = np.exp(-(E - mu[:, None]) / KT)
    return w / (1.0 + w.sum(axis=0))


def draw(q, rng):
    """Species index per site (-1 vacant) from per-site probabilities q (2, n)."""
    u = rng.random(q.shape[1])
    c = np.cumsum(q, axis=0)
    sp = (u[None, :] >= c).sum(axis=0)
    return np.where(sp >= q.shape[0], -1, sp)


def top_down_state(E, n_nat, n_for):
    """Natives on their lowest n_nat sites; foreign on the lowest-foreign-energy vacated sites."""
    occ = np.full(E.shape[1], -1)
    rank = np.empty(E.shape[1], dtype=int)
    rank[np.argsort(E[0])] = np.arange(E.shape[1])
    occ[rank < n_nat] = 0
    n0 = int(round((1 - F_VAC) * E.shape[1]))
    vac = np.flatnonzero((rank >= n_nat) & (rank < n0))
    assert n_for <= vac.size
    occ[vac[np.argsort(E[1, vac])[:n_for]]] = 1
    return occ


def per_slab(E, fn):
    """Apply fn(E_slab, slab_index) -> occupancy to every slab, concatenate."""
    S = M * LPS
    return np.concatenate([fn(E[:, k * S:(k + 1) * S], k) for k in range(NX // LPS)])


def dataset(E, states, times):
    n_slab = NX // LPS
    slab = (np.arange(N_SITES) // M) // LPS
    bins = mx.bin_index(E, EDGES)
    sc = np.zeros((n_slab, 40, 2), dtype=np.int64)
    for k in range(2):
        np.add.at(sc[:, :, k], (slab, bins[k]), 1)
    oc = np.zeros((len(states), n_slab, 40, 2), dtype=np.int64)
    for t, st in enumerate(states):
        for k in range(2):
            sel = st == k
            np.add.at(oc[t, :, :, k], (slab[sel], bins[k][sel]), 1)
    a_nm = 0.4
    return xr.Dataset(
        {"site_count": (("slab", "energy", "species"), sc),
         "occupancy_count": (("time", "slab", "energy", "species"), oc)},
        coords={"time": np.asarray(times, float), "energy": 0.5 * (EDGES[1:] + EDGES[:-1]),
                "species": ["Li", "K"], "slab": (np.arange(n_slab) + 0.5) * LPS * a_nm},
        attrs={"engine": "kmc", "kT_eV": KT, "a_nm": a_nm, "nx": NX, "ny": 50, "nz": 50})


PHASES = (mm.PhaseSpan(0.0, 1.0, "galvanostatic"), mm.PhaseSpan(1.0, 3.0, "off"))


def analyze(E, states, times):
    return mx.analyze(dataset(E, states, times), landscape=mx.Landscape([E], M), phases=PHASES,
                      vacancy_fraction=F_VAC, seed=1)


@pytest.fixture(scope="module")
def land():
    return landscape(np.random.default_rng(11))


@pytest.fixture(scope="module")
def equilibrium_result(land):
    rng = np.random.default_rng(12)
    q = gen_fermi(land, MU_TRUE)
    times = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    return q, analyze(land, [draw(q, rng) for _ in times], times)


def test_equilibrium_draws_are_at_zero_distance_from_equilibrium(equilibrium_result):
    _, r = equilibrium_result
    ex = r.distance_excess.sel(model="equilibrium").values
    sd = r.distance_floor_sd.values
    # independent draws: the mean excess has standard error sd / sqrt(n)
    se = np.sqrt(np.mean(sd ** 2) / ex.size)
    assert abs(ex.mean()) < N_SIGMA * se, (ex.mean(), se)
    td = r.distance_excess.sel(model="top-down").values
    assert td.min() > 20 * sd.max(), (td.min(), sd.max())
    assert r.attrs["verdict_answer"] == "not supported"


def test_equilibrium_chemical_potentials_recovered(equilibrium_result, land):
    q, r = equilibrium_result
    S = M * LPS
    for k in range(NX // LPS):
        qs = q[:, k * S:(k + 1) * S]
        # counts of independent categorical sites: Cov(N) = sum(diag q - q q^T) = kT dN/dmu
        C = np.diag(qs.sum(axis=1)) - qs @ qs.T
        se = KT * np.sqrt(np.diag(np.linalg.inv(C)))
        mu = r.mu_equilibrium.isel(slab=k).values        # (time, species)
        e = np.abs(mu - MU_TRUE[None, :]) / se[None, :]
        assert e.max() < N_SIGMA, (k, mu, se)


def test_top_down_state_is_at_zero_distance_from_top_down(land):
    n_slab_sites = M * LPS
    n_nat, n_for = int(0.40 * n_slab_sites), int(0.45 * n_slab_sites)
    st = per_slab(land, lambda Es, k: top_down_state(Es, n_nat, n_for))
    times = [0.5, 1.0, 2.0, 3.0]
    r = analyze(land, [st] * len(times), times)
    np.testing.assert_allclose(r.distance.sel(model="top-down").values, 0.0, atol=1e-12)
    sd = r.distance_floor_sd.values
    assert (r.distance_excess.sel(model="equilibrium").values > 20 * sd).all()
    # the step Fermi level of the natives is their highest occupied energy (within a bin)
    for k in range(NX // LPS):
        Es = land[0, k * n_slab_sites:(k + 1) * n_slab_sites]
        e_top = np.sort(Es)[n_nat - 1]
        assert abs(float(r.fermi_step.isel(time=0, slab=k, species=0)) - e_top) < EDGES[1] - EDGES[0]
    # frozen segregation after the drive: "supported"
    assert r.attrs["relax_status"] == "not reached within the run"
    assert r.attrs["verdict_answer"] == "supported"


def test_relaxation_time_recovered(land):
    rng = np.random.default_rng(13)
    tau = 0.4
    q_eq = gen_fermi(land, MU_TRUE)
    S = M * LPS
    # top-down state with the equilibrium's expected counts in each slab
    st_td = per_slab(land, lambda Es, k: top_down_state(
        Es, int(round(q_eq[0, k * S:(k + 1) * S].sum())), int(round(q_eq[1, k * S:(k + 1) * S].sum()))))
    occ_td = np.vstack([st_td == 0, st_td == 1]).astype(float)
    times = np.concatenate([[0.5, 1.0], 1.0 + np.linspace(0.1, 2.0, 14)])
    states = []
    for t in times:
        w = 1.0 if t <= 1.0 else np.exp(-(t - 1.0) / tau)
        states.append(draw(w * occ_td + (1 - w) * q_eq, rng))
    r = analyze(land, states, times)
    assert r.attrs["relax_status"] == "fitted"
    e = abs(r.attrs["relax_tau_s"] - tau) / r.attrs["relax_tau_err_s"]
    assert e < N_SIGMA, (r.attrs["relax_tau_s"], r.attrs["relax_tau_err_s"])
    assert r.attrs["verdict_answer"] == "partly supported"
