"""The CLI contract: bad input gives one line naming the key, exit code 2, no partial output."""
import subprocess
import sys

import pytest

from compare.cli import COMMANDS, build_parser, main
from tests.unit.compare.io.test_config import BASE


def test_help_lists_the_built_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in ("sed", "bench"):
        assert name in out


@pytest.mark.parametrize("argv", [["sed"], ["npp", "run"], ["kmc", "run"]])
def test_bad_input_exit_code_2_and_no_output(tmp_path, capsys, argv):
    if argv[0] not in build_parser().format_help():
        pytest.skip(f"`cait {argv[0]}` not built")
    bad = tmp_path / "bad.toml"
    bad.write_text(BASE.replace("[material]", "[material]\ntemperature_K = -5"))
    out_dir = tmp_path / "out"
    assert main(argv + [str(bad), "-o", str(out_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["cait: error: `material.temperature_K` must be > 0, got -5"]
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_console_script_has_no_traceback(tmp_path):
    """Through a real subprocess: exit status 2 and a single stderr line."""
    proc = subprocess.run([sys.executable, "-m", "compare.cli", "sed", str(tmp_path / "x.toml")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"cait: error: input file not found: '{tmp_path / 'x.toml'}'"


def test_bench_kmc_prints_one_row_per_size(capsys):
    """The benchmark runs end to end on a tiny lattice (numbers are printed, never asserted)."""
    assert main(["bench", "kmc", "--sizes", "6", "--events", "2000", "--repeats", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("2 x 2000 events per size")
    row = lines[-1].split()
    assert row[0] == "6" and row[1] == "216" and len(row) == 9
    assert 0 < float(row[5]) <= 100          # bytes per site: the memory target


def _subparsers(parser, path=("cait",)):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield path + (name,), sub
                yield from _subparsers(sub, path + (name,))


def test_every_subcommand_has_a_description_and_the_common_vocabulary():
    from compare.cli import build_parser

    found = list(_subparsers(build_parser()))
    assert len(found) >= 15
    for path, sub in found:
        assert sub.description, " ".join(path)
        options = {o for a in sub._actions for o in a.option_strings}
        if "--output" in options:
            assert "-o" in options, " ".join(path)
        assert "--output-dir" not in options, " ".join(path)


def test_datasets_record_the_command_line(tmp_path):
    from compare.cli import main
    from compare.io.datasets import open_dataset
    from tests.conftest import INPUTS

    out = tmp_path / "s"
    assert main(["sed", str(INPUTS / "li3b7o12_k_cait.toml"), "-o", str(out)]) == 0
    cmd = open_dataset(out / "sed.nc").attrs["command_line"]
    assert cmd.startswith("cait sed ") and str(out) in cmd
