"""Estimators of kmc.analysis against synthetic trajectories with known transport coefficients."""
import numpy as np
import pytest
import scipy.constants as sc

from kmc import analysis

T_K = 300.0
KT = sc.k * T_K
VOLUME = 1.0e-24  # m^3
N_SIGMA = 4.0  # statistical checks: within 4 standard errors


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


def _walkers(rng, n_rep, n_times, dt, d_ind, species, c, d_common):
    """Brownian walkers; every ion of species s also moves by c[s] times one common noise.

    Exact: D*_s = d_ind + c_s^2 d_common; L_ss' = (d_ind N_s delta_ss' + N_s N_s' c_s c_s' d_common)/(V kT).
    """
    n_ions = species.size
    own = rng.normal(size=(n_rep, n_times - 1, n_ions, 3)) * np.sqrt(2 * d_ind * dt)
    common = rng.normal(size=(n_rep, n_times - 1, 1, 3)) * np.sqrt(2 * d_common * dt)
    steps = own + np.asarray(c)[species][None, None, :, None] * common
    pos = np.concatenate([np.zeros((n_rep, 1, n_ions, 3)), np.cumsum(steps, axis=1)], axis=1)
    return pos, np.arange(n_times) * dt


def _z(ds, name, exact):
    return (ds[name].values - exact) / ds[f"{name}_sem"].values


def test_independent_walkers_recover_D_and_unit_haven(rng):
    d = 1.0e-12  # m^2/s
    species = np.array([0] * 30 + [1] * 10)
    pos, t = _walkers(rng, 1, 401, 1e-3, d, species, [0.0, 0.0], 0.0)
    ds = analysis.transport_coefficients(pos[0], t, species, ["Li", "K"], VOLUME, T_K,
                                         n_blocks=40, t_equil_s=0.0)
    assert ds.attrs["n_samples"] == 40 and ds.attrs["error_source"] == "blocks"
    d_cm2 = d * 1e4
    assert np.all(np.abs(_z(ds, "D_star", d_cm2)) < N_SIGMA)
    assert np.all(np.abs(_z(ds, "D_eff", d_cm2)) < N_SIGMA)
    assert np.all(np.abs(_z(ds, "haven", 1.0)) < N_SIGMA)
    n = np.array([30, 10])
    L_exact = np.diag(d * n / (VOLUME * KT))
    assert np.all(np.abs(_z(ds, "L", L_exact)) < N_SIGMA)
    # The tracer error bar must be much tighter than the collective one (30x more ions).
    assert ds.D_star_sem[0] < 0.5 * ds.D_eff_sem[0]


def test_correlated_collective_motion_gives_known_cross_coefficient(rng):
    d_ind, d_com = 1.0e-12, 1.0e-13
    c = np.array([1.0, -0.5])
    species = np.array([0] * 20 + [1] * 12)
    n = np.array([20, 12])
    pos, t = _walkers(rng, 4, 201, 1e-3, d_ind, species, c, d_com)
    ds = analysis.transport_coefficients(pos, t, species, ["a", "b"], VOLUME, T_K, n_blocks=25)
    assert ds.attrs["n_samples"] == 100 and "replicas" in ds.attrs["error_source"]
    L_exact = (d_ind * np.diag(n) + np.outer(n * c, n * c) * d_com) / (VOLUME * KT)
    assert L_exact[0, 1] < 0
    assert np.all(np.abs(_z(ds, "L", L_exact)) < N_SIGMA)
    # the cross term is resolved, not just consistent with zero
    assert abs(ds.L.values[0, 1]) > 3 * ds.L_sem.values[0, 1]
    np.testing.assert_allclose(ds.L.values, ds.L.values.T)
    assert np.all(np.abs(_z(ds, "D_star", (d_ind + c**2 * d_com) * 1e4)) < N_SIGMA)
    d_eff = KT * np.diag(L_exact) / (n / VOLUME) * 1e4
    assert np.all(np.abs(_z(ds, "D_eff", d_eff)) < N_SIGMA)
    assert np.all(np.abs(_z(ds, "haven", (d_ind + c**2 * d_com) * 1e4 / d_eff)) < N_SIGMA)


def test_msd_fit_method_recovers_D(rng):
    d = 3.0e-13
    species = np.zeros(50, dtype=int)
    pos, t = _walkers(rng, 1, 501, 1e-2, d, species, [0.0], 0.0)
    ds = analysis.transport_coefficients(pos[0], t, species, ["Li"], VOLUME, T_K, n_blocks=20,
                                         tracer_method="fit", fit_window=(0.2, 1.0))
    assert abs(_z(ds, "D_star", d * 1e4)[0]) < N_SIGMA


def test_standard_errors_are_calibrated(rng):
    """Over many independent experiments the estimates scatter as their error bars say."""
    d, n_exp = 1.0, 300
    species = np.zeros(5, dtype=int)
    est = {"D_star": [], "L": []}
    sem = {"D_star": [], "L": []}
    for _ in range(n_exp):
        pos, t = _walkers(rng, 1, 21, 1.0, d, species, [0.0], 0.0)
        ds = analysis.transport_coefficients(pos[0], t, species, ["x"], 1.0, 1.0 / sc.k, n_blocks=20)
        for name, exact in (("D_star", d * 1e4), ("L", 5.0)):
            est[name].append(ds[name].values.ravel()[0] / exact)
            sem[name].append(ds[f"{name}_sem"].values.ravel()[0] / exact)
    for name in est:
        e, s = np.array(est[name]), np.array(sem[name])
        # unbiased: grand mean within 4 of its own standard errors
        assert abs(e.mean() - 1.0) < N_SIGMA * e.std(ddof=1) / np.sqrt(n_exp)
        # calibrated: spread of estimates / rms error bar = 1; the SE of this ratio is
        # ~sqrt((2 + 0.2)/(4 n_exp)) = 0.043 (chi^2_3-like blocks, excess kurtosis 0.2): 4 of them
        ratio = e.std(ddof=1) / np.sqrt(np.mean(s**2))
        assert abs(ratio - 1.0) < N_SIGMA * 0.043


def test_equilibration_window_is_discarded():
    t = np.arange(11.0)
    pos = np.zeros((11, 1, 3))
    pos[:5, 0, 0] = np.arange(5) * 100.0  # wild transient before t = 4
    pos[5:, 0, 0] = 400.0 + np.arange(6)
    blocks = analysis.make_blocks(pos, t, n_blocks=2, t_equil_s=5.0)
    np.testing.assert_array_equal(blocks.start, [5, 7])
    np.testing.assert_array_equal(blocks.stop, [7, 10])
    np.testing.assert_allclose(blocks.dx[:, 0, 0], [2.0, 3.0])


def test_absent_species_gives_nan_without_warnings(rng):
    species = np.zeros(4, dtype=int)
    pos, t = _walkers(rng, 1, 11, 1.0, 1.0, species, [0.0, 0.0], 0.0)
    ds = analysis.transport_coefficients(pos[0], t, species, ["Li", "K"], 1.0, 300.0, n_blocks=5)
    assert np.isfinite(ds.D_star[0]) and np.isnan(ds.D_star[1])
    assert np.isnan(ds.haven[1]) and np.isnan(ds.D_eff[1])
    assert ds.L.values[1, 1] == 0.0


def test_one_block_has_nan_error_bar(rng):
    species = np.zeros(3, dtype=int)
    pos, t = _walkers(rng, 1, 3, 1.0, 1.0, species, [0.0], 0.0)
    ds = analysis.transport_coefficients(pos[0], t, species, ["Li"], 1.0, 300.0, n_blocks=1)
    assert np.isfinite(ds.D_star[0]) and np.isnan(ds.D_star_sem[0])


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_blocks=20), "only 10 recorded intervals"),
    (dict(n_blocks=0), "`n_blocks` must be >= 1"),
    (dict(n_blocks=2, tracer_method="nope"), "unknown tracer_method 'nope'; legal: blocks, fit"),
    (dict(n_blocks=2, fit_window=(0.5, 0.2), tracer_method="fit"), "`fit_window` must satisfy"),
])
def test_bad_arguments_raise(kwargs, match):
    pos = np.zeros((11, 2, 3))
    with pytest.raises(ValueError, match=match):
        analysis.transport_coefficients(pos, np.arange(11.0), [0, 0], ["Li"], 1.0, 300.0, **kwargs)


def test_shape_errors_raise():
    with pytest.raises(ValueError, match="strictly increasing"):
        analysis.block_boundaries([0.0, 1.0, 1.0], 1)
    with pytest.raises(ValueError, match="`positions_m` must have shape"):
        analysis.make_blocks(np.zeros((3, 2)), [0.0, 1.0, 2.0], 1)
    with pytest.raises(ValueError, match=r"`species_of_ion` entries must lie in \[0, 1\)"):
        analysis.tracer_samples(np.zeros((1, 2, 3)), [1.0], [0, 1], n_species=1)
