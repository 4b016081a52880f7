"""Double CAIT (foreign species A, then B): does D_A look constant in the first CAIT and
concentration dependent in the second? (issue 4, item 5; docs/comparison.md "Double CAIT").

Method: the *local effective diffusivity* of a species, measured from the profiles themselves,
with no model of D:

1. flux through every interior face from continuity, over each interval between two output
   times: ``J(x_f) = [dQ_front - d(integral_0^x_f c dx)] / dt`` (``Q_front``: particles that
   entered through the front, from the engine's bookkeeping), in units of n_bulk nm/s;
2. the driving force at the face, averaged over the two snapshots (registry
   :data:`DRIVING_FORCES`): ``F = -dc/dx + c e E / kT`` (Nernst-Planck) or with the lattice-gas
   exclusion term ``- c dtheta/dx / (1 - theta)`` (theta = total site occupancy), per nm;
3. ``J = D(c) F``: per concentration bin, ``D_bin = sum(J F) / sum(F^2)`` (least squares
   through the origin over every (interval, face) pair whose face concentration falls in the
   bin), with a standard error from the residuals;
4. per beam phase: a weighted straight line ``ln D = alpha + beta c`` through the bins, and
   the verdict :func:`verdict` -- "concentration dependent" when beta differs from zero by more
   than ``n_se`` standard errors *and* D changes by more than ``min_ratio`` over the sampled
   concentration range, "constant" otherwise, "constant (narrow c range)" when the profiles
   sample essentially one concentration.

Works on NPP datasets (``field(time, depth_face)``, ``transferred``) and KMC datasets
(``field(time, gap_depth)``, ``front_net_in``; replica-merged files use the ``_mean`` variables).
"""
from __future__ import annotations

import math

import numpy as np
import xarray as xr

from compare import scenario
from compare.units import D_UNITS
from compare.errors import ConfigError, InputFileError
from compare.io.outputs import default_output, output_dir

NM2_S_TO_CM2_S = 1e-14


# =============================================================================== profile access
def _var(ds, name):
    """``name_mean`` of a replica-merged dataset, else ``name``."""
    if f"{name}_mean" in ds:
        return ds[f"{name}_mean"]
    if name in ds:
        return ds[name]
    raise InputFileError(f"dataset has no variable {name!r} (engine {ds.attrs.get('engine')!r})")


def _kmc_background(ds, f_vac):
    """Ions per KMC layer that make the layer neutral (the concentration unit of ``kmc.nc``).

    Since the integer-background engine the dataset carries it as ``n_bg`` (an integer,
    ``round((1 - f_vac) ny nz)``); older datasets used the float ``(1 - f_vac) ny nz``.
    """
    if "n_bg" in ds.attrs:
        return float(ds.attrs["n_bg"])
    return (1.0 - float(ds.attrs.get("vacancy_fraction", f_vac))) * int(ds.attrs["ny"]) * \
        int(ds.attrs["nz"])


def face_profiles(ds, species, f_vac):
    """Face quantities of one species from an NPP or KMC dataset.

    Parameters
    ----------
    ds : xarray.Dataset
        Output contract dataset (``engine`` "npp" or "kmc"), one run or merged replicas.
    species : str
    f_vac : float
        Vacancy fraction (site occupancy theta = (1 - f_vac) sum_s c_s).

    Returns
    -------
    dict
        ``times`` (n_t,) s; ``x_face`` (n_f,) nm; ``c``, ``dcdx`` [1/nm], ``field`` [V/m],
        ``theta``, ``dthetadx`` [1/nm], ``cum`` (integral_0^x_face c dx) [nm], all (n_t, n_f);
        ``q_front`` (n_t,) nm: particles of ``species`` that entered through the front.
    """
    if species not in list(ds.species.values):
        raise ConfigError(f"species {species!r} not in the dataset; legal: "
                          f"{', '.join(map(str, ds.species.values))}")
    engine = str(ds.attrs.get("engine", ""))
    conc = _var(ds, "concentration").transpose("species", "time", "depth")
    c_all = conc.values
    i = list(ds.species.values).index(species)
    theta_nodes = (1.0 - f_vac) * c_all.sum(axis=0)
    c_nodes = c_all[i]
    times = ds.time.values.astype(float)
    if engine == "kmc":
        a = float(ds.attrs["a_nm"])
        n_l = c_nodes.shape[1]
        g = np.arange(1, n_l)  # interior gaps: between layers g - 1 and g, at depth g a
        x_face = g * a
        c = 0.5 * (c_nodes[:, g - 1] + c_nodes[:, g])
        dcdx = (c_nodes[:, g] - c_nodes[:, g - 1]) / a
        theta = 0.5 * (theta_nodes[:, g - 1] + theta_nodes[:, g])
        dthetadx = (theta_nodes[:, g] - theta_nodes[:, g - 1]) / a
        cum = a * np.cumsum(c_nodes, axis=1)[:, g - 1]
        field = _var(ds, "field").transpose("time", "gap_depth").values[:, g]
        n_bg = _kmc_background(ds, f_vac)
        q_front = _var(ds, "front_net_in").sel(species=species).values * a / n_bg
    elif engine.startswith("npp"):
        x = ds.depth.values.astype(float)
        if "field" not in ds or "transferred" not in ds:
            raise InputFileError("the NPP dataset needs `field` and `transferred` (full solver)")
        dx = np.diff(x)
        x_face = 0.5 * (x[1:] + x[:-1])
        c = 0.5 * (c_nodes[:, 1:] + c_nodes[:, :-1])
        dcdx = np.diff(c_nodes, axis=1) / dx
        theta = 0.5 * (theta_nodes[:, 1:] + theta_nodes[:, :-1])
        dthetadx = np.diff(theta_nodes, axis=1) / dx
        # exact integral of the piecewise-linear profile up to each face
        seg = 0.5 * (c_nodes[:, 1:] + c_nodes[:, :-1]) * dx
        left = np.concatenate([np.zeros((c_nodes.shape[0], 1)), np.cumsum(seg, axis=1)[:, :-1]],
                              axis=1)
        cum = left + 0.5 * dx * (0.75 * c_nodes[:, :-1] + 0.25 * c_nodes[:, 1:])
        field = ds["field"].transpose("time", "depth_face").values
        q_front = ds["transferred"].sel(species=species, boundary="front").values
    else:
        raise InputFileError(f"unknown dataset engine {engine!r}; legal: npp, kmc")
    return dict(times=times, x_face=x_face, c=c, dcdx=dcdx, field=field, theta=theta,
                dthetadx=dthetadx, cum=cum, q_front=q_front)


# =============================================================================== local D
def _force_np(p, kT_eV):
    return -p["dcdx"] + p["c"] * p["field"] * 1e-9 / kT_eV  # E [V/m] * 1e-9 -> V/nm


def _force_lg(p, kT_eV):
    th = np.clip(p["theta"], 0.0, 1.0 - 1e-9)
    return _force_np(p, kT_eV) - p["c"] * p["dthetadx"] / (1.0 - th)


DRIVING_FORCES = {
    "nernst-planck": _force_np,  # J = -D (dc/dx - c eE/kT)
    "lattice-gas": _force_lg,    # J = -D (dc/dx - c eE/kT + c dtheta/dx / (1 - theta))
}


def local_flux_force(p, kT_eV, convention="nernst-planck"):
    """Flux and driving force per (interval, face), at the interval midpoints.

    Returns
    -------
    dict
        ``t_mid`` (n_t - 1,) s; ``J`` [n_bulk nm/s], ``F`` [1/nm], ``c`` [1] and ``dc`` (change
        of c over the interval) [1], all (n_t - 1, n_f).
    """
    if convention not in DRIVING_FORCES:
        raise ConfigError(f"unknown driving-force convention {convention!r}; legal: "
                          f"{', '.join(DRIVING_FORCES)}")
    t = p["times"]
    dt = np.diff(t)
    if np.any(dt <= 0):
        raise InputFileError("output times must increase strictly")
    J = (np.diff(p["q_front"])[:, None] - np.diff(p["cum"], axis=0)) / dt[:, None]
    F_t = DRIVING_FORCES[convention](p, kT_eV)
    F = 0.5 * (F_t[1:] + F_t[:-1])
    c = 0.5 * (p["c"][1:] + p["c"][:-1])
    dc = np.abs(np.diff(p["c"], axis=0))
    return dict(t_mid=0.5 * (t[1:] + t[:-1]), J=J, F=F, c=c, dc=dc)


def binned_diffusivity(J, F, c, bins, min_points=3):
    """``D(c)`` per concentration bin by least squares through the origin, ``J = D F``.

    Parameters
    ----------
    J, F, c : ndarray of float, same shape
        Flux [n_bulk nm/s], driving force [1/nm], face concentration [1].
    bins : ndarray of float, shape (n_b + 1,)
        Concentration bin edges.

    Returns
    -------
    (ndarray, ndarray, ndarray, ndarray)
        Bin centre [1] (mean c of the points), D [cm^2/s], standard error of D [cm^2/s], number
        of points; NaN where fewer than ``min_points`` points or D <= 0.
    """
    J, F, c = (np.ravel(np.asarray(v, float)) for v in (J, F, c))
    ok = np.isfinite(J) & np.isfinite(F) & np.isfinite(c)
    J, F, c = J[ok], F[ok], c[ok]
    n_b = len(bins) - 1
    cc, D, se, n = (np.full(n_b, np.nan), np.full(n_b, np.nan), np.full(n_b, np.nan),
                    np.zeros(n_b, int))
    idx = np.digitize(c, bins) - 1
    for b in range(n_b):
        sel = idx == b
        n[b] = int(sel.sum())
        if n[b] < min_points:
            continue
        f, j = F[sel], J[sel]
        s2 = float(np.sum(f * f))
        if s2 <= 0:
            continue
        d = float(np.sum(j * f) / s2)
        res = j - d * f
        var = float(np.sum(res * res)) / max(n[b] - 1, 1) / s2
        if d > 0:
            cc[b], D[b], se[b] = float(np.mean(c[sel])), d * NM2_S_TO_CM2_S, \
                math.sqrt(var) * NM2_S_TO_CM2_S
    return cc, D, se, n


def log_linear_fit(c, D, se):
    """Weighted straight line ``ln D = alpha + beta c`` through bins (NaNs skipped; >= 2 bins).

    Returns
    -------
    dict
        ``beta`` (d ln D / dc), ``beta_se``, ``alpha``, ``c_range`` (min, max of used bins),
        ``ratio`` = D(c_max)/D(c_min) of the line, ``n_bins``, ``reduced_chi2``.
        ``beta_se`` is scaled by sqrt(reduced chi2) when that exceeds 1 (scatter beyond the
        bin errors).
    """
    c, D, se = (np.asarray(v, float) for v in (c, D, se))
    ok = np.isfinite(c) & np.isfinite(D) & np.isfinite(se) & (D > 0) & (se > 0)
    out = dict(beta=math.nan, beta_se=math.nan, alpha=math.nan, c_range=(math.nan, math.nan),
               ratio=math.nan, n_bins=int(ok.sum()), reduced_chi2=math.nan)
    if ok.sum() < 2:
        return out
    x, y = c[ok], np.log(D[ok])
    w = (D[ok] / se[ok]) ** 2  # 1 / var(ln D)
    A = np.vstack([np.ones_like(x), x]).T
    cov = np.linalg.inv(A.T @ (A * w[:, None]))
    coef = cov @ (A.T @ (w * y))
    chi2 = float(np.sum(w * (y - A @ coef) ** 2))
    red = chi2 / (x.size - 2) if x.size > 2 else math.nan
    scale = math.sqrt(max(red, 1.0)) if np.isfinite(red) else 1.0
    out.update(alpha=float(coef[0]), beta=float(coef[1]),
               beta_se=float(math.sqrt(cov[1, 1]) * scale), c_range=(float(x.min()), float(x.max())),
               ratio=float(math.exp(coef[1] * (x.max() - x.min()))), reduced_chi2=red)
    return out


def verdict(fit, n_se=3.0, min_ratio=3.0, min_range=0.15):
    """Classify a :func:`log_linear_fit` (registry :data:`VERDICTS` lists the outcomes).

    "narrow": fewer than two usable bins or a sampled concentration range below ``min_range``;
    the profile is then described by one D whatever D(c) is (a CAIT plateau behind a sharp
    front samples one concentration).
    """
    if fit["n_bins"] == 0:
        return "undetermined"
    lo, hi = fit["c_range"]
    if fit["n_bins"] < 2 or not np.isfinite(fit["beta"]) or hi - lo < min_range:
        return "constant (narrow c range)"
    significant = abs(fit["beta"]) > n_se * fit["beta_se"]
    big = max(fit["ratio"], 1.0 / fit["ratio"]) > min_ratio
    return "concentration dependent" if significant and big else "constant"


VERDICTS = {
    "concentration dependent": "|beta| > n_se SE and D changes by > min_ratio over the range",
    "constant": "a wide c range is sampled and D changes by less (or not significantly)",
    "constant (narrow c range)": "one concentration sampled: looks constant, not testable",
    "undetermined": "no usable (interval, face) pair",
}


# =============================================================================== per phase
def phase_windows(durations_s):
    """``[(t_start, t_end)]`` of consecutive beam phases [s]."""
    ends = np.cumsum(np.asarray(durations_s, float))
    return list(zip(np.concatenate(([0.0], ends[:-1])), ends))


def analyse(ds, species, phases, kT_eV, f_vac, convention="nernst-planck", bins=None,
            min_force_frac=0.05, c_min=0.02, n_se=3.0, min_ratio=3.0, skip_first=True, max_dc=0.1):
    """Local D of ``species`` per beam phase, with the constant / concentration-dependent verdict.

    Parameters
    ----------
    ds : xarray.Dataset
        NPP or KMC dataset of the whole schedule.
    phases : list of (str, float, float)
        ``(label, t_start, t_end)`` [s]: intervals whose midpoint lies inside are used.
    min_force_frac : float
        Points with ``|F|`` below this fraction of the phase's largest ``|F|`` are dropped (no
        information on D, only noise).
    c_min : float
        Faces with less of ``species`` are dropped (no carriers).
    max_dc : float
        Points whose face concentration changes by more than this over the interval are dropped:
        a front passing the face makes the snapshot average of F meaningless there.
    skip_first : bool
        Drop the first interval of every phase: the boundary conditions jump at its start, so
        the snapshot average of F misrepresents the interval (e.g. a sqrt(t) entry from t = 0).

    Returns
    -------
    xarray.Dataset
        ``D(phase, c_bin)``, ``D_se``, ``c_mean``, ``n_points`` and per phase ``beta``,
        ``beta_se``, ``ratio``, ``c_lo``, ``c_hi``, ``verdict``.
    """
    bins = np.linspace(0.0, 1.0, 11) if bins is None else np.asarray(bins, float)
    p = face_profiles(ds, species, f_vac)
    lf = local_flux_force(p, kT_eV, convention)
    rows = {k: [] for k in ("D", "D_se", "c_mean", "n_points")}
    fits = []
    for label, t0, t1 in phases:
        sel_t = (lf["t_mid"] > t0) & (lf["t_mid"] < t1)
        if skip_first and sel_t.any():
            sel_t[np.flatnonzero(sel_t)[0]] = False
        J, F, c = lf["J"][sel_t], lf["F"][sel_t], lf["c"][sel_t]
        fmax = np.nanmax(np.abs(F)) if F.size else 0.0
        keep = (np.abs(F) >= min_force_frac * fmax) & (c >= c_min) & (lf["dc"][sel_t] <= max_dc)
        cc, D, se, n = binned_diffusivity(np.where(keep, J, np.nan), F, c, bins)
        for k, v in zip(("c_mean", "D", "D_se", "n_points"), (cc, D, se, n)):
            rows[k].append(v)
        fit = log_linear_fit(cc, D, se)
        fit["verdict"] = verdict(fit, n_se, min_ratio)
        fits.append(fit)
    labels = [ph[0] for ph in phases]
    centres = 0.5 * (bins[1:] + bins[:-1])
    return xr.Dataset(
        {
            "D": (("phase", "c_bin"), np.array(rows["D"]),
                  {"units": D_UNITS, "long_name": f"local effective D of {species}"}),
            "D_se": (("phase", "c_bin"), np.array(rows["D_se"]),
                     {"units": D_UNITS, "long_name": "standard error of D (bin residuals)"}),
            "c_mean": (("phase", "c_bin"), np.array(rows["c_mean"]),
                       {"units": "1", "long_name": f"mean {species} fraction of the bin's faces"}),
            "n_points": (("phase", "c_bin"), np.array(rows["n_points"]),
                         {"units": "1", "long_name": "(interval, face) pairs in the bin"}),
            "beta": (("phase",), [f["beta"] for f in fits],
                     {"units": "1", "long_name": "d ln D / d c (weighted line through bins)"}),
            "beta_se": (("phase",), [f["beta_se"] for f in fits],
                        {"units": "1", "long_name": "standard error of beta"}),
            "ratio": (("phase",), [f["ratio"] for f in fits],
                      {"units": "1", "long_name": "D(c_hi) / D(c_lo) of the line"}),
            "c_lo": (("phase",), [f["c_range"][0] for f in fits], {"units": "1"}),
            "c_hi": (("phase",), [f["c_range"][1] for f in fits], {"units": "1"}),
            "verdict": (("phase",), [f["verdict"] for f in fits]),
        },
        coords={"phase": ("phase", labels), "c_bin": ("c_bin", centres, {"units": "1"})},
        attrs={"species": species, "convention": convention, "engine": str(ds.attrs.get("engine")),
               "n_se": n_se, "min_ratio": min_ratio, "min_force_frac": min_force_frac,
               "c_min": c_min, "max_dc": max_dc, "skip_first": int(skip_first), "method": "J from continuity, D_bin = sum(J F)/sum(F^2)"},
    )


def replica_betas(ds, species, phases, kT_eV, f_vac, convention="nernst-planck", **options):
    """``beta`` of every replica of a merged KMC dataset, per phase: the replica scatter.

    The bin errors of :func:`analyse` come from the residual scatter of (interval, face)
    pairs; the spread of beta over independent replicas is an independent error bar.

    Returns
    -------
    ndarray of float, shape (n_replica, n_phase)
        NaN where a replica has fewer than two usable bins; shape (0, n_phase) without a
        ``replica`` dim.
    """
    if "replica" not in ds.dims:
        return np.zeros((0, len(phases)))
    names = [v for v in ("concentration", "field", "front_net_in", "transferred")
             if v in ds and "replica" in ds[v].dims]
    out = []
    for j in range(ds.sizes["replica"]):
        one = xr.Dataset({v: ds[v].isel(replica=j) for v in names}, attrs=ds.attrs)
        r = analyse(one, species, phases, kT_eV, f_vac, convention, **options)
        out.append(r.beta.values)
    return np.array(out, dtype=float)


def cait_phases(cfg, drive_only=True):
    """``[(label, t_start, t_end)]`` of the input's beam phases (``drive = "off"`` skipped)."""
    out = []
    for k, ((t0, t1), ph) in enumerate(zip(phase_windows([p.duration_s for p in cfg.beam]),
                                            cfg.beam)):
        if drive_only and ph.drive == "off":
            continue
        out.append((f"{k + 1}:{ph.species or 'off'}", float(t0), float(t1)))
    return out


# =============================================================================== driver
KMC_MAX_DC = 0.25  # KMC layer fractions fluctuate by ~0.05 between snapshots: looser front filter
ENGINES = ("kmc", "npp")


def _first_foreign(cfg):
    for ph in cfg.beam:
        if ph.species:
            return ph.species
    raise ConfigError("the beam schedule has no phase with a foreign `species`")


def run_double(input_path, out_dir=None, engines=ENGINES, replicas=None, reuse=False,
               quiet=False, species=None, convention=None):
    """`cait double`: KMC and/or NPP on a double-CAIT input, local D of the first beam species
    per driven phase -> ``double.nc``, ``double.png``, ``double.md`` in ``out_dir``.

    ``convention`` (a key of :data:`DRIVING_FORCES`) applies to both engines; default: the NPP
    run's own ``flux_convention`` for NPP (the estimator is exact only with the solver's flux
    law: measured 1 % vs up to a factor 2 near the surface double layer with the other one) and
    ``nernst-planck`` for KMC (the layer-to-layer noise of the total occupancy makes the
    exclusion term noisy; the KMC bulk is electroneutral, where both agree).

    Returns
    -------
    dict
        ``{"dataset", "report", "figure", "timings", "exit_code"}``.
    """
    from compare.reports.double_cait import figure, report_markdown
    import time
    from pathlib import Path

    from compare.io.config import load_config
    from compare.io.datasets import open_dataset, save_figure, write_dataset

    cfg = load_config(input_path)
    cfg.require("`cait double`", beam=True, foreign=True)
    for e in engines:
        if e not in ENGINES:
            raise ConfigError(f"unknown engine {e!r}; legal: {', '.join(ENGINES)}")
    species = species or _first_foreign(cfg)
    if species not in cfg.species_names:
        raise ConfigError(f"species {species!r} is not in the input; legal: "
                          f"{', '.join(cfg.species_names)}")
    out = Path(out_dir) if out_dir is not None else default_output(cfg, "_double")
    with output_dir(out):
        phases = cait_phases(cfg)
        kT, f_vac = scenario.kT_eV(cfg), float(cfg.material.vacancy_fraction)
        timings, results = {}, {}
        for eng in engines:
            path = out / f"{eng}.nc"
            t0 = time.monotonic()
            if not (reuse and path.is_file()):
                if eng == "kmc":
                    from compare.workflows.run_kmc import run_kmc

                    code = run_kmc(input_path, out_dir=out, replicas=replicas, quiet=quiet)
                    if code != 0:
                        return {"exit_code": code}
                else:
                    from compare.workflows.run_npp import run_npp

                    run_npp(cfg, out, progress=not quiet)
                timings[f"{eng} run"] = time.monotonic() - t0
            ds = open_dataset(path)
            conv = convention or (str(ds.attrs.get("flux_convention", "nernst-planck"))
                                  if eng == "npp" else "nernst-planck")
            if conv not in DRIVING_FORCES:
                conv = "nernst-planck"
            opts = dict(max_dc=KMC_MAX_DC if eng == "kmc" else 0.1)
            res = analyse(ds, species, phases, kT, f_vac, conv, **opts)
            b = replica_betas(ds, species, phases, kT, f_vac, conv, **opts)
            n_ok = np.isfinite(b).sum(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                b_mean = np.where(n_ok > 0, np.nansum(b, axis=0) / np.maximum(n_ok, 1), np.nan)
                b_sem = np.array([np.nanstd(b[:, k], ddof=1) / math.sqrt(n_ok[k]) if n_ok[k] > 1
                                  else np.nan for k in range(len(phases))])
            res["beta_replica_mean"] = ("phase", b_mean, {
                "units": "1", "long_name": "mean over replicas of the per-replica beta"})
            res["beta_replica_sem"] = ("phase", b_sem, {
                "units": "1", "long_name": "standard error over replicas of beta"})
            results[eng] = res
        combined = xr.concat([r.expand_dims(engine=[e]) for e, r in results.items()], dim="engine",
                             combine_attrs="drop_conflicts")
        combined.attrs.update(species=species, convention=",".join(
            f"{e}:{r.attrs['convention']}" for e, r in results.items()))
        fig_path = save_figure(figure(results, species, cfg), out / "double.png")
        path = write_dataset(combined, out / "double.nc", cfg=cfg)
        (out / "double.md").write_text(report_markdown(results, cfg, species, timings, Path(fig_path).name))
        if not quiet:
            print(f"cait double: -> {path}, {out / 'double.md'}")
        return {"dataset": path, "report": out / "double.md", "figure": fig_path,
                "timings": timings, "exit_code": 0}
