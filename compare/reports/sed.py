"""Figures of `cait sed`: the SED with its populated part, and D(n) of every species."""
from __future__ import annotations

import xarray as xr

from compare.reports import style


def plot_sed(ds: xr.Dataset, cfg=None):
    """SED and PSED at bulk filling with the Fermi level (like the paper's Fig. 4)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.0, 3.8))
    e = ds["energy"].values
    native = ds.attrs["native_species"]
    ax.plot(e, ds["sed"].values, color="0.3", label="SED")
    ax.fill_between(e, ds["psed"].values, color=style.SPECIES_COLORS[0], alpha=0.4,
                    label=f"populated SED ({native}, bulk)")
    ax.axvline(ds.attrs["fermi_level_bulk_eV"], color="k", ls="--", lw=1,
               label=r"$E_F$ (bulk)")
    ax.set_xlabel("site energy $E$ [eV]")
    ax.set_ylabel(r"density [eV$^{-1}$]")
    ax.set_title(style.title("SED", cfg) + "\n" + f"{ds.attrs['sed_kind']}, "
                 f"{ds.attrs['filling']} filling, populated FWHM "
                 f"{1e3 * ds.attrs['populated_fwhm_bulk_eV']:.0f} meV", fontsize=9)
    style.legend_outside(ax)
    fig.tight_layout()
    return fig


def plot_dn(ds: xr.Dataset, cfg=None):
    """D(fraction) on a log scale for every species (like the paper's Fig. 2), with the
    paper's plateau criterion D_foreign / 10."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.0, 3.8))
    x = ds["fraction"].values
    native = ds.attrs["native_species"]
    colors = style.species_colors(ds["species"].values)
    for name in ds["species"].values:
        c = colors[str(name)]
        ax.semilogy(x, ds["D_species"].sel(species=name).values, color=c, label=str(name))
        if str(name) != native:
            ax.semilogy(x, ds["D_species"].sel(species=name).values / 10, ls=":", color=c, lw=1,
                        label=f"{name} / 10")
    ax.set_xlabel(r"fraction of $n_\mathrm{bulk}$")
    ax.set_ylabel(style.D_LABEL)
    ax.set_xlim(0, x.max())
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(style.title("D(n)", cfg), fontsize=10)
    style.legend_outside(ax)
    fig.tight_layout()
    return fig
