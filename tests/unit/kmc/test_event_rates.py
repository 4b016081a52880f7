"""The event tables against a brute-force enumeration of every possible event.

The engine indexes hops by their target vacancy (kmc/_kernel.py); here every event is listed
the other way round -- per ion, per bond, from the model's rate formula (kmc/rates.py, PHYSICS.md
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


def brute_force_totals(sim):
    """Per-gap totals of forward and backward crossings [1/s] (gap g between layers g-1 and g;
    gap 0 = front reservoir, gap nx = back reservoir), total lateral rate, beam rate."""
    p, ip, fp = sim.params, sim.ip, sim.fp
    nx, ny, nz = p.nx, p.ny, p.nz
    occ = sim.state["occ"].reshape(nx, ny, nz)
    bfac = sim.bfac.astype(np.float64).reshape(-1, nx, ny, nz)
    model, nu = int(ip[K.I_MODEL]), sim.nu
    periodic = bool(ip[K.I_PERIODIC])
    active, frontopen = int(ip[K.I_ACTIVE]), bool(ip[K.I_FRONTOPEN])
    back_bulk = ip[K.I_BACKKIND] == K.BACK_BULK and ip[K.I_BACKOPEN]
    fwd = np.zeros(nx + 1)
    bwd = np.zeros(nx + 1)
    lat = 0.0
    for l in range(nx):
        for y in range(ny):
            for z in range(nz):
                s = occ[l, y, z]
                if s < 0:
                    # insertions into this vacancy
                    if l == 0 and not periodic and active >= 0 and frontopen:
                        fwd[0] += fp[K.F_THF] * site_rate(model, nu[active], fp[K.F_BRESF],
                                                          bfac[active, l, y, z])
                    if l == nx - 1 and not periodic and back_bulk:
                        bwd[nx] += fp[K.F_THB] * site_rate(model, nu[0], fp[K.F_BRESB],
                                                           bfac[0, l, y, z])
                    continue
                bi = bfac[s, l, y, z]
                for dl, gap, arr in ((1, l + 1, fwd), (-1, l, bwd)):
                    lj = l + dl
                    if 0 <= lj < nx or periodic:
                        lj %= nx
                        if occ[lj, y, z] < 0:
                            arr[gap] += site_rate(model, nu[s], bi, bfac[s, lj, y, z])
                    elif dl == 1 and s == 0 and ip[K.I_BACKOPEN]:
                        arr[gap] += (1 - fp[K.F_THB]) * site_rate(model, nu[0], bi, fp[K.F_BRESB])
                    elif dl == -1 and s == active and frontopen:
                        arr[gap] += (1 - fp[K.F_THF]) * site_rate(model, nu[s], bi, fp[K.F_BRESF])
                for yj, zj in (((y + 1) % ny, z), ((y - 1) % ny, z), (y, (z + 1) % nz), (y, (z - 1) % nz)):
                    if occ[l, yj, zj] < 0:
                        lat += site_rate(model, nu[s], bi, bfac[s, l, yj, zj])
    return fwd * sim.gf, bwd * sim.gb, lat, fp[K.F_RBEAM]


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


@pytest.mark.parametrize("model", ["trap", "metropolis"])
@pytest.mark.parametrize("case", ["galvanostatic", "off", "potentiostatic", "electrode", "periodic"])
def test_event_tables_equal_brute_force_enumeration(model, case):
    kw = {"rate_model": model}
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
