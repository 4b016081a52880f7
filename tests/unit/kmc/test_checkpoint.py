"""Checkpoints: exact round trip, atomic replacement, input guard, signal flag."""
import dataclasses
import os
import signal

import numpy as np
import pytest

from kmc import checkpoint as ck


@dataclasses.dataclass
class State:
    occ: np.ndarray
    rng: np.ndarray
    time: float


def _state(rng):
    return State(occ=rng.integers(0, 3, size=(4, 3, 3)).astype(np.int8),
                 rng=np.array([1, 2**63 + 5, 3, 2**64 - 1], dtype=np.uint64), time=1.25e-3)


def test_round_trip_is_bitwise(tmp_path, rng):
    s = _state(rng)
    h = ck.input_hash("text", replica=1)
    p = ck.save_checkpoint(tmp_path / "sub" / "c.npz", s, meta={"n_events": 12, "status": "ok",
                                                                 "t_s": 0.5}, input_hash=h)
    c = ck.load_checkpoint(p, expected_hash=h)
    assert c.arrays["occ"].dtype == np.int8 and c.arrays["rng"].dtype == np.uint64
    np.testing.assert_array_equal(c.arrays["occ"], s.occ)
    np.testing.assert_array_equal(c.arrays["rng"], s.rng)
    assert c.arrays["time"].item() == s.time
    assert c.meta == {"n_events": 12, "status": "ok", "t_s": 0.5}
    assert sorted(os.listdir(tmp_path / "sub")) == ["c.npz"]  # no temporary files left


def test_overwrite_replaces_atomically(tmp_path, rng):
    p = tmp_path / "c.npz"
    ck.save_checkpoint(p, {"x": np.zeros(3)}, input_hash="a")
    ck.save_checkpoint(p, {"x": np.ones(3)}, input_hash="a")
    np.testing.assert_array_equal(ck.load_checkpoint(p).arrays["x"], np.ones(3))


def test_failed_write_keeps_previous_checkpoint(tmp_path):
    p = tmp_path / "c.npz"
    ck.save_checkpoint(p, {"x": np.zeros(3)}, input_hash="a")
    with pytest.raises(TypeError, match="metadata 'bad' must be a scalar"):
        ck.save_checkpoint(p, {"x": np.ones(3)}, meta={"bad": [1, 2]}, input_hash="a")
    np.testing.assert_array_equal(ck.load_checkpoint(p).arrays["x"], np.zeros(3))
    assert sorted(os.listdir(tmp_path)) == ["c.npz"]


def test_input_hash_depends_on_text_and_extras():
    assert ck.input_hash("a") != ck.input_hash("b")
    assert ck.input_hash("a", replica=0) != ck.input_hash("a", replica=1)
    assert ck.input_hash("a", x=1, y=2) == ck.input_hash("a", y=2, x=1)


def test_refuses_a_different_input(tmp_path):
    p = ck.save_checkpoint(tmp_path / "c.npz", {"x": np.zeros(1)}, input_hash=ck.input_hash("one"))
    with pytest.raises(ck.CheckpointError, match="was written for a different input"):
        ck.load_checkpoint(p, expected_hash=ck.input_hash("two"))


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(ck.CheckpointError, match="no checkpoint to resume from"):
        ck.load_checkpoint(tmp_path / "nope.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(2))
    with pytest.raises(ck.CheckpointError, match="is not a cait KMC checkpoint"):
        ck.load_checkpoint(tmp_path / "other.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ck.CheckpointDamaged, match=r"junk.npz' is damaged \(truncated or corrupt"):
        ck.load_checkpoint(tmp_path / "junk.npz")


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_previous_generation_is_kept_and_used_when_the_newest_is_torn(tmp_path):
    h = ck.input_hash("in")
    p = tmp_path / "c.npz"
    ck.save_checkpoint(p, {"x": np.arange(3)}, meta={"n": 1}, input_hash=h)
    ck.save_checkpoint(p, {"x": np.arange(3) + 10}, meta={"n": 2}, input_hash=h)
    assert ck.previous_path(p).is_file()
    got, note = ck.load_latest(p, h)
    assert got.meta["n"] == 2 and note == ""
    _truncate(p)                                  # a crash while copying, a full disk
    got, note = ck.load_latest(p, h)
    assert got.meta["n"] == 1 and np.array_equal(got.arrays["x"], np.arange(3))
    assert "is damaged; resuming from the previous one" in note
    _truncate(ck.previous_path(p))
    with pytest.raises(ck.CheckpointDamaged, match=r"c.npz' is damaged"):
        ck.load_latest(p, h)
    ck.remove_checkpoint(p)
    assert not p.exists() and not ck.previous_path(p).exists()


def test_no_fall_back_for_another_input(tmp_path):
    p = tmp_path / "c.npz"
    ck.save_checkpoint(p, {"x": np.zeros(1)}, input_hash=ck.input_hash("one"))
    ck.save_checkpoint(p, {"x": np.zeros(1)}, input_hash=ck.input_hash("one"))
    with pytest.raises(ck.CheckpointError, match="was written for a different input"):
        ck.load_latest(p, ck.input_hash("two"))


def test_checkpoint_files_follow_the_umask(tmp_path):
    old = os.umask(0o002)
    try:
        p = ck.save_checkpoint(tmp_path / "c.npz", {"x": np.zeros(1)}, input_hash="h")
    finally:
        os.umask(old)
    assert (p.stat().st_mode & 0o777) == 0o664


def test_signal_sets_flag_and_handlers_are_restored():
    before = signal.getsignal(signal.SIGTERM)
    with ck.interrupt_guard() as flag:
        assert not flag()
        os.kill(os.getpid(), signal.SIGTERM)
        assert flag() and flag.signal_name == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before


def test_second_sigint_raises_keyboard_interrupt():
    with pytest.raises(KeyboardInterrupt):
        with ck.interrupt_guard() as flag:
            os.kill(os.getpid(), signal.SIGINT)
            assert flag.signal_name == "SIGINT"
            os.kill(os.getpid(), signal.SIGINT)
