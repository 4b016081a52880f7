"""Figures of `cait kmc run` (depth profiles) and `cait kmc equilibrium` (D*, D_eff, Haven)."""
from __future__ import annotations


def profile_figure(ds, cfg):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conc = ds["concentration_mean"] if "concentration_mean" in ds else ds["concentration"]
    fig, ax = plt.subplots(figsize=(6, 4))
    times = [t for t in cfg.plot_times_s if t <= float(ds.time.max()) + 1e-12] or [float(ds.time[-1])]
    for t in times:
        prof = conc.sel(time=t, method="nearest")
        for s in prof.species.values:
            ax.plot(prof.depth, prof.sel(species=s), label=f"{s}, t = {float(prof.time):.3g} s")
    ax.set_xlabel("depth [nm]")
    ax.set_ylabel("concentration / n_bulk")
    ax.set_title(f"KMC: {cfg.material.name or ''} ({ds.attrs.get('status', 'ok')})")
    ax.legend(fontsize=7)
    return fig


def equilibrium_figure(ds):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for s in ds.species.values:
        for name, ax, ls in (("D_star", axes[0], "o-"), ("D_eff", axes[0], "s--"),
                             ("haven", axes[1], "o-")):
            v = ds[name].sel(species=s)
            e = ds[f"{name}_sem"].sel(species=s)
            ax.errorbar(ds.x, v, yerr=e, fmt=ls, capsize=3, label=f"{name} {s}")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("x = n_native/(n_native+n_foreign)")
    axes[0].set_ylabel("D [cm^2/s]")
    axes[1].set_xlabel("x = n_native/(n_native+n_foreign)")
    axes[1].set_ylabel("Haven ratio")
    for ax in axes:
        ax.legend(fontsize=7)
    return fig
