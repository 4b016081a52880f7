"""`cait kmc run|equilibrium`: input file -> KMC engine parameters -> datasets and figures.

Unit conversion happens here (input keys with units -> the engine's SI/eV dataclasses).
A run is crash-safe: every ``[kmc] checkpoint_interval_s`` of wall time, and when SIGINT or
SIGTERM arrives, each replica writes ``kmc_checkpoint_r<k>.npz`` into the output folder; an
interrupted run also writes a valid partial ``kmc.nc`` (status "interrupted") and exits with
128 + signal number. ``--resume`` continues from the checkpoints and ends bitwise equal to the
uninterrupted run (the engine's chunking never changes the trajectory).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from compare import scenario
from compare.errors import ConfigError
from compare.io.outputs import default_output, output_dir
from compare.io.config import load_config
from compare.io.datasets import save_figure, write_dataset
from compare.reports.kmc import equilibrium_figure, profile_figure
from compare.workflows import plateau
from kmc import checkpoint as ck
from kmc import ensemble
from kmc import equilibrium as eqm
from kmc.engine import Simulation
from kmc.errors import KMCError


# ------------------------------------------------------------------------------ paths
def _out_dir(cfg, out_dir) -> Path:
    return Path(out_dir) if out_dir is not None else default_output(cfg)


def checkpoint_path(out_dir, replica: int) -> Path:
    return Path(out_dir) / f"kmc_checkpoint_r{replica}.npz"


# ------------------------------------------------------------------------------ cost
WARMUP_EVENTS = 200_000   # the probe skips these: the lattice relaxes from its initial filling
PROBE_EVENTS = 800_000    # ... and measures the event rate over these


def estimate_cost(params, seed, n_replicas, n_workers=None, probe_events=PROBE_EVENTS,
                  warmup_events=WARMUP_EVENTS):
    """Measured cost estimate of a CAIT run on this machine.

    Builds one replica, runs `warmup_events` events (numba compiled, the initial filling
    relaxes: over the first 200 000 events the rate per simulated second is up to 1.7x the
    later one) and then `probe_events` events, and extrapolates with the event rate seen over
    the probe: events ~ rate x simulated time.

    Returns
    -------
    dict
        ``events_per_replica``, ``events_per_s`` (CPU, this machine now), ``seconds`` (wall,
        replicas spread over ``n_workers``, default min(replicas, cores)).
    """
    sim = Simulation(params, seed)
    sim.advance(1000)                                        # compile / load the kernel
    if sim.advance(max(int(warmup_events) - 1000, 0)):       # the filling relaxes
        # a run shorter than the warm-up: its events are known; time them again (compiled)
        sim = Simulation(params, seed)
        c0 = time.process_time()
        sim.run()
        n = events = sim.n_events
    else:
        t0, ev0, c0 = sim.time_s, sim.n_events, time.process_time()
        sim.advance(probe_events)
        n = sim.n_events - ev0
        dt = sim.time_s - t0
        events = (n / dt if dt > 0 else sim.total_rate()) * sim.t_end
    cpu = max(time.process_time() - c0, 1e-6)
    workers = n_workers or ensemble.default_n_workers(n_replicas)
    speed = max(n, 1) / cpu
    waves = -(-int(n_replicas) // int(workers))
    return {"events_per_replica": float(events), "events_per_s": float(speed),
            "seconds": float(events / speed * waves)}


def _format_duration(seconds) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


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
        checkpoint, note = ck.load_latest(path, expected_hash=h)
        if note:
            print(f"cait: warning: replica {replica}: {note}", file=sys.stderr, flush=True)
        sim = Simulation(params, seed, state=checkpoint.arrays)
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
    failure = ""
    try:
        while True:
            n = chunk_events
            if stop_after_events is not None:
                n = max(0, min(n, int(stop_after_events) - sim.n_events))
            try:
                finished = sim.advance(n) if n > 0 else sim.done
            except KMCError as exc:
                # e.g. a field runaway: the state is the one before the failing event; keep
                # what the run had (the dataset says "failed" and why)
                failure = str(exc)
                break
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
    elif failure:
        sim.status = "failed"
    else:
        ck.remove_checkpoint(path)  # finished: a stale checkpoint must not be resumed later
    ds = sim.to_dataset()
    ds.attrs["replica"] = int(replica)
    ds.attrs["message"] = failure
    return ds


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
    n_rep = scenario.replicas(cfg, replicas)
    params = scenario.kmc_params(cfg)   # checked before the output folder or a worker exists
    note = scenario.filling_note(params)
    if note:
        print(f"cait: note: {note}", file=sys.stderr, flush=True)
    if not quiet and not resume:
        seeds0 = ensemble.replica_seeds(int(cfg.kmc.seed), 1)
        est = estimate_cost(params, int(seeds0[0]), n_rep)
        print(f"cait kmc run: about {est['events_per_replica']:.2g} events per replica, "
              f"~{_format_duration(est['seconds'])} at the {est['events_per_s'] / 1e6:.2f} M "
              f"events/s measured now on this machine (extrapolated from {PROBE_EVENTS:,} "
              f"events after a warm-up of {WARMUP_EVENTS:,}; the progress bar updates it)"
              + ("; the rate changes as the simulated depth follows the front (buffer_layers)"
                 if params.buffer_layers else ""), flush=True)
    with output_dir(out):
        seeds = ensemble.replica_seeds(int(cfg.kmc.seed), n_rep)
        if resume:
            missing = [r for r in range(n_rep)
                       if not any(p.exists() for p in (checkpoint_path(out, r),
                                                       ck.previous_path(checkpoint_path(out, r))))]
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
                                            scheduler_address=scheduler, stop=flag,
                                            connect_timeout_s=float(cfg.kmc.scheduler_timeout_s))
        failed = [r for r in results if r.attrs.get("status") == "failed"]
        status = ("failed" if failed else "interrupted"
                  if any(r.attrs.get("status") == "interrupted" for r in results) else "ok")
        n_events = [int(r.attrs.get("n_events", 0)) for r in results]
        ds = results[0] if n_rep == 1 else ensemble.merge_replicas(results, seeds=seeds)
        ds.attrs["n_events"] = int(sum(n_events))
        ds.attrs["n_events_per_replica"] = np.asarray(n_events, dtype=np.int64)
        ds.attrs["replica_seeds"] = np.asarray(seeds, dtype=np.int64)
        message = {"interrupted": "interrupted: checkpoints written; continue with --resume",
                   "failed": "; ".join(f"replica {r.attrs['replica']}: {r.attrs['message']}"
                                       for r in failed),
                   "ok": ""}[status]
        ds.attrs["filling_note"] = note
        analyze_plateau(ds, cfg, int(seeds[0]), status, quiet)
        write_dataset(ds, out / "kmc.nc", cfg=cfg, seed=seeds, status=status, message=message)
        if ds.sizes.get("time", 0) > 0:
            save_figure(profile_figure(ds, cfg), out / "kmc_profiles.png")
        if failed:
            raise KMCError(f"{message}; what the run had is in {str(out / 'kmc.nc')!r} "
                           f"(status \"failed\")")
        if not quiet:
            print(f"cait kmc run: {status}, {sum(n_events)} events -> {out / 'kmc.nc'}")
        return _exit_code(flag, status)


def analyze_plateau(ds, cfg, seed, status="ok", quiet=False):
    """The plateau variables and the measured mobility ratio (compare/workflows/plateau.py),
    added to a CAIT `ds` in place; one summary line unless `quiet`."""
    plateau.add_plateau(ds, cfg.native.name)
    if status != "ok" or cfg.beam[0].drive == "off":
        return ds
    try:
        plateau.add_mobility_ratio(ds, cfg, int(seed))
    except ConfigError as exc:
        ds.attrs["D_ratio_note"] = str(exc)
    if not quiet:
        print(f"cait kmc: plateau {ds.attrs['plateau_level']:.3g} +- "
              f"{ds.attrs['plateau_sem']:.2g} at front {ds.attrs['front_position_nm']:.3g} nm"
              f" (change over the last third {ds.attrs['plateau_change']:+.2g} +- "
              f"{ds.attrs['plateau_change_sem']:.2g}); D_native,bulk / D_foreign = "
              f"{ds.attrs.get('D_ratio_native_over_foreign', float('nan')):.3g} +- "
              f"{ds.attrs.get('D_ratio_sem', float('nan')):.2g}", flush=True)
    return ds


def reanalyze(kmc_path, quiet=False) -> int:
    """`cait kmc plateau KMC_NC`: (re)compute the plateau analysis of a finished CAIT run from
    its own dataset and input text (runs written before the analysis existed, or after the
    analysis changed), and rewrite the file atomically. The run's command line is kept as
    ``run_command_line``."""
    from compare.io.config import parse_text
    from compare.io.datasets import open_dataset

    path = Path(kmc_path)
    ds = open_dataset(path).load()
    if "input_text" not in ds.attrs or ds.attrs.get("engine") != "kmc" or "concentration" not in ds:
        raise ConfigError(f"{str(path)!r} is not a kmc.nc of `cait kmc run` (no input text or "
                          f"no concentration)")
    cfg = parse_text(ds.attrs["input_text"])
    ds.attrs.setdefault("run_command_line", ds.attrs.get("command_line", ""))
    seeds = np.atleast_1d(ds.attrs.get("replica_seeds", ds.attrs.get("seed", 0)))
    status = ds.attrs.get("status", "ok")
    analyze_plateau(ds, cfg, int(seeds[0]), status, quiet)
    with output_dir(path.parent):
        write_dataset(ds, path, cfg=cfg, seed=seeds.tolist(), status=status,
                      message=ds.attrs.get("message", ""))
    if not quiet:
        print(f"cait kmc plateau: -> {path}")
    return 0


MIN_HOPS_PER_BLOCK = 100  # tracer blocks shorter than this many hops per ion bias D* high


def short_blocks_note(ds) -> str:
    """One line when the tracer blocks hold fewer than MIN_HOPS_PER_BLOCK hops per ion: the
    block estimator of D* is then biased high (measured: f = 0.704 instead of 0.693, +1.6 %
    or 25 SE, at 5.6 hops per ion; docs/kmc_workflow.md). Empty otherwise."""
    hops = np.asarray(ds["hops_per_ion_per_block"].values, dtype=float)
    if not np.isfinite(hops).any() or np.nanmin(hops) >= MIN_HOPS_PER_BLOCK:
        return ""
    low = float(np.nanmin(hops))
    return (f"tracer blocks hold {low:.3g} hops per ion (fewer than {MIN_HOPS_PER_BLOCK}): D* "
            f"from such short blocks is biased high (+1.6 % measured at 5.6 hops per ion); "
            f"raise [kmc] eq_events_per_block by {MIN_HOPS_PER_BLOCK / low:.2g}x or more")


MIN_IONS = 150  # fewer ions of a species per replica lattice: its D_eff is not reproducible


def few_ions_note(ds, cfg) -> str:
    """One line naming the compositions where a species has fewer than MIN_IONS ions on the
    ``eq_size^3`` lattice of a replica, empty otherwise. Measured on the 250 meV plateau
    landscape, 10^3 lattice (45-135 natives at x = 0.05-0.15): the native D_eff of three runs
    that differ only in the K mobility spread 5-45x, far beyond their 10-30 % SEMs; at x = 0.2
    (180 natives) they agreed within 1.4x (docs/plateau.md)."""
    n_occupied = int(cfg.kmc.eq_size) ** 3 * (1.0 - float(cfg.material.vacancy_fraction))
    names = [str(v) for v in ds.species.values]
    parts = []
    for x in np.asarray(ds.x.values, dtype=float):
        for i, frac in enumerate((x, 1.0 - x)[:len(names)]):
            n_ions = n_occupied * frac
            d = ds.D_eff.sel(species=names[i], x=x).values
            if 0 < n_ions < MIN_IONS and np.isfinite(d):
                parts.append(f"x = {x:g}: {n_ions:.0f} {names[i]}")
    if not parts:
        return ""
    return (f"few ions per replica lattice ({'; '.join(parts)}; fewer than {MIN_IONS}): such "
            f"D_eff values describe a handful of ions in one small landscape and were not "
            f"reproducible (5-45x between runs, beyond their SEM); raise [kmc] eq_size")


def run_equilibrium(input_path, xs, out_dir=None, replicas=None, scheduler=None,
                    quiet=False) -> int:
    """`cait kmc equilibrium`: D*, L, Haven and D_eff over x -> kmc_equilibrium.nc, figure, CSV."""
    cfg = load_config(input_path)
    out = _out_dir(cfg, out_dir)
    n_rep = scenario.replicas(cfg, replicas)
    if any(x < 1.0 for x in xs) and len(cfg.species) < 2:
        raise ConfigError("`--x` below 1 needs a foreign species in the input")
    params = scenario.kmc_equilibrium_params(cfg)   # checked before any worker starts
    with output_dir(out):
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
                                            connect_timeout_s=float(k.scheduler_timeout_s),
                                            stop=flag)
        ds = eqm.summarize_replicas(results)
        status = "interrupted" if any(r.attrs.get("status") == "interrupted" for r in results) else "ok"
        ds.attrs.update(engine="kmc", geometry="periodic", eq_size=int(k.eq_size),
                        n_events=int(sum(int(r.attrs["n_events"]) for r in results)),
                        replica_seeds=np.asarray(seeds, dtype=np.int64),
                        foreign_species=cfg.species[1].name if len(cfg.species) > 1 else "")
        note = short_blocks_note(ds)
        if note:
            print(f"cait: note: {note}", file=sys.stderr, flush=True)
        ds.attrs["block_note"] = note
        few = few_ions_note(ds, cfg)
        if few:
            print(f"cait: note: {few}", file=sys.stderr, flush=True)
        ds.attrs["few_ions_note"] = few
        write_dataset(ds, out / "kmc_equilibrium.nc", cfg=cfg, seed=seeds, status=status,
                      message="interrupted: compositions not reached are missing" if status != "ok" else "")
        save_figure(equilibrium_figure(ds, cfg), out / "kmc_equilibrium.png")
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
