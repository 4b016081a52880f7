"""`cait demo` (NPP part)."""
import pytest

from compare.cli import main
from compare.io.datasets import open_dataset


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
