"""Particle conservation through the boundaries, positivity, and adaptive-time accuracy of the
full NPP solver on a CAIT-like scenario (n_b = 1.4e22 cm^-3, eps_r = 8, L_D = 0.029 nm)."""
import dataclasses

import numpy as np
import pytest

from continuum.dmodel import ConstantD
from continuum.npp import solve
from continuum.problem import MeshSpec, NPPProblem, Phase


class SteepD:
    """A native D(x) falling ~5 decades from x = 1 to 0.05 (SED-like), analytic derivative."""

    def __init__(self, D_bulk, a=12.0):
        self.D_bulk, self.a = D_bulk, a

    def D_and_dD(self, x):
        x = np.clip(np.asarray(x, dtype=float), 0.0, 1.2)
        d = self.D_bulk * np.exp(self.a * (x - 1.0))
        return d, self.a * d


def _cait(flux_convention="nernst-planck", **kw):
    args = dict(
        species=("Li", "K", "Cs"),
        d_models=(SteepD(1.5e-17), ConstantD(1e-20), ConstantD(5e-21)), native="Li",
        n_bulk_m3=1.4e28, thickness_m=1e-6, eps_r=8.0, f_vac=0.1,
        phases=(Phase("K", 300.0, "galvanostatic", back_field_V_per_m=2e4, theta_front=0.85),
                Phase("Cs", 300.0, "potentiostatic", voltage_V=0.05, theta_front=0.8),
                Phase(None, 200.0, "off")),
        output_times_s=tuple(np.linspace(0, 800, 9)),
        mesh=MeshSpec(n_cells=160, h_surface_nm=0.1, zone_nm=60), flux_convention=flux_convention)
    args.update(kw)
    return NPPProblem(**args)


@pytest.mark.parametrize("convention", ["nernst-planck", "lattice-gas"])
def test_inventory_change_equals_boundary_transfer(convention):
    """Through three phases (galvanostatic, potentiostatic, relaxation) and for both flux
    conventions, the change of each species' inventory equals the particles transferred through
    front and back, to round-off (the transfers follow the same BDF recurrence as the inventory,
    so any flux that is not in flux form, or a boundary term missed, shows up here)."""
    ds = solve(_cait(convention))
    assert ds.attrs["flux_convention"] == convention
    change = ds.inventory - ds.inventory.isel(time=0)
    transferred = ds.transferred.sum("boundary")
    scale = float(np.abs(ds.transferred).max())  # ~ tens of nm
    assert scale > 1.0  # something did flow
    total = float(ds.inventory.isel(time=0).sum())  # 1000 nm of native
    # round-off: 1e-12 of the total inventory (measured ~5e-14)
    assert float(np.abs(change - transferred).max()) < 1e-12 * total
    # K entered only through the front, and no particle crosses a blocked boundary
    k_back = ds.transferred.sel(species="K", boundary="back")
    assert float(np.abs(k_back).max()) < 1e-3 * scale  # K has not reached the back
    cs = ds.transferred.sel(species="Cs", boundary="front")
    assert float(cs.sel(time=300.0)) == 0.0 and float(cs.sel(time=600.0)) > 0
    # relaxation (drive off): the front is blocked, front transfers stay constant
    front = ds.transferred.sel(boundary="front")
    assert float(np.abs(front.sel(time=800.0) - front.sel(time=600.0)).max()) < 1e-12 * scale


@pytest.mark.parametrize("convention", ["nernst-planck", "lattice-gas"])
def test_concentrations_non_negative_and_sites_not_overfilled(convention):
    ds = solve(_cait(convention))
    c = ds.concentration.values
    assert c.min() >= -1e-12
    if convention == "lattice-gas":
        theta = 0.9 * c.sum(axis=0)  # (1 - f_vac) * total fraction
        assert theta.max() < 1.0


def test_adaptive_time_accuracy():
    """Local error control with BDF2: the global error scales like rtol^(2/3) (error per
    step, p/(p+1)), and stays within a small multiple of rtol. Reference: rtol = 1e-7, same mesh.
    """
    base = _cait(phases=(Phase("K", 300.0, "galvanostatic", back_field_V_per_m=2e4,
                               theta_front=0.85),),
                 output_times_s=(100.0, 300.0), atol=1e-9)
    ref = solve(dataclasses.replace(base, rtol=1e-7)).concentration.values
    rtols = np.array([1e-3, 2.5e-4, 6.25e-5])
    errs = np.array([np.abs(solve(dataclasses.replace(base, rtol=r)).concentration.values
                            - ref).max() for r in rtols])
    assert np.all(errs < 5 * rtols), errs
    slope = np.polyfit(np.log(rtols), np.log(errs), 1)[0]
    assert 0.45 < slope < 1.1, (errs, slope)  # theory 2/3


@pytest.mark.parametrize("convention", ["nernst-planck", "lattice-gas"])
def test_meshes_in_time_windows_conserve_to_round_off(convention):
    """Five meshes in time (changes inside the galvanostatic and the potentiostatic phase, one
    at the phase boundary 300 s, one inside the relaxation): the conservative transfer keeps
    every inventory, so inventory change = boundary transfer to round-off as on one mesh."""
    from continuum.mesh import graded_mesh

    base = _cait(convention)
    meshes = [graded_mesh(1000.0, n, 0.1, zone_nm=z, growth=0.1)
              for n, z in ((140, 30), (160, 60), (150, 80), (170, 100), (120, 60))]
    mesh = MeshSpec(windows=tuple((t0, tuple(x)) for t0, x in
                                  zip((0.0, 150.0, 300.0, 450.0, 700.0), meshes)))
    ds = solve(dataclasses.replace(base, mesh=mesh))
    assert ds.attrs["n_remesh"] == 4 and ds.attrs["status"] == "ok"
    change = ds.inventory - ds.inventory.isel(time=0)
    transferred = ds.transferred.sum("boundary")
    total = float(ds.inventory.isel(time=0).sum())
    assert float(np.abs(transferred).max()) > 1.0
    assert float(np.abs(change - transferred).max()) < 1e-12 * total
    assert ds.concentration.values.min() >= -1e-12
