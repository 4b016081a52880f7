"""The SED numbers of docs/physics.md section 2, checked against independent computations.

* sigma = 106 meV (FWHM 250 meV), step filling, 300 K: E_F(0.9 N_s) - E_F(0.09 N_s) ~ 0.28 eV and
  a D drop of ~5e4 (the paper's "0.3 eV, 4 orders of magnitude"), recomputed with
  scipy.stats.norm;
* Fermi-Dirac filling against adaptive quadrature, and its T -> 0 limit (Sommerfeld);
* sampling: Kolmogorov-Smirnov and moments within stated standard errors;
* mixture and table SEDs built from a Gaussian reproduce it.
"""
import numpy as np
import pytest
from scipy import constants, integrate, special, stats

from continuum import sed as S
from continuum.dmodel import SEDDiffusivity


def err(y, y_true, atol, rtol):
    y, y_true = np.asarray(y, float), np.asarray(y_true, float)
    return np.max(np.abs(y - y_true) / (atol + rtol * np.abs(y_true)))


FWHM = 0.250
F_VAC = 0.10
KT300 = constants.k * 300.0 / constants.e


def test_paper_fermi_level_difference_and_D_drop():
    g = S.GaussianSED(0.0, FWHM)
    sigma = FWHM / (2 * np.sqrt(2 * np.log(2)))
    assert err(g.sigma_eV, 0.106, 5e-4, 0) < 5  # "sigma = 106 meV"
    # independent: scipy.stats.norm quantiles
    d_ref = stats.norm.ppf(0.9, scale=sigma) - stats.norm.ppf(0.09, scale=sigma)
    d = float(S.fermi_level(g, 0.9) - S.fermi_level(g, 0.09))
    assert err(d, d_ref, 1e-15, 1e-13) < 5
    drop_ref = np.exp(d_ref / KT300)
    model = SEDDiffusivity(g, 1e-12, F_VAC, KT300, "step")
    # x = 1 (theta = 0.9 of all sites) against x = 0.1 (theta = 0.09)
    D1, D01 = model.D(np.array([1.0, 0.1]))
    assert err(D1 / D01, drop_ref, 0, 1e-11) < 5
    # docs/physics.md: "~0.28 eV" (two digits) and "~5e4" (one digit)
    assert err(d, 0.28, 0.005, 0) < 1
    assert 4.5e4 <= D1 / D01 < 5.5e4


@pytest.mark.parametrize("T", [300.0, 600.0, 30.0])
@pytest.mark.parametrize("sed", [
    S.GaussianSED(0.0, FWHM),
    S.GaussianMixtureSED([(1.0, -0.2, 0.1), (2.0, 0.05, 0.3)]),
    S.TabulatedSED([-0.5, -0.2, 0.0, 0.1, 0.3], [0.0, 1.0, 1.0, 0.0, 2.0]),
], ids=["gaussian", "mixture", "table"])
def test_fermi_dirac_against_quadrature(sed, T):
    """theta(E_F) = integral g(E) f(E - E_F) dE by scipy.integrate.quad; the E_F error implied
    by the quadrature's theta, |theta_quad - theta| / (dtheta/dE_F), must be below 1e-9 eV."""
    kT = constants.k * T / constants.e
    theta = np.array([1e-9, 1e-4, 0.09, 0.5, 0.9, 0.9999, 1 - 1e-9])
    e_f, de_dtheta = S.fermi_level_and_derivative(sed, theta, kT, "fermi-dirac")
    lo, hi = sed.grid(2)[[0, -1]]
    lo, hi = min(lo, -3.0), max(hi, 3.0)
    breaks = list(getattr(sed, "energy_eV", []))
    for t, ef, d in zip(theta, e_f, de_dtheta):
        if t < 0.5:  # occupied part
            f = lambda E: sed.pdf(E) * special.expit(-(E - ef) / kT)  # noqa: E731
            target = t
        else:  # the empty part keeps the upper tail's relative precision
            f = lambda E: sed.pdf(E) * special.expit((E - ef) / kT)  # noqa: E731
            target = 1 - t
        pts = sorted(p for p in [ef] + breaks if lo < p < hi)
        q = integrate.quad(f, lo, hi, points=pts, epsabs=0, epsrel=1e-13, limit=2000)[0]
        assert abs(q - target) * d < 1e-9


def test_fermi_dirac_tends_to_step_sommerfeld():
    """T -> 0: E_F,FD - E_F,step = (pi^2/6) (kT)^2 (E_F - mu)/sigma^2 + O(kT^4) for a Gaussian
    (Sommerfeld: -(pi^2/6)(kT)^2 g'(E_F)/g(E_F))."""
    g = S.GaussianSED(0.02, FWHM)
    theta = np.array([0.05, 0.3, 0.7, 0.95])
    e_step = S.fermi_level(g, theta)
    prev = None
    for T in (30.0, 10.0, 3.0):
        kT = constants.k * T / constants.e
        shift = S.fermi_level(g, theta, kT, "fermi-dirac") - e_step
        somm = np.pi ** 2 / 6 * kT ** 2 * (e_step - 0.02) / g.sigma_eV ** 2
        # next term relative size ~ (kT/sigma)^2 * (E_F/sigma)^2 ~ 5e-3 at 30 K
        assert err(shift, somm, 1e-11, 2e-2 * (T / 30.0) ** 2) < 5
        if prev is not None:
            assert (np.abs(shift) < np.abs(prev)).all()
        prev = shift


@pytest.mark.parametrize("sed", [
    S.GaussianSED(0.1, FWHM),
    S.GaussianMixtureSED([(1.0, -0.2, 0.1), (2.0, 0.05, 0.3)]),
    S.TabulatedSED([-0.5, -0.2, 0.0, 0.1, 0.3], [0.0, 1.0, 1.0, 0.0, 2.0]),
], ids=["gaussian", "mixture", "table"])
def test_sampling_distribution(sed, rng):
    n = 40000
    x = sed.sample(rng, n)
    # KS at significance 1e-3 (seeded: deterministic; a wrong sampler fails by far more)
    assert stats.kstest(x, sed.cdf).pvalue > 1e-3
    # moments within 4 standard errors, SE from the exact 2nd and 4th central moments
    e = np.linspace(*sed.grid(2)[[0, -1]] + np.array([-1.0, 1.0]), 200001)
    p = sed.pdf(e)
    m4 = integrate.trapezoid((e - sed.mean) ** 4 * p, e)
    var = sed.std ** 2
    assert abs(x.mean() - sed.mean) < 4 * np.sqrt(var / n)
    assert abs(x.var() - var) < 4 * np.sqrt((m4 - var ** 2) / n)


def test_mixture_of_one_gaussian_is_the_gaussian():
    g = S.GaussianSED(0.03, FWHM)
    mix = S.GaussianMixtureSED([(0.3, 0.03, FWHM), (0.7, 0.03, FWHM)])
    e = np.linspace(-0.8, 0.8, 41)
    assert err(mix.pdf(e), g.pdf(e), 0, 1e-14) < 5
    assert err(mix.cdf(e), g.cdf(e), 1e-300, 1e-14) < 5
    p = np.array([1e-200, 1e-8, 0.2, 0.5, 0.8, 1 - 1e-8])
    assert err(mix.ppf(p), g.ppf(p), 1e-14, 1e-12) < 5
    assert err([mix.mean, mix.std], [g.mean, g.std], 1e-16, 1e-14) < 5
    kT = KT300
    th = np.array([1e-6, 0.3, 0.9])
    assert err(S.fermi_level(mix, th, kT, "fermi-dirac"), S.fermi_level(g, th, kT, "fermi-dirac"),
               1e-11, 0) < 5


def test_table_from_gaussian_converges_second_order():
    """Linear interpolation of g: the Fermi level error falls as h^2 (log2 ratio ~ 2)."""
    g = S.GaussianSED(0.0, FWHM)
    theta = np.array([0.01, 0.09, 0.5, 0.9, 0.99])
    errors = []
    for n in (61, 121, 241):
        tab = S.TabulatedSED.from_sed(g, np.linspace(-0.75, 0.75, n))  # +-7 sigma
        errors.append(np.max(np.abs(S.fermi_level(tab, theta) - S.fermi_level(g, theta))))
    rates = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert (rates > 1.9).all(), (errors, rates)
    # and the finest table is close in absolute terms (h = 6 meV)
    assert errors[-1] < 1e-4
    tab = S.TabulatedSED.from_sed(g, np.linspace(-0.75, 0.75, 241))
    assert err([tab.mean, tab.std], [0.0, g.sigma_eV], 1e-5, 1e-3) < 5
