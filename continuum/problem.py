"""The public description of an NPP problem, shared by both solvers.

:class:`NPPProblem` (with its :class:`Phase` schedule and :class:`MeshSpec`) is what
:func:`continuum.npp.solve` and :func:`continuum.electroneutral.solve_electroneutral` take;
:func:`check_problem` is the one validation both run first (and callers may run early, so that
errors surface before any computation). SI units unless a field says otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from continuum.errors import ProblemError
from continuum.mesh import graded_mesh

# name -> integer code seen by the full solver's kernel
FLUX_CONVENTIONS = {"nernst-planck": 0, "lattice-gas": 1}
DRIVES = {"galvanostatic": 0, "potentiostatic": 1, "off": 2}
BACKS = {"bulk": 0, "electrode": 1}
SOLVER_NAMES = ("full", "electroneutral")


@dataclass(frozen=True)
class Phase:
    """One phase of the beam schedule."""

    species: str | None  # foreign species held at the front reservoir; None: front blocked
    duration_s: float  # phase length [s]
    drive: str = "galvanostatic"  # "galvanostatic" | "potentiostatic" | "off"
    back_field_V_per_m: float = 0.0  # galvanostatic: field -dphi/dx at x = L [V/m]
    voltage_V: float = 0.0  # potentiostatic: phi(0) - phi(L) [V]
    theta_front: float = 0.9  # front reservoir occupancy (fraction of N_s)


@dataclass(frozen=True)
class MeshSpec:
    """Parameters of `continuum.mesh.graded_mesh` (or explicit nodes)."""

    n_cells: int = 400  # number of cells
    h_surface_nm: float = 0.1  # cell size at the front [nm]
    zone_nm: float | None = None  # depth of the nearly uniform replacement zone [nm]
    growth: float = 0.1  # cell-size growth per unit length (neighbour ratio exp(growth))
    h_back_nm: float | None = None  # refine at the back too (default: only for "electrode")
    nodes_nm: tuple | None = None  # explicit node positions [nm]; overrides everything above
    # A mesh that changes in time: ((t_start_s, nodes_nm), ...), the first
    # window starting at 0; at each later start the state moves to the next window's nodes by a
    # conservative transfer (continuum.npp). Overrides `nodes_nm` and the graded mesh.
    windows: tuple | None = None

    def build(self, length_nm, back, zone_estimate_nm=None):
        """Node positions [nm], ndarray of float64, shape (n_nodes,).

        `zone_estimate_nm` replaces the default zone depth when `zone_nm` is None."""
        if self.nodes_nm is not None:
            nodes = np.asarray(self.nodes_nm, dtype=float)
            if nodes.ndim != 1 or len(nodes) < 5 or np.any(np.diff(nodes) <= 0):
                raise ProblemError("`nodes_nm` must be a strictly increasing 1D array of >= 5 nodes")
            if nodes[0] != 0 or not np.isclose(nodes[-1], length_nm, rtol=1e-12):
                raise ProblemError(f"`nodes_nm` must run from 0 to L = {length_nm:g} nm")
            return nodes
        h_back = self.h_back_nm
        if h_back is None and back == "electrode":
            h_back = self.h_surface_nm  # absorbing electrode: a depletion layer forms at x = L
        zone = self.zone_nm if self.zone_nm is not None else zone_estimate_nm
        return graded_mesh(length_nm, self.n_cells, self.h_surface_nm, zone, self.growth, h_back)


@dataclass(frozen=True)
class NPPProblem:
    """A CAIT scenario for the NPP solvers, SI units.

    `d_models` are duck-typed: any object with ``D_and_dD(x) -> (D [m^2/s], dD/dx)``, vectorised
    over ``x = n_i / n_bulk``.
    """

    species: tuple  # species names, str
    d_models: tuple  # one D model per species
    native: str  # name of the native species
    n_bulk_m3: float  # bulk density of native ions = background charge density / e [m^-3]
    thickness_m: float  # sample thickness L [m]
    phases: tuple  # tuple of Phase
    output_times_s: tuple  # absolute output times [s], increasing, within the schedule
    charges: tuple | None = None  # z_i (default +1 each)
    f_vac: float = 0.1  # vacant site fraction; N_s = n_bulk / (1 - f_vac)
    temperature_K: float = 300.0  # [K]
    eps_r: float = 8.0  # relative permittivity
    back: str = "bulk"  # "bulk" (reservoir) | "electrode" (thin sample)
    mesh: MeshSpec = field(default_factory=MeshSpec)
    flux_convention: str = "nernst-planck"  # see FLUX_CONVENTIONS
    rtol: float = 1e-3  # relative local error tolerance (concentrations)
    atol: float = 1e-6  # absolute local error tolerance (fraction of n_bulk)
    dt_initial_s: float = 1e-6  # first step of every phase [s]
    dt_min_s: float = 1e-15  # Newton failure below this step raises SolverError [s]
    max_newton: int = 8  # Newton iterations per attempt
    newton_tol: float = 0.05  # Newton stops when the weighted update norm is below this
    # Deterministic time grid: absolute step end times [s] (e.g. `step_times` of a reference
    # solve), containing every phase end and output time. Steps then follow the grid instead of
    # the error control, so the solution is a smooth function of the parameters (for fitting).
    fixed_times_s: tuple | None = None
    fixed_newton_tol: float = 1e-3  # Newton tolerance on a fixed grid (smoothness, see docs)

    @property
    def total_duration_s(self) -> float:
        """Sum of the phase durations [s]."""
        return float(sum(p.duration_s for p in self.phases))


def lookup(registry, name, key):
    """``registry[name]``, or a ProblemError naming the field `key` and the legal values."""
    try:
        return registry[name]
    except KeyError:
        raise ProblemError(f"{key} = {name!r} unknown; legal: {', '.join(sorted(registry))}") from None


def _check_positive(p):
    for key in ("n_bulk_m3", "thickness_m", "temperature_K", "eps_r", "rtol", "atol",
                "dt_initial_s", "dt_min_s", "newton_tol", "fixed_newton_tol"):
        val = getattr(p, key)
        if not (np.isfinite(val) and val > 0):
            raise ProblemError(f"`{key}` must be > 0, got {val}")
    if not 0 <= p.f_vac < 1:
        raise ProblemError(f"`f_vac` must be in [0, 1), got {p.f_vac}")
    if p.max_newton < 1:
        raise ProblemError(f"`max_newton` must be >= 1, got {p.max_newton}")


def _check_species(p, solver):
    species = tuple(str(s) for s in p.species)
    k = len(species)
    if k < 1 or len(set(species)) != k:
        raise ProblemError(f"species names must be unique and non-empty, got {p.species}")
    if solver == "electroneutral" and k < 2:
        raise ProblemError(f"the electroneutral solver needs >= 2 species, got {species}")
    if len(p.d_models) != k:
        raise ProblemError(f"need one D model per species ({k}), got {len(p.d_models)}")
    for name, model in zip(species, p.d_models):
        if not callable(getattr(model, "D_and_dD", None)):
            raise ProblemError(f"D model of species {name!r} has no method D_and_dD(x)")
    if p.native not in species:
        raise ProblemError(f"`native` = {p.native!r} is not one of {species}")
    if p.charges is not None:
        if len(p.charges) != k:
            raise ProblemError(f"need one charge per species ({k}), got {p.charges}")
        if solver == "electroneutral" and any(z != 1 for z in p.charges):
            raise ProblemError(f"the electroneutral solver needs z = +1 for every species, "
                               f"got {p.charges}")


def _check_phases(p, solver):
    if not p.phases:
        raise ProblemError("the beam schedule needs at least one phase")
    foreign = [s for s in p.species if s != p.native]
    for ip, ph in enumerate(p.phases):
        lookup(DRIVES, ph.drive, f"phase {ip}: `drive`")
        if not (np.isfinite(ph.duration_s) and ph.duration_s > 0):
            raise ProblemError(f"phase {ip}: `duration_s` must be > 0, got {ph.duration_s}")
        if ph.drive == "off" or (ph.species is None and solver == "full"):
            continue  # the full solver blocks the front for a phase without beam species
        if ph.species not in foreign:
            raise ProblemError(f"phase {ip}: beam species {ph.species!r} is not a foreign species; "
                               f"legal: {foreign}")
        if not 0 <= ph.theta_front < 1:
            raise ProblemError(f"phase {ip}: `theta_front` must be in [0, 1), got {ph.theta_front}")


def _check_times(p):
    times = np.asarray(p.output_times_s, dtype=float)
    end = p.total_duration_s
    if times.ndim != 1 or times.size == 0 or np.any(np.diff(times) <= 0):
        raise ProblemError("`output_times_s` must be a non-empty increasing 1D sequence")
    if times[0] < 0 or times[-1] > end * (1 + 1e-12):
        raise ProblemError(f"`output_times_s` must lie in [0, {end:g}] s (the beam schedule), "
                           f"got [{times[0]:g}, {times[-1]:g}]")


def check_problem(problem: NPPProblem, solver: str = "full") -> None:
    """Check `problem` for `solver` (``"full"`` or ``"electroneutral"``) without solving.

    Field values, registries (flux convention, back, drives), the species and their D models,
    the schedule and the output times, and that the mesh (or each window's mesh) can be built.

    Raises
    ------
    ProblemError
        Naming the field, its value and what is legal.
    """
    lookup({n: n for n in SOLVER_NAMES}, solver, "`solver`")
    _check_positive(problem)
    _check_species(problem, solver)
    lookup(FLUX_CONVENTIONS, problem.flux_convention, "`flux_convention`")
    lookup(BACKS, problem.back, "`back`")
    _check_phases(problem, solver)
    _check_times(problem)
    mesh_windows_nm(problem)


def default_zone_nm(problem: NPPProblem):
    """Default depth [nm] of the fine mesh zone: 1.5 x the distance bulk native ions drift
    during the driven phases (the replacement front moves at about that speed), at least
    30 nm; None (mesh default) without drive."""
    from scipy import constants as sc

    kT_eV = sc.k * problem.temperature_K / sc.e
    length_nm = problem.thickness_m * 1e9
    native = tuple(problem.species).index(problem.native)
    d_bulk = float(np.asarray(problem.d_models[native].D_and_dD(np.ones(1))[0])[0])
    d_nm2 = d_bulk * 1e18
    depth = 0.0
    for ph in problem.phases:
        if ph.drive == "galvanostatic":
            depth += d_nm2 * abs(ph.back_field_V_per_m) * 1e-9 / kT_eV * ph.duration_s
        elif ph.drive == "potentiostatic":
            depth += d_nm2 * abs(ph.voltage_V) / (kT_eV * length_nm) * ph.duration_s
    if not depth > 0:
        return None
    return float(min(length_nm, max(30.0, 1.5 * depth)))


def mesh_nodes_nm(problem: NPPProblem) -> np.ndarray:
    """The full solver's mesh nodes [nm], ndarray of float64, shape (n_cells + 1,); with mesh
    `windows`, the union of their nodes (the grid the results are written on)."""
    if problem.mesh.windows is not None:
        return union_nodes([nodes for _, nodes in mesh_windows_nm(problem)])
    return problem.mesh.build(problem.thickness_m * 1e9, problem.back, default_zone_nm(problem))


def union_nodes(meshes, merge_nm=1e-9):
    """Sorted union of the nodes of several meshes [nm]; nodes closer than `merge_nm` merge."""
    x = np.unique(np.concatenate([np.asarray(m, float) for m in meshes]))
    keep = np.concatenate(([True], np.diff(x) > merge_nm))
    keep[-1] = True
    x = x[keep]
    if len(x) > 2 and x[-1] - x[-2] <= merge_nm:
        x = np.delete(x, -2)
    return x


def mesh_windows_nm(problem: NPPProblem) -> list:
    """The full solver's meshes in time: ``[(t_start_s, nodes [nm]), ...]``, the first at 0
    (one window for a static mesh); checked."""
    spec = problem.mesh
    length = problem.thickness_m * 1e9
    if spec.windows is None:
        return [(0.0, mesh_nodes_nm(problem))]
    out = []
    for i, win in enumerate(spec.windows):
        try:
            t0, nodes = win
            t0 = float(t0)
        except (TypeError, ValueError):
            raise ProblemError(f"mesh `windows`[{i}] must be a pair (t_start_s, nodes_nm)") from None
        if i == 0 and t0 != 0.0:
            raise ProblemError(f"mesh `windows` must start at t = 0, got {t0:g} s")
        if i > 0 and not (np.isfinite(t0) and out[-1][0] < t0 < problem.total_duration_s):
            raise ProblemError(f"mesh `windows`[{i}]: start {t0:g} s must increase and lie "
                               f"inside the schedule (0, {problem.total_duration_s:g}) s")
        try:
            out.append((t0, MeshSpec(nodes_nm=tuple(nodes)).build(length, problem.back)))
        except ProblemError as err:
            raise ProblemError(f"mesh `windows`[{i}]: {err}") from None
    return out


def map_meshes(problem: NPPProblem, fn) -> NPPProblem:
    """`problem` with every mesh of the full solver replaced by ``fn(nodes [nm]) -> nodes``:
    each window's (mesh `windows`), else the one mesh (made explicit)."""
    import dataclasses

    spec = problem.mesh
    if spec.windows is not None:
        wins = tuple((float(t0), tuple(float(v) for v in fn(np.asarray(x, float))))
                     for t0, x in mesh_windows_nm(problem))
        return dataclasses.replace(problem, mesh=dataclasses.replace(spec, windows=wins))
    nodes = tuple(float(v) for v in fn(mesh_nodes_nm(problem)))
    return dataclasses.replace(problem, mesh=dataclasses.replace(spec, nodes_nm=nodes))


def mesh_of_result(ds) -> MeshSpec:
    """The explicit mesh a result was computed on: its `window_nodes` when the mesh changed in
    time, else its depth grid (full solver) or its cell faces (electroneutral solver)."""
    if "window_nodes" in ds:
        wins = []
        for t0, row in zip(np.asarray(ds.window_start.values, float),
                           np.asarray(ds.window_nodes.values, float)):
            wins.append((float(t0), tuple(float(v) for v in row[np.isfinite(row)])))
        return MeshSpec(windows=tuple(wins))
    grid = ds.face if str(ds.attrs.get("engine", "")) == "npp-electroneutral" else ds.depth
    return MeshSpec(nodes_nm=tuple(float(v) for v in np.asarray(grid.values, float)))


def debye_length_nm(problem: NPPProblem) -> float:
    """Debye length of the bulk, sqrt(eps_0 eps_r kT / (e^2 n_bulk)) [nm]."""
    from scipy import constants as sc

    return float(np.sqrt(sc.epsilon_0 * problem.eps_r * sc.k * problem.temperature_K
                         / (sc.e ** 2 * problem.n_bulk_m3))) * 1e9
