"""`cait kmc run|equilibrium`: input file -> KMC engine parameters -> datasets and figures.

Unit conversion happens here (input keys with units -> the engine's SI/eV dataclasses).
A run is crash-safe: every ``[kmc] checkpoint_interval_s`` of wall time, and when SIGINT or
SIGTERM arrives, each replica writes ``kmc_checkpoint_r<k>.npz`` into the output folder; an
interrupted run also writes a valid partial ``kmc.nc`` (status "interrupted") and exits with
128 + signal number. ``--resume`` continues from the checkpoints and ends bitwise equal to the
uninterrupted run (the engine's chunking never changes the trajectory).
"""
from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import scipy.constants as sc
import xarray as xr

from compare.io.config import load_config
from compare.errors import ConfigError
from compare.io.datasets import save_figure, write_dataset
from kmc import checkpoint as ck
from kmc import ensemble
from kmc import equilibrium as eqm
from kmc.engine import KMCParams, Phase, Simulation, Species

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


# ------------------------------------------------------------------------------ parameters
def params_from_config(cfg) -> KMCParams:
    """Engine parameters of the input's CAIT scenario (open geometry, beam schedule)."""
    from compare.workflows.run_sed import sed_from_config

    native_fwhm = float(cfg.sed.fwhm_eV)
    species = []
    for s in cfg.species:
        fwhm = native_fwhm if s.site_fwhm_eV < 0 else float(s.site_fwhm_eV)
        species.append(Species(name=s.name, role=s.role, E_DC_eV=float(s.E_DC_eV),
                               nu_Hz=float(s.attempt_frequency_Hz), mu_eV=float(s.site_mu_eV),
                               sigma_eV=fwhm / FWHM_PER_SIGMA, rho=float(s.site_correlation)))
    f_vac = float(cfg.material.vacancy_fraction)

    def value(v):
        return 0.0 if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)

    # galvanostatic: the KMC fixes the BEAM CURRENT j = sigma_bulk E_back, with the ohmic
    # conductivity the NPP solver gives the bulk (sigma = e^2 n_bulk D_native / kT), so both
    # engines carry the same current; the KMC's bulk field then follows from its own D.
    n_bulk_m3 = float(cfg.material.n_bulk_cm3) * 1e6
    D_native_m2_s = float(cfg.native.D_cm2_s) * 1e-4
    sigma_bulk = sc.e ** 2 * n_bulk_m3 * D_native_m2_s / (sc.k * float(cfg.material.temperature_K))
    phases = tuple(Phase(species=ph.species or None, duration_s=float(ph.duration_s),
                         drive=ph.drive, back_field_V_per_m=value(ph.back_field_V_per_m),
                         voltage_V=value(ph.voltage_V),
                         theta_front=(1.0 - f_vac) if ph.theta_front < 0 else float(ph.theta_front),
                         beam_current_A_per_m2=(sigma_bulk * value(ph.back_field_V_per_m)
                                                if ph.drive == "galvanostatic" else 0.0))
                   for ph in cfg.beam)
    k = cfg.kmc
    return KMCParams(nx=int(k.nx), ny=int(k.ny), nz=int(k.nz), species=tuple(species),
                     native_sampler=sed_from_config(cfg),
                     n_bulk_m3=float(cfg.material.n_bulk_cm3) * 1e6, vacancy_fraction=f_vac,
                     temperature_K=float(cfg.material.temperature_K),
                     eps_r=float(cfg.material.eps_r), rate_model=k.rate_model,
                     selector=k.selector, back=cfg.sample.back, phases=phases,
                     output_times_s=tuple(float(t) for t in cfg.output_times_s),
                     n_energy_bins=int(cfg.output.n_energy_bins),
                     n_slabs=min(int(cfg.output.n_slabs), int(k.nx)),
                     energy_range_eV=_energy_range(species, sed_from_config(cfg)))


def _energy_range(species, native_sed, tail=1e-5, n_sigma=4.5) -> tuple:
    """Energy window [eV] of the populated-SED histograms: every landscape's sites but a
    fraction ~`tail` fall inside (native: SED quantiles; foreign: mu +- n_sigma sigma)."""
    lo = float(native_sed.ppf(tail))
    hi = float(native_sed.ppf(1.0 - tail))
    for s in species[1:]:
        lo = min(lo, s.mu_eV - n_sigma * s.sigma_eV)
        hi = max(hi, s.mu_eV + n_sigma * s.sigma_eV)
    return (lo, hi)


def _out_dir(cfg, out_dir) -> Path:
    if out_dir is not None:
        return Path(out_dir)
    stem = Path(cfg.path).stem if cfg.path else "kmc"
    return Path("outputs") / stem


def checkpoint_path(out_dir, replica: int) -> Path:
    return Path(out_dir) / f"kmc_checkpoint_r{replica}.npz"


# ------------------------------------------------------------------------------ one replica
class _Progress:
    """tqdm bar over simulated time with events/s; a no-op when disabled."""

    def __init__(self, sim, enabled, desc):
        self.bar = None
        t_end = sim.t_end
        if enabled:
            from tqdm import tqdm
            self.bar = tqdm(total=float(t_end), desc=desc, unit="s", unit_scale=True,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.3g}/{total:.3g} s "
                                       "[{elapsed}<{remaining}{postfix}]")
        self.t0 = time.monotonic()
        self.ev0 = sim.n_events

    def update(self, sim):
        if self.bar is None:
            return
        rate = (sim.n_events - self.ev0) / max(time.monotonic() - self.t0, 1e-9)
        self.bar.n = min(sim.time_s, self.bar.total)
        self.bar.set_postfix_str(f"{rate / 1e6:.2f} M events/s", refresh=False)
        self.bar.refresh()

    def close(self):
        if self.bar is not None:
            self.bar.close()


def kmc_replica(seed, replica, params, out_dir, input_text, resume=False,
                checkpoint_interval_s=600.0, chunk_events=1_000_000, show_progress=False,
                stop=None, stop_after_events=None):
    """Run one replica of a CAIT schedule with checkpoints (top-level: dask ships it).

    Parameters
    ----------
    stop : callable, optional
        Polled between chunks; True -> checkpoint, return the partial dataset (status
        "interrupted").
    stop_after_events : int, optional
        Testing aid: behave as if interrupted once this many events have run (a chunk boundary
        is placed there, which does not change the trajectory).
    """
    path = checkpoint_path(out_dir, replica)
    h = ck.input_hash(input_text, replica=int(replica), seed=int(seed))
    if resume:
        state = ck.load_checkpoint(path, expected_hash=h).arrays
        sim = Simulation(params, seed, state=state)
    else:
        sim = Simulation(params, seed)

    def save():
        ck.save_checkpoint(path, sim.checkpoint(), meta={"time_s": sim.time_s,
                                                          "n_events": sim.n_events,
                                                          "replica": int(replica), "seed": int(seed)},
                           input_hash=h)

    bar = _Progress(sim, show_progress, f"kmc r{replica}")
    last = time.monotonic()
    interrupted = False
    try:
        while True:
            n = chunk_events
            if stop_after_events is not None:
                n = max(0, min(n, int(stop_after_events) - sim.n_events))
            finished = sim.advance(n) if n > 0 else sim.done
            bar.update(sim)
            if finished:
                break
            if (stop is not None and stop()) or (stop_after_events is not None
                                                 and sim.n_events >= stop_after_events):
                interrupted = True
                break
            if checkpoint_interval_s > 0 and time.monotonic() - last >= checkpoint_interval_s:
                save()
                last = time.monotonic()
    finally:
        bar.close()
    if interrupted:
        save()
        sim.status = "interrupted"
    elif path.exists():
        path.unlink()  # finished: a stale checkpoint must not be resumed later
    ds = sim.to_dataset()
    ds.attrs["replica"] = int(replica)
    return ds


# ------------------------------------------------------------------------------ figures
def _profile_figure(ds, cfg):
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


def _equilibrium_figure(ds):
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


# ------------------------------------------------------------------------------ commands
def _exit_code(flag, status) -> int:
    if status != "interrupted":
        return 0
    return 128 + int(flag.signum) if flag.signum else 130


def run_kmc(input_path, out_dir=None, replicas=None, scheduler=None, resume=False, quiet=False,
            stop_after_events=None) -> int:
    """`cait kmc run`: returns the exit code (0 done, 128 + signal when interrupted)."""
    cfg = load_config(input_path)
    out = _out_dir(cfg, out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_rep = int(replicas if replicas is not None else cfg.kmc.replicas)
    if n_rep < 1:
        raise ConfigError(f"`--replicas` must be >= 1, got {n_rep}")
    params = params_from_config(cfg)
    seeds = ensemble.replica_seeds(int(cfg.kmc.seed), n_rep)
    if resume:
        missing = [r for r in range(n_rep) if not checkpoint_path(out, r).exists()]
        if missing:
            raise ck.CheckpointError(
                f"--resume: no checkpoint for replica(s) {missing} in {str(out)!r} "
                f"(expected {checkpoint_path(out, missing[0]).name})")
    kwargs = dict(params=params, out_dir=str(out), input_text=cfg.text, resume=resume,
                  checkpoint_interval_s=float(cfg.kmc.checkpoint_interval_s),
                  chunk_events=int(cfg.kmc.chunk_events), show_progress=not quiet and n_rep == 1,
                  stop_after_events=stop_after_events)
    with ck.interrupt_guard() as flag:
        results = ensemble.run_replicas(kmc_replica, n_rep, int(cfg.kmc.seed), kwargs=kwargs,
                                        scheduler_address=scheduler, stop=flag)
    status = "interrupted" if any(r.attrs.get("status") == "interrupted" for r in results) else "ok"
    n_events = [int(r.attrs.get("n_events", 0)) for r in results]
    ds = results[0] if n_rep == 1 else ensemble.merge_replicas(results, seeds=seeds)
    ds.attrs["n_events"] = int(sum(n_events))
    ds.attrs["n_events_per_replica"] = np.asarray(n_events, dtype=np.int64)
    ds.attrs["replica_seeds"] = np.asarray(seeds, dtype=np.int64)
    message = ("interrupted: checkpoints written; continue with --resume" if status == "interrupted"
               else "")
    write_dataset(ds, out / "kmc.nc", cfg=cfg, seed=seeds, status=status, message=message)
    if ds.sizes.get("time", 0) > 0:
        save_figure(_profile_figure(ds, cfg), out / "kmc_profiles.png")
    if not quiet:
        print(f"cait kmc run: {status}, {sum(n_events)} events -> {out / 'kmc.nc'}")
    return _exit_code(flag, status)


def equilibrium_params_from_config(cfg) -> KMCParams:
    """The CAIT parameters reshaped for `cait kmc equilibrium` (L^3 periodic lattice)."""
    p = params_from_config(cfg)
    L = int(cfg.kmc.eq_size)
    return replace(p, nx=L, ny=L, nz=L, phases=(), output_times_s=(), n_slabs=1)


def run_equilibrium(input_path, xs, out_dir=None, replicas=None, scheduler=None,
                    quiet=False) -> int:
    """`cait kmc equilibrium`: D*, L, Haven and D_eff over x -> kmc_equilibrium.nc, figure, CSV."""
    cfg = load_config(input_path)
    out = _out_dir(cfg, out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_rep = int(replicas if replicas is not None else cfg.kmc.replicas)
    if any(x < 1.0 for x in xs) and len(cfg.species) < 2:
        raise ConfigError("`--x` below 1 needs a foreign species in the input")
    params = equilibrium_params_from_config(cfg)
    k = cfg.kmc
    opt = eqm.EquilibriumOptions(n_blocks=int(k.eq_blocks), events_per_block=int(k.eq_events_per_block),
                                 n_equilibration_events=int(k.eq_equilibration_events),
                                 chunk_events=int(k.chunk_events))
    seeds = ensemble.replica_seeds(int(k.seed), n_rep)
    if not quiet:
        print(f"cait kmc equilibrium: {len(xs)} compositions x {n_rep} replica(s) on a "
              f"{k.eq_size}^3 lattice")
    with ck.interrupt_guard() as flag:
        results = ensemble.run_replicas(eqm.equilibrium_replica, n_rep, int(k.seed),
                                        args=(params, tuple(xs), opt), scheduler_address=scheduler,
                                        stop=flag)
    ds = eqm.summarize_replicas(results)
    status = "interrupted" if any(r.attrs.get("status") == "interrupted" for r in results) else "ok"
    ds.attrs.update(engine="kmc", geometry="periodic", eq_size=int(k.eq_size),
                    n_events=int(sum(int(r.attrs["n_events"]) for r in results)),
                    replica_seeds=np.asarray(seeds, dtype=np.int64),
                    foreign_species=cfg.species[1].name if len(cfg.species) > 1 else "")
    write_dataset(ds, out / "kmc_equilibrium.nc", cfg=cfg, seed=seeds, status=status,
                  message="interrupted: compositions not reached are missing" if status != "ok" else "")
    save_figure(_equilibrium_figure(ds), out / "kmc_equilibrium.png")
    n_bulk_frac = {0: ds.x.values, 1: 1.0 - ds.x.values}
    for i, s in enumerate(ds.species.values[:2]):
        frac = n_bulk_frac[i]
        d = ds.D_eff.sel(species=s).values
        ok = np.isfinite(d)
        rows = sorted(zip(frac[ok], d[ok]))
        text = "fraction,D_cm2_s\n" + "".join(f"{f:.6g},{v:.6e}\n" for f, v in rows)
        (out / f"D_eff_{s}.csv").write_text(text)
    if not quiet:
        print(f"cait kmc equilibrium: {status} -> {out / 'kmc_equilibrium.nc'}")
    return _exit_code(flag, status)
