"""Unit tests of compare.comparison: metric definitions on profiles with known answers."""
import math

import numpy as np
import pytest
import xarray as xr

from compare import comparison as cm
from compare.errors import ConfigError, InputFileError


def test_front_position_interpolates_deepest_crossing():
    depth = np.arange(10) + 0.5
    c = np.array([0.9, 0.9, 0.8, 0.6, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0])
    # crossing of 0.4 between 3.5 (0.6) and 4.5 (0.2): halfway
    assert cm.front_position(depth, c, 0.4) == pytest.approx(4.0)


def test_front_position_ignores_shallow_dips_and_handles_edges():
    depth = np.arange(6) + 0.5
    c = np.array([0.9, 0.1, 0.9, 0.9, 0.0, 0.0])  # a noisy dip must not end the front
    assert cm.front_position(depth, c, 0.45) == pytest.approx(3.5 + 0.45 / 0.9)
    assert cm.front_position(depth, np.zeros(6), 0.5) == 0.0
    assert cm.front_position(depth, np.ones(6), 0.5) == depth[-1]
    assert math.isnan(cm.front_position(depth, np.full(6, np.nan), 0.5))


def test_front_reference_skips_surface_layer():
    depth = np.array([0.2, 0.6, 1.0, 1.4])
    c = np.array([1.0, 0.7, 0.6, 0.1])
    assert cm.front_reference(depth, c) == pytest.approx(0.7)


def test_plateau_window_mean_and_fallback():
    depth = np.arange(20) * 0.5 + 0.25
    native = np.where(depth < 5.0, 0.3, 1.0)
    assert cm.plateau_level(depth, native, 5.0) == pytest.approx(0.3)
    # window [0.25, 0.75] nm holds no layer centre: interpolate at 0.5 nm
    assert cm.plateau_level(depth, depth, 1.0) == pytest.approx(0.5)
    assert math.isnan(cm.plateau_level(depth, native, 0.0))


def test_inventory_l2_and_layer_average_exact():
    edges = np.array([0.0, 1.0, 3.0])
    assert cm.inventory(edges, [0.5, 0.25]) == pytest.approx(1.0)
    assert cm.l2_distance([0, 0, 0, 0], [1, 1, -1, -1]) == pytest.approx(1.0)
    x = np.linspace(0, 3, 31)
    avg = cm.layer_average(x, 2 * x, edges)  # linear profile: layer mean = value at the centre
    np.testing.assert_allclose(avg, [1.0, 4.0], rtol=1e-12)


def test_profile_metrics_on_a_step_profile():
    a = 0.4
    depth = (np.arange(30) + 0.5) * a
    edges = np.arange(31) * a
    foreign = np.where(depth < 6.0, 0.7, 0.0)
    native = 1.0 - foreign
    m = cm.profile_metrics(depth, edges, native, foreign)
    assert m["level"] == pytest.approx(0.35)
    assert m["front_position"] == pytest.approx(6.0, abs=0.5 * a)
    assert m["plateau"] == pytest.approx(0.3)
    assert m["inventory"] == pytest.approx(0.7 * 15 * a)


def _eq(d_li, d_k, sem_frac=0.1):
    x = np.array([0.0, 0.5, 1.0])
    d = np.array([d_li, d_k])
    return xr.Dataset({"D_eff": (("species", "x"), d), "D_eff_sem": (("species", "x"), sem_frac * d)},
                      coords={"species": ["Li", "K"], "x": x})


def test_equilibrium_table_drops_unreliable_points():
    eq = _eq([np.nan, 1e-15, 1e-13], [1e-15, 2e-15, np.nan])
    eq["D_eff_sem"].loc[dict(species="Li", x=0.5)] = 0.9e-15  # 90 % error: dropped
    frac, D = cm.equilibrium_table(eq, "Li", "native")
    np.testing.assert_allclose(frac, [1.0])
    frac, D = cm.equilibrium_table(eq, "K", "foreign")
    np.testing.assert_allclose(frac, [0.5, 1.0])  # foreign fraction = 1 - x, sorted
    np.testing.assert_allclose(D, [2e-15, 1e-15])


def test_d_bulk_from_equilibrium_needs_x_one():
    from types import SimpleNamespace

    cfg = SimpleNamespace(native=SimpleNamespace(name="Li"))
    eq = _eq([np.nan, 1e-15, 1e-13], [1e-15, 2e-15, np.nan])
    assert cm.d_bulk_from_equilibrium(eq, cfg) == (pytest.approx(1e-13), pytest.approx(1e-14))
    with pytest.raises(InputFileError, match="no composition x = 1"):
        cm.d_bulk_from_equilibrium(eq.isel(x=[0, 1]), cfg)


def test_unknown_source_names_are_errors():
    with pytest.raises(ConfigError, match="unknown NPP D source 'bogus'; legal: sed, kmc-table"):
        cm.npp_dmodels(None, "bogus", 1e-13)
