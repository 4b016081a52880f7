"""Full Nernst-Planck-Poisson (NPP) solver for CAIT depth profiles.

Model (docs/physics.md §2-4): mobile species i (charge z_i, one native, any number of foreign) on a
fixed background of charge density ``-e n_bulk``, depth x in [0, L]::

    dn_i/dt = -dJ_i/dx,      d2phi/dx2 = -(e / eps0 eps_r) (sum_i z_i n_i - n_bulk)

Discretisation (details and derivations in docs/npp.md):

* vertex-centred finite volumes on a graded mesh (`continuum.mesh`), nodes at 0 and L;
* Scharfetter-Gummel fluxes, for both flux conventions of `FLUX_CONVENTIONS`;
* variable-step BDF2 in time (BDF1 for the first two steps of every beam phase) with a
  predictor-corrector estimate of the local error, steps hit phase ends and output times;
* Newton on the coupled (n_1..n_k, psi) system with an analytic Jacobian; unknowns interleaved
  per node so the Jacobian is block tridiagonal (m = k + 1 unknowns per node), solved by block
  elimination (`continuum.blocktri`); residual and Jacobian are assembled by one numba kernel.

Internal units: length in nm, time in s, concentrations as fractions of n_bulk, potential
``psi = e phi / kT``, D in nm^2/s.
"""

import numpy as np
import scipy.constants as sc
import xarray as xr
from numba import njit
from tqdm.auto import tqdm

from continuum.blocktri import BlockTridiagonal
from continuum.errors import ProblemError, SolverError, SolverInterrupted
from continuum.scharfetter_gummel import bernoulli_pair as _bernoulli_pair
from continuum.mesh import conservative_transfer, control_volumes
from continuum.problem import (BACKS, DRIVES, FLUX_CONVENTIONS, check_problem, debye_length_nm,
                               mesh_windows_nm, union_nodes)

_NM = 1e-9
_M2_TO_NM2 = 1e18
_NEG_TOL = 1e-12  # a converged step with a concentration below -_NEG_TOL (fraction) is rejected


# ------------------------------------------------------------------------------------ kernel



@njit(cache=True)
def _assemble(c, psi, D, dD, z, dx, vol, kappa, a0h, hist_h, front_dir, front_val, back_dir,
              back_val, poisson_mode, dpsi_back, psi_front, lattice, s_lat, res, ab, flux, bjac):
    """Residual and banded Jacobian of one implicit step (see docs/npp.md).

    c, D, dD, hist_h : (k, n) ; psi, vol : (n,) ; dx : (n-1,) ; res : (m n,) with m = k + 1 ;
    ab : (4 m + 1, m n) banded storage with l = u = 2 m ; flux : (k, n - 1) filled with J ;
    bjac : (k, 2, 2 m) filled with dJ/d(unknowns of the interval's two nodes) for the first
    (0) and the last (1) interval (the linearised boundary fluxes, see _Integrator.newton).
    Unknown (species i, node j) has index j m + i, psi_j has index j m + k.
    """
    k, n = c.shape
    m = k + 1
    u = 2 * m
    res[:] = 0.0
    for col in range(ab.shape[1]):    # column by column: ab is Fortran-ordered (8x faster than
        for row in range(ab.shape[0]):  # the slice assignment, measured)
            ab[row, col] = 0.0
    # storage term
    for j in range(n):
        for i in range(k):
            r = j * m + i
            res[r] += vol[j] * (a0h * c[i, j] + hist_h[i, j])
            ab[u, r] += vol[j] * a0h
    # lattice-gas: effective potential -ln(1 - theta_total), theta_total = s_lat sum_i c_i
    lnv = np.zeros(n)
    dlnv = np.zeros(n)  # d(-ln(1-theta))/dc_i, same for every species
    if lattice:
        for j in range(n):
            th = 0.0
            for i in range(k):
                th += c[i, j]
            th *= s_lat
            lnv[j] = -np.log(1.0 - th)
            dlnv[j] = s_lat / (1.0 - th)
    # Scharfetter-Gummel fluxes on every interval
    for j in range(n - 1):
        for i in range(k):
            delta = z[i] * (psi[j + 1] - psi[j]) + lnv[j + 1] - lnv[j]
            bp, dbp, bm, dbm = _bernoulli_pair(delta)
            df = 0.5 * (D[i, j] + D[i, j + 1])
            g = (bp * c[i, j] - bm * c[i, j + 1]) / dx[j]
            J = df * g
            flux[i, j] = J
            dJ_dcl = df * bp / dx[j] + 0.5 * dD[i, j] * g
            dJ_dcr = -df * bm / dx[j] + 0.5 * dD[i, j + 1] * g
            dJ_dd = df * (dbp * c[i, j] + dbm * c[i, j + 1]) / dx[j]
            rl = j * m + i
            rr = (j + 1) * m + i
            res[rl] += J
            res[rr] -= J
            cols = (j * m + i, (j + 1) * m + i, j * m + k, (j + 1) * m + k)
            vals = (dJ_dcl, dJ_dcr, -z[i] * dJ_dd, z[i] * dJ_dd)
            for q in range(4):
                col = cols[q]
                ab[u + rl - col, col] += vals[q]
                ab[u + rr - col, col] -= vals[q]
            if lattice:
                for p in range(k):
                    cl = j * m + p
                    cr = (j + 1) * m + p
                    ab[u + rl - cl, cl] -= dJ_dd * dlnv[j]
                    ab[u + rr - cl, cl] += dJ_dd * dlnv[j]
                    ab[u + rl - cr, cr] += dJ_dd * dlnv[j + 1]
                    ab[u + rr - cr, cr] -= dJ_dd * dlnv[j + 1]
            for b in range(2):
                if j != (0 if b == 0 else n - 2):
                    continue
                for q in range(2 * m):
                    bjac[i, b, q] = 0.0
                for q in range(4):
                    bjac[i, b, cols[q] - j * m] += vals[q]
                if lattice:
                    for p in range(k):
                        bjac[i, b, p] -= dJ_dd * dlnv[j]
                        bjac[i, b, m + p] += dJ_dd * dlnv[j + 1]
    # Dirichlet species rows: c - value (row cleared first)
    for i in range(k):
        for side in range(2):
            if side == 0:
                if not front_dir[i]:
                    continue
                j, val = 0, front_val[i]
            else:
                if not back_dir[i]:
                    continue
                j, val = n - 1, back_val[i]
            r = j * m + i
            for col in range(max(0, r - u), min(m * n, r + u + 1)):
                ab[u + r - col, col] = 0.0
            if lattice and side == 0:
                # reservoir equilibrium theta_i/(1-theta_tot) = th_f/(1-th_f), i.e. the linear
                # theta_i = th_f (1 - theta_others): the front node cannot be overfilled
                th_f = val * s_lat
                rv = s_lat * c[i, 0] - th_f
                for p in range(k):
                    if p != i:
                        rv += th_f * s_lat * c[p, 0]
                        ab[u + r - p, p] = th_f * s_lat
                ab[u, r] = s_lat
                res[r] = rv
            else:
                ab[u, r] = 1.0
                res[r] = c[i, j] - val
    # Poisson rows. P_j = (psi_{j+1}-psi_j)/dx_j - (psi_j-psi_{j-1})/dx_{j-1} + kappa vol_j rho_j
    # every mode:      row psi_j <- P_j (1 <= j < n-1)
    # galvanostatic/off: row psi_{n-1} <- P_{n-1} with the Neumann field at the back, row
    #                  psi_0 <- 0 (the potential's gauge: the Newton update leaves psi_0, the
    #                  caller then shifts psi to 0 at the back); the system is block tridiagonal
    # potentiostatic:  row psi_0 <- psi_0 - psi_front, row psi_{n-1} <- psi_{n-1}
    for jn in range(1, n):
        if poisson_mode == 1 and jn == n - 1:
            break
        r = jn * m + k
        rho = -1.0
        for i in range(k):
            rho += z[i] * c[i, jn]
        val = kappa * vol[jn] * rho
        cp = jn * m + k
        cm = (jn - 1) * m + k
        val -= (psi[jn] - psi[jn - 1]) / dx[jn - 1]
        ab[u + r - cp, cp] -= 1.0 / dx[jn - 1]
        ab[u + r - cm, cm] += 1.0 / dx[jn - 1]
        if jn < n - 1:
            cq = (jn + 1) * m + k
            val += (psi[jn + 1] - psi[jn]) / dx[jn]
            ab[u + r - cq, cq] += 1.0 / dx[jn]
            ab[u + r - cp, cp] -= 1.0 / dx[jn]
        else:
            val += dpsi_back
        for i in range(k):
            ci = jn * m + i
            ab[u + r - ci, ci] += kappa * vol[jn] * z[i]
        res[r] = val
    if poisson_mode == 1:
        r = (n - 1) * m + k
        res[r] = psi[n - 1]
        ab[u, r] = 1.0
        res[k] = psi[0] - psi_front
    else:
        res[k] = 0.0
    ab[u, k] = 1.0


@njit(cache=True)
def _newton_update(delta, c, psi, gauge_back, lattice, s_lat, atol, rtol):
    """Apply one Newton correction in place and return ``(norm, lam)``.

    ``delta`` is the solution of the linear step, interleaved per node (``c`` of the k species,
    then ``psi``). With `gauge_back` the potential correction is shifted so that psi stays 0 at
    the back (the linear system fixes it at the front, see `_assemble`). With `lattice` the
    step is damped (``lam < 1``) so that ``theta_total`` stays below 1 where the lattice-gas
    chemical potential is defined. ``norm`` is the weighted size of the undamped correction,
    ``max(|dc| / (atol + rtol |c_new|), |dpsi| / rtol)``, NaN when anything is not finite."""
    k, n = c.shape
    m = k + 1
    shift = delta[(n - 1) * m + k] if gauge_back else 0.0
    lam = 1.0
    if lattice:
        for j in range(n):
            th = 0.0
            th_new = 0.0
            for i in range(k):
                th += c[i, j]
                th_new += c[i, j] + delta[j * m + i]
            th *= s_lat
            th_new *= s_lat
            if th_new >= 1.0:
                lam = min(lam, 0.9 * (1.0 - th) / (th_new - th))
    norm = 0.0
    for j in range(n):
        for i in range(k):
            d = delta[j * m + i]
            c[i, j] += lam * d
            v = abs(d) / (atol + rtol * abs(c[i, j]))
            if v != v:
                return np.nan, lam       # the caller rejects the step (c, psi are its copies)
            if v > norm:
                norm = v
        dp = delta[j * m + k] - shift
        psi[j] += lam * dp
        v = abs(dp) / rtol
        if v != v:
            return np.nan, lam
        if v > norm:
            norm = v
    return norm, lam


# ------------------------------------------------------------------------------------ solver


class _Setup:
    """Problem converted to internal units and arrays (validated once, before time stepping)."""

    def __init__(self, p):
        check_problem(p, solver="full")
        self.species = tuple(str(s) for s in p.species)
        k = len(self.species)
        self.native = self.species.index(p.native)
        self.z = np.ones(k) if p.charges is None else np.asarray(p.charges, dtype=float)
        self.convention = FLUX_CONVENTIONS[p.flux_convention]
        self.back = BACKS[p.back]
        self.kT_eV = sc.k * p.temperature_K / sc.e  # thermal voltage kT/e [V]
        self.length_nm = p.thickness_m / _NM
        # meshes in time [(t_start, nodes)]; results are written on the union of their nodes
        self.windows = [(float(t0), np.asarray(x, float)) for t0, x in mesh_windows_nm(p)]
        self.nodes = (self.windows[0][1] if len(self.windows) == 1
                      else union_nodes([x for _, x in self.windows]))
        self.dx = np.diff(self.nodes)
        self.vol = control_volumes(self.nodes)  # of the output grid (the mesh when static)
        self.debye_nm = debye_length_nm(p)
        self.kappa = 1.0 / self.debye_nm ** 2  # Poisson in psi units: psi'' = -kappa (rho/e n_bulk)
        self.s_lat = 1.0 - p.f_vac  # theta = s_lat * fraction
        self.phases = []
        t = 0.0
        for ph in p.phases:
            drive = DRIVES[ph.drive]
            front_dir = np.zeros(k, dtype=np.bool_)
            front_val = np.zeros(k)
            if ph.species is not None and drive != DRIVES["off"]:
                front_dir[self.species.index(ph.species)] = True
                front_val[self.species.index(ph.species)] = ph.theta_front / self.s_lat
            back_dir = np.zeros(k, dtype=np.bool_)
            back_val = np.zeros(k)
            if self.back == BACKS["bulk"]:
                back_dir[:] = True  # bulk reservoir: native at n_bulk, foreign 0
                back_val[self.native] = 1.0
            elif drive != DRIVES["off"]:
                back_dir[self.native] = True  # electrode absorbs native ions while current flows
            efield = ph.back_field_V_per_m if drive == DRIVES["galvanostatic"] else 0.0
            self.phases.append(dict(
                t0=t, t1=t + ph.duration_s, front_dir=front_dir, front_val=front_val,
                back_dir=back_dir, back_val=back_val,
                poisson_mode=1 if drive == DRIVES["potentiostatic"] else 0,
                # dpsi/dx at L in kT/e per nm:  -E e/kT
                dpsi_back=-efield * _NM / self.kT_eV,
                psi_front=ph.voltage_V / self.kT_eV))
            t += ph.duration_s
        self.t_end = t
        times = np.asarray(p.output_times_s, dtype=float)
        self.times = np.minimum(times, t)
        self.grid = None if p.fixed_times_s is None else self.check_grid(p.fixed_times_s)
        if self.grid is not None and len(self.windows) > 1:
            # on a fixed grid the mesh changes at the grid time nearest to each window start
            snapped = {}
            for t0, x in self.windows[1:]:
                tg = float(self.grid[np.argmin(np.abs(self.grid - t0))])
                if 0.0 < tg < self.t_end:
                    snapped[tg] = x       # two starts on one grid time: the later mesh
            self.windows = [self.windows[0]] + sorted(snapped.items())
        self.d_models = tuple(p.d_models)
        self.p = p

    def check_grid(self, grid_s):
        """`fixed_times_s` as an array, checked: increasing in (0, t_end], ending at t_end and
        containing every phase end and output time > 0 (to a relative 1e-12)."""
        grid = np.asarray(grid_s, dtype=float)
        if grid.ndim != 1 or len(grid) < 1 or not np.all(np.isfinite(grid)) \
                or grid[0] <= 0 or np.any(np.diff(grid) <= 0):
            raise ProblemError("`fixed_times_s` must be a non-empty increasing 1D sequence of "
                               "times > 0")
        if not np.isclose(grid[-1], self.t_end, rtol=1e-12, atol=0):
            raise ProblemError(f"`fixed_times_s` must end at the end of the beam schedule, "
                               f"{self.t_end:g} s, got {grid[-1]:g} s")
        marks = [ph["t1"] for ph in self.phases] + [t for t in self.times if t > 0]
        for t in marks:
            i = np.argmin(np.abs(grid - t))
            if not np.isclose(grid[i], t, rtol=1e-12, atol=0):
                raise ProblemError(f"`fixed_times_s` must contain every phase end and output "
                                   f"time; {t:g} s is missing")
            grid[i] = t  # exactly, so that phase ends and outputs are hit without round-off
        return grid

    def diffusivities(self, c):
        """D [nm^2/s] and dD/dc at every node, two ndarrays of shape (k, n)."""
        D = np.empty_like(c)
        dD = np.empty_like(c)
        for i, model in enumerate(self.d_models):
            d, dd = model.D_and_dD(c[i])
            D[i] = np.asarray(d, dtype=float) * _M2_TO_NM2
            dD[i] = np.asarray(dd, dtype=float) * _M2_TO_NM2
        return D, dD


class _Integrator:
    """BDF1/BDF2 time stepping with Newton, error control and output at exact times."""

    def __init__(self, s, stop=None):
        self.s = s
        self.stop = stop  # polled after every accepted step (solve's `stop`)
        k = len(s.species)
        self.k, self.m = k, k + 1
        self.end_flux = np.zeros((k, 2))   # linearised SG flux of the first and last interval
        self.bjac = np.zeros((k, 2, 2 * self.m))
        self.use_mesh(s.windows[0][1])
        self.n_remesh = 0
        self.n_steps = self.n_newton = self.n_rejected = 0
        self.n_rejected_newton = self.n_rejected_negative = 0  # subsets of n_rejected
        self.step_times = []  # end times of the accepted steps [s]
        self.max_error = 0.0  # largest local error estimate (in tolerance units) of a step
        self.newton_tol = s.p.newton_tol if s.grid is None else s.p.fixed_newton_tol

    def use_mesh(self, nodes):
        """Make `nodes` the current mesh: geometry and work arrays of its size."""
        k, m = self.k, self.m
        self.nodes_now = nodes
        self.n = n = len(nodes)
        self.dx = np.diff(nodes)
        self.vol = control_volumes(nodes)   # control-volume lengths [nm]
        self.res = np.zeros(m * n)
        self.delta = np.zeros(m * n)
        # banded storage (the scipy solve_banded layout) with l = u = 2m; the Jacobian is block
        # tridiagonal (node blocks of m unknowns), solved by continuum.blocktri
        self.band = 2 * m
        self.ab = np.zeros((4 * m + 1, m * n), order="F")
        self.linear = BlockTridiagonal(m, n)
        self.flux = np.zeros((k, n - 1))

    def remesh(self, nodes, psi, hist):
        """Move to the mesh `nodes`: the stored BDF states by :func:`conservative_transfer`
        (inventories unchanged), the potential (a Newton guess) by interpolation."""
        old = self.nodes_now
        self.use_mesh(nodes)
        self.n_remesh += 1
        hist = [(t, conservative_transfer(old, c, nodes), inv, Q) for t, c, inv, Q in hist]
        return np.interp(nodes, old, psi), hist

    def on_output_grid(self, c, psi):
        """State on the result's depth grid (the union of the window meshes)."""
        if len(self.s.windows) == 1:
            return c, psi
        x = self.s.nodes
        return (np.array([np.interp(x, self.nodes_now, ci) for ci in c]),
                np.interp(x, self.nodes_now, psi))

    def newton(self, ph, c0, psi0, a0h, hist_h):
        """Solve one implicit step from the guess (c0, psi0); returns (c, psi) or None."""
        s, p, k, m = self.s, self.s.p, self.k, self.m
        c, psi = c0.copy(), psi0.copy()
        lattice = s.convention == FLUX_CONVENTIONS["lattice-gas"]
        front = ph["front_dir"]
        if lattice:  # the front row is a reservoir equilibrium (see _assemble)
            others = s.s_lat * (c[:, 0].sum() - c[front, 0])
            c[front, 0] = ph["front_val"][front] * (1.0 - others)
        else:
            c[front, 0] = ph["front_val"][front]
        c[ph["back_dir"], -1] = ph["back_val"][ph["back_dir"]]
        norm_old = None
        for _ in range(p.max_newton):
            self.n_newton += 1
            D, dD = s.diffusivities(c)
            _assemble(c, psi, D, dD, s.z, self.dx, self.vol, s.kappa, a0h, hist_h, ph["front_dir"],
                      ph["front_val"], ph["back_dir"], ph["back_val"], ph["poisson_mode"],
                      ph["dpsi_back"], ph["psi_front"], lattice, s.s_lat, self.res, self.ab,
                      self.flux, self.bjac)
            np.negative(self.res, out=self.delta)   # a non-finite residual ends as a NaN norm
            delta = self.linear.solve(self.ab, self.band, self.delta)
            if delta is None:
                return None
            norm, lam = _newton_update(delta, c, psi, ph["poisson_mode"] != 1, lattice, s.s_lat,
                                       p.atol, p.rtol)
            if not np.isfinite(norm):
                return None
            # the remaining error is ~ rate/(1-rate) * norm for a contracting iteration
            rate = norm / norm_old if norm_old is not None else 1.0
            if lam == 1.0 and norm * min(1.0, rate / max(1.0 - rate, 1e-12)) < self.newton_tol:
                # boundary fluxes linearised like the step itself: the interior rows of the last
                # linear solve hold exactly, so inventory and transfers balance to round-off
                # (boundary_fluxes)
                self.end_flux[:, 0] = self.flux[:, 0] + self.bjac[:, 0] @ delta[:2 * m]
                self.end_flux[:, 1] = (self.flux[:, -1]
                                       + self.bjac[:, 1] @ delta[(self.n - 2) * m:])
                return c, psi
            if rate > 2.0:  # diverging
                return None
            norm_old = norm
        return None

    def boundary_fluxes(self, ph, c, psi, a0h, hist_h):
        """Particle flux into the sample [fraction*nm/s] through front and back, shape (k, 2).

        From the balance of the boundary control volume (its residual row is replaced by the
        Dirichlet condition): influx = vol * dc/dt (BDF) + outgoing SG flux of the interval,
        the flux linearised at the last Newton iterate (`newton` leaves it in ``end_flux``).
        """
        out = np.zeros((self.k, 2))
        ends = np.array([0, 1, self.n - 2, self.n - 1])
        store = (self.vol[ends] * (a0h * c[:, ends] + hist_h[:, ends]))
        front = ph["front_dir"]
        out[front, 0] = store[front, 0] + self.end_flux[front, 0]
        back = ph["back_dir"]
        out[back, 1] = store[back, 3] - self.end_flux[back, 1]
        return out

    def run(self, progress=False):
        s, p, k = self.s, self.s.p, self.k
        x = self.nodes_now
        c = np.zeros((k, self.n))
        c[s.native] = 1.0
        ph0 = s.phases[0]
        if ph0["poisson_mode"] == 1:
            psi = ph0["psi_front"] * (1.0 - x / s.length_nm)
        else:
            psi = ph0["dpsi_back"] * (x - s.length_nm)
        inv = (self.vol * c).sum(axis=1)
        Q = np.zeros((k, 2))  # particles transferred in through (front, back) [fraction*nm]
        t = 0.0
        n_out = len(s.nodes)
        out_c = np.full((len(s.times), k, n_out), np.nan)
        out_psi = np.full((len(s.times), n_out), np.nan)
        out_inv = np.full((len(s.times), k), np.nan)
        out_Q = np.full((len(s.times), k, 2), np.nan)
        i_out = 0

        def record(t, c, psi, inv, Q):
            nonlocal i_out
            if i_out < len(s.times) and s.times[i_out] <= t * (1 + 1e-13) + 1e-300:
                c, psi = self.on_output_grid(c, psi)
            while i_out < len(s.times) and s.times[i_out] <= t * (1 + 1e-13) + 1e-300:
                out_c[i_out], out_psi[i_out] = c, psi
                out_inv[i_out], out_Q[i_out] = inv, Q
                i_out += 1

        record(t, c, psi, inv, Q)
        bar = tqdm(total=s.t_end, disable=not progress, unit="s", desc="NPP",
                   bar_format="{l_bar}{bar}| t = {n:.3g} / {total:.3g} s [{elapsed}]")
        switches = s.windows[1:]   # (t_start, nodes) of the later meshes
        try:
            for ph in s.phases:
                hist, h = None, None   # a phase starts at order 1 with the initial step
                while True:
                    # a mesh change at this time: move the state (and the BDF history) over
                    while switches and switches[0][0] <= t * (1 + 1e-13):
                        if hist is None:
                            hist = [(t, c, inv, Q)]
                        psi, hist = self.remesh(switches.pop(0)[1], psi, hist)
                        c = hist[-1][1]
                        self._last = (c, psi, inv, Q)
                    t_end = ph["t1"]
                    if switches and switches[0][0] < t_end * (1 - 1e-13):
                        t_end = switches[0][0]
                    t, c, psi, inv, Q, hist, h = self.run_phase(ph, t_end, t, c, psi, inv, Q,
                                                                record, bar, hist, h)
                    if t_end == ph["t1"]:
                        break
        except SolverError as err:
            status = "interrupted" if isinstance(err, SolverInterrupted) else "failed"
            last = self._last
            err.partial = self.dataset(out_c, out_psi, out_inv, out_Q, i_out, status, str(err),
                                       extra=(t if np.isnan(err.time_reached_s)
                                              else err.time_reached_s,
                                              (*self.on_output_grid(last[0], last[1]), *last[2:])))
            raise
        finally:
            bar.close()
        return self.dataset(out_c, out_psi, out_inv, out_Q, i_out, "ok", "")

    def run_phase(self, ph, t_end, t, c, psi, inv, Q, record, bar, hist=None, h=None):
        """Steps of phase `ph` from `t` to `t_end` (the phase end or a mesh change).

        `hist` (accepted states of this phase, newest last, at most 3) and `h` (the next step)
        continue a phase across a mesh change; None starts the phase. Returns the state at
        `t_end` with the history and the next step."""
        s, p = self.s, self.s.p
        if hist is None:
            hist = [(t, c, inv, Q)]
        if h is None:
            h = p.dt_initial_s
        h = min(h, t_end - t)
        grid = s.grid
        if grid is not None:
            i_grid = int(np.searchsorted(grid, t, side="right"))  # next grid time
            h_sub = None  # substep after a failure on the fixed grid, until the grid time
        self._last = (c, psi, inv, Q)
        while t < t_end:
            if grid is not None:
                # fixed grid: the next grid time, or a (deterministic) substep after a failure
                nxt = grid[i_grid]
                if h_sub is None or t + h_sub >= nxt * (1 - 1e-12):
                    h, t_new = nxt - t, nxt
                else:
                    h, t_new = h_sub, t + h_sub
            else:
                # land exactly on the next output time / phase end without creating tiny steps
                nxt = t_end
                later = s.times[s.times > t * (1 + 1e-13) + 1e-300]
                if len(later):
                    nxt = min(nxt, later[0])
                if t + h >= nxt * (1 - 1e-12):
                    h = nxt - t
                    t_new = nxt  # exactly, so that outputs and phase ends are hit without round-off
                else:
                    if t + 2 * h > nxt:
                        h = 0.5 * (nxt - t)
                    t_new = t + h
            order = 1 if len(hist) < 3 else 2
            if order == 1:
                a0, a1, a2 = 1.0, -1.0, 0.0
            else:
                w = h / (hist[-1][0] - hist[-2][0])
                a0, a1, a2 = (1 + 2 * w) / (1 + w), -(1 + w), w * w / (1 + w)
            cn = hist[-1][1]
            hist_c = a1 * cn + (a2 * hist[-2][1] if order == 2 else 0.0)
            # predictor (guess and error estimate): polynomial through the stored states
            times = [hs[0] for hs in hist]
            pred, pcoef = self.predict(times, [hs[1] for hs in hist], t_new, order)
            guess = np.maximum(pred, 0.0) if pred is not None else cn
            sol = self.newton(ph, guess, psi, a0 / h, hist_c / h)
            if sol is None:
                self.n_rejected_newton += 1
            elif np.min(sol[0]) < -_NEG_TOL:
                sol = None  # negative concentration: treat like a Newton failure
                self.n_rejected_negative += 1
            if sol is None:
                self.n_rejected += 1
                h *= 0.25
                if grid is not None:
                    h_sub = h
                if h < p.dt_min_s:
                    raise SolverError(
                        f"Newton did not converge at the minimum step {p.dt_min_s:g} s; "
                        f"simulated time reached {t:.6g} s of {s.t_end:.6g} s", t)
                continue
            c_new, psi_new = sol
            # local error: LTE ~ C_c h^{p+1} y^{(p+1)}, y_c - y_pred ~ (C_c h^{p+1} + P) y^{(p+1)}
            if pred is not None:
                cc = (h * h / 2.0) if order == 1 else \
                    h ** 3 * (1 + w) ** 2 / (6 * w * (1 + 2 * w))
                lte = cc / (cc + pcoef) * (c_new - pred)
                err = np.max(np.abs(lte) / (p.atol + p.rtol * np.abs(c_new)))
            else:
                err = 0.0  # first step of a phase: no history to estimate from
            if err > 1.0 and grid is None:
                self.n_rejected += 1
                h *= max(0.2, 0.9 * err ** (-1.0 / (order + 1)))
                continue
            self.max_error = max(self.max_error, err)
            # accepted: boundary transfer follows the same BDF recurrence as the inventory
            F = self.boundary_fluxes(ph, c_new, psi_new, a0 / h, hist_c / h)
            hist_Q = a1 * hist[-1][3] + (a2 * hist[-2][3] if order == 2 else 0.0)
            Q = (h * F - hist_Q) / a0
            inv = (self.vol * c_new).sum(axis=1)
            self.n_steps += 1
            self.step_times.append(t_new)
            bar.update(h)
            t, c, psi = t_new, c_new, psi_new
            self._last = (c, psi, inv, Q)
            hist.append((t, c, inv, Q))
            del hist[:-3]
            record(t, c, psi, inv, Q)
            if self.stop is not None and self.stop():
                raise SolverInterrupted(f"stopped on request at simulated time {t:.6g} s of "
                                        f"{s.t_end:.6g} s", t)
            if grid is not None:
                if t == nxt:
                    i_grid += 1
                    h_sub = None
                else:
                    h_sub *= 2.0
                continue
            if pred is None:
                fac = 2.0
            else:
                fac = min(2.0, max(0.2, 0.9 * max(err, 1e-10) ** (-1.0 / (order + 1))))
            h *= fac
        return t, c, psi, inv, Q, hist, h

    @staticmethod
    def predict(times, states, t_new, order):
        """Extrapolate the last order+1 states to t_new.

        Returns the prediction and the coefficient P of y^{(p+1)} in the prediction error
        ``y - pred = P y^{(p+1)}`` (interpolation remainder), or (None, None) without history.
        """
        if len(times) < order + 1:
            return None, None
        ts = times[-(order + 1):]
        ys = states[-(order + 1):]
        pred = np.zeros_like(ys[0])
        for a, ta in enumerate(ts):  # Lagrange form
            wgt = 1.0
            for b, tb in enumerate(ts):
                if b != a:
                    wgt *= (t_new - tb) / (ta - tb)
            pred = pred + wgt * ys[a]
        rem = 1.0
        for ta in ts:
            rem *= (t_new - ta)
        fact = 2.0 if order == 1 else 6.0
        return pred, rem / fact

    def dataset(self, out_c, out_psi, out_inv, out_Q, n_out, status, message, extra=None):
        """Assemble the output xarray.Dataset from the first n_out output rows (+ extra state)."""
        s, p = self.s, self.s.p
        times = list(s.times[:n_out])
        c, psi, inv, Q = (out_c[:n_out], out_psi[:n_out], out_inv[:n_out], out_Q[:n_out])
        if extra is not None and (n_out == 0 or extra[0] > times[-1]):
            t_x, (cx, px, ix, qx) = extra
            times.append(t_x)
            c = np.concatenate([c, cx[None]])
            psi = np.concatenate([psi, px[None]])
            inv = np.concatenate([inv, ix[None]])
            Q = np.concatenate([Q, qx[None]])
        phi = psi * s.kT_eV
        mid = 0.5 * (s.nodes[1:] + s.nodes[:-1])
        efield = -np.diff(phi, axis=1) / (s.dx * _NM)
        frac = np.linspace(0.0, 1.0, 101)[1:]
        dtab = np.empty((len(s.species), len(frac)))
        with np.errstate(all="ignore"):
            for i, model in enumerate(s.d_models):
                dtab[i] = np.asarray(model.D_and_dD(frac)[0], dtype=float) * 1e4  # m^2/s -> cm^2/s
        extra_vars, extra_coords = {}, {}
        if len(s.windows) > 1:   # the meshes in time, so that a result can be recomputed
            wn = np.full((len(s.windows), max(len(x) for _, x in s.windows)), np.nan)
            for i, (_, x) in enumerate(s.windows):
                wn[i, :len(x)] = x
            extra_vars["window_nodes"] = (("window", "window_node"), wn, dict(
                units="nm", long_name="mesh nodes of each time window (NaN-padded)"))
            extra_coords["window_start"] = ("window", [t0 for t0, _ in s.windows], dict(
                units="s", long_name="start of the mesh window"))
        ds = xr.Dataset(
            data_vars=dict(
                **extra_vars,
                concentration=(("species", "time", "depth"), np.moveaxis(c, 1, 0),
                               dict(units="1", long_name="concentration / n_bulk")),
                potential=(("time", "depth"), phi, dict(units="V", long_name="electric potential")),
                field=(("time", "depth_face"), efield,
                       dict(units="V/m", long_name="electric field -dphi/dx")),
                inventory=(("species", "time"), np.asarray(inv).T.reshape(len(s.species), -1),
                           dict(units="nm", long_name="areal inventory / n_bulk")),
                transferred=(("species", "boundary", "time"), np.moveaxis(Q, 0, 2),
                             dict(units="nm", long_name="particles entered through boundary / "
                                                        "(n_bulk area), time-integrated")),
                diffusivity=(("species", "fraction"), dtab,
                             dict(units="cm^2/s", long_name="diffusion coefficient D(n)")),
            ),
            coords=dict(
                species=("species", list(s.species), dict(long_name="mobile species")),
                time=("time", np.asarray(times, dtype=float), dict(units="s", long_name="time")),
                depth=("depth", s.nodes, dict(units="nm", long_name="depth")),
                depth_face=("depth_face", mid, dict(units="nm", long_name="depth between nodes")),
                boundary=("boundary", ["front", "back"], dict(long_name="sample boundary")),
                fraction=("fraction", frac, dict(units="1", long_name="concentration / n_bulk")),
                **extra_coords,
            ),
            attrs=dict(
                engine="npp", flux_convention=p.flux_convention, status=status, message=message,
                n_steps=self.n_steps, n_newton=self.n_newton, n_rejected=self.n_rejected,
                n_rejected_newton=self.n_rejected_newton,
                n_rejected_negative=self.n_rejected_negative,
                time_grid="adaptive" if s.grid is None else "fixed",
                max_error_estimate=float(self.max_error),
                native=p.native, back=p.back, debye_length_nm=s.debye_nm,
                n_bulk_m3=p.n_bulk_m3, temperature_K=p.temperature_K, rtol=p.rtol, atol=p.atol,
                n_cells=len(s.nodes) - 1,
                mesh_windows=len(s.windows), n_remesh=self.n_remesh,
                window_cells=np.asarray([len(x) - 1 for _, x in s.windows], np.int64),
            ),
        )
        return ds


def solve(problem, progress=False, return_steps=False, stop=None):
    """Integrate the NPP equations through the beam schedule.

    Parameters
    ----------
    problem : NPPProblem
        With ``fixed_times_s`` the steps follow that grid (no error control, Newton to
        ``fixed_newton_tol``): deterministic, smooth in the parameters.
    progress : bool
        Show a tqdm bar of the simulated time.
    return_steps : bool
        Also return the end times of the accepted steps, ndarray of float64, shape (n_steps,)
        [s]: a valid ``fixed_times_s`` for later solves on the same schedule.
    stop : callable, optional
        Polled after every accepted step; once it returns True the solver raises
        :class:`SolverInterrupted` with the result so far (``status="interrupted"``).

    Returns
    -------
    xarray.Dataset
        ``concentration(species, time, depth)`` [fraction of n_bulk], ``potential(time, depth)``
        [V], ``field(time, depth_face)`` [V/m], ``inventory(species, time)`` and
        ``transferred(species, boundary, time)`` [nm, i.e. per n_bulk and area],
        ``diffusivity(species, fraction)`` [cm^2/s]; attrs ``engine="npp"``,
        ``flux_convention``, ``n_steps``, ``n_newton``, ``n_rejected``, ``status``,
        ``time_grid`` ("adaptive" | "fixed"), ``max_error_estimate`` (largest local error
        estimate in tolerance units; <= 1 when adaptive, the accuracy check of a fixed grid).

    Raises
    ------
    ProblemError
        Inconsistent problem.
    SolverError
        Newton failed at the minimum step; ``err.partial`` holds the result so far.
    SolverInterrupted
        `stop` returned True; ``err.partial`` holds the result so far.
    """
    setup = _Setup(problem)
    integrator = _Integrator(setup, stop)
    ds = integrator.run(progress=progress)
    if return_steps:
        return ds, np.asarray(integrator.step_times, dtype=float)
    return ds
