"""compare.workflows.double_cait: local effective D from profiles, on synthetic data with a known D."""
from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr
from scipy import sparse, special
from scipy.integrate import solve_ivp

from compare.workflows import double_cait as dc
from compare.errors import ConfigError, InputFileError

KT = 0.025852  # eV (300 K)


def _npp_like(x, times, c, q_front, field=None, other=None):
    """A dataset with the NPP output contract: species A (+ an inert B filling the rest)."""
    n_t = times.size
    field = np.zeros((n_t, x.size - 1)) if field is None else field
    other = (1.0 - c) if other is None else other
    conc = np.stack([c, other])
    tr = np.zeros((2, 2, n_t))
    tr[0, 0] = q_front
    return xr.Dataset(
        {"concentration": (("species", "time", "depth"), conc),
         "field": (("time", "depth_face"), field),
         "transferred": (("species", "boundary", "time"), tr)},
        coords={"species": ["A", "B"], "time": times, "depth": x,
                "depth_face": 0.5 * (x[1:] + x[:-1]), "boundary": ["front", "back"]},
        attrs={"engine": "npp"})


def _erfc_dataset(D_nm2_s, times, x):
    """Diffusion from a c = 1 reservoir into a half space: c = erfc(x / 2 sqrt(D t))."""
    t = np.maximum(times, 1e-300)[:, None]
    c = special.erfc(x[None, :] / (2 * np.sqrt(D_nm2_s * t)))
    c[times == 0] = 0.0
    q = 2.0 * np.sqrt(D_nm2_s * times / math.pi)
    return _npp_like(x, times, c, q)


def _nonlinear_dataset(D_of_c, times, L=40.0, n=300):
    """dc/dt = d/dx (D(c) dc/dx), c(0) = 1, zero flux at L; vertex-centred finite volumes."""
    x = np.linspace(0.0, L, n + 1)
    h = x[1] - x[0]

    def rhs(t, u):
        c = np.concatenate(([1.0], u))
        Df = 0.5 * (D_of_c(c[1:]) + D_of_c(c[:-1]))
        flux = -Df * np.diff(c) / h  # faces 0..n-1
        out = np.empty_like(u)
        out[:-1] = (flux[:-1] - flux[1:]) / h
        out[-1] = flux[-1] / (0.5 * h)
        return out

    pattern = sparse.diags([1.0, 1.0, 1.0], [-1, 0, 1], shape=(n, n), dtype=float)  # tridiagonal Jacobian
    sol = solve_ivp(rhs, (0, times[-1]), np.zeros(n), t_eval=times, method="BDF", rtol=1e-7,
                    atol=1e-10, jac_sparsity=pattern)
    c = np.concatenate([np.ones((1, times.size)), sol.y]).T
    c[0, 0] = 0.0  # the reservoir is switched on at t = 0+
    # particles entered = inventory (nothing leaves), trapezoid = the estimator's quadrature
    q = np.sum(0.5 * (c[:, 1:] + c[:, :-1]) * h, axis=1)
    return _npp_like(x, times, c, q)


def test_constant_D_recovered_from_erfc_profiles():
    D = 50.0  # nm^2/s
    ds = _erfc_dataset(D, np.linspace(0, 2.0, 81), np.linspace(0, 60, 1201))
    r = dc.analyse(ds, "A", [("all", 0.0, 2.0)], KT, 0.1, min_force_frac=0.02, c_min=0.05)
    got = r.D.sel(phase="all").values
    ok = np.isfinite(got)
    assert ok.sum() >= 8
    e = np.abs(got[ok] - D * 1e-14) / (0.01 * D * 1e-14)  # rtol 1 %: time-midpoint errors
    assert np.all(e < 5), got[ok]
    assert str(r.verdict.sel(phase="all").values) == "constant"
    assert abs(float(r.ratio.sel(phase="all")) - 1.0) < 0.05


def test_concentration_dependent_D_recovered():
    D0, beta = 5.0, math.log(20.0)  # D(c) = D0 exp(beta c): x20 from c = 0 to 1

    def D_of_c(c):
        return D0 * np.exp(beta * c)

    ds = _nonlinear_dataset(D_of_c, np.linspace(0, 4.0, 161))
    r = dc.analyse(ds, "A", [("all", 0.0, 4.0)], KT, 0.1, min_force_frac=0.02, c_min=0.05)
    x = r.sel(phase="all")
    ok = np.isfinite(x.D.values)
    truth = D_of_c(x.c_mean.values[ok]) * 1e-14
    # bin means of a nonlinear D over a bin of width 0.1: D(mean c) within exp(beta 0.05) ~ 16 %
    assert np.all(np.abs(np.log(x.D.values[ok] / truth)) < 0.16), (x.D.values, truth)
    assert abs(float(x.beta) - beta) < 0.1 * beta, float(x.beta)
    assert str(x.verdict.values) == "concentration dependent"


@pytest.mark.parametrize("ny, nz, integer_bg", [(10, 10, False), (5, 5, True)])
def test_drift_only_kmc_layers(ny, nz, integer_bg):
    """KMC-style layers: uniform c and field, steady drift; J from the front counter.

    ``integer_bg``: the dataset carries the engine's integer background ``n_bg`` (5 x 5 at
    f_vac 0.1: 22 ions per layer, not 22.5 -- the old formula would be 2 % off, far above the
    counter rounding the assertion allows).
    """
    a, nx, f_vac = 0.4, 12, 0.1
    n_bg = round((1 - f_vac) * ny * nz) if integer_bg else (1 - f_vac) * ny * nz
    c0, E = 0.6, 2.0e7  # fraction, V/m
    D_nm2_s = 30.0
    J = D_nm2_s * c0 * E * 1e-9 / KT  # n_bulk nm/s
    times = np.linspace(0, 1.0, 11)
    counts = np.round(J * times * n_bg / a).astype(np.int64)  # ions entered (integer counter)
    conc = np.zeros((2, times.size, nx))
    conc[0] = c0
    conc[1] = 1 - c0
    ds = xr.Dataset(
        {"concentration": (("species", "time", "depth"), conc),
         "field": (("time", "gap_depth"), np.full((times.size, nx + 1), E)),
         "front_net_in": (("time", "species"), np.stack([counts, 0 * counts], axis=1))},
        coords={"species": ["A", "B"], "time": times, "depth": (np.arange(nx) + 0.5) * a,
                "gap_depth": np.arange(nx + 1) * a},
        attrs={"engine": "kmc", "a_nm": a, "ny": ny, "nz": nz, "vacancy_fraction": f_vac})
    if integer_bg:
        ds.attrs["n_bg"] = np.int64(n_bg)
    r = dc.analyse(ds, "A", [("p", 0.0, 1.0)], KT, f_vac)
    got = r.D.sel(phase="p").values
    got = got[np.isfinite(got)]
    assert got.size == 1
    # counts are integers: relative rounding error <= 0.5 / counts[-1]
    assert abs(got[0] / (D_nm2_s * 1e-14) - 1) < 0.5 / counts[-1] + 1e-12


def test_lattice_gas_force_equals_nernst_planck_at_uniform_occupancy():
    rng = np.random.default_rng(1)
    p = dict(c=rng.random((3, 5)), dcdx=rng.normal(size=(3, 5)), field=rng.normal(size=(3, 5)) * 1e7,
             theta=np.full((3, 5), 0.9), dthetadx=np.zeros((3, 5)))
    np.testing.assert_allclose(dc.DRIVING_FORCES["lattice-gas"](p, KT),
                               dc.DRIVING_FORCES["nernst-planck"](p, KT))
    p["dthetadx"] = np.full((3, 5), 0.01)
    assert np.all(dc.DRIVING_FORCES["lattice-gas"](p, KT) < dc.DRIVING_FORCES["nernst-planck"](p, KT))


def test_log_linear_fit_and_verdict():
    c = np.linspace(0.1, 0.9, 9)
    D = 1e-15 * np.exp(2.0 * c)
    fit = dc.log_linear_fit(c, D, 0.01 * D)
    assert fit["beta"] == pytest.approx(2.0, rel=1e-9)
    assert fit["ratio"] == pytest.approx(math.exp(1.6), rel=1e-9)
    assert dc.verdict(fit, min_ratio=3.0) == "concentration dependent"
    assert dc.verdict(fit, min_ratio=10.0) == "constant"
    assert dc.verdict(dc.log_linear_fit(c[:1], D[:1], D[:1])) == "constant (narrow c range)"
    assert dc.verdict(dc.log_linear_fit(c[:2], D[:2], 0.01 * D[:2])) == "constant (narrow c range)"
    assert dc.verdict(dc.log_linear_fit(c[:0], D[:0], D[:0])) == "undetermined"
    assert set(dc.VERDICTS) >= {dc.verdict(fit), "undetermined"}


def test_phase_windows_and_cait_phases():
    assert dc.phase_windows([1.0, 2.0, 0.5]) == [(0.0, 1.0), (1.0, 3.0), (3.0, 3.5)]


def test_errors_name_the_legal_values():
    ds = _erfc_dataset(10.0, np.linspace(0, 1, 5), np.linspace(0, 10, 11))
    with pytest.raises(ConfigError, match="legal: nernst-planck, lattice-gas"):
        dc.analyse(ds, "A", [("p", 0, 1)], KT, 0.1, convention="fick")
    with pytest.raises(ConfigError, match="species 'Cs' not in the dataset; legal: A, B"):
        dc.analyse(ds, "Cs", [("p", 0, 1)], KT, 0.1)
    bad = ds.assign_attrs(engine="sims")
    with pytest.raises(InputFileError, match="unknown dataset engine 'sims'"):
        dc.analyse(bad, "A", [("p", 0, 1)], KT, 0.1)
    with pytest.raises(InputFileError, match="needs `field` and `transferred`"):
        dc.analyse(ds.drop_vars("field"), "A", [("p", 0, 1)], KT, 0.1)


SMALL_DOUBLE = """
[material]
n_bulk_cm3 = 1.4e22
vacancy_fraction = 0.10
temperature_K = 300.0
eps_r = 8.0

[sed]
kind = "gaussian"
fwhm_eV = 0.100

[species.Li]
role = "native"
D_model = "sed"
D_cm2_s = 1.0e-13

[species.Rb]
role = "foreign"
D_model = "constant"
D_cm2_s = 2.0e-14

[species.Cs]
role = "foreign"
D_model = "constant"
D_cm2_s = 5.0e-15

[sample]
thickness_nm = 30.0
back = "bulk"

[[beam]]
species = "Rb"
duration_s = 2.0
drive = "potentiostatic"
voltage_V = 0.3

[[beam]]
species = "Cs"
duration_s = 2.0
drive = "potentiostatic"
voltage_V = 0.3

[npp]
solver = "full"
flux = "nernst-planck"
n_cells = 120
h_surface_nm = 0.05

[output]
n_times = 41
"""


def test_run_double_npp_recovers_the_constant_D(tmp_path):
    """End to end on a small NPP double CAIT: D_Rb (constant by construction) is recovered."""
    import argparse

    from compare.commands import double as cmd

    inp = tmp_path / "double.toml"
    inp.write_text(SMALL_DOUBLE)
    parser = argparse.ArgumentParser()
    cmd.register(parser.add_subparsers())
    args = parser.parse_args(["double", str(inp), "--engines", "npp", "-o", str(tmp_path / "o"),
                              "--quiet"])
    assert args.func(args) == 0
    ds = xr.open_dataset(tmp_path / "o" / "double.nc")
    assert ds.attrs["species"] == "Rb"
    assert list(ds.phase.values) == ["1:Rb", "2:Cs"]
    D = ds.D.sel(engine="npp").values
    ok = np.isfinite(D)
    assert ok.sum() >= 3
    e = np.abs(D[ok] - 2.0e-14) / (0.02 * 2.0e-14)  # rtol 2 %: interval-midpoint averaging
    assert np.all(e < 5), D[ok]
    assert str(ds.verdict.sel(engine="npp", phase="2:Cs").values).startswith("constant")
    assert "| npp | nernst-planck | 2:Cs |" in (tmp_path / "o" / "double.md").read_text()
    with pytest.raises(ConfigError, match="unknown engine 'sims'; legal: kmc, npp"):
        dc.run_double(inp, out_dir=tmp_path / "o", engines=("sims",), quiet=True)
    with pytest.raises(ConfigError, match="species 'K' is not in the input; legal: Li, Rb, Cs"):
        dc.run_double(inp, out_dir=tmp_path / "o", engines=("npp",), species="K", quiet=True)


def test_replica_betas_one_value_per_replica():
    times, x = np.linspace(0, 2.0, 41), np.linspace(0, 60, 601)
    runs = [_erfc_dataset(D, times, x) for D in (50.0, 50.0)]
    merged = xr.concat(runs, dim="replica", data_vars="all", coords="minimal", compat="override")
    phases = [("all", 0.0, 2.0)]
    b = dc.replica_betas(merged, "A", phases, KT, 0.1, min_force_frac=0.02, c_min=0.05)
    single = dc.analyse(runs[0], "A", phases, KT, 0.1, min_force_frac=0.02, c_min=0.05)
    assert b.shape == (2, 1)
    np.testing.assert_allclose(b[:, 0], float(single.beta[0]), rtol=1e-12)
    assert abs(b[0, 0]) < 0.05  # constant D: no slope
    assert dc.replica_betas(runs[0], "A", phases, KT, 0.1).shape == (0, 1)
