"""Figures of `cait sed`: the SED with its populated part, and D(n) of every species."""
from __future__ import annotations

import xarray as xr


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
