"""Figures, verdict and Markdown report of `cait mixing` (:class:`compare.workflows.mixing.MixingAnalysis`)."""
from __future__ import annotations

import numpy as np

from compare.reports import style
from compare.workflows.mixing_models import Z_SIGNIFICANT


# ------------------------------------------------------------------------------ verdict
def build_verdict(mx) -> dict:
    """Answer "no intermixing on the experiment's time scale?" from a mixing dataset.

    Returns a dict with ``answer`` ("supported", "not supported", "partly supported",
    "inconclusive"), ``reason`` and ``table`` (Markdown).
    """
    eq = list(mx.model.values).index("equilibrium")
    td = list(mx.model.values).index("top-down")
    t_ref_s = mx.attrs["reference_time_s"]
    n_zone = int(mx.in_zone.sum())
    rows = [("mixing-zone slabs (each species >= 10 % of the ions at the end of the drive)",
             f"{n_zone} of {mx.sizes['slab']}", "")]
    if n_zone == 0 or not np.isfinite(t_ref_s):
        return dict(answer="inconclusive", reason="no slab holds both species at the end of the drive",
                    table=_md(rows, "inconclusive"))
    k = int(np.argmin(np.abs(mx.time.values - t_ref_s)))
    d_eq = float(mx.zone_excess[eq, k])
    e_eq = float(mx.zone_excess_err[eq, k])
    d_td = float(mx.zone_excess[td, k])
    e_td = float(mx.zone_excess_err[td, k])
    sg = float(mx.zone_segregation[k])
    e_sg = float(mx.zone_segregation_err[k])
    segregated = d_eq > Z_SIGNIFICANT * e_eq and sg > 0.5
    rows += [
        (f"distance to equilibrium at end of drive (t = {t_ref_s:.4g} s), minus floor",
         f"{d_eq:.4f} +- {e_eq:.4f}", f"> {Z_SIGNIFICANT:g} s.e.: {'yes' if d_eq > Z_SIGNIFICANT * e_eq else 'no'}"),
        ("distance to top-down depletion at end of drive, minus floor", f"{d_td:.4f} +- {e_td:.4f}", ""),
        ("segregation index at end of drive (0 equilibrium, 1 top-down)", f"{sg:.3f} +- {e_sg:.3f}",
         f"> 0.5: {'yes' if sg > 0.5 else 'no'}"),
    ]
    t_drive = float(mx.attrs["drive_duration_s"])
    status = mx.attrs["relax_status"]
    tau, dtau = mx.attrs["relax_tau_s"], mx.attrs["relax_tau_err_s"]
    if np.isfinite(tau):
        rows.append(("intermixing time tau after the drive (exponential fit of the segregation index)",
                     f"{tau:.4g} +- {dtau:.3g} s ({status})", f"drive lasted {t_drive:.4g} s"))
        if np.isfinite(mx.attrs.get("relax_stretched_tau_s", np.nan)):
            rows.append(("stretched-exponential fit: tau, beta",
                         f"{mx.attrs['relax_stretched_tau_s']:.4g} s, beta = "
                         f"{mx.attrs['relax_stretched_beta']:.2f}", ""))
    else:
        rows.append(("intermixing relaxation time after the drive", status, ""))
    slow = status == "not reached within the run" or (status == "fitted" and tau > t_drive)
    fast = status in ("fitted", "already mixed") and not slow
    if not segregated:
        answer, reason = "not supported", "the populated SEDs are already intermixed at the end of the drive"
    elif slow:
        answer, reason = "supported", ("segregated (top-down-like) at the end of the drive and the "
                                       "intermixing relaxation is slower than the drive")
    elif fast:
        answer, reason = "partly supported", ("segregated while driven, but the SEDs intermix faster "
                                              "than the drive duration once it stops")
    else:
        answer, reason = "partly supported", ("segregated at the end of the drive; relaxation not "
                                              f"measured ({status})")
    return dict(answer=answer, reason=reason, table=_md(rows, f"**{answer}**: {reason}"))


def _md(rows, conclusion) -> str:
    lines = ["| quantity | value | criterion |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines) + f"\n\nDoes the run support \"no intermixing on the experiment's time scale\"? {conclusion}\n"


# ------------------------------------------------------------------------------ figures
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _pick(n, k=3):
    return sorted(set(np.linspace(0, n - 1, min(n, k)).round().astype(int).tolist()))


def figure_psed(mx, cfg=None):
    """Populated SEDs per species (paper Figs. 3-4 style): rows = slabs, columns = times."""
    plt = _plt()
    zone = np.flatnonzero(mx.in_zone.values)
    slabs = zone[_pick(zone.size)] if zone.size else np.array(_pick(mx.sizes["slab"]))
    t_ref = float(mx.attrs["reference_time_s"])
    k_ref = int(np.argmin(np.abs(mx.time.values - t_ref))) if np.isfinite(t_ref) else mx.sizes["time"] - 1
    tk = sorted({0, k_ref, mx.sizes["time"] - 1})
    fig, axes = plt.subplots(len(slabs), len(tk), figsize=(4.2 * len(tk), 2.8 * len(slabs)),
                             squeeze=False, sharex=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    eq = list(mx.model.values).index("equilibrium")
    E = mx.energy.values
    for i, s in enumerate(slabs):
        norm = float(mx.site_count.isel(slab=s, species=0).sum()) * (E[1] - E[0])
        for j, t in enumerate(tk):
            ax = axes[i, j]
            for k, name in enumerate(mx.species.values):
                c = colors[k % len(colors)]
                ax.plot(E, mx.site_density[s, :, k], "--", color=c, lw=0.8)
                ax.fill_between(E, mx.populated_density[t, s, :, k], color=c, alpha=0.35,
                                step="mid", label=f"{name} populated")
                ax.plot(E, mx.model_occupancy[eq, t, s, :, k] / norm, ":", color=c, lw=1.2,
                        label=f"{name} equilibrium" if (i, j) == (0, 0) else None)
                ef = float(mx.fermi_step[t, s, k])
                if np.isfinite(ef):
                    ax.axvline(ef, color=c, lw=0.8)
            ax.set_title(f"{float(mx.slab[s]):.3g} nm, t = {float(mx.time[t]):.3g} s", fontsize=8)
            if i == len(slabs) - 1:
                ax.set_xlabel("site energy, own species [eV]")
            if j == 0:
                ax.set_ylabel("density [1/eV per site]")
    axes[0, 0].legend(fontsize=6)
    fig.suptitle(style.title("Populated SEDs", cfg) + "\n(dashed: SED, solid line: step Fermi "
                 "level, dotted: equilibrium)",
                 fontsize=9)
    return fig


def figure_distance(mx, cfg=None):
    """Distance to the reference pictures over time (mixing zone) and over depth."""
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    t = mx.time.values
    for j, name in enumerate(mx.model.values):
        a.errorbar(t, mx.zone_excess[j], yerr=mx.zone_excess_err[j], fmt="o-", ms=3, capsize=2,
                   label=f"{name} (minus floor)")
    a.plot(t, mx.zone_floor, "k:", label="sampling floor")
    if np.isfinite(mx.relaxation_fit.values).any():
        a.plot(t, mx.relaxation_fit, "k-", lw=1, label=f"fit, tau = {mx.attrs['relax_tau_s']:.3g} s")
    for s0, s1, d in zip(np.atleast_1d(mx.attrs["phase_starts_s"]), np.atleast_1d(mx.attrs["phase_ends_s"]),
                         mx.attrs["phase_drives"].split(", ")):
        if d == "off":
            a.axvspan(s0, s1, color="0.9", zorder=0)
    a.set_xlabel("time [s]")
    a.set_ylabel("TV distance over the mixing zone")
    a.plot(t, mx.zone_segregation, "k^-", ms=3, lw=0.8, label="segregation index (0 eq, 1 top-down)")
    a.set_title("grey: drive off", fontsize=8)
    fig.suptitle(style.title("SED mixing: distance to the reference pictures", cfg), fontsize=10)
    a.legend(fontsize=7)
    t_ref = float(mx.attrs["reference_time_s"])
    for k, ls in ((int(np.argmin(np.abs(t - t_ref))) if np.isfinite(t_ref) else -1, "o-"), (-1, "s--")):
        for j, name in enumerate(mx.model.values):
            b.plot(mx.slab, mx.distance_excess[j, k], ls, ms=3, label=f"{name}, t = {t[k]:.3g} s")
    b.set_xlabel("depth [nm]")
    b.set_ylabel("TV distance minus floor")
    b.legend(fontsize=7)
    return fig


def figure_fermi(mx, cfg=None):
    """Step and fitted Fermi levels vs depth at the end of the drive and at the end."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    t = mx.time.values
    t_ref = float(mx.attrs["reference_time_s"])
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, ls in ((int(np.argmin(np.abs(t - t_ref))) if np.isfinite(t_ref) else -1, "-"), (-1, "--")):
        for s, name in enumerate(mx.species.values):
            c = colors[s % len(colors)]
            ax.plot(mx.slab, mx.fermi_step[k, :, s], ls, color=c, label=f"{name} step, t = {t[k]:.3g} s")
            ax.errorbar(mx.slab, mx.fermi_fit[k, :, s], yerr=mx.fermi_fit_err[k, :, s], fmt="o",
                        ms=3, color=c, mfc="none")
    ax.set_xlabel("depth [nm]")
    ax.set_ylabel("Fermi level, own landscape [eV]")
    ax.set_title(style.title("Fermi levels", cfg) + "\nlines: step filling; circles: "
                 "Fermi-function fit", fontsize=9)
    ax.legend(fontsize=7)
    return fig


FIGURES = {"mixing_psed.png": figure_psed, "mixing_distance.png": figure_distance,
           "mixing_fermi.png": figure_fermi}


def report_markdown(mx, source_name: str) -> str:
    """``mixing.md``: the landscape used, replicas and slabs, and the verdict table."""
    return (f"# SED mixing: {source_name}\n\nLandscape: {mx.attrs['landscape_source']}; "
            f"{mx.attrs['n_replicas']} replica(s); {mx.sizes['slab']} slab(s).\n\n"
            + mx.attrs["verdict_table"])
