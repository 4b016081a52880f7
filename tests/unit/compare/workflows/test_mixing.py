"""compare.workflows.mixing building blocks: reference occupancies, Fermi levels, distances, fits, errors,
landscape reconstruction and the `cait mixing` command."""
import numpy as np
import pytest
import xarray as xr

from compare.workflows import mixing as mx
from compare.workflows import mixing_models as mm
from compare.cli import main
from compare.errors import ConfigError
from compare.io.datasets import open_dataset, write_dataset
from kmc.engine import KMCParams, Simulation, Species, fermi_level
from kmc.lattice import Gaussian

KT = 0.025852


def test_equilibrium_one_species_is_the_fermi_function(rng):
    E = rng.normal(0.0, 0.1, (1, 3000))
    p, mu = mm.equilibrium_occupancy(E, [1200.0], KT)
    mu_ref = fermi_level(E[0], 1200.0, KT)
    assert abs(mu[0] - mu_ref) < 1e-9
    np.testing.assert_allclose(p[0], 1 / (1 + np.exp((E[0] - mu_ref) / KT)), atol=1e-9)


def test_equilibrium_two_species_counts_and_formula(rng):
    E = np.vstack([rng.normal(0, 0.1, 2000), rng.normal(0.05, 0.08, 2000)])
    p, mu = mm.equilibrium_occupancy(E, [900.0, 700.0], KT)
    np.testing.assert_allclose(p.sum(axis=1), [900.0, 700.0], rtol=1e-9)
    w = np.exp(-(E - mu[:, None]) / KT)
    np.testing.assert_allclose(p, w / (1 + w.sum(axis=0)), rtol=1e-9, atol=1e-15)


def test_equilibrium_identical_landscapes_share_the_sites_evenly(rng):
    e = rng.normal(0, 0.1, 1000)
    p, _ = mm.equilibrium_occupancy(np.vstack([e, e]), [600.0, 200.0], KT)
    np.testing.assert_allclose(p[0] / p[1], 3.0, rtol=1e-8)


def test_equilibrium_absent_species_and_full_slab(rng):
    E = rng.normal(0, 0.1, (2, 500))
    p, mu = mm.equilibrium_occupancy(E, [300.0, 0.0], KT)
    assert np.all(p[1] == 0) and mu[1] == -np.inf
    p, _ = mm.equilibrium_occupancy(E, [300.0, 200.0], KT)   # no vacancy left: total -> n - 1/2
    assert abs(p.sum() - 499.5) < 1e-6


def test_top_down_fills_bottom_and_vacated_sites():
    e0 = np.arange(10.0)                       # native ranks = index
    e1 = np.array([9, 8, 7, 6, 5, 4, 3, 2, 1, 0.0])
    occ = mm.top_down_occupancy(np.vstack([e0, e1]), [4.0, 3.0], n_native0=8)
    np.testing.assert_array_equal(occ[0], [1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    # vacated = native ranks 4..7; foreign take the 3 of lowest foreign energy: 7, 6, 5
    np.testing.assert_array_equal(occ[1], [0, 0, 0, 0, 0, 1, 1, 1, 0, 0])
    occ = mm.top_down_occupancy(np.vstack([e0, e1]), [4.0, 5.5], n_native0=8)
    # all 4 vacated sites, then 1.5 ions on the lowest-foreign-energy remaining sites 9, 8
    np.testing.assert_allclose(occ[1], [0, 0, 0, 0, 1, 1, 1, 1, 0.5, 1])
    np.testing.assert_allclose(occ.sum(axis=1), [4.0, 5.5])


def test_step_fermi_level_interpolates_cumulative_count():
    edges = np.linspace(-0.5, 0.5, 11)
    sc = np.full(10, 10.0)
    assert mm.step_fermi_level(sc, 25.0, edges) == pytest.approx(-0.25)
    assert np.isnan(mm.step_fermi_level(sc, 0.0, edges))
    assert np.isnan(mm.step_fermi_level(sc, 101.0, edges))


def test_fermi_fit_recovers_mu_and_kT():
    E = np.linspace(-0.4, 0.4, 81)
    sites = np.full(E.size, 1e5)
    occ = sites / (1 + np.exp((E - 0.07) / 0.03))
    r = mm.fit_fermi(E, sites, occ, KT)
    assert abs(r["mu"] - 0.07) < 1e-4 and abs(r["kT"] - 0.03) < 1e-4
    assert abs(r["amplitude"] - 1) < 1e-3
    assert np.isnan(mm.fit_fermi(E, sites, np.zeros(E.size), KT)["mu"])


def test_distances_are_zero_for_equal_and_one_for_disjoint():
    a = np.array([1.0, 2.0, 0.0, 0.0])
    assert mm.tv_distance(a, 3 * a) == 0 and mm.hellinger_distance(a, 3 * a) == 0
    b = np.array([0.0, 0.0, 5.0, 1.0])
    assert mm.tv_distance(a, b) == 1 and mm.hellinger_distance(a, b) == pytest.approx(1)
    assert np.isnan(mm.tv_distance(a, 0 * a))


def test_segregation_index_is_the_mixing_coefficient(rng):
    eq, td = rng.random(50) * 100, rng.random(50) * 100
    assert mm.segregation_index(eq + 0.3 * (td - eq), eq, td) == pytest.approx(0.3)
    assert np.isnan(mm.segregation_index(eq, eq, eq))


def test_relaxation_fit_statuses(rng):
    t = np.linspace(0, 10, 12)
    err = np.full(t.size, 0.01)
    r = mm.fit_relaxation(t, np.exp(-t / 2.0) + rng.normal(0, 0.01, t.size), err, 0.0)
    assert r["status"] == "fitted" and abs(r["tau_s"] - 2.0) < 5 * r["tau_err_s"]
    r = mm.fit_relaxation(t, np.exp(-t / 500.0), err, 0.0)
    assert r["status"] == "not reached within the run"
    assert mm.fit_relaxation(t, np.zeros(t.size), err, 0.0)["status"] == "already mixed"
    assert mm.fit_relaxation(t[:2], t[:2], err[:2], 0.0)["status"] == "insufficient data"


def test_unknown_model_is_rejected():
    with pytest.raises(ConfigError, match=r"unknown mixing model 'fermi'; legal: \['equilibrium', 'top-down'\]"):
        mm.get_model("fermi")


# ------------------------------------------------------------------ datasets and errors
def _params(nx=6, n=4):
    sp = (Species("Li", "native", E_DC_eV=0.3), Species("K", "foreign", E_DC_eV=0.3, sigma_eV=0.1, rho=0.5))
    return KMCParams(nx=nx, ny=n, nz=n, species=sp, native_sampler=Gaussian.from_fwhm(0.25),
                     geometry="periodic", composition_x=0.5, output_times_s=(1e-9, 2e-9), n_slabs=2)


@pytest.fixture(scope="module")
def small():
    sim = Simulation(_params(), 3).run()
    return sim, sim.to_dataset()


def test_landscape_from_params_reproduces_the_engine(small):
    sim, _ = small
    land = mx.landscape_from_params(sim.params, [3])
    np.testing.assert_array_equal(land.energies[0], sim.site_energies())


def test_analyze_errors(small):
    sim, ds = small
    land = mx.landscape_from_simulation(sim)
    with pytest.raises(ConfigError, match="no `occupancy_count`"):
        mx.analyze(ds.drop_vars("occupancy_count"), landscape=land)
    with pytest.raises(ConfigError, match="at least two species"):
        mx.analyze(ds.isel(species=[0]), landscape=mx.Landscape([sim.site_energies()[:1]], 16))
    with pytest.raises(ConfigError, match=r"landscape has 2 replica\(s\), dataset 1"):
        mx.analyze(ds, landscape=mx.Landscape([sim.site_energies()] * 2, 16))
    with pytest.raises(ConfigError, match="no `input_text`"):
        mx.analyze(ds)


def test_result_labels(small):
    sim, ds = small
    r = mx.analyze(ds, landscape=mx.landscape_from_simulation(sim), n_null=4)
    assert r.occupancy_count.dims == ("time", "slab", "energy", "species")
    for v in r.data_vars:
        assert "units" in r[v].attrs and "long_name" in r[v].attrs, v
    assert set(r.model.values) == set(mm.MODELS)
    assert r.attrs["verdict_answer"] in ("supported", "not supported", "partly supported", "inconclusive")
    # populated densities integrate to the ion fraction of the slab
    dE = float(r.energy[1] - r.energy[0])
    np.testing.assert_allclose(r.populated_density.sum("energy") * dE, r.site_fraction, rtol=1e-12)


TINY = """
[material]
n_bulk_cm3 = 1.4e22
[sed]
fwhm_eV = 0.10
[species.Li]
role = "native"
D_cm2_s = 1e-13
E_DC_eV = 0.3
[species.K]
role = "foreign"
D_cm2_s = 1e-14
E_DC_eV = 0.3
[[beam]]
species = "K"
duration_s = 1e-6
back_field_V_per_m = 1e7
[[beam]]
duration_s = 1e-6
drive = "off"
[kmc]
nx = 8
ny = 4
nz = 4
seed = 5
[output]
n_times = 5
"""


def test_cli_mixing_on_a_kmc_run(tmp_path):
    inp = tmp_path / "tiny.toml"
    inp.write_text(TINY)
    assert main(["kmc", "run", str(inp), "-o", str(tmp_path), "--quiet"]) == 0
    assert main(["mixing", str(tmp_path / "kmc.nc"), "-o", str(tmp_path / "m"), "--quiet"]) == 0
    r = open_dataset(tmp_path / "m" / "mixing.nc")
    assert r.attrs["landscape_source"] == "reconstructed"   # input text + seed -> exact sites
    assert r.attrs["phase_drives"] == "galvanostatic, off"
    for f in ("mixing.md", "mixing_psed.png", "mixing_distance.png", "mixing_fermi.png"):
        assert (tmp_path / "m" / f).exists(), f
    assert "no intermixing" in (tmp_path / "m" / "mixing.md").read_text()


def test_cli_mixing_rejects_other_datasets(tmp_path, capsys):
    p = write_dataset(xr.Dataset(attrs={"engine": "npp"}), tmp_path / "npp.nc")
    assert main(["mixing", str(p), "--quiet"]) == 2
    assert "is not a KMC dataset (engine = 'npp')" in capsys.readouterr().err
    assert main(["mixing", str(tmp_path / "missing.nc"), "--quiet"]) == 2
