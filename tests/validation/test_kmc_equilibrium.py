"""Equilibrium occupancy vs site energy: Fermi-Dirac (one species), generalised Fermi (two).

Periodic 8^3 lattice, half filled, Gaussian landscape (sigma 50 meV, so that the deepest
binned sites still equilibrate within the budget). Occupancy per energy bin = occupied / sites,
averaged over snapshots; SE from 20 independent blocks of snapshots; each bin within 4 SE of
the exact bin average of p(E_i) over the realised sites (canonical vs grand-canonical
difference is O(1/N) ~ 0.2 %, below the SE). The one-species case also runs with the bond cap
(``acceleration = "bond-cap"``), which must leave equilibrium exact.
"""
import numpy as np
import pytest
from scipy.optimize import fsolve

from kmc.engine import KMCParams, Simulation, Species, fermi_level
from kmc.lattice import Gaussian

N_SE = 4.0


def _run(species, x, model, n_snap, dt, **kw):
    L = 8
    p = KMCParams(nx=L, ny=L, nz=L, species=species, native_sampler=Gaussian(0.0, 0.05),
                  geometry="periodic", n_ions=L**3 // 2, composition_x=x, rate_model=model,
                  n_energy_bins=8, energy_range_eV=(-0.12, 0.12),
                  output_times_s=tuple((np.arange(n_snap) + 1) * dt), **kw)
    sim = Simulation(p, seed=7)
    sim.equilibrate(200_000)
    return sim.run(chunk_events=10**8)


def _compare(sim, p_site, s, n_blocks=20):
    """Binned occupancy of species s against the exact per-site probabilities p_site."""
    hist = sim.state["r_hist"][:, 0, :, s].astype(float)           # (snap, bin)
    sites = sim.site_hist[0, :, s].astype(float)
    keep = sites >= 20
    occ = hist[:, keep] / sites[keep]
    blocks = occ.reshape(n_blocks, -1, occ.shape[1]).mean(axis=1)
    mean = blocks.mean(axis=0)
    se = blocks.std(axis=0, ddof=1) / np.sqrt(n_blocks)
    eb = sim.ebin[s]
    exact = np.array([p_site[eb == b].mean() for b in np.flatnonzero(keep)])
    z = (mean - exact) / se
    for b, m_, e_, se_ in zip(np.flatnonzero(keep), mean, exact, se):
        print(f"  species {s} bin {b}: {m_:.4f} +- {se_:.4f}  exact {e_:.4f}")
    assert np.all(np.abs(z) < N_SE), z


@pytest.mark.parametrize("cap", [None, 3.5], ids=["plain", "bond-cap"])
def test_single_species_occupancy_is_fermi_dirac(cap):
    # the bond cap (docs/acceleration.md) keeps detailed balance bond by bond: equilibrium must
    # stay exact with a cap (3.5 kT above the bulk activation energy) that slows many bonds
    kw = {} if cap is None else {"acceleration": "bond-cap", "bond_cap_kT": cap}
    sim = _run((Species("A", E_DC_eV=0.3),), 1.0, "trap", 400, 2e-9, **kw)
    if cap is not None:
        b = sim.bfac[0].astype(float).reshape(8, 8, 8)
        bcap = np.exp(-sim.bond_cap_eV / sim.kT_eV)
        share = np.mean([np.minimum(b, np.roll(b, 1, axis=ax)) > bcap for ax in range(3)])
        print(f"bonds capped: {share:.2f}")
        assert share > 0.3
    E = sim.site_energies()[0]
    kT = sim.kT_eV
    mu = fermi_level(E, sim.n_sites // 2, kT)
    _compare(sim, 1.0 / (1.0 + np.exp((E - mu) / kT)), 0)


def test_two_species_occupancy_is_generalised_fermi():
    sp = (Species("A", E_DC_eV=0.3),
          Species("B", role="foreign", E_DC_eV=0.3, mu_eV=0.02, sigma_eV=0.05, rho=0.5))
    sim = _run(sp, 0.5, "metropolis", 400, 6e-13)  # Metropolis hops at ~nu: short times
    E = sim.site_energies()
    kT = sim.kT_eV
    n = sim.state["cnt"].sum(axis=1)

    def probs(mus):
        w = np.exp(-(E - np.asarray(mus)[:, None]) / kT)
        return w / (1.0 + w.sum(axis=0))

    mus = fsolve(lambda m: probs(m).sum(axis=1) - n, x0=[0.0, 0.0], xtol=1e-13)
    p = probs(mus)
    for s in range(2):
        _compare(sim, p[s], s)
