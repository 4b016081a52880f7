"""Figure of `cait fit`: the fitted profiles over the data, the residuals, the parameters."""
from __future__ import annotations

from pathlib import Path

import xarray as xr

from compare.reports import style


def parameter_label(name: str) -> str:
    """Readable name of a fit parameter: ``species.K.D_cm2_s`` -> ``D(K)``."""
    parts = name.split(".")
    if parts[0] == "species" and len(parts) == 3 and parts[2] == "D_cm2_s":
        return f"D({parts[1]})"
    return {"sed.fwhm_eV": "SED FWHM", "sed.center_eV": "SED centre",
            "material.vacancy_fraction": "vacancy fraction"}.get(name, name)


def _value_text(name, value, se, units) -> str:
    if units == "eV":
        return f"{parameter_label(name)} = {1e3 * value:.4g} ± {1e3 * se:.2g} meV"
    if units == "cm^2/s":
        return f"{parameter_label(name)} = {value:.3g} ± {se:.2g} cm²/s"
    return f"{parameter_label(name)} = {value:.4g} ± {se:.2g}"


def plot_fit(ds: xr.Dataset, cfg=None):
    """Data and fitted profiles (top) and the residuals (bottom) against depth; the fitted
    values with their standard errors in the legend box."""
    import matplotlib.pyplot as plt

    fig, (ax, axr) = plt.subplots(2, 1, figsize=(8.5, 6), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 1.3]})
    x_max = float(ds["depth"].max()) * 1.05
    colors = style.species_colors(ds["species"].values)
    source = Path(str(ds.attrs.get("profile_source", "data"))).name
    for sp in ds["species"].values:
        color = colors[str(sp)]
        meas = ds["measured"].sel(species=sp)
        err = ds["measured_err"].sel(species=sp) if "measured_err" in ds else None
        ax.errorbar(ds["depth"], meas, yerr=err, fmt="o", ms=3, color=color, alpha=0.7,
                    label=f"{sp}, {source}")
        mask = ds["model_depth"] <= x_max
        ax.plot(ds["model_depth"][mask], ds["model"].sel(species=sp)[mask], "-", color=color,
                label=f"{sp}, NPP fit")
        axr.plot(ds["depth"], ds["residual"].sel(species=sp), "o", ms=3, color=color)
    axr.axhline(0.0, color="k", lw=0.8)
    units = ds["param_units"].values if "param_units" in ds.coords else [""] * ds.sizes["param"]
    values = [_value_text(str(n), float(b), float(s), str(u)) for n, b, s, u in
              zip(ds["param"].values, ds["best"].values, ds["stderr_natural"].values, units)]
    values.append(f"reduced χ² = {float(ds['reduced_chi2']):.3g}")
    leg = style.legend_outside(ax)
    ax.text(1.02, 0.0, "\n".join(values), transform=ax.transAxes, fontsize=8, va="bottom")
    ax.add_artist(leg)
    ax.set_ylabel(style.FRACTION_LABEL)
    ax.set_title(style.title(f"NPP fit at t = {style.time_label(ds.attrs['profile_time_s'])}",
                             cfg), fontsize=10)
    axr.set_xlabel(style.DEPTH_LABEL)
    axr.set_ylabel("(fit − data) / SE" if "measured_err" in ds else "fit − data", fontsize=9)
    axr.set_xlim(0, x_max)
    fig.tight_layout()
    return fig
