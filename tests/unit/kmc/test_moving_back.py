"""The moving back reservoir (``buffer_layers``): growth rule, frozen bulk, exactness of the
incremental state and of resume, refused combinations."""

import numpy as np
import pytest

from kmc import _kernel as K
from kmc.engine import Phase, Simulation
from kmc.errors import KMCConfigError

from .test_engine import _params

NX, BUF = 16, 3


def _moving(**kw):
    phases = (Phase("K", 1.5e-6, back_field_V_per_m=3e7, theta_front=0.6,
                    beam_current_A_per_m2=6e6),
              Phase(None, 2e-7, drive="off"))
    base = dict(nx=NX, phases=phases, output_times_s=tuple(np.linspace(0, 1.7e-6, 18)),
                buffer_layers=BUF, n_slabs=1)
    base.update(kw)
    return _params(**base)


def _deepest_foreign(cnt):
    layers = np.flatnonzero(cnt[1:].sum(axis=0) > 0)
    return int(layers[-1]) if layers.size else -1


def test_back_follows_the_front_and_the_frozen_bulk_stays_as_drawn():
    sim = Simulation(_moving(), seed=4)
    occ0 = sim.state["occ"].copy()
    assert sim.nx_active == BUF
    sim.run(chunk_events=7000)
    nxa = sim.state["r_nxa"]
    assert sim.nx_active > BUF + 3            # the front moved the back several times
    assert np.all(np.diff(nxa) >= 0)
    for k in range(nxa.size):
        deepest = _deepest_foreign(sim.state["r_cnt"][k])
        assert nxa[k] == NX or deepest <= nxa[k] - 1 - BUF
        # layers beyond the back hold their initial fill: exactly n_bg natives
        assert np.all(sim.state["r_cnt"][k][0, nxa[k]:] == sim.n_bg)
    m = sim.m
    assert np.array_equal(sim.state["occ"][sim.nx_active * m:], occ0[sim.nx_active * m:])
    ds = sim.to_dataset()
    assert ds.active_layers.values.tolist() == nxa.tolist()
    # recorded gap fields beyond the back are the back gap's field
    k = int(np.argmax(nxa < NX)) if np.any(nxa < NX) else 0
    assert np.all(ds.field.values[k, nxa[k]:] == ds.field.values[k, nxa[k]])


def test_incremental_state_equals_a_rebuild_after_growth():
    sim = Simulation(_moving(), seed=6)
    grown = 0
    for _ in range(12):
        before = sim.nx_active
        sim.advance(1500)
        grown += sim.nx_active > before
        saved = [x.copy() for x in (sim.wt, sim.ex, sim.top, sim.E, sim.gf, sim.gb, sim.G)]
        sim._sync_S()
        sim.rebuild()
        for x, y in zip(saved, (sim.wt, sim.ex, sim.top, sim.E, sim.gf, sim.gb, sim.G)):
            assert np.array_equal(x, y)
    assert grown >= 2


def test_resumed_run_equals_uninterrupted_run_with_a_moving_back():
    ref = Simulation(_moving(), seed=9).run(chunk_events=10**9)
    sim = Simulation(_moving(), seed=9)
    while not sim.done:
        sim.advance(2345)
        sim = Simulation(_moving(), seed=9, state=sim.checkpoint())   # resume every chunk
    assert ref.nx_active > BUF
    for key in ref.state:
        assert np.array_equal(ref.state[key], sim.state[key]), key


def test_buffer_as_deep_as_the_lattice_is_the_fixed_box():
    a = Simulation(_moving(buffer_layers=NX), seed=2).run()
    b = Simulation(_moving(buffer_layers=0), seed=2).run()
    for key in a.state:
        assert np.array_equal(a.state[key], b.state[key]), key


def test_ions_are_conserved_across_the_moving_back():
    sim = Simulation(_moving(), seed=11)
    n0 = sim.state["cnt"].sum(axis=1).astype(np.int64)
    sim.run()
    c = sim.state["counters"]
    net = (c[:, K.C_FRONT_IN] - c[:, K.C_FRONT_OUT]) + (c[:, K.C_BACK_IN] - c[:, K.C_BACK_OUT])
    assert np.array_equal(sim.state["cnt"].sum(axis=1) - n0, net)
    assert c[0, K.C_BACK_OUT] > 0


@pytest.mark.parametrize("kw, words", [
    (dict(buffer_layers=1), "`buffer_layers` must be 0 (off) or >= 2, got 1"),
    (dict(back="electrode"), "bulk back"),
    (dict(geometry="periodic", phases=()), "open geometry"),
])
def test_moving_back_refuses_what_it_cannot_do(kw, words):
    with pytest.raises(KMCConfigError, match="buffer_layers"):
        Simulation(_moving(**kw), seed=1)
    with pytest.raises(KMCConfigError) as e:
        Simulation(_moving(**kw), seed=1)
    assert words in str(e.value)


def test_moving_back_refuses_a_potentiostatic_phase():
    ph = (Phase("K", 1e-7, drive="potentiostatic", voltage_V=0.2),)
    with pytest.raises(KMCConfigError, match="potentiostatic"):
        Simulation(_moving(phases=ph), seed=1)


def _brute_force_field_avgs(params, seed, n_events):
    """Step one event at a time and integrate the gap fields exactly between output times
    (gaps beyond the active depth: the back gap's field)."""
    sim = Simulation(params, seed)
    nx = params.nx
    out = sim.out_times
    acc = np.zeros(nx + 1)
    t_last = 0.0
    means = {}
    k = 0

    def full(E):
        e = np.empty(nx + 1)
        e[:E.size] = E
        e[E.size:] = E[-1]
        return e

    E_now = full(sim.E)
    for _ in range(n_events):
        t_before = sim.time_s
        sim.advance(1)
        t_new = sim.time_s
        # the state (and field) held on [t_before, t_new); output times inside it close a mean
        while k < out.size and out[k] <= t_new and out[k] > t_before or (k < out.size and out[k] == 0.0):
            tk = out[k]
            acc += E_now * (tk - t_last)
            t0 = out[k - 1] if k > 0 else 0.0
            means[k] = acc / (tk - t0) if tk > t0 else E_now.copy()
            acc[:] = 0.0
            t_last = tk
            k += 1
        acc += E_now * (t_new - t_last)
        t_last = t_new
        E_now = full(sim.E)
    return sim, means


@pytest.mark.parametrize("kw", [dict(), dict(buffer_layers=0),
                                dict(buffer_layers=0, phases=(Phase("K", 1.7e-6, drive="potentiostatic",
                                                                    voltage_V=0.3),))])
def test_field_avg_is_the_exact_time_average(kw):
    p = _moving(**kw)
    sim, means = _brute_force_field_avgs(p, 5, 6000)
    ds = sim.to_dataset()
    assert len(means) >= 3
    for k, m in means.items():
        if k < ds.sizes["time"]:
            np.testing.assert_allclose(ds["field_avg"].values[k], m, rtol=1e-9, atol=1e-6 * np.abs(m).max())
    if not kw:
        assert sim.nx_active > BUF              # the back moved inside the checked intervals
