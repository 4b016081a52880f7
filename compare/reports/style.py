"""The shared look of the figures: one colour per species in every figure, times in s/min/h,
titles that name the glass and the scenario, mathtext units, legends outside the data."""
from __future__ import annotations

from pathlib import Path

import numpy as np

# native first, then the foreign species in input order
SPECIES_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")
DEPTH_LABEL = "depth [nm]"
FRACTION_LABEL = r"concentration / $n_\mathrm{bulk}$"
D_LABEL = r"$D$ [cm$^2$/s]"
X_LABEL = r"$x = n_\mathrm{native} / (n_\mathrm{native} + n_\mathrm{foreign})$"


def species_colors(names) -> dict:
    """``{species: colour}``; `names` in input order (native first)."""
    return {str(n): SPECIES_COLORS[i % len(SPECIES_COLORS)] for i, n in enumerate(names)}


def time_colors(n):
    """`n` colours for successive times (dark = early)."""
    import matplotlib.pyplot as plt

    return plt.cm.viridis(np.linspace(0.0, 0.85, max(int(n), 1)))


def time_label(t_s: float) -> str:
    """A time for a legend: µs, ms, s, min or h as fits, 3 significant digits."""
    t = float(t_s)
    a = abs(t)
    if a == 0.0:
        return "0 s"
    for scale, unit in ((3600.0, "h"), (60.0, "min"), (1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if a >= (2 * scale if unit in ("h", "min") else scale):
            return f"{t / scale:.3g} {unit}"
    return f"{t * 1e9:.3g} ns"


def scenario_name(cfg) -> str:
    """"Li3B7O12, K CAIT (li3b7o12_k_cait)" from an input: glass, beam sequence, input name."""
    if cfg is None:
        return ""
    beams = []
    for ph in cfg.beam:
        if ph.species and (not beams or beams[-1] != ph.species):
            beams.append(ph.species)
    what = (" then ".join(beams) + " CAIT") if beams else "relaxation"
    glass = cfg.material.name or "glass"
    stem = Path(cfg.path).stem if cfg.path else ""
    return f"{glass}, {what}" + (f" ({stem})" if stem else "")


def title(what: str, cfg=None, status: str = "ok") -> str:
    """A figure title: what it shows, the scenario, and the run status unless it is ok."""
    text = f"{what}: {scenario_name(cfg)}" if cfg is not None else what
    return text + (f" [{status}]" if status and status != "ok" else "")


def legend_outside(ax, **kw):
    """A legend to the right of the axes, outside the data."""
    opts = dict(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False,
                borderaxespad=0.0)
    opts.update(kw)
    return ax.legend(**opts)
