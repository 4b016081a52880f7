"""Galvanostatic drive (fixed beam current) and the front-referenced electrostatics of the KMC.

Exact reference for (a) and (c): with the front blocked and no beam, every event obeys detailed
balance w.r.t. ``H = sum_i E_s(i) + W - mu_back N``, ``W = (e a c / 2) sum_g q_g^2`` the mean-field
energy (``q_g`` = charge in front of gap g, F0 included; see kmc/electrostatics.py). ``W`` depends
on the layer counts only, so summing the independent-site (Fermi) weights inside each layer gives
the exact equilibrium of the layer counts as a 1D chain: P(n) ~ prod_l w_l(n_l) exp(-beta W), with
w_l the Poisson-binomial law of layer l (binomial without disorder), solved by a transfer matrix
over the cumulative charge. Its saddle point is the discrete Poisson-Boltzmann equation; the
transfer matrix is exact also at strong coupling (beta e a c = 7.3 per ion for 5 x 6 at eps_r 8),
where Poisson-Boltzmann is not.

(b) A disorder-free lattice gas (native and foreign species identical, so labels do not change
the dynamics; the foreign ions stay away from the back) driven by the beam: the back current must
equal the beam current and the bulk field the one that carries it in the exclusion process,
``R = m theta (1 - theta) Gamma 2 sinh(beta e a E / 2)`` per gap (product measure; its linear
response is ``E = j / sigma_KMC``, ``sigma_KMC = e^2 n Gamma a^2 (1 - theta) / kT``, the
Nernst-Einstein conductivity of the lattice-gas jump D; sinh correction 0.4 % here).

Statistics: block means (a, c) or replicas (b); every check within N_SE standard errors.
Measured (this machine, seeded): see docs/kmc.md "Validation".
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.constants as sc

from kmc import _kernel as K
from kmc.engine import KMCParams, Phase, Simulation, Species
from kmc.lattice import Gaussian

N_SE = 4.0
FLAT = Gaussian(0.0, 0.0)


def layer_weights(E_eV, mu_eV, kT_eV, nx, m):
    """Poisson-binomial law of the ion count of each layer for independent Fermi sites.

    Returns ndarray of float64, shape (nx, m + 1): ``w[l, n]`` = P(n ions in layer l).
    """
    p = 1.0 / (1.0 + np.exp(np.clip((np.asarray(E_eV).reshape(nx, m) - mu_eV) / kT_eV, -700, 700)))
    w = np.zeros((nx, m + 1))
    w[:, 0] = 1.0
    for k in range(m):
        pk = p[:, k:k + 1]
        w[:, 1:] = w[:, 1:] * (1.0 - pk) + w[:, :-1] * pk
        w[:, 0] *= 1.0 - p[:, k]
    return w


def exact_layer_means(w, n_bg, F0, beta_eac):
    """Exact <n_l> of P(n) ~ prod_l w[l, n_l] exp(-beta_eac/2 sum_{g=1}^{nx} q_g^2),
    ``q_g = F0 + sum_{l<g} (n_l - n_bg)`` (transfer matrix over q; checked against brute force
    on small chains while writing this test)."""
    nx, m1 = w.shape
    lo = F0 - nx * n_bg
    q = np.arange(lo, F0 + nx * (m1 - 1 - n_bg) + 1)
    nq = q.size
    phi = np.exp(-0.5 * beta_eac * q.astype(float) ** 2)

    def shift(v, s):
        out = np.zeros(nq)
        if s >= 0:
            out[s:] = v[:nq - s]
        else:
            out[:s] = v[-s:]
        return out

    alpha = np.zeros((nx + 1, nq))
    alpha[0, F0 - lo] = 1.0
    for g in range(nx):
        a = sum(w[g, n] * shift(alpha[g], n - n_bg) for n in range(m1)) * phi
        alpha[g + 1] = a / a.sum()
    beta = np.ones((nx + 1, nq))
    for g in range(nx - 1, -1, -1):
        f = phi * beta[g + 1]
        b = sum(w[g, n] * shift(f, n_bg - n) for n in range(m1))
        beta[g] = b / b.max()
    means = np.zeros(nx)
    for l in range(nx):
        f = phi * beta[l + 1]
        pn = np.array([w[l, n] * alpha[l] @ shift(f, n_bg - n) for n in range(m1)])
        means[l] = np.arange(m1) @ pn / pn.sum()
    return means


def block_mean_se(x, n_blocks=20):
    """Mean and standard error from ``n_blocks`` contiguous block means (axis 0)."""
    x = np.asarray(x, dtype=float)
    x = x[: x.shape[0] // n_blocks * n_blocks]
    b = x.reshape(n_blocks, -1, *x.shape[1:]).mean(axis=1)
    return b.mean(axis=0), b.std(axis=0, ddof=1) / np.sqrt(n_blocks)


def test_exact_layer_means_match_brute_force():
    import itertools
    rng = np.random.default_rng(0)
    w = rng.random((3, 4))
    w /= w.sum(axis=1, keepdims=True)
    Z, S = 0.0, np.zeros(3)
    for ns in itertools.product(range(4), repeat=3):
        q = np.cumsum(np.array(ns) - 2) + 1
        p = np.prod(w[[0, 1, 2], list(ns)]) * np.exp(-0.45 * (q ** 2).sum())
        Z += p
        S += p * np.array(ns)
    np.testing.assert_allclose(exact_layer_means(w, 2, 1, 0.9), S / Z, rtol=1e-12)


def test_no_beam_keeps_the_bulk_neutral_at_strong_coupling():
    """(a) The scenario that ran away before (16 x 5 x 6, eps_r 8, 250 meV SED, E_back = 0,
    natives blocked at the front): 47 Li entered through the back in 0.02 s, fields -2e10 V/m.
    Now: the total ion count stays neutral (the exact Gibbs mean, 0.035 e below neutral for this
    landscape) and no gap field exceeds 3 c (exact weight of |q| = 3 relative to 0: e^-33)."""
    species = (Species("Li", E_DC_eV=0.63), Species("K", role="foreign", E_DC_eV=0.69, rho=1.0))
    T = 0.2
    p = KMCParams(nx=16, ny=5, nz=6, species=species, native_sampler=Gaussian.from_fwhm(0.25),
                  eps_r=8.0, phases=(Phase("K", T, back_field_V_per_m=0.0, theta_front=0.0),),
                  output_times_s=tuple(np.linspace(0.0, T, 801)), record_histograms=False)
    sim = Simulation(p, 1).run()
    c = sim.c_V_per_m
    beta_eac = c * sim.a_m / sim.kT_eV
    assert beta_eac == pytest.approx(7.28, abs=0.01)
    excess = sim.state["r_cnt"][1:].sum(axis=(1, 2)) - 16 * sim.n_bg
    mean, se = block_mean_se(excess)
    w = layer_weights(sim.site_energies()[0], sim.mu_back_eV, sim.kT_eV, 16, 30)
    exact = exact_layer_means(w, sim.n_bg, 0, beta_eac).sum() - 16 * sim.n_bg
    assert abs(exact) < 0.05                      # the exact equilibrium is neutral
    assert abs(mean - exact) < N_SE * se, (mean, se, exact)
    assert np.abs(sim.state["r_E"]).max() <= 3 * c * (1 + 1e-12)
    ctr = sim.state["counters"][0]
    assert ctr[K.C_BACK_IN] > 1000 and abs(int(ctr[K.C_BACK_IN]) - int(ctr[K.C_BACK_OUT])) <= 3
    assert sim.state["ist"][K.S_F0] == 0


def test_beam_off_front_blocked_equilibrium_profile_is_exact():
    """(c) Detailed balance: a front surface charge F0 = 5 (set by a short galvanostatic phase
    with no beam, carried into an "off" phase) is screened by the disorder-free lattice gas;
    the time-averaged layer occupancies equal the exact Gibbs profile layer by layer."""
    nx, ny, nz, F0 = 8, 5, 6, 5
    species = (Species("Li", E_DC_eV=0.0, nu_Hz=1.0),
               Species("K", role="foreign", E_DC_eV=0.0, nu_Hz=1.0, rho=1.0))
    base = dict(nx=nx, ny=ny, nz=nz, species=species, native_sampler=FLAT, eps_r=80.0,
                record_histograms=False)
    c = Simulation(KMCParams(phases=(Phase(None, 1.0, drive="off"),), **base), 0).c_V_per_m
    times = 100.0 + np.arange(4000)          # unit hop rate: ~130 events between samples
    p = KMCParams(phases=(Phase("K", 1e-9, back_field_V_per_m=(F0 + 0.2) * c, theta_front=0.0),
                          Phase(None, times[-1] + 1.0, drive="off")),
                  output_times_s=tuple(times), **base)
    sim = Simulation(p, 1).run()
    assert sim.state["ist"][K.S_F0] == F0
    np.testing.assert_allclose(sim.to_dataset()["front_charge"], F0, atol=1e-9)
    mean, se = block_mean_se(sim.state["r_cnt"][:, 0, :])
    m = ny * nz
    w = np.tile(layer_weights(np.zeros(m), sim.mu_back_eV, sim.kT_eV, 1, m), (nx, 1))
    exact = exact_layer_means(w, sim.n_bg, F0, c * sim.a_m / sim.kT_eV)
    z = (mean - exact) / se
    assert np.all(np.abs(z) < N_SE), (mean, se, exact)
    assert exact[0] < sim.n_bg - 3.5           # the test has teeth: layer 0 screens F0
    assert mean.sum() - nx * sim.n_bg == pytest.approx(-F0, abs=0.2)   # overall neutral


@pytest.mark.slow
def test_beam_current_reaches_the_back_and_sets_the_ohmic_field():
    """(b) 16 x 20 x 20 disorder-free lattice gas, eps_r 200, beam current for q E a / 2kT = 0.15
    in the bulk; the field starts at 0 (E_back = 0) and builds up from the beam charge.
    Averages over [T1, T2] (2.5 layers of charge delivered), replicas over seeds."""
    nx, ny, nz, theta, h = 16, 20, 20, 0.9, 0.15
    m = ny * nz
    species = (Species("Li", E_DC_eV=0.0, nu_Hz=1.0),
               Species("K", role="foreign", E_DC_eV=0.0, nu_Hz=1.0, rho=1.0))
    R = m * theta * (1 - theta) * 2 * np.sinh(h)          # ions/s through a bulk gap (Gamma = 1)
    probe = Simulation(KMCParams(nx=nx, ny=ny, nz=nz, species=species, native_sampler=FLAT,
                                 phases=(Phase(None, 1.0, drive="off"),)), 0)
    a, kT = probe.a_m, probe.kT_eV
    j = R * sc.e / (m * a * a)
    E_exact = 2 * kT * h / a                   # the bulk field that carries R [V/m]
    sigma = sc.e * (theta / a ** 3) * (1 - theta) * a * a / kT   # e^2 n Gamma a^2 (1-theta) / kT
    assert j / sigma == pytest.approx(E_exact * np.sinh(h) / h, rel=1e-9)
    T1 = 20.0                                  # >> dielectric relaxation time (~1.3 s)
    T2 = T1 + 2.5 * m / R
    times = np.linspace(T1, T2, 201)
    rows = []
    for seed in range(6):
        p = KMCParams(nx=nx, ny=ny, nz=nz, species=species, native_sampler=FLAT, eps_r=200.0,
                      phases=(Phase("K", T2, back_field_V_per_m=0.0, theta_front=theta,
                                    beam_current_A_per_m2=j),),
                      output_times_s=tuple(times), record_histograms=False)
        sim = Simulation(p, seed)
        assert sim.fp[K.F_RBEAM] == pytest.approx(R, rel=1e-12)
        ds = sim.run().to_dataset()
        out = ds["back_net_out"].sel(species="Li").values
        k_back = float(ds["concentration"].sel(species="K").isel(depth=-1).mean())
        rows.append(((out[-1] - out[0]) / (T2 - T1),
                     ds["field"].values[:, nx - 5:].mean(), k_back))
    r = np.array(rows)
    mean, se = r.mean(axis=0), r.std(axis=0, ddof=1) / np.sqrt(len(r))
    print(f"back current {mean[0]:.4g} +- {se[0]:.2g} /s (beam {R:.4g}); bulk field "
          f"{mean[1]:.4g} +- {se[1]:.2g} V/m (exact {E_exact:.4g})")
    assert mean[2] < 0.02                       # labels never reach the back: one lattice gas
    assert abs(mean[0] - R) < N_SE * se[0], (mean[0], se[0], R)
    assert se[0] < 0.03 * R
    assert abs(mean[1] - E_exact) < N_SE * se[1], (mean[1], se[1], E_exact)
    assert se[1] < 0.03 * E_exact


def test_input_beam_current_is_the_npp_ohmic_current():
    """`params_from_config`: j = e^2 n_bulk D_native E_back / kT (the current NPP carries with
    its back field fixed); potentiostatic and off phases get no beam."""
    from compare.io.config import load_config, parse_text
    from compare import scenario
    from tests.conftest import INPUTS
    cfg = load_config(INPUTS / "li3b7o12_k_cait.toml")
    ph, cph = scenario.kmc_params(cfg).phases[0], cfg.beam[0]
    assert ph.drive == "galvanostatic"
    j = (sc.e ** 2 * cfg.material.n_bulk_cm3 * 1e6 * cfg.native.D_cm2_s * 1e-4
         * cph.back_field_V_per_m / (sc.k * cfg.material.temperature_K))
    assert ph.beam_current_A_per_m2 == pytest.approx(j, rel=1e-12) and j > 0
    text = cfg.text.replace('drive = "galvanostatic"', 'drive = "potentiostatic"').replace(
        "back_field_V_per_m = 9882.0", "voltage_V = 3.0")
    pot = scenario.kmc_params(parse_text(text, base_dir=INPUTS)).phases[0]
    assert pot.drive == "potentiostatic" and pot.beam_current_A_per_m2 == 0.0
