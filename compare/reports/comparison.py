"""Figures and Markdown report of `cait compare` (:class:`compare.workflows.comparison.ProfileComparison`)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from compare.workflows.profile_metrics import METRICS


def profile_figure(cmp, times=None):
    """Paper Fig. 1 style: KMC mean with +-1 SEM band, NPP (sed, kmc-table) lines, per time."""
    import matplotlib.pyplot as plt

    times = list(cmp.time.values[1:] if times is None else times)
    fig, axes = plt.subplots(1, len(cmp.species), figsize=(5.2 * len(cmp.species), 3.8),
                             squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = {"npp-sed": "--", "npp-kmc-table": ":"}
    for ax, sp in zip(axes[0], cmp.species.values):
        for j, t in enumerate(times):
            col = colors[j % len(colors)]
            c = cmp.concentration.sel(model="kmc", species=sp, time=t)
            e = cmp.kmc_sem.sel(species=sp, time=t).fillna(0.0)
            ax.plot(cmp.depth, c, "o", ms=3, color=col, label=f"KMC t = {t:.3g} s")
            ax.fill_between(cmp.depth, c - e, c + e, color=col, alpha=0.25, lw=0)
            for m in cmp.model.values[1:]:
                ax.plot(cmp.depth, cmp.concentration.sel(model=m, species=sp, time=t),
                        styles.get(str(m), "-"), color=col, lw=1.2,
                        label=f"{m}" if j == 0 else None)
        ax.set_xlabel("depth [nm]")
        ax.set_ylabel(f"{sp} / n_bulk")
        ax.set_ylim(-0.02, 1.15)
        ax.legend(fontsize=6)
    fig.suptitle("KMC (points, band: 1 SEM) vs NPP (dashed: SED formula, dotted: KMC table)",
                 fontsize=9)
    return fig


def metrics_figure(cmp):
    """Front position, plateau and inventory vs time for every model (KMC with error bars)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, name in zip(axes, ("front_position", "plateau", "inventory")):
        for m in cmp.model.values:
            y = cmp[name].sel(model=m)
            if m == "kmc":
                ax.errorbar(cmp.time, y, yerr=cmp[f"{name}_sem"].fillna(0.0), fmt="o", ms=3,
                            capsize=2, label="KMC")
            else:
                ax.plot(cmp.time, y, "-", label=str(m))
        ax.set_xlabel("time [s]")
        ax.set_ylabel(f"{name} [{cmp[name].attrs['units']}]")
        ax.legend(fontsize=7)
    return fig


MAX_SHOWN_TIMES = 8  # profiles drawn / report rows when the input gives no plot_times_s


def shown_times(cmp, cfg=None):
    """Output times drawn in the profile figure and listed in the report.

    The input's explicit ``[output] plot_times_s`` (nearest recorded time) when given, else
    every recorded time after 0, thinned to at most :data:`MAX_SHOWN_TIMES` (the KMC records
    many snapshots for the bulk-field average of a galvanostatic run).
    """
    t = cmp.time.values
    want = tuple(cfg.output.plot_times_s) if cfg is not None else ()
    if want:
        idx = sorted({int(np.argmin(np.abs(t - w))) for w in want})
        return [float(t[i]) for i in idx]
    t = t[1:]
    step = max(1, math.ceil(t.size / MAX_SHOWN_TIMES))
    keep = t[::-1][::step][::-1]  # always keep the last time
    return [float(x) for x in keep]


def report_markdown(cmp, cfg, timings, figures):
    """Short Markdown report: set-up, D scales, metrics table at the shown times, figures."""
    a = cmp.attrs
    lines = [f"# KMC vs NPP: {cfg.path.name if cfg.path else cfg.material.name}", "",
             f"* KMC: {a['kmc_replicas']} replica(s), depth {a['kmc_thickness_nm']:.2f} nm, "
             f"max applied q E a / kT = {a['qEa_over_kT']:.3g}",
             f"* NPP solver `{a['npp_solver']}` on the same depth; D_bulk (native, x = 1) from "
             f"`{a['D_bulk_source']}`:",
             f"  * ohmic KMC current: {a['D_bulk_current_cm2_s']:.3g} "
             f"+- {a['D_bulk_current_sem_cm2_s']:.2g} cm^2/s",
             f"  * equilibrium KMC (x = 1): {a['D_bulk_equilibrium_cm2_s']:.3g} "
             f"+- {a['D_bulk_equilibrium_sem_cm2_s']:.2g} cm^2/s",
             f"* NPP galvanostatic back fields x {a.get('npp_field_scale', 1.0):.3g} (same "
             f"current as the KMC beam); KMC bulk field "
             f"{a.get('kmc_bulk_field_V_per_m', math.nan):.3g} "
             f"+- {a.get('kmc_bulk_field_sem_V_per_m', math.nan):.2g} V/m (galvanostatic)",
             "* wall times: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()), "",
             "Front: " + METRICS["front_position"] + ". Plateau: " + METRICS["plateau"] + ".", "",
             "| time [s] | model | front [nm] | plateau | inventory [nm] | L2 (native, foreign) |"
             " L2 / SEM |", "|---|---|---|---|---|---|---|"]
    names = list(cmp.species.values)
    for t in shown_times(cmp, cfg):
        for m in cmp.model.values:
            f = float(cmp.front_position.sel(model=m, time=t))
            p = float(cmp.plateau.sel(model=m, time=t))
            inv = float(cmp.inventory.sel(model=m, time=t))
            if m == "kmc":
                fs = f"{f:.2f} +- {float(cmp.front_position_sem.sel(time=t)):.2f}"
                ps = f"{p:.3f} +- {float(cmp.plateau_sem.sel(time=t)):.3f}"
                invs = f"{inv:.2f} +- {float(cmp.inventory_sem.sel(time=t)):.2f}"
                l2s = l2z = ""
            else:
                src = str(m)[4:]
                fs, ps, invs = f"{f:.2f}", f"{p:.3f}", f"{inv:.2f}"
                l2s = ", ".join(f"{float(cmp.l2.sel(source=src, species=s, time=t)):.3f}"
                                for s in names)
                l2z = ", ".join(f"{float(cmp.l2_sem.sel(source=src, species=s, time=t)):.2f}"
                                for s in names)
            lines.append(f"| {t:.3g} | {m} | {fs} | {ps} | {invs} | {l2s} | {l2z} |")
    lines += [""] + [f"![{k}]({Path(v).name})" for k, v in figures.items()] + [""]
    return "\n".join(lines)
