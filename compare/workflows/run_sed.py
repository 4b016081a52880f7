"""`cait sed`: the native SED, its populated part, E_F(n) and D(n) as a dataset and figures.

The SED and D models come from :mod:`compare.scenario`; figures from :mod:`compare.reports.sed`.
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from compare import scenario, units
from compare.units import D_UNITS
from continuum import sed as sedmod

N_FRACTION = 200  # points of the E_F(n) / D(n) table


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
    cfg.require("`cait sed`", D=True)
    sed = scenario.native_sed(cfg)
    models = scenario.dmodels(cfg, sed)
    kT = scenario.kT_eV(cfg)
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
    D_all = np.stack([models[n].D(x) for n in names]) / units.CM2_TO_M2
    native = cfg.native.name
    fwhm = float(sedmod.populated_fwhm(sed, theta_bulk, kT, filling))

    ds = xr.Dataset(
        {
            "sed": ("energy", g, {"units": "1/eV", "long_name": "site energy distribution g(E) "
                                  "(per site, normalised to 1)"}),
            "psed": ("energy", p, {"units": "1/eV", "long_name": "populated SED at bulk filling"}),
            "fermi_level": ("fraction", e_f, {"units": "eV", "long_name": f"Fermi level E_F of "
                                              f"{native} ({filling} filling)"}),
            "D": ("fraction", D_all[0], {"units": D_UNITS,
                                         "long_name": f"diffusion coefficient of {native}",
                                         "species": native,
                                         "D_model": cfg.native.D_model}),
            "D_species": (("species", "fraction"), D_all,
                          {"units": D_UNITS, "long_name": "diffusion coefficient D(fraction)",
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


def run_sed(cfg, out_dir) -> dict:
    """Write ``sed.nc``, ``sed.png`` and ``dn.png`` to ``out_dir``; returns their paths."""
    from compare.io.datasets import save_figure, write_dataset
    from compare.io.outputs import output_dir
    from compare.reports.sed import plot_dn, plot_sed

    with output_dir(out_dir) as out_dir:
        ds = sed_dataset(cfg)
        paths = {"dataset": write_dataset(ds, out_dir / "sed.nc", cfg=cfg)}
        paths["sed_figure"] = save_figure(plot_sed(ds, cfg), out_dir / "sed.png")
        paths["dn_figure"] = save_figure(plot_dn(ds, cfg), out_dir / "dn.png")
        return paths
