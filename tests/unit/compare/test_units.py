"""One spelling of units across datasets (D in cm^2/s everywhere), and the conversions."""
import math
import re

import pytest
from scipy import constants

from compare import scenario, units
from compare.io.config import load_config, replace
from compare.workflows.run_sed import sed_dataset
from tests.conftest import INPUTS, ROOT


def test_conversions():
    assert units.kT_eV(300.0) == pytest.approx(constants.k * 300.0 / constants.e, rel=1e-15)
    assert units.fwhm_to_sigma(units.sigma_to_fwhm(0.1)) == pytest.approx(0.1, rel=1e-15)
    assert units.FWHM_PER_SIGMA == pytest.approx(2.0 * math.sqrt(2.0 * math.log(2.0)))


def _d_units(ds):
    return {name: ds[name].attrs.get("units") for name in ds.data_vars
            if name.startswith("D") and ds[name].attrs.get("units") not in (None, "1")}


def test_datasets_spell_D_units_one_way():
    cfg = load_config(INPUTS / "li3b7o12_k_cait.toml")
    found = _d_units(sed_dataset(cfg))
    short = replace(replace(cfg, "npp", mesh="graded", n_cells=100), "output", times_s=[0.0, 10.0])
    found.update({f"npp.{k}": v for k, v in _d_units(scenario.solve_npp(short)).items()})
    assert found and set(found.values()) == {units.D_UNITS}, found


def test_no_other_spelling_in_the_sources():
    """Datasets written anywhere in the package use units.D_UNITS (or its text in kmc/ and
    continuum/, which cannot import compare)."""
    other = re.compile(r"cm2/s|cm\*\*2/s|cm2 s-1|cm\^2 s\^-1")
    hits = [f"{p.relative_to(ROOT)}:{i}" for pkg in ("compare", "kmc", "continuum")
            for p in (ROOT / pkg).rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if other.search(line)]
    assert not hits, hits
