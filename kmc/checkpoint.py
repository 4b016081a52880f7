"""No lost work: atomic checkpoints of the engine state and a graceful stop on SIGINT/SIGTERM.

A checkpoint is one ``.npz`` file holding every array of the engine state (including the
random generator's ``uint64`` state, so a resumed run draws the same numbers), scalar metadata
(simulated time, event counts, replica, seed, ...) and the hash of the input it belongs to.
It is written to a temporary file in the destination folder, fsync'ed and renamed into place:
a crash while writing never destroys the previous checkpoint.

:func:`interrupt_guard` turns SIGINT/SIGTERM into a flag that the run loop checks between
chunks; the runner then writes a checkpoint and a partial dataset and exits non-zero. A second
SIGINT raises ``KeyboardInterrupt`` at once (the user insists).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import signal
import tempfile
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from kmc.errors import KMCStateError

FORMAT = "cait-kmc-checkpoint-1"
_A, _M = "a__", "m__"  # key prefixes in the npz: state arrays, metadata scalars


class CheckpointError(KMCStateError):
    """A checkpoint is missing, unreadable or belongs to a different input."""


class CheckpointDamaged(CheckpointError):
    """A checkpoint file is truncated or corrupt (a full disk, a crash while copying it)."""


def input_hash(text: str | bytes, **extra) -> str:
    """SHA-256 of the input text plus any extra run parameters that change the trajectory.

    Parameters
    ----------
    text : str or bytes
        The full input file text.
    **extra
        E.g. ``replica=3, seed=123``; included as ``key=value`` lines in sorted order.
    """
    h = hashlib.sha256(text.encode() if isinstance(text, str) else bytes(text))
    for k in sorted(extra):
        h.update(f"\n{k}={extra[k]!r}".encode())
    return h.hexdigest()


def _as_arrays(state) -> dict:
    if dataclasses.is_dataclass(state) and not isinstance(state, type):
        state = {f.name: getattr(state, f.name) for f in dataclasses.fields(state)}
    if not isinstance(state, Mapping):
        raise TypeError(f"state must be a mapping or dataclass of arrays, got {type(state).__name__}")
    out = {}
    for k, v in state.items():
        a = np.asarray(v)
        if a.dtype.kind == "O":
            raise TypeError(f"state entry {k!r} is not a numeric/str array (dtype object)")
        out[str(k)] = a
    return out


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint."""

    arrays: dict  # name -> ndarray, exactly as saved (dtype and shape preserved)
    meta: dict  # name -> python scalar or str
    input_hash: str
    path: Path | None = field(default=None)


def file_mode() -> int:
    """Permissions of a new file under this process's umask, ``0o666 & ~umask``.

    Temporary files are created 0600; finished files get these permissions before they are
    renamed into place, so a group can read what its members write. The umask is read from
    /proc (``os.umask`` would briefly change it for every thread of the process)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o644


def previous_path(path) -> Path:
    """Where the generation before the current checkpoint is kept (``NAME.prev.npz``)."""
    path = Path(path)
    return path.with_name(path.stem + ".prev" + path.suffix)


def save_checkpoint(path, state, meta: Mapping | None = None, input_hash: str = "") -> Path:
    """Write the state atomically to ``path`` (``.npz``).

    Parameters
    ----------
    path : path-like
        Destination; parent folders are created.
    state : mapping or dataclass of array_like
        The engine state (numeric or str arrays of any shape, 0-d for scalars).
    meta : mapping of str to scalar or str, optional
        Scalar metadata (time, counters, seed, status).
    input_hash : str
        Identifies the input the state belongs to (see :func:`input_hash`).
    """
    path = Path(path)
    payload = {f"{_A}{k}": v for k, v in _as_arrays(state).items()}
    for k, v in (meta or {}).items():
        a = np.asarray(v)
        if a.ndim != 0 or a.dtype.kind == "O":
            raise TypeError(f"checkpoint metadata {k!r} must be a scalar or str, got {v!r}")
        payload[f"{_M}{k}"] = a
    payload["__format__"] = np.asarray(FORMAT)
    payload["__input_hash__"] = np.asarray(str(input_hash))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npz.tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode())
        if path.exists():
            os.replace(path, previous_path(path))   # keep one older generation
        os.replace(tmp, path)
        with contextlib.suppress(OSError):  # make the rename itself durable (POSIX)
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_checkpoint(path, expected_hash: str | None = None) -> Checkpoint:
    """Read a checkpoint; refuse one written for a different input.

    Parameters
    ----------
    path : path-like
    expected_hash : str, optional
        The hash of the input being resumed; a mismatch raises :class:`CheckpointError`.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint to resume from: {str(path)!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise CheckpointDamaged(f"checkpoint {str(path)!r} is damaged (truncated or corrupt: "
                                f"{exc})") from None
    if "__input_hash__" not in data and str(data.get("__format__", "")) == FORMAT:
        raise CheckpointDamaged(f"checkpoint {str(path)!r} is damaged (no input hash)")
    if str(data.get("__format__", "")) != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a cait KMC checkpoint (format "
                              f"{str(data.get('__format__', 'missing'))!r}, expected {FORMAT!r})")
    found = str(data["__input_hash__"])
    if expected_hash is not None and found != expected_hash:
        raise CheckpointError(
            f"checkpoint {str(path)!r} was written for a different input (hash {found[:12]}..., "
            f"this input {expected_hash[:12]}...); resume with the original input or start afresh "
            "without --resume")
    arrays = {k[len(_A):]: v for k, v in data.items() if k.startswith(_A)}
    meta = {k[len(_M):]: v.item() for k, v in data.items() if k.startswith(_M)}
    return Checkpoint(arrays=arrays, meta=meta, input_hash=found, path=path)


def load_latest(path, expected_hash: str | None = None):
    """The newest readable generation: ``path``, else its previous one (``NAME.prev.npz``).

    Returns
    -------
    (Checkpoint, str)
        The checkpoint and a note: empty, or one line saying that ``path`` was damaged or
        missing and the previous generation (one checkpoint interval older) is used.

    Raises
    ------
    CheckpointError
        Neither generation can be used (the error of ``path`` is raised), or ``path`` belongs
        to another input (no fall-back then: the previous one does too).
    """
    path = Path(path)
    try:
        return load_checkpoint(path, expected_hash), ""
    except CheckpointError as exc:
        if path.is_file() and not isinstance(exc, CheckpointDamaged):
            raise
        prev = previous_path(path)
        if not prev.is_file():
            raise
        try:
            ck = load_checkpoint(prev, expected_hash)
        except CheckpointError:
            raise exc from None
        why = "is damaged" if path.is_file() else "is missing"
        return ck, (f"checkpoint {str(path)!r} {why}; resuming from the previous one "
                    f"{str(prev)!r} (one checkpoint interval earlier)")


def remove_checkpoint(path) -> None:
    """Delete a checkpoint and its previous generation (the run they belong to is finished)."""
    for p in (Path(path), previous_path(path)):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


class InterruptFlag:
    """Set when a stop was requested; the run loop polls it between chunks (``flag()``)."""

    def __init__(self):
        self.signum: int | None = None
        self._event = threading.Event()

    def set(self, signum: int | None = None) -> None:
        self.signum = signum
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    __call__ = is_set

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else "stop request"


@contextlib.contextmanager
def interrupt_guard(signals=(signal.SIGINT, signal.SIGTERM)):
    """Within the block, SIGINT/SIGTERM set the yielded :class:`InterruptFlag` instead of killing.

    The previous handlers are restored on exit. Outside the main thread (where handlers cannot
    be installed) the flag is still yielded but only set by hand.
    """
    flag = InterruptFlag()

    def handler(signum, frame):
        if flag.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: stop now
        flag.set(signum)

    saved = {}
    if threading.current_thread() is threading.main_thread():
        for s in signals:
            saved[s] = signal.signal(s, handler)
    try:
        yield flag
    finally:
        for s, h in saved.items():
            signal.signal(s, h)
