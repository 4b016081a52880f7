"""KMC throughput benchmark (issue 3, item 12): events/s and bytes/site on L^3 lattices.

Scenario: 10 % vacancies, native + one foreign species, 250 meV FWHM Gaussian SED at 300 K,
galvanostatic drive (fixed beam current ``j = sigma E``, ``sigma`` the measured KMC bulk
conductivity, ``E`` for q E a / kT ~ 0.15; the realised back-half field is reported at the
end), front reservoir open, bulk back reservoir.
Events/s is measured in CPU time of this process (``time.process_time``) after a warm-up
chunk (numba compile excluded), so it reflects one core even on a shared machine; wall time
and the 1-minute load average are reported too (on a loaded machine both rates drop: caches
are shared). Repetitions on the same lattice give the best and the median; on this 2-core
virtual machine single measurements of the same build scatter by +-5 %.
"""
import os
import time
from pathlib import Path

import numpy as np

from kmc.engine import KMCParams, Phase, Simulation, Species
from kmc.lattice import Gaussian

DEFAULT_EVENTS = 1_000_000     # events per repetition
DEFAULT_REPEATS = 5
WARMUP_EVENTS = 100_000
E_FIELD_V_PER_M = 1e7       # q E a / kT = 0.155 at 300 K, a = 0.40 nm
# Ohmic conductivity of this scenario's KMC bulk [S/m], measured (20^3, seed 1, j = 2e3 A/m^2:
# mean back-half field q E a / kT = 0.11 +- 0.05 over 4 M events, sinh-linear regime). The
# mean-field estimate e^2 (1-theta) <Gamma_i n_i> / (a kT) (Fermi-Dirac filling, uncorrelated
# vacant target) gives 1.3e-2 S/m, 65x too high: with it the field ran away (fields > 1000 kT/qa).
SIGMA_KMC_S_PER_M = 2.0e-4


def bench_kmc(sizes=(20, 64, 160), n_events=None, repeats=DEFAULT_REPEATS, seed=1, verbose=True):
    """Run the benchmark; returns a list of dict rows (L, n_sites, events_per_s_cpu, ...).

    Per size: one lattice, a warm-up of ``WARMUP_EVENTS`` (numba compile / cache load, first
    touch of the memory), then ``repeats`` measurements of ``n_events`` events each
    (``None``: ``DEFAULT_EVENTS``). Reported: the best and the median of the repetitions in CPU
    time (``events_per_s_cpu_best`` / ``events_per_s_cpu``), the median in wall time. The
    repetitions continue one trajectory, so they also sample its changing state. ``verbose``
    prints the table row by row.
    """
    n_events = DEFAULT_EVENTS if n_events is None else int(n_events)
    repeats = max(int(repeats), 1)
    rows = []
    fwhm_eV = 0.25
    j = SIGMA_KMC_S_PER_M * E_FIELD_V_PER_M
    species = (Species("Li", E_DC_eV=0.45),
               Species("K", role="foreign", E_DC_eV=0.4, mu_eV=0.0, sigma_eV=0.106, rho=0.5))
    if verbose:
        print(f"{repeats} x {n_events} events per size after {WARMUP_EVENTS} warm-up events; "
              "M events/s in CPU time (best, median) and wall time (median)", flush=True)
        print(f"{'L':>5} {'sites':>9} {'best':>7} {'median':>7} {'wall':>7} {'B/site':>7} "
              f"{'qEa/kT':>7} {'qEa/kT(end)':>11} {'load':>5}", flush=True)
    for L in sizes:
        p = KMCParams(nx=L, ny=L, nz=L, species=species, native_sampler=Gaussian.from_fwhm(fwhm_eV),
                      phases=(Phase("K", 1e9, back_field_V_per_m=E_FIELD_V_PER_M, theta_front=0.5,
                                    beam_current_A_per_m2=j),),
                      output_times_s=(0.0,), record_histograms=False)
        sim = Simulation(p, seed)
        sim.advance(WARMUP_EVENTS)
        cpu, wall = [], []
        for _ in range(repeats):
            c0, w0 = time.process_time(), time.perf_counter()
            sim.advance(n_events)
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
        r = {"L": L, "n_sites": sim.n_sites, "n_events": n_events, "repeats": repeats,
             "events_per_s_cpu_best": n_events / min(cpu),
             "events_per_s_cpu": n_events / float(np.median(cpu)),
             "events_per_s_wall": n_events / float(np.median(wall)),
             "bytes_per_site": sim.nbytes_per_site(), "qEa_over_kT": sim.field_parameter(),
             "load_average": os.getloadavg()[0],
             # realised bulk field at the end (mean over the back half of the gaps)
             "qEa_over_kT_end": float(np.mean(sim.E[L // 2:])) * sim.a_m / sim.kT_eV,
             "beam_current_A_per_m2": j}
        rows.append(r)
        if verbose:
            print(f"{r['L']:>5} {r['n_sites']:>9} {r['events_per_s_cpu_best'] / 1e6:>7.3f} "
                  f"{r['events_per_s_cpu'] / 1e6:>7.3f} {r['events_per_s_wall'] / 1e6:>7.3f} "
                  f"{r['bytes_per_site']:>7.1f} {r['qEa_over_kT']:>7.3f} {r['qEa_over_kT_end']:>11.3f} "
                  f"{r['load_average']:>5.1f}", flush=True)
    return rows


def main():
    return bench_kmc()


if __name__ == "__main__":
    main()


# ----------------------------------------------------------------------------- plateau row
PLATEAU_INPUT = "li3b7o12_kmc_plateau.toml"
STEP_EVENTS = 100_000   # the window is reached in steps of this many events (overshoot < 1 step)


def bench_plateau(input_path, window_fraction=0.04, chunks=8, seed=1, verbose=True,
                  bond_cap_kT=0.0):
    """The accelerations on and off on a CAIT input over the same simulated window, interleaved.

    Three builds of the input: "none" (the whole depth simulated, ``buffer_layers = 0``, plain
    rates), "moving back" (the input's ``[kmc] buffer_layers``, plain rates) and "back + cap"
    (moving back and ``acceleration = "bond-cap"`` at ``bond_cap_kT``; docs/acceleration.md).
    Each runs the first ``window_fraction`` of the schedule in ``chunks`` alternating pieces
    (A, B, C, A, ...: the machine's load hits all alike); reported per build: events, CPU
    seconds, simulated seconds per CPU second, and the speedup over "none". The window is the
    start of the run, where the front is shallow (docs/plateau.md "Cost" has whole runs).
    """
    import dataclasses

    from compare import scenario
    from compare.io.config import load_config

    cfg = load_config(input_path)
    plain = dataclasses.replace(scenario.kmc_params(cfg), acceleration="none")
    builds = {"none": dataclasses.replace(plain, buffer_layers=0),
              "moving back": plain,
              "back + cap": dataclasses.replace(plain, acceleration="bond-cap",
                                                bond_cap_kT=float(bond_cap_kT))}
    t_end = float(sum(ph.duration_s for ph in plain.phases))
    t_w = window_fraction * t_end
    sims = {k: Simulation(dataclasses.replace(p, output_times_s=(0.0,), record_histograms=False),
                          seed) for k, p in builds.items()}
    cpu = {k: 0.0 for k in sims}
    for s in sims.values():
        s.advance(1000)      # compile / cache load outside the timing
    for c in range(1, chunks + 1):
        t_stop = t_w * c / chunks
        for k, s in sims.items():
            c0 = time.process_time()
            while s.time_s < t_stop and not s.done:
                s.advance(STEP_EVENTS)
            cpu[k] += time.process_time() - c0
    rows = {}
    for k, s in sims.items():
        rows[k] = {"events": s.n_events, "cpu_s": cpu[k], "simulated_s": s.time_s,
                   "sim_s_per_cpu_s": s.time_s / max(cpu[k], 1e-9),
                   "events_per_sim_s": s.n_events / max(s.time_s, 1e-300),
                   "events_per_cpu_s": s.n_events / max(cpu[k], 1e-9),
                   "active_layers": s.nx_active}
    for r in rows.values():
        r["speedup"] = r["sim_s_per_cpu_s"] / rows["none"]["sim_s_per_cpu_s"]
        r["event_saving"] = rows["none"]["events_per_sim_s"] / r["events_per_sim_s"]
    speedup = rows["back + cap"]["speedup"]
    if verbose:
        print(f"{Path(input_path).name}: first {t_w:.3g} s of {t_end:.3g} s simulated, "
              f"{chunks} interleaved chunks per build; bond cap at {bond_cap_kT:g} kT")
        print(f"{'acceleration':>12} {'events':>10} {'CPU s':>7} {'sim s/CPU s':>11} "
              f"{'M ev/CPU s':>10} {'layers':>6} {'fewer events':>12} {'speedup':>8}")
        for k, r in rows.items():
            print(f"{k:>12} {r['events']:>10.3g} {r['cpu_s']:>7.2f} {r['sim_s_per_cpu_s']:>11.3g} "
                  f"{r['events_per_cpu_s'] / 1e6:>10.2f} {r['active_layers']:>6} "
                  f"{r['event_saving']:>11.2f}x {r['speedup']:>7.2f}x")
        print("speedup: simulated time per CPU second over \"none\", in this window")
    return {"rows": rows, "speedup": speedup, "window_s": t_w, "t_end_s": t_end}
