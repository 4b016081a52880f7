import dataclasses

import numpy as np
import pytest

from continuum.dmodel import ConstantD
from continuum.errors import ProblemError, SolverError
from continuum.npp import _assemble, _Setup, solve
from continuum.problem import FLUX_CONVENTIONS, MeshSpec, NPPProblem, Phase


class ExpD:
    """D = D0 exp(a (x - 1)), analytic derivative."""

    def __init__(self, D0, a):
        self.D0, self.a = D0, a

    def D_and_dD(self, x):
        d = self.D0 * np.exp(self.a * (np.asarray(x, dtype=float) - 1.0))
        return d, self.a * d


def _problem(**kw):
    args = dict(species=("Li", "K", "Cs"),
                d_models=(ExpD(1.5e-17, 3.0), ConstantD(1e-19), ExpD(2e-19, -1.0)),
                native="Li", n_bulk_m3=1.4e28, thickness_m=200e-9,
                phases=(Phase("K", 50.0, "galvanostatic", back_field_V_per_m=2e4,
                              theta_front=0.85),),
                output_times_s=(0.0, 25.0, 50.0), mesh=MeshSpec(n_cells=60, h_surface_nm=0.2,
                                                                 zone_nm=20.0, growth=0.2))
    args.update(kw)
    return NPPProblem(**args)


@pytest.mark.parametrize("convention", list(FLUX_CONVENTIONS))
@pytest.mark.parametrize("drive", ["galvanostatic", "potentiostatic"])
def test_analytic_jacobian_matches_finite_differences(convention, drive):
    p = _problem(flux_convention=convention, thickness_m=50e-9,
                 phases=(Phase("K", 1.0, drive, back_field_V_per_m=2e4, voltage_V=0.3,
                               theta_front=0.9),), output_times_s=(0.0,),
                 mesh=MeshSpec(n_cells=8, h_surface_nm=1.0, zone_nm=10.0, growth=1.0))
    s = _Setup(p)
    rng = np.random.default_rng(1)
    k, n = 3, len(s.nodes)
    m = k + 1
    c = rng.uniform(0.05, 0.35, (k, n))
    psi = rng.normal(size=n)
    hist = rng.normal(size=(k, n))
    ph = s.phases[0]

    def residual(c, psi, out=None):
        res, ab, fl = np.zeros(m * n), np.zeros((4 * m + 1, m * n)), np.zeros((k, n - 1))
        bjac = np.zeros((k, 2, 2 * m))
        D, dD = s.diffusivities(c)
        _assemble(c, psi, D, dD, s.z, s.dx, s.vol, s.kappa, 3.0, hist, ph["front_dir"],
                  ph["front_val"], ph["back_dir"], ph["back_val"], ph["poisson_mode"],
                  ph["dpsi_back"], ph["psi_front"], convention == "lattice-gas", s.s_lat, res,
                  ab, fl, bjac)
        if out is not None:
            out.update(flux=fl, bjac=bjac)
        return res, ab

    got = {}
    _, ab = residual(c, psi, got)
    u = 2 * m
    A = np.zeros((m * n, m * n))
    for col in range(m * n):
        for row in range(max(0, col - u), min(m * n, col + u + 1)):
            A[row, col] = ab[u + row - col, col]
    y = np.concatenate([c.T, psi[:, None]], axis=1).ravel()
    A_fd = np.zeros_like(A)
    bjac_fd = np.zeros((k, 2, m * n))     # d(flux of the first / last interval)/d(unknown)
    for col in range(m * n):
        e = 1e-7 * max(1.0, abs(y[col]))
        cols, fluxes = [], []
        for sign in (1, -1):
            yy = y.copy()
            yy[col] += sign * e
            Y = yy.reshape(n, m)
            out = {}
            cols.append(residual(np.ascontiguousarray(Y[:, :k].T), Y[:, k].copy(), out)[0])
            fluxes.append(out["flux"][:, [0, -1]])
        A_fd[:, col] = (cols[0] - cols[1]) / (2 * e)
        bjac_fd[:, :, col] = (fluxes[0] - fluxes[1]) / (2 * e)
    # the boundary-flux Jacobian (linearised boundary transfer) against finite differences;
    # outside the interval's two nodes the flux does not depend on anything
    scale = np.abs(got["bjac"]).max()
    np.testing.assert_allclose(got["bjac"][:, 0], bjac_fd[:, 0, :2 * m], atol=1e-7 * scale)
    np.testing.assert_allclose(got["bjac"][:, 1], bjac_fd[:, 1, (n - 2) * m:], atol=1e-7 * scale)
    assert np.abs(bjac_fd[:, 0, 2 * m:]).max() <= 1e-9 * scale
    assert np.abs(bjac_fd[:, 1, :(n - 2) * m]).max() <= 1e-9 * scale
    if drive == "galvanostatic":
        # row psi_0 is the gauge of the Newton update (delta psi_0 = 0; the solver then sets
        # psi = 0 at the back): residual 0, identity row
        assert np.all(residual(c, psi)[0][k] == 0.0)
        expected = np.zeros(m * n)
        expected[k] = 1.0
        np.testing.assert_array_equal(A[k], expected)
        A_fd[k] = expected
    assert np.abs(A - A_fd).max() < 1e-7 * np.abs(A).max()
    # everything outside the node blocks (j, j-1..j+1) is zero: the block tridiagonal solve
    # (continuum.blocktri) sees the whole Jacobian
    node = np.arange(m * n) // m
    outside = np.abs(np.subtract.outer(node, node)) > 1
    assert np.abs(A_fd[outside]).max() < 1e-7 * np.abs(A).max()
    assert np.all(A[outside] == 0.0)


def test_output_contract():
    ds = solve(_problem())
    assert ds.concentration.dims == ("species", "time", "depth")
    assert ds.potential.dims == ("time", "depth")
    assert list(ds.species.values) == ["Li", "K", "Cs"]
    np.testing.assert_array_equal(ds.time.values, [0.0, 25.0, 50.0])  # hit exactly
    for name in list(ds.data_vars) + ["time", "depth", "depth_face", "fraction"]:
        assert ds[name].attrs.get("units"), name
        assert ds[name].attrs.get("long_name"), name
    for key in ("n_steps", "n_newton", "n_rejected"):
        assert ds.attrs[key] > 0 or key == "n_rejected"
    assert ds.attrs["engine"] == "npp" and ds.attrs["flux_convention"] == "nernst-planck"
    assert ds.attrs["status"] == "ok"
    np.testing.assert_allclose(ds.concentration.isel(time=0).sel(species="Li"), 1.0)
    # front reservoir and back reservoir values
    assert ds.concentration.sel(species="K").isel(time=-1, depth=0) == pytest.approx(0.85 / 0.9)
    assert ds.concentration.sel(species="Li").isel(time=-1, depth=-1) == 1.0
    np.testing.assert_allclose(ds.potential.isel(depth=-1), 0.0, atol=1e-15)
    np.testing.assert_allclose(ds.field.isel(depth_face=-1, time=-1), 2e4, rtol=1e-9)


def test_potentiostatic_drop_and_electrode_back():
    p = _problem(back="electrode",
                 phases=(Phase("Cs", 20.0, "potentiostatic", voltage_V=0.2, theta_front=0.8),
                         Phase(None, 10.0, "off")),
                 output_times_s=(20.0, 30.0))
    ds = solve(p)
    phi = ds.potential.sel(time=20.0)
    assert float(phi[0] - phi[-1]) == pytest.approx(0.2, rel=1e-12)
    li = ds.concentration.sel(species="Li", time=20.0)
    assert float(li[-1]) == 0.0  # the electrode absorbs the native ions
    assert float(ds.transferred.sel(species="Li", boundary="back", time=20.0)) < 0
    # drive off: everything blocked, also at the electrode
    q = ds.transferred
    np.testing.assert_allclose(q.sel(time=30.0), q.sel(time=20.0), atol=1e-12)


def test_double_cait_sequence():
    p = _problem(phases=(Phase("K", 20.0, "galvanostatic", back_field_V_per_m=2e4),
                         Phase("Cs", 20.0, "galvanostatic", back_field_V_per_m=2e4)),
                 output_times_s=(20.0, 40.0))
    ds = solve(p)
    front = ds.transferred.sel(boundary="front")
    assert float(front.sel(species="K", time=20.0)) > 0
    assert float(front.sel(species="Cs", time=20.0)) == 0.0
    assert float(front.sel(species="Cs", time=40.0)) > 0
    # K is no longer held at the front during the Cs phase (blocked)
    assert float(front.sel(species="K", time=40.0)) == pytest.approx(
        float(front.sel(species="K", time=20.0)), abs=1e-9)


class _BreaksAfter:
    """Constant D that turns into NaN after `n_ok` evaluations (forces a Newton failure)."""

    def __init__(self, n_ok):
        self.n_ok, self.calls = n_ok, 0

    def D_and_dD(self, x):
        self.calls += 1
        x = np.asarray(x, dtype=float)
        d = 1e-19 if self.calls <= self.n_ok else np.nan
        return np.full(x.shape, d), np.zeros(x.shape)


def test_solver_error_carries_time_and_partial_result():
    p = _problem(d_models=(ExpD(1.5e-17, 3.0), _BreaksAfter(60), ConstantD(1e-19)),
                 output_times_s=(0.0, 1e-3, 50.0), dt_min_s=1e-9)
    with pytest.raises(SolverError, match=r"simulated time reached [0-9.e+-]+ s of 50 s") as info:
        solve(p)
    err = info.value
    assert 0 < err.time_reached_s < 50.0
    part = err.partial
    assert part.attrs["status"] == "failed" and "Newton" in part.attrs["message"]
    assert part.time.values[-1] == pytest.approx(err.time_reached_s)
    assert np.all(np.isfinite(part.concentration.values))


@pytest.mark.parametrize("change, match", [
    (dict(flux_convention="fick"), "`flux_convention` = 'fick' unknown; legal: "
                                   "lattice-gas, nernst-planck"),
    (dict(back="wall"), "`back` = 'wall' unknown; legal: bulk, electrode"),
    (dict(phases=(Phase("K", 1.0, "pulsed"),)), "phase 0: `drive` = 'pulsed' unknown"),
    (dict(phases=(Phase("Li", 1.0),)), "phase 0: beam species 'Li' is not a foreign species"),
    (dict(phases=(Phase("K", 1.0, theta_front=1.0),)), "`theta_front` must be in"),
    (dict(phases=(Phase("K", -1.0),)), "`duration_s` must be > 0"),
    (dict(output_times_s=(0.0, 60.0)), r"`output_times_s` must lie in \[0, 50\] s"),
    (dict(output_times_s=(5.0, 1.0)), "increasing"),
    (dict(native="Na"), "`native` = 'Na' is not one of"),
    (dict(d_models=(ConstantD(1e-17),)), "one D model per species"),
    (dict(d_models=(object(), ConstantD(1e-17), ConstantD(1e-17))), "has no method D_and_dD"),
    (dict(eps_r=0.0), "`eps_r` must be > 0"),
    (dict(f_vac=1.0), r"`f_vac` must be in \[0, 1\)"),
    (dict(mesh=MeshSpec(n_cells=10, h_surface_nm=0.01)), "too small"),
])
def test_problem_errors(change, match):
    with pytest.raises(ProblemError, match=match):
        solve(dataclasses.replace(_problem(), **change))


def test_fixed_grid_reproduces_the_adaptive_run_on_its_own_steps():
    ds, steps = solve(_problem(), return_steps=True)
    assert ds.attrs["time_grid"] == "adaptive" and len(steps) == ds.attrs["n_steps"]
    assert 0 < ds.attrs["max_error_estimate"] <= 1.0
    assert steps[-1] == 50.0 and 25.0 in steps  # phase end and output times are steps
    fixed = solve(dataclasses.replace(_problem(), fixed_times_s=tuple(steps)))
    assert fixed.attrs["time_grid"] == "fixed" and fixed.attrs["n_steps"] == len(steps)
    assert fixed.attrs["n_rejected"] == 0
    # same steps, Newton converged tighter: equal within the adaptive run's tolerance
    rtol, atol = ds.attrs["rtol"], ds.attrs["atol"]
    c_a, c_f = ds.concentration.values, fixed.concentration.values
    assert np.max(np.abs(c_f - c_a) / (atol + rtol * np.abs(c_a))) < 1.0


def test_fixed_grid_profiles_are_smooth_in_the_parameters():
    """Central differences in D_K converge (error ~ h^2) on a frozen grid, to ~1e-6 relative."""
    _, steps = solve(_problem(), return_steps=True)

    def profile(d_k):
        models = (ExpD(1.5e-17, 3.0), ConstantD(d_k), ExpD(2e-19, -1.0))
        p = dataclasses.replace(_problem(), d_models=models, fixed_times_s=tuple(steps))
        return solve(p).concentration.sel(species="K").isel(time=-1).values

    def derivative(h):  # d c_K / d ln D_K
        return (profile(1e-19 * np.exp(h)) - profile(1e-19 * np.exp(-h))) / (2 * h)

    d1, d2, d3 = derivative(4e-2), derivative(2e-2), derivative(1e-2)
    scale = np.max(np.abs(d3))
    assert scale > 1e-3  # K at the front depends on D_K
    e12, e23 = np.max(np.abs(d1 - d2)), np.max(np.abs(d2 - d3))
    assert 3.0 < e12 / e23 < 5.0  # second order: a noisy map would not converge
    assert e23 < 1e-2 * scale


@pytest.mark.parametrize("grid, match", [
    ((25.0, 10.0, 50.0), "increasing"),
    ((25.0, 40.0), "must end at the end of the beam schedule, 50 s"),
    ((10.0, 50.0), "25 s is missing"),
])
def test_fixed_grid_errors(grid, match):
    with pytest.raises(ProblemError, match=match):
        solve(dataclasses.replace(_problem(), fixed_times_s=grid))


@pytest.mark.parametrize("convention", list(FLUX_CONVENTIONS))
@pytest.mark.parametrize("drive", ["galvanostatic", "potentiostatic"])
def test_block_solve_equals_lapack_on_npp_jacobians(convention, drive):
    """The Newton step's block elimination (pivoting inside node blocks only) against LAPACK's
    banded solve (pivoting over the whole band), on Jacobians of real states of a run: the
    space-charge layer, the front and the bulk, both conventions and drives."""
    from scipy.linalg import solve_banded

    from continuum.blocktri import BlockTridiagonal

    p = _problem(flux_convention=convention,
                 phases=(Phase("K", 50.0, drive, back_field_V_per_m=2e4, voltage_V=0.3,
                               theta_front=0.85),))
    ds = solve(p)
    s = _Setup(p)
    k, n = len(s.species), len(s.nodes)
    m = k + 1
    ph = s.phases[0]
    for it in range(1, ds.sizes["time"]):
        c = np.ascontiguousarray(ds.concentration.values[:, it])
        psi = np.asarray(ds.potential.values[it]) / s.kT_eV
        res, ab = np.zeros(m * n), np.zeros((4 * m + 1, m * n), order="F")
        D, dD = s.diffusivities(c)
        _assemble(c, psi, D, dD, s.z, s.dx, s.vol, s.kappa, 1e2, -1e2 * c, ph["front_dir"],
                  ph["front_val"], ph["back_dir"], ph["back_val"], ph["poisson_mode"],
                  ph["dpsi_back"], ph["psi_front"], convention == "lattice-gas", s.s_lat, res,
                  ab, np.zeros((k, n - 1)), np.zeros((k, 2, 2 * m)))
        ref = solve_banded((2 * m, 2 * m), ab.copy(), -res)
        got = BlockTridiagonal(m, n).solve(ab, 2 * m, -res.copy())
        assert np.abs(got - ref).max() <= 1e-9 * np.abs(ref).max(), (it, np.abs(got - ref).max())


# ------------------------------------------------------------- meshes in time windows


def _windows(nodes_list, starts):
    return MeshSpec(windows=tuple((t0, tuple(float(v) for v in x))
                                  for t0, x in zip(starts, nodes_list)))


def test_windows_of_one_mesh_reproduce_the_static_run():
    """Switching to the same mesh moves nothing (the sharp transfer is the identity there), and
    the BDF history and step size carry over: with the switch at an output time (where the
    static run ends a step too) the run equals the static one to round-off."""
    from continuum.problem import mesh_nodes_nm

    p = _problem()
    x = mesh_nodes_nm(p)
    static = solve(dataclasses.replace(p, mesh=MeshSpec(nodes_nm=tuple(x))))
    win = solve(dataclasses.replace(p, mesh=_windows([x, x], [0.0, 25.0])))
    assert win.attrs["n_remesh"] == 1 and win.attrs["mesh_windows"] == 2
    np.testing.assert_allclose(win.concentration.values, static.concentration.values,
                               rtol=0, atol=1e-10)
    assert win.attrs["n_steps"] == static.attrs["n_steps"]
    np.testing.assert_array_equal(win.window_start.values, [0.0, 25.0])
    # elsewhere a switch adds a step end: a different step sequence, within the tolerances
    other = solve(dataclasses.replace(p, mesh=_windows([x, x, x], [0.0, 12.5, 31.0])))
    assert other.attrs["n_remesh"] == 2
    assert np.abs(other.concentration.values - static.concentration.values).max() < 1e-3


def test_windowed_runs_converge_like_static_runs_on_their_meshes():
    """Two windows on different meshes A, B (switch at 20 s), then both bisected. Against a
    static run on a mesh 8x finer than both (tight time tolerances), below the unresolved
    space-charge layer: the windowed error is no larger than a static run's on the coarser mesh
    B, and it falls with refinement like theirs (measured: static A 0.052 / 0.026, B 0.073 /
    0.040, windows 0.067 / 0.040). The result is written on the union of the window meshes
    and names them."""
    from continuum.mesh import graded_mesh, refine
    from continuum.problem import mesh_of_result, union_nodes

    p = dataclasses.replace(_problem(), rtol=1e-6, atol=1e-9)
    a = graded_mesh(200.0, 60, 0.2, zone_nm=20.0, growth=0.2)
    b = graded_mesh(200.0, 80, 0.3, zone_nm=40.0, growth=0.2)
    ref = solve(dataclasses.replace(p, mesh=MeshSpec(nodes_nm=tuple(
        refine(refine(refine(union_nodes([a, b]))))))))

    def error(ds):
        x = ds.depth.values
        deep = x > 1.0      # below the unresolved space-charge layer (Debye length 0.03 nm)
        return max(np.abs(ds.concentration.values[i, k] - np.interp(
            x, ref.depth.values, ref.concentration.values[i, k]))[deep].max()
            for i in range(3) for k in range(3))

    errs = []
    for meshes in ([a, b], [refine(a), refine(b)]):
        win = solve(dataclasses.replace(p, mesh=_windows(meshes, [0.0, 20.0])))
        np.testing.assert_allclose(win.depth.values, union_nodes(meshes))
        coarse = solve(dataclasses.replace(p, mesh=MeshSpec(nodes_nm=tuple(meshes[1]))))
        errs.append(error(win))
        assert errs[-1] <= 1.05 * error(coarse), (errs[-1], error(coarse))
        if len(errs) == 1:
            first = win
    assert errs[1] < 0.7 * errs[0], errs
    # the result names its meshes: a rerun on them gives the same result
    again = solve(dataclasses.replace(p, mesh=mesh_of_result(first)))
    np.testing.assert_array_equal(again.concentration.values, first.concentration.values)


def test_fixed_grid_with_windows_reproduces_the_adaptive_windowed_run():
    from continuum.mesh import graded_mesh

    meshes = [graded_mesh(200.0, 60, 0.2, zone_nm=20.0, growth=0.2),
              graded_mesh(200.0, 80, 0.2, zone_nm=30.0, growth=0.2)]
    p = dataclasses.replace(_problem(), mesh=_windows(meshes, [0.0, 30.0]))
    ds, steps = solve(p, return_steps=True)
    assert 30.0 in steps                      # the mesh change is a step end
    fixed = solve(dataclasses.replace(p, fixed_times_s=tuple(steps)))
    assert fixed.attrs["n_remesh"] == 1 and fixed.attrs["n_rejected"] == 0
    rtol, atol = ds.attrs["rtol"], ds.attrs["atol"]
    c_a, c_f = ds.concentration.values, fixed.concentration.values
    assert np.max(np.abs(c_f - c_a) / (atol + rtol * np.abs(c_a))) < 1.0


@pytest.mark.parametrize("windows, match", [
    (((1.0, (0.0, 50.0, 100.0, 150.0, 200.0)),), "must start at t = 0"),
    (((0.0, (0.0, 50.0, 100.0, 150.0, 200.0)), (60.0, (0.0, 50.0, 100.0, 150.0, 200.0))),
     r"inside the schedule"),
    (((0.0, (0.0, 50.0, 100.0, 150.0, 200.0)), (20.0, (0.0, 40.0, 80.0, 120.0, 150.0))),
     r"mesh `windows`\[1\]: `nodes_nm` must run from 0 to L"),
    (((0.0,),), r"a pair \(t_start_s, nodes_nm\)"),
])
def test_window_errors(windows, match):
    with pytest.raises(ProblemError, match=match):
        solve(dataclasses.replace(_problem(), mesh=MeshSpec(windows=windows)))
