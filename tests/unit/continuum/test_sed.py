"""Unit tests of continuum.sed: the SED classes, CSV input, Fermi level and populated SED."""
import numpy as np
import pytest
from scipy import integrate, stats

from continuum import sed as S


def err(y, y_true, atol, rtol):
    """Tolerance-scaled error, must be < 5."""
    y, y_true = np.asarray(y, float), np.asarray(y_true, float)
    return np.max(np.abs(y - y_true) / (atol + rtol * np.abs(y_true)))


GAUSS = S.GaussianSED(0.05, 0.25)
MIX = S.GaussianMixtureSED([(1.0, -0.15, 0.12), (3.0, 0.1, 0.25)])
TABLE = S.TabulatedSED([-0.5, -0.2, 0.0, 0.1, 0.3], [0.0, 1.0, 1.0, 0.0, 2.0])
ALL = [GAUSS, MIX, TABLE]


# -- SED classes ------------------------------------------------------------------------------
def test_gaussian_sigma_from_fwhm():
    assert err(GAUSS.sigma_eV, 0.25 / (2 * np.sqrt(2 * np.log(2))), 0, 1e-15) < 5
    # the density at centre +- FWHM/2 is half the peak
    peak = GAUSS.pdf(0.05)
    assert err(GAUSS.pdf([0.05 - 0.125, 0.05 + 0.125]), [peak / 2] * 2, 0, 1e-13) < 5


def test_gaussian_matches_scipy_including_tails():
    ref = stats.norm(0.05, GAUSS.sigma_eV)
    e = np.linspace(-1.5, 1.5, 31)
    assert err(GAUSS.pdf(e), ref.pdf(e), 0, 1e-13) < 5
    assert err(GAUSS.cdf(e), ref.cdf(e), 0, 1e-12) < 5
    assert err(GAUSS.sf(e), ref.sf(e), 0, 1e-12) < 5
    p = np.array([1e-300, 1e-30, 1e-6, 0.3, 0.5, 0.97])
    assert err(GAUSS.ppf(p), ref.ppf(p), 1e-15, 1e-13) < 5


@pytest.mark.parametrize("sed", ALL, ids=["gaussian", "mixture", "table"])
def test_pdf_normalised_and_cdf_consistent(sed):
    lo, hi = sed.grid(3)[[0, -1]]
    lo, hi = lo - 0.5, hi + 0.5
    pts = list(getattr(sed, "energy_eV", []))
    total = integrate.quad(sed.pdf, lo, hi, points=pts or None, limit=200, epsabs=1e-13)[0]
    assert err(total, 1.0, 0, 1e-9) < 5
    for e in (-0.3, -0.05, 0.05, 0.2):
        c = integrate.quad(sed.pdf, lo, e, points=[p for p in pts if p < e] or None, limit=200,
                           epsabs=1e-14)[0]
        assert err(sed.cdf(e), c, 1e-13, 1e-9) < 5
        assert err(sed.sf(e), 1 - c, 1e-13, 1e-9) < 5


@pytest.mark.parametrize("sed", ALL, ids=["gaussian", "mixture", "table"])
def test_ppf_inverts_cdf_and_is_monotone(sed):
    p = np.concatenate(([1e-12, 1e-6], np.linspace(0.01, 0.99, 99), [1 - 1e-6]))
    e = sed.ppf(p)
    assert (np.diff(e) >= 0).all()
    assert err(sed.cdf(e[p <= 0.5]), p[p <= 0.5], 0, 1e-10) < 5
    assert err(sed.sf(e[p > 0.5]), 1 - p[p > 0.5], 0, 1e-9) < 5
    assert sed.ppf(p.reshape(-1, 1)).shape == (p.size, 1)


def test_mixture_tails_relative_precision():
    p = np.array([1e-300, 1e-40, 1e-12])
    e = MIX.ppf(p)
    ref = MIX.weights[0] * stats.norm.cdf(e, -0.15, MIX.sigmas_eV[0]) \
        + MIX.weights[1] * stats.norm.cdf(e, 0.1, MIX.sigmas_eV[1])
    assert err(ref, p, 0, 1e-10) < 5
    q = 1e-14  # upper tail via sf
    e = MIX.ppf(1 - q)
    assert err(MIX.sf(e), q, 0, 1e-2) < 5  # 1 - q itself carries a 1e-16/1e-14 relative error


def test_mixture_normalises_weights_and_moments():
    assert err(MIX.weights, [0.25, 0.75], 0, 1e-15) < 5
    e = np.linspace(-1.5, 1.5, 30001)
    m = integrate.simpson(e * MIX.pdf(e), x=e)
    v = integrate.simpson((e - m) ** 2 * MIX.pdf(e), x=e)
    assert err(MIX.mean, m, 1e-12, 1e-9) < 5
    assert err(MIX.std, np.sqrt(v), 0, 1e-9) < 5


def test_table_moments_exact_for_piecewise_linear():
    e = TABLE.energy_eV
    m = sum(integrate.quad(lambda x: x * TABLE.pdf(x), a, b)[0] for a, b in zip(e[:-1], e[1:]))
    m2 = sum(integrate.quad(lambda x: x * x * TABLE.pdf(x), a, b)[0] for a, b in zip(e[:-1], e[1:]))
    assert err(TABLE.mean, m, 1e-14, 1e-12) < 5
    assert err(TABLE.std, np.sqrt(m2 - m * m), 0, 1e-12) < 5
    assert TABLE.support == (-0.5, 0.3)


def test_table_zero_mass_segment_ppf():
    # zero density on [1, 2]: the CDF is flat at 0.5 there, any point of [1, 2] inverts it
    tab = S.TabulatedSED([0.0, 1.0, 2.0, 3.0], [1.0, 0.0, 0.0, 1.0])
    assert 1.0 <= tab.ppf(0.5) <= 2.0
    assert tab.ppf(0.5 - 1e-9) < 1.0 < 2.0 < tab.ppf(0.5 + 1e-9)


def test_sample_shape_dtype_reproducible():
    for sed in ALL:
        a = sed.sample(np.random.default_rng(3), 1000)
        b = sed.sample(np.random.default_rng(3), 1000)
        assert a.shape == (1000,) and a.dtype == np.float64
        assert np.array_equal(a, b) and np.isfinite(a).all()
    lo, hi = TABLE.support
    x = TABLE.sample(np.random.default_rng(4), 5000)
    assert (x >= lo).all() and (x <= hi).all()


def test_grid_spans_distribution():
    for sed in ALL:
        g = sed.grid(101)
        assert g.shape == (101,) and (np.diff(g) > 0).all()
        assert sed.cdf(g[0]) < 1e-6 and sed.sf(g[-1]) < 1e-6


# -- CSV input --------------------------------------------------------------------------------
def test_table_from_csv(tmp_path):
    f = tmp_path / "sed.csv"
    f.write_text("# an SED\nenergy_eV,density\n-0.1,0\n0.0,2\n0.1,0\n")
    tab = S.TabulatedSED.from_csv(f)
    assert err(tab.pdf([-0.05, 0.0, 0.05]), [5.0, 10.0, 5.0], 0, 1e-13) < 5
    assert str(f) in repr(tab)


@pytest.mark.parametrize("text, match", [
    ("", "empty file"),
    ("energy,density\n0,1\n1,1\n", "header must contain the columns energy_eV, density"),
    ("energy_eV,density\n0,1\n1,x\n", r"line 3: column `density` is not a number: 'x'"),
    ("energy_eV,density\n0,1\n1\n", "line 3: expected 2 values, got 1"),
    ("energy_eV,density\n0,1\n0,1\n", "strictly increasing"),
    ("energy_eV,density\n0,1\n1,-1\n", "density must be >= 0"),
    ("energy_eV,density\n0,1\n1,nan\n", "must be finite"),
    ("energy_eV,density\n", "no data rows"),
    ("energy_eV,density\n0,0\n1,0\n", "integrates to zero"),
])
def test_table_csv_errors(tmp_path, text, match):
    f = tmp_path / "bad.csv"
    f.write_text(text)
    with pytest.raises(ValueError, match=match) as info:
        S.TabulatedSED.from_csv(f)
    assert "bad.csv" in str(info.value)


def test_table_csv_missing_file(tmp_path):
    with pytest.raises(ValueError, match="nope.csv: file not found"):
        S.TabulatedSED.from_csv(tmp_path / "nope.csv")


# -- constructor and registry errors ----------------------------------------------------------
def test_constructor_errors():
    with pytest.raises(ValueError, match="`fwhm_eV` must be > 0, got -1"):
        S.GaussianSED(0.0, -1.0)
    with pytest.raises(ValueError, match="component 1: weight must be > 0"):
        S.GaussianMixtureSED([(1, 0, 0.1), (0, 0, 0.1)])
    with pytest.raises(ValueError, match="at least one"):
        S.GaussianMixtureSED([])
    with pytest.raises(ValueError, match="differ in length"):
        S.TabulatedSED([0, 1], [1])


def test_registry():
    assert set(S.SEDS) == {"gaussian", "gaussians", "table"}
    assert isinstance(S.make_sed("gaussian", 0.0, 0.2), S.GaussianSED)
    with pytest.raises(ValueError, match="unknown SED kind 'gauss'; choose one of: gaussian, "
                                         "gaussians, table"):
        S.make_sed("gauss")


# -- Fermi level ------------------------------------------------------------------------------
def test_fermi_level_argument_errors():
    with pytest.raises(ValueError, match="`theta` must lie strictly between 0 and 1"):
        S.fermi_level(GAUSS, [0.5, 1.0])
    with pytest.raises(ValueError, match="unknown filling 'fd'; choose one of: step, fermi-dirac"):
        S.fermi_level(GAUSS, 0.5, filling="fd")
    with pytest.raises(ValueError, match=r"`kT` \[eV\] must be > 0 for Fermi-Dirac filling"):
        S.fermi_level(GAUSS, 0.5, filling="fermi-dirac")


@pytest.mark.parametrize("filling", ["step", "fermi-dirac"])
@pytest.mark.parametrize("sed", [GAUSS, MIX, TABLE], ids=["gaussian", "mixture", "table"])
def test_fermi_level_derivative_vs_finite_difference(sed, filling):
    kT = S.kT_eV(300.0)
    theta = np.array([0.02, 0.3, 0.6, 0.93])
    _, d = S.fermi_level_and_derivative(sed, theta, kT, filling)
    h = 1e-6
    fd = (S.fermi_level(sed, theta + h, kT, filling) - S.fermi_level(sed, theta - h, kT, filling)) / (2 * h)
    assert err(d, fd, 0, 1e-5) < 5


@pytest.mark.parametrize("filling", ["step", "fermi-dirac"])
def test_occupancy_inverts_fermi_level(filling):
    kT = S.kT_eV(300.0)
    theta = np.array([[1e-5, 0.2], [0.7, 0.99]])
    for sed in ALL:
        e_f = S.fermi_level(sed, theta, kT, filling)
        assert e_f.shape == (2, 2)
        assert err(S.occupancy(sed, e_f, kT, filling), theta, 0, 1e-9) < 5


@pytest.mark.parametrize("filling", ["step", "fermi-dirac"])
def test_psed_integrates_to_theta(filling):
    kT = S.kT_eV(300.0)
    e = np.linspace(-1.5, 1.5, 60001)
    for theta in (0.05, 0.9):
        y = S.psed(GAUSS, e, theta, kT, filling)
        # trapezoid on a 5e-5 eV grid; the step cut adds an O(h) error
        assert err(integrate.trapezoid(y, e), theta, 1e-4, 0) < 5


def test_populated_fwhm_step_gaussian_cases():
    f = GAUSS.fwhm_eV
    # E_F at the centre: the PSED is the lower half, width FWHM/2
    assert err(S.populated_fwhm(GAUSS, 0.5), f / 2, 1e-4, 0) < 5
    # E_F above the upper half-maximum point: the full FWHM
    assert err(S.populated_fwhm(GAUSS, 0.99), f, 1e-4, 0) < 5
    # E_F below the centre: peak at E_F, left half-max where g = g(E_F)/2
    theta = 0.1
    e_f = float(S.fermi_level(GAUSS, theta))
    z = (e_f - 0.05) / GAUSS.sigma_eV
    z_left = -np.sqrt(z * z + 2 * np.log(2))
    assert err(S.populated_fwhm(GAUSS, [theta]), [(z - z_left) * GAUSS.sigma_eV], 1e-4, 0) < 5


def test_populated_fwhm_fermi_dirac_tends_to_step():
    # kT -> 0: Fermi-Dirac PSED width -> step width
    w_step = S.populated_fwhm(GAUSS, 0.3)
    w_fd = S.populated_fwhm(GAUSS, 0.3, S.kT_eV(3.0), "fermi-dirac")
    assert err(w_fd, w_step, 2e-3, 0) < 5
