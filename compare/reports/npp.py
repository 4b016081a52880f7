"""Figures of `cait npp run`: depth profiles and potential at the plot times."""
from __future__ import annotations

from compare.io.datasets import save_figure
from compare.reports import style


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


def plot_profiles(ds, plot_times, path, cfg=None):
    """Depth profiles of every species at `plot_times` (paper Fig. 1 style): one panel per
    species, one colour per time."""
    import matplotlib.pyplot as plt

    species = list(ds.species.values)
    fig, axes = plt.subplots(1, len(species), figsize=(3.6 * len(species) + 1.6, 3.6),
                             sharey=True, squeeze=False)
    xmax = _depth_limit(ds, plot_times)
    colors = style.time_colors(len(plot_times))
    for ax, s in zip(axes[0], species):
        for col, t in zip(colors, plot_times):
            c = ds.concentration.sel(species=s).sel(time=t, method="nearest")
            ax.plot(ds.depth, c, color=col, label=f"t = {style.time_label(t)}")
        ax.set_title(str(s), color=style.species_colors(species)[str(s)])
        ax.set_xlim(0, xmax)
        ax.set_xlabel(style.DEPTH_LABEL)
    axes[0, 0].set_ylabel(style.FRACTION_LABEL)
    style.legend_outside(axes[0, -1])
    fig.suptitle(style.title(f"NPP ({ds.attrs.get('flux_convention')})", cfg,
                             ds.attrs.get("status", "ok")), fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_potential(ds, plot_times, path, cfg=None):
    """Electric potential profiles at `plot_times`."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.2, 3.6))
    for col, t in zip(style.time_colors(len(plot_times)), plot_times):
        ax.plot(ds.depth, ds.potential.sel(time=t, method="nearest"), color=col,
                label=f"t = {style.time_label(t)}")
    ax.set_xlim(0, _depth_limit(ds, plot_times))
    ax.set_xlabel(style.DEPTH_LABEL)
    ax.set_ylabel(r"potential $\phi$ [V]")
    style.legend_outside(ax)
    ax.set_title(style.title("NPP potential", cfg), fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
