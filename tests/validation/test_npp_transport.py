"""Validation of the full NPP solver against exact transport solutions.

* Pure diffusion from a held front reservoir into a half-space: ``c = c_front erfc(x / 2 sqrt(Dt))``.
* Drift-diffusion in a uniform field (Ogata-Banks), velocity ``v = D e E / kT``.
  Both need Poisson decoupled: with eps_r = 1e15 the space charge of the entering ions changes
  psi by < 1e-6 kT/e across the sample, so these solutions are exact for the model.
* Coupled Poisson, bulk only: the native current through the back equals ``D e E n_bulk / kT``
  (galvanostatic drive carried ohmically by the bulk).
"""
import numpy as np
import pytest
import scipy.constants as sc
from scipy.special import erfc, erfcx

from continuum.dmodel import ConstantD
from continuum.npp import solve
from continuum.problem import MeshSpec, NPPProblem, Phase

KT = sc.k * 300.0 / sc.e  # thermal voltage [V]
D_FOREIGN = 1e-17  # m^2/s = 10 nm^2/s
TIMES = (0.0, 10.0, 100.0)


def _problem(field_V_per_m, eps_r=1e15, **kw):
    args = dict(
        species=("Li", "K"), d_models=(ConstantD(1.5e-17), ConstantD(D_FOREIGN)), native="Li",
        n_bulk_m3=1.4e28, thickness_m=1e-6, eps_r=eps_r, f_vac=0.1,
        phases=(Phase("K", 100.0, "galvanostatic", back_field_V_per_m=field_V_per_m,
                      theta_front=0.9),),
        output_times_s=TIMES, mesh=MeshSpec(n_cells=240, h_surface_nm=0.1, zone_nm=200),
        rtol=1e-4, atol=1e-8)
    args.update(kw)
    return NPPProblem(**args)


def _ogata_banks(x, t, D, v):
    """c/c0 for x >= 0, c(0,t) = c0, c(x,0) = 0, velocity v, diffusivity D (nm, s)."""
    s = 2.0 * np.sqrt(D * t)
    a = (x - v * t) / s
    b = (x + v * t) / s
    # exp(v x / D) erfc(b) = exp(v x / D - b^2) erfcx(b), b > 0: no overflow
    return 0.5 * (erfc(a) + np.exp(v * x / D - b * b) * erfcx(b))


def _tolerance_error(y, y_true, atol, rtol):
    return np.max(np.abs(y - y_true) / (atol + rtol * np.abs(y_true)))


def test_diffusion_matches_erfc():
    ds = solve(_problem(0.0))
    x = ds.depth.values
    D_nm2 = D_FOREIGN * 1e18
    for t in TIMES[1:]:
        c = ds.concentration.sel(species="K", time=t).values
        exact = erfc(x / (2 * np.sqrt(D_nm2 * t)))  # c_front = theta_front/(1-f_vac) = 1
        # space error ~ h^2 c''/12 <= 2.5e-4 (h = 1.1 nm in the zone, worst at t = 10 s),
        # time error < 1e-4 (rtol = 1e-4); a 1 % error in D gives e > 9 at both times
        assert _tolerance_error(c, exact, 3e-4, 3e-4) < 5
    # the native is untouched by the decoupled foreign ions
    assert np.max(np.abs(ds.concentration.sel(species="Li").values - 1.0)) < 1e-6


def test_uniform_field_drift_velocity():
    D_nm2 = D_FOREIGN * 1e18
    v = 0.5  # nm/s
    field = v / D_nm2 * KT / 1e-9  # v = D e E / kT  ->  E [V/m]
    ds = solve(_problem(field))
    x = ds.depth.values
    for t in TIMES[1:]:
        c = ds.concentration.sel(species="K", time=t).values
        exact = _ogata_banks(x, t, D_nm2, v)
        assert _tolerance_error(c, exact, 3e-4, 3e-4) < 5
    # a 2 % error in the velocity moves the profile by more than the tolerance
    c = ds.concentration.sel(species="K", time=100.0).values
    assert _tolerance_error(c, _ogata_banks(x, 100.0, D_nm2, 1.02 * v), 3e-4, 3e-4) > 5


def test_bulk_current_is_ohmic():
    """Coupled Poisson (eps_r = 8): with the front blocked, the native leaves through the back at
    the ohmic rate D e E n_bulk / kT once the front double layer has formed."""
    D = 1.5e-17
    field = 2e4
    p = _problem(field, eps_r=8.0, phases=(Phase(None, 1000.0, "galvanostatic",
                                                  back_field_V_per_m=field),),
                 output_times_s=(0.0, 500.0, 1000.0))
    ds = solve(p)
    q = ds.transferred.sel(species="Li", boundary="back").values  # nm (per n_bulk)
    rate = (q[2] - q[1]) / 500.0  # nm/s, negative: leaving
    expected = -D * 1e18 * field * 1e-9 / KT
    assert abs(rate - expected) < 1e-6 * abs(expected)
