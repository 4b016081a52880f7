"""KMC against NPP on a scenario where both describe the same physics (issue 4, item 3).

Scenario (no disorder, so no dispersive transport and no D(n)):

* flat landscapes: native SED FWHM 1 meV, foreign FWHM 1 meV (rho = 1), so every hop of species
  s has the rate ``Gamma_s = nu exp(-E_DC,s / kT)``;
* site exclusion with a vacancy fraction f_vac = 0.1. The mean-field (lattice-gas) flux of
  species i is ``J_i = Gamma_i a^2 [-(1 - theta) dtheta_i/dx - theta_i dtheta/dx
  + theta_i (1 - theta) e E / kT]`` (per site density). The NPP `lattice-gas` convention
  ``J_i = -D_i (dc_i/dx + c_i dPsi_i/dx)``, ``Psi_i = psi - ln(1 - theta)``, is exactly this with
  ``D_i = Gamma_i a^2 (1 - theta)``. The bulk stays electroneutral (theta = 1 - f_vac), so
  ``D_i = Gamma_i a^2 f_vac`` is a constant: the jump (collective) D of the lattice gas, the one
  that gives the exact ohmic conductivity of the exclusion process (theta (1 - theta) Gamma).
  The tracer D (Gamma a^2 f_vac f, f ~ 0.69 at theta = 0.9) differs; it governs the K/Li
  interdiffusion at uniform density, which the mean-field NPP overestimates -- a systematic
  effect on the width of the mixing zone, not on the charge transported (see the tolerances).
* ``eps_r = 800`` instead of 8: the 1D mean-field electrostatics of the KMC is exact only when
  one ion changes the gap field by a small amount. One ion in a 10 x 10 layer costs
  ``e^2/(eps0 eps_r ny nz a kT)`` = 2.2 kT at eps_r = 8, 0.022 kT at 800. With the strong
  coupling the KMC transports K markedly faster than NPP (measured below); at 800 the Debye
  length is 0.29 nm < a, so the 5 nm sample is still electroneutral away from the surface.
* weak potentiostatic drive (q E a / kT = 0.15 in the fresh bulk), 12 x 10 x 10 lattice,
  replicas over seeds.

Geometry: the KMC front reservoir is a virtual layer at -a/2 and the back reservoir at
(nx + 1/2) a; the NPP domain is the distance between the two reservoirs, (nx + 1) a, with its
Dirichlet/reservoir nodes at x = 0 and x = (nx + 1) a. KMC layer l (depth (l + 1/2) a) is NPP
position (l + 1) a, and its control volume is [(l + 1/2) a, (l + 3/2) a].

Measured (8 replicas, this machine): see the numbers in the assertion messages and in
docs/comparison.md ("KMC-vs-NPP validation").
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.constants as sc

from compare.workflows import profile_metrics as pm
from compare.io.config import parse_text
from compare import scenario
from continuum import dmodel as dm
from kmc import ensemble
from kmc.engine import Simulation

N_REPLICAS = 8
N_SE = 4.0  # statistical checks: within 4 standard errors (from replicas)
E_DC_LI, E_DC_K = 0.40, 0.43  # eV: D_K / D_Li = exp(-0.03 / kT) = 0.31 (K slower: sharp front)

TEXT = f"""
[material]
n_bulk_cm3 = 1.4e22
vacancy_fraction = 0.10
temperature_K = 300.0
eps_r = 800.0

[sed]
kind = "gaussian"
fwhm_eV = 0.001

[species.Li]
role = "native"
D_model = "constant"
D_cm2_s = 1e-10            # not used: NPP gets D from the KMC rates below
E_DC_eV = {E_DC_LI}

[species.K]
role = "foreign"
D_model = "constant"
D_cm2_s = 1e-10
E_DC_eV = {E_DC_K}
site_mu_eV = 0.0
site_fwhm_eV = 0.001
site_correlation = 1.0

[sample]
thickness_nm = 5.2
back = "bulk"

[[beam]]
species = "K"
duration_s = 6.0e-5
drive = "potentiostatic"
voltage_V = 0.05

[output]
n_times = 4

[npp]
solver = "full"
flux = "lattice-gas"
n_cells = 240
h_surface_nm = 0.01
rtol = 1e-5

[kmc]
nx = 12
ny = 10
nz = 10
seed = 11
"""


def _lattice_gas_D(species, a_m, f_vac, kT):
    """Collective D [m^2/s] of a flat-landscape trap-model species in the electroneutral bulk."""
    return species.nu_Hz * math.exp(-species.E_DC_eV / kT) * a_m ** 2 * f_vac


@pytest.fixture(scope="module")
def runs():
    cfg = parse_text(TEXT)
    params = scenario.kmc_params(cfg)
    seeds = ensemble.replica_seeds(int(cfg.kmc.seed), N_REPLICAS)
    kmc = []
    for seed in seeds:
        sim = Simulation(params, seed)
        sim.run()
        kmc.append(sim.to_dataset())
    a_nm = float(kmc[0].attrs["a_nm"])
    kT = sc.k * params.temperature_K / sc.e
    f_vac = params.vacancy_fraction
    models = {s.name: dm.ConstantD(_lattice_gas_D(s, a_nm * 1e-9, f_vac, kT))
              for s in params.species}
    times = tuple(float(t) for t in kmc[0].time.values)
    problem = scenario.npp_problem(cfg, d_models=models, thickness_nm=(params.nx + 1) * a_nm,
                                   output_times_s=times)
    npp = scenario.solve_npp(cfg, problem)
    conc = np.stack([d.concentration.transpose("species", "time", "depth").values for d in kmc])
    depth = kmc[0].depth.values
    # control volume of KMC layer l in NPP coordinates: [(l + 1/2) a, (l + 3/2) a]
    edges_npp = np.concatenate(([0.5 * a_nm], depth + a_nm))
    names = list(kmc[0].species.values)
    npp_layers = np.array([[pm.layer_average(npp.depth.values,
                                            npp.concentration.sel(species=s).isel(time=k).values,
                                            edges_npp)
                            for k in range(len(times))] for s in names])
    return dict(cfg=cfg, params=params, kmc=kmc, conc=conc, npp=npp, npp_layers=npp_layers,
                names=names, depth=depth, a_nm=a_nm, times=np.asarray(times),
                qEa=float(kmc[0].attrs["qEa_over_kT"]))


def test_drive_is_weak(runs):
    # linear response: the lattice drift 2 sinh(h/2) and the continuum drift h differ by < 1 %
    assert runs["qEa"] < 0.2, runs["qEa"]


def test_foreign_inventory_agrees(runs):
    """K areal inventory vs time: KMC (mean +- SEM over replicas) against NPP.

    Systematic bracket (not a tuned tolerance): the KMC has no space between its reservoir and
    layer 0, the continuum has K in [0, a/2] between the reservoir node and the first control
    volume. So the KMC inventory must lie between the NPP inventory of the layer volumes
    (lower end) and all K that entered the NPP domain (upper end), widened by N_SE SEM.
    """
    r = runs
    i_k = r["names"].index("K")
    edges = np.concatenate(([0.0], r["depth"] + 0.5 * r["a_nm"]))
    inv = np.array([[pm.inventory(edges, r["conc"][j, i_k, k]) for k in range(r["times"].size)]
                    for j in range(N_REPLICAS)])
    mean, sem = inv.mean(0), inv.std(0, ddof=1) / math.sqrt(N_REPLICAS)
    npp = r["npp"]
    lower = np.array([r["a_nm"] * r["npp_layers"][i_k, k].sum() for k in range(r["times"].size)])
    upper = npp.transferred.sel(species="K", boundary="front").values
    rows = [f"t={t:.3g} s: KMC {m:.3f} +- {s:.3f} nm, NPP [{lo:.3f}, {hi:.3f}] nm"
            for t, m, s, lo, hi in zip(r["times"], mean, sem, lower, upper)]
    msg = "\n".join(rows)
    print(msg)
    for k in range(1, r["times"].size):
        assert lower[k] - N_SE * sem[k] <= mean[k] <= upper[k] + N_SE * sem[k], msg


def test_foreign_current_agrees(runs):
    """Inventory gained over the second half of the run (the K current): no boundary ambiguity.

    Once the K in the first half gap has saturated, both NPP bounds grow alike; the paired
    per-replica increments give the SEM. Systematic allowance: the remaining growth of the
    half-gap content, |d(upper - lower)|, added to the tolerance.
    """
    r = runs
    i_k = r["names"].index("K")
    edges = np.concatenate(([0.0], r["depth"] + 0.5 * r["a_nm"]))
    k0, k1 = r["times"].size // 2, r["times"].size - 1
    inc = np.array([pm.inventory(edges, r["conc"][j, i_k, k1] - r["conc"][j, i_k, k0])
                    for j in range(N_REPLICAS)])
    lower = r["a_nm"] * (r["npp_layers"][i_k, k1].sum() - r["npp_layers"][i_k, k0].sum())
    tr = r["npp"].transferred.sel(species="K", boundary="front").values
    upper = float(tr[k1] - tr[k0])
    sem = inc.std(ddof=1) / math.sqrt(N_REPLICAS)
    centre, half = 0.5 * (lower + upper), 0.5 * abs(upper - lower)
    z = (inc.mean() - centre) / (N_SE * sem + half)
    msg = (f"K gained in [{r['times'][k0]:.3g}, {r['times'][k1]:.3g}] s: KMC {inc.mean():.4f} +- "
           f"{sem:.4f} nm, NPP {lower:.4f}..{upper:.4f} nm")
    print(msg)
    assert abs(z) <= 1.0, msg


def test_profiles_agree(runs):
    """Layer profiles of both species at the last time, within N_SE SEM + a stated systematic.

    Systematic per layer: the NPP control-volume mean vs the KMC layer count differ by the
    discreteness of the front, at most (a/2) |dc/dx| of the NPP profile (a shift of half a
    lattice spacing, the reservoir-to-layer-0 ambiguity above).
    """
    r = runs
    k = r["times"].size - 1
    a = r["a_nm"]
    fails = []
    for i, s in enumerate(r["names"]):
        c = r["conc"][:, i, k]
        mean, sem = c.mean(0), c.std(0, ddof=1) / math.sqrt(N_REPLICAS)
        # A per-layer SEM from 8 replicas has 7 degrees of freedom: on 24 layers some come out
        # 2x too small by chance (4 "SEM" then fail ~10 % of runs; seen: a bulk layer with SEM
        # 0.006 while its neighbours had 0.010-0.013, and no such dip with other seed sets).
        # The count noise is the same process in every layer, so the pooled SEM of the species
        # (RMS over its layers) is the floor.
        pooled = math.sqrt(float(np.mean(sem ** 2)))
        ref = r["npp_layers"][i, k]
        grad = np.abs(np.gradient(ref, a))
        tol = N_SE * np.maximum(sem, pooled) + 0.5 * a * grad
        bad = np.abs(mean - ref) > tol
        print(s, "KMC", np.round(mean, 3), "\n  NPP", np.round(ref, 3), "\n  tol", np.round(tol, 3))
        if bad.any():
            fails.append(f"{s}: layers {np.flatnonzero(bad).tolist()} KMC {np.round(mean[bad], 3)} "
                         f"NPP {np.round(ref[bad], 3)} tol {np.round(tol[bad], 3)}")
    assert not fails, "; ".join(fails)
