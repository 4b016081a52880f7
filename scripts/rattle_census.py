"""Rattle census: how many KMC events could an exact superbasin method skip? (docs/acceleration.md)

Runs a CAIT input (one replica) to ``--warm`` seconds, logs the next ``--events`` events
(``Simulation.log_events``: origin site, target site, class) and measures the ceiling of two
exact group schemes in the vacancy picture (a group holds one vacancy and its ions; the
vacancy's moves inside the group are the skippable "rattling"):

* **thinned groups**: a group lives until an event involving one of its sites from outside
  (an ion hopping in, or a group ion hopping out); changes of the neighbourhood are handled by
  thinning (bounded rates, null events), so they do not end it. The favourable exact scheme.
* **invalidated groups**: in addition, any occupancy change in the closed neighbourhood of the
  group ends it (exit rates changed: the group is resolved, as in local superbasin KMC).

Groups grow on line up to ``n`` sites; a growth move and an exit are executed, internal moves
skipped. Ceiling = events / (events - skipped), before any overhead (null events of the
thinning, group bookkeeping) and ignoring the gap fields (optimistic). ``--lateral`` restricts
groups to one layer (internal moves then never change a gap field).

Usage::

    python scripts/rattle_census.py inputs/li3b7o12_kmc_k_cait.toml --warm 3 --events 1e7
"""
import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
from numba import njit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@njit
def nbhd(s, nx, ny, nz, out):
    m = ny * nz
    l = s // m; r = s - l * m; y = r // nz; z = r - y * nz
    n = 0
    out[n] = s; n += 1
    if l > 0:
        out[n] = s - m; n += 1
    if l < nx - 1:
        out[n] = s + m; n += 1
    out[n] = l * m + ((y + 1) % ny) * nz + z; n += 1
    out[n] = l * m + ((y - 1) % ny) * nz + z; n += 1
    out[n] = l * m + y * nz + (z + 1) % nz; n += 1
    out[n] = l * m + y * nz + (z - 1) % nz; n += 1
    return n


@njit
def invalidated_groups(log, nx, ny, nz, N, nmax, lateral_only):
    E = log.shape[0]
    vid = np.full(N, -1, np.int64)        # vacancy id on each site
    # initial vacancies: unknown -> assign ids lazily
    free = np.arange(4 * N - 1, -1, -1).astype(np.int64)
    nfree = 4 * N
    gsites = np.full((4 * N, nmax), -1, np.int64)  # group sites per vacancy id
    gn = np.zeros(4 * N, np.int64)
    gint = np.zeros(4 * N, np.int64)
    watch_gen = np.full(N, -1, np.int64)     # last group touching site (by vacancy id), simple:
    # for each site, the vacancy ids whose group neighbourhood contains it (<= 8 per site)
    W = 16
    watch = np.full((N, W), -1, np.int64)
    internal = 0
    groups = 0
    buf = np.zeros(16, np.int64)
    for i in range(E):
        k = log[i, 0]; v = log[i, 1]; c = log[i, 2]
        # vacancy ids involved
        a = -1
        if k >= 0 and v >= 0:
            a = vid[v]
            if a < 0:
                nfree -= 1; a = free[nfree]; gn[a] = 0
        # end other groups watching k or v
        for s in (k, v):
            if s < 0:
                continue
            for q in range(W):
                g = watch[s, q]
                if g >= 0 and g != a:
                    # end group g
                    gn[g] = 0
        if k >= 0 and v >= 0:
            # vacancy a moves v -> k
            inside = False
            for q in range(gn[a]):
                if gsites[a, q] == k:
                    inside = True
            ok_dir = (not lateral_only) or c == 2
            if gn[a] > 0 and inside and ok_dir:
                internal += 1
            elif gn[a] > 0 and gn[a] < nmax and ok_dir:
                # grow the group with k (its rates change: treat as internal if the group grows
                # on-line? no: count the growth move as executed)
                gsites[a, gn[a]] = k
                gn[a] += 1
                n = nbhd(k, nx, ny, nz, buf)
                for q in range(n):
                    s = buf[q]
                    for w in range(W):
                        if watch[s, w] == -1 or watch[s, w] == a:
                            watch[s, w] = a
                            break
            else:
                # exit or start: a new group {v, k}
                groups += 1
                gn[a] = 0
                if ok_dir:
                    gsites[a, 0] = v; gsites[a, 1] = k; gn[a] = 2
                    for s in (v, k):
                        n = nbhd(s, nx, ny, nz, buf)
                        for q in range(n):
                            t = buf[q]
                            for w in range(W):
                                if watch[t, w] == -1 or watch[t, w] == a:
                                    watch[t, w] = a
                                    break
            vid[k] = a; vid[v] = -1
        elif v >= 0:
            if vid[v] >= 0:
                gn[vid[v]] = 0
                free[nfree] = vid[v]; nfree += 1
            vid[v] = -1
        elif k >= 0:
            nfree -= 1; vid[k] = free[nfree]; gn[vid[k]] = 0
        # lazily clean watch entries of ended groups
        for s in (k, v):
            if s < 0:
                continue
            for q in range(W):
                g = watch[s, q]
                if g >= 0 and gn[g] == 0:
                    watch[s, q] = -1
    return internal, groups


@njit
def thinned_groups(log, N, nmax, lateral_only):
    E = log.shape[0]
    gid = np.full(N, -1, np.int64)       # group of each site
    gsz = np.zeros(N + 1, np.int64)
    gs = np.full((N + 1, nmax), -1, np.int64)
    gvac = np.full(N + 1, -1, np.int64)  # vacancy site of the group
    free = np.arange(N, -1, -1).astype(np.int64)
    nf = N + 1
    internal = 0
    for i in range(E):
        k = log[i, 0]; v = log[i, 1]; c = log[i, 2]
        hop = k >= 0 and v >= 0
        ok = (not lateral_only) or c == 2
        g = gid[v] if v >= 0 else -1
        if hop and g >= 0 and gvac[g] == v and ok:
            # the group's vacancy moves v -> k
            if gid[k] == g:
                internal += 1
                gvac[g] = k
                continue
            if gid[k] < 0 and gsz[g] < nmax:
                gs[g, gsz[g]] = k; gsz[g] += 1; gid[k] = g; gvac[g] = k
                continue
        # end groups involving k or v
        for s in (k, v):
            if s >= 0 and gid[s] >= 0:
                h = gid[s]
                for q in range(gsz[h]):
                    gid[gs[h, q]] = -1
                gsz[h] = 0
                free[nf] = h; nf += 1
        if hop and ok:
            nf -= 1; h = free[nf]
            gs[h, 0] = v; gs[h, 1] = k; gsz[h] = 2; gid[v] = h; gid[k] = h; gvac[h] = k
    return internal



def main(argv=None):
    from compare import scenario
    from compare.io.config import load_config
    from kmc.engine import Simulation

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input", type=Path)
    ap.add_argument("--warm", type=float, default=3.0, help="simulated seconds before the log")
    ap.add_argument("--events", type=float, default=1e7, help="events logged")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sizes", type=int, nargs="+", default=[2, 3, 4, 8])
    a = ap.parse_args(argv)
    p = scenario.kmc_params(load_config(a.input))
    sim = Simulation(p, a.seed)
    while sim.time_s < a.warm and not sim.done:
        sim.advance(1_000_000)
    log = sim.log_events(int(a.events))
    E = log.shape[0]
    nxa = sim.nx_active
    print(f"{a.input.name}: t = {sim.time_s:.4g} s, {E} events logged, active layers {nxa}; "
          f"hops {np.mean((log[:, 0] >= 0) & (log[:, 1] >= 0)):.3f}, lateral "
          f"{np.mean(log[:, 2] == 2):.3f}")
    print(f"{'scheme':>12} {'bonds':>8} {'n':>3} {'skipped':>8} {'ceiling':>8}")
    N = sim.n_sites
    for lat in (1, 0):
        for n in a.sizes:
            for name in ("thinned", "invalidated"):
                if name == "thinned":
                    skipped = thinned_groups(log, N, n, lat)
                else:
                    skipped, _ = invalidated_groups(log, nxa, p.ny, p.nz, N, n, lat)
                print(f"{name:>12} {'lateral' if lat else 'any':>8} {n:>3} {skipped / E:>8.3f} "
                      f"{E / (E - skipped):>7.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
