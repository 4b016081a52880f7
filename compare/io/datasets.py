"""Datasets and figures on disk: provenance attributes and atomic writes.

Every file is written to a temporary name in the destination folder and renamed into place, so
an interrupted or failed run never leaves a half-written file under the final name.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import os
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np
import xarray as xr

from compare.errors import InputFileError
from kmc.checkpoint import file_mode  # the umask rule of every file the project writes


def package_version() -> str:
    """The installed version of the `cait` package."""
    try:
        return metadata.version("cait")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


# The command line of this run: set by the `cait` CLI; a Python caller gets sys.argv.
COMMAND_LINE: list = []


def command_line() -> str:
    """The command line that produced the datasets of this process (shell-quoted)."""
    import shlex

    return shlex.join(COMMAND_LINE or sys.argv)


def provenance(cfg=None, seed=None, status="ok", message="") -> dict:
    """Provenance attributes for a dataset (all NetCDF-safe scalars/strings)."""
    attrs = {
        "cait_version": package_version(),
        "command_line": command_line(),
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "status": str(status),
        "message": str(message),
    }
    if cfg is not None:
        attrs["input_text"] = cfg.text
        attrs["input_sha256"] = hashlib.sha256(cfg.text.encode()).hexdigest()
        attrs["input_path"] = str(cfg.path or "")
    if seed is not None:
        attrs["seed"] = seed if isinstance(seed, str) else np.asarray(seed, dtype=np.int64)
    return attrs


def _atomic_target(path: Path, suffix: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix + ".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def _publish(tmp: Path, path: Path) -> None:
    """Give the finished temporary file the umask's permissions and rename it into place."""
    os.chmod(tmp, file_mode())
    os.replace(tmp, path)


def _clean_attrs(attrs: dict) -> dict:
    """NetCDF accepts str, numbers and 1-D numeric arrays; map the rest (bool, None, Path)."""
    out = {}
    for k, v in attrs.items():
        if isinstance(v, bool) or isinstance(v, np.bool_):
            v = int(v)
        elif v is None:
            v = ""
        elif isinstance(v, Path):
            v = str(v)
        elif isinstance(v, (list, tuple)):
            v = np.asarray(v)
            if v.dtype.kind in "UO":
                v = ", ".join(str(x) for x in v)
        out[k] = v
    return out


def write_dataset(ds: xr.Dataset, path, cfg=None, seed=None, status="ok", message="") -> Path:
    """Write `ds` to NetCDF atomically, with provenance attributes added.

    Parameters
    ----------
    ds : xarray.Dataset
        The result; its own attrs are kept (provenance keys overwrite).
    path : path-like
        Destination ``.nc`` file; parent folders are created.
    cfg : compare.io.config.Config, optional
        The scenario; its full input text and hash go into the attrs.
    seed : int or sequence of int, optional
        Random seed(s) of the run.
    status, message : str
        ``"ok"``, ``"failed"`` or ``"interrupted"``, and a human-readable explanation.
    """
    path = Path(path)
    ds = ds.copy()
    ds.attrs = _clean_attrs({**ds.attrs, **provenance(cfg, seed, status, message)})
    for name in ds.variables:
        ds[name].attrs = _clean_attrs(ds[name].attrs)
    tmp = _atomic_target(path, ".nc")
    try:
        ds.to_netcdf(tmp, engine="netcdf4")
        _publish(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def open_dataset(path) -> xr.Dataset:
    """Load a dataset written by `cait` fully into memory (the file is closed afterwards)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"dataset not found: {str(path)!r}")
    try:
        with xr.open_dataset(path, engine="netcdf4") as ds:
            return ds.load()
    except (OSError, ValueError) as exc:
        raise InputFileError(f"cannot read dataset {str(path)!r}: {exc}") from None


def save_figure(fig, path, dpi: int = 120) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    tmp = _atomic_target(path, ".png")
    try:
        fig.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight")
        _publish(tmp, path)
    finally:
        plt.close(fig)
        if tmp.exists():
            tmp.unlink()
    return path


def axis_label(da: xr.DataArray) -> str:
    """`long_name [units]` of a variable or coordinate, for axis labels."""
    name = da.attrs.get("long_name", da.name)
    units = da.attrs.get("units", "")
    return f"{name} [{units}]" if units else str(name)
