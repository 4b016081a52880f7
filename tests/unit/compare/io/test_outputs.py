"""Output folders: checked before any computation, one run at a time, files per the umask."""
import os
import subprocess
import sys
import time


from compare.cli import main
from compare.io.outputs import LOCK_NAME, output_dir
from tests.conftest import INPUTS

K_INPUT = str(INPUTS / "li3b7o12_k_cait.toml")


def test_output_that_is_a_file_is_refused_at_once(tmp_path, capsys):
    f = tmp_path / "taken"
    f.write_text("x")
    t0 = time.monotonic()
    assert main(["npp", "run", K_INPUT, "-o", str(f), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"cait: error: `--output` {str(f)!r} is a file, not a folder: name a folder"]
    assert time.monotonic() - t0 < 5.0  # refused before the solve (which takes ~1 s or more)


def test_output_that_cannot_be_created(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    bad = tmp_path / "file" / "sub"
    assert main(["sed", K_INPUT, "-o", str(bad)]) == 2
    assert "cannot be created" in capsys.readouterr().err


def test_a_held_folder_is_refused_naming_the_holder(tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    code = ("import fcntl, os, sys, time\n"
            f"fd = os.open({str(out / LOCK_NAME)!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "os.write(fd, b'pid 4242: cait npp run other.toml')\n"
            "print('held', flush=True)\n"
            "time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["npp", "run", K_INPUT, "-o", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert "is in use by another cait run (pid 4242: cait npp run other.toml)" in err
        assert not (out / "npp.nc").exists()
    finally:
        holder.kill()
        holder.wait()


def test_nested_use_in_one_process_and_lock_removed_after(tmp_path):
    with output_dir(tmp_path / "o") as a:
        assert (a / LOCK_NAME).is_file()
        with output_dir(a) as b:          # e.g. `cait compare` running `cait kmc run` there
            assert b == a
        assert (a / LOCK_NAME).is_file()
    assert not (a / LOCK_NAME).exists()


def test_default_folder_is_per_input_and_files_follow_the_umask(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    old = os.umask(0o002)
    try:
        assert main(["sed", K_INPUT]) == 0
    finally:
        os.umask(old)
    out = tmp_path / "outputs" / "li3b7o12_k_cait"
    for name in ("sed.nc", "sed.png", "dn.png"):
        assert (out / name).stat().st_mode & 0o777 == 0o664, name
    assert not (out / LOCK_NAME).exists()
