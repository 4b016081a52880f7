"""The event tables against a brute-force enumeration of every possible event.

The engine indexes hops by their target vacancy (kmc/_kernel.py); here every event is listed
the other way round -- per ion, per bond, from the model's rate formula (kmc/rates.py, docs/physics.md
§5) -- and summed per kind and per gap. Both must agree to rounding, for both rate models, open
(with both reservoirs and all drives) and periodic lattices.
"""

import numpy as np
import pytest

from kmc import _kernel as K
from kmc.engine import KMCParams, Phase, Simulation, Species
from kmc.lattice import Gaussian
from kmc.rates import site_rate

SPECIES = (Species("Li", E_DC_eV=0.45), Species("K", role="foreign", E_DC_eV=0.4, mu_eV=0.05,
                                                sigma_eV=0.08, rho=0.6),
           Species("Cs", role="foreign", E_DC_eV=0.32, mu_eV=0.0, sigma_eV=0.1, rho=0.3))


def enumerate_events(sim):
    """Every possible event of the current state, listed per ion (hops, exits) and per vacancy
    (insertions) from the model's rate formula, summed two ways.

    Returns
    -------
    fwd, bwd : ndarray of float64, shape (nx + 1,)
        Rates [1/s] of the forward / backward crossings of each gap (gap g between layers g-1
        and g; gap 0 = front reservoir, gap nx = back reservoir), gap factors included.
    by_kind : ndarray of float64, shape (n_species, N_COUNTERS + 4)
        Rates [1/s] per species in the engine's counter layout (hop_forward, hop_backward,
        hop_lateral, front_in, front_out, back_in, back_out, beam_in), then the lateral hops
        split by the ion's direction (+y, -y, +z, -z).
    """
    p, ip, fp = sim.params, sim.ip, sim.fp
    nx, ny, nz = p.nx, p.ny, p.nz
    occ = sim.state["occ"].reshape(nx, ny, nz)
    bfac = sim.bfac.astype(np.float64).reshape(-1, nx, ny, nz)
    model, nu, gf, gb = int(ip[K.I_MODEL]), sim.nu, sim.gf, sim.gb
    periodic = bool(ip[K.I_PERIODIC])
    active, frontopen = int(ip[K.I_ACTIVE]), bool(ip[K.I_FRONTOPEN])
    back_bulk = ip[K.I_BACKKIND] == K.BACK_BULK and ip[K.I_BACKOPEN]
    fwd = np.zeros(nx + 1)
    bwd = np.zeros(nx + 1)
    by_kind = np.zeros((len(p.species), K.N_COUNTERS + 4))
    n_capped = enumerate_events.n_capped
    bcap = fp[K.F_BCAP]

    def site_rate_(model, nu_s, bi, bj):
        """The rate i -> j; with a bond cap (acceleration "bond-cap"), both directions of a bond
        scaled by the same factor so that the slower one runs at nu_s bcap (docs/acceleration.md),
        from two evaluations of the plain formula."""
        w = site_rate(model, nu_s, bi, bj)
        if np.isfinite(bcap):
            lo = min(w, site_rate(model, nu_s, bj, bi)) / nu_s
            if lo > bcap:
                w *= bcap / lo
                n_capped[0] += 1
        return w

    def add(s, kind, gap_arr, gap, rate):
        if gap_arr is not None:
            gap_arr[gap] += rate
        by_kind[s, kind] += rate

    for l in range(nx):
        for y in range(ny):
            for z in range(nz):
                s = occ[l, y, z]
                if s < 0:
                    # insertions into this vacancy
                    if l == 0 and not periodic and active >= 0 and frontopen:
                        add(active, K.C_FRONT_IN, fwd, 0, gf[0] * fp[K.F_THF] * site_rate_(
                            model, nu[active], fp[K.F_BRESF], bfac[active, l, y, z]))
                    if l == nx - 1 and not periodic and back_bulk:
                        add(0, K.C_BACK_IN, bwd, nx, gb[nx] * fp[K.F_THB] * site_rate_(
                            model, nu[0], fp[K.F_BRESB], bfac[0, l, y, z]))
                    continue
                bi = bfac[s, l, y, z]
                for dl, gap, arr, g in ((1, l + 1, fwd, gf[l + 1]), (-1, l, bwd, gb[l])):
                    lj = l + dl
                    if 0 <= lj < nx or periodic:
                        lj %= nx
                        if occ[lj, y, z] < 0:
                            add(s, K.C_FWD if dl == 1 else K.C_BWD, arr, gap,
                                g * site_rate_(model, nu[s], bi, bfac[s, lj, y, z]))
                    elif dl == 1 and s == 0 and ip[K.I_BACKOPEN]:
                        add(s, K.C_BACK_OUT, arr, gap,
                            g * (1 - fp[K.F_THB]) * site_rate_(model, nu[0], bi, fp[K.F_BRESB]))
                    elif dl == -1 and s == active and frontopen:
                        add(s, K.C_FRONT_OUT, arr, gap,
                            g * (1 - fp[K.F_THF]) * site_rate_(model, nu[s], bi, fp[K.F_BRESF]))
                for d, (yj, zj) in enumerate((((y + 1) % ny, z), ((y - 1) % ny, z),
                                              (y, (z + 1) % nz), (y, (z - 1) % nz))):
                    if occ[l, yj, zj] < 0:
                        w = site_rate_(model, nu[s], bi, bfac[s, l, yj, zj])
                        add(s, K.C_LAT, None, 0, w)
                        by_kind[s, K.N_COUNTERS + d] += w
    if active >= 0:
        by_kind[active, K.C_BEAM] += fp[K.F_RBEAM]
    return fwd, bwd, by_kind


enumerate_events.n_capped = np.zeros(1, dtype=np.int64)   # capped events seen (bond cap on)


def brute_force_totals(sim):
    """Per-gap forward and backward rates, total lateral rate, beam rate [1/s]."""
    fwd, bwd, by_kind = enumerate_events(sim)
    return fwd, bwd, by_kind[:, K.C_LAT].sum(), sim.fp[K.F_RBEAM]


def engine_totals(sim):
    nx = sim.params.nx
    ct = sim.class_totals()
    ex = sim.exit_totals()
    fwd = np.zeros(nx + 1)
    bwd = np.zeros(nx + 1)
    fwd[:nx] = sim.gf[:nx] * ct[:, 0]
    bwd[1:] = sim.gb[1:] * ct[:, 1]
    bwd[0] = sim.gb[0] * ex[0]
    fwd[nx] = sim.gf[nx] * ex[1]
    return fwd, bwd, ct[:, 2].sum()


def _params(**kw):
    base = dict(nx=7, ny=5, nz=6, species=SPECIES, vacancy_fraction=0.2, native_sampler=Gaussian.from_fwhm(0.25),
                phases=(Phase("K", 1e-3, back_field_V_per_m=3e7, theta_front=0.6,
                              beam_current_A_per_m2=2e6),
                        Phase(None, 1e-3, drive="off"),
                        Phase("Cs", 1e-3, drive="potentiostatic", voltage_V=0.2, theta_front=0.5)),
                output_times_s=(0.0,), record_histograms=False)
    base.update(kw)
    return KMCParams(**base)


@pytest.mark.parametrize("model, accel", [("trap", "none"), ("metropolis", "none"),
                                          ("trap", "bond-cap")])   # the cap needs trap rates
@pytest.mark.parametrize("case", ["galvanostatic", "off", "potentiostatic", "electrode", "periodic"])
def test_event_tables_equal_brute_force_enumeration(model, case, accel):
    kw = {"rate_model": model}
    if accel == "bond-cap":
        # 3 kT below the native bulk activation energy: a good share of the bonds is capped
        kw.update(acceleration="bond-cap", bond_cap_kT=-3.0)
    enumerate_events.n_capped[0] = 0
    if case == "electrode":
        kw["back"] = "electrode"
    if case == "periodic":
        kw.update(geometry="periodic", composition_x=0.6, duration_s=1.0, phases=(),
                  periodic_field_V_per_m=2e7)
    sim = Simulation(_params(**kw), seed=7)
    phase = {"off": 1, "potentiostatic": 2}.get(case, 0)
    if phase:
        sim._enter_phase(phase)
    n_checked = 0
    seen = np.zeros(3, dtype=bool)      # front insertion / front exit or wrap / back insertion
    for _ in range(8):
        if sim.advance(250):
            break
        fwd, bwd, lat, beam = brute_force_totals(sim)
        efwd, ebwd, elat = engine_totals(sim)
        if case == "periodic":
            # the hops across the periodic boundary: the engine books them on the target's
            # layer (gap 0 forward into layer 0, gap nx backward into layer nx-1)
            fwd[0] += fwd[-1]
            fwd[-1] = 0.0
            bwd[-1] += bwd[0]
            bwd[0] = 0.0
        np.testing.assert_allclose(efwd, fwd, rtol=1e-12, atol=0)
        np.testing.assert_allclose(ebwd, bwd, rtol=1e-12, atol=0)
        assert elat == pytest.approx(lat, rel=1e-12)
        assert sim.total_rate() == pytest.approx(fwd.sum() + bwd.sum() + lat + beam, rel=1e-12)
        n_checked += 1
        seen |= np.array([fwd[0] > 0, bwd[0] > 0 or (case == "periodic" and bwd[-1] > 0),
                          bwd[-1] > 0])
    assert n_checked == 8 and int(sim.state["ist"][K.S_PHASE]) == phase
    # the boundary events were part of the comparison
    assert seen[0] == (case != "off")
    # (with the electrode and Metropolis rates the Li exits at ~2e14/s dominate: no K reaches
    # layer 0 within these 2000 events, so no front exit is possible there)
    assert seen[1] or case in ("off", "electrode")
    assert seen[2] == (case != "electrode")
    # the cap changed rates in the states compared (and only with the cap on)
    assert (enumerate_events.n_capped[0] > 0) == (accel == "bond-cap")


def pick_frequencies(sim, n_trials, seed0=0):
    """Kinds of the next event from one fixed state, over ``n_trials`` independent random
    streams: counts, float64 (n_species, N_COUNTERS + 4) (layout of ``enumerate_events``;
    the lateral direction from the collective displacement)."""
    from kmc.rng import seed_state

    base = sim.checkpoint()
    counts = np.zeros((base["counters"].shape[0], K.N_COUNTERS + 4))
    for t in range(n_trials):
        for k, v in base.items():
            sim.state[k][...] = v
        sim.state["rng"][:] = seed_state(seed0 + t)
        sim._sync_S()
        sim.rebuild()
        sim.advance(1)
        counts[:, :K.N_COUNTERS] += sim.state["counters"] - base["counters"]
        dc = sim.state["coll"] - base["coll"]
        for sp in np.flatnonzero(dc[:, 1:].any(axis=1)):
            ax, sign = (1, dc[sp, 1]) if dc[sp, 1] else (2, dc[sp, 2])
            counts[sp, K.N_COUNTERS + 2 * (ax - 1) + (0 if sign > 0 else 1)] += 1
    for k, v in base.items():
        sim.state[k][...] = v
    sim._sync_S()
    sim.rebuild()
    return counts


F, B, L = K.C_FWD, K.C_BWD, K.C_LAT
NEXT_EVENT_CASES = {
    # (model, geometry): kinds that must be populated (species, counter) in that state
    ("trap", "driven"): {(0, F), (0, B), (0, L), (0, K.C_BACK_IN), (1, F), (1, B), (1, L),
                         (1, K.C_FRONT_IN), (1, K.C_FRONT_OUT), (1, K.C_BEAM)},
    ("metropolis", "driven"): {(0, F), (0, B), (0, L), (0, K.C_BACK_IN), (0, K.C_BACK_OUT),
                               (1, K.C_FRONT_IN), (1, K.C_FRONT_OUT)},
    ("trap", "periodic"): {(s, k) for s in (0, 1) for k in (F, B, L)},
    ("metropolis", "periodic"): {(s, k) for s in (0, 1) for k in (F, B, L)},
}


@pytest.mark.parametrize("model, geometry", sorted(NEXT_EVENT_CASES))
def test_next_event_kinds_follow_the_brute_force_rates(model, geometry):
    """The pick, not only the tables: from one state, the kind and species of the next event
    over 30 000 random streams is multinomial with the brute-force probabilities; every kind,
    and every lateral direction, within 4.5 standard errors (Bonferroni for the ~20 populated
    categories). Driven: Li and K with K at the front, beam on; periodic: a Li/K mixture in a
    field."""
    if geometry == "driven":
        # Metropolis hops run ~1e3 times faster in time: raise the beam so that it is picked too
        j = 2e6 if model == "trap" else 2e9
        sim = Simulation(_params(rate_model=model, phases=(
            Phase("K", 1.0, back_field_V_per_m=3e7, theta_front=0.6, beam_current_A_per_m2=j),)),
            seed=11)
    else:
        sim = Simulation(_params(rate_model=model, geometry="periodic", composition_x=0.5,
                                 duration_s=1.0, phases=(), periodic_field_V_per_m=3e7), seed=11)
    sim.advance(1500)
    lam = enumerate_events(sim)[2]
    total = lam[:, :K.N_COUNTERS].sum()          # (the direction columns split C_LAT)
    prob = lam / total
    assert total == pytest.approx(sim.total_rate(), rel=1e-12)
    n = 30_000
    counts = pick_frequencies(sim, n)
    assert counts[:, :K.N_COUNTERS].sum() == n
    assert np.array_equal(counts[:, K.C_LAT], counts[:, K.N_COUNTERS:].sum(axis=1))
    expected = n * prob
    se = np.sqrt(n * prob * (1 - prob))
    populated = expected >= 20
    z = (counts - expected)[populated] / se[populated]
    assert np.all(np.abs(z) < 4.5), (z, counts, expected)
    assert np.all(counts[~populated] <= np.maximum(5 * expected[~populated], 10))
    kinds = {(int(s), int(k)) for s, k in zip(*np.nonzero(populated))}
    assert NEXT_EVENT_CASES[(model, geometry)] <= kinds, kinds
    # the lateral direction too, for the species with lateral hops tested above
    for sp in {s for s, k in NEXT_EVENT_CASES[(model, geometry)] if k == L}:
        assert all((sp, K.N_COUNTERS + d) in kinds for d in range(4)), kinds
