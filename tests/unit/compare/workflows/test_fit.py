"""The fitting machinery on a cheap analytic forward model (the NPP solver is tested in
tests/validation/test_fit_recovery.py): parameter validation, recovery, uncertainties, CLI."""
import numpy as np
import pytest
import xarray as xr
from scipy.special import erfc

from compare.reports.fit import plot_fit
from compare.workflows import fit as fitmod
from compare.cli import main
from compare.io.config import parse_text
from compare.errors import ConfigError, InputFileError
from compare.io.profiles import MeasuredProfiles

BASE = """
[material]
n_bulk_cm3 = 1.4e22
[sed]
fwhm_eV = 0.25
[species.Li]
role = "native"
D_cm2_s = 1.5e-13
[species.K]
role = "foreign"
D_cm2_s = 9e-17
[sample]
thickness_nm = 200.0
[npp]
mesh = "graded"
n_cells = 120
[[beam]]
species = "K"
duration_s = 1.0e4
back_field_V_per_m = 2e4
[fit]
n_starts = 3
workers = 1
parameters = [
  {name = "species.K.D_cm2_s", lower = 1e-17, upper = 1e-15},
  {name = "sed.fwhm_eV", lower = 0.15, upper = 0.40},
  {name = "species.Li.D_cm2_s", lower = 1e-14, upper = 1e-12},
]
"""
TRUTH = {"species.K.D_cm2_s": 9e-17, "sed.fwhm_eV": 0.25, "species.Li.D_cm2_s": 1.5e-13}


def toy_forward(cfg):
    """An analytic CAIT-like profile: K front at 2 sqrt(D_K t), Li plateau set by the FWHM,
    width of the Li step set by D_Li. Smooth in all three parameters."""
    t = cfg.total_duration_s
    x = np.linspace(0.0, cfg.sample.thickness_nm, cfg.npp.n_cells)
    k = cfg.species_by_name("K").D_cm2_s
    li = cfg.species_by_name("Li").D_cm2_s
    front = 2e7 * np.sqrt(k * t)  # nm
    width = 0.05e7 * np.sqrt(li * t)
    plateau = 0.6 * cfg.sed.fwhm_eV
    theta = cfg.beam[0].theta_front
    c_k = theta * 0.5 * erfc((x - front) / width)
    c_li = 1.0 - (1.0 - plateau) * 0.5 * erfc((x - front) / width)
    conc = np.stack([c_li, c_k])[:, None, :]
    return xr.Dataset({"concentration": (("species", "time", "depth"), conc)},
                      coords={"species": ["Li", "K"], "time": [t], "depth": x})


def _measured(cfg, sigma, rng=None, depth=None):
    conc = toy_forward(cfg)["concentration"].isel(time=-1)
    depth = np.linspace(1.0, 120.0, 40) if depth is None else depth
    vals = np.stack([np.interp(depth, conc["depth"], row) for row in conc.values])
    if rng is not None:
        vals = vals + rng.normal(0.0, sigma, vals.shape)
    errs = np.full_like(vals, sigma) if sigma else None
    return MeasuredProfiles(depth, ("Li", "K"), vals, errs, source="synthetic")


@pytest.fixture
def cfg():
    return parse_text(BASE)


def test_parameters_are_parsed_with_log_scale_for_D(cfg):
    params = fitmod.fit_parameters(cfg)
    assert [p.name for p in params] == list(TRUTH)
    assert [p.log_scale for p in params] == [True, False, True]
    assert params[0].start == 9e-17 and params[0].fit_bounds == (-17.0, -15.0)
    assert params[0].fit_name == "log10(species.K.D_cm2_s)"


@pytest.mark.parametrize("params, match", [
    ("[]", r"`fit.parameters` is empty: name at least one free parameter"),
    ('[{name = "sed.fwhm", lower = 0.1, upper = 0.3}]',
     r"`fit.parameters\[0\].name` must be one of sed.fwhm_eV, .*, got 'sed.fwhm' \(did you mean "
     r"`sed.fwhm_eV`\?\)"),
    ('[{name = "species.Na.D_cm2_s", lower = 1e-16, upper = 1e-14}]',
     r"got 'species.Na.D_cm2_s' \(did you mean `species.K.D_cm2_s`\?\)"),
    ('[{lower = 0.1, upper = 0.3}]', r"`fit.parameters\[0\].name` is required"),
    ('[{name = "sed.fwhm_eV", lower = 0.1, uper = 0.3}]',
     r"unknown key `fit.parameters\[0\].uper` \(did you mean `upper`\?\)"),
    ('[{name = "sed.fwhm_eV", lower = 0.1}]', r"`fit.parameters\[0\].upper` is required"),
    ('[{name = "sed.fwhm_eV", lower = 0.3, upper = 0.1}]',
     r"`fit.parameters\[0\]`: `lower` must be < `upper`, got 0.3 >= 0.1"),
    ('[{name = "sed.fwhm_eV", lower = "a", upper = 0.1}]',
     r"`fit.parameters\[0\].lower` must be a finite number, got 'a'"),
    ('[{name = "sed.fwhm_eV", lower = 0.0, upper = 0.4}]',
     r"bounds of sed.fwhm_eV must lie in \(0, inf\), got \[0, 0.4\]"),
    ('[{name = "material.vacancy_fraction", lower = 0.05, upper = 1.0}]',
     r"bounds of material.vacancy_fraction must lie in \[0, 1\), got \[0.05, 1\]"),
    ('[{name = "sed.center_eV", lower = -0.1, upper = 0.1, log_scale = true}]',
     r"`fit.parameters\[0\]`: `log_scale = true` needs `lower` > 0, got -0.1"),
    ('[{name = "sed.fwhm_eV", lower = 0.1, upper = 0.2, start = 0.3}]',
     r"`fit.parameters\[0\].start` must lie within \[0.1, 0.2\], got 0.3"),
    ('[{name = "sed.fwhm_eV", lower = 0.1, upper = 0.3}, {name = "sed.fwhm_eV", lower = 0.1, '
     'upper = 0.3}]', r"`fit.parameters\[1\].name`: parameter 'sed.fwhm_eV' is listed twice"),
    ('[{name = "sed.fwhm_eV", lower = 0.1, upper = 0.3, log_scale = 1}]',
     r"`fit.parameters\[0\].log_scale` must be true or false, got 1"),
])
def test_bad_parameter_messages(params, match):
    text = BASE.split("parameters = [")[0] + f"parameters = {params}\n"
    with pytest.raises(ConfigError, match=match):
        fitmod.fit_parameters(parse_text(text))


def test_fit_section_keys_are_validated():
    with pytest.raises(ConfigError, match=r"`fit.n_starts` must be >= 1, got 0"):
        parse_text(BASE.replace("n_starts = 3", "n_starts = 0"))
    with pytest.raises(ConfigError, match=r"`fit.solver` must be one of 'full', "
                                          r"'electroneutral', got 'fast'"):
        parse_text(BASE.replace("n_starts = 3", 'solver = "fast"'))


def test_sed_parameters_need_a_gaussian_sed():
    text = BASE.replace("fwhm_eV = 0.25\n", 'kind = "gaussians"\ncomponents = [{fwhm_eV = 0.2}]'
                        "\n", 1)
    with pytest.raises(ConfigError, match=r"`sed.fwhm_eV` can only be fitted with "
                                          r"`sed.kind = \"gaussian\"`, got kind = 'gaussians'"):
        fitmod.fit_parameters(parse_text(text))


def test_apply_parameters_and_truncate_schedule(cfg):
    text = BASE.split("[fit]")[0] + """
[[beam]]
duration_s = 5e3
drive = "off"
[fit]
parameters = [{name = "material.vacancy_fraction", lower = 0.05, upper = 0.2}]
"""
    c = parse_text(text)
    params = fitmod.fit_parameters(c)
    c2 = fitmod.apply_parameters(c, params, [0.2])
    assert c2.material.vacancy_fraction == 0.2
    assert c2.beam[0].theta_front == pytest.approx(0.8)  # defaulted: follows 1 - f_vac
    c3 = fitmod.apply_parameters(cfg, fitmod.fit_parameters(cfg), [1e-16, 0.3, 2e-13])
    assert c3.species_by_name("K").D_cm2_s == 1e-16 and c3.sed.fwhm_eV == 0.3
    assert c3.species_by_name("Li").D_cm2_s == 2e-13 and cfg.sed.fwhm_eV == 0.25
    cut = fitmod.truncate_schedule(c, 1.2e4)
    assert [p.duration_s for p in cut.beam] == [1e4, 2e3]
    assert cut.output_times_s == (0.0, 1.2e4)
    assert len(fitmod.truncate_schedule(c, 5e3).beam) == 1
    with pytest.raises(ConfigError, match=r"`fit.time_s` must lie within the beam schedule "
                                          r"\(0, 15000\] s, got 20000"):
        fitmod.truncate_schedule(c, 2e4)


def test_noise_free_recovery_from_offset_starts(cfg):
    meas = _measured(cfg, sigma=0.0)
    ds = fitmod.fit(cfg, meas, forward=toy_forward, log=None)
    e = np.abs(ds["best"].values - np.array(list(TRUTH.values()))) / (
        1e-6 * np.abs(list(TRUTH.values())))
    assert np.all(e < 5), e
    assert float(ds["chi2"]) < 1e-12
    assert ds.sizes["start"] == 3 and ds.attrs["weights"].startswith("uniform")
    assert np.all(ds["start_initial"].values[1:] != ds["start_initial"].values[0])


def test_noisy_recovery_errors_and_outputs(cfg, rng, tmp_path):
    sigma = 0.02
    meas = _measured(cfg, sigma, rng)
    ds = fitmod.fit(cfg, meas, forward=toy_forward, log=None)
    truth_u = np.array([np.log10(9e-17), 0.25, np.log10(1.5e-13)])
    se = ds["stderr"].values
    assert np.all(np.isfinite(se) & (se > 0))
    assert np.all(np.abs(ds["best_fit"].values - truth_u) < 3 * se)  # 3 stated stderr
    corr = ds["correlation"].values
    np.testing.assert_allclose(np.diag(corr), 1.0, rtol=1e-12)
    np.testing.assert_allclose(corr, corr.T, rtol=1e-12)
    # with errors given, chi2 / dof is ~1 for a correct model: 2 sigma band of chi2_nu
    dof = ds.attrs["dof"]
    assert abs(float(ds["reduced_chi2"]) - 1.0) < 2 * np.sqrt(2.0 / dof)
    fig = plot_fit(ds)
    from compare.io.datasets import save_figure, write_dataset
    write_dataset(ds, tmp_path / "fit.nc")
    save_figure(fig, tmp_path / "fit.png")
    back = xr.open_dataset(tmp_path / "fit.nc")
    assert list(back["param"].values) == list(TRUTH)
    back.close()


def test_stderr_matches_scatter_over_noise_realisations(cfg):
    """The reported standard error against the spread of the estimates over 24 noise
    realisations; the sample std of 24 values has a relative standard error of 1/sqrt(46)
    = 15 %, so the ratio must lie within 3 of those of 1."""
    c = parse_text(BASE.replace("n_starts = 3", "n_starts = 1"))
    gen = np.random.default_rng(7)
    est, ses = [], []
    for _ in range(24):
        ds = fitmod.fit(c, _measured(c, 0.02, gen), forward=toy_forward, log=None)
        est.append(ds["best_fit"].values)
        ses.append(ds["stderr"].values)
    ratio = np.std(est, axis=0, ddof=1) / np.mean(ses, axis=0)
    assert np.all(np.abs(ratio - 1.0) < 3 * 0.15), ratio


def test_uniform_weights_use_residual_variance(cfg, rng):
    meas = _measured(cfg, 0.02, rng)
    unweighted = MeasuredProfiles(meas.depth_nm, meas.species, meas.values, None, "x")
    a = fitmod.fit(cfg, meas, forward=toy_forward, log=None)
    b = fitmod.fit(cfg, unweighted, forward=toy_forward, log=None)
    # uniform weights: s^2 = chi2/dof estimates sigma^2, so the errors agree to ~2/sqrt(dof)
    np.testing.assert_allclose(b["best"], a["best"], rtol=1e-4)
    np.testing.assert_allclose(b["stderr"], a["stderr"], rtol=3 * np.sqrt(2 / a.attrs["dof"]))


def test_parallel_starts_agree_with_serial(cfg, rng):
    meas = _measured(cfg, 0.02, rng)
    serial = fitmod.fit(cfg, meas, forward=toy_forward, workers=1, log=None)
    par = fitmod.fit(cfg, meas, forward=toy_forward, workers=2, log=None)
    np.testing.assert_allclose(par["start_final"], serial["start_final"], rtol=1e-10)
    assert int(par["n_evaluations"]) == int(serial["n_evaluations"])


def test_failed_evaluations_are_penalised_not_fatal(cfg, rng):
    def flaky(c):
        if c.sed.fwhm_eV > 0.33:
            raise ValueError("solver diverged")
        return toy_forward(c)
    ds = fitmod.fit(cfg, _measured(cfg, 0.02, rng), forward=flaky, log=None)
    assert float(ds["best"].sel(param="sed.fwhm_eV")) < 0.33
    assert abs(float(ds["best"].sel(param="sed.fwhm_eV")) - 0.25) < 3 * float(
        ds["stderr"].sel(param="sed.fwhm_eV"))


def test_fit_input_errors(cfg, rng):
    meas = _measured(cfg, 0.02, rng, depth=np.array([1.0, 2.0, 300.0]))
    with pytest.raises(InputFileError, match=r"synthetic: measured depths reach 300 nm, beyond "
                                             r"the simulated region \(sample.thickness_nm = 200"):
        fitmod.fit(cfg, meas, forward=toy_forward, log=None)
    meas = _measured(cfg, 0.02, rng, depth=np.array([1.0]))
    with pytest.raises(InputFileError, match=r"2 measured points cannot determine 3 parameters"):
        fitmod.fit(cfg, meas, forward=toy_forward, log=None)

    def broken(c):
        raise ValueError("no convergence")
    with pytest.raises(ConfigError, match=r"the forward model \(full\) fails at the start "
                                          r"values: no convergence"):
        fitmod.fit(cfg, _measured(cfg, 0.02, rng), forward=broken, log=None)


def test_cli_writes_dataset_and_figure(cfg, rng, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(fitmod.FORWARD_MODELS, "full", lambda: toy_forward)
    meas = _measured(cfg, 0.02, rng)
    csv = tmp_path / "prof.csv"
    rows = ["depth_nm,Li,K,Li_err,K_err"] + [
        f"{d},{a},{b},0.02,0.02" for d, a, b in zip(meas.depth_nm, *meas.values)]
    csv.write_text("\n".join(rows) + "\n")
    inp = tmp_path / "in.toml"
    inp.write_text(BASE)
    assert main(["fit", str(csv), str(inp), "-o", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "species.K.D_cm2_s = " in out and "wrote" in out
    assert (tmp_path / "out" / "fit.nc").is_file() and (tmp_path / "out" / "fit.png").is_file()
    assert main(["fit", str(tmp_path / "nope.csv"), str(inp), "--quiet"]) == 2
    assert "cait: error: profile file not found" in capsys.readouterr().err


def test_parallel_jacobian_columns_with_one_start(cfg, rng):
    """With more workers than starts the Jacobian's columns run in parallel: same steps as
    scipy's serial forward differences, hence the same path."""
    c = parse_text(BASE.replace("n_starts = 3", "n_starts = 1"))
    meas = _measured(c, 0.02, rng)
    serial = fitmod.fit(c, meas, forward=toy_forward, workers=1, log=None)
    par = fitmod.fit(c, meas, forward=toy_forward, workers=2, log=None)
    np.testing.assert_allclose(par["start_final"], serial["start_final"], rtol=1e-8)
    assert int(par["n_evaluations"]) == int(serial["n_evaluations"])


def test_bad_fit_is_flagged(cfg, rng):
    """Errors stated 4x too small: reduced chi2 ~ 16 must be reported as suspicious."""
    meas = _measured(cfg, 0.02, rng)
    small = MeasuredProfiles(meas.depth_nm, meas.species, meas.values, meas.errors / 4, "x")
    ds = fitmod.fit(cfg, small, forward=toy_forward, log=None)
    assert "more than 3 sigma above 1" in ds.attrs["fit_message"]
    assert "sigma above" not in fitmod.fit(cfg, meas, forward=toy_forward,
                                           log=None).attrs["fit_message"]


class GridToy:
    """A stateful forward model like fit.FrozenGridNPP: `freeze` gives the exact toy profile
    and keeps a "grid" (here the D_K it was made at); solves on a grid made elsewhere are biased
    (the K front shifts by 3 nm per decade^2 of distance) and report a local error estimate
    that grows with the distance, as a frozen time grid does."""

    smooth = True

    def __init__(self):
        self.grid = None
        self.last_max_error = float("nan")
        self.n_freeze = 0

    def freeze(self, cfg):
        self.grid = (float(np.log10(cfg.species_by_name("K").D_cm2_s)),)
        self.last_max_error = 0.5
        self.n_freeze += 1
        return toy_forward(cfg)

    def __call__(self, cfg):
        if self.grid is None:
            return self.freeze(cfg)
        dist = float(np.log10(cfg.species_by_name("K").D_cm2_s)) - self.grid[0]
        self.last_max_error = 0.5 + 20.0 * abs(dist)
        ds = toy_forward(cfg)
        return ds.assign_coords(depth=ds["depth"].values - 3.0 * dist ** 2)


@pytest.mark.parametrize("workers", [1, 2])
def test_frozen_grid_is_refrozen_during_the_search_and_at_the_optimum(cfg, workers):
    """Noise-free data, starts 1-1.5 decades off in D_K: the first grid is far from the truth,
    so the search must re-freeze (error estimate > REFREEZE_ERROR) and the final check must
    find the profiles at the optimum unchanged by a new grid; then the optimum is the truth."""
    c = parse_text(BASE.replace("n_starts = 3", "n_starts = 1").replace(
        '{name = "species.K.D_cm2_s", lower = 1e-17, upper = 1e-15}',
        '{name = "species.K.D_cm2_s", lower = 1e-17, upper = 1e-15, start = 1e-15}'))
    meas = _measured(c, 0.0)
    meas = MeasuredProfiles(meas.depth_nm, meas.species, meas.values,
                            np.full_like(meas.values, 0.02), "synthetic")
    toy = GridToy()
    ds = fitmod.fit(c, meas, forward=toy, workers=workers, log=None)
    assert ds.attrs["time_grid"] == "frozen" and ds.attrs["n_refreeze"] >= 1
    shifts = [float(x) for x in ds.attrs["refreeze_shift_sigma"].split(",")]
    assert shifts[-1] <= fitmod.REFREEZE_TOL
    assert toy.n_freeze > 1 + len(shifts)  # re-frozen inside the search too (parent process)
    truth = np.array(list(TRUTH.values()))
    e = np.abs(ds["best"].values - truth) / (1e-4 * truth)
    assert np.all(e < 5), e
    assert float(ds["chi2"]) < 1e-3


@pytest.mark.parametrize("forward, workers", [("toy", 1), ("toy", 2), ("grid", 2)])
def test_search_model_finds_the_basin_and_the_full_model_gives_the_result(cfg, rng, forward,
                                                                          workers):
    """`fit.search_n_cells`: the starts run on a coarser model (the toy profile on 30 instead of
    120 points: biased by linear interpolation across the 19 nm wide front), the best start is
    polished on the full model, so best values and standard errors are those of a fit on the
    full model alone; the search model's offset there is reported."""
    meas = _measured(cfg, 0.02, rng)
    make = (lambda: toy_forward) if forward == "toy" else GridToy
    full = fitmod.fit(cfg, meas, forward=make(), workers=workers, log=None)
    coarse_cfg = parse_text(BASE.replace("workers = 1", "workers = 1\nsearch_n_cells = 30"))
    assert fitmod.search_config(cfg) is None
    assert fitmod.search_config(coarse_cfg).npp.n_cells == 30
    two = fitmod.fit(coarse_cfg, meas, forward=make(), workers=workers, log=None)
    assert list(two["start_model"].values) == ["search"] * 3 + ["full"] * (two.sizes["start"] - 3)
    assert int(two.attrs["best_start"]) >= 3  # the result comes from the full model
    assert two.attrs["search_model"] == "30 cells, rtol 0.0001"
    assert 0.05 < two.attrs["search_shift_sigma"] < 3  # the search model is visibly coarse
    assert 0 < two.attrs["n_evaluations_search"] < int(two["n_evaluations"])
    se = full["stderr"].values
    # the frozen-grid toy stops where a re-freeze moves the profiles by < REFREEZE_TOL sigma,
    # which leaves ~0.1 stderr of play along the D_K-FWHM valley in either fit
    tol = 0.05 if forward == "toy" else 0.3
    assert np.all(np.abs(two["best_fit"].values - full["best_fit"].values) < tol * se)
    np.testing.assert_allclose(two["stderr"].values, se, rtol=0.02)
    assert float(two["chi2"]) == pytest.approx(float(full["chi2"]), abs=0.05)


def test_search_model_settings_are_checked():
    with pytest.raises(ConfigError, match=r"`fit.search_n_cells` must be 0 \(the \[npp\] mesh\) "
                                          r"or >= 10, got 5"):
        fitmod.search_config(parse_text(BASE.replace("workers = 1", "search_n_cells = 5")))
    c = parse_text(BASE.replace("workers = 1", "search_rtol = 1e-3"))
    s = fitmod.search_config(c)
    assert s.npp.rtol == 1e-3 and s.npp.n_cells == c.npp.n_cells
    same = parse_text(BASE.replace("workers = 1", "search_n_cells = 120"))
    assert fitmod.search_config(same) is None  # the [npp] mesh: no separate search


def test_a_failed_refreeze_during_the_search_keeps_the_old_grid(cfg):
    """The adaptive solve of an in-search re-freeze can fail (seen on the coarse search model of
    `cait dn --fit`: Newton at the minimum step); the search must go on with its old grid."""
    class FailingFreeze(GridToy):
        def freeze(self, c):
            if self.n_freeze and c.species_by_name("K").D_cm2_s > 3e-16:
                raise ValueError("Newton did not converge at the minimum step")
            return super().freeze(c)

    c = parse_text(BASE.replace("n_starts = 3", "n_starts = 1").replace(
        '{name = "species.K.D_cm2_s", lower = 1e-17, upper = 1e-15}',
        '{name = "species.K.D_cm2_s", lower = 1e-17, upper = 1e-15, start = 1e-15}'))
    meas = _measured(c, 0.0)
    meas = MeasuredProfiles(meas.depth_nm, meas.species, meas.values,
                            np.full_like(meas.values, 0.02), "synthetic")
    ds = fitmod.fit(c, meas, forward=FailingFreeze(), workers=1, log=None)
    assert int(ds["n_failed"]) >= 1
    truth = np.array(list(TRUTH.values()))
    assert np.all(np.abs(ds["best"].values - truth) < 5e-3 * truth)


def test_full_model_failing_after_the_search_is_reported(cfg, rng):
    """The full model may fail where the search model did not: the next best start is tried,
    and when it fails at every start's end point the fit stops with a message naming it."""
    def full_fails_near_truth(c):
        if c.npp.n_cells == 120 and abs(c.sed.fwhm_eV - 0.25) < 0.03:
            raise ValueError("Newton did not converge at the minimum step")
        return toy_forward(c)

    c = parse_text(BASE.replace("workers = 1", "workers = 1\nsearch_n_cells = 30"))
    with pytest.raises(ConfigError, match=r"the full forward model \(full\) fails at the end "
                                          r"point of every start: the full model fails at the "
                                          r"end of start \d \(Newton did not converge"):
        fitmod.fit(c, _measured(c, 0.02, rng), forward=full_fails_near_truth, log=None)


@pytest.mark.parametrize("factory", [fitmod.FrozenGridNPP, fitmod.FixedMeshElectroneutral])
def test_npp_forward_models_keep_the_adapted_mesh_across_parameters(factory):
    """With the adaptive default the NPP forward models adapt the mesh once and keep it: the
    mesh must not jump with the parameters (finite-difference Jacobians)."""
    text = BASE.replace('mesh = "graded"\n', "").replace("duration_s = 1.0e4", "duration_s = 2.0e3")
    cfg = parse_text(text)
    params = fitmod.fit_parameters(cfg)
    forward = factory()
    first = forward(cfg)
    depth = first.depth.values
    other = forward(fitmod.apply_parameters(cfg, params, [2e-16, 0.3, 3e-13]))
    np.testing.assert_array_equal(other.depth.values, depth)
    assert first.attrs["mesh"] == "adaptive"
    mesh = forward.problem(cfg).mesh        # the meshes in time windows, frozen
    assert mesh.windows is not None and len(mesh.windows) == cfg.npp.mesh_windows
    assert "window_nodes" in first and "window_nodes" in other
    np.testing.assert_array_equal(other.window_nodes.values, first.window_nodes.values)
    assert not np.allclose(other.concentration.values, first.concentration.values)
