"""`cait sed`: the native SED, its populated part, E_F(n) and D(n) as a dataset and figures.

Also the glue that the NPP and KMC set-up reuse: :func:`sed_from_config` and
:func:`dmodels_from_config` turn the input's ``[sed]`` and ``[species.*]`` tables into
:mod:`continuum.sed` / :mod:`continuum.dmodel` objects (SI inside, cm^2/s converted here).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from scipy import constants

from compare.errors import ConfigError, InputFileError
from continuum import dmodel as dm
from continuum import sed as sedmod

CM2_TO_M2 = 1e-4
N_FRACTION = 200  # points of the E_F(n) / D(n) table


def kT_from_config(cfg) -> float:
    """k_B T [eV] of the material."""
    return constants.k * float(cfg.material.temperature_K) / constants.e


def sed_from_config(cfg) -> sedmod.SED:
    """The native SED described by ``cfg.sed``.

    Raises
    ------
    ConfigError
        Unknown ``sed.kind`` or invalid parameters; :class:`InputFileError` for a bad table file.
    """
    s = cfg.sed
    if s.kind not in sedmod.SEDS:
        raise ConfigError(f"`sed.kind` = {s.kind!r} is unknown; choose one of: "
                          f"{', '.join(sedmod.SEDS)}")
    try:
        if s.kind == "gaussian":
            return sedmod.GaussianSED(s.center_eV, s.fwhm_eV)
        if s.kind == "gaussians":
            return sedmod.GaussianMixtureSED(s.components)
        return sedmod.TabulatedSED.from_csv(s.file)
    except ValueError as exc:
        cls = InputFileError if s.kind == "table" else ConfigError
        raise cls(f"`sed`: {exc}") from None


def dmodel_from_species(cfg, species, sed=None):
    """The D model of one species (``constant``, ``sed`` or ``table``), D in m^2/s."""
    name = species.D_model
    where = f"species.{species.name}"
    if name not in dm.D_MODELS:
        raise ConfigError(f"`{where}.D_model` = {name!r} is unknown; choose one of: "
                          f"{', '.join(dm.D_MODELS)}")
    D_m2_s = float(species.D_cm2_s) * CM2_TO_M2
    try:
        if name == "constant":
            return dm.ConstantD(D_m2_s)
        if name == "sed":
            return dm.SEDDiffusivity(sed if sed is not None else sed_from_config(cfg), D_m2_s,
                                     float(cfg.material.vacancy_fraction), kT_from_config(cfg),
                                     cfg.sed.filling)
        return dm.TableD.from_csv(species.D_table)
    except ValueError as exc:
        cls = InputFileError if name == "table" else ConfigError
        raise cls(f"`{where}`: {exc}") from None


def dmodels_from_config(cfg, sed=None) -> dict:
    """``{species name: D model}`` for every species, native first.

    ``sed`` models use the native SED (built once and shared).
    """
    if sed is None and any(s.D_model == "sed" for s in cfg.species):
        sed = sed_from_config(cfg)
    return {s.name: dmodel_from_species(cfg, s, sed) for s in cfg.species}


def fraction_grid(cfg, n: int = N_FRACTION) -> np.ndarray:
    """Fractions of n_bulk for the tables: log-spaced below 0.1, linear up to 1."""
    lo = np.geomspace(1e-3, 0.1, n // 4, endpoint=False)
    hi = np.linspace(0.1, 1.0, n - lo.size)
    return np.concatenate((lo, hi))


def sed_dataset(cfg) -> xr.Dataset:
    """SED, PSED at the bulk filling, E_F(fraction) and D(fraction) of every species.

    Returns
    -------
    xarray.Dataset
        dims ``energy`` [eV], ``fraction`` [1], ``species``; variables ``sed``, ``psed``
        [1/eV], ``fermi_level`` [eV], ``D`` (native) and ``D_species`` [cm^2/s].
    """
    sed = sed_from_config(cfg)
    models = dmodels_from_config(cfg, sed)
    kT = kT_from_config(cfg)
    f_vac = float(cfg.material.vacancy_fraction)
    filling = cfg.sed.filling
    theta_bulk = 1.0 - f_vac
    e_f_bulk = float(sedmod.fermi_level(sed, theta_bulk, kT, filling))

    n_e = max(401, 10 * int(cfg.output.n_energy_bins))
    energy = sed.grid(n_e)
    g = sed.pdf(energy)
    p = sedmod.psed_values(sed, energy, e_f_bulk, kT, filling)
    x = fraction_grid(cfg)
    e_f = sedmod.fermi_level(sed, x * (1.0 - f_vac), kT, filling)
    names = list(cfg.species_names)
    D_all = np.stack([models[n].D(x) for n in names]) / CM2_TO_M2
    native = cfg.native.name
    fwhm = float(sedmod.populated_fwhm(sed, theta_bulk, kT, filling))

    ds = xr.Dataset(
        {
            "sed": ("energy", g, {"units": "1/eV", "long_name": "site energy distribution g(E) "
                                  "(per site, normalised to 1)"}),
            "psed": ("energy", p, {"units": "1/eV", "long_name": "populated SED at bulk filling"}),
            "fermi_level": ("fraction", e_f, {"units": "eV", "long_name": f"Fermi level E_F of "
                                              f"{native} ({filling} filling)"}),
            "D": ("fraction", D_all[0], {"units": "cm^2/s",
                                         "long_name": f"diffusion coefficient of {native}",
                                         "species": native,
                                         "D_model": cfg.native.D_model}),
            "D_species": (("species", "fraction"), D_all,
                          {"units": "cm^2/s", "long_name": "diffusion coefficient D(fraction)",
                           "D_models": ", ".join(cfg.species_by_name(n).D_model for n in names)}),
        },
        coords={
            "energy": ("energy", energy, {"units": "eV", "long_name": "site energy"}),
            "fraction": ("fraction", x, {"units": "1", "long_name": "fraction of n_bulk"}),
            "species": ("species", np.array(names, dtype=str), {"long_name": "ion species"}),
        },
        attrs={
            "engine": "sed",
            "sed_kind": cfg.sed.kind,
            "sed_description": repr(sed),
            "filling": filling,
            "temperature_K": float(cfg.material.temperature_K),
            "kT_eV": kT,
            "vacancy_fraction": f_vac,
            "theta_bulk": theta_bulk,
            "fermi_level_bulk_eV": e_f_bulk,
            "sed_mean_eV": float(sed.mean),
            "sed_std_eV": float(sed.std),
            "populated_fwhm_bulk_eV": fwhm,
            "native_species": native,
        },
    )
    return ds


def plot_sed(ds: xr.Dataset):
    """SED and PSED at bulk filling with the Fermi level (like the paper's Fig. 4)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.0, 3.6))
    e = ds["energy"].values
    ax.plot(e, ds["sed"].values, color="0.3", label="SED")
    ax.fill_between(e, ds["psed"].values, color="tab:blue", alpha=0.4,
                    label=f"PSED ({ds.attrs['native_species']}, bulk)")
    ax.axvline(ds.attrs["fermi_level_bulk_eV"], color="k", ls="--", lw=1, label="E_F(bulk)")
    ax.set_xlabel("site energy E [eV]")
    ax.set_ylabel("density [1/eV]")
    ax.set_title(f"{ds.attrs['sed_kind']} SED, {ds.attrs['filling']} filling, "
                 f"PSED FWHM {1e3 * ds.attrs['populated_fwhm_bulk_eV']:.0f} meV", fontsize=9)
    ax.legend(fontsize=8)
    return fig


def plot_dn(ds: xr.Dataset):
    """D(fraction) on a log scale for every species (like the paper's Fig. 2)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.0, 3.6))
    x = ds["fraction"].values
    native = ds.attrs["native_species"]
    for name in ds["species"].values:
        line, = ax.semilogy(x, ds["D_species"].sel(species=name).values, label=str(name))
        if str(name) != native:
            # the paper's plateau criterion: D_native ~ D_foreign / 10
            ax.semilogy(x, ds["D_species"].sel(species=name).values / 10, ls=":",
                        color=line.get_color(), lw=1, label=f"{name} / 10")
    ax.set_xlabel("fraction of n_bulk")
    ax.set_ylabel("D [cm^2/s]")
    ax.set_xlim(0, x.max())
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    return fig


def run_sed(cfg, out_dir) -> dict:
    """Write ``sed.nc``, ``sed.png`` and ``dn.png`` to ``out_dir``; returns their paths."""
    from compare.io.datasets import save_figure, write_dataset

    out_dir = Path(out_dir)
    ds = sed_dataset(cfg)
    paths = {"dataset": write_dataset(ds, out_dir / "sed.nc", cfg=cfg)}
    paths["sed_figure"] = save_figure(plot_sed(ds), out_dir / "sed.png")
    paths["dn_figure"] = save_figure(plot_dn(ds), out_dir / "dn.png")
    return paths
