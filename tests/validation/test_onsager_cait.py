"""Independent checks of the CAIT transformation of docs/onsager.md.

1. Ideal lattice gas, no correlations (diagonal L = D n / kT): the interdiffusion coefficient from
   the general formula equals the Nernst-Planck / Helfferich ion-exchange result
   D_12 = D1 D2 (c1 + c2)/(c1 D1 + c2 D2).
2. The same by brute force: Nernst-Planck fluxes with electroneutral exchange (grad n2 = -grad n1),
   the field found numerically (brentq) from the current J1 + J2 = j.
3. Full L with off-diagonals and the lattice-gas chemical potential mu_s = kT ln(c_s/(1-c1-c2)),
   gradients by finite differences of mu along a linear exchange profile, field by brentq:
   the Onsager fluxes equal the Nernst-Planck fluxes with D_eff from D_eff_from_L.
4. The exchange thermodynamic factor of the ideal lattice gas is 1 (vacancy terms cancel).
"""
import numpy as np
import pytest
from scipy import constants, optimize

from continuum import onsager as O

T = 300.0
KT = constants.k * T
N_S = 1.4e28 / 0.9  # sites [1/m^3]
C_TOT = 0.9  # ion filling, kept by the 1:1 exchange


def err(y, y_true, atol, rtol):
    y, y_true = np.asarray(y, float), np.asarray(y_true, float)
    return np.max(np.abs(y - y_true) / (atol + rtol * np.abs(y_true)))


def field_from_current(flux_of_psi, j):
    """psi' = e dphi/dx / kT [1/m] such that J1 + J2 = j (bracketed root, no algebra shared)."""
    f = lambda psi: sum(flux_of_psi(psi)) - j  # noqa: E731
    lo, hi = -1e12, 1e12
    return optimize.brentq(f, lo, hi, xtol=1e-30, rtol=1e-15, maxiter=500)


def np_fluxes(D, n, grad_n1, psi):
    """Nernst-Planck fluxes of two monovalent ions with grad n2 = -grad n1."""
    g = np.array([grad_n1, -grad_n1])
    return -D * (g + n * psi)


@pytest.mark.parametrize("c1", [0.05, 0.3, 0.85])
@pytest.mark.parametrize("ratio", [1e-3, 0.1, 10.0])
def test_ideal_lattice_gas_gives_helfferich(c1, ratio):
    D = np.array([1e-15, 1e-15 * ratio])
    n = np.array([c1, C_TOT - c1]) * N_S
    L = O.L_diagonal_from_D_eff(D, n, T)
    d_formula = O.interdiffusion_coefficient(L, n, T)
    d_helfferich = D[0] * D[1] * (n[0] + n[1]) / (n[0] * D[0] + n[1] * D[1])
    assert err(d_formula, d_helfferich, 0, 1e-13) < 5
    assert err(O.nernst_planck_interdiffusion(*D, *n), d_helfferich, 0, 1e-15) < 5

    # brute force, zero current: J1 = -D12 grad n1
    grad = 1e-3 * N_S / 1e-7  # 0.1 % of N_s over 100 nm
    psi = field_from_current(lambda p: np_fluxes(D, n, grad, p), 0.0)
    J = np_fluxes(D, n, grad, psi)
    assert err(-J[0] / grad, d_helfferich, 0, 1e-9) < 5
    assert err(J[0], -J[1], 0, 1e-9) < 5


def lattice_gas_onsager_fluxes(L, c1_of_x, x0, dx, psi):
    """Onsager fluxes with lattice-gas chemical potentials, gradients by central differences."""
    def mu(x):
        c1 = c1_of_x(x)
        return np.array(O.lattice_gas_chemical_potentials(c1, C_TOT - c1, T))
    grad_mu = (mu(x0 + dx) - mu(x0 - dx)) / (2 * dx)
    grad_mu_tilde = grad_mu + KT * psi  # e grad phi = kT psi
    return -L @ grad_mu_tilde


@pytest.mark.parametrize("current_A_m2", [0.0, 1e-3])
@pytest.mark.parametrize("l12", [-0.4, 0.0, 0.3, 0.95])
@pytest.mark.parametrize("c1", [0.1, 0.6])
def test_onsager_with_off_diagonal_equals_npp_with_D_eff(c1, l12, current_A_m2):
    Ld = O.L_diagonal_from_D_eff(np.array([3e-16, 2e-15]), np.array([c1, C_TOT - c1]) * N_S, T)
    L12 = l12 * min(Ld[0, 0], Ld[1, 1])
    L = Ld + np.array([[0.0, L12], [L12, 0.0]])
    slope = 1e-3 / 1e-7  # site fraction per metre: linear exchange profile
    c1_of_x = lambda x: c1 + slope * x  # noqa: E731
    j = current_A_m2 / constants.e
    dx = 1e-12
    psi_o = field_from_current(lambda p: lattice_gas_onsager_fluxes(L, c1_of_x, 0.0, dx, p), j)
    J_onsager = lattice_gas_onsager_fluxes(L, c1_of_x, 0.0, dx, psi_o)

    n = np.array([c1, C_TOT - c1]) * N_S
    D_eff = O.D_eff_from_L(L, n, T)
    grad_n1 = slope * N_S
    psi_n = field_from_current(lambda p: np_fluxes(D_eff, n, grad_n1, p), j)
    J_npp = np_fluxes(D_eff, n, grad_n1, psi_n)
    scale = np.abs(J_onsager).max()
    # finite differences of mu over 1e-12 m: truncation ~1e-13 relative, round-off ~1e-8
    assert err(J_npp, J_onsager, 1e-7 * scale, 1e-7) < 5
    # the closed-form fluxes agree as well
    J_closed = O.cait_fluxes(L, n, grad_n1, T, current_A_m2)
    assert err(J_closed, J_onsager, 1e-7 * scale, 1e-7) < 5
    # the NPP field differs from the Onsager one only if L12 != 0 (then it is not a physical
    # field but the parametrisation's); with L12 = 0 both must coincide
    if l12 == 0.0:
        assert err(psi_n, psi_o, 1e-7 * abs(psi_o) + 1.0, 1e-7) < 5


@pytest.mark.parametrize("c1", [0.02, 0.45, 0.88])
def test_lattice_gas_exchange_thermodynamic_factor_is_one(c1):
    mu = lambda n1, n2: O.lattice_gas_chemical_potentials(n1 / N_S, n2 / N_S, T)  # noqa: E731
    gamma = O.exchange_thermodynamic_factor(mu, c1 * N_S, (C_TOT - c1) * N_S, T)
    assert err(gamma, 1.0, 0, 1e-8) < 5
