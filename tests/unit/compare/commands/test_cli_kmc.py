"""`cait kmc run|equilibrium` end to end on a tiny input: contract, resume == uninterrupted."""
import numpy as np
import pytest

from compare.workflows import run_kmc
from compare.cli import main
from compare.io.datasets import open_dataset

TINY = """
[material]
n_bulk_cm3 = 1.4e22
vacancy_fraction = 0.125    # 4 x 4 sites per layer hold exactly 14 ions
temperature_K = 300.0

[sed]
kind = "gaussian"
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

[kmc]
nx = 10
ny = 4
nz = 4
seed = 5
chunk_events = 5000
eq_size = 5
eq_blocks = 4
eq_events_per_block = 2000
eq_equilibration_events = 2000

[output]
n_times = 6
"""


@pytest.fixture
def tiny(tmp_path):
    p = tmp_path / "tiny.toml"
    p.write_text(TINY)
    return p


def test_run_writes_output_contract(tiny, tmp_path):
    out = tmp_path / "a"
    assert main(["kmc", "run", str(tiny), "-o", str(out), "--quiet"]) == 0
    ds = open_dataset(out / "kmc.nc")
    assert ds.concentration.dims == ("species", "time", "depth")
    assert list(ds.species.values) == ["Li", "K"] and ds.sizes["time"] == 6
    assert ds.attrs["status"] == "ok" and ds.attrs["engine"] == "kmc"
    assert ds.attrs["n_events"] > 0 and "input_text" in ds.attrs
    assert (out / "kmc_profiles.png").exists()
    assert not (out / "kmc_checkpoint_r0.npz").exists()  # removed after a finished run


def test_interrupted_then_resumed_equals_uninterrupted(tiny, tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    assert run_kmc.run_kmc(tiny, full, quiet=True) == 0
    ref = open_dataset(full / "kmc.nc")
    half = ref.attrs["n_events"] // 2
    assert run_kmc.run_kmc(tiny, part, quiet=True, stop_after_events=half) == 130
    partial = open_dataset(part / "kmc.nc")
    assert partial.attrs["status"] == "interrupted" and partial.attrs["n_events"] == half
    assert partial.sizes["time"] < ref.sizes["time"]
    assert (part / "kmc_checkpoint_r0.npz").exists()
    assert run_kmc.run_kmc(tiny, part, resume=True, quiet=True) == 0
    res = open_dataset(part / "kmc.nc")
    assert res.attrs["status"] == "ok" and res.attrs["n_events"] == ref.attrs["n_events"]
    for name in ref.data_vars:
        np.testing.assert_array_equal(res[name].values, ref[name].values, err_msg=name)


def test_resume_refuses_other_input_and_missing_checkpoint(tiny, tmp_path, capsys):
    out = tmp_path / "p"
    assert run_kmc.run_kmc(tiny, out, quiet=True, stop_after_events=100) == 130
    other = tmp_path / "other.toml"
    other.write_text(TINY.replace("seed = 5", "seed = 6"))
    assert main(["kmc", "run", str(other), "-o", str(out), "--resume", "--quiet"]) == 2
    assert "was written for a different input" in capsys.readouterr().err
    assert main(["kmc", "run", str(tiny), "-o", str(tmp_path / "none"), "--resume", "--quiet"]) == 2
    assert "no checkpoint for replica(s) [0]" in capsys.readouterr().err


def test_torn_checkpoint_falls_back_to_the_previous_generation(tiny, tmp_path, capsys):
    """A checkpoint torn by a crash or a full disk costs one interval, not the run: resume uses
    the previous generation and still ends equal to the uninterrupted run."""
    full, out = tmp_path / "full", tmp_path / "p"
    assert run_kmc.run_kmc(tiny, full, quiet=True) == 0
    ref = open_dataset(full / "kmc.nc")
    assert run_kmc.run_kmc(tiny, out, quiet=True, stop_after_events=100) == 130
    assert run_kmc.run_kmc(tiny, out, resume=True, quiet=True, stop_after_events=300) == 130
    ckpt = out / "kmc_checkpoint_r0.npz"
    assert (out / "kmc_checkpoint_r0.prev.npz").exists()
    ckpt.write_bytes(ckpt.read_bytes()[:200])
    capsys.readouterr()
    assert run_kmc.run_kmc(tiny, out, resume=True, quiet=True) == 0
    assert "is damaged; resuming from the previous one" in capsys.readouterr().err
    res = open_dataset(out / "kmc.nc")
    for name in ref.data_vars:
        np.testing.assert_array_equal(res[name].values, ref[name].values, err_msg=name)
    assert not ckpt.exists() and not (out / "kmc_checkpoint_r0.prev.npz").exists()


def test_torn_checkpoint_without_a_previous_one_is_one_line(tiny, tmp_path, capsys):
    out = tmp_path / "p"
    assert run_kmc.run_kmc(tiny, out, quiet=True, stop_after_events=100) == 130
    ckpt = out / "kmc_checkpoint_r0.npz"
    ckpt.write_bytes(ckpt.read_bytes()[:200])
    assert main(["kmc", "run", str(tiny), "-o", str(out), "--resume", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "kmc_checkpoint_r0.npz' is damaged (truncated or corrupt" in err[0]


def test_equilibrium_command(tiny, tmp_path):
    out = tmp_path / "eq"
    assert main(["kmc", "equilibrium", str(tiny), "--x", "1,0.5", "-o", str(out), "--quiet"]) == 0
    ds = open_dataset(out / "kmc_equilibrium.nc")
    assert ds.D_star.dims == ("species", "x") and ds.L.dims == ("species", "species2", "x")
    for name in ("D_star", "D_eff", "haven", "L"):
        assert f"{name}_sem" in ds
    assert np.isfinite(ds.D_star.sel(species="Li")).all()
    assert np.isnan(ds.D_star.sel(species="K", x=1.0))
    assert ds.attrs["error_source"] == "blocks"
    assert (out / "kmc_equilibrium.png").exists()
    assert (out / "D_eff_Li.csv").read_text().startswith("fraction,D_cm2_s\n")
    # per-block samples and the occupation by site energy are in the dataset
    assert ds.D_star_blocks.dims == ("species", "x", "sample")
    n = int(ds.n_samples_per_x[0])
    assert np.isfinite(ds.D_star_blocks.sel(species="Li", x=1.0)).sum() == n
    assert np.isclose(np.nanmean(ds.D_star_blocks.sel(species="Li", x=1.0)),
                      float(ds.D_star.sel(species="Li", x=1.0)), rtol=1e-12)
    occ = ds.occupation.sel(species="Li", x=1.0).values
    ok = np.isfinite(occ)
    assert ok.sum() >= 5 and np.all((occ[ok] >= 0) & (occ[ok] <= 1))
    # deep sites fuller than shallow ones (a Fermi-like filling; the engine's Fermi-Dirac
    # occupancy is validated in tests/validation/test_kmc_equilibrium.py)
    e = ds.energy.values[ok]
    assert occ[ok][e < np.median(e)].mean() > occ[ok][e > np.median(e)].mean()


def test_short_tracer_blocks_are_noted(tiny, tmp_path, capsys):
    out = tmp_path / "eq"
    assert main(["kmc", "equilibrium", str(tiny), "--x", "1", "-o", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    ds = open_dataset(out / "kmc_equilibrium.nc")
    hops = float(ds.hops_per_ion_per_block.min())
    assert hops < 100   # the tiny input: 2000 events per block for ~110 ions
    assert f"cait: note: tracer blocks hold {hops:.3g} hops per ion" in err
    assert ds.attrs["block_note"].startswith("tracer blocks hold")


@pytest.mark.parametrize("argv, match", [
    (["--x", "2"], "`--x` values must lie in"),
    (["--x", "a,b"], "`--x` must be a comma-separated list"),
    (["--x", "1", "--replicas", "0"], "`--replicas` must be an integer >= 1"),
])
def test_equilibrium_bad_arguments(tiny, tmp_path, capsys, argv, match):
    assert main(["kmc", "equilibrium", str(tiny), "-o", str(tmp_path)] + argv) == 2
    assert match in capsys.readouterr().err


def test_replicas_merge_with_mean_and_sem(tiny, tmp_path):
    out = tmp_path / "r"
    assert main(["kmc", "run", str(tiny), "-o", str(out), "--replicas", "2", "--quiet"]) == 0
    ds = open_dataset(out / "kmc.nc")
    assert ds.concentration.dims[0] == "replica" and ds.sizes["replica"] == 2
    assert "concentration_mean" in ds and "concentration_sem" in ds
    single = tmp_path / "s"
    assert run_kmc.run_kmc(tiny, single, replicas=1, quiet=True) == 0
    # replica 0 of the ensemble is the single-replica run (same derived seed)
    np.testing.assert_array_equal(ds.concentration.isel(replica=0).values,
                                  open_dataset(single / "kmc.nc").concentration.values)
    # the plateau analysis and the measured mobility ratio are in every CAIT kmc.nc
    for key in ("plateau_level", "plateau_sem", "plateau_change", "plateau_frozen",
                "D_ratio_native_over_foreign", "D_foreign_eff_cm2_s", "D_native_bulk_cm2_s"):
        assert key in ds.attrs, key
    assert ds.plateau.dims == ("replica", "time") and ds.plateau_mean.dims == ("time",)
    assert ds.D_foreign_eff_cm2_s > 0 and "field_avg" in ds
    # cait kmc plateau recomputes it from the file alone, keeping the run's command line
    run_cmd = ds.attrs["command_line"]
    assert main(["kmc", "plateau", str(out / "kmc.nc"), "--quiet"]) == 0
    again = open_dataset(out / "kmc.nc")
    assert again.attrs["run_command_line"] == run_cmd
    np.testing.assert_array_equal(again.plateau.values, ds.plateau.values)
    assert again.attrs["D_foreign_eff_cm2_s"] == ds.attrs["D_foreign_eff_cm2_s"]


def test_unreachable_scheduler_is_one_line_within_the_timeout(tiny, tmp_path, capsys):
    import socket
    import time

    with socket.socket() as s:            # a free port on loopback where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    fast = tmp_path / "fast.toml"
    fast.write_text(TINY.replace("[kmc]", "[kmc]\nscheduler_timeout_s = 2.0"))
    t0 = time.monotonic()
    code = main(["kmc", "run", str(fast), "-o", str(tmp_path / "o"), "--quiet",
                 "--scheduler", f"tcp://127.0.0.1:{port}"])
    elapsed = time.monotonic() - t0
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert f"`--scheduler` 'tcp://127.0.0.1:{port}': no dask scheduler answered within 2 s" in err[0]
    assert elapsed < 30.0  # the timeout, not distributed's default retries (measured ~2-3 s)


def test_failed_run_writes_what_it_had(tiny, tmp_path, capsys):
    """A field runaway (beam current far above what the lattice carries) stops the engine; the
    run still writes kmc.nc with status "failed" and the reason, and exits 2 with one line."""
    bad = tmp_path / "runaway.toml"
    # the beam current is sigma_NPP E_back with sigma from the native D_cm2_s: 1e7x too much
    bad.write_text(TINY.replace("D_cm2_s = 1e-13", "D_cm2_s = 1e-6"))
    out = tmp_path / "o"
    assert main(["kmc", "run", str(bad), "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "non-finite" in err[0] and "status \"failed\"" in err[0]
    ds = open_dataset(out / "kmc.nc")
    assert ds.attrs["status"] == "failed" and "non-finite" in ds.attrs["message"]
    assert ds.attrs["n_events"] > 0


@pytest.mark.parametrize("change, match", [
    (("ny = 4\nnz = 4", "ny = 2\nnz = 2"), r"`ny` must be >= 3 \(periodic\), got 2"),
    (("vacancy_fraction = 0.125", "vacancy_fraction = 0.01"),
     r"`vacancy_fraction` = 0.01 leaves no vacancy in a layer of ny x nz = 16 sites"),
])
def test_degenerate_lattices_are_refused_before_any_worker(tiny, tmp_path, capsys, change, match):
    import re
    import time

    bad = tmp_path / "bad.toml"
    bad.write_text(TINY.replace(*change))
    t0 = time.monotonic()
    out = tmp_path / "o"
    assert main(["kmc", "run", str(bad), "-o", str(out), "--replicas", "2", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(match, err[0]), err
    assert time.monotonic() - t0 < 5.0 and not out.exists()   # no cluster, no folder


def test_filling_that_the_lattice_cannot_realise_is_noted(tiny, tmp_path, capsys):
    odd = tmp_path / "odd.toml"   # 3 x 3 sites per layer: round(0.9 x 9) = 8 ions, f_eff = 0.111
    odd.write_text(TINY.replace("ny = 4\nnz = 4", "ny = 3\nnz = 3").replace(
        "vacancy_fraction = 0.125", "vacancy_fraction = 0.10"))
    assert main(["kmc", "run", str(odd), "-o", str(tmp_path / "o"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "cait: note: the lattice realises vacancy_fraction 0.1111 instead of 0.1 (+11 %)" in err
    assert "0.1111" in open_dataset(tmp_path / "o" / "kmc.nc").attrs["filling_note"]


def test_run_prints_a_measured_cost_estimate(tiny, tmp_path, capsys):
    from compare import scenario
    from compare.io.config import load_config

    est = run_kmc.estimate_cost(scenario.kmc_params(load_config(tiny)), 5, 2, n_workers=1,
                                probe_events=2000, warmup_events=1000)
    assert est["events_per_replica"] > 0 and est["events_per_s"] > 0
    assert est["seconds"] == pytest.approx(2 * est["events_per_replica"] / est["events_per_s"])
    assert main(["kmc", "run", str(tiny), "-o", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "events per replica" in out and "M events/s measured now on this machine" in out


MINIMAL = """
[material]
vacancy_fraction = 0.125
[sed]
fwhm_eV = 0.0
[species.Li]
role = "native"
E_DC_eV = 0.3
[kmc]
seed = 3
eq_size = 4
eq_blocks = 4
eq_events_per_block = 20000
eq_equilibration_events = 2000
"""


def test_equilibrium_at_x1_from_a_minimal_input_on_the_ordered_lattice(tmp_path, capsys):
    """`--x 1` needs no foreign species, beam or D; `fwhm_eV = 0` is the ordered lattice."""
    path = tmp_path / "minimal.toml"
    path.write_text(MINIMAL)
    out = tmp_path / "eq"
    assert main(["kmc", "equilibrium", str(path), "--x", "1", "-o", str(out), "--quiet"]) == 0
    # a 4^3 lattice holds 56 Li ions: the few-ions note says so (stderr and attr)
    err = capsys.readouterr().err
    assert "cait: note: few ions per replica lattice (x = 1: 56 Li; fewer than 150)" in err
    ds = open_dataset(out / "kmc_equilibrium.nc")
    assert ds.attrs["few_ions_note"].startswith("few ions per replica lattice (x = 1: 56 Li")
    assert np.isfinite(float(ds.D_star.sel(species="Li", x=1.0)))
    occ = ds.occupation.sel(species="Li", x=1.0).values
    assert np.isfinite(occ).sum() == 1            # every site at one energy
    assert float(np.nanmax(occ)) == pytest.approx(0.875, abs=1e-12)
    for argv, match in ((["npp", "run", str(path)], r"an NPP run needs a beam schedule"),
                        (["kmc", "run", str(path)], r"a KMC CAIT run needs a foreign species"),
                        (["sed", str(path)], r"`species.Li.D_cm2_s` is required by `cait sed`"),
                        (["kmc", "equilibrium", str(path), "--x", "0.5"],
                         r"`--x` below 1 needs a foreign species")):
        assert main(argv + ["-o", str(tmp_path / "x")]) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and __import__("re").search(match, err[0]), (argv, err)


def test_the_ordered_lattice_is_kmc_only(tmp_path, capsys):
    path = tmp_path / "ordered.toml"
    path.write_text(TINY.replace("fwhm_eV = 0.10", "fwhm_eV = 0.0"))
    assert main(["npp", "run", str(path), "-o", str(tmp_path / "n")]) == 2
    assert "`sed.fwhm_eV` = 0 (the ordered lattice) is for KMC runs only" in capsys.readouterr().err


def test_compositions_with_few_ions_are_noted():
    """The few-ions note names each composition and species below MIN_IONS on the eq_size^3
    lattice (10^3, 10 % vacancies: 900 ions; x = 0.05 -> 45 natives), nothing above."""
    from types import SimpleNamespace

    import xarray as xr

    from compare.workflows.run_kmc import MIN_IONS, few_ions_note

    xs = [0.05, 0.2, 1.0]
    ds = xr.Dataset({"D_eff": (("species", "x"), np.ones((2, 3)))},
                    coords={"species": ["Li", "K"], "x": xs})
    cfg = SimpleNamespace(kmc=SimpleNamespace(eq_size=10),
                          material=SimpleNamespace(vacancy_fraction=0.1))
    note = few_ions_note(ds, cfg)
    assert note.startswith("few ions per replica lattice (x = 0.05: 45 Li; ")
    assert f"fewer than {MIN_IONS})" in note and "x = 0.2: 180" not in note
    # x = 1 has no K at all: nothing to note there; a NaN D is not a measured value
    assert "x = 1:" not in note
    ds["D_eff"].loc[dict(species="Li", x=0.05)] = np.nan
    assert few_ions_note(ds, cfg) == ""
    big = SimpleNamespace(kmc=SimpleNamespace(eq_size=20), material=cfg.material)
    assert few_ions_note(ds, big) == ""
