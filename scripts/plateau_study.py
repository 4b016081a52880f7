"""Plateau level against the mobility ratio r = D_native,bulk / D_foreign (docs/plateau.md).

For each target r the bundled plateau input (inputs/li3b7o12_kmc_plateau.toml, r ~ 100) is
rescaled so that only the foreign ions' mobility changes and the front reaches the same depth
with the same hop bias in the replaced zone:

* K transport threshold ``E_DC += kT ln(r / 100)`` (the K landscape is narrow: D_K ~ exp(-E_DC/kT));
* bulk field (and with it the beam current) ``x 100 / r``;
* beam duration and output times ``x r / 100`` (same charge delivered: same front depth);
* a deeper lattice (72 layers) and 161 output times (the bulk field is averaged over snapshots).

Each variant runs ``cait compare`` (KMC with the moving back, the KMC equilibrium table, NPP
with the SED formula and with the KMC table) in ``<out>/r<r>/``; ``--collect`` reads what is
there and writes the table (Markdown) and the figure. The measured r (``kmc.nc`` attr
``D_ratio_native_over_foreign``) is what the table reports, not the target.

Usage::

    python scripts/plateau_study.py --r 15 100 300 [--replicas 4] [--out outputs/plateau_study]
    python scripts/plateau_study.py --collect [--out outputs/plateau_study]
        [--long-tables outputs/plateau_study_longeq]

``--wide DIR``: add the wider-landscape runs ``DIR/w<meV>_r<r>/kmc.nc`` (300 and 350 meV) to the
figure, each width its own series (docs/plateau.md "A wider landscape"). All runs, the 250 meV
ones too, are also read at the front where the shortest of the wide runs ends, and tabled there.

``--also DIR`` (repeatable): more 250 meV runs ``DIR/r<r>/`` (e.g. the r ~ 1000 run with the bond
cap, ``outputs/plateau_study_cap``); the table and the figure mark their dynamics.

``--long-tables DIR``: also collect ``DIR/r<r>_lowx/compare.nc``, made by ``cait compare
--equilibrium`` with a long-block equilibrium table of the same run (docs/plateau.md), as the
column "kmc-table (long blocks)".
"""
from __future__ import annotations

import argparse
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "inputs" / "li3b7o12_kmc_plateau.toml"
KT_EV = 0.025852       # 300 K
R_BASE = 100.0


def _set(text, section, key, value):
    """Replace ``key = ...`` inside ``[section]`` (first occurrence after the header)."""
    head = text.index(f"[{section}]")
    m = re.compile(rf"^{re.escape(key)}\s*=\s*[^#\n]*", re.M).search(text, head)
    if m is None:
        raise KeyError(f"{section}.{key}")
    return text[:m.start()] + f"{key} = {value} " + text[m.end():]


def variant(r: float) -> str:
    """Input text of the plateau scenario rescaled to the target ratio ``r``."""
    text = BASE.read_text()
    if r == R_BASE:
        return text          # the bundled input itself (a run of it can be reused)
    f = r / R_BASE
    e_dc = 0.77 + KT_EV * math.log(f)
    text = _set(text, "species.K", "E_DC_eV", f"{e_dc:.4f}")
    text = _set(text, "species.K", "D_cm2_s", f"{2.0e-16 / f:.3g}")
    text = _set(text, "beam", "back_field_V_per_m", f"{3.2e5 / f:.4g}")
    text = _set(text, "beam", "duration_s", f"{640.0 * f:.6g}")
    # deeper lattice: at low plateaus the same charge pushes the front deeper (r ~ 20: 19.6 nm
    # with the deepest K ion + buffer reaching the 60th layer); more snapshots for the bulk field
    text = _set(text, "kmc", "nx", "72")
    text = _set(text, "sample", "thickness_nm", f"{72 * 0.40062:.3f}")
    text = _set(text, "output", "n_times", "161")
    text = _set(text, "output", "plot_times_s",
                "[" + ", ".join(f"{t * f:.6g}" for t in (160.0, 320.0, 480.0, 640.0)) + "]")
    return f"# plateau study variant: target r = {r:g} (scripts/plateau_study.py)\n" + text


def run(rs, replicas, out):
    for r in rs:
        d = out / f"r{r:g}"
        d.mkdir(parents=True, exist_ok=True)
        path = d / "input.toml"
        path.write_text(variant(r))
        cmd = [sys.executable, "-m", "compare.cli", "compare", str(path), "-o", str(d),
               "--reuse", "--replicas", str(replicas)]
        print(" ".join(cmd), flush=True)
        code = subprocess.call(cmd, cwd=ROOT)
        if code:
            return code
    return 0


def _runs(folder, prefix):
    """Run folders ``<prefix><r>`` holding a kmc.nc, by target r."""
    found = []
    for d in folder.glob(f"{prefix}*"):
        try:
            target = float(d.name[len(prefix):])
        except ValueError:
            continue           # e.g. w350_r22_lg: a variant, not a run of the scan
        if d.is_dir() and (d / "kmc.nc").is_file():
            found.append((target, d))
    return [d for _, d in sorted(found)]


def _wide_runs(folder):
    """The other-width runs ``w<meV>_r<r>/`` in ``folder``: {width in meV: [run folders]}."""
    widths = sorted({int(m.group(1)) for d in folder.glob("w*_r*")
                     if (m := re.fullmatch(r"w(\d+)_r[\d.]+", d.name))})
    runs = {w: _runs(folder, f"w{w}_r") for w in widths}
    return {w: ds for w, ds in runs.items() if ds}


def _row(d, target):
    import xarray as xr

    k = xr.open_dataset(d / "kmc.nc")
    accel = str(k.attrs.get("acceleration", "none"))
    if accel == "bond-cap":
        accel = f"bond cap {float(k.attrs.get('bond_cap_kT', 0.0)):+g} kT"
    row = {"target": target, "r": k.attrs.get("D_ratio_native_over_foreign", math.nan),
           "r_sem": k.attrs.get("D_ratio_sem", math.nan),
           "kmc": k.attrs["plateau_level"], "kmc_sem": k.attrs["plateau_sem"],
           "change": k.attrs["plateau_change"], "change_sem": k.attrs["plateau_change_sem"],
           "front": k.attrs["front_position_nm"], "status": k.attrs.get("status", ""),
           "replicas": int(k.sizes.get("replica", 0)), "acceleration": accel, "folder": d}
    if (d / "compare.nc").is_file():
        c = xr.open_dataset(d / "compare.nc")
        for m in c.model.values:
            if str(m) != "kmc":
                row[str(m)] = float(c["plateau"].sel(model=m).isel(time=-1))
    return row


def _at_front(d, front):
    """KMC plateau (replica mean, SE) at the output time whose front is nearest ``front``."""
    import xarray as xr

    k = xr.open_dataset(d / "kmc.nc")
    i = int(np.nanargmin(np.abs(k["front_position_mean"].values - front)))
    return (float(k["front_position_mean"][i]), float(k["plateau_mean"][i]),
            float(k["plateau_sem"][i]))


def collect(out, long_tables=None, wide=None, also=()):
    import xarray as xr

    rows = []
    for folder in (out, *also):
        for d in _runs(folder, "r"):
            row = _row(d, float(d.name[1:]))
            long = Path(long_tables) / f"{d.name}_lowx" / "compare.nc" if long_tables else None
            if long is not None and long.is_file():
                c = xr.open_dataset(long)
                row["npp-kmc-table (long blocks)"] = float(
                    c["plateau"].sel(model="npp-kmc-table").isel(time=-1))
            rows.append(row)
    if not rows:
        print(f"nothing in {out}")
        return 1
    rows.sort(key=lambda x: x["r"])
    models = sorted({k for r in rows for k in r if k.startswith("npp")})
    head = ("| target r | measured r | replicas | dynamics | front [nm] | KMC plateau | "
            "change over last third | " + " | ".join(f"NPP {m[4:]}" for m in models) + " |")
    lines = [head, "|" + "---|" * (7 + len(models))]
    for r in rows:
        lines.append(f"| {r['target']:g} | {r['r']:.3g} +- {r['r_sem']:.2g} | {r['replicas']} | "
                     f"{r['acceleration']} | {r['front']:.3g} | "
                     f"{r['kmc']:.3f} +- {r['kmc_sem']:.3f} | {r['change']:+.3f} +- "
                     f"{r['change_sem']:.3f} | "
                     + " | ".join(f"{r.get(m, math.nan):.3f}" for m in models) + " |")
    table = "\n".join(lines)
    print(table)
    (out / "plateau_vs_r.md").write_text(table + "\n")
    wide_rows = {width: [_row(d, float(d.name.split("_r")[1])) for d in runs]
                 for width, runs in (_wide_runs(Path(wide)).items() if wide else ())}
    if wide_rows:
        # the wider-landscape runs end at different fronts: compare every run (every width)
        # where all of them have been
        common = min(r["front"] for rs in wide_rows.values() for r in rs)
        print(f"\nAt a common front of {common:.2f} nm (the nearest output time of each run):")
        print("| SED FWHM [meV] | measured r | front [nm] | KMC plateau | dynamics |")
        print("|---|---|---|---|---|")
        for width, rs in [(250, rows)] + list(wide_rows.items()):
            for r in rs:
                r["common_front"], r["common_level"], r["common_sem"] = _at_front(r["folder"],
                                                                                  common)
                print(f"| {width} | {r['r']:.3g} +- {r['r_sem']:.2g} | {r['common_front']:.2f} | "
                      f"{r['common_level']:.3f} +- {r['common_sem']:.3f} | {r['acceleration']} |")
    _figure(rows, models, out / "plateau_vs_r.png", wide_rows)
    return 0


# the paper's Li plateaus (K / Rb / Cs) at the r of the SED-formula calibration
# (D_Li,bulk 1.5e-13 cm^2/s over the calibrated D_foreign, docs/calibration.md)
PAPER = (("K", 1.5e-13 / 5.813e-17, 0.15), ("Rb", 1.5e-13 / 8.618e-18, 0.07),
         ("Cs", 1.5e-13 / 1.501e-18, 0.03))


def _figure(rows, models, path, wide_rows=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from compare.reports.style import legend_outside

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    # x: the measured ratio (native D from long equilibrium blocks: an upper estimate)
    w = "250 meV: " if wide_rows else ""
    fronts = [x["front"] for x in rows]
    for accel, mfc in (("none", None), *[(a, "white") for a in
                                          sorted({x["acceleration"] for x in rows} - {"none"})]):
        sub = [x for x in rows if x["acceleration"] == accel]
        if not sub:
            continue
        dyn = "" if accel == "none" else f" ({accel})"
        ax.errorbar([x["r"] for x in sub], [x["kmc"] for x in sub],
                    xerr=[x["r_sem"] for x in sub], yerr=[x["kmc_sem"] for x in sub],
                    fmt="o", mfc=mfc, capsize=3, color="C0",
                    label=f"{w}KMC (hopping){dyn}, 1 SE, at front "
                          f"{min(fronts):.0f}-{max(fronts):.0f} nm")
    r = np.array([x["r"] for x in rows])
    for m, mk, color in zip(models, ("s", "D", "^", "v"), ("C1", "C2", "C3", "C7")):
        ax.plot(r, [x.get(m, np.nan) for x in rows], mk + "--", color=color,
                label=f"{w}NPP, D from {m[4:]}")
    # one label for every series read at the common front (each run's nearest output time)
    front = np.mean([x["common_front"] for rs in [rows, *(wide_rows or {}).values()]
                     for x in rs if "common_front" in x] or [np.nan])
    for (width, wr), color in zip((wide_rows or {}).items(), ("C5", "C4", "C6")):
        ax.errorbar([x["r"] for x in wr], [x["common_level"] for x in wr],
                    xerr=[x["r_sem"] for x in wr], yerr=[x["common_sem"] for x in wr],
                    fmt="o", mfc="none", capsize=3, color=color,
                    label=f"{width} meV: KMC (hopping), 1 SE, at front {front:.1f} nm")
    if wide_rows:
        sub = [x for x in rows if "common_level" in x]
        ax.errorbar([x["r"] for x in sub], [x["common_level"] for x in sub],
                    yerr=[x["common_sem"] for x in sub], fmt="x", capsize=3, color="C0",
                    label=f"250 meV: KMC (hopping), 1 SE, at front {front:.1f} nm")
    for name, rp, level in PAPER:
        ax.plot([rp], [level], "*", ms=12, color="k")
        ax.annotate(f"{name} (paper)", (rp, level), textcoords="offset points", xytext=(6, 4))
    ax.plot([], [], "*", color="k", label="paper's plateau at the r of the SED calibration")
    ax.set_xscale("log")
    ax.set_ylim(bottom=0.0)
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(r"measured $r = D_\mathrm{Li,bulk}/D_\mathrm{K}$")
    ax.set_ylabel("Li plateau (fraction of $n_\\mathrm{bulk}$)")
    widths = " / ".join(str(x) for x in [250, *(wide_rows or {})])
    ax.set_title(f"Li$_3$B$_7$O$_{{12}}$, K$^+$ CAIT, Gaussian SED ({widths} meV): "
                 "plateau vs mobility ratio")
    legend_outside(ax)
    fig.savefig(path, dpi=150, bbox_inches="tight")
    print(f"-> {path}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--r", type=float, nargs="+", default=[15.0, 100.0, 300.0])
    ap.add_argument("--replicas", type=int, default=4)
    ap.add_argument("--out", type=Path, default=ROOT / "outputs" / "plateau_study")
    ap.add_argument("--collect", action="store_true", help="only collect what is there")
    ap.add_argument("--wide", type=Path, default=None,
                    help="folder of the wider-landscape runs w<meV>_r<r>/ (docs/plateau.md), "
                         "drawn too")
    ap.add_argument("--long-tables", type=Path, default=None,
                    help="folder of r<r>_lowx/compare.nc runs with long-block equilibrium tables")
    ap.add_argument("--also", type=Path, action="append", default=[],
                    help="another folder of 250 meV runs r<r>/ (e.g. with the bond cap), drawn "
                         "and tabled with their dynamics; repeatable")
    a = ap.parse_args(argv)
    if a.collect:
        return collect(a.out, a.long_tables, a.wide, a.also)
    code = run(a.r, a.replicas, a.out)
    return code or collect(a.out, a.long_tables, a.wide, a.also)


if __name__ == "__main__":
    sys.exit(main())
