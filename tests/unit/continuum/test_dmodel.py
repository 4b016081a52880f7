"""Unit tests of continuum.dmodel: D(x) models and paper eqn (2)."""
import numpy as np
import pytest
from scipy import constants

from continuum import dmodel as M
from continuum.sed import GaussianSED, GaussianMixtureSED, fermi_level


def err(y, y_true, atol, rtol):
    y, y_true = np.asarray(y, float), np.asarray(y_true, float)
    return np.max(np.abs(y - y_true) / (atol + rtol * np.abs(y_true)))


KT = constants.k * 300.0 / constants.e
SED = GaussianSED(0.0, 0.25)


@pytest.fixture(scope="module")
def fd_model():
    return M.SEDDiffusivity(SED, 1e-12, 0.1, KT, "fermi-dirac")


def test_constant():
    m = M.ConstantD(3e-13)
    D, dD = m.D_and_dD(np.array([[0.1, 0.5], [1.0, -1.0]]))
    assert D.shape == (2, 2) and (D == 3e-13).all() and (dD == 0).all()
    with pytest.raises(ValueError, match="`D_m2_s` must be > 0, got 0"):
        M.ConstantD(0.0)


@pytest.mark.parametrize("filling", ["step", "fermi-dirac"])
def test_sed_model_bulk_value_and_formula(filling):
    m = M.SEDDiffusivity(SED, 2e-12, 0.1, KT, filling, n_table=0)
    x = np.array([0.05, 0.3, 1.0])
    e_f = fermi_level(SED, x * 0.9, KT, filling)
    e_b = fermi_level(SED, 0.9, KT, filling)
    assert err(m.D(x), 2e-12 * np.exp((e_f - e_b) / KT), 0, 1e-12) < 5
    assert err(m.D(1.0), 2e-12, 0, 1e-14) < 5


@pytest.mark.parametrize("filling", ["step", "fermi-dirac"])
def test_sed_model_derivative_vs_finite_difference(filling):
    m = M.SEDDiffusivity(GaussianMixtureSED([(1, -0.1, 0.15), (2, 0.05, 0.25)]), 1e-12, 0.1, KT,
                         filling)
    x = np.array([0.02, 0.2, 0.6, 1.0, 1.05])
    h = 1e-6
    D, dD = m.D_and_dD(x)
    fd = (m.D(x + h) - m.D(x - h)) / (2 * h)
    assert err(dD, fd, 0, 1e-6) < 5


def test_fd_tabulation_matches_direct(fd_model):
    direct = M.SEDDiffusivity(SED, 1e-12, 0.1, KT, "fermi-dirac", n_table=0)
    x = np.linspace(1e-4, 1.1, 57)
    # 1e-9 eV in E_F is a relative 4e-8 in D
    assert err(fd_model.D(x), direct.D(x), 0, 4e-8) < 5
    assert err(fd_model.D_and_dD(x)[1], direct.D_and_dD(x)[1], 0, 1e-6) < 5


def test_sed_model_clipping_consistent(fd_model):
    for m in (M.SEDDiffusivity(SED, 1e-12, 0.1, KT, "step"), fd_model):
        x = np.array([-0.5, 0.0, 1e-13, 2.0])
        D, dD = m.D_and_dD(x)
        assert np.isfinite(D).all() and (D > 0).all()
        assert (dD == 0).all()  # clipped: D is constant there
        assert D[0] == D[1] == D[2] == m.D(m.x_floor)
        assert D[0] < 1e-12 * 1e-9  # D -> 0 as x -> 0
    with pytest.raises(ValueError, match="`x` contains NaN"):
        m.D_and_dD([np.nan])


def test_sed_model_floor():
    m = M.SEDDiffusivity(SED, 1e-12, 0.1, KT, "step", D_min_m2_s=1e-15)
    x = np.array([0.01, 0.5, 1.0])
    D, dD = m.D_and_dD(x)
    assert D[0] == 1e-15 and dD[0] == 0.0
    assert D[2] == pytest.approx(1e-12, rel=1e-13) and dD[2] > 0


def test_sed_model_argument_errors():
    with pytest.raises(ValueError, match="`f_vac` must be in \\[0, 1\\), got 1.0"):
        M.SEDDiffusivity(SED, 1e-12, 1.0, KT)
    with pytest.raises(ValueError, match="`x_bulk` must be in"):
        M.SEDDiffusivity(SED, 1e-12, 0.1, KT, x_bulk=1.2)
    with pytest.raises(ValueError, match="`D_bulk_m2_s` must be > 0"):
        M.SEDDiffusivity(SED, -1.0, 0.1, KT)


@pytest.mark.parametrize("filling", ["step", "fermi-dirac"])
def test_eqn2_form_equivalent(filling):
    """D = D0 exp(-(E_DC - E_F)/kT) with D0 fixed by the bulk value is the bulk-referenced form."""
    f_vac, E_DC, D_bulk = 0.1, 0.55, 3e-12
    m = M.SEDDiffusivity(SED, D_bulk, f_vac, KT, filling, n_table=0)
    e_act_bulk = M.activation_energy(SED, 1 - f_vac, E_DC, KT, filling)
    D0 = M.D0_from_bulk(D_bulk, e_act_bulk, KT)
    x = np.array([0.03, 0.2, 0.7, 1.0])
    D_eqn2 = M.arrhenius_D(D0, M.activation_energy(SED, x * (1 - f_vac), E_DC, KT, filling), KT)
    assert err(D_eqn2, m.D(x), 0, 1e-12) < 5
    # E_act(bulk) = E_DC - E_F(0.9): for the default SED, step, 0.55 - 0.136 eV
    if filling == "step":
        assert err(e_act_bulk, E_DC - SED.sigma_eV * 1.2815515655446004, 1e-14, 0) < 5


def test_table_log_linear():
    x = np.array([0.1, 0.5, 1.0])
    D = 1e-12 * np.exp(8.0 * x)  # exponential: log-linear interpolation is exact
    t = M.TableD(x, D)
    xq = np.array([0.1, 0.2, 0.5, 0.77, 1.0])
    Dq, dDq = t.D_and_dD(xq)
    assert err(Dq, 1e-12 * np.exp(8.0 * xq), 0, 1e-13) < 5
    assert err(dDq, 8.0 * Dq, 0, 1e-12) < 5
    Dout, dDout = t.D_and_dD(np.array([-1.0, 0.0, 2.0]))
    assert err(Dout, [D[0], D[0], D[-1]], 0, 1e-15) < 5 and (dDout == 0).all()
    single = M.TableD([0.5], [2e-12])
    assert (single.D(np.array([0.1, 0.9])) == 2e-12).all()


def test_table_from_csv_converts_units(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("fraction,D_cm2_s\n0.2,1e-10\n1.0,1e-8\n")
    t = M.TableD.from_csv(f)
    assert err(t.D(np.array([0.2, 1.0])), [1e-14, 1e-12], 0, 1e-14) < 5  # cm^2/s -> m^2/s


@pytest.mark.parametrize("text, match", [
    ("x,D\n0,1\n", "header must contain the columns fraction, D_cm2_s"),
    ("fraction,D_cm2_s\n0.2,1e-8\n0.2,1e-8\n", "strictly increasing"),
    ("fraction,D_cm2_s\n0.2,1e-8\n0.3,0\n", "D must be > 0"),
    ("fraction,D_cm2_s\n0.2,abc\n", "line 2: column `D_cm2_s` is not a number"),
])
def test_table_csv_errors(tmp_path, text, match):
    f = tmp_path / "dn.csv"
    f.write_text(text)
    with pytest.raises(ValueError, match=match):
        M.TableD.from_csv(f)


def test_registry():
    assert set(M.D_MODELS) == {"constant", "sed", "table"}
    assert isinstance(M.make_dmodel("constant", 1e-12), M.ConstantD)
    with pytest.raises(ValueError, match="unknown D model 'sde'; choose one of: constant, sed, table"):
        M.make_dmodel("sde")


def _D_and_dD_reference(m, x):
    """The plain numpy formula of SEDDiffusivity.D_and_dD (before the numba kernels)."""
    x = np.asarray(x, dtype=np.float64)
    xc = np.clip(x, m.x_floor, m.x_ceiling)
    e_f, de_dtheta = m._fermi_level_and_slope(xc * (1.0 - m.f_vac))
    D = m.D_bulk_m2_s * np.exp((e_f - m.fermi_level_bulk_eV) / m.kT)
    with np.errstate(invalid="ignore"):
        dD = np.where(D > 0.0, D / m.kT * de_dtheta * (1.0 - m.f_vac), 0.0)
    dD = np.where((x < m.x_floor) | (x > m.x_ceiling), 0.0, dD)
    if m.D_min_m2_s is not None:
        floored = D < m.D_min_m2_s
        D = np.where(floored, m.D_min_m2_s, D)
        dD = np.where(floored, 0.0, dD)
    return D, dD


def _random_fractions(rng, f_vac):
    """Fractions over the whole clipped range, both tails and the clipped/special values."""
    x_ceiling = (1.0 - 1e-12) / (1.0 - f_vac)
    x = np.concatenate([
        rng.uniform(-0.5, 1.5, 1500),  # clipped below 0 and above x_ceiling
        10.0 ** rng.uniform(-14, 0, 1500),  # lower tail, down past x_floor = 1e-12
        x_ceiling - 10.0 ** rng.uniform(-13, -1, 500),  # theta -> 1
        [0.0, -0.0, -1.0, 1e-12, 1e-13, 0.5, 1.0, x_ceiling, np.nextafter(x_ceiling, 2.0), 2.0,
         np.inf, -np.inf, 0.3 / (1 - f_vac), 0.65 / (1 - f_vac)],  # logit branch points
    ])
    return x.reshape(-1, 7)  # any shape


MIXTURE = GaussianMixtureSED([(1, -0.1, 0.15), (2, 0.05, 0.25)])


@pytest.mark.parametrize("sed, filling, n_table", [
    (SED, "step", 0),  # Gaussian step kernel (scipy ndtri)
    (MIXTURE, "step", 0),  # direct E_F, generic kernel
    (MIXTURE, "step", 201),  # tabulated step
    (SED, "fermi-dirac", None),  # tabulated Fermi-Dirac (801 nodes)
], ids=["gauss-step", "mixture-step", "mixture-step-table", "gauss-fd-table"])
@pytest.mark.parametrize("D_min", [None, 1e-15])
def test_sed_model_kernels_match_numpy_formula(sed, filling, n_table, D_min):
    """The numba kernels reproduce the numpy formula to ~1 ulp (libm vs numpy SIMD exp)."""
    m = M.SEDDiffusivity(sed, 1e-12, 0.1, KT, filling, D_min_m2_s=D_min, n_table=n_table)
    x = _random_fractions(np.random.default_rng(7), 0.1)
    D, dD = m.D_and_dD(x)
    D_ref, dD_ref = _D_and_dD_reference(m, x)
    assert D.shape == dD.shape == x.shape
    assert np.isfinite(D).all() and np.isfinite(dD).all()
    np.testing.assert_array_equal(dD == 0.0, dD_ref == 0.0)  # clipped and floored alike
    if D_min is not None:
        assert (D == D_min).any() and (D_ref == D_min).any()
    assert np.max(np.abs(D - D_ref) / D_ref) <= 1e-13
    assert np.max(np.abs(dD - dD_ref) / np.maximum(np.abs(dD_ref), 1e-300)) <= 1e-13
    # strided, scalar and empty input
    D_strided, dD_strided = m.D_and_dD(x[:, ::2])
    assert np.array_equal(D_strided, D[:, ::2]) and np.array_equal(dD_strided, dD[:, ::2])
    assert m.D_and_dD(0.5)[0].shape == ()
    assert m.D_and_dD(np.zeros((0, 3)))[1].shape == (0, 3)
    with pytest.raises(ValueError, match="SEDDiffusivity.D_and_dD: `x` contains NaN"):
        m.D_and_dD(np.array([0.5, np.nan]))
