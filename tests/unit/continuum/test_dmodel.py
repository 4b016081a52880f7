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
