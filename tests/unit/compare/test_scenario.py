"""compare.scenario: the one place an input becomes engine parameters."""
import math

import numpy as np
import pytest

from compare import scenario, units
from compare.errors import ConfigError
from compare.io.config import load_config, parse_text, replace
from tests.unit.compare.io.test_config import BASE

MIXTURE = BASE.replace("[species.Li]", """[sed]
kind = "gaussians"
components = [{weight = 1.0, center_eV = -0.05, fwhm_eV = 0.05},
              {weight = 1.0, center_eV = 0.05, fwhm_eV = 0.05}]
[species.Li]""")


def test_foreign_width_defaults_to_the_native_landscape_of_any_sed_kind():
    """Regression: with `sed.kind = "gaussians"` the foreign width used to fall back to the unused
    `sed.fwhm_eV` default (0.25 eV) instead of the native landscape's width."""
    cfg = parse_text(MIXTURE)
    native = scenario.native_sed(cfg)
    # two components of sigma s at +-0.05 eV: variance s^2 + 0.05^2 (half the old 0.25 eV / 2.355)
    s = units.fwhm_to_sigma(0.05)
    assert native.std == pytest.approx(math.sqrt(s * s + 0.05 ** 2), rel=1e-6)
    sigma_k = scenario.kmc_params(cfg).species[1].sigma_eV
    assert sigma_k == pytest.approx(native.std, rel=1e-12)
    assert sigma_k != pytest.approx(units.fwhm_to_sigma(cfg.sed.fwhm_eV), rel=1e-3)


def test_foreign_width_of_a_tabulated_sed(tmp_path):
    e = np.linspace(-0.6, 0.6, 241)
    g = np.exp(-0.5 * (e / 0.08) ** 2)
    (tmp_path / "sed.csv").write_text("energy_eV,density\n" + "".join(
        f"{a:.6f},{b:.6e}\n" for a, b in zip(e, g)))
    cfg = parse_text(BASE.replace("[species.Li]", '[sed]\nkind = "table"\nfile = "sed.csv"\n'
                                                  "[species.Li]"), base_dir=tmp_path)
    sigma_k = scenario.kmc_params(cfg).species[1].sigma_eV
    assert sigma_k == pytest.approx(0.08, rel=1e-3)


def test_explicit_foreign_width_wins():
    cfg = parse_text(MIXTURE.replace('role = "foreign"', 'role = "foreign"\nsite_fwhm_eV = 0.2'))
    assert scenario.kmc_params(cfg).species[1].sigma_eV == pytest.approx(
        0.2 / units.FWHM_PER_SIGMA, rel=1e-12)


def test_galvanostatic_beam_current_is_the_npp_bulk_current():
    cfg = parse_text(BASE)
    j = scenario.kmc_params(cfg).phases[0].beam_current_A_per_m2
    sigma = units.ohmic_conductivity_S_per_m(1.4e28, 1e-17, 300.0)
    assert j == pytest.approx(sigma * 1e4, rel=1e-12)


def test_npp_problem_units_and_overrides():
    cfg = parse_text(BASE)
    p = scenario.npp_problem(cfg)
    assert p.n_bulk_m3 == pytest.approx(1.4e28) and p.thickness_m == pytest.approx(1e-6)
    assert p.phases[0].voltage_V == 0.0 and p.phases[0].theta_front == pytest.approx(0.9)
    q = scenario.npp_problem(cfg, thickness_nm=20.0, output_times_s=(0.0, 50.0), field_scale=2.0)
    assert q.thickness_m == pytest.approx(2e-8) and q.output_times_s == (0.0, 50.0)
    assert q.phases[0].back_field_V_per_m == pytest.approx(2e4)


@pytest.mark.parametrize("name, engine", [("full", "npp"), ("electroneutral", "npp-electroneutral")])
def test_solver_registry_dispatches_to_each_engine(k_input, name, engine):
    cfg = load_config(k_input)
    cfg = replace(cfg, "npp", solver=name, mesh="graded", n_cells=100)  # cheap: dispatch only
    ds = scenario.solve_npp(replace(cfg, "output", times_s=[0.0, 10.0]))
    assert ds.attrs["engine"] == engine
    assert set(scenario.SOLVERS) == {"full", "electroneutral"}


def test_unknown_solver_is_refused():
    with pytest.raises(ConfigError, match=r"`npp.solver` must be one of full, electroneutral, "
                                          r"got 'fem'"):
        scenario.solver("fem")


@pytest.mark.parametrize("value, ok", [(None, 1), (3, 3), (0, None), (True, None)])
def test_replicas(value, ok):
    cfg = parse_text(BASE)
    if ok is None:
        with pytest.raises(ConfigError, match=r"`--replicas` must be an integer >= 1"):
            scenario.replicas(cfg, value)
    else:
        assert scenario.replicas(cfg, value) == ok
