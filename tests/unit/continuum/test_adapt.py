"""The solution-adaptive mesh (continuum/adapt.py): monitor, size function, nodes, the rounds
and what an interrupt hands back. Convergence against refined runs:
tests/validation/test_npp_convergence.py."""

import numpy as np
import pytest
import xarray as xr

from continuum import adapt
from continuum.errors import SolverInterrupted
from continuum.problem import MeshSpec, NPPProblem, Phase


def _ds(x, profiles):
    """A dataset with concentration(species, time, depth) from profiles (species, time, depth)."""
    c = np.asarray(profiles, float)
    return xr.Dataset({"concentration": (("species", "time", "depth"), c)},
                      coords={"depth": x, "time": np.arange(c.shape[1], dtype=float),
                              "species": [f"s{i}" for i in range(c.shape[0])]})


def test_curvature_is_exact_for_quadratics_on_a_nonuniform_mesh():
    x = np.cumsum(np.r_[0.0, np.random.default_rng(1).uniform(0.1, 1.0, 40)])
    m = adapt.curvature(_ds(x, [[0.3 * x ** 2, -0.1 * x ** 2 + x]]))
    np.testing.assert_allclose(m, 0.6, rtol=1e-9)     # max over species and times of |c''|


def test_size_function_obeys_every_cap_and_the_growth_limit():
    length, hs, growth, eta = 1000.0, 0.1, 0.1, 1e-3
    x_mon = np.linspace(0.0, length, 2001)
    mon = 50.0 * np.exp(-((x_mon - 300.0) / 2.0) ** 2)      # a sharp front at 300 nm
    xs, h = adapt.size_function(x_mon, mon, eta, length, hs, growth, h_back_nm=0.5)
    assert xs[0] == 0 and xs[-1] == length and np.all(np.diff(xs) > 0)
    m = np.interp(xs, x_mon, mon)
    with np.errstate(divide="ignore", over="ignore"):
        target = np.where(m > 0, np.sqrt(8 * eta / m), np.inf)
    assert np.all(h <= target * (1 + 1e-12))
    assert np.all(h <= hs + growth * xs + 1e-12)
    assert np.all(h <= 0.5 + growth * (length - xs) + 1e-12)
    assert h.max() <= adapt.H_MAX_FRACTION * length + 1e-12 and h.min() >= adapt.H_MIN_NM
    assert np.all(np.abs(np.diff(h)) <= growth * np.diff(xs) * (1 + 1e-9))
    i = np.argmin(np.abs(xs - 300.0))
    assert h[i] == pytest.approx(np.sqrt(8 * eta / 50.0), rel=1e-3)


def test_nodes_equidistribute_and_resolve_a_front_to_the_mesh_tolerance():
    """Piecewise-linear interpolation of a tanh front on the designed nodes errs by at most
    ~eta (the design rule h^2 |c''| / 8 <= eta, up to the curvature's variation in a cell)."""
    length, width, eta = 200.0, 0.8, 1e-3

    def front(x):
        return 0.5 * (1 - np.tanh((x - 60.0) / width))

    x_fine = np.linspace(0.0, length, 200001)
    x_mon = np.linspace(0.0, length, 4001)
    d2 = np.abs(np.gradient(np.gradient(front(x_fine), x_fine), x_fine))
    mon = np.maximum.reduceat(d2, np.searchsorted(x_fine, x_mon)[:-1])
    mon = np.r_[mon, mon[-1]]
    xs, h = adapt.size_function(x_mon, mon, eta, length, 0.1)
    nodes = adapt.nodes_from_sizes(xs, h)
    assert nodes[0] == 0.0 and nodes[-1] == length and np.all(np.diff(nodes) > 0)
    # every cell is no larger than the size function anywhere inside it (up to one cell's share)
    err = np.max(np.abs(np.interp(x_fine, nodes, front(nodes)) - front(x_fine)))
    assert err <= 1.5 * eta
    assert len(nodes) < 0.25 * length / np.diff(nodes).min()   # graded, not uniform


def test_constant_size_gives_uniform_cells():
    xs = np.linspace(0.0, 10.0, 11)
    nodes = adapt.nodes_from_sizes(xs, np.full(11, 0.5))
    np.testing.assert_allclose(np.diff(nodes), 0.5)


class _FakeModel:
    def D_and_dD(self, x):
        x = np.asarray(x, float)
        return np.full_like(x, 1e-17), np.zeros_like(x)


def _problem(times=(0.0, 5.0, 10.0)):
    return NPPProblem(species=("Li", "K"), d_models=(_FakeModel(), _FakeModel()), native="Li",
                      n_bulk_m3=1.4e28, thickness_m=100e-9,
                      phases=(Phase(species="K", duration_s=10.0, back_field_V_per_m=1e4),),
                      output_times_s=times, mesh=MeshSpec(n_cells=100, h_surface_nm=0.2))


class _ScriptedSolver:
    """Returns a flat dataset on the problem's nodes; raises SolverInterrupted on call `k`
    (1: pilot, 2: round 1, 3: its shadow, 4: round 2, ...) with a partial of that run."""

    def __init__(self, interrupt_at=None, fronts=None):
        self.calls, self.interrupt_at = [], interrupt_at
        self.fronts = fronts or {}

    def __call__(self, problem, progress=False, stop=None):
        from continuum.problem import mesh_nodes_nm

        self.calls.append(problem)
        k = len(self.calls)
        x = np.asarray(mesh_nodes_nm(problem), float)
        t = np.asarray(problem.output_times_s, float)
        # a front whose sharpness depends on the call: the shadow differs from the result by
        # `self.fronts[k]` (fraction of n_bulk) at the front
        shift = self.fronts.get(k, 0.0)
        c = 0.5 * (1 - np.tanh((x[None, :] - 30.0 - shift) / 1.0)) * np.ones((len(t), 1))
        ds = xr.Dataset({"concentration": (("species", "time", "depth"), np.stack([1 - c, c]))},
                        coords={"depth": x, "time": t, "species": ["Li", "K"]},
                        attrs={"status": "ok", "message": "", "call": k})
        if k == self.interrupt_at:
            raise SolverInterrupted("stopped on request", t[-1], partial=ds)
        return ds


def test_rounds_refine_until_the_estimate_is_within_tol():
    # round 1 (call 2) and its shadow (call 3) differ by a front shift of 0.05 nm, round 2 and
    # its shadow (calls 4, 5) by 0.001 nm: two rounds, the second accepted
    solver = _ScriptedSolver(fronts={3: 0.05, 5: 0.001})
    res = adapt.solve_adaptive(_problem(), solver, 0.01)
    assert len(res.rounds) == 2 and len(solver.calls) == 5
    assert res.rounds[0]["error_estimate"] > 0.01 >= res.rounds[1]["error_estimate"]
    assert res.rounds[1]["n_cells"] > res.rounds[0]["n_cells"]          # refined
    assert res.rounds[1]["rtol"] < res.rounds[0]["rtol"]                 # time tolerance too
    assert res.ds.attrs["status"] == "ok" and res.ds.attrs["mesh"] == "adaptive"
    assert res.ds.attrs["call"] == 4 and list(res.ds.attrs["adapt_cells"]) == \
        [q["n_cells"] for q in res.rounds]
    np.testing.assert_array_equal(res.ds.depth.values, res.problem.mesh.nodes_nm)
    pilot = solver.calls[0]
    assert len(pilot.output_times_s) > 3 and set((0.0, 5.0, 10.0)) <= set(pilot.output_times_s)
    assert solver.calls[1].output_times_s == (0.0, 5.0, 10.0)


def test_last_round_beyond_tol_is_marked_inaccurate():
    solver = _ScriptedSolver(fronts={3: 0.2, 5: 0.2})
    res = adapt.solve_adaptive(_problem(), solver, 0.01, max_rounds=2)
    assert len(res.rounds) == 2 and res.ds.attrs["status"] == "inaccurate"
    assert "exceeds [npp] tol" in res.ds.attrs["message"]


def test_unchecked_run_is_one_round_without_estimate():
    solver = _ScriptedSolver()
    res = adapt.solve_adaptive(_problem(), solver, 0.01, check=False)
    assert len(solver.calls) == 2 and "error_estimate" not in res.ds.attrs


@pytest.mark.parametrize("k, expect_call, expect_times", [
    (1, 1, (0.0, 5.0, 10.0)),      # pilot: its partial at the requested times only
    (2, 2, (0.0, 5.0, 10.0)),      # first round: its own partial
    (3, 2, (0.0, 5.0, 10.0)),      # shadow of round 1: round 1's complete result
    (4, 2, (0.0, 5.0, 10.0)),      # round 2: round 1's complete result
])
def test_an_interrupt_hands_back_the_best_complete_result(k, expect_call, expect_times):
    solver = _ScriptedSolver(interrupt_at=k, fronts={3: 0.05})
    with pytest.raises(SolverInterrupted) as info:
        adapt.solve_adaptive(_problem(), solver, 0.01)
    part = info.value.partial
    assert part.attrs["call"] == expect_call
    assert tuple(part.time.values) == expect_times


def test_rounds_stop_when_refining_does_not_halve_the_estimate():
    # round 2's estimate is 3/4 of round 1's: refining does not converge here; no round 3
    solver = _ScriptedSolver(fronts={3: 0.2, 5: 0.15, 7: 0.001})
    res = adapt.solve_adaptive(_problem(), solver, 0.01, max_rounds=4)
    assert len(res.rounds) == 2 and len(solver.calls) == 5
    assert res.ds.attrs["status"] == "inaccurate"
