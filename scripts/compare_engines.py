"""Statistical comparison of two KMC engine versions (docs/engine_rewrite_check.md).

Usage (reproduces the tables of the doc; ~40 min of one core, one heavy process at a time)::

    git worktree add /tmp/oldengine a6ef3e9
    mkdir /tmp/newengine && git archive 78b7f84 kmc | tar -x -C /tmp/newengine
    python scripts/compare_engines.py --old /tmp/oldengine --new /tmp/newengine --out /tmp/oldnew

Options: ``--scenarios driven,eq_trap,eq_mix,eq_metro`` (subset), ``--report-only`` (tables from
existing result files), ``--no-drift-check``, ``--extra-seeds N``, ``--driven-duration S``.
Workers resume from existing result files (same settings), so seeds can be added by raising
``n_seeds`` in ``SCENARIOS``. The report goes to stdout and ``OUT/report.md``.

``ROOT_*`` is a repository root (a tree whose ``kmc/`` package is imported). Every engine runs in
its own worker process (``python compare_engines.py worker ...``, with ``ROOT`` first on
``sys.path``); the two engines never share a process. Per scenario the old engine runs first; the
block length of the equilibrium scenarios (``kmc.equilibrium.block_length_s`` of the old engine,
per seed) is then handed to the new engine, so both record at the same physical times.

Every seed is a different landscape and initial occupancy; both engines draw them from numpy
with the same seed before any event, so they start from the same state and only the event
streams differ. The statistics compared are per-seed means (over the blocks / samples of a
run); the table gives, over seeds, old mean +- SEM, new mean +- SEM and the paired difference
(new - old) +- its SEM, ``z = diff / SEM`` and the two-sided p value of Student's t with
``n_seeds - 1`` degrees of freedom.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

# ---------------------------------------------------------------------------- scenarios
FWHM_EV = 0.25
E_FIELD_V_PER_M = 1e7          # compare/checks/bench_kmc.py
SIGMA_KMC_S_PER_M = 2.0e-4     # compare/checks/bench_kmc.py

SCENARIOS = {
    # 1. one species, trap model, periodic 8^3, 10 % vacancies
    "eq_trap": dict(kind="eq", model="trap", x=1.0, L=8, n_seeds=20, n_blocks=20,
                    events_per_block=1_500_000, n_eq=3_000_000),
    # 2. native + foreign (own landscape), x = 0.5
    "eq_mix": dict(kind="eq", model="trap", x=0.5, L=8, n_seeds=48, n_blocks=20,
                   events_per_block=1_500_000, n_eq=3_000_000),
    # 3. as 1 with Metropolis rates
    "eq_metro": dict(kind="eq", model="metropolis", x=1.0, L=8, n_seeds=16, n_blocks=20,
                     events_per_block=500_000, n_eq=1_000_000),
    # 4. open, galvanostatic (compare/checks/bench_kmc.py scenario) at L = 12, fixed physical time
    "driven": dict(kind="driven", L=12, n_seeds=96, n_out=20),
}
SEED0 = {"eq_trap": 1000, "eq_mix": 2000, "eq_metro": 3000, "driven": 4000}
# Drift check: extra seeds run with the NEW engine only (first seed SEED0 + 500). In a periodic
# lattice at equilibrium the net number of hops along every axis is zero in expectation, so a
# bias in the choice of the lateral neighbour (or of the class) shows as a drift, whatever the
# other engine does.
DRIFT_EXTRA = {"eq_trap": 24, "eq_metro": 48}


def species_for(kmc_engine, cfg):
    Species = kmc_engine.Species
    native = Species("Li", E_DC_eV=0.45)
    foreign = Species("K", role="foreign", E_DC_eV=0.40, mu_eV=0.0, sigma_eV=0.06, rho=0.5)
    if cfg["kind"] == "driven":   # bench_kmc species
        foreign = Species("K", role="foreign", E_DC_eV=0.4, mu_eV=0.0, sigma_eV=0.106, rho=0.5)
        return (native, foreign)
    return (native,) if cfg["x"] == 1.0 else (native, foreign)


# ---------------------------------------------------------------------------- worker
def _import_engine(root):
    sys.path.insert(0, os.path.abspath(root))
    import kmc
    from kmc import analysis, engine, equilibrium, lattice
    here = os.path.dirname(os.path.abspath(kmc.__file__))
    if not here.startswith(os.path.abspath(root)):
        raise RuntimeError(f"imported kmc from {here}, not from {root}")
    return engine, lattice, equilibrium, analysis, here


def eq_seed(mods, cfg, seed, tau):
    """One equilibrium run: per-seed means of the block estimates + rates of executed events."""
    engine, lattice, eq, analysis = mods
    from dataclasses import replace
    sp = species_for(engine, cfg)
    base = engine.KMCParams(nx=cfg["L"], ny=cfg["L"], nz=cfg["L"], species=sp,
                            native_sampler=lattice.Gaussian.from_fwhm(FWHM_EV), n_bulk_m3=1.4e28,
                            vacancy_fraction=0.10, temperature_K=300.0, rate_model=cfg["model"])
    opt = eq.EquilibriumOptions(n_blocks=cfg["n_blocks"], events_per_block=cfg["events_per_block"],
                                n_equilibration_events=cfg["n_eq"])
    p = eq.equilibrium_params(base, cfg["x"], opt)
    if tau is None:
        tau = eq.block_length_s(p, seed, opt)
    nb = cfg["n_blocks"]
    times = tau * np.arange(nb + 1)
    p = replace(p, output_times_s=tuple(times), duration_s=float(times[-1]), record_histograms=True)
    sim = engine.Simulation(p, seed)
    sim.equilibrate(cfg["n_eq"])
    c0 = time.process_time()
    sim.run(chunk_events=10_000_000)
    cpu = time.process_time() - c0
    ds = sim.to_dataset()
    species = ds.ion_species.values
    ions = np.flatnonzero(species >= 0)
    names = [str(s) for s in ds.species.values]
    volume = sim.n_sites * sim.a_m ** 3
    pos_m = ds.ion_displacement.values[:, ions, :] * 1e-9
    smp = analysis.block_samples(pos_m, ds.time.values, species[ions], names, volume,
                                 p.temperature_K, n_blocks=ds.sizes["time"] - 1)
    T = float(sim.time_s)
    out = {"tau_s": float(tau), "time_s": T, "n_events": int(sim.n_events), "cpu_s": cpu,
           "events_per_s_phys": sim.n_events / T}
    ctr = sim.state["counters"].astype(float)
    coll = sim.state["coll"].astype(float)
    E_c = ds.energy.values
    occ = ds.occupancy_count.values[1:].sum(axis=1).astype(float)   # (time, energy, species)
    for s, n in enumerate(names):
        Ds = smp.D_star.sel(species=n).values
        De = smp.D_eff.sel(species=n).values
        out[f"D_star[{n}]"] = float(Ds.mean())
        out[f"D_eff[{n}]"] = float(De.mean())
        out[f"Haven[{n}]"] = float(Ds.mean() / De.mean())
        for n2 in names[s:]:
            out[f"L[{n},{n2}]"] = float(smp.L.sel(species=n, species2=n2).values.mean())
        out[f"rate_fwd[{n}]"] = ctr[s, 0] / T
        out[f"rate_bwd[{n}]"] = ctr[s, 1] / T
        out[f"rate_lat[{n}]"] = ctr[s, 2] / T
        out[f"frac_lat[{n}]"] = ctr[s, 2] / ctr[s, :3].sum()
        out[f"frac_fwd_of_x[{n}]"] = ctr[s, 0] / ctr[s, :2].sum()
        for k, d in enumerate("xyz"):   # collective drift per ion (lattice hops/s): 0 expected
            out[f"drift_{d}[{n}]"] = coll[s, k] / T / max(int(np.sum(species[ions] == s)), 1)
        w = occ[:, :, s]
        out[f"E_occ[{n}]"] = float(np.mean((w * E_c[None, :]).sum(axis=1) / w.sum(axis=1)))
    return out


def driven_seed(mods, cfg, seed, duration_s):
    """One open, galvanostatic run of fixed physical duration."""
    engine, lattice, eq, analysis = mods
    L = cfg["L"]
    j = SIGMA_KMC_S_PER_M * E_FIELD_V_PER_M
    n_out = cfg["n_out"]
    outs = tuple(duration_s * (np.arange(n_out) + 1) / n_out)
    p = engine.KMCParams(nx=L, ny=L, nz=L, species=species_for(engine, cfg),
                         native_sampler=lattice.Gaussian.from_fwhm(FWHM_EV),
                         phases=(engine.Phase("K", duration_s, back_field_V_per_m=E_FIELD_V_PER_M,
                                              theta_front=0.5, beam_current_A_per_m2=j),),
                         output_times_s=outs, record_histograms=False)
    sim = engine.Simulation(p, seed)
    c0 = time.process_time()
    sim.run(chunk_events=10_000_000)
    cpu = time.process_time() - c0
    ds = sim.to_dataset()
    T = float(sim.time_s)
    nbg = ds.attrs["n_bg"]
    cnt = sim.state["cnt"].astype(float)                  # (species, layer)
    ctr = sim.state["counters"].astype(float)
    conc = ds.concentration.values * nbg                   # (species, time, depth) ions per layer
    half = slice(n_out // 2, None)                         # second half of the samples
    out = {"time_s": T, "n_events": int(sim.n_events), "cpu_s": cpu,
           "events_per_s_phys": sim.n_events / T,
           "inventory_K_end": float(cnt[1].sum()),
           "inventory_K_mean2h": float(conc[1, half].sum(axis=1).mean()),
           "inventory_Li_end": float(cnt[0].sum()),
           "front_charge_end": float(ds.front_charge.values[-1]),
           "front_charge_mean2h": float(ds.front_charge.values[half].mean()),
           "field_back_half_mean2h_qEa_kT": float(
               ds.field.values[half, L // 2:L].mean() * sim.a_m / sim.kT_eV)}
    ev = ["hop_forward", "hop_backward", "hop_lateral", "front_in", "front_out", "back_in",
          "back_out", "beam_in"]
    # The beam is a Poisson process of constant rate, independent of the lattice; its count
    # fixes the K inventory almost exactly (charge balance), so the K statistics carry its
    # noise. Beam-corrected statistics (inventory minus arrivals, rates per K ion, profile
    # shape) remove that common noise.
    ts = ds.time.values
    beam_t = ds.event_counts.sel(event="beam_in").values.sum(axis=1).astype(float)   # (time,)
    inv_t = conc[1].sum(axis=1)                                                     # (time,)
    inv_mean = float(inv_t.mean())
    out["beam_count_end"] = float(ctr[:, 7].sum())
    out["K_inv_minus_beam_end"] = float(cnt[1].sum() - ctr[:, 7].sum())
    out["K_inv_minus_beam_mean"] = float(np.mean(inv_t - beam_t))
    out["Li_inv_plus_beam_end"] = float(cnt[0].sum() + ctr[:, 7].sum())
    out["K_hops_per_K_ion_per_s"] = float(ctr[1, :3].sum() / T / inv_mean)
    out["K_front_in_per_beam"] = float(ctr[1, 3] / max(ctr[:, 7].sum(), 1.0))
    out["Li_hops_per_Li_ion_per_s"] = float(ctr[0, :3].sum() / T / conc[0].sum(axis=1).mean())
    assert np.all(np.diff(ts) > 0)
    for s, n in enumerate(["Li", "K"]):
        for k, e in enumerate(ev):
            if ctr[:, k].sum() > 0:
                out[f"{e}/s[{n}]"] = ctr[s, k] / T
        out[f"frac_lat[{n}]"] = ctr[s, 2] / ctr[s, :3].sum()
        for l in range(L):
            out[f"profile_mean2h[{n},{l}]"] = float(conc[s, half, l].mean())
            out[f"profile_end[{n},{l}]"] = float(cnt[s, l])
            if n == "K":   # shape: fraction of the K inventory in layer l (second half)
                out[f"profile_shape2h[{n},{l}]"] = float(
                    conc[s, half, l].mean() / conc[s, half].sum(axis=1).mean())
    return out


def worker(args):
    engine, lattice, eq, analysis, here = _import_engine(args.root)
    mods = (engine, lattice, eq, analysis)
    cfg = dict(SCENARIOS[args.scenario])
    seeds = [int(s) for s in args.seeds.split(",")]
    given = json.load(open(args.taus)) if args.taus else {}
    res = {"root": args.root, "kmc": here, "scenario": args.scenario, "cfg": cfg, "seeds": {}}
    same = lambda c: {k: v for k, v in c.items() if k != "n_seeds"}
    if os.path.exists(args.out):   # resume: keep the seeds already run with the same settings
        prev = json.load(open(args.out))
        if same(prev["cfg"]) == same(cfg) and prev["kmc"] == here:
            res["seeds"] = {s: r for s, r in prev["seeds"].items()
                            if int(s) in seeds and (str(s) not in given or r["tau_s"] == given[str(s)])}
    t0 = time.time()
    for seed in seeds:
        if str(seed) in res["seeds"]:
            continue
        if cfg["kind"] == "eq":
            r = eq_seed(mods, cfg, seed, given.get(str(seed)))
        else:
            r = driven_seed(mods, cfg, seed, float(args.duration))
        res["seeds"][str(seed)] = r
        print(f"[{args.scenario} {os.path.basename(args.root.rstrip('/'))}] seed {seed}: "
              f"{r['n_events']} events, {r['cpu_s']:.1f} s cpu, wall so far {time.time() - t0:.0f} s",
              flush=True)
        json.dump(res, open(args.out, "w"), indent=1)   # after every seed (partial results)
    return res


# ---------------------------------------------------------------------------- statistics
def compare(old, new):
    """Rows (name, n, old mean, old sem, new mean, new sem, diff, diff sem, z, p) over common seeds."""
    from scipy import stats
    seeds = [s for s in old["seeds"] if s in new["seeds"]]
    keys = [k for k in old["seeds"][seeds[0]] if k not in ("tau_s", "cpu_s")]
    rows = []
    n = len(seeds)
    for k in keys:
        a = np.array([old["seeds"][s][k] for s in seeds], float)
        b = np.array([new["seeds"][s][k] for s in seeds], float)
        d = b - a
        sd = d.std(ddof=1) / np.sqrt(n)
        if k == "time_s":
            continue
        z = d.mean() / sd if sd > 0 else (0.0 if d.mean() == 0 else np.inf)
        p = 2 * stats.t.sf(abs(z), n - 1) if np.isfinite(z) else 0.0
        rows.append(dict(name=k, n=n, old=a.mean(), old_sem=a.std(ddof=1) / np.sqrt(n),
                         new=b.mean(), new_sem=b.std(ddof=1) / np.sqrt(n), diff=d.mean(),
                         diff_sem=sd, z=z, p=p,
                         rel=d.mean() / a.mean() if a.mean() != 0 else np.nan,
                         rel_sem=sd / abs(a.mean()) if a.mean() != 0 else np.nan))
    return rows


def fmt(v):
    return "0" if v == 0 else (f"{v:.4g}" if 1e-3 <= abs(v) < 1e5 else f"{v:.4e}")


def table(rows, skip_profiles=True):
    lines = ["| observable | old mean ± SEM | new mean ± SEM | new − old ± SEM | rel. diff | z | p |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        if skip_profiles and r["name"].startswith("profile"):
            continue
        flag = " **!**" if abs(r["z"]) > 3 else ""
        lines.append(f"| {r['name']} | {fmt(r['old'])} ± {fmt(r['old_sem'])} | {fmt(r['new'])} ± "
                     f"{fmt(r['new_sem'])} | {fmt(r['diff'])} ± {fmt(r['diff_sem'])} | "
                     f"{100 * r['rel']:+.2f} ± {100 * r['rel_sem']:.2f} % | {r['z']:+.2f}{flag} | "
                     f"{r['p']:.3f} |")
    return "\n".join(lines)


def profile_summary(old, new):
    """Per-layer profiles: z by layer, and Hotelling's T^2 test of the paired difference
    vector (the layers are strongly correlated, so a sum of z^2 would overstate significance).
    The shape (fractions summing to 1) drops its last layer to keep the covariance regular."""
    from scipy import stats
    out = []
    seeds = [s for s in old["seeds"] if s in new["seeds"]]
    keys0 = list(old["seeds"][seeds[0]])
    for stat in ("profile_mean2h", "profile_end", "profile_shape2h"):
        for n in ("Li", "K"):
            keys = [k for k in keys0 if k.startswith(f"{stat}[{n},")]
            if not keys:
                continue
            a = np.array([[old["seeds"][s][k] for k in keys] for s in seeds])
            b = np.array([[new["seeds"][s][k] for k in keys] for s in seeds])
            d = b - a
            ns = len(seeds)
            sem = d.std(axis=0, ddof=1) / np.sqrt(ns)
            z = np.where(sem > 0, d.mean(axis=0) / np.where(sem > 0, sem, 1), 0.0)
            use = d[:, :-1] if stat == "profile_shape2h" else d
            use = use[:, use.std(axis=0) > 0]
            p_dim = use.shape[1]
            if ns > p_dim + 1:
                dm = use.mean(axis=0)
                S = np.cov(use, rowvar=False)
                T2 = ns * dm @ np.linalg.solve(S, dm)
                F = (ns - p_dim) / (p_dim * (ns - 1)) * T2
                pval = float(stats.f.sf(F, p_dim, ns - p_dim))
                test = f"Hotelling T^2 = {T2:.1f}, F({p_dim}, {ns - p_dim}) = {F:.2f}, p = {pval:.3f}"
            else:
                test = "too few seeds for Hotelling's T^2"
            out.append((stat, n, a.mean(axis=0), b.mean(axis=0), z, test))
    return out


def n_ions_of(cfg):
    """Ions per species of the periodic runs (as the engine computes them)."""
    n = int(round(0.9 * cfg["L"] ** 3))
    n_nat = int(round(cfg["x"] * n))
    return [n_nat] if n_nat == n else [n_nat, n - n_nat]


def asymmetries(run):
    """Per seed and species: net hops / all hops along x, y, z (0 expected), from the drift."""
    cfg = run["cfg"]
    names = ["Li", "K"][:len(n_ions_of(cfg))]
    out = {}
    for s, r in run["seeds"].items():
        for n, N in zip(names, n_ions_of(cfg)):
            hops = {"x": r[f"rate_fwd[{n}]"] + r[f"rate_bwd[{n}]"], "y": r[f"rate_lat[{n}]"] / 2,
                    "z": r[f"rate_lat[{n}]"] / 2}   # y and z share the lateral hops (approx.)
            for d in "xyz":
                out.setdefault(f"asym_{d}[{n}]", []).append(r[f"drift_{d}[{n}]"] * N / hops[d])
    return {k: np.array(v) for k, v in out.items()}


def drift_check(args):
    """Drift of the equilibrium runs: one-sample test against 0 per engine (all seeds)."""
    from scipy import stats
    lines = ["## drift check (periodic equilibrium: net hops / hops along each axis, 0 expected)",
             "", "| scenario | engine | seeds | observable | mean ± SEM | z | p |", "|---|---|---|---|---|---|---|"]
    for sc in [s for s in args.scenarios.split(",") if SCENARIOS[s]["kind"] == "eq"]:
        fo, fn = (os.path.join(args.out, f"{sc}_{t}.json") for t in ("old", "new"))
        fd = os.path.join(args.out, f"{sc}_drift_new.json")
        n_extra = DRIFT_EXTRA.get(sc, 0)
        if n_extra and not args.report_only:
            seeds = list(range(SEED0[sc] + 500, SEED0[sc] + 500 + n_extra))
            run_worker(args.new, sc, seeds, fd)
        runs = {"old": [json.load(open(fo))], "new": [json.load(open(fn))]}
        if n_extra and os.path.exists(fd):
            runs["new"].append(json.load(open(fd)))
        for eng, rr in runs.items():
            asy = [asymmetries(r) for r in rr]
            for k in asy[0]:
                v = np.concatenate([a[k] for a in asy])
                m, e = v.mean(), v.std(ddof=1) / np.sqrt(v.size)
                z = m / e
                p = 2 * stats.t.sf(abs(z), v.size - 1)
                flag = " **!**" if abs(z) > 3 else ""
                lines.append(f"| {sc} | {eng} | {v.size} | {k} | {m:+.2e} ± {e:.2e} | {z:+.2f}{flag} | {p:.3f} |")
    return "\n".join(lines)


BEAM_ADJUSTED = ("front_in/s[K]", "front_out/s[K]", "K_hops_per_K_ion_per_s", "hop_lateral/s[K]",
                 "inventory_K_mean2h", "profile_mean2h[K,0]", "profile_mean2h[Li,0]",
                 "K_front_in_per_beam")


def beam_adjusted(old, new, keys=BEAM_ADJUSTED):
    """Driven runs: paired differences with the beam-count difference as control variate.

    The number of beam arrivals is Poisson(R T) in both engines (constant rate, independent of
    the lattice), so its paired difference has mean 0 whatever the engines do; regressing the
    paired difference of an observable on it (d = alpha + beta db) removes the share of the
    noise the beam drives, and alpha estimates the engine difference."""
    from scipy import stats
    seeds = [s for s in old["seeds"] if s in new["seeds"]]
    g = lambda run, k: np.array([run["seeds"][s][k] for s in seeds], float)
    db = g(new, "beam_count_end") - g(old, "beam_count_end")
    X = np.column_stack([np.ones_like(db), db])
    lines = ["| observable | new − old (raw) | z | new − old (beam-adjusted) | z | p |", "|---|---|---|---|---|---|"]
    for k in keys:
        a, d = g(old, k), g(new, k) - g(old, k)
        coef = np.linalg.lstsq(X, d, rcond=None)[0]
        r = d - X @ coef
        se = np.sqrt(r @ r / (d.size - 2) * np.linalg.inv(X.T @ X)[0, 0])
        zr = d.mean() / (d.std(ddof=1) / np.sqrt(d.size))
        za = coef[0] / se
        lines.append(f"| {k} | {100 * d.mean() / a.mean():+.2f} ± {100 * d.std(ddof=1) / np.sqrt(d.size) / a.mean():.2f} % "
                     f"| {zr:+.2f} | {100 * coef[0] / a.mean():+.2f} ± {100 * se / a.mean():.2f} % | {za:+.2f} | "
                     f"{2 * stats.t.sf(abs(za), d.size - 2):.3f} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- orchestration
def run_worker(root, scenario, seeds, out, taus=None, duration=None):
    cmd = ["nice", "-n", "10", sys.executable, os.path.abspath(__file__), "worker", "--root", root,
           "--scenario", scenario, "--seeds", ",".join(map(str, seeds)), "--out", out]
    if taus:
        cmd += ["--taus", taus]
    if duration is not None:
        cmd += ["--duration", repr(duration)]
    subprocess.run(cmd, check=True)
    return json.load(open(out))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd")
    w = sub.add_parser("worker")
    w.add_argument("--root", required=True)
    w.add_argument("--scenario", required=True, choices=list(SCENARIOS))
    w.add_argument("--seeds", required=True)
    w.add_argument("--out", required=True)
    w.add_argument("--taus")
    w.add_argument("--duration")
    ap.add_argument("--old")
    ap.add_argument("--new")
    ap.add_argument("--out", default="/tmp/oldnew")
    ap.add_argument("--scenarios", default="driven,eq_trap,eq_mix,eq_metro")
    ap.add_argument("--extra-seeds", type=int, default=0,
                    help="add this many seeds to every scenario (reruns after a red flag)")
    ap.add_argument("--driven-duration", type=float, default=1.0e-3,
                    help="physical duration of the driven runs [s]")
    ap.add_argument("--report-only", action="store_true", help="compare existing result files")
    ap.add_argument("--no-drift-check", action="store_true", help="skip the drift check stage")
    args = ap.parse_args(argv)
    if args.cmd == "worker":
        worker(args)
        return
    os.makedirs(args.out, exist_ok=True)
    report = []
    for sc in args.scenarios.split(","):
        cfg = SCENARIOS[sc]
        seeds = list(range(SEED0[sc], SEED0[sc] + cfg["n_seeds"] + args.extra_seeds))
        fo, fn = (os.path.join(args.out, f"{sc}_{t}.json") for t in ("old", "new"))
        if not args.report_only:
            dur = args.driven_duration if cfg["kind"] == "driven" else None
            old = run_worker(args.old, sc, seeds, fo, duration=dur)
            taus = None
            if cfg["kind"] == "eq":
                taus = os.path.join(args.out, f"{sc}_taus.json")
                json.dump({s: r["tau_s"] for s, r in old["seeds"].items()}, open(taus, "w"))
            run_worker(args.new, sc, seeds, fn, taus=taus, duration=dur)
        old, new = json.load(open(fo)), json.load(open(fn))
        rows = compare(old, new)
        ev_old = sum(r["n_events"] for r in old["seeds"].values())
        ev_new = sum(r["n_events"] for r in new["seeds"].values())
        cpu_old = sum(r["cpu_s"] for r in old["seeds"].values())
        cpu_new = sum(r["cpu_s"] for r in new["seeds"].values())
        head = (f"## {sc}: {len(rows and old['seeds'])} seeds, events recorded old {ev_old:.3e} "
                f"({ev_old / cpu_old / 1e6:.2f} M/s cpu), new {ev_new:.3e} ({ev_new / cpu_new / 1e6:.2f} M/s cpu)")
        report.append(head + "\n\n" + table(rows))
        for stat, n, o, nw, z, test in profile_summary(old, new):
            nd = 4 if stat == "profile_shape2h" else 2
            report.append(f"{stat}[{n}] by layer: old {np.round(o, nd).tolist()}\n"
                          f"  new {np.round(nw, nd).tolist()}\n  z {np.round(z, 2).tolist()}; {test}")
        if cfg["kind"] == "driven":
            report.append("beam-adjusted (control variate: beam-count difference)\n\n" + beam_adjusted(old, new))
        json.dump(rows, open(os.path.join(args.out, f"{sc}_rows.json"), "w"), indent=1, default=float)
    if not args.no_drift_check:
        report.append(drift_check(args))
    text = "\n\n".join(report)
    print(text)
    open(os.path.join(args.out, "report.md"), "w").write(text + "\n")


if __name__ == "__main__":
    main()
