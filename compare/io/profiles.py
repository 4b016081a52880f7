"""Measured depth profiles for `cait fit`: a CSV file (e.g. ToF-SIMS) or a KMC / NPP dataset.

CSV format (docs/fitting.md)::

    # comment lines start with '#', anywhere before or between data rows
    depth_nm,Li,K,Li_err,K_err
    0.5,0.16,0.80,0.01,0.02
    ...

The first column is the depth below the front surface in nm (strictly increasing, >= 0); every
other column is a species named exactly as in the input's ``[species.NAME]`` tables, holding the
concentration as a fraction of n_bulk; an optional ``NAME_err`` column holds its standard error
(given for every species column or for none; without them all points weigh the same).

Every problem raises :class:`compare.errors.InputFileError` naming the file, the line and the
column.
"""
from __future__ import annotations

import csv
import difflib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from compare.errors import InputFileError

DEPTH_COLUMN = "depth_nm"
ERR_SUFFIX = "_err"


@dataclass(frozen=True)
class MeasuredProfiles:
    """Concentration profiles at one time, with optional standard errors.

    Attributes
    ----------
    depth_nm : ndarray of float64, shape (n_depth,)
        Depths below the front surface [nm], strictly increasing.
    species : tuple of str, length n_species
        Species names (as in the input's ``[species]`` tables).
    values : ndarray of float64, shape (n_species, n_depth)
        Concentrations as fractions of n_bulk.
    errors : ndarray of float64, shape (n_species, n_depth), or None
        Standard errors of `values` (fraction of n_bulk); None: uniform weights.
    source : str
        File the profiles were read from.
    time_s : float or None
        Time of the profile when it came from a dataset; None for a CSV file.
    """

    depth_nm: np.ndarray
    species: tuple
    values: np.ndarray
    errors: np.ndarray | None
    source: str = ""
    time_s: float | None = None

    def to_dataset(self) -> xr.Dataset:
        """The profiles as a dataset with dims ``(species, depth)``."""
        coords = {"species": list(self.species),
                  "depth": ("depth", self.depth_nm, {"units": "nm", "long_name": "depth"})}
        ds = xr.Dataset(coords=coords)
        ds["measured"] = (("species", "depth"), self.values,
                          {"units": "1", "long_name": "measured concentration / n_bulk"})
        if self.errors is not None:
            ds["measured_err"] = (("species", "depth"), self.errors,
                                  {"units": "1", "long_name": "standard error of measured"})
        return ds


def _did_you_mean(word: str, legal) -> str:
    close = difflib.get_close_matches(word, list(legal), n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""


def _number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        if not text.strip():
            raise InputFileError(f"{where}: empty cell") from None
        raise InputFileError(f"{where}: not a number: {text.strip()!r}") from None
    if math.isnan(value) or math.isinf(value):
        raise InputFileError(f"{where}: {text.strip()!r} is not allowed (values must be finite)")
    return value


def read_csv_profiles(path, species_names=None) -> MeasuredProfiles:
    """Read depth profiles from a CSV file.

    Parameters
    ----------
    path : path-like
        The CSV file (format in the module docstring).
    species_names : sequence of str, optional
        Legal species column names (the input's species); None accepts any name.

    Returns
    -------
    MeasuredProfiles

    Raises
    ------
    InputFileError
        Missing or empty file, missing header, unknown or duplicate column, wrong number of
        cells, non-numeric / NaN / infinite cells, negative or non-increasing depth,
        non-positive standard errors, error columns for only some species.
    """
    path = Path(path)
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: spreadsheets write a BOM
    except FileNotFoundError:
        raise InputFileError(f"profile file not found: {name!r}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"cannot read profile file {name!r}: {exc}") from None

    rows = []  # (line number, cells)
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        rows.append((lineno, [c.strip() for c in next(csv.reader([line]))]))
    if not rows:
        raise InputFileError(f"{name}: file is empty (expected a header line such as "
                             f"`{DEPTH_COLUMN},Li,K` followed by data rows)")

    lineno, header = rows[0]
    first = header[0]
    try:
        float(first)
        is_number = True
    except ValueError:
        is_number = False
    if is_number:
        raise InputFileError(f"{name}, line {lineno}: missing header: the first line must name "
                             f"the columns, e.g. `{DEPTH_COLUMN},Li,K`, got numbers")
    if first != DEPTH_COLUMN:
        raise InputFileError(f"{name}, line {lineno}, column 1: the first column must be "
                             f"`{DEPTH_COLUMN}`, got {first!r}"
                             + _did_you_mean(first, [DEPTH_COLUMN]))
    columns = header[1:]
    if not columns:
        raise InputFileError(f"{name}, line {lineno}: no species columns after `{DEPTH_COLUMN}`")
    seen = set()
    for j, col in enumerate(columns, start=2):
        where = f"{name}, line {lineno}, column {j}"
        if col in seen:
            raise InputFileError(f"{where}: duplicate column {col!r}")
        seen.add(col)
        base = col[:-len(ERR_SUFFIX)] if col.endswith(ERR_SUFFIX) else col
        if species_names is not None and base not in species_names:
            suffix = col[len(base):]  # "" or "_err"
            legal = [s + suffix for s in species_names]
            raise InputFileError(f"{where}: unknown species column {col!r}"
                                 f"{_did_you_mean(col, legal)}; species in the input: "
                                 f"{', '.join(species_names)}")
        if not base:
            raise InputFileError(f"{where}: empty column name")
    value_cols = [c for c in columns if not c.endswith(ERR_SUFFIX)]
    err_cols = [c for c in columns if c.endswith(ERR_SUFFIX)]
    if not value_cols:
        raise InputFileError(f"{name}, line {lineno}: no species columns, only error columns")
    for c in err_cols:
        if c[:-len(ERR_SUFFIX)] not in value_cols:
            raise InputFileError(f"{name}, line {lineno}, column {header.index(c) + 1}: error "
                                 f"column {c!r} has no column {c[:-len(ERR_SUFFIX)]!r}")
    if err_cols and len(err_cols) != len(value_cols):
        missing = [c + ERR_SUFFIX for c in value_cols if c + ERR_SUFFIX not in err_cols]
        raise InputFileError(f"{name}, line {lineno}: give standard errors for every species "
                             f"or for none; missing: {', '.join(missing)}")

    data = rows[1:]
    if not data:
        raise InputFileError(f"{name}: no data rows after the header (line {lineno})")
    table = np.empty((len(data), len(header)))
    for i, (ln, cells) in enumerate(data):
        if len(cells) != len(header):
            raise InputFileError(f"{name}, line {ln}: expected {len(header)} cells (as in the "
                                 f"header), got {len(cells)}")
        for j, cell in enumerate(cells):
            table[i, j] = _number(cell, f"{name}, line {ln}, column {j + 1} (`{header[j]}`)")
        where = f"{name}, line {ln}, column 1 (`{DEPTH_COLUMN}`)"
        if table[i, 0] < 0:
            raise InputFileError(f"{where}: depth must be >= 0, got {cells[0]}")
        if i > 0 and table[i, 0] <= table[i - 1, 0]:
            raise InputFileError(f"{where}: depths must increase strictly, got {cells[0]} after "
                                 f"{data[i - 1][1][0]}")
        for c in err_cols:
            j = header.index(c)
            if table[i, j] <= 0:
                raise InputFileError(f"{name}, line {ln}, column {j + 1} (`{c}`): standard "
                                     f"errors must be > 0, got {cells[j]}")

    values = np.stack([table[:, header.index(c)] for c in value_cols])
    errors = (np.stack([table[:, header.index(c + ERR_SUFFIX)] for c in value_cols])
              if err_cols else None)
    return MeasuredProfiles(depth_nm=table[:, 0].copy(), species=tuple(value_cols),
                            values=values, errors=errors, source=name)


def read_dataset_profiles(path, time_s=None, species_names=None,
                          error_floor: float = 0.0) -> MeasuredProfiles:
    """Read profiles at one time from a KMC or NPP dataset (output contract).

    Parameters
    ----------
    path : path-like
        NetCDF file with ``concentration(species, time, depth)`` (fraction of n_bulk) and
        optionally a ``replica`` dimension or a ``concentration_sem`` variable.
    time_s : float, optional
        Time of the profile [s]; the nearest stored time within 1e-6 relative is used. Default:
        the last time.
    species_names : sequence of str, optional
        Keep only these species (those of the input); None keeps all.
    error_floor : float
        Standard errors below this (fraction of n_bulk) are raised to it, because a replica
        SEM can be exactly zero (e.g. a foreign species deep in the bulk).

    Returns
    -------
    MeasuredProfiles
        With errors from the replicas' SEM (``replica`` dim: std / sqrt(n_replicas), ddof=1) or
        from ``concentration_sem``; None when neither exists.
    """
    from compare.io.datasets import open_dataset

    path = Path(path)
    name = str(path)
    ds = open_dataset(path)
    if "concentration" not in ds:
        raise InputFileError(f"{name}: no variable `concentration` (expected the output "
                             f"contract: concentration(species, time, depth))")
    conc = ds["concentration"]
    for dim in ("species", "time", "depth"):
        if dim not in conc.dims:
            raise InputFileError(f"{name}: `concentration` has dims {conc.dims}, expected "
                                 f"(species, time, depth) and optionally replica")
    times = np.asarray(ds["time"].values, dtype=float)
    if time_s is None or time_s < 0:
        it = len(times) - 1
    else:
        it = int(np.argmin(np.abs(times - time_s)))
        if abs(times[it] - time_s) > 1e-6 * max(abs(time_s), 1e-30) + 1e-12:
            raise InputFileError(f"{name}: no profile at time_s = {time_s:g}; stored times "
                                 f"[s]: {', '.join(f'{t:g}' for t in times)}")
    conc = conc.isel(time=it)
    err = None
    if "replica" in conc.dims:
        n_rep = conc.sizes["replica"]
        if n_rep > 1:
            err = conc.std("replica", ddof=1) / math.sqrt(n_rep)
        conc = conc.mean("replica")
    elif "concentration_sem" in ds:
        err = ds["concentration_sem"].isel(time=it)
    species = [str(s) for s in conc["species"].values]
    if species_names is not None:
        unknown = [s for s in species if s not in species_names]
        keep = [s for s in species if s in species_names]
        if not keep:
            raise InputFileError(f"{name}: none of the dataset's species ({', '.join(species)}) "
                                 f"is defined in the input ({', '.join(species_names)})")
        species = keep if unknown else species
    conc = conc.sel(species=species).transpose("species", "depth")
    values = np.asarray(conc.values, dtype=float)
    depth = np.asarray(conc["depth"].values, dtype=float)
    if not np.all(np.isfinite(values)):
        raise InputFileError(f"{name}: `concentration` at time {times[it]:g} s contains NaN or "
                             f"infinite values")
    if np.any(np.diff(depth) <= 0):
        raise InputFileError(f"{name}: depth coordinate is not strictly increasing")
    errors = None
    if err is not None:
        errors = np.asarray(err.sel(species=species).transpose("species", "depth").values,
                            dtype=float)
        errors = np.where(np.isfinite(errors), errors, 0.0)
        errors = np.maximum(errors, error_floor)
        if not np.all(errors > 0):
            errors = None  # all-zero SEM and no floor: fall back to uniform weights
    return MeasuredProfiles(depth_nm=depth, species=tuple(species), values=values,
                            errors=errors, source=name, time_s=float(times[it]))


def read_profiles(path, species_names=None, time_s=None, error_floor: float = 0.0):
    """Read measured profiles from a ``.csv`` file or a ``.nc`` dataset (by suffix).

    See :func:`read_csv_profiles` and :func:`read_dataset_profiles`; `time_s` and
    `error_floor` apply to datasets only.
    """
    path = Path(path)
    if path.suffix.lower() == ".nc":
        return read_dataset_profiles(path, time_s=time_s, species_names=species_names,
                                     error_floor=error_floor)
    if path.suffix.lower() in (".csv", ".txt", ""):
        return read_csv_profiles(path, species_names=species_names)
    raise InputFileError(f"profile file {str(path)!r}: unknown type {path.suffix!r}; expected "
                         f"a .csv file or a .nc dataset")


def write_csv_profiles(profiles: MeasuredProfiles, path, comment: str = "") -> Path:
    """Write profiles in the CSV format read by :func:`read_csv_profiles`.

    Parameters
    ----------
    profiles : MeasuredProfiles
    path : path-like
    comment : str
        Text written first as ``#`` comment lines (e.g. how synthetic data were made).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# {line}".rstrip() for line in comment.splitlines()]
    names = list(profiles.species)
    header = [DEPTH_COLUMN] + names
    if profiles.errors is not None:
        header += [n + ERR_SUFFIX for n in names]
    lines.append(",".join(header))
    for i, d in enumerate(profiles.depth_nm):
        row = [f"{d:.6g}"] + [f"{v:.6g}" for v in profiles.values[:, i]]
        if profiles.errors is not None:
            row += [f"{e:.6g}" for e in profiles.errors[:, i]]
        lines.append(",".join(row))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
