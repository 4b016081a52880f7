"""`cait demo` (NPP part) and the `npp.solver` switch."""
import pytest

from compare.cli import main
from compare.io.config import load_config, replace
from compare.io.datasets import open_dataset
from compare.workflows.run_npp import solver_from_config
from continuum.electroneutral import solve_electroneutral


def test_solver_switch(k_input):
    cfg = load_config(k_input)
    assert solver_from_config(cfg).__module__ == "continuum.npp"
    en = solver_from_config(replace(cfg, "npp", solver="electroneutral"))
    assert en is not solve_electroneutral and callable(en)


@pytest.mark.slow
def test_demo_without_kmc_writes_every_dataset(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path), "--no-kmc"]) == 0
    out = capsys.readouterr().out
    for name in ("k", "rb", "cs"):
        ds = open_dataset(tmp_path / f"li3b7o12_{name}_cait" / "npp.nc")
        assert ds.attrs["status"] == "ok"
        assert f"li3b7o12_{name}_cait" in out
    assert (tmp_path / "li3b7o12_double_cait" / "npp_profiles.png").is_file()
    assert (tmp_path / "sed" / "sed.nc").is_file()
