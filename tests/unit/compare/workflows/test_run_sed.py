"""`cait sed` glue: config -> SED / D models, and the dataset it writes."""
import numpy as np
import pytest
from scipy import constants, stats

from compare.cli import main
from compare.io.config import parse_text
from compare.io.datasets import open_dataset
from compare import scenario
from continuum.dmodel import ConstantD, SEDDiffusivity
from tests.unit.compare.io.test_config import BASE


def test_dmodels_from_config_match_independent_formula():
    cfg = parse_text(BASE)
    models = scenario.dmodels(cfg)
    assert list(models) == ["Li", "K"]
    assert isinstance(models["Li"], SEDDiffusivity) and isinstance(models["K"], ConstantD)
    # Independent: step filling of a Gaussian (FWHM 250 meV) and eqn (2) relative to the bulk.
    sigma = 0.25 / (2 * np.sqrt(2 * np.log(2)))
    kT = constants.k * 300.0 / constants.e
    x = np.array([0.1, 0.5, 1.0])
    ef = sigma * stats.norm.ppf(0.9 * x)
    expected = 1e-13 * 1e-4 * np.exp((ef - ef[-1]) / kT)
    D, _ = models["Li"].D_and_dD(x)
    err = np.abs(D - expected) / (1e-40 + 1e-9 * expected)
    assert np.all(err < 5)
    DK, dDK = models["K"].D_and_dD(x)
    assert np.all(DK == 1e-16 * 1e-4) and np.all(dDK == 0)


def test_cait_sed_writes_dataset_with_units(tmp_path, k_input):
    assert main(["sed", str(k_input), "-o", str(tmp_path)]) == 0
    ds = open_dataset(tmp_path / "sed.nc")
    for name in ds.variables:
        assert "units" in ds[name].attrs or ds[name].dtype.kind in "OUS", name
    assert ds.attrs["status"] == "ok" and ds.attrs["input_text"] == k_input.read_text()
    assert (tmp_path / "sed.png").stat().st_size > 0 and (tmp_path / "dn.png").stat().st_size > 0
