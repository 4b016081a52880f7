import numpy as np
import pytest

from continuum.errors import ProblemError
from continuum.mesh import graded_mesh, refine


def test_graded_mesh_shape_and_grading():
    x = graded_mesh(1000.0, 300, 0.1, zone_nm=200.0, growth=0.1)
    h = np.diff(x)
    assert len(x) == 301 and x[0] == 0.0 and x[-1] == 1000.0
    assert np.all(h > 0)
    assert 0.1 <= h[0] < 0.1 * 1.1  # first cell ~ h_surface
    ratio = h[1:] / h[:-1]
    # geometric growth by exp(growth) per cell, never shrinking
    assert ratio.max() < np.exp(0.1) + 1e-9 and ratio.min() > 1 - 1e-9
    zone = (x[:-1] > 50) & (x[1:] < 200)  # uniform plateau through the zone
    assert np.ptp(h[zone]) < 1e-9 * h[zone].max()


def test_back_refinement():
    x = graded_mesh(1000.0, 300, 0.1, h_back_nm=0.2)
    h = np.diff(x)
    assert 0.2 <= h[-1] < 0.2 * 1.1
    assert h.argmax() not in (0, len(h) - 1)


def test_refine_bisects_every_cell():
    x = graded_mesh(100.0, 40, 0.2, zone_nm=20.0, growth=0.2)
    y = refine(x)
    assert len(y) == 2 * len(x) - 1
    np.testing.assert_array_equal(y[::2], x)
    np.testing.assert_allclose(np.diff(y)[::2], np.diff(x) / 2)


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_cells=20), "too small"),
    (dict(h_surface_nm=-1.0), "h_surface_nm"),
    (dict(n_cells=3), "n_cells"),
    (dict(growth=0.0), "growth"),
    (dict(zone_nm=2000.0), "zone"),
])
def test_bad_mesh_parameters(kwargs, match):
    args = dict(length_nm=1000.0, n_cells=300, h_surface_nm=0.1)
    args.update(kwargs)
    with pytest.raises(ProblemError, match=match):
        graded_mesh(**args)
