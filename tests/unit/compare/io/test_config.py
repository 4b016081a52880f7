"""Input validation: every message a user can trigger is pinned here."""

import pytest

from compare.io import config
from compare.io.config import load_config, parse_text
from compare.errors import ConfigError
from tests.conftest import INPUTS, ROOT

BASE = """
[material]
n_bulk_cm3 = 1.4e22
[species.Li]
role = "native"
D_cm2_s = 1e-13
[species.K]
role = "foreign"
D_cm2_s = 1e-16
[[beam]]
species = "K"
duration_s = 100.0
back_field_V_per_m = 1e4
"""


def test_minimal_input_gets_defaults():
    cfg = parse_text(BASE)
    assert cfg.material.vacancy_fraction == 0.10
    assert cfg.native.name == "Li" and cfg.native.D_model == "sed"
    assert cfg.foreign[0].D_model == "constant"
    assert cfg.beam[0].theta_front == pytest.approx(0.9)
    assert cfg.beam[0].voltage_V == 0.0  # resolved: the drive value that does not apply
    assert cfg.output_times_s[0] == 0.0 and cfg.output_times_s[-1] == 100.0
    assert cfg.plot_times_s == (100.0,)


@pytest.mark.parametrize("path", sorted(INPUTS.glob("*.toml")), ids=lambda p: p.name)
def test_bundled_inputs_are_valid(path):
    cfg = load_config(path)
    assert cfg.text == path.read_text()


@pytest.mark.parametrize("patch, match", [
    (("[material]", "[material]\ntemperature_K = -5"), r"`material.temperature_K` must be > 0, got -5"),
    (("[material]", "[material]\ntemprature_K = 300"), r"unknown key `material.temprature_K` \(did you mean `temperature_K`\?\)"),
    (("[material]", "[material]\nvacancy_fraction = 1.0"), r"`material.vacancy_fraction` must be < 1, got 1.0$"),
    (("[material]", "[material]\neps_r = \"eight\""), r"`material.eps_r` must be a number, got 'eight'"),
    (("[material]", "[materials]\n[material]"), r"unknown section `materials` \(did you mean `material`\?\)"),
    (('role = "foreign"', 'role = "foriegn"'), r"`species.K.role` must be one of 'native', 'foreign', got 'foriegn' \(did you mean `foreign`\?\)"),
    (('role = "foreign"', 'role = "native"'), r"exactly one species must have `role = \"native\"`, got 2 \(Li, K\)"),
    (('species = "K"', 'species = "Rb"'), r"`beam\[0\].species` must name a foreign species \(K\), got 'Rb'"),
    (("back_field_V_per_m = 1e4", ""), r"`beam\[0\].back_field_V_per_m` is required when `drive = \"galvanostatic\"`"),
    (("back_field_V_per_m = 1e4", 'drive = "potentiostatic"'), r"`beam\[0\].voltage_V` is required"),
    (("back_field_V_per_m = 1e4", "back_field_V_per_m = 1e4\nvoltage_V = 2.0"), r"`beam\[0\].voltage_V` only applies to potentiostatic phases"),
    (("duration_s = 100.0", "duration_s = 0"), r"`beam\[0\].duration_s` must be > 0, got 0$"),
    (("D_cm2_s = 1e-16", "D_cm2_s = true"), r"`species.K.D_cm2_s` must be a number, got True"),
    (("D_cm2_s = 1e-16", 'D_cm2_s = 1e-16\nD_model = "table"'), r"`species.K.D_table` is required when `D_model = \"table\"`"),
    (("D_cm2_s = 1e-16", 'D_cm2_s = 1e-16\nD_model = "table"\nD_table = "nope.csv"'), r"`species.K.D_table` names a file that does not exist: 'nope.csv'"),
    (("[material]", "[sed]\nkind = \"table\"\n[material]"), r"`sed.file` is required when `sed.kind = \"table\"`"),
    (("[material]", "[sed]\nkind = \"gaussians\"\n[material]"), r"`sed.components` is required"),
    (("[material]", "[sed]\nkind = \"gaussians\"\ncomponents = [{weight = 1.0}]\n[material]"), r"`sed.components\[0\].fwhm_eV` is required"),
    (("[material]", "[output]\ntimes_s = [0.0, 50.0, 20.0]\n[material]"), r"`output.times_s` must be strictly increasing"),
    (("[material]", "[output]\ntimes_s = [0.0, 500.0]\n[material]"), r"`output.times_s` must lie within the beam schedule \[0, 100\] s"),
    (("[material]", "[kmc]\nnx = 2.5\n[material]"), r"`kmc.nx` must be an integer, got 2.5"),
    (("[material]", "[npp]\nflux = \"nernst\"\n[material]"), r"`npp.flux` must be one of 'nernst-planck', 'lattice-gas', got 'nernst'"),
    (("[material]", "[material\n"), r"input is not valid TOML"),
])
def test_bad_input_messages(patch, match):
    old, new = patch
    assert old in BASE
    with pytest.raises(ConfigError, match=match):
        parse_text(BASE.replace(old, new, 1))


def test_relaxation_phase_and_missing_file(tmp_path):
    cfg = parse_text(BASE + '\n[[beam]]\nduration_s = 50.0\ndrive = "off"\n')
    assert cfg.beam[1].species is None and cfg.beam[1].back_field_V_per_m == 0.0
    assert cfg.phase_ends_s == (100.0, 150.0)
    with pytest.raises(ConfigError, match=r"`beam\[1\].species` must be empty when `drive = \"off\"`"):
        parse_text(BASE + '\n[[beam]]\nspecies = "K"\nduration_s = 50.0\ndrive = "off"\n')
    with pytest.raises(ConfigError, match="input file not found"):
        load_config(tmp_path / "missing.toml")


def test_replace_validates():
    cfg = parse_text(BASE)
    assert config.replace(cfg, "npp", n_cells=50).npp.n_cells == 50
    with pytest.raises(ConfigError, match=r"`npp.n_cells` must be >= 10, got 3"):
        config.replace(cfg, "npp", n_cells=3)


def test_inputs_reference_is_current():
    """docs/inputs.md is generated from the schema; regenerate with python -m compare.io.config --markdown."""
    assert (ROOT / "docs" / "inputs.md").read_text() == config.markdown()


def test_what_a_run_needs_is_checked_by_the_run():
    """D values, the beam and a foreign species are optional in the file (equilibrium KMC at
    x = 1 needs none of them) and required, in one line, by the runs that use them."""
    from compare import scenario

    cfg = parse_text(BASE.replace("D_cm2_s = 1e-16", ""))
    with pytest.raises(ConfigError, match=r"^`species.K.D_cm2_s` is required by an NPP run$"):
        scenario.npp_problem(cfg)
