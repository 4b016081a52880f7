"""The bond cap (``[kmc] acceleration = "bond-cap"``, docs/acceleration.md) against plain KMC.

The cap slows both directions of a shallow bond by the same factor, so equilibrium must stay
exact and only the dynamics may change. Three checks, each with the cap at its default
``bond_cap_kT = 0`` (the hop rate of a native at the bulk Fermi level) unless said otherwise:

(a) equilibrium occupancy is the Fermi-Dirac function of the realised landscape, with a cap
    (bond_cap_kT = 3.5 on a half-filled lattice) that slows a third of the bonds (exact:
    detailed balance is kept bond by bond): tests/validation/test_kmc_equilibrium.py;
(b) tracer D* and D_eff (from the Onsager L) of the bundled K-CAIT landscape at x = 1 and
    x = 0.5 agree with plain KMC within N_SE combined standard errors (blocks of the same
    simulated length); the cap saves events at x = 1;
(c) K-CAIT profiles (bundled landscape, 8 x 8 section, moving back): the foreign inventory, its
    mean depth and the native fraction of the first three layers agree with plain KMC within
    N_SE combined SE (replicas) at every output time, as do the layer profiles (rms z).

Measured values (this machine, seeded): docs/acceleration.md "The bond cap".
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from kmc.engine import Simulation
from kmc.equilibrium import EquilibriumOptions, block_length_s, equilibrium_params, measure

N_SE = 3.0
ROOT = Path(__file__).resolve().parents[2]
CAP = dict(acceleration="bond-cap", bond_cap_kT=0.0)


def _k_cait_params():
    from compare import scenario
    from compare.io.config import load_config

    return scenario.kmc_params(load_config(ROOT / "inputs" / "li3b7o12_kmc_k_cait.toml"))


def _equilibrium(params, x, seeds, events_per_block):
    """Pooled D* and D_eff blocks of both species, the events run and the mean block length."""
    runs = [measure(params, x, s, _options(e)) for s, e in zip(seeds, events_per_block)]
    out = {}
    for sp in runs[0].species.values:
        for q in ("D_star", "D_eff"):
            v = np.concatenate([r[q].sel(species=sp).values for r in runs])
            if np.all(np.isfinite(v)):
                out[f"{q} {sp}"] = v
    block = np.mean([float(r.block_length.mean()) for r in runs])
    return out, sum(int(r.attrs["n_events"]) for r in runs), block


def _options(events_per_block):
    return EquilibriumOptions(n_blocks=8, events_per_block=int(events_per_block),
                              n_equilibration_events=100_000)


@pytest.mark.slow
@pytest.mark.parametrize("x", [1.0, 0.5])
def test_tracer_and_collective_diffusion_agree_with_plain_kmc(x):
    base = dataclasses.replace(_k_cait_params(), nx=8, ny=8, nz=8, phases=(),
                               geometry="periodic", output_times_s=())
    capped_p = dataclasses.replace(base, **CAP)
    seeds = (11, 12, 13, 14)
    n = 1_000_000
    # blocks of the same simulated length, seed by seed: the block length is events per block
    # over the equilibrated event rate (kmc.equilibrium), lower under the cap
    scale = [block_length_s(equilibrium_params(base, x, _options(n)), s, _options(n))
             / block_length_s(equilibrium_params(capped_p, x, _options(n)), s, _options(n))
             for s in seeds]
    plain, ev_plain, t_plain = _equilibrium(base, x, seeds, [n] * len(seeds))
    capped, ev_cap, t_cap = _equilibrium(capped_p, x, seeds, [n * f for f in scale])
    saved = ev_plain / ev_cap
    print(f"x = {x}: block {t_plain:.3g} / {t_cap:.3g} s, events plain / capped {saved:.2f}")
    assert abs(t_cap / t_plain - 1) < 1e-3          # the same blocks
    # the cap is not idle at x = 1 (measured 1.2x); at x = 0.5 the natives sit deeper and it
    # slows few hops (1.03x): there the check is that it does no harm
    assert saved > (1.1 if x == 1.0 else 1.0)
    for k in plain:
        a, b = plain[k], capped[k]
        se = np.hypot(a.std(ddof=1) / np.sqrt(a.size), b.std(ddof=1) / np.sqrt(b.size))
        z = (b.mean() - a.mean()) / se
        print(f"  {k}: plain {a.mean():.3e}, capped {b.mean():.3e}, SE {se:.1e}, z {z:+.2f}")
        assert abs(z) < N_SE, (k, z)
        assert se < 0.3 * a.mean()                  # resolved: the test has power


def _observables(ds):
    """Per output time: K inventory [layers], K mean depth [nm], Li in layers 0-2; profiles."""
    c = ds["concentration"]
    k = c.sel(species="K").values
    li = c.sel(species="Li").values
    depth = ds.depth.values
    inv = k.sum(axis=1)
    mean_depth = np.where(inv > 0, (k * depth).sum(axis=1) / np.maximum(inv, 1e-300), 0.0)
    return np.stack([inv, mean_depth, li[:, :3].mean(axis=1)], axis=1), np.stack([k, li])


@pytest.mark.slow
def test_cait_profiles_agree_with_plain_kmc():
    p0 = _k_cait_params()
    dur = 4.0
    ph = dataclasses.replace(p0.phases[0], duration_s=dur)
    p0 = dataclasses.replace(p0, nx=20, ny=8, nz=8, phases=(ph,), n_slabs=1, buffer_layers=5,
                             output_times_s=tuple(np.linspace(0.0, dur, 5)),
                             record_histograms=False)
    runs = {}
    for name, p in (("plain", p0), ("capped", dataclasses.replace(p0, **CAP))):
        obs, prof, ev = [], [], 0
        for s in range(8):
            ds = Simulation(p, 300 + s).run().to_dataset()
            o, pr = _observables(ds)
            obs.append(o)
            prof.append(pr)
            ev += int(ds.attrs["n_events"])
        runs[name] = (np.array(obs), np.array(prof), ev)
    (a, pa, ea), (b, pb, eb) = runs["plain"], runs["capped"]
    print(f"events plain / capped: {ea / eb:.2f}")
    assert ea / eb > 1.15
    se = np.sqrt(a.var(axis=0, ddof=1) / len(a) + b.var(axis=0, ddof=1) / len(b))
    d = b.mean(axis=0) - a.mean(axis=0)
    t = slice(1, None)                               # t = 0 is the common initial state
    z = d[t] / se[t]
    for name, col in zip(("K inventory", "K mean depth", "Li layers 0-2"), z.T):
        print(f"  {name}: z per output time {np.round(col, 2)}")
    assert np.all(np.abs(z) < N_SE), z
    assert np.all(se[t, :2] < 0.1 * a.mean(axis=0)[t, :2])   # resolved to a few per cent
    sp = np.sqrt(pa.var(axis=0, ddof=1) / len(pa) + pb.var(axis=0, ddof=1) / len(pb))
    ok = sp > 0
    zp = (pb.mean(axis=0) - pa.mean(axis=0))[ok] / sp[ok]
    rms = float(np.sqrt(np.mean(zp ** 2)))
    print(f"  layer values: rms z {rms:.2f}, beyond 2 SE {np.mean(np.abs(zp) > 2):.3f} of {zp.size}")
    assert rms < 1.5
