"""Figures and Markdown report of `cait compare` (:class:`compare.workflows.comparison.ProfileComparison`)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from compare.reports import style
from compare.workflows.profile_metrics import METRICS


MODEL_STYLES = {"npp-sed": "--", "npp-kmc-table": ":"}
MODEL_NAMES = {"kmc": "KMC", "npp-sed": "NPP, D(n) from the SED formula",
               "npp-kmc-table": "NPP, D(n) from the KMC table"}
METRIC_LABELS = {"front_position": "front position [nm]", "plateau": "native plateau level",
                 "inventory": "foreign inventory [nm]"}


def profile_figure(cmp, times=None, cfg=None):
    """Paper Fig. 1 style: KMC mean (points, +-1 SE band) and the NPP runs (line styles), one
    colour per time; one panel per species; the legend names colours and styles once."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    times = list(cmp.time.values[1:] if times is None else times)
    species = list(cmp.species.values)
    fig, axes = plt.subplots(1, len(species), figsize=(4.2 * len(species) + 2.4, 3.8),
                             squeeze=False)
    colors = style.time_colors(len(times))
    for ax, sp in zip(axes[0], species):
        for col, t in zip(colors, times):
            c = cmp.concentration.sel(model="kmc", species=sp, time=t)
            e = cmp.kmc_sem.sel(species=sp, time=t).fillna(0.0)
            ax.plot(cmp.depth, c, "o", ms=3, color=col)
            ax.fill_between(cmp.depth, c - e, c + e, color=col, alpha=0.25, lw=0)
            for m in cmp.model.values[1:]:
                ax.plot(cmp.depth, cmp.concentration.sel(model=m, species=sp, time=t),
                        MODEL_STYLES.get(str(m), "-"), color=col, lw=1.2)
        ax.set_xlabel(style.DEPTH_LABEL)
        ax.set_title(str(sp), color=style.species_colors(species)[str(sp)])
        ax.set_ylim(-0.02, 1.15)
    axes[0, 0].set_ylabel(style.FRACTION_LABEL)
    handles = [Line2D([], [], color=col, lw=2, label=f"t = {style.time_label(t)}")
               for col, t in zip(colors, times)]
    handles.append(Line2D([], [], color="k", marker="o", ls="none", ms=3,
                          label="KMC (band: 1 SE)"))
    handles += [Line2D([], [], color="k", ls=MODEL_STYLES.get(str(m), "-"),
                       label=MODEL_NAMES.get(str(m), str(m))) for m in cmp.model.values[1:]]
    style.legend_outside(axes[0, -1], handles=handles)
    fig.suptitle(style.title("KMC vs NPP", cfg), fontsize=10)
    fig.tight_layout()
    return fig


def metrics_figure(cmp, cfg=None):
    """Front position, plateau and inventory against time for every model (KMC: 1 SE bars)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    t = cmp.time.values
    later = t > 0                 # t = 0 has no front yet: nothing to plot
    for ax, name in zip(axes, ("front_position", "plateau", "inventory")):
        for m in cmp.model.values:
            y = cmp[name].sel(model=m).values
            if m == "kmc":
                ax.errorbar(t[later], y[later], yerr=cmp[f"{name}_sem"].fillna(0.0).values[later],
                            fmt="o", ms=3, capsize=2, color="k", label=MODEL_NAMES["kmc"])
            else:
                ax.plot(t[later], y[later], MODEL_STYLES.get(str(m), "-"), color="k",
                        label=MODEL_NAMES.get(str(m), str(m)))
        ax.set_xlabel("time [s]")
        ax.set_ylabel(METRIC_LABELS[name])
    style.legend_outside(axes[-1])
    fig.suptitle(style.title("KMC vs NPP metrics", cfg), fontsize=10)
    fig.tight_layout()
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


def _npp_depth_text(a) -> str:
    """"the same depth", or the NPP box depths when the moving-back KMC needed a deeper one."""
    depths = np.atleast_1d(np.asarray(a.get("npp_depth_nm", a["kmc_thickness_nm"]), float))
    if np.allclose(depths, a["kmc_thickness_nm"]):
        return "the same depth"
    return ("a deeper box (" + " / ".join(f"{d:.1f}" for d in depths) + " nm: the moving KMC "
            "back stands for a semi-infinite sample)")


def report_markdown(cmp, cfg, timings, figures, notes=()):
    """Short Markdown report: set-up, D scales, metrics table at the shown times, figures;
    ``notes`` (status lines of the NPP runs) go first, under "Warnings"."""
    a = cmp.attrs
    lines = [f"# KMC vs NPP: {cfg.path.name if cfg.path else cfg.material.name}", "",
             f"* KMC: {a['kmc_replicas']} replica(s), depth {a['kmc_thickness_nm']:.2f} nm, "
             f"max applied q E a / kT = {a['qEa_over_kT']:.3g}",
             f"* NPP solver `{a['npp_solver']}` on {_npp_depth_text(a)}; D_bulk (native, x = 1) "
             f"from `{a['D_bulk_source']}`:",
             f"  * ohmic KMC current: {a['D_bulk_current_cm2_s']:.3g} "
             f"+- {a['D_bulk_current_sem_cm2_s']:.2g} cm^2/s",
             f"  * equilibrium KMC (x = 1): {a['D_bulk_equilibrium_cm2_s']:.3g} "
             f"+- {a['D_bulk_equilibrium_sem_cm2_s']:.2g} cm^2/s "
             f"({a.get('D_bulk_equilibrium_source', 'kmc_equilibrium.nc, x = 1')})",
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
    if notes:
        lines[2:2] = ["## Warnings", ""] + [f"* {n}" for n in notes] + [""]
    return "\n".join(lines)
