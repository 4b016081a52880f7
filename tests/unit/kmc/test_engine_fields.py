"""Front-referenced electrostatics: neutral start, one gap per ion event, beam bookkeeping,
surface charge carried between phases (kmc/electrostatics.py, docs/kmc.md)."""
from dataclasses import replace

import numpy as np
import pytest

from kmc import _kernel as K
from kmc.electrostatics import front_counts
from kmc.engine import KMCParams, Phase, Simulation, Species
from kmc.errors import KMCConfigError, KMCStateError
from kmc.lattice import Gaussian

SPECIES = (Species("Li", E_DC_eV=0.45), Species("K", role="foreign", E_DC_eV=0.40, mu_eV=0.05,
                                                sigma_eV=0.08, rho=0.6))


def _params(phases, **kw):
    # 5 x 5 cross-section: (1 - f_vac) ny nz = 22.5 is not an integer (DEFECT 2 of the old fill)
    base = dict(nx=6, ny=5, nz=5, species=SPECIES, native_sampler=Gaussian.from_fwhm(0.25),
                phases=phases, output_times_s=(0.0,), record_histograms=False)
    base.update(kw)
    return KMCParams(**base)


GALV = Phase("K", 1e-6, back_field_V_per_m=2.3e9, theta_front=0.6, beam_current_A_per_m2=3e6)


def test_initial_fields_are_exactly_the_applied_field():
    c = Simulation(_params((GALV,)), 0).c_V_per_m
    sim = Simulation(_params((Phase(None, 1e-6, drive="off"),)), 0)
    assert sim.n_bg == 22 and sim.state["cnt"].sum() == 6 * 22
    assert np.all(sim.E == 0.0)
    sim = Simulation(_params((Phase("K", 1e-6, drive="potentiostatic", voltage_V=0.3),)), 0)
    assert np.all(sim.E == (0.3 / sim.a_m) / 7)
    # galvanostatic: the initial front charge F0 = round(E_back / c) carries a uniform field
    sim = Simulation(_params((GALV,)), 0)
    F0 = round(2.3e9 / c)
    assert F0 == 4 and sim.state["ist"][K.S_F0] == F0
    assert np.all(sim.E == c * F0)
    sim.advance(1)  # the sample at t = 0 is recorded before the first event
    ds = sim.to_dataset()
    assert ds.attrs["vacancy_fraction_effective"] == pytest.approx(1 - 22 / 25, abs=1e-15)
    assert ds.attrs["n_bg"] == 22
    assert float(ds["front_charge"][0]) == pytest.approx(F0, abs=1e-12)


def test_ion_events_change_one_gap_and_beam_arrivals_shift_all():
    sim = Simulation(_params((GALV,)), 3)
    c = sim.c_V_per_m
    n_beam = n_one = 0
    for _ in range(3000):
        E0 = sim.E.copy()
        beam0 = sim.state["counters"][1, K.C_BEAM]
        sim.advance(1)
        dE = sim.E - E0
        if sim.state["counters"][1, K.C_BEAM] > beam0:
            n_beam += 1
            np.testing.assert_allclose(dE, c, rtol=1e-9)
        else:
            changed = np.flatnonzero(dE)
            assert changed.size <= 1
            if changed.size:
                n_one += 1
                assert abs(dE[changed[0]]) == pytest.approx(c, rel=1e-9)
    assert n_beam > 5 and n_one > 100
    # charge bookkeeping: F0 = F0(start) + beam arrivals - front insertions + front exits
    ctr = sim.state["counters"]
    F0 = sim.state["ist"][K.S_F0]
    assert F0 == 4 + ctr[1, K.C_BEAM] - ctr[1, K.C_FRONT_IN] + ctr[1, K.C_FRONT_OUT]
    assert np.array_equal(sim.G, front_counts(sim.state["cnt"].sum(axis=0), F0))


def test_surface_charge_is_carried_between_phases():
    # a short drive: 1 us of this beam fills the back layers with K, which cannot leave, and the
    # lattice jams (one vacancy left), so the later phases would see only a few events
    phases = (replace(GALV, duration_s=2e-7), Phase(None, 1e-6, drive="off"),
              Phase("K", 1e-6, drive="potentiostatic", voltage_V=0.3), Phase(None, 1e-6, drive="off"))
    sim = Simulation(_params(phases), 4)
    seen = {}
    while not sim.done:
        sim.advance(100)     # the off phase holds ~800 events on this 150-site lattice
        k = int(sim.state["ist"][K.S_PHASE])
        seen.setdefault(k, []).append(int(sim.state["ist"][K.S_F0]))
        if k == 1:
            # drive off: front blocked, no beam -> F0 constant, E_0 = c F0
            assert sim.E[0] == sim.c_V_per_m * seen[1][0]
            assert sim.fp[K.F_RBEAM] == 0.0
    assert seen[1] == [seen[1][0]] * len(seen[1]) and len(seen[1]) > 2
    # after the potentiostatic phase the front keeps the charge its electrode held
    assert sim.E[0] == sim.c_V_per_m * sim.state["ist"][K.S_F0]
    assert set(seen) == {0, 1, 2, 3}


def test_beam_rate_and_errors():
    sim = Simulation(_params((GALV,)), 0)
    assert sim.fp[K.F_RBEAM] == pytest.approx(3e6 * 25 * sim.a_m ** 2 / 1.602176634e-19, rel=1e-12)
    assert Simulation(_params((GALV,), electrostatics=False), 0).fp[K.F_RBEAM] == 0.0
    with pytest.raises(KMCConfigError, match="`beam_current_A_per_m2` only applies to galvanostatic"):
        Simulation(_params((Phase("K", 1e-6, drive="potentiostatic", beam_current_A_per_m2=1.0),)), 0)
    with pytest.raises(KMCConfigError, match=r"`beam_current_A_per_m2` must be finite and >= 0, got -1.0"):
        Simulation(_params((replace(GALV, beam_current_A_per_m2=-1.0),)), 0)
    old = sim.checkpoint()
    old["ist"] = old["ist"][:4]
    with pytest.raises(KMCStateError, match="older engine version"):
        Simulation(_params((GALV,)), 0, state=old)


def test_without_space_charge_the_applied_field_is_uniform():
    sim = Simulation(_params((GALV, Phase("K", 1e-6, drive="potentiostatic", voltage_V=0.3)),
                             electrostatics=False), 1)
    assert np.all(sim.E == 2.3e9)
    sim.advance(2000)
    assert np.all(sim.E == (0.3 / sim.a_m) / 7) and sim.state["ist"][K.S_PHASE] == 1
