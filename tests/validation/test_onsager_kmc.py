"""KMC Onsager coefficients against the continuum Onsager module (compare.checks.onsager).

Ordered simple-cubic lattice gas (SED FWHM 0), 6^3 periodic cell at the material's filling
(c = 0.9), two *identical* species A, B at x = 1/2 (labels only). Exact for the finite cell
(derivation in compare/checks/onsager.py; N ions, D* tracer, D_c collective):

* D_c = kT (L_AA + 2 L_AB + L_BB) / n = D0 (1 - c) N_sites / (N_sites - 1);
* L_AB = N_A N_B / (N (N - 1)) (S - n D*/kT)   (positive: D_c > D* for the lattice gas);
* kT L_AA / n_A = D* + (N_A - 1)/(N - 1) (D_c - D*)                 (paper eqns 8-9);
* continuum.onsager.D_eff_from_L(L) = (N D* - D_c)/(N - 1) for both labels (the full-L CAIT
  transformation gives the isotope interdiffusion coefficient, i.e. tracer diffusion);
* and therefore D_eff = 2 D* fails: D_eff / (2 D*) <= 1/(2 f) ~ 0.7 with f the correlation factor.

Error bars: standard errors over 400 independent time blocks of one run (L) and over 10 long
blocks of the same run (D*); every check asserts |z| < N_SIGMA and that the check resolves the
effect it is about (the SEM is below a stated fraction of the quantity).
"""
import numpy as np
import pytest

from compare.checks import onsager as oc

N_SIGMA = 4.0


def _run(fwhm_eV):
    lat = oc.CheckLattice(size=6, fwhm_eV=fwhm_eV, foreign="labels")
    # 400 x 5000 events: L to ~4 %, D* to ~2 % (about 7 s of CPU)
    return lat, oc.measure(lat, 0.5, seed=3, n_blocks=400, events_per_block=5_000,
                           tracer_blocks=10, n_equilibration_events=50_000)


@pytest.fixture(scope="module")
def labels_run():
    return _run(0.0)


@pytest.fixture(scope="module")
def checks(labels_run):
    lat, m = labels_run
    return oc.label_checks(m, lat)


def test_blocks_are_independent(labels_run):
    _, m = labels_run
    for name, r in oc.block_independence(m).items():
        assert abs(r) < N_SIGMA / np.sqrt(400), (name, r)


@pytest.mark.parametrize("name", ["cross_L12_residual", "tracer_A_minus_B",
                                  "diag_D_eff_A_residual", "cait_D_eff_A_minus_exact",
                                  "cait_D_eff_B_minus_exact", "Dc_over_exact_lattice_gas"])
def test_exact_label_relations(checks, name):
    c = checks[name]
    assert abs(c["z"]) < N_SIGMA, (name, c)


@pytest.mark.slow
def test_exact_label_relations_in_a_disordered_landscape():
    """Gaussian SED, FWHM 100 meV (sigma/kT = 1.6): the identities hold at any block length,
    converged or not (they only use that the rates do not see labels). At 250 meV the 5000-event
    tracer blocks are correlated (lag-1 autocorrelation 0.32, SEM underestimated ~2x; see
    docs/findings.md), so the block SEM would not be a valid error bar there."""
    lat, m = _run(0.10)
    for name, r in oc.block_independence(m).items():
        assert abs(r) < N_SIGMA / np.sqrt(400), (name, r)  # independent blocks: SD 1/sqrt(n)
    c = oc.label_checks(m, lat)
    for name in ("cross_L12_residual", "tracer_A_minus_B", "diag_D_eff_A_residual",
                 "cait_D_eff_A_minus_exact", "cait_D_eff_B_minus_exact"):
        assert abs(c[name]["z"]) < N_SIGMA, (name, c[name])
    assert "Dc_over_exact_lattice_gas" not in c
    # the CAIT transformation resolves D~ = D* to better than 10 %
    assert c["cait_D_eff_A_over_D_star"]["sem"] < 0.1, c["cait_D_eff_A_over_D_star"]


def test_checks_resolve_the_effects(checks):
    # L_AB is resolved as non-zero (>= 4 SE), so the cross-term check is not vacuous
    assert checks["L12"]["value"] > N_SIGMA * checks["L12"]["sem"], checks["L12"]
    assert checks["cross_L12_residual"]["sem"] < 0.25 * checks["L12"]["value"]
    # the CAIT transformation is told apart from eqns 8-9: they differ by (D_c - D*)/2 ~ 25 %
    # (jackknifed together: both come from the same L)
    d = checks["diag_minus_cait_D_eff_A"]
    assert d["value"] > N_SIGMA * d["sem"], d
    assert checks["Dc_over_exact_lattice_gas"]["sem"] < 0.06


def test_D_eff_is_not_twice_the_tracer_D(labels_run):
    _, m = labels_run
    s = oc.transport_summary(m)
    for i in range(2):
        r, e = s["ratio_2Dstar"][i], s["ratio_2Dstar_sem"][i]
        # D_eff = 2 D* would give 1; the lattice gas gives between 1/2 and 1/(2 f(0.9)) ~ 0.72
        assert r < 1.0 - N_SIGMA * e, (i, r, e)
        assert 0.5 - N_SIGMA * e < r, (i, r, e)
        # Haven ratio of the labels mixture between f(c) (> f0 = 0.653) and 1
        h, he = s["haven"][i], s["haven_sem"][i]
        assert 0.653 - N_SIGMA * he < h < 1.0 + N_SIGMA * he, (i, h, he)


def test_cait_transformation_rejects_an_unphysical_L():
    # a strongly negative L12 (transference number <= 0): no positive NPP D's exist -> NaN
    L = np.array([[1.0, -1.0], [-1.0, 2.0]])
    assert np.isnan(oc._cait_D_eff(L, np.array([1.0, 1.0]), 300.0)).all()


def test_unknown_foreign_model_is_a_config_error():
    from compare.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown foreign model 'isotope'; legal: labels"):
        oc.CheckLattice(foreign="isotope").params()
