"""Figure of `cait dn`: the native D(x) three ways (paper Fig. 2 style)."""
from __future__ import annotations

import numpy as np
import xarray as xr

from compare.reports import style


def plot_dn(ds: xr.Dataset, cfg=None):
    """D(x) on a log axis: SED formula (lines), KMC D_eff and 2 D* (markers), fit (dashed)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.0, 4.4))
    xf = ds.x_fine.values
    for f, ls in zip(ds.filling.values, ("-", "-.")):
        ax.semilogy(xf, ds.D_sed.sel(filling=f), color="k", ls=ls, lw=1.3,
                    label=f"(a) SED formula, {f}, D_bulk = KMC")
    ax.semilogy(xf, ds.D_sed_input, color="0.6", ls=":", lw=1,
                label="SED formula, input D_bulk (NPP scale)")
    colors = style.species_colors(ds.species.values)
    for sp in ds.species.values:
        c = colors[str(sp)]
        x = ds.x.values
        ok = np.isfinite(ds.D_eff.sel(species=sp).values)
        if ok.any():
            ax.errorbar(x[ok], ds.D_eff.sel(species=sp).values[ok],
                        yerr=ds.D_eff_sem.sel(species=sp).values[ok], fmt="o", color=c,
                        capsize=3, label=f"(b) KMC D_eff {sp}")
            ax.errorbar(x[ok] + 0.01, ds.two_D_star.sel(species=sp).values[ok],
                        yerr=ds.two_D_star_sem.sel(species=sp).values[ok], fmt="^", mfc="none",
                        color=c, capsize=3, label=f"(b) KMC 2 D* {sp}")
        cait = ds.D_eff_cait.sel(species=sp).values
        if np.isfinite(cait).any():
            ax.semilogy(x - 0.01, cait, "s", mfc="none", color=c, ms=5,
                        label=f"(b) KMC full-L CAIT D_eff {sp}")
        if "D_fit" in ds:
            ax.semilogy(xf, ds.D_fit.sel(species=sp), ls="--", color=c, lw=1.5,
                        label=f"(c) NPP fit to KMC CAIT, {sp}")
    ax.set_xlabel(style.X_LABEL)
    ax.set_ylabel(style.D_LABEL)
    ax.set_xlim(0, 1.03)
    ax.grid(True, which="both", alpha=0.3)
    style.legend_outside(ax, fontsize=7)
    ax.set_title(style.title("Native D(x) three ways", cfg) + "\n"
                 + f"KMC bulk D = {ds.attrs['D_bulk_kmc_cm2_s']:.3g} cm²/s "
                 f"({ds.attrs['D_bulk_source']})", fontsize=9)
    fig.tight_layout()
    return fig
