"""`cait dn`: the native D(x) three ways on one plot (like the paper's Fig. 2).

x = n_native / (n_native + n_foreign) = native fraction of n_bulk (the total ion density stays
n_bulk in a CAIT exchange), so all three share one axis:

(a) ``sed``: the SED formula, paper eqn (2) (:class:`continuum.dmodel.SEDDiffusivity`), with
    ``D_bulk`` = the KMC's own bulk value ``D_eff,native(x = 1) = kT L_11 / n`` so that the
    scales are comparable (the input's ``D_cm2_s`` belongs to the NPP scenario and generally
    differs from what the KMC rates give). Drawn for the input's filling and for Fermi-Dirac
    filling (the KMC runs at finite T). The curve with the input's ``D_cm2_s`` is kept in the
    dataset as ``D_sed_input``.
(b) ``kmc``: equilibrium KMC (``cait kmc equilibrium``): ``D_eff,s = kT L_ss / n_s`` (paper
    eqns 8-9) and ``2 D*_s`` (the paper's tracer relation) with standard errors, for native
    and foreign, plus the NPP-effective D's of the full-L CAIT transformation
    (:func:`continuum.onsager.D_eff_from_L`, no error bar: only block means are stored).
(c) ``fit`` (optional, ``--fit``): NPP fitted to KMC CAIT profiles (``kmc.nc`` of ``cait kmc
    run``) with :func:`compare.workflows.fit.fit`; free parameters from the input's ``[fit]`` section or,
    if it has none, SED FWHM, D_bulk(native) and D(foreign). The NPP sample thickness is set to
    the KMC lattice depth so both have their bulk reservoir at the same place. The starts
    search on a coarser NPP model (:func:`default_search_model`); the best one is polished and
    its uncertainties computed on the input's ``[npp]`` model.

Outputs in ``DIR``: ``dn.nc`` (variables listed in :func:`dn_dataset`) and ``dn.png``.
"""
from __future__ import annotations

import hashlib
import math
import time
from pathlib import Path

import numpy as np
import xarray as xr

from compare import scenario
from compare.errors import ConfigError, InputFileError
from compare.io.outputs import default_output, output_dir
from compare.units import CM2_TO_M2, D_UNITS
DEFAULT_X = (0.3, 0.5, 0.7, 0.85, 1.0)
N_GRID = 200  # points of the SED-formula curves
FILLINGS = ("step", "fermi-dirac")
# --fit: the starts search on a coarser NPP model (a quarter of the [npp] cells, at least 100;
# rtol at least 1e-3), the best start is polished on the input's own [npp] model. Measured on
# inputs/li3b7o12_kmc_k_cait.toml (docs/fitting.md, "cait dn --fit"): one solve at the starts
# costs up to 25 s CPU at 400 cells, rtol 1e-4, and <= 0.5 s at 100 cells, rtol 1e-3.
SEARCH_CELLS_FRACTION = 4
SEARCH_MIN_CELLS = 100
SEARCH_RTOL = 1e-3


def out_dir_for(cfg, out_dir=None) -> Path:
    """``DIR``: given, or ``outputs/<input stem>`` (the folder `cait kmc` writes to)."""
    return Path(out_dir) if out_dir is not None else default_output(cfg)


def with_bulk(xs) -> tuple:
    """Sorted compositions with x = 1 added (the KMC bulk D sets the scale of curve (a))."""
    return tuple(sorted(set(float(x) for x in xs) | {1.0}))


# ---------------------------------------------------------------------------------------------
# (b) equilibrium KMC
# ---------------------------------------------------------------------------------------------
def kmc_equilibrium(cfg, out: Path, xs, replicas=None, reuse=False, quiet=True) -> xr.Dataset:
    """The equilibrium KMC table: reuse ``out/kmc_equilibrium.nc`` or run it.

    Parameters
    ----------
    xs : sequence of float
        Compositions to run (x = 1 is added).
    reuse : bool
        Use an existing ``kmc_equilibrium.nc`` of the same input (checked by the SHA-256 of the
        input text stored in the file) instead of running.

    Raises
    ------
    ConfigError
        ``reuse`` with a dataset made from a different input.
    """
    from compare.io.datasets import open_dataset

    path = out / "kmc_equilibrium.nc"
    if reuse and path.is_file():
        ds = open_dataset(path)
        sha = hashlib.sha256(cfg.text.encode()).hexdigest()
        if ds.attrs.get("input_sha256", sha) != sha:
            raise ConfigError(f"--reuse: {str(path)!r} was made from a different input "
                              f"({ds.attrs.get('input_path', '?')}); run without --reuse or "
                              f"choose another output folder with -o")
        if not quiet:
            print(f"cait dn: reusing {path} (x = {', '.join(f'{x:g}' for x in ds.x.values)})")
        return ds
    if cfg.path is None:
        raise ConfigError("cait dn needs an input file on disk to run the equilibrium KMC")
    from compare.workflows.run_kmc import run_equilibrium

    code = run_equilibrium(cfg.path, with_bulk(xs), out_dir=out, replicas=replicas, quiet=quiet)
    ds = open_dataset(path)
    if code != 0:
        ds.attrs["status"] = "interrupted"
    return ds


def cait_D_eff_table(eq: xr.Dataset, n_bulk_m3: float, temperature_K: float) -> np.ndarray:
    """Full-L CAIT transformation of the block-mean L at every x [cm^2/s].

    Returns
    -------
    ndarray of float64, shape (2, n_x)
        (native, foreign); NaN at x = 1 or where no positive NPP D's reproduce L.
    """
    from continuum import onsager

    out = np.full((2, eq.sizes["x"]), np.nan)
    names = [str(s) for s in eq.species.values][:2]
    if len(names) < 2:
        return out
    for k, x in enumerate(eq.x.values):
        if not 0.0 < x < 1.0:
            continue
        L = eq.L.sel(species=names, species2=names).isel(x=k).transpose("species", "species2")
        n = n_bulk_m3 * np.array([x, 1.0 - x])
        try:
            out[:, k] = onsager.D_eff_from_L(L.values, n, temperature_K, rtol=1e-8) / CM2_TO_M2
        except onsager.OnsagerError:
            pass
    return out


# ---------------------------------------------------------------------------------------------
# (a) SED formula
# ---------------------------------------------------------------------------------------------
def sed_curve(cfg, D_bulk_cm2_s: float, x, filling: str, fwhm_eV=None, center_eV=None):
    """Native D(x) of paper eqn (2) scaled to ``D_bulk_cm2_s`` at x = 1 [cm^2/s]."""
    if filling not in FILLINGS:
        raise ConfigError(f"unknown filling {filling!r}; legal: {', '.join(FILLINGS)}")
    sed = scenario.native_sed(cfg, fwhm_eV=fwhm_eV, center_eV=center_eV)
    model = scenario.sed_diffusivity(cfg, D_bulk_cm2_s, sed=sed, filling=filling)
    return model.D(np.asarray(x, dtype=float)) / CM2_TO_M2


# ---------------------------------------------------------------------------------------------
# (c) NPP fitted to KMC CAIT profiles
# ---------------------------------------------------------------------------------------------
def default_fit_parameters(cfg, D_native_cm2_s: float, D_foreign_cm2_s: float) -> list:
    """D_bulk(native), D(first foreign), bounds two decades around the starts, and the SED FWHM
    when the SED is one Gaussian (other kinds have no single width to fit)."""
    if len(cfg.species) < 2:
        raise ConfigError("cait dn --fit needs a foreign species in the input")
    width = []
    if cfg.sed.kind == "gaussian":
        fwhm = float(cfg.sed.fwhm_eV)
        width = [{"name": "sed.fwhm_eV", "lower": 0.05, "upper": max(0.5, 2 * fwhm),
                  "start": fwhm}]
    return width + [
        {"name": f"species.{cfg.native.name}.D_cm2_s", "lower": D_native_cm2_s / 100,
         "upper": D_native_cm2_s * 100, "start": D_native_cm2_s},
        {"name": f"species.{cfg.species[1].name}.D_cm2_s", "lower": D_foreign_cm2_s / 100,
         "upper": D_foreign_cm2_s * 100, "start": D_foreign_cm2_s},
    ]


def default_search_model(cfg) -> dict:
    """``fit.search_n_cells`` and ``fit.search_rtol`` of `cait dn --fit` when the input sets
    neither: a quarter of the [npp] cells (at least 100, at most all) and rtol >= 1e-3."""
    n = cfg.npp
    cells = min(n.n_cells, max(SEARCH_MIN_CELLS, n.n_cells // SEARCH_CELLS_FRACTION))
    return {"search_n_cells": int(cells), "search_rtol": max(SEARCH_RTOL, float(n.rtol))}


def fit_kmc_profiles(cfg, kmc_path, D_native_cm2_s, D_foreign_cm2_s, forward=None,
                     workers=None, log=None) -> xr.Dataset:
    """Fit NPP to the last profile of a KMC CAIT dataset (``compare.workflows.fit.fit``).

    The NPP sample thickness is set to the KMC lattice depth (``nx a``), the fit parameters
    to the input's ``[fit]`` section or :func:`default_fit_parameters`, the search model to
    the input's ``fit.search_n_cells``/``fit.search_rtol`` or :func:`default_search_model`.

    Returns
    -------
    xarray.Dataset
        The fit result of :func:`compare.workflows.fit.fit`.
    """
    from compare.io import config as config_mod
    from compare.workflows import fit as fitmod
    from compare.io.datasets import open_dataset
    from compare.io.profiles import read_profiles

    kmc_path = Path(kmc_path)
    if not kmc_path.is_file():
        raise InputFileError(f"--fit: KMC CAIT dataset not found: {str(kmc_path)!r} (run `cait "
                             f"kmc run INPUT -o DIR` first or pass --kmc-dataset)")
    kmc = open_dataset(kmc_path)
    if kmc.attrs.get("engine") != "kmc" or "a_nm" not in kmc.attrs or "nx" not in kmc.attrs:
        raise InputFileError(f"--fit: {str(kmc_path)!r} is not a KMC CAIT dataset (needs attrs "
                             f"engine = 'kmc', a_nm, nx)")
    depth_nm = float(kmc.attrs["a_nm"]) * int(kmc.attrs["nx"])
    cfg = config_mod.replace(cfg, "sample", thickness_nm=depth_nm)
    if not cfg.fit.parameters:
        cfg = config_mod.replace(cfg, "fit", parameters=default_fit_parameters(
            cfg, D_native_cm2_s, D_foreign_cm2_s))
    if cfg.fit.search_n_cells == 0 and cfg.fit.search_rtol == 0:
        cfg = config_mod.replace(cfg, "fit", **default_search_model(cfg))
    measured = read_profiles(kmc_path, cfg.species_names,
                             time_s=cfg.fit.time_s if cfg.fit.time_s >= 0 else None,
                             error_floor=cfg.fit.error_floor)
    return fitmod.fit(cfg, measured, forward=forward, workers=workers, log=log)


def fitted_curves(cfg, fit_ds: xr.Dataset, x) -> dict:
    """Native D(x) (SED formula with the fitted FWHM/centre/D_bulk) and foreign D [cm^2/s]."""
    best = {str(n): float(v) for n, v in zip(fit_ds["param"].values, fit_ds["best"].values)}
    native = cfg.native.name
    D_nat = best.get(f"species.{native}.D_cm2_s", float(cfg.native.D_cm2_s))
    kw = {}
    if "sed.fwhm_eV" in best or "sed.center_eV" in best:
        kw = dict(fwhm_eV=best.get("sed.fwhm_eV"), center_eV=best.get("sed.center_eV"))
    cfg_fit = cfg
    if "material.vacancy_fraction" in best:
        from compare.io import config as config_mod
        cfg_fit = config_mod.replace(cfg, "material",
                                     vacancy_fraction=best["material.vacancy_fraction"])
    out = {"native": sed_curve(cfg_fit, D_nat, x, cfg.sed.filling, **kw)}
    if len(cfg.species) > 1:
        f = cfg.species[1].name
        out["foreign"] = np.full(np.shape(x), best.get(f"species.{f}.D_cm2_s",
                                                       float(cfg.species[1].D_cm2_s)))
    return out, best


# ---------------------------------------------------------------------------------------------
# The dataset and the figure
# ---------------------------------------------------------------------------------------------
def _var(dims, values, units, long_name, **extra):
    return dims, np.asarray(values, dtype=float), {"units": units, "long_name": long_name, **extra}


def dn_dataset(cfg, eq: xr.Dataset, fit_ds: xr.Dataset | None = None) -> xr.Dataset:
    """Combine (a), (b) and optionally (c).

    Returns
    -------
    xarray.Dataset
        dims ``x`` (KMC compositions), ``x_fine`` (curves), ``species`` (native, first foreign);
        ``D_eff``, ``D_eff_sem``, ``two_D_star``, ``two_D_star_sem``, ``D_eff_cait``
        (species, x); ``haven``, ``haven_sem`` (species, x); ``D_sed`` (filling, x_fine) on the
        KMC scale, ``D_sed_input`` (x_fine) on the input's scale; with a fit: ``D_fit``
        (species, x_fine). All D in cm^2/s. attrs: ``D_bulk_kmc_cm2_s``, ``D_bulk_source``.
    """
    names = [str(s) for s in eq.species.values][:2]
    native = cfg.native.name
    if names[0] != native:
        raise InputFileError(f"kmc_equilibrium.nc: first species is {names[0]!r}, the input's "
                             f"native species is {native!r}")
    xk = np.asarray(eq.x.values, dtype=float)
    sel = eq.sel(species=names)
    D_eff = sel.D_eff.transpose("species", "x").values
    D_eff_sem = sel.D_eff_sem.transpose("species", "x").values
    Dst = sel.D_star.transpose("species", "x").values
    Dst_sem = sel.D_star_sem.transpose("species", "x").values
    # the KMC's own bulk D sets the scale of the SED formula (document: docs/tutorial.md)
    i1 = np.flatnonzero(np.isclose(xk, 1.0))
    if i1.size and np.isfinite(D_eff[0, i1[0]]) and D_eff[0, i1[0]] > 0:
        D_bulk, source = float(D_eff[0, i1[0]]), "kmc D_eff(native, x=1)"
        D_bulk_sem = float(D_eff_sem[0, i1[0]])
    else:
        D_bulk, source, D_bulk_sem = float(cfg.native.D_cm2_s), "input species D_cm2_s (no KMC " \
                                                                "value at x = 1)", float("nan")
    x_fine = np.linspace(0.05, 1.0, N_GRID)
    D_sed = np.stack([sed_curve(cfg, D_bulk, x_fine, f) for f in FILLINGS])
    D_sed_in = sed_curve(cfg, float(cfg.native.D_cm2_s), x_fine, cfg.sed.filling)
    T = float(cfg.material.temperature_K)
    cait = cait_D_eff_table(eq, float(cfg.material.n_bulk_cm3) * 1e6, T)
    sp_dim = ("species", "x")
    dv = {
        "D_eff": _var(sp_dim, D_eff, D_UNITS, "KMC D_eff = kT L_ss/n_s (paper eqns 8-9)"),
        "D_eff_sem": _var(sp_dim, D_eff_sem, D_UNITS, "standard error of D_eff"),
        "two_D_star": _var(sp_dim, 2 * Dst, D_UNITS, "2 D* (paper's tracer relation)"),
        "two_D_star_sem": _var(sp_dim, 2 * Dst_sem, D_UNITS, "standard error of 2 D*"),
        "D_eff_cait": _var(sp_dim, cait, D_UNITS, "NPP-effective D from the full-L CAIT "
                                                   "transformation (continuum.onsager)"),
        "haven": _var(sp_dim, sel.haven.transpose("species", "x").values, "1",
                      "Haven ratio D*/D_eff"),
        "haven_sem": _var(sp_dim, sel.haven_sem.transpose("species", "x").values, "1",
                          "standard error of the Haven ratio"),
        "D_sed": _var(("filling", "x_fine"), D_sed, D_UNITS,
                      "SED formula (paper eqn 2) scaled to the KMC bulk D"),
        "D_sed_input": _var(("x_fine",), D_sed_in, D_UNITS,
                            f"SED formula with the input's D_bulk ({cfg.sed.filling} filling)"),
    }
    attrs = {"engine": "dn", "native_species": native,
             "foreign_species": names[1] if len(names) > 1 else "",
             "D_bulk_kmc_cm2_s": D_bulk, "D_bulk_kmc_sem_cm2_s": D_bulk_sem,
             "D_bulk_source": source, "D_bulk_input_cm2_s": float(cfg.native.D_cm2_s),
             "input_filling": cfg.sed.filling, "temperature_K": T,
             "kmc_error_source": str(eq.attrs.get("error_source", "")),
             "kmc_eq_size": int(eq.attrs.get("eq_size", 0)),
             "kmc_status": str(eq.attrs.get("status", "ok")),
             "fit": "none"}
    if fit_ds is not None:
        curves, best = fitted_curves(cfg, fit_ds, x_fine)
        rows = [curves["native"], curves.get("foreign", np.full(N_GRID, np.nan))]
        dv["D_fit"] = _var(("species", "x_fine"), np.stack(rows[:len(names)]), D_UNITS,
                           "NPP fitted to KMC CAIT profiles")
        attrs.update(fit="ok", fit_reduced_chi2=float(fit_ds["reduced_chi2"]),
                     fit_wall_time_s=float(fit_ds["wall_time"]) if "wall_time" in fit_ds else -1.0,
                     **{f"fit_{k}": v for k, v in best.items()},
                     **{f"fit_{n}_stderr": float(s) for n, s in
                        zip(fit_ds["param"].values, fit_ds["stderr_natural"].values)})
    return xr.Dataset(
        dv,
        coords={"x": ("x", xk, {"units": "1", "long_name": "x = n_native/(n_native+n_foreign)"}),
                "x_fine": ("x_fine", x_fine, {"units": "1", "long_name": "native fraction of "
                                                                         "n_bulk"}),
                "species": np.array(names, dtype=str),
                "filling": np.array(FILLINGS, dtype=str)},
        attrs=attrs)


def run_dn(input_path, out_dir=None, xs=None, replicas=None, reuse=False, fit=False,
           kmc_dataset=None, quiet=False, forward=None) -> dict:
    """`cait dn`: write ``dn.nc`` and ``dn.png``; returns ``{"dataset": path, "figure": path}``."""
    from compare.io.config import load_config
    from compare.io.datasets import save_figure, write_dataset
    from compare.reports.dn import plot_dn

    t0 = time.monotonic()
    cfg = load_config(input_path)
    if len(cfg.species) < 2:
        raise ConfigError("cait dn needs a foreign species in the input (x < 1)")
    out = out_dir_for(cfg, out_dir)
    with output_dir(out):
        eq = kmc_equilibrium(cfg, out, xs if xs is not None else DEFAULT_X, replicas=replicas,
                             reuse=reuse, quiet=quiet)
        fit_ds = None
        if fit:
            pre = dn_dataset(cfg, eq)
            D_nat = float(pre.attrs["D_bulk_kmc_cm2_s"])
            Df = pre.D_eff.isel(species=1).values
            D_for = float(np.nanmedian(Df)) if np.isfinite(Df).any() else float(cfg.species[1].D_cm2_s)
            path = Path(kmc_dataset) if kmc_dataset is not None else out / "kmc.nc"
            fit_ds = fit_kmc_profiles(cfg, path, D_nat, D_for, forward=forward,
                                      log=None if quiet else print)
            from compare.reports.fit import plot_fit

            write_dataset(fit_ds, out / "dn_fit.nc", cfg=cfg, seed=cfg.fit.seed,
                          message=fit_ds.attrs.get("fit_message", ""))
            save_figure(plot_fit(fit_ds, cfg), out / "dn_fit.png")
        ds = dn_dataset(cfg, eq, fit_ds)
        status = "interrupted" if ds.attrs["kmc_status"] == "interrupted" else "ok"
        ds.attrs["wall_time_s"] = time.monotonic() - t0
        paths = {"dataset": write_dataset(ds, out / "dn.nc", cfg=cfg, status=status,
                                          message="" if status == "ok" else
                                          "equilibrium KMC was interrupted: some x missing"),
                 "figure": save_figure(plot_dn(ds, cfg), out / "dn.png")}
        if not quiet:
            _print_table(ds)
            print(f"cait dn: {time.monotonic() - t0:.1f} s -> {paths['dataset']}, {paths['figure']}")
        return paths


def _print_table(ds: xr.Dataset) -> None:
    print(f"  D_bulk for the SED formula: {ds.attrs['D_bulk_kmc_cm2_s']:.4g} cm^2/s "
          f"({ds.attrs['D_bulk_source']})")
    for sp in ds.species.values:
        for k, x in enumerate(ds.x.values):
            d = ds.sel(species=sp).isel(x=k)
            if not math.isfinite(float(d.D_eff)):
                continue
            fit = ""
            if "D_fit" in ds:
                fit = (f", NPP fit D = "
                       f"{float(np.interp(x, ds.x_fine.values, d.D_fit.values)):.3g}")
            print(f"  {sp:>4s} x = {x:.2f}: D_eff = {float(d.D_eff):.3g} ± "
                  f"{float(d.D_eff_sem):.2g}, 2D* = {float(d.two_D_star):.3g} ± "
                  f"{float(d.two_D_star_sem):.2g}, CAIT D_eff = {float(d.D_eff_cait):.3g}"
                  f"{fit} cm^2/s")
    if ds.attrs.get("fit") == "ok":
        names = [k[len("fit_"):-len("_stderr")] for k in ds.attrs
                 if k.startswith("fit_") and k.endswith("_stderr")]
        values = ", ".join(f"{n} = {ds.attrs['fit_' + n]:.4g} ± {ds.attrs[f'fit_{n}_stderr']:.2g}"
                           for n in names)
        print(f"  NPP fit to the KMC CAIT profile: {values}; reduced chi2 "
              f"{ds.attrs['fit_reduced_chi2']:.3g}")

