"""Figure of `cait fit`: measured and fitted profiles with the residuals."""
from __future__ import annotations

import xarray as xr


def plot_fit(ds: xr.Dataset):
    """Measured and fitted profiles (top) and the residuals (bottom) against depth."""
    import matplotlib.pyplot as plt

    fig, (ax, axr) = plt.subplots(2, 1, figsize=(7, 6), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 1.3]})
    x_max = float(ds["depth"].max()) * 1.05
    for k, sp in enumerate(ds["species"].values):
        color = f"C{k}"
        meas = ds["measured"].sel(species=sp)
        err = ds["measured_err"].sel(species=sp) if "measured_err" in ds else None
        ax.errorbar(ds["depth"], meas, yerr=err, fmt="o", ms=3, color=color, alpha=0.7,
                    label=f"{sp} measured")
        mask = ds["model_depth"] <= x_max
        ax.plot(ds["model_depth"][mask], ds["model"].sel(species=sp)[mask], "-", color=color,
                label=f"{sp} fit")
        axr.plot(ds["depth"], ds["residual"].sel(species=sp), "o", ms=3, color=color)
    axr.axhline(0.0, color="k", lw=0.8)
    lines = [f"{n} = {b:.4g} ± {s:.2g}" for n, b, s in
             zip(ds["param"].values, ds["best"].values, ds["stderr_natural"].values)]
    ax.set_title("; ".join(lines), fontsize=8)
    ax.set_ylabel("concentration / n_bulk")
    ax.legend(fontsize=8)
    axr.set_xlabel("depth [nm]")
    axr.set_ylabel(ds["residual"].attrs["long_name"], fontsize=8)
    axr.set_xlim(0, x_max)
    fig.tight_layout()
    return fig
