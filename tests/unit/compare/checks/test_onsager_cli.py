"""The Onsager study runs from the command line (python -m and `cait check onsager`).

Regression: ``python -m compare.onsager_checks`` raised NameError because a helper was defined
after the ``__main__`` guard; the tests only imported the module.
"""
import subprocess
import sys

from compare.cli import main
from compare.io.datasets import open_dataset

TINY = ["--size", "4", "--blocks", "4", "--tracer-blocks", "2", "--events-per-block", "300",
        "--equilibration-events", "500", "--x", "1.0", "--cases", "0:labels"]


def test_module_runs_as_a_script(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "compare.checks.onsager", "-o", str(tmp_path)]
                          + TINY, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "| SED FWHM | foreign | x |" in proc.stdout
    ds = open_dataset(tmp_path / "onsager_scan.nc")
    assert ds.sizes["x"] == 1 and float(ds["D_star"].sel(species=ds.species[0]).max()) > 0


def test_cait_check_onsager(tmp_path, capsys):
    assert main(["check", "onsager", "-o", str(tmp_path)] + TINY) == 0
    assert "| 0 meV | labels | 1.00 |" in capsys.readouterr().out
    assert (tmp_path / "onsager_scan.png").stat().st_size > 0


def test_bad_cases_are_one_line_errors(tmp_path, capsys):
    assert main(["check", "onsager", "-o", str(tmp_path), "--cases", "0.1"]) == 2
    assert "`--cases` must be FWHM_eV:foreign pairs" in capsys.readouterr().err
