"""Unit tests of continuum.electroneutral: SG helpers, colouring Jacobian, errors."""
import dataclasses

import numpy as np
import pytest

from continuum.dmodel import ConstantD
from continuum.electroneutral import (_BandedJacobian, _Operator, make_faces,
                                      solve_electroneutral, solve_face_potential)
from continuum.scharfetter_gummel import bernoulli
from continuum.errors import ProblemError, SolverError
from continuum.problem import MeshSpec, NPPProblem, Phase


class _SteepD:
    """Native-like D(x) spanning orders of magnitude (test double)."""

    def D_and_dD(self, x):
        x = np.asarray(x, dtype=float)
        return 1e-16 * np.exp(12.0 * (x - 1.0)), None


def _problem(**kw):
    base = dict(species=("Li", "Rb", "Cs"), d_models=(_SteepD(), ConstantD(1e-18),
                                                      ConstantD(3e-19)),
                native="Li", n_bulk_m3=1.4e28, thickness_m=50e-9,
                phases=(Phase("Rb", 10.0, "galvanostatic", 1e5),), output_times_s=(10.0,),
                mesh=MeshSpec(nodes_nm=tuple(np.linspace(0, 50, 13))))
    base.update(kw)
    return NPPProblem(**base)


def test_face_potential_solves_total_flux(rng):
    a_left = 10 ** rng.uniform(-25, -15, 2000)
    a_right = 10 ** rng.uniform(-25, -15, 2000)
    # |psi| up to ~200: cell Peclet numbers far beyond any CAIT mesh (|psi| < ~40)
    jd = rng.choice([-1, 1], 2000) * np.minimum(a_left, a_right) * 10 ** rng.uniform(-8, 2, 2000)
    jd[:100] = 0.0
    psi = solve_face_potential(a_left, a_right, jd)
    total = bernoulli(-psi) * a_left - bernoulli(psi) * a_right
    scale = a_left + a_right + np.abs(jd)
    assert np.max(np.abs(total - jd) / scale) < 1e-12
    np.testing.assert_allclose(psi[:100], np.log(a_right[:100] / a_left[:100]), rtol=1e-12,
                               atol=1e-14)


@pytest.mark.parametrize("back", ["bulk", "electrode"])
def test_coloured_jacobian_equals_dense_finite_differences(rng, back):
    problem = _problem(back=back)
    op = _Operator(problem, make_faces(problem))
    jac = _BandedJacobian(op.n_cells, op.n_species)
    u = rng.dirichlet(np.ones(3), size=op.n_cells)
    j = np.array([3e-10])
    batch = np.concatenate((u.reshape(1, -1), u.reshape(1, -1) + jac.perturb))
    f, psi = op.rate(batch.reshape(-1, op.n_cells, 3), np.full(batch.shape[0], j[0]), 1)
    f = f.reshape(f.shape[0], -1)
    ab = jac.assemble(f[0], f[1:])
    q = op.potential_drop_terms(psi)
    grad = jac.drop_gradient(q[0], q[1:])
    n = u.size
    dense = np.zeros((n, n))
    dense_grad = np.zeros(n)
    for k in range(n):
        up = u.ravel().copy()
        up[k] += 1e-8
        fk, pk = op.rate(up.reshape(1, op.n_cells, 3), j, 1)
        dense[:, k] = (fk.ravel() - f[0]) / 1e-8
        dense_grad[k] = (op.potential_drop_terms(pk).sum() - q[0].sum()) / 1e-8
    band = np.zeros_like(dense)
    for k in range(n):
        for r in range(max(0, k - jac.bw), min(n, k + jac.bw + 1)):
            band[r, k] = ab[jac.bw + r - k, k]
    np.testing.assert_allclose(band, dense, rtol=0, atol=1e-12 * np.max(np.abs(dense)))
    # the dense reference differences a sum over all faces: round-off ~ 1e-16 / 1e-8 per entry
    np.testing.assert_allclose(grad, dense_grad, rtol=0, atol=1e-6 * np.max(np.abs(dense_grad)))


def test_phase_end_outputs_and_three_species_conservation():
    problem = _problem(phases=(Phase("Rb", 10.0, "galvanostatic", 1e5),
                               Phase("Cs", 10.0, "galvanostatic", 1e5),
                               Phase(None, 5.0, "off")),
                       output_times_s=(0.0, 10.0, 20.0, 25.0), rtol=1e-5, newton_tol=1e-6)
    ds = solve_electroneutral(problem)
    assert ds.attrs["engine"] == "npp-electroneutral"
    assert ds.attrs["flux_convention"] == "nernst-planck"
    np.testing.assert_allclose(ds.concentration.sum("species").values, 1.0, atol=1e-12)
    assert list(ds.current_density.values[1:] > 0) == [True, True, False]
    assert np.all(ds.concentration.values > -1e-9)


def test_lattice_gas_convention_is_recorded_and_identical():
    a = solve_electroneutral(_problem(rtol=1e-5))
    b = solve_electroneutral(_problem(rtol=1e-5, flux_convention="lattice-gas"))
    assert b.attrs["flux_convention"] == "lattice-gas"
    np.testing.assert_array_equal(a.concentration.values, b.concentration.values)


@pytest.mark.parametrize("change, match", [
    (dict(native="Na"), r"`native` = 'Na' is not one of"),
    (dict(charges=(1, 2, 1)), r"needs z = \+1"),
    (dict(flux_convention="fick"), r"`flux_convention` = 'fick' unknown; legal: lattice-gas, "),
    (dict(back="wall"), r"`back` = 'wall' unknown; legal: bulk, electrode"),
    (dict(phases=(Phase("Li", 1.0),)), r"phase 0: beam species 'Li' is not a foreign species"),
    (dict(phases=(Phase("Rb", 1.0, "pulsed"),)), r"phase 0: `drive` = 'pulsed' unknown"),
    (dict(output_times_s=(20.0,)), r"`output_times_s` must lie in \[0, 10\] s"),
    (dict(f_vac=1.0), r"`f_vac` must be in \[0, 1\), got 1.0"),
    (dict(rtol=0.0), r"`rtol` must be > 0, got 0.0"),
])
def test_problem_errors_name_the_field(change, match):
    with pytest.raises(ProblemError, match=match):
        solve_electroneutral(_problem(**change))


def test_bad_initial_profile_is_rejected():
    with pytest.raises(ProblemError, match="`initial` must return shape"):
        solve_electroneutral(_problem(), initial=lambda faces: np.ones(3))


def test_newton_failure_raises_with_partial_result():
    problem = _problem(phases=(Phase("Rb", 10.0, "galvanostatic", 1e9),),
                       output_times_s=(0.0, 10.0), max_newton=1, dt_initial_s=5.0,
                       dt_min_s=1.0)
    with pytest.raises(SolverError, match=r"Newton did not converge .* time reached 0 s") as err:
        solve_electroneutral(problem)
    partial = err.value.partial
    assert partial.attrs["status"] == "failed"
    np.testing.assert_allclose(partial.concentration.sel(species="Li").values[0], 1.0)
    assert np.isnan(partial.concentration.values[:, 1]).all()
    assert dataclasses.is_dataclass(problem)


# ------------------------------------------------------------- meshes in time windows


def _windows(meshes, starts):
    return MeshSpec(windows=tuple((t0, tuple(float(v) for v in x))
                                  for t0, x in zip(starts, meshes)))


def test_windows_keep_fractions_summing_to_one_and_inventories_through_mesh_changes():
    """Three meshes over three phases (a change inside the first, one at the phase boundary):
    the cell transfer keeps the fractions summing to 1 and the inventories; the result is on
    the union grid and names its meshes."""
    from continuum.problem import mesh_of_result, union_nodes

    meshes = [np.linspace(0, 50, 13), np.linspace(0, 50, 21) ** 1.0,
              50.0 * np.linspace(0, 1, 17) ** 1.3]
    problem = _problem(phases=(Phase("Rb", 10.0, "galvanostatic", 1e5),
                               Phase("Cs", 10.0, "galvanostatic", 1e5),
                               Phase(None, 5.0, "off")),
                       output_times_s=(0.0, 5.0, 10.0, 20.0, 25.0), rtol=1e-5, newton_tol=1e-6,
                       mesh=_windows(meshes, [0.0, 5.0, 10.0]))
    ds = solve_electroneutral(problem)
    assert ds.attrs["n_remesh"] == 2 and ds.attrs["mesh_windows"] == 3
    np.testing.assert_allclose(ds.face.values, union_nodes(meshes))
    np.testing.assert_allclose(ds.concentration.sum("species").values, 1.0, atol=1e-12)
    assert np.all(ds.concentration.values > -1e-9)
    # the total inventory stays the sample's (every site is native or foreign): 50 nm
    np.testing.assert_allclose(ds.inventory.sum("species").values, 50.0, rtol=1e-12)
    again = solve_electroneutral(dataclasses.replace(problem, mesh=mesh_of_result(ds)))
    # (the faces go through m and back to nm: equal to round-off)
    np.testing.assert_allclose(again.concentration.values, ds.concentration.values, atol=1e-12)


def test_windows_of_one_mesh_agree_with_the_static_run():
    """Switching to the same mesh moves nothing; the integration restarts at order 1 with the
    last step, so the two runs differ only by their step sequences (within the tolerance)."""
    x = np.linspace(0, 50, 26)
    static = solve_electroneutral(_problem(mesh=MeshSpec(nodes_nm=tuple(x)), rtol=1e-5,
                                           output_times_s=(5.0, 10.0)))
    win = solve_electroneutral(_problem(mesh=_windows([x, x, x], [0.0, 2.5, 6.0]), rtol=1e-5,
                                        output_times_s=(5.0, 10.0)))
    assert win.attrs["n_remesh"] == 2
    np.testing.assert_allclose(win.depth.values, static.depth.values)
    assert np.abs(win.concentration.values - static.concentration.values).max() < 1e-4
