"""Figures of `cait kmc run` (depth profiles) and `cait kmc equilibrium` (D*, D_eff, Haven)."""
from __future__ import annotations

from compare.reports import style


def profile_figure(ds, cfg):
    """KMC depth profiles at the plot times: one panel per species, one colour per time, the
    replica mean with a +-1 standard-error band (when there are replicas)."""
    import matplotlib.pyplot as plt

    conc = ds["concentration_mean"] if "concentration_mean" in ds else ds["concentration"]
    sem = ds["concentration_sem"] if "concentration_sem" in ds else None
    species = [str(s) for s in conc.species.values]
    times = [t for t in cfg.plot_times_s if t <= float(ds.time.max()) + 1e-12] or [float(ds.time[-1])]
    fig, axes = plt.subplots(1, len(species), figsize=(3.6 * len(species) + 1.6, 3.6),
                             sharey=True, squeeze=False)
    for ax, s in zip(axes[0], species):
        for col, t in zip(style.time_colors(len(times)), times):
            prof = conc.sel(time=t, method="nearest").sel(species=s)
            ax.plot(prof.depth, prof, color=col, lw=1.2,
                    label=f"t = {style.time_label(float(prof.time))}")
            if sem is not None:
                e = sem.sel(time=t, method="nearest").sel(species=s).fillna(0.0)
                ax.fill_between(prof.depth, prof - e, prof + e, color=col, alpha=0.25, lw=0)
        ax.set_title(s, color=style.species_colors(species)[s])
        ax.set_xlabel(style.DEPTH_LABEL)
    axes[0, 0].set_ylabel(style.FRACTION_LABEL)
    style.legend_outside(axes[0, -1], title="band: 1 SE" if sem is not None else None)
    fig.suptitle(style.title("KMC", cfg, ds.attrs.get("status", "ok")), fontsize=10)
    fig.tight_layout()
    return fig


def equilibrium_figure(ds, cfg=None):
    """Tracer D* and D_eff (left) and the Haven ratio (right) against the composition x, one
    colour per species, markers for the estimator."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    colors = style.species_colors(ds.species.values)
    labels = {"D_star": r"$D^*$", "D_eff": r"$D_\mathrm{eff}$", "haven": "Haven ratio"}
    for s in ds.species.values:
        for name, ax, fmt in (("D_star", axes[0], "o-"), ("D_eff", axes[0], "s--"),
                              ("haven", axes[1], "o-")):
            v = ds[name].sel(species=s)
            e = ds[f"{name}_sem"].sel(species=s)
            ax.errorbar(ds.x, v, yerr=e, fmt=fmt, capsize=3, color=colors[str(s)],
                        mfc="none" if name == "D_eff" else None,
                        label=f"{labels[name]} {s}")
    axes[0].set_yscale("log")
    axes[0].set_ylabel(style.D_LABEL)
    axes[1].set_ylabel("Haven ratio")
    for ax in axes:
        ax.set_xlabel(style.X_LABEL)
        style.legend_outside(ax)
    fig.suptitle(style.title("Equilibrium KMC (error bars: 1 SE)", cfg), fontsize=10)
    fig.tight_layout()
    return fig
