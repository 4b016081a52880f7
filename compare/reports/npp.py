"""Figures of `cait npp run`: depth profiles and potential at the plot times."""
from __future__ import annotations

import numpy as np

from compare.io.datasets import axis_label, save_figure


def _depth_limit(ds, plot_times):
    """Depth [nm] that shows the replacement zone: 1.5x the deepest foreign front (>= 20 nm)."""
    foreign = [s for s in ds.species.values if s != ds.attrs.get("native")]
    deepest = 0.0
    for s in foreign:
        c = ds.concentration.sel(species=s).sel(time=list(plot_times), method="nearest")
        mask = (c > 1e-2).any("time").values
        if mask.any():
            deepest = max(deepest, float(ds.depth.values[mask].max()))
    return float(min(ds.depth.values[-1], max(20.0, 1.5 * deepest)))


def plot_profiles(ds, plot_times, path):
    """Depth profiles of every species at `plot_times` (paper Fig. 1 style)."""
    import matplotlib.pyplot as plt

    species = list(ds.species.values)
    fig, axes = plt.subplots(1, len(species), figsize=(4.2 * len(species), 3.6), sharey=True,
                             squeeze=False)
    xmax = _depth_limit(ds, plot_times)
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(plot_times)))
    for ax, s in zip(axes[0], species):
        for col, t in zip(colors, plot_times):
            c = ds.concentration.sel(species=s).sel(time=t, method="nearest")
            ax.plot(ds.depth, c, color=col, label=f"t = {t:.3g} s")
        ax.set_title(str(s))
        ax.set_xlim(0, xmax)
        ax.set_xlabel(axis_label(ds.depth))
    axes[0, 0].set_ylabel(axis_label(ds.concentration))
    axes[0, -1].legend(fontsize="small")
    fig.suptitle(f"NPP ({ds.attrs.get('flux_convention')}) depth profiles")
    return save_figure(fig, path)


def plot_potential(ds, plot_times, path):
    """Electric potential profiles at `plot_times`."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(plot_times)))
    for col, t in zip(colors, plot_times):
        ax.plot(ds.depth, ds.potential.sel(time=t, method="nearest"), color=col,
                label=f"t = {t:.3g} s")
    ax.set_xlim(0, _depth_limit(ds, plot_times))
    ax.set_xlabel(axis_label(ds.depth))
    ax.set_ylabel(axis_label(ds.potential))
    ax.legend(fontsize="small")
    return save_figure(fig, path)
