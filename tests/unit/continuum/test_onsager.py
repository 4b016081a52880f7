"""Unit tests of continuum.onsager: conversions, reduction to paper eqns (8)-(9), checks."""
import numpy as np
import pytest
from scipy import constants

from continuum import onsager as O


def err(y, y_true, atol, rtol):
    y, y_true = np.asarray(y, float), np.asarray(y_true, float)
    return np.max(np.abs(y - y_true) / (atol + rtol * np.abs(y_true)))


T = 300.0
KT = constants.k * T
N = np.array([0.3, 0.6]) * 1.4e28  # native, foreign [1/m^3]
D = np.array([2e-16, 5e-15])  # [m^2/s]


def test_diagonal_round_trip_is_eqns_8_9():
    L = O.L_diagonal_from_D_eff(D, N, T)
    assert err(np.diag(L), D * N / KT, 0, 1e-15) < 5 and L[0, 1] == 0.0
    assert err(O.D_eff_diagonal(L, N, T), D, 0, 1e-15) < 5
    # the general CAIT transformation reduces to eqns (8)-(9) when L12 = 0
    assert err(O.D_eff_from_L(L, N, T), D, 0, 1e-14) < 5


@pytest.mark.parametrize("l12_frac", [-0.5, 0.0, 0.2, 0.9, 3.0])
def test_round_trip_with_off_diagonal(l12_frac):
    L0 = O.L_diagonal_from_D_eff(D, N, T)
    L12 = l12_frac * min(L0[0, 0], L0[1, 1])  # row sums stay positive
    L = np.array([[L0[0, 0], L12], [L12, L0[1, 1]]])
    d_eff = O.D_eff_from_L(L, N, T)
    back = O.L_from_D_eff(d_eff, N, T, L12=L12)
    assert err(back, L, 1e-14 * np.abs(L).max(), 1e-12) < 5
    # and with a thermodynamic factor
    d_eff = O.D_eff_from_L(L, N, T, thermodynamic_factor=1.7)
    back = O.L_from_D_eff(d_eff, N, T, L12=L12, thermodynamic_factor=1.7)
    assert err(back, L, 1e-14 * np.abs(L).max(), 1e-12) < 5


def test_D_eff_with_gamma_scales_linearly():
    L = np.array([[3.0, 0.5], [0.5, 2.0]]) * 1e20
    assert err(O.D_eff_from_L(L, N, T, 2.5), 2.5 * O.D_eff_from_L(L, N, T), 0, 1e-14) < 5


def test_transference_numbers():
    L = np.array([[3.0, -0.5], [-0.5, 2.0]])
    t = O.transference_numbers(L)
    assert err(t, [2.5 / 4.0, 1.5 / 4.0], 0, 1e-15) < 5 and err(t.sum(), 1.0, 0, 1e-15) < 5


@pytest.mark.parametrize("L, match", [
    ([[1.0, 0.2], [0.3, 1.0]], r"not symmetric \(reciprocal relations\): L\[0,1\] = 0.2 but L\[1,0\] = 0.3"),
    ([[1.0, 2.0], [2.0, 1.0]], "not positive semi-definite: smallest eigenvalue -1"),
    ([[-1.0, 0.0], [0.0, 1.0]], r"negative diagonal entry L\[0,0\] = -1"),
    ([[1.0, np.nan], [np.nan, 1.0]], "non-finite"),
    ([1.0, 2.0], r"must be square \(m, m\), got shape \(2,\)"),
])
def test_check_onsager_matrix_errors(L, match):
    with pytest.raises(O.OnsagerError, match=match):
        O.check_onsager_matrix(L)


def test_check_accepts_psd_and_symmetrises():
    L = np.array([[1.0, 1.0 + 1e-13], [1.0, 1.0]])  # singular PSD, round-off asymmetry
    sym = O.check_onsager_matrix(L)
    assert sym[0, 1] == sym[1, 0]


def test_cait_transformation_errors():
    # PSD but L11 + L12 < 0: a negative transference number, not representable by NPP D's
    L = np.array([[1.0, -1.5], [-1.5, 4.0]])
    O.check_onsager_matrix(L)
    with pytest.raises(O.OnsagerError, match="L11 \\+ L12 = -0.5 <= 0: transference number of "
                                             "species 1 is not positive"):
        O.D_eff_from_L(L, N, T)
    with pytest.raises(O.OnsagerError, match="det\\(L\\) = 0 <= 0"):
        O.D_eff_from_L(np.array([[1.0, 1.0], [1.0, 1.0]]), N, T)
    with pytest.raises(O.OnsagerError, match="needs a 2x2"):
        O.D_eff_from_L(np.eye(3), N, T)
    # det = p r + L12 (p + r) < 0 with positive diagonals for -min(p, r) < L12 < -p r/(p + r)
    p, r = D * N / KT
    with pytest.raises(O.OnsagerError, match="not positive semi-definite"):
        O.L_from_D_eff(D, N, T, L12=-0.5 * (min(p, r) + p * r / (p + r)))
    with pytest.raises(O.OnsagerError, match="`n_m3` must be finite and > 0"):
        O.D_eff_from_L(np.eye(2), [1.0, 0.0], T)
    with pytest.raises(O.OnsagerError, match="`temperature_K` must be > 0"):
        O.D_eff_from_L(np.eye(2), N, -3.0)


def test_tracer_quantities():
    assert O.haven_ratio(1e-16, 4e-16) == pytest.approx(0.25)
    assert O.D_eff_paper_from_tracer(3e-16) == pytest.approx(6e-16)
    # D_eff = D_sigma and H_R = 1/2 is exactly the paper's relation
    d_star, d_sigma = 1e-16, 2e-16
    assert O.tracer_hypothesis_ratio(d_sigma, d_star) == pytest.approx(
        1 / (2 * O.haven_ratio(d_star, d_sigma)))
    assert O.tracer_hypothesis_ratio(d_sigma, d_star) == pytest.approx(1.0)


def test_lattice_gas_chemical_potentials():
    mu1, mu2 = O.lattice_gas_chemical_potentials(0.3, 0.6, T)
    assert err([mu1, mu2], [KT * np.log(3.0), KT * np.log(6.0)], 0, 1e-14) < 5
    with pytest.raises(O.OnsagerError, match="c1 \\+ c2 < 1"):
        O.lattice_gas_chemical_potentials(0.5, 0.5, T)
