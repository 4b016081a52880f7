"""Figure and Markdown report of `cait double` (local D of the beam species per phase)."""
from __future__ import annotations

import numpy as np

from compare.reports import style


def figure(results, species, cfg=None):
    """Local D of `species` against its fraction, one panel per driven phase, one marker per
    engine (legend: the engine's verdict)."""
    import matplotlib.pyplot as plt

    any_ds = next(iter(results.values()))
    phases = list(any_ds.phase.values)
    fig, axes = plt.subplots(1, len(phases), figsize=(4.6 * len(phases), 3.6), squeeze=False,
                             sharey=True)
    marks = {"kmc": "o", "npp": "s"}
    for ax, ph in zip(axes[0], phases):
        for eng, r in results.items():
            x = r.sel(phase=ph)
            ok = np.isfinite(x.D.values)
            ax.errorbar(x.c_mean.values[ok], x.D.values[ok], yerr=x.D_se.values[ok],
                        fmt=marks.get(eng, "^"), ms=4, capsize=2,
                        label=f"{eng}: {str(x.verdict.values)}")
        ax.set_yscale("log")
        ax.set_xlim(0, 1)
        ax.set_xlabel(f"{species} fraction " + r"$c / n_\mathrm{bulk}$")
        ax.set_title(f"phase {ph}", fontsize=9)
        ax.legend(fontsize=7)
    axes[0, 0].set_ylabel(f"local D of {species} " + r"[cm$^2$/s]")
    fig.suptitle(style.title(f"Double CAIT: local D of {species}", cfg), fontsize=10)
    fig.tight_layout()
    return fig


def report_markdown(results, cfg, species, timings, figure_name):
    lines = [f"# Double CAIT: local D of {species} ({cfg.path.name if cfg.path else ''})", "",
             "Method: docs/comparison.md, section \"Double CAIT\" (flux from continuity / "
             "driving force, binned in concentration).", "",
             "* wall times: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()), "",
             "| engine | convention | phase | c range | d ln D/dc | D ratio over range | verdict | "
             "d ln D/dc per replica (mean +- SEM) |",
             "|---|---|---|---|---|---|---|---|"]
    for eng, r in results.items():
        for ph in r.phase.values:
            x = r.sel(phase=ph)
            lines.append(f"| {eng} | {r.attrs['convention']} | {ph} | "
                         f"{float(x.c_lo):.2f}-{float(x.c_hi):.2f} | "
                         f"{float(x.beta):.2f} +- {float(x.beta_se):.2f} | {float(x.ratio):.3g} | "
                         f"{str(x.verdict.values)} | {float(x.beta_replica_mean):.2f} +- "
                         f"{float(x.beta_replica_sem):.2f} |")
    lines += ["", f"![local D]({figure_name})", ""]
    return "\n".join(lines)
