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


# --------------------------------------------------------------- conservative transfer


def _profiles(x):
    return np.stack([np.exp(-x / 2.0), 0.5 * (1.0 - np.tanh((x - 4.0) / 0.7))])


def _smooth_mesh(n, power):
    return 10.0 * np.linspace(0.0, 1.0, n + 1) ** power


@pytest.mark.parametrize("sharp", [True, False])
def test_conservative_transfer_keeps_every_inventory_to_round_off(sharp):
    from continuum.mesh import conservative_transfer, control_volumes

    rng = np.random.default_rng(3)
    x = np.sort(np.concatenate(([0.0, 10.0], rng.uniform(0.0, 10.0, 60))))
    y = _smooth_mesh(97, 1.3)
    c = np.abs(rng.normal(size=(3, len(x))))          # any non-negative state, 3 species
    out = conservative_transfer(x, c, y, sharp=sharp)
    np.testing.assert_allclose((control_volumes(y) * out).sum(axis=-1),
                               (control_volumes(x) * c).sum(axis=-1), rtol=1e-13)
    assert out.shape == (3, len(y)) and out.min() >= 0.0


def test_sharp_transfer_onto_the_same_nodes_changes_nothing():
    from continuum.mesh import conservative_transfer

    x = _smooth_mesh(80, 1.5)
    c = _profiles(x)
    np.testing.assert_allclose(conservative_transfer(x, c, x), c, rtol=0, atol=1e-13)
    # the plain (smoothing) transfer does not have this property: it averages the interpolant
    assert np.abs(conservative_transfer(x, c, x, sharp=False) - c).max() > 1e-3


def test_transfer_error_is_second_order_on_smooth_meshes():
    """Error against the exact profile at the new nodes, away from the ends: x 1/4 per halving
    of the cells (measured 5.6e-4, 1.4e-4, 3.4e-5 for n = 100, 200, 400), the sharp transfer
    below the smoothing one. (The end nodes' half volumes are first order; boundary values
    are set by the boundary conditions there.)"""
    from continuum.mesh import conservative_transfer

    errs = {True: [], False: []}
    for n in (100, 200, 400):
        x, y = _smooth_mesh(n, 1.5), _smooth_mesh(int(1.6 * n), 1.2)
        for sharp in errs:
            e = np.abs(conservative_transfer(x, _profiles(x), y, sharp=sharp) - _profiles(y))
            errs[sharp].append(e[:, 4:-4].max())
    for sharp, e in errs.items():
        assert e[2] < 0.35 * e[1] < 0.35 ** 2 * e[0], (sharp, e)
    assert all(a < b for a, b in zip(errs[True], errs[False]))


def test_negative_values_of_the_sharp_transfer_are_clipped_conservatively_and_continuously():
    from continuum.mesh import conservative_transfer, control_volumes, nodal_values_of_averages

    x = np.linspace(0.0, 10.0, 21)
    c = np.where(x < 5.0, 1.0, 0.0)[None, :]          # a step over one cell
    assert nodal_values_of_averages(x, c).min() < -0.01   # the reconstruction undershoots
    y = np.linspace(0.0, 10.0, 34)
    out = conservative_transfer(x, c, y)
    assert out.min() >= 0.0
    assert (control_volumes(y) * out).sum() == pytest.approx((control_volumes(x) * c).sum(),
                                                             rel=1e-14)
    # continuous in the old values: a small change of the state moves the result a little
    for eps in (1e-4, 1e-6, 1e-8):
        moved = conservative_transfer(x, c * (1.0 + eps * np.sin(x)), y)
        assert np.abs(moved - out).max() < 10.0 * eps


def _fractions(x):
    a = 0.5 * (1.0 - np.tanh((x - 4.0) / 0.3))
    b = (1.0 - a) * np.exp(-x / 3.0)
    return np.stack([a, b, 1.0 - a - b], axis=1)       # (cells, species), summing to 1


def test_cell_transfer_conserves_keeps_fractions_summing_to_one_and_is_the_identity_in_place():
    from continuum.mesh import conservative_transfer_cells

    f, g = _smooth_mesh(50, 1.5), _smooth_mesh(79, 1.2)
    centres = 0.5 * (f[1:] + f[:-1])
    u = _fractions(centres)
    v = conservative_transfer_cells(f, u, g)
    np.testing.assert_allclose((np.diff(g)[:, None] * v).sum(axis=0),
                               (np.diff(f)[:, None] * u).sum(axis=0), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(v.sum(axis=1), 1.0, rtol=0, atol=1e-13)
    assert v.min() >= 0.0 and v.max() <= 1.0 + 1e-13
    np.testing.assert_allclose(conservative_transfer_cells(f, u, f), u, rtol=0, atol=1e-13)


def test_cell_transfer_error_falls_with_the_cells():
    """Against the exact profile's cell means on the new cells. The limited slopes make it
    first to second order at the steep front (0.3 wide; measured max errors 2.3e-2, 8.8e-3,
    3.5e-3, 1.7e-3 for 50, 100, 200, 400 cells)."""
    from continuum.mesh import conservative_transfer_cells

    def means(faces):
        fine = np.linspace(0.0, 1.0, 41)
        pts = faces[:-1, None] + np.diff(faces)[:, None] * fine[None, :]
        return np.trapezoid(_fractions(pts.ravel()).reshape(len(faces) - 1, 41, 3),
                            fine, axis=1)

    errs = []
    for n in (50, 100, 200):
        f, g = _smooth_mesh(n, 1.5), _smooth_mesh(int(1.6 * n), 1.2)
        errs.append(np.abs(conservative_transfer_cells(f, means(f), g) - means(g)).max())
    assert errs[2] < 0.6 * errs[1] < 0.6 ** 2 * errs[0], errs


def test_refine_into_several_pieces_keeps_the_old_nodes_and_cuts_equally():
    x = np.array([0.0, 1.0, 3.0, 7.0])
    y = refine(x, 4)
    np.testing.assert_array_equal(y[0::4], x)
    np.testing.assert_allclose(np.diff(y), np.repeat(np.diff(x) / 4, 4), rtol=1e-14)
