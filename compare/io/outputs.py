"""Output folders: checked before any computation, held by one run at a time.

Every command resolves its output folder first (``-o/--output``, else ``outputs/<input
name><suffix>``), checks it (not a file, creatable, writable) and takes a lock on it
(``.cait.lock`` inside, an advisory ``flock`` released when the run ends or dies). A second run
into a held folder is refused in one line that names the holder; nested workflows of the same
process (``cait compare`` running ``cait kmc run`` into its folder) share the lock.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import os
import sys
from pathlib import Path

from compare.errors import ConfigError

LOCK_NAME = ".cait.lock"
OUTPUTS = Path("outputs")
_held: dict = {}  # resolved folder -> [file descriptor, depth] of the locks this process holds


def default_output(cfg, suffix: str = "", fallback: str = "run") -> Path:
    """``outputs/<input file stem><suffix>`` (``outputs/<fallback><suffix>`` without a file)."""
    stem = Path(cfg.path).stem if getattr(cfg, "path", None) else fallback
    return OUTPUTS / f"{stem}{suffix}"


def check_output_dir(path) -> Path:
    """Create `path` if needed and check that files can be written there.

    Raises
    ------
    ConfigError
        One line naming the folder: it is a file, cannot be created or is not writable.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ConfigError(f"`--output` {str(p)!r} is a file, not a folder: name a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"`--output` {str(p)!r} cannot be created: "
                          f"{exc.strerror or exc}") from None
    if not os.access(p, os.W_OK | os.X_OK):
        raise ConfigError(f"`--output` {str(p)!r} is not writable")
    return p


def _holder(fd) -> str:
    with contextlib.suppress(OSError):
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 4096).decode("utf-8", "replace").strip()
        if text:
            return text
    return "another process"


@contextlib.contextmanager
def output_dir(path):
    """Check `path` (:func:`check_output_dir`) and hold its lock for the duration of the block.

    Raises
    ------
    ConfigError
        The folder is unusable, or another run holds it (the message names that run).
    """
    p = check_output_dir(path)
    key = str(p.resolve())
    if key in _held:                      # a nested workflow of this process
        _held[key][1] += 1
        try:
            yield p
        finally:
            _held[key][1] -= 1
        return
    lock = p / LOCK_NAME
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise ConfigError(f"`--output` {str(p)!r}: cannot create the lock file: "
                          f"{exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise ConfigError(f"`--output` {str(p)!r} is in use by another cait run ({holder}); "
                          f"wait for it to end or choose another folder") from None
    started = _dt.datetime.now().isoformat(timespec="seconds")
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()}: {' '.join(sys.argv)} (since {started})".encode())
    _held[key] = [fd, 1]
    try:
        yield p
    finally:
        del _held[key]
        with contextlib.suppress(OSError):
            lock.unlink()                 # while still held: nobody can take a stale lock
        os.close(fd)                      # releases the flock
