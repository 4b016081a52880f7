"""The plateau analysis of a KMC CAIT dataset (compare/workflows/plateau.py) on synthetic
profiles with a known front and plateau."""
import math

import numpy as np
import pytest
import xarray as xr

from compare.workflows import plateau as pl

A = 0.4


def _dataset(levels, fronts, n_layers=60):
    """Replicas x times of step profiles: foreign 0.9 down to the front layer, native `level`
    there and 1 beyond."""
    levels, fronts = np.atleast_2d(levels), np.atleast_2d(fronts)
    n_rep, n_t = levels.shape
    depth = (np.arange(n_layers) + 0.5) * A
    c = np.zeros((n_rep, 2, n_t, n_layers))
    for r in range(n_rep):
        for k in range(n_t):
            nf = int(fronts[r, k])
            c[r, 0, k] = 1.0
            c[r, 0, k, :nf] = levels[r, k]
            c[r, 1, k, :nf] = 0.9
    ds = xr.Dataset({"concentration": (("replica", "species", "time", "depth"), c)},
                    coords={"species": ["Li", "K"], "time": np.arange(n_t, dtype=float) * 10.0,
                            "depth": depth})
    ds.attrs["a_nm"] = A
    return ds


def test_front_and_plateau_of_step_profiles():
    ds = _dataset([[0.2, 0.2, 0.2]], [[20, 30, 40]])
    front, plat = pl.plateau_series(ds, "Li")
    # the foreign profile falls from 0.9 to 0 between layer centres: half level at the edge
    np.testing.assert_allclose(front[0], [8.0, 12.0, 16.0], atol=0.2 + 1e-9)
    np.testing.assert_allclose(plat[0], 0.2)


def test_plateau_change_is_the_fitted_drift_over_the_last_third():
    t = np.arange(31, dtype=float)
    rows = np.array([0.3 - 0.001 * t, 0.31 - 0.001 * t, 0.29 - 0.001 * t])
    change, sem = pl.plateau_change(t, rows)
    # the last third spans t = 20..30: the line drops by 0.010
    assert change == pytest.approx(-0.010, rel=1e-9)
    assert sem == pytest.approx(0.0, abs=1e-12)
    frozen = np.array([0.2 + 0.01 * np.sin(t + p) for p in range(4)])
    change, sem = pl.plateau_change(t, frozen)
    assert abs(change) < 3 * sem + 1e-12


def test_add_plateau_attrs_and_frozen_flag():
    n_t = 12
    levels = np.array([[0.12] * n_t, [0.14] * n_t, [0.13] * n_t, [0.11] * n_t])
    fronts = np.tile(np.arange(10, 10 + 2 * n_t, 2), (4, 1))
    ds = pl.add_plateau(_dataset(levels, fronts), "Li")
    assert ds.attrs["plateau_level"] == pytest.approx(0.125)
    assert ds.attrs["plateau_sem"] == pytest.approx(np.std([0.12, 0.14, 0.13, 0.11], ddof=1) / 2)
    assert ds["plateau"].dims == ("replica", "time")
    assert ds.attrs["plateau_change"] == pytest.approx(0.0, abs=1e-12)
    # a constant plateau has zero change and zero scatter: not "frozen within its SE"
    assert ds.attrs["plateau_frozen"] == 0
    falling = levels - 0.002 * np.arange(n_t)
    ds = pl.add_plateau(_dataset(falling + np.array([[0.0], [0.001], [-0.001], [0.0005]])
                                 * np.sin(np.arange(n_t)), fronts), "Li")
    assert ds.attrs["plateau_change"] < 0 and ds.attrs["plateau_frozen"] == 0
    assert math.isnan(pl.add_plateau(_dataset(levels[:1, :2], fronts[:1, :2]), "Li")
                      .attrs["plateau_change"])


def test_moving_back_runs_do_not_report_a_back_current_bulk_D(monkeypatch):
    """With a moving back the bulk field is not measurable: the back-current D is refused (one
    reason) and the mobility ratio uses the natives' long-block equilibrium D instead."""
    from compare.errors import ConfigError
    from compare.workflows import comparison

    ds = _dataset([[0.2, 0.2, 0.2]], [[20, 30, 40]])
    ds.attrs["buffer_layers"] = 8
    with pytest.raises(comparison.NoBulkField) as e:      # a ConfigError: one line at the CLI
        comparison.d_bulk_from_current(ds, cfg=None)
    assert isinstance(e.value, ConfigError)
    assert str(e.value) == comparison.MOVING_BACK_NOTE
    monkeypatch.setattr(pl, "native_d_eff", lambda cfg, seed: (3.0e-14, 3.0e-15))
    monkeypatch.setattr(pl, "foreign_d_eff", lambda cfg, seed: (1.0e-16, 1.0e-17))
    pl.add_mobility_ratio(ds, cfg=None, seed=1)
    assert ds.attrs["D_ratio_native_over_foreign"] == pytest.approx(300.0)
    assert ds.attrs["D_ratio_sem"] == pytest.approx(300.0 * np.sqrt(0.01 + 0.01))
    assert ds.attrs["D_native_bulk_source"].startswith("equilibrium x = 1")
    assert ds.attrs["D_ratio_note"] == comparison.MOVING_BACK_NOTE
