"""Engine unit tests: selector equivalence, declared update radius, conservation, exact resume."""

import numpy as np
import pytest

from kmc.engine import KMCParams, Phase, Simulation, Species
from kmc.errors import KMCConfigError, KMCError, KMCStateError
from kmc.lattice import Gaussian

SPECIES = (Species("Li", E_DC_eV=0.45), Species("K", role="foreign", E_DC_eV=0.4, mu_eV=0.05,
                                                sigma_eV=0.08, rho=0.6),
           Species("Cs", role="foreign", E_DC_eV=0.32, mu_eV=0.0, sigma_eV=0.1, rho=0.3))


def _phases(beam_A_per_m2=6e6):
    """Galvanostatic (beam ~1e8 arrivals/s at 6e6 A/m^2), off, potentiostatic."""
    return (Phase("K", 2e-7, back_field_V_per_m=3e7, theta_front=0.6,
                  beam_current_A_per_m2=beam_A_per_m2),
            Phase(None, 1e-7, drive="off"),
            Phase("Cs", 2e-7, drive="potentiostatic", voltage_V=0.2, theta_front=0.5))


def _params(**kw):
    base = dict(
        nx=8, ny=4, nz=4, species=SPECIES, native_sampler=Gaussian.from_fwhm(0.25),
        phases=_phases(),
        output_times_s=tuple(np.linspace(0, 5e-7, 6)), n_slabs=2, record_ions=True)
    base.update(kw)
    return KMCParams(**base)


def _arrays(sim):
    return dict(sim.state)


# the bond cap (docs/acceleration.md) 3 kT below the native bulk activation energy: many bonds
# of these small lattices are capped
CAP = dict(acceleration="bond-cap", bond_cap_kT=-3.0)


# (rate model, acceleration): the bond cap needs trap rates
MODELS = [pytest.param("trap", {}, id="trap"), pytest.param("metropolis", {}, id="metropolis"),
          pytest.param("trap", CAP, id="trap-bond-cap")]


@pytest.mark.parametrize("model, accel", MODELS)
def test_linear_selector_gives_the_same_trajectory(model, accel):
    # Metropolis hops run ~1e3 times faster in time: raise the beam to see arrivals
    ph = _phases(6e6 if model == "trap" else 6e9)
    a = Simulation(_params(rate_model=model, phases=ph, **accel), seed=3)
    b = Simulation(_params(rate_model=model, selector="linear", phases=ph, **accel), seed=3)
    for _ in range(4):
        a.advance(3000)
        b.advance(3000)
        assert a.n_events == b.n_events
        assert np.array_equal(a.state["occ"], b.state["occ"])
        assert np.array_equal(a.state["ion_disp"], b.state["ion_disp"])
        assert np.array_equal(a.state["counters"], b.state["counters"])
        # totals are summed in a different order: time agrees to rounding only
        assert a.time_s == pytest.approx(b.time_s, rel=1e-11)
    assert a.state["counters"][:, 3].sum() > 0  # the front reservoir took part
    assert a.state["counters"][1, 7] > 0        # and the beam


@pytest.mark.parametrize("model, accel", MODELS)
@pytest.mark.parametrize("phase", [0, 2])
def test_incremental_update_equals_full_recompute(model, phase, accel):
    sim = Simulation(_params(rate_model=model, **accel), seed=5)
    if phase:
        sim._enter_phase(phase)
    for _ in range(5):
        sim.advance(2000)
        saved = [x.copy() for x in (sim.wt, sim.ex, sim.top, sim.E, sim.gf, sim.gb, sim.G)]
        sim._sync_S()
        sim.rebuild()
        for x, y in zip(saved, (sim.wt, sim.ex, sim.top, sim.E, sim.gf, sim.gb, sim.G)):
            assert np.array_equal(x, y)  # bitwise: no drift, nothing outside the update radius


def test_ions_are_conserved_across_boundaries():
    sim = Simulation(_params(), seed=11)
    n0 = sim.state["cnt"].sum(axis=1).astype(np.int64)
    sim.run(chunk_events=5000)
    n1 = sim.state["cnt"].sum(axis=1).astype(np.int64)
    c = sim.state["counters"]
    net = (c[:, 3] - c[:, 4]) + (c[:, 5] - c[:, 6])  # front in-out + back in-out
    assert np.array_equal(n1 - n0, net)
    assert c[1, 3] > 0 and c[2, 3] > 0 and c[0, 6] > 0
    occ = sim.state["occ"]
    # every ion id points at its site and back
    ids = sim.state["site_ion"][occ >= 0]
    assert np.array_equal(sim.state["ion_site"][ids], np.flatnonzero(occ >= 0))
    assert np.array_equal(sim.state["ion_sp"][ids], occ[occ >= 0])
    ds = sim.to_dataset()
    assert ds.sizes["time"] == 6
    assert float(ds["concentration"].isel(time=-1).sum("species").mean()) == pytest.approx(
        (occ >= 0).sum() / (8 * sim.n_bg))
    assert sim.n_bg == round(0.9 * 16)  # integer background = the initial fill


@pytest.mark.parametrize("accel", [{}, CAP], ids=["plain", "bond-cap"])
def test_chunked_and_resumed_run_equals_uninterrupted_run(accel):
    ref = Simulation(_params(**accel), seed=2).run(chunk_events=10**9)
    sim = Simulation(_params(**accel), seed=2)
    sim.advance(1234)
    ckpt = sim.checkpoint()
    resumed = Simulation(_params(**accel), seed=2, state=ckpt)
    resumed.run(chunk_events=777)
    for k in ref.state:
        assert np.array_equal(ref.state[k], resumed.state[k]), k


def test_periodic_equilibrium_mode_keeps_composition():
    p = _params(geometry="periodic", composition_x=0.5, duration_s=1e-8,
                output_times_s=(0.0, 5e-9, 1e-8), phases=())
    sim = Simulation(p, seed=1).run()
    cnt = sim.state["cnt"].sum(axis=1)
    n_ion = round(0.9 * sim.n_sites)
    assert cnt[0] == round(0.5 * n_ion) and cnt[1] == n_ion - cnt[0]
    ds = sim.to_dataset()
    coll = ds["collective_displacement"].values
    disp = ds["ion_displacement"].values
    sp = ds["ion_species"].values
    assert np.allclose(coll[:, 0], disp[:, sp == 0].sum(axis=1))


def test_config_errors_name_key_and_legal_values():
    with pytest.raises(KMCConfigError, match=r"unknown `rate_model` 'arrhenius'; legal: \['metropolis', 'trap'\]"):
        Simulation(_params(rate_model="arrhenius"), 0)
    with pytest.raises(KMCConfigError, match=r"unknown `acceleration` 'superbasin'; legal: \['none', 'bond-cap'\]"):
        Simulation(_params(acceleration="superbasin"), 0)
    with pytest.raises(KMCConfigError, match="`acceleration` \"bond-cap\" needs `rate_model` \"trap\""):
        Simulation(_params(acceleration="bond-cap", rate_model="metropolis"), 0)
    with pytest.raises(KMCConfigError, match="`bond_cap_kT` must be finite, got nan"):
        Simulation(_params(acceleration="bond-cap", bond_cap_kT=float("nan")), 0)
    with pytest.raises(KMCConfigError, match=r"unknown `selector` 'heap'"):
        Simulation(_params(selector="heap"), 0)
    with pytest.raises(KMCConfigError, match="`ny` must be >= 3"):
        Simulation(_params(ny=2), 0)
    with pytest.raises(KMCConfigError, match="phase `species` 'Rb' is not a foreign species"):
        Simulation(_params(phases=(Phase("Rb", 1e-7),)), 0)
    with pytest.raises(KMCConfigError, match=r"`theta_front` must be in \[0, 1\), got 1.5"):
        Simulation(_params(phases=(Phase("K", 1e-7, theta_front=1.5),)), 0)
    with pytest.raises(KMCConfigError, match=r"`species\[0\]` must be the native species"):
        Simulation(_params(species=SPECIES[::-1]), 0)
    with pytest.raises(KMCStateError, match="checkpoint has 128 sites"):
        Simulation(_params(nx=4), 0, state=Simulation(_params(), 0).checkpoint())
    # a checkpoint of another event order (or of an engine before the version was recorded)
    # cannot continue the same trajectory: refused, with the reason
    ck = Simulation(_params(), 0).checkpoint()
    old = {k: v for k, v in ck.items() if k != "event_order"}
    with pytest.raises(KMCStateError, match="event order 1, this engine has 2"):
        Simulation(_params(), 0, state=old)
    with pytest.raises(KMCStateError, match="checkpoint and params disagree on `record_ions`"):
        Simulation(_params(record_ions=False), 0, state=ck)


def test_field_runaway_stops_with_clear_error():
    # beam current far above what a 4x3x3 lattice carries: the front charge grows by ~1 per
    # arrival until the gap factors exp(q E a / 2kT) overflow; the engine must stop, not run on nan
    p = _params(nx=4, ny=3, nz=3, species=SPECIES[:2], output_times_s=(0.0,), record_ions=False,
                phases=(Phase("K", 1.0, back_field_V_per_m=1e7, theta_front=0.5,
                              beam_current_A_per_m2=1e9),))
    sim = Simulation(p, seed=1)
    with pytest.raises(KMCError, match="non-finite.*beam current"):
        sim.advance(2_000_000)
    assert np.isfinite(sim.time_s)


def test_build_landscape_is_the_engine_draw():
    """``build_landscape`` gives the energies a Simulation was built on (its trap factors and
    energy bins, computed at construction from its own draw)."""
    from kmc.engine import build_landscape
    from kmc.rates import b_factor

    p = _params()
    for seed in (0, 7):
        E = build_landscape(p, seed)
        sim = Simulation(p, seed)
        assert E.shape == (len(p.species), sim.n_sites)
        for k, s in enumerate(p.species):
            np.testing.assert_array_equal(b_factor(E[k], s.E_DC_eV, sim.kT_eV), sim.bfac[k])
        ebin = np.clip(np.searchsorted(sim.energy_edges_eV, E, side="right") - 1, 0,
                       p.n_energy_bins - 1)
        np.testing.assert_array_equal(ebin, sim.ebin)


def test_event_log_replays_the_trajectory():
    """Simulation.log_events: applying the logged moves to the initial occupancy gives the
    final one, and logging does not change the trajectory."""
    kw = dict(phases=(Phase("K", 1e-4, back_field_V_per_m=3e7, theta_front=0.6,
                            beam_current_A_per_m2=6e6),), output_times_s=(0.0, 1e-4))
    a = Simulation(_params(**kw), seed=8)
    b = Simulation(_params(**kw), seed=8)
    a.advance(200)
    b.advance(200)
    occ = a.state["occ"].copy()
    log = a.log_events(1500)
    b.advance(1500)
    assert np.array_equal(a.state["occ"], b.state["occ"]) and a.time_s == b.time_s
    assert log.shape == (1500, 3)
    for k, v, c in log:
        if k >= 0 and v >= 0:
            assert occ[k] >= 0 and occ[v] == -1
            occ[v], occ[k] = occ[k], -1
        elif v >= 0:                       # insertion: front (class 0, K) or back (natives)
            occ[v] = 1 if c == 0 else 0
        elif k >= 0:                       # exit to a reservoir
            occ[k] = -1
    assert a.state["ist"][3] == 0          # still the first phase (K at the front)
    assert np.array_equal(occ, a.state["occ"])
    assert np.all(np.isin(log[:, 2], (-1, 0, 1, 2)))
    assert np.sum((log[:, 0] < 0) & (log[:, 1] >= 0)) > 0     # insertions were replayed
