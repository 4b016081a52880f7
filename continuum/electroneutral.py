"""Electroneutral limit of the 1D Nernst-Planck-Poisson model (docs/physics.md section 3).

Model
-----
Mobile species i (one native, one or more foreign, all z = +1) with densities ``n_i`` on a
fixed background ``-e n_bulk``.  In the electroneutral limit (Debye length -> 0) the mobile
density is pinned, ``sum_i n_i = n_bulk``, so ``d/dx sum_i J_i = 0``: the total particle flux
``J(t)`` is uniform in x and equals the current density over e.  Working with fractions
``x_i = n_i / n_bulk`` and the fractional flux ``j = J / n_bulk`` [m/s], the flux of species i is

    j_i = -D_i(x_i) (dx_i/dx - x_i e E / kT)            ("nernst-planck", paper eqn 1)

and summing over species gives the field without Poisson's equation:

    e E / kT = (j + sum_i D_i dx_i/dx) / (sum_i D_i x_i).

The "lattice-gas" convention, ``j_i = -(D_i x_i / kT) d mu_i/dx + D_i x_i e E / kT`` with
``mu_i = kT ln(theta_i / (1 - theta_tot))``, differs only by the vacancy term
``kT dtheta_tot/dx / (1 - theta_tot)``; electroneutrality fixes ``theta_tot = 1 - f_vac``, so
the term vanishes and both conventions give identical equations here (the name is recorded).

Boundary conditions
-------------------
* Front x = 0: the native and all foreign species except the beam's are blocked, so current
  continuity forces the beam species to carry the whole current: its flux is ``j``.  The
  composition at x = 0 is *not* prescribed: a Dirichlet value (e.g. ``theta_front/(1-f_vac)``)
  together with the blocked native would over-determine the problem.  ``theta_front`` enters
  only through the Debye double layer at the surface, which this limit does not resolve; its
  ideal (Boltzmann) potential jump is reported as ``double_layer_potential``.
* Back x = L: unperturbed bulk reservoir (native fraction 1, foreign 0) half a cell away.
* Drive: "galvanostatic" ``j = D_native(1) e E_back / kT`` (the bulk carries the beam current
  ohmically); "potentiostatic" ``phi(0) - phi(L) = U`` with ``j`` an extra unknown (bordered
  Newton system); "off" ``j = 0`` (relaxation, all species blocked at the front).

Discretisation
--------------
Cell-centred finite volumes on a uniform or graded mesh.  Every face carries Scharfetter-Gummel
fluxes ``F_i = (D_i/d) (B(-psi) x_iL - B(psi) x_iR)`` (``B(s) = s/(e^s - 1)``,
``psi = e E d / kT``) with one potential step ``psi`` per face, found by a scalar Newton solve
so that ``sum_i F_i = j`` exactly: the total is conserved to round-off and every species keeps
an upwinded, positivity-preserving flux.  Face diffusivities are the mean of the cell values.
Time stepping is fully implicit (backward Euler start, then variable-step BDF2) with a
predictor-corrector error estimate, Newton with a finite-difference banded Jacobian obtained by
column colouring (3 x n_species evaluations, batched), and adaptive steps.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import xarray as xr
from scipy import constants
from scipy.linalg import solve_banded

from continuum.errors import ProblemError, SolverError
from continuum.problem import check_problem
from continuum.scharfetter_gummel import bernoulli, bernoulli_derivative

# Both names map to the same equations in the electroneutral limit (see the module docstring).
FLUX_CONVENTIONS = {"nernst-planck": "nernst-planck", "lattice-gas": "nernst-planck"}

_FD_STEP = 1e-8           # finite-difference step for fractions (unknowns are O(1))
_PSI_MAX = 600.0          # |e E d / kT| cap: keeps exp() finite (B(600) ~ 1e-258)
_MAX_STEPS = 200_000


# ---------------------------------------------------------------------------------------------
# Problem description: continuum.problem.NPPProblem, checked by continuum.problem.check_problem
# ---------------------------------------------------------------------------------------------
def make_faces(problem) -> np.ndarray:
    """Cell faces [m], shape (n_cells + 1,): the full solver's mesh nodes (``problem.mesh`` with
    the same automatic zone, :func:`continuum.problem.mesh_nodes_nm`)."""
    from continuum.problem import mesh_nodes_nm

    return np.asarray(mesh_nodes_nm(problem), float) * 1e-9


# ---------------------------------------------------------------------------------------------
# Scharfetter-Gummel helpers
# ---------------------------------------------------------------------------------------------
def solve_face_potential(a_left, a_right, jd):
    """Potential step psi per face such that the total SG flux equals the imposed one.

    Solves ``B(-psi) a_left - B(psi) a_right = jd`` (monotone increasing in psi) by damped
    Newton from the zero-current root ``psi = ln(a_right / a_left)``.

    Parameters
    ----------
    a_left, a_right : ndarray of float64, shape (...,)
        ``sum_i D_i,face x_i`` on the left / right of each face [m^2/s], > 0.
    jd : ndarray of float64, broadcastable
        Imposed total flux times the centre distance, ``j * d`` [m^2/s].

    Returns
    -------
    ndarray of float64, shape (...,)
        ``psi = e E d / kT`` (dimensionless).
    """
    a_left, a_right = np.broadcast_arrays(np.asarray(a_left, float), np.asarray(a_right, float))
    jd = np.broadcast_to(np.asarray(jd, float), a_left.shape)
    # a Newton iterate with negative fractions can make a <= 0: report NaN (step rejected)
    valid = (a_left > 0) & (a_right > 0)
    if not np.all(valid):
        out = np.full(a_left.shape, np.nan)
        if np.any(valid):
            out[valid] = solve_face_potential(a_left[valid], a_right[valid], jd[valid])
        return out
    psi = np.clip(np.log(a_right / a_left), -_PSI_MAX, _PSI_MAX)
    lo = np.full(psi.shape, -_PSI_MAX)
    hi = np.full(psi.shape, _PSI_MAX)
    scale = a_left + a_right + np.abs(jd)
    for _ in range(200):
        b_plus, b_minus = bernoulli(psi), bernoulli(-psi)
        g = b_minus * a_left - b_plus * a_right - jd
        # g is increasing: keep a bracket, bisect whenever Newton leaves it
        lo = np.where(g <= 0.0, psi, lo)
        hi = np.where(g >= 0.0, psi, hi)
        dg = (-bernoulli_derivative(-psi) * a_left
              - bernoulli_derivative(psi) * a_right)
        converged = np.abs(g) <= 1e-15 * scale
        new = psi - g / dg
        outside = ~((new >= lo) & (new <= hi))
        new = np.where(converged, psi, np.where(outside, 0.5 * (lo + hi), new))
        done = converged | (np.abs(new - psi) <= 1e-15 * (1.0 + np.abs(psi)))
        psi = new
        if np.all(done):
            return psi
    residual = np.max(np.abs(g) / scale)
    if residual > 1e-12:
        raise SolverError(f"face potential solve did not converge (relative residual "
                          f"{residual:.2e}); |e E h / kT| beyond {_PSI_MAX:g}?")
    return psi


# ---------------------------------------------------------------------------------------------
# Spatial operator
# ---------------------------------------------------------------------------------------------
class _Operator:
    """Finite-volume operator ``dx/dt = -div F(x, j)`` for all species, batched over states.

    Faces are numbered 0..N (0 at the front); ``psi`` and ``d`` refer to faces 1..N.  With a
    bulk back the last face reaches the reservoir state half a cell beyond the last centre;
    with an electrode back the native leaves through it with the whole current and the field
    of face N-1 is continued over the last half cell.
    """

    def __init__(self, problem, faces):
        self.species = tuple(problem.species)
        self.n_species = len(self.species)
        self.native = self.species.index(problem.native)
        self.models = tuple(problem.d_models)
        self.electrode = problem.back == "electrode"
        self.faces = faces
        self.h = np.diff(faces)                               # cell widths [m]
        self.centres = 0.5 * (faces[:-1] + faces[1:])
        self.d = np.concatenate((np.diff(self.centres), [0.5 * self.h[-1]]))
        self.n_cells = self.h.size
        self.bulk = np.zeros(self.n_species)
        self.bulk[self.native] = 1.0
        self.D_bulk = np.array([self._D(s, np.array([self.bulk[s]]))[0]
                                for s in range(self.n_species)])
        self.kT_e = constants.k * problem.temperature_K / constants.e      # kT/e [V]

    def _D(self, s, x):
        # fractions are clipped to [0, 1] for the D model only: BDF2 may undershoot by ~atol
        d, _ = self.models[s].D_and_dD(np.clip(x, 0.0, 1.0))
        return np.asarray(d, dtype=float)

    def fluxes(self, u, j, beam):
        """Face fluxes and potential steps.

        Parameters
        ----------
        u : ndarray of float64, shape (B, N, S)
            Fractions of n_bulk per cell and species for B states.
        j : ndarray of float64, shape (B,)
            Total fractional flux [m/s].
        beam : int or None
            Index of the species entering at x = 0 (None: nothing enters).

        Returns
        -------
        flux : ndarray, shape (B, N + 1, S)  [m/s]
        psi : ndarray, shape (B, N)  e E d / kT on faces 1..N
        """
        n_b, n, n_s = u.shape
        D = np.empty_like(u)
        for s in range(n_s):
            D[..., s] = self._D(s, u[..., s].ravel()).reshape(n_b, n)
        if self.electrode:
            left_u, right_u, left_D, right_D = u[:, :-1], u[:, 1:], D[:, :-1], D[:, 1:]
            d = self.d[:-1]
        else:
            left_u, left_D, d = u, D, self.d
            right_u = np.concatenate((u[:, 1:], np.broadcast_to(self.bulk, (n_b, 1, n_s))), axis=1)
            right_D = np.concatenate((D[:, 1:], np.broadcast_to(self.D_bulk, (n_b, 1, n_s))), axis=1)
        D_face = 0.5 * (left_D + right_D)
        a_left = np.einsum("bfs,bfs->bf", D_face, left_u)
        a_right = np.einsum("bfs,bfs->bf", D_face, right_u)
        psi = solve_face_potential(a_left, a_right, j[:, None] * d[None, :])
        b_plus, b_minus = bernoulli(psi), bernoulli(-psi)
        flux = np.zeros((n_b, n + 1, n_s))
        flux[:, 1:1 + psi.shape[1], :] = D_face / d[None, :, None] * (
            b_minus[..., None] * left_u - b_plus[..., None] * right_u)
        if self.electrode:
            flux[:, n, self.native] = j
            psi = np.concatenate((psi, psi[:, -1:] * (self.d[-1] / self.d[-2])), axis=1)
        if beam is not None:
            flux[:, 0, beam] = j
        return flux, psi

    def rate(self, u, j, beam):
        """-div F, shape (B, N, S) [1/s], and psi, shape (B, N)."""
        flux, psi = self.fluxes(u, j, beam)
        return -(flux[:, 1:, :] - flux[:, :-1, :]) / self.h[None, :, None], psi

    def potential_drop_terms(self, psi):
        """Per-face contributions to phi(0) - phi(L) [V], shape (B, N).

        Face k (k = 1..N) contributes ``E_k d_k``; the half cell in front of the first centre
        uses the field of face 1 (first-order extrapolation over h_0 / 2).
        """
        terms = psi * self.kT_e
        terms[:, 0] *= 1.0 + 0.5 * self.h[0] / self.d[0]
        if self.electrode:  # face N continues face N-1: keep every term local to one face
            terms[:, -2] += terms[:, -1]
            terms[:, -1] = 0.0
        return terms

    def potential(self, psi):
        """Cell-centre potential with phi(L) = 0, shape (B, N), and phi(0), shape (B,) [V]."""
        drops = psi * self.kT_e                                            # phi_{k-1} - phi_k
        phi = np.cumsum(drops[:, ::-1], axis=1)[:, ::-1]
        surface = phi[:, 0] + drops[:, 0] * 0.5 * self.h[0] / self.d[0]
        return phi, surface


# ---------------------------------------------------------------------------------------------
# Jacobian by column colouring
# ---------------------------------------------------------------------------------------------
class _BandedJacobian:
    """Finite-difference Jacobian of the batched operator, in LAPACK banded storage.

    Unknown k = cell * S + species; rows of cell i depend on cells i-1..i+1, so columns whose
    cells differ by a multiple of 3 can be perturbed together: 3 S colours.
    """

    def __init__(self, n_cells, n_species):
        s = n_species
        self.n = n_cells * s
        self.bw = 2 * s - 1
        cols = np.arange(self.n)
        cell = cols // s
        self.colour = (cell % 3) * s + cols % s
        self.n_colours = 3 * s
        offsets = np.arange(-s, 2 * s)                  # rows of cells i-1 .. i+1 relative
        rows = (cell * s)[:, None] + offsets[None, :]
        valid = (rows >= 0) & (rows < self.n)
        self.col_idx = np.broadcast_to(cols[:, None], rows.shape)[valid]
        self.row_idx = rows[valid]
        self.band_row = self.bw + self.row_idx - self.col_idx
        keep = (self.band_row >= 0) & (self.band_row < 2 * self.bw + 1)
        self.col_idx, self.row_idx, self.band_row = (self.col_idx[keep], self.row_idx[keep],
                                                     self.band_row[keep])
        self.perturb = np.zeros((self.n_colours, self.n))
        self.perturb[self.colour, cols] = _FD_STEP
        # potential-drop terms: face k (1..N) depends on cells k-1 and k
        self.cell_of_col = cell

    def assemble(self, f_base, f_pert):
        """Banded matrix from base and perturbed evaluations (flattened, per colour)."""
        ab = np.zeros((2 * self.bw + 1, self.n))
        diff = (f_pert - f_base[None, :]) / _FD_STEP                    # (colours, n)
        ab[self.band_row, self.col_idx] = diff[self.colour[self.col_idx], self.row_idx]
        return ab

    def drop_gradient(self, q_base, q_pert):
        """Gradient of sum_k q_k (faces 1..N) w.r.t. the unknowns, shape (n,)."""
        dq = (q_pert - q_base[None, :]) / _FD_STEP                      # (colours, N)
        cell = self.cell_of_col
        own = dq[self.colour, cell]                                      # face cell+1 -> index cell
        left = np.where(cell >= 1, dq[self.colour, np.maximum(cell - 1, 0)], 0.0)  # face cell
        return own + left


# ---------------------------------------------------------------------------------------------
# Solver
# ---------------------------------------------------------------------------------------------
@dataclass
class _Stats:
    n_steps: int = 0
    n_rejected: int = 0
    n_newton: int = 0
    n_jacobians: int = 0
    message: str = ""
    status: str = "ok"
    t_reached: float = 0.0
    dt_next: float = 0.0


class _PhaseDrive:
    """Current of one phase: fixed j, or unknown j with a potential-drop constraint."""

    def __init__(self, phase, op: _Operator):
        self.phase = phase
        self.beam = None if phase.drive == "off" else op.species.index(phase.species)
        self.potentiostatic = phase.drive == "potentiostatic"
        if phase.drive == "galvanostatic":
            # the unperturbed bulk carries the current ohmically: J = sigma_bulk E_back
            self.j_fixed = op.D_bulk[op.native] * phase.back_field_V_per_m / op.kT_e
        else:
            self.j_fixed = 0.0
        self.voltage = float(phase.voltage_V)


def _initial_state(initial, op: _Operator):
    if initial is None:
        u = np.zeros((op.n_cells, op.n_species))
        u[:, op.native] = 1.0
        return u
    u = np.asarray(initial(op.faces), dtype=float)
    if u.shape != (op.n_species, op.n_cells):
        raise ProblemError(f"`initial` must return shape {(op.n_species, op.n_cells)}, got {u.shape}")
    if np.any(u < 0) or np.max(np.abs(u.sum(axis=0) - 1.0)) > 1e-12:
        raise ProblemError("`initial` fractions must be >= 0 and sum to 1 in every cell")
    return u.T.copy()


def solve_electroneutral(problem, initial=None) -> xr.Dataset:
    """Integrate the electroneutral NPP model over the beam schedule.

    Parameters
    ----------
    problem : continuum.npp.NPPProblem (or any object with the same attributes)
        The full solver's problem; ``eps_r`` is ignored (no Poisson equation), ``mesh`` nodes
        are used as cell faces (with mesh ``windows``, each window's: :func:`_solve_windows`),
        ``newton_tol`` bounds the last weighted Newton update.
    initial : callable, optional
        ``initial(faces_m) -> ndarray, shape (n_species, n_cells)``: cell fractions at t = 0
        (default: bulk, native 1 and foreign 0).

    Returns
    -------
    xarray.Dataset
        ``concentration(species, time, depth)`` [fraction of n_bulk],
        ``potential(time, depth)`` [V] (phi(L) = 0), ``surface_potential(time)`` [V]
        (phi at x = 0 of the electroneutral solution), ``double_layer_potential(time)`` [V]
        (ideal Boltzmann estimate of the unresolved surface layer, NaN when undefined),
        ``current_density(time)`` [A/m^2], ``back_field(time)`` [V/m],
        ``inventory(species, time)`` [nm], ``diffusivity(species, fraction)`` [cm^2/s];
        coords ``time`` [s], ``depth`` [nm] (cell centres), ``species``;
        attrs ``engine="npp-electroneutral"``, ``flux_convention``, ``status``, ``message``,
        step and Newton counts.

    Raises
    ------
    ProblemError
        Inconsistent input.
    SolverError
        Newton failed at the minimum step; ``.partial`` holds the result up to then.
    """
    check_problem(problem, solver="electroneutral")
    if problem.mesh.windows is not None and len(problem.mesh.windows) > 1:
        return _solve_windows(problem, initial)
    faces = make_faces(problem)
    op = _Operator(problem, faces)
    jac = _BandedJacobian(op.n_cells, op.n_species)
    times = np.asarray(problem.output_times_s, dtype=float)
    n_t = times.size
    out_u = np.full((n_t, op.n_cells, op.n_species), np.nan)
    out_j = np.full(n_t, np.nan)
    out_beam = [None] * n_t
    stats = _Stats()

    u = _initial_state(initial, op)
    t = 0.0
    next_out = 0
    while next_out < n_t and times[next_out] <= 0.0:
        out_u[next_out], out_j[next_out] = u, 0.0
        next_out += 1

    try:
        for phase in problem.phases:
            drive = _PhaseDrive(phase, op)
            t_end = t + phase.duration_s
            t, u, next_out = _integrate_phase(problem, op, jac, drive, t, t_end, u, times,
                                              next_out, out_u, out_j, out_beam, stats)
    except SolverError as err:
        stats.status, stats.message = "failed", str(err)
        partial = _dataset(problem, op, times, out_u, out_j, out_beam, stats)
        raise SolverError(str(err), time_reached_s=stats.t_reached, partial=partial) from None
    return _dataset(problem, op, times, out_u, out_j, out_beam, stats)


def _solve_windows(problem, initial):
    """:func:`solve_electroneutral` with a mesh per time window (``problem.mesh.windows``).

    At each window start the cell means move to the next mesh by
    :func:`continuum.mesh.conservative_transfer_cells` (inventories kept) and the integration
    goes on at order 1 with the last step size (its error control active). Outputs are
    computed on the mesh of their window and written on the cell centres of the union of all
    window faces (linear interpolation between a window's centres, constant beyond them);
    inventory, potential and the other per-time values come from the output's own mesh."""
    from continuum.mesh import conservative_transfer_cells
    from continuum.problem import mesh_windows_nm

    wins = [(float(t0), np.asarray(x, float) * 1e-9) for t0, x in mesh_windows_nm(problem)]
    ops = [_Operator(problem, f) for _, f in wins]
    times = np.asarray(problem.output_times_s, dtype=float)
    n_t = times.size
    outs = [(np.full((n_t, o.n_cells, o.n_species), np.nan), np.full(n_t, np.nan), [None] * n_t)
            for o in ops]
    stats = _Stats()
    w = 0
    op = ops[0]
    jac = _BandedJacobian(op.n_cells, op.n_species)
    u = _initial_state(initial, op)
    t = 0.0
    next_out = 0
    while next_out < n_t and times[next_out] <= 0.0:
        outs[0][0][next_out], outs[0][1][next_out] = u, 0.0
        next_out += 1
    n_remesh = 0
    try:
        for phase in problem.phases:
            drive = _PhaseDrive(phase, op)
            t_phase = t + phase.duration_s
            dt = None
            while True:
                while w + 1 < len(wins) and wins[w + 1][0] <= t * (1 + 1e-13):
                    u = conservative_transfer_cells(op.faces, u, ops[w + 1].faces)
                    w += 1
                    op = ops[w]
                    jac = _BandedJacobian(op.n_cells, op.n_species)
                    drive = _PhaseDrive(phase, op)
                    n_remesh += 1
                seg_end = t_phase
                if w + 1 < len(wins) and wins[w + 1][0] < t_phase * (1 - 1e-13):
                    seg_end = wins[w + 1][0]
                t, u, next_out = _integrate_phase(problem, op, jac, drive, t, seg_end, u, times,
                                                  next_out, *outs[w], stats, dt0=dt)
                dt = stats.dt_next
                if seg_end == t_phase:
                    break
    except SolverError as err:
        stats.status, stats.message = "failed", str(err)
        partial = _merge_windows(problem, ops, wins, times, outs, stats, n_remesh)
        raise SolverError(str(err), time_reached_s=stats.t_reached, partial=partial) from None
    return _merge_windows(problem, ops, wins, times, outs, stats, n_remesh)


def _merge_windows(problem, ops, wins, times, outs, stats, n_remesh):
    """One dataset on the union grid from the outputs of each window's mesh."""
    from continuum.problem import union_nodes

    parts = [_dataset(problem, o, times, *out, stats) for o, out in zip(ops, outs)]
    faces = union_nodes([o.faces * 1e9 for o in ops])
    centres = 0.5 * (faces[1:] + faces[:-1])
    ds = parts[0].drop_dims("depth").drop_vars("face")
    n_t, n_s = times.size, len(ops[0].species)
    conc = np.full((n_s, n_t, centres.size), np.nan)
    pot = np.full((n_t, centres.size), np.nan)
    for part, out in zip(parts, outs):
        own = np.flatnonzero(np.isfinite(out[1]))
        x = part.depth.values
        for k in own:
            for i in range(n_s):
                conc[i, k] = np.interp(centres, x, part.concentration.values[i, k])
            pot[k] = np.interp(centres, x, part.potential.values[k])
            for name in ("surface_potential", "double_layer_potential", "current_density",
                         "back_field"):
                ds[name].values[k] = part[name].values[k]
            ds["inventory"].values[:, k] = part["inventory"].values[:, k]
    ds = ds.assign_coords(
        depth=("depth", centres, {"units": "nm", "long_name": "depth (cell centre)"}),
        face=("face", faces, {"units": "nm", "long_name": "cell faces"}))
    ds["concentration"] = (("species", "time", "depth"), conc,
                           parts[0].concentration.attrs)
    ds["potential"] = (("time", "depth"), pot, parts[0].potential.attrs)
    wn = np.full((len(wins), max(len(f) for _, f in wins)), np.nan)
    for i, (_, f) in enumerate(wins):
        wn[i, :len(f)] = f * 1e9
    ds["window_nodes"] = (("window", "window_node"), wn, dict(
        units="nm", long_name="cell faces of each time window's mesh (NaN-padded)"))
    ds = ds.assign_coords(window_start=("window", [t0 for t0, _ in wins], dict(
        units="s", long_name="start of the mesh window")))
    ds.attrs.update(mesh_windows=len(wins), n_remesh=n_remesh, n_cells=int(centres.size),
                    window_cells=np.asarray([o.n_cells for o in ops], np.int64))
    return ds


def _newton(op, jac, drive, u_guess, j_guess, alpha0_dt, hist, w, problem, stats):
    """Solve ``alpha0/dt u + hist - rate(u) = 0`` (and the drop constraint). Returns (u, j) or None."""
    n_c, n_s = u_guess.shape
    u, j = u_guess.copy(), j_guess
    j_scale = op.D_bulk[op.native] / op.kT_e  # j per (V/m) of bulk field: sets the j FD step
    prev = np.inf
    for _ in range(problem.max_newton):
        stats.n_newton += 1
        stats.n_jacobians += 1
        batch = np.concatenate((u.reshape(1, -1), u.reshape(1, -1) + jac.perturb), axis=0)
        jj = np.full(batch.shape[0], j)
        if drive.potentiostatic:
            dj = 1e-7 * max(abs(j), j_scale)
            batch = np.concatenate((batch, u.reshape(1, -1)), axis=0)
            jj = np.concatenate((jj, [j + dj]))
        rates, psi = op.rate(batch.reshape(-1, n_c, n_s), jj, drive.beam)
        f = rates.reshape(rates.shape[0], -1)
        resid = alpha0_dt * u.ravel() + hist.ravel() - f[0]
        ab = -jac.assemble(f[0], f[1:1 + jac.n_colours])
        ab[jac.bw] += alpha0_dt
        if not np.all(np.isfinite(ab)) or not np.all(np.isfinite(resid)):
            return None
        try:
            if drive.potentiostatic:
                q = op.potential_drop_terms(psi)
                c_resid = q[0].sum() - drive.voltage
                b_col = -(f[-1] - f[0]) / dj
                c_row = jac.drop_gradient(q[0], q[1:1 + jac.n_colours])
                d_val = (q[-1].sum() - q[0].sum()) / dj
                z = solve_banded((jac.bw, jac.bw), ab, np.stack((resid, b_col), axis=1),
                                 check_finite=False)
                delta_j = (-c_resid + c_row @ z[:, 0]) / (d_val - c_row @ z[:, 1])
                delta_u = -z[:, 0] - z[:, 1] * delta_j
            else:
                delta_u = -solve_banded((jac.bw, jac.bw), ab, resid, check_finite=False)
                delta_j = 0.0
        except (np.linalg.LinAlgError, ValueError):
            return None
        u = u + delta_u.reshape(n_c, n_s)
        j = j + delta_j
        norm = np.sqrt(np.mean((delta_u / w.ravel()) ** 2))
        j_ok = abs(delta_j) <= 1e-9 * max(abs(j), 1e-6 * j_scale)
        if not np.isfinite(norm):
            return None
        if norm < problem.newton_tol and j_ok:
            return u, j
        if norm > 2.0 * prev and norm > 1.0:
            return None  # diverging
        prev = norm
    return None


def _integrate_phase(problem, op, jac, drive, t, t_end, u, times, next_out, out_u, out_j,
                     out_beam, stats, dt0=None):
    """Adaptive BE/BDF2 integration of one phase (or of its part up to a mesh change, `dt0`
    the step to start with); fills outputs with t in (t, t_end]; leaves the next step in
    ``stats.dt_next``."""
    duration = t_end - t
    dt = min(problem.dt_initial_s if dt0 is None else dt0, duration)
    dt_min = problem.dt_min_s
    hist_t, hist_u, hist_j = [t], [u.copy()], [drive.j_fixed]
    j = drive.j_fixed
    order = 1
    n_be = 0
    while t < t_end * (1 - 1e-14):
        if stats.n_steps + stats.n_rejected > _MAX_STEPS:
            raise SolverError(f"too many steps ({_MAX_STEPS}); time reached {t:.6g} s")
        last = dt >= (t_end - t) * (1 - 1e-9)
        dt = min(dt, t_end - t)
        w = problem.atol + problem.rtol * np.abs(u)
        if order == 1:
            alpha0_dt, hist = 1.0 / dt, -u / dt
            guess = u
        else:
            omega = dt / (hist_t[-1] - hist_t[-2])
            a0 = (1 + 2 * omega) / (1 + omega)
            a1 = -(1 + omega)
            a2 = omega ** 2 / (1 + omega)
            alpha0_dt, hist = a0 / dt, (a1 * hist_u[-1] + a2 * hist_u[-2]) / dt
            # the quadratic predictor undershoots at sharp fronts; it is only a start value
            guess = np.maximum(_extrapolate(hist_t[-3:], hist_u[-3:], hist_t[-1] + dt), 0.0)
        sol = _newton(op, jac, drive, guess, j, alpha0_dt, hist, w, problem, stats)
        if sol is None:
            stats.n_rejected += 1
            dt *= 0.25
            if dt < dt_min:
                raise SolverError(f"Newton did not converge at the minimum step {dt:.3g} s; "
                                  f"time reached {t:.6g} s")
            continue
        u_new, j_new = sol
        if order == 1:
            rate0, _ = op.rate(u[None], np.array([j]), drive.beam)
            err = 0.5 * np.abs(u_new - u - dt * rate0[0])
            exponent = 0.5
        else:
            pred = _extrapolate(hist_t[-3:], hist_u[-3:], t + dt)
            err = (dt / (t + dt - hist_t[-3])) * (6.0 / 11.0) * np.abs(u_new - pred)
            exponent = 1.0 / 3.0
        err_norm = np.sqrt(np.mean((err / w) ** 2))
        if err_norm > 1.0 and dt > dt_min:
            stats.n_rejected += 1
            dt *= max(0.2, 0.9 * err_norm ** (-exponent))
            continue
        # accepted
        t_new = t_end if last else t + dt
        stats.n_steps += 1
        hist_t.append(t_new)
        hist_u.append(u_new)
        hist_j.append(j_new)
        del hist_t[:-3], hist_u[:-3], hist_j[:-3]
        while next_out < times.size and times[next_out] <= t_new * (1 + 1e-13):
            tau = times[next_out]
            out_u[next_out] = _extrapolate(hist_t[-3:], hist_u[-3:], tau)
            out_j[next_out] = float(_extrapolate(hist_t[-3:], [np.array(v) for v in hist_j[-3:]], tau))
            out_beam[next_out] = drive.beam
            next_out += 1
        t, u, j = t_new, u_new, j_new
        stats.t_reached = t
        n_be += 1
        if order == 1 and n_be >= 2:
            order = 2
        factor = 0.9 * max(err_norm, 1e-10) ** (-exponent)
        dt *= min(2.0, max(0.2, factor))
    stats.dt_next = dt
    return t, u, next_out


def _extrapolate(ts, us, tau):
    """Lagrange interpolation/extrapolation through up to three (t, u) points at tau."""
    ts = list(ts)
    if len(ts) == 1:
        return np.array(us[-1], dtype=float).copy()
    if len(ts) == 2:
        (t0, t1), (u0, u1) = ts, us
        return u0 + (u1 - u0) * (tau - t0) / (t1 - t0)
    t0, t1, t2 = ts
    u0, u1, u2 = us
    l0 = (tau - t1) * (tau - t2) / ((t0 - t1) * (t0 - t2))
    l1 = (tau - t0) * (tau - t2) / ((t1 - t0) * (t1 - t2))
    l2 = (tau - t0) * (tau - t1) / ((t2 - t0) * (t2 - t1))
    return l0 * u0 + l1 * u1 + l2 * u2


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------
def _dataset(problem, op, times, out_u, out_j, out_beam, stats) -> xr.Dataset:
    n_t = times.size
    done = np.isfinite(out_j)
    potential = np.full((n_t, op.n_cells), np.nan)
    surface = np.full(n_t, np.nan)
    back_field = np.full(n_t, np.nan)
    double_layer = np.full(n_t, np.nan)
    if done.any():
        idx = np.flatnonzero(done)
        _, psi = op.fluxes(out_u[idx], out_j[idx], None)
        phi, surf = op.potential(psi)
        potential[idx], surface[idx] = phi, surf
        back_field[idx] = psi[:, -1] * op.kT_e / op.d[-1]
        theta_front = _theta_front_at(problem, times[idx])
        for row, k in enumerate(idx):
            beam = out_beam[k]
            if beam is not None and theta_front[row] > 0 and out_u[k, 0, beam] > 0:
                # Boltzmann across the layer: x_b(0+) (1 - f_vac) / theta_front = exp(e dphi/kT)
                double_layer[k] = op.kT_e * np.log(out_u[k, 0, beam] * (1 - problem.f_vac)
                                                   / theta_front[row])
    inventory = np.einsum("tns,n->st", out_u, op.h) * 1e9
    fractions = np.linspace(0.0, 1.0, 201)
    d_table = np.array([op._D(s, fractions) for s in range(op.n_species)]) * 1e4
    current = constants.e * problem.n_bulk_m3 * out_j
    ds = xr.Dataset(
        data_vars=dict(
            concentration=(("species", "time", "depth"), np.transpose(out_u, (2, 0, 1)),
                           {"units": "1", "long_name": "concentration / n_bulk"}),
            potential=(("time", "depth"), potential,
                       {"units": "V", "long_name": "electrostatic potential (phi(L) = 0)"}),
            surface_potential=(("time",), surface,
                               {"units": "V", "long_name": "potential at x = 0 (electroneutral)"}),
            double_layer_potential=(("time",), double_layer,
                                    {"units": "V", "long_name":
                                     "ideal Boltzmann jump across the unresolved surface layer"}),
            current_density=(("time",), current, {"units": "A/m^2", "long_name": "current density"}),
            back_field=(("time",), back_field, {"units": "V/m", "long_name": "field at x = L"}),
            inventory=(("species", "time"), inventory,
                       {"units": "nm", "long_name": "integral of concentration over depth"}),
            diffusivity=(("species", "fraction"), d_table,
                         {"units": "cm^2/s", "long_name": "D(n) of each species"}),
        ),
        coords=dict(
            species=("species", list(op.species)),
            time=("time", times, {"units": "s", "long_name": "time"}),
            depth=("depth", op.centres * 1e9, {"units": "nm", "long_name": "depth (cell centre)"}),
            fraction=("fraction", fractions, {"units": "1", "long_name": "n / n_bulk"}),
            face=("face", op.faces * 1e9, {"units": "nm", "long_name": "cell faces"}),
        ),
        attrs=dict(engine="npp-electroneutral", flux_convention=problem.flux_convention,
                   status=stats.status, message=stats.message, n_steps=stats.n_steps,
                   n_rejected=stats.n_rejected, n_newton=stats.n_newton,
                   n_jacobians=stats.n_jacobians, time_reached_s=stats.t_reached,
                   native=problem.native, rtol=float(problem.rtol), atol=float(problem.atol),
                   n_cells=int(op.n_cells), mesh_windows=1, n_remesh=0),
    )
    return ds


def _theta_front_at(problem, times):
    """theta_front of the phase active at each time (phase ends belong to that phase)."""
    ends = np.cumsum([p.duration_s for p in problem.phases])
    k = np.clip(np.searchsorted(ends, times * (1 - 1e-13), side="left"), 0, len(ends) - 1)
    return np.array([problem.phases[i].theta_front for i in k])
