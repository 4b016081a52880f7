"""Fit NPP to measured depth profiles: bounded least squares from several starts.

Pipeline::

    [fit] section ─► FitParameter's (bounds, log10 for D) ─► normalised box z in [0, 1]^p
    z ─► cfg with the parameters replaced ─► forward model (NPP) ─► profiles at the
         measured depths (compare.io.profiles) ─► weighted residuals ─► least_squares (trf)

Optionally (``fit.search_n_cells``, ``fit.search_rtol``) the starts run on a coarser NPP
model that only has to find the basin; the best start is polished on the full model, which alone
gives the reported values, chi2 and uncertainties.

The optimiser works in a normalised box (each parameter's fit coordinate, log10 D or the value
itself, mapped linearly onto [0, 1]) so that one finite-difference step size suits every
parameter. Starts run in parallel worker processes (fork: the workers inherit the problem, so
nothing but parameter vectors, and the current frozen time grid, crosses the process boundary).
The full NPP forward model runs on a time grid frozen from an adaptive solve
(:class:`FrozenGridNPP`), which makes the profiles smooth in the parameters. Uncertainties come
from a central-difference Jacobian at the optimum: ``cov = s^2 (J^T J)^-1`` in fit coordinates,
with ``s^2 = 1`` when the profiles carry standard errors and ``s^2 = chi2 / (m - p)`` otherwise.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import xarray as xr

from compare import scenario
from compare.io import config as config_mod
from compare.errors import CaitError, ConfigError, InputFileError
from compare.units import D_UNITS

# Search settings by the kind of forward model (its `smooth` attribute). "noisy" (adaptive time
# steps, noise at the tolerance level): forward differences in the normalised box with a step
# 2e-3 above the noise, central differences with 1e-2 for the covariance, and xtol = 1e-4 as the
# trust region collapses on the noise. "smooth" (frozen time grid, FrozenGridNPP): derivatives
# converge down to steps of ~1e-5 (docs/fitting.md), so steps 1e-4 / 1e-3 resolve the narrow
# curved valleys of correlated parameters, and xtol is only a safeguard: xtol = 1e-4 stopped the
# search in such a valley. ftol: chi2 to 1e-4 relative (0.01 for chi2 ~ 100, well below 1 sigma).
SEARCH_SETTINGS = {
    "noisy": dict(fd_step=2e-3, fd_step_covariance=1e-2, xtol=1e-4, ftol=1e-4, method="trf"),
    "smooth": dict(fd_step=1e-4, fd_step_covariance=2e-4, xtol=1e-10, ftol=1e-5,
                   method="dogbox"),
}
# Frozen time grid (FrozenGridNPP): re-freeze at the optimum at most this often, polishing the
# optimum on the new grid while the profiles move by more than REFREEZE_TOL measurement errors
# (0.3: about the time-discretisation error of the default rtol 1e-3 on the bundled example, so
# a further polish would only chase the discretisation).
MAX_REFREEZE = 3
REFREEZE_TOL = 0.3
# During the search, re-freeze at an iterate whose fixed-grid solve has a local error estimate
# above this many times the tolerance (the grid was made for parameters far from here).
REFREEZE_ERROR = 3.0
FAILED_RESIDUAL = 1e3  # weighted residual of every point when the forward model fails
PARAMETER_KEYS = ("name", "lower", "upper", "start", "log_scale")


# ---------------------------------------------------------------------------------------------
# Free parameters
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FitParameter:
    """One free parameter with its bounds (natural units) and fit coordinate."""

    name: str  # e.g. "species.Li.D_cm2_s"
    lower: float  # natural units
    upper: float
    start: float  # natural units, inside [lower, upper]
    log_scale: bool  # fit log10(value)
    units: str

    def to_fit(self, value):
        return np.log10(value) if self.log_scale else np.asarray(value, dtype=float)

    def from_fit(self, u):
        return 10.0 ** np.asarray(u) if self.log_scale else np.asarray(u, dtype=float)

    @property
    def fit_bounds(self) -> tuple:
        return float(self.to_fit(self.lower)), float(self.to_fit(self.upper))

    @property
    def fit_name(self) -> str:
        return f"log10({self.name})" if self.log_scale else self.name


def _get_sed(cfg, attr):
    if cfg.sed.kind != "gaussian":
        raise ConfigError(f"`fit.parameters`: `sed.{attr}` can only be fitted with "
                          f"`sed.kind = \"gaussian\"`, got kind = {cfg.sed.kind!r}")
    return getattr(cfg.sed, attr)


def _set_sed(cfg, attr, value):
    return config_mod.replace(cfg, "sed", **{attr: float(value)})


def _set_vacancy_fraction(cfg, value):
    """New vacancy fraction; front occupancies that were defaulted (1 - f_vac) follow it."""
    old = cfg.material.vacancy_fraction
    beam = tuple(dataclasses.replace(p, theta_front=1.0 - float(value))
                 if abs(p.theta_front - (1.0 - old)) < 1e-12 else p for p in cfg.beam)
    cfg = config_mod.replace(cfg, "material", vacancy_fraction=float(value))
    return dataclasses.replace(cfg, beam=beam)


def _set_species_D(cfg, name, value):
    species = tuple(dataclasses.replace(s, D_cm2_s=float(value)) if s.name == name else s
                    for s in cfg.species)
    return dataclasses.replace(cfg, species=species)


_POSITIVE = ((0.0, True), (math.inf, True))  # ((lower, open), (upper, open))
_ANY = ((-math.inf, True), (math.inf, True))
_FRACTION = ((0.0, False), (1.0, True))


def _parameter_registry(cfg) -> dict:
    """name -> (getter(cfg), setter(cfg, value), units, physical range, log10 by default)."""
    reg = {
        "sed.fwhm_eV": (lambda c: _get_sed(c, "fwhm_eV"),
                        lambda c, v: _set_sed(c, "fwhm_eV", v), "eV", _POSITIVE, False),
        "sed.center_eV": (lambda c: _get_sed(c, "center_eV"),
                          lambda c, v: _set_sed(c, "center_eV", v), "eV", _ANY, False),
        "material.vacancy_fraction": (lambda c: c.material.vacancy_fraction,
                                      _set_vacancy_fraction, "1", _FRACTION, False),
    }
    for s in cfg.species:
        reg[f"species.{s.name}.D_cm2_s"] = (
            lambda c, n=s.name: c.species_by_name(n).D_cm2_s,
            lambda c, v, n=s.name: _set_species_D(c, n, v), D_UNITS, _POSITIVE, True)
    return reg


def fit_parameters(cfg) -> tuple:
    """The free parameters of the input's ``[fit]`` section, validated.

    Returns
    -------
    tuple of FitParameter

    Raises
    ------
    ConfigError
        Empty or malformed `fit.parameters`, unknown parameter names (with a did-you-mean),
        bounds that are not finite, not ordered or outside the physical range, starts outside
        the bounds.
    """
    raw = cfg.fit.parameters
    if not raw:
        raise ConfigError("`fit.parameters` is empty: name at least one free parameter, e.g. "
                          "parameters = [{name = \"sed.fwhm_eV\", lower = 0.15, upper = 0.4}]")
    reg = _parameter_registry(cfg)
    out, seen = [], set()
    for i, table in enumerate(raw):
        where = f"fit.parameters[{i}]"
        for key in table:
            if key not in PARAMETER_KEYS:
                close = difflib.get_close_matches(key, PARAMETER_KEYS, n=1, cutoff=0.6)
                hint = f" (did you mean `{close[0]}`?)" if close else ""
                raise ConfigError(f"unknown key `{where}.{key}`{hint}; allowed: "
                                  f"{', '.join(PARAMETER_KEYS)}")
        name = table.get("name")
        if not isinstance(name, str):
            raise ConfigError(f"`{where}.name` is required (a string such as "
                              f"\"species.{cfg.native.name}.D_cm2_s\")")
        if name not in reg:
            close = difflib.get_close_matches(name, list(reg), n=1, cutoff=0.6)
            hint = f" (did you mean `{close[0]}`?)" if close else ""
            raise ConfigError(f"`{where}.name` must be one of {', '.join(reg)}, got "
                              f"{name!r}{hint}")
        if name in seen:
            raise ConfigError(f"`{where}.name`: parameter {name!r} is listed twice")
        seen.add(name)
        getter, _, units, (p_lo, p_hi), log_default = reg[name]  # p_*: (bound, open)
        vals = {}
        for key in ("lower", "upper", "start"):
            v = table.get(key)
            if v is None:
                if key == "start":
                    continue
                raise ConfigError(f"`{where}.{key}` is required (bound of {name}, {units})")
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(f"`{where}.{key}` must be a finite number, got {v!r}")
            vals[key] = float(v)
        lo, hi = vals["lower"], vals["upper"]
        if not lo < hi:
            raise ConfigError(f"`{where}`: `lower` must be < `upper`, got {lo:g} >= {hi:g}")
        lo_ok = lo > p_lo[0] or (not p_lo[1] and lo == p_lo[0])
        hi_ok = hi < p_hi[0] or (not p_hi[1] and hi == p_hi[0])
        if not (lo_ok and hi_ok):
            legal = (f"{'(' if p_lo[1] else '['}{p_lo[0]:g}, {p_hi[0]:g}"
                     f"{')' if p_hi[1] else ']'}")
            raise ConfigError(f"`{where}`: bounds of {name} must lie in {legal}, got "
                              f"[{lo:g}, {hi:g}]")
        log_scale = table.get("log_scale", cfg.fit.log_scale and log_default)
        if not isinstance(log_scale, bool):
            raise ConfigError(f"`{where}.log_scale` must be true or false, got {log_scale!r}")
        if log_scale and lo <= 0:
            raise ConfigError(f"`{where}`: `log_scale = true` needs `lower` > 0, got {lo:g}")
        start = vals.get("start", min(max(float(getter(cfg)), lo), hi))
        if not lo <= start <= hi:
            raise ConfigError(f"`{where}.start` must lie within [{lo:g}, {hi:g}], got "
                              f"{start:g}")
        out.append(FitParameter(name, lo, hi, start, bool(log_scale), units))
    return tuple(out)


def apply_parameters(cfg, params, values):
    """A copy of `cfg` with the free parameters set to `values` (natural units)."""
    reg = _parameter_registry(cfg)
    for p, v in zip(params, values):
        cfg = reg[p.name][1](cfg, v)
    return cfg


def truncate_schedule(cfg, t_end_s: float):
    """`cfg` with the beam schedule cut at `t_end_s` and output times ``(0, t_end_s)``."""
    total = cfg.total_duration_s
    if not 0 < t_end_s <= total * (1 + 1e-12):
        raise ConfigError(f"`fit.time_s` must lie within the beam schedule (0, {total:g}] s, "
                          f"got {t_end_s:g}")
    beam = []
    for start, phase in zip(cfg.phase_starts_s, cfg.beam):
        if start >= t_end_s * (1 - 1e-12):
            break
        beam.append(dataclasses.replace(phase, duration_s=min(phase.duration_s,
                                                              t_end_s - start)))
    cfg = dataclasses.replace(cfg, beam=tuple(beam))
    return config_mod.replace(cfg, "output", times_s=[0.0, float(t_end_s)], plot_times_s=[])


def search_config(cfg):
    """`cfg` with the mesh and time tolerance of the search stage (``fit.search_n_cells``,
    ``fit.search_rtol``), or None when the starts search on the full model itself.

    The starts only have to find the basin of the optimum; they may run on a coarser, cheaper
    forward model. The optimum is then polished, and its uncertainties computed, on the full
    model (the input's ``[npp]``), so the result does not depend on the search model.
    """
    n = cfg.npp
    if 0 < cfg.fit.search_n_cells < 10:
        raise ConfigError(f"`fit.search_n_cells` must be 0 (the [npp] mesh) or >= 10, got "
                          f"{cfg.fit.search_n_cells}")
    cells = cfg.fit.search_n_cells
    rtol = cfg.fit.search_rtol or n.rtol
    if (not cells or (cells == n.n_cells and n.mesh == "graded")) and rtol == n.rtol:
        return None
    if not cells:
        return config_mod.replace(cfg, "npp", rtol=float(rtol))
    return config_mod.replace(cfg, "npp", mesh="graded", n_cells=int(cells), rtol=float(rtol))


def _mesh_text(npp):
    """The mesh of an ``[npp]`` section in a few words."""
    return "adaptive mesh" if npp.mesh == "adaptive" else f"{npp.n_cells} cells"


# ---------------------------------------------------------------------------------------------
# Forward models: (cfg) -> xr.Dataset with concentration(species, time, depth)
# ---------------------------------------------------------------------------------------------
class FrozenGridNPP:
    """Full NPP on a time grid (and mesh) frozen from an adaptive reference solve: smooth in the
    parameters.

    The adaptive step sequence changes discontinuously with the parameters (accepted/rejected
    steps, Newton iteration counts), which puts noise of the order of the time tolerance into
    the profiles and their finite-difference derivatives; so would a mesh that is re-adapted at
    every call. The first call (or :meth:`freeze`) solves adaptively (with ``[npp] mesh =
    "adaptive"``: on a mesh designed from a pilot run, :mod:`continuum.adapt`, unchecked: the
    fit checks its model error once, at the optimum) and keeps its step times and mesh; later
    calls reuse them (``NPPProblem.fixed_times_s``, Newton converged tightly), so the profile
    is a smooth, deterministic function of the parameters. ``last_max_error`` holds the local
    error estimate of the last fixed-grid solve (in units of the time tolerance): values well
    above 1 mean the frozen grid no longer resolves the solution and should be re-frozen.
    """

    smooth = True  # profiles are smooth functions of the parameters (FitProblem's settings)

    def __init__(self):
        # (step end times [s], MeshSpec (explicit nodes or windows), rtol, atol) of the
        # reference solve
        self.grid = None
        self.last_max_error = math.nan

    def freeze(self, cfg):
        """Adaptive solve of `cfg`; its step times and mesh become the grid. Returns its
        dataset."""
        from continuum.npp import solve

        steps = []

        def solve_keep_steps(problem, progress=False, stop=None):
            ds, st = solve(problem, return_steps=True, stop=stop)
            steps[:] = [st]
            return ds

        ds, problem = _solve_once(cfg, solve_keep_steps, "full")
        self.grid = (tuple(float(t) for t in steps[0]), problem.mesh, problem.rtol,
                     problem.atol)
        self.last_max_error = float(ds.attrs["max_error_estimate"])
        return ds

    def problem(self, cfg):
        """The NPP problem of `cfg` on the frozen grid and mesh (None before the first call)."""
        if self.grid is None:
            return None
        times, mesh, rtol, atol = self.grid
        problem = _on_mesh(scenario.npp_problem(cfg), mesh)
        return dataclasses.replace(problem, rtol=rtol, atol=atol, fixed_times_s=times)

    def __call__(self, cfg):
        if self.grid is None:
            return self.freeze(cfg)
        from continuum.npp import solve

        ds = solve(self.problem(cfg))
        self.last_max_error = float(ds.attrs["max_error_estimate"])
        return ds


class FixedMeshElectroneutral:
    """The electroneutral forward model on one mesh for the whole fit: the first call adapts it
    (``[npp] mesh = "adaptive"``, unchecked), later calls reuse its nodes, so the mesh does not
    jump with the parameters. Forward evaluations skip the shadow run (the fit estimates the
    model error once, at the optimum)."""

    def __init__(self):
        self.mesh = None
        self.started = False

    def problem(self, cfg):
        """The electroneutral problem of `cfg` on the fixed mesh (None before the first call)."""
        if not self.started:
            return None
        return _on_mesh(scenario.npp_problem(cfg, solver_name="electroneutral"), self.mesh)

    def __call__(self, cfg):
        if self.started:
            return scenario.solver("electroneutral")(self.problem(cfg))
        ds, problem = _solve_once(cfg, scenario.solver("electroneutral"), "electroneutral")
        self.mesh, self.started = problem.mesh, True
        return ds


def _solve_once(cfg, solve, solver_name):
    """One solve of `cfg` with `solve` on the mesh a fit then keeps: with ``[npp] mesh =
    "adaptive"`` adapted from a pilot (unchecked; the fit checks its model error at the
    optimum), else the input's mesh. Returns (dataset, the problem it solved)."""
    from continuum import adapt

    problem = scenario.npp_problem(cfg, solver_name=solver_name)
    if cfg.npp.mesh != "adaptive":
        return solve(problem), problem
    res = adapt.solve_adaptive(problem, solve, float(cfg.npp.tol), check=False,
                               windows=cfg.npp.mesh_windows)
    return res.ds, res.problem


def _on_mesh(problem, mesh):
    """`problem` on the mesh (a MeshSpec) of an earlier solve."""
    return dataclasses.replace(problem, mesh=mesh)


# name -> factory of a forward model ``forward(cfg) -> xr.Dataset``; a factory call gives a fresh
# (possibly stateful) model for one fit
FORWARD_MODELS: dict[str, Callable] = {
    "full": FrozenGridNPP,
    "electroneutral": FixedMeshElectroneutral,
}


def _engine_errors() -> tuple:
    """Exceptions meaning "the forward model failed at these parameters" (not a bug)."""
    classes = [ArithmeticError, ValueError]
    try:
        from continuum.errors import SolverError
        classes.append(SolverError)
    except ImportError:
        pass
    return tuple(classes)


def forward_model(cfg) -> Callable:
    """A new forward model of the kind selected by ``fit.solver`` (or ``npp.solver``)."""
    solver = cfg.fit.solver or cfg.npp.solver
    if solver not in FORWARD_MODELS:
        raise ConfigError(f"unknown forward model {solver!r}; legal: {', '.join(FORWARD_MODELS)}")
    return FORWARD_MODELS[solver]()


def synthesize_profiles(cfg, depth_nm, sigma, rng=None, time_s=None, species=None,
                        forward=None):
    """Profiles of the forward model at the input's values, plus Gaussian noise.

    For recovery tests and examples: the data a perfect measurement with standard error
    `sigma` would give if the input's parameters were the truth.

    Parameters
    ----------
    cfg : Config
    depth_nm : array_like of float, shape (n_depth,)
        Sampling depths [nm], increasing.
    sigma : float
        Standard deviation of the noise (fraction of n_bulk); also stored as the error.
    rng : numpy.random.Generator, optional
        Noise source; None gives noise-free profiles (errors still `sigma`).
    time_s : float, optional
        Profile time [s] (default: end of the schedule).
    species : sequence of str, optional
        Species to keep (default: all).
    forward : callable, optional
        Default: :func:`forward_model` of `cfg`.

    Returns
    -------
    compare.io.profiles.MeasuredProfiles
    """
    from compare.io.profiles import MeasuredProfiles

    t = cfg.total_duration_s if time_s is None else time_s
    ds = (forward or forward_model(cfg))(truncate_schedule(cfg, t))
    species = list(species or cfg.species_names)
    conc = ds["concentration"].isel(time=-1).sel(species=species).transpose("species", "depth")
    depth = np.asarray(depth_nm, dtype=float)
    values = np.stack([np.interp(depth, conc["depth"].values, row) for row in conc.values])
    if rng is not None:
        values = values + rng.normal(0.0, sigma, values.shape)
    return MeasuredProfiles(depth, tuple(species), values, np.full_like(values, sigma),
                            source="synthetic", time_s=None)


# ---------------------------------------------------------------------------------------------
# The least-squares problem
# ---------------------------------------------------------------------------------------------
class FitProblem:
    """Weighted residuals of simulated against measured profiles as a function of z in [0,1]^p.

    Parameters
    ----------
    cfg : Config
        The scenario (schedule already cut at the profile time, see :func:`truncate_schedule`).
    params : tuple of FitParameter
    measured : compare.io.profiles.MeasuredProfiles
    forward : callable
        ``forward(cfg) -> xr.Dataset`` with ``concentration(species, time, depth)``; its last
        time is compared with the measurement.
    """

    def __init__(self, cfg, params, measured, forward):
        self.cfg, self.params, self.measured, self.forward = cfg, tuple(params), measured, forward
        self.lo_u = np.array([p.fit_bounds[0] for p in self.params])
        self.hi_u = np.array([p.fit_bounds[1] for p in self.params])
        self.weights = (1.0 / measured.errors if measured.errors is not None
                        else np.ones_like(measured.values))
        self.n_evaluations = 0
        self.n_failed = 0
        self.search = SEARCH_SETTINGS["smooth" if getattr(forward, "smooth", False) else "noisy"]
        self._recent = {}  # z bytes -> simulated concentration (insertion ordered)
        self._errors = _engine_errors()
        thickness = cfg.sample.thickness_nm
        if measured.depth_nm[-1] > thickness * (1 + 1e-9):
            raise InputFileError(f"{measured.source}: measured depths reach "
                                 f"{measured.depth_nm[-1]:g} nm, beyond the simulated region "
                                 f"(sample.thickness_nm = {thickness:g})")

    @property
    def n_points(self) -> int:
        return self.measured.values.size

    def z_to_values(self, z) -> np.ndarray:
        """Natural-unit parameter values, shape (p,), of a point z of the normalised box."""
        u = self.lo_u + np.asarray(z) * (self.hi_u - self.lo_u)
        return np.array([float(p.from_fit(ui)) for p, ui in zip(self.params, u)])

    def values_to_z(self, values) -> np.ndarray:
        u = np.array([float(p.to_fit(v)) for p, v in zip(self.params, values)])
        return (u - self.lo_u) / (self.hi_u - self.lo_u)

    def simulate(self, z) -> xr.DataArray:
        """Simulated concentration(species, depth) at the profile time (model grid)."""
        cfg = apply_parameters(self.cfg, self.params, self.z_to_values(z))
        self.n_evaluations += 1
        ds = self.forward(cfg)
        conc = ds["concentration"].isel(time=-1)
        conc = conc.sel(species=list(self.measured.species)).transpose("species", "depth")
        self._remember(z, conc)
        return conc

    def _remember(self, z, conc):
        key = np.asarray(z, dtype=float).tobytes()
        self._recent[key] = (conc, getattr(self.forward, "last_max_error", None))
        while len(self._recent) > 16:  # the optimiser's final point is among the last calls
            self._recent.pop(next(iter(self._recent)))

    @property
    def grid(self):
        """The forward model's frozen grid (for FrozenGridNPP: step times, nodes, rtol, atol) or
        None."""
        return getattr(self.forward, "grid", None)

    def use_grid(self, grid):
        """Adopt the parent's frozen time grid (in a worker); forget profiles of another grid."""
        if grid is not None and self.forward.grid != grid:
            self.forward.grid = grid
            self._recent.clear()

    def error_estimate(self, z):
        """Largest local time-error estimate (tolerance units) of the solve at `z` on the frozen
        grid, if `z` was among the recent evaluations; else None."""
        hit = self._recent.get(np.asarray(z, dtype=float).tobytes())
        return None if hit is None else hit[1]

    def refreeze(self, z, conc_old=None) -> float:
        """Re-freeze the forward model's time grid at `z` (adaptive solve there).

        Forgets the cached profiles (they belong to the old grid). Returns the largest change of
        the modelled profiles at the measured points, old grid -> new, in units of the
        measurement errors (of the data's spread without errors); nan when the old profile at
        `z` is neither given nor cached.
        """
        if conc_old is None:
            conc_old = self.recent(z)
        cfg = apply_parameters(self.cfg, self.params, self.z_to_values(z))
        self.n_evaluations += 1
        ds = self.forward.freeze(cfg)
        conc = ds["concentration"].isel(time=-1)
        conc = conc.sel(species=list(self.measured.species)).transpose("species", "depth")
        self._recent.clear()
        self._remember(z, conc)
        return self.shift_sigma(conc, conc_old)

    def shift_sigma(self, conc, conc_old) -> float:
        """Largest difference of two modelled profiles at the measured points, in units of the
        measurement errors (of the data's spread without errors); nan if `conc_old` is None."""
        if conc_old is None:
            return math.nan
        change = self.model_at_measured(conc) - self.model_at_measured(conc_old)
        scale = self.weights if self.measured.errors is not None else \
            1.0 / max(float(np.std(self.measured.values)), 1e-300)
        return float(np.max(np.abs(change * scale)))

    def recent(self, z):
        """The simulated profile at `z` if it was among the last evaluations, else None."""
        hit = self._recent.get(np.asarray(z, dtype=float).tobytes())
        return None if hit is None else hit[0]

    def model_at_measured(self, conc: xr.DataArray) -> np.ndarray:
        depth = np.asarray(conc["depth"].values, dtype=float)
        return np.stack([np.interp(self.measured.depth_nm, depth, np.asarray(row, dtype=float))
                         for row in conc.values])

    def residuals(self, z, reuse: bool = True) -> np.ndarray:
        """Weighted residuals (model - measured) / error, flattened, shape (n_points,).

        `reuse`: take the profile from a recent evaluation at the same `z` when there is one
        (the forward model is deterministic; scipy re-evaluates the start point).
        """
        try:
            conc = self.recent(z) if reuse else None
            model = self.model_at_measured(conc if conc is not None else self.simulate(z))
        except self._errors as exc:
            if isinstance(exc, CaitError):  # bad input, not a failed solve
                raise
            model = None
        if model is None or not np.all(np.isfinite(model)):
            # A failed solve must not stop the search: a uniform large residual makes the
            # trust region shrink back towards parameters that worked.
            self.n_failed += 1
            return np.full(self.n_points, FAILED_RESIDUAL)
        return ((model - self.measured.values) * self.weights).ravel()


# The problem of a pool's worker process, set once by the pool's initializer (:func:`_pool`).
_WORKER_PROBLEM: FitProblem | None = None


def _init_worker(problem):
    global _WORKER_PROBLEM
    _WORKER_PROBLEM = problem


def _run_start(prob, z0, pool=None):
    """One least-squares run from `z0` on the problem `prob`.

    Forward differences with an absolute step (`SEARCH_SETTINGS`) in the box (scipy's
    `diff_step` is relative to |z| and collapses near z = 0, below the solver's time-stepping
    noise). With `pool` (more workers than starts) the Jacobian's columns are evaluated in
    parallel.
    """
    from scipy.optimize import least_squares

    n0, f0 = prob.n_evaluations, prob.n_failed
    t0, c0 = time.perf_counter(), time.process_time()
    extra = [0, 0]  # evaluations and failures in other processes

    fd = prob.search["fd_step"]
    n_refreeze = [0]

    def jac(z):
        # A frozen grid made far from here no longer resolves the solution: make a new one at
        # this iterate (before its Jacobian; the optimiser's cost at z changes by the
        # discretisation difference, negligible while far from the optimum).
        # If the adaptive solve there fails, the search goes on with the old grid (the failure
        # is counted like a failed evaluation).
        err = prob.error_estimate(z)
        if err is not None and err > REFREEZE_ERROR:
            try:
                prob.refreeze(z)
                n_refreeze[0] += 1
            except prob._errors as exc:
                if isinstance(exc, CaitError):  # bad input, not a failed solve
                    raise
                prob.n_failed += 1
        h = np.where(z + fd <= 1.0, fd, -fd)  # step back from the upper bound
        points = [z + h[j] * np.eye(len(z))[j] for j in range(len(z))]
        out = _map(pool, _residuals_task, [(q, prob.grid) for q in points], prob)
        if pool is not None:
            extra[0] += sum(o[1] for o in out)
            extra[1] += sum(o[2] for o in out)
        r0 = prob.residuals(z)  # reused: scipy evaluated fun(z) just before
        dz = [points[j][j] - z[j] for j in range(len(z))]  # exactly representable step
        return np.stack([(o[0] - r0) / d for o, d in zip(out, dz)], axis=1)

    res = least_squares(prob.residuals, np.asarray(z0, dtype=float), bounds=(0.0, 1.0), jac=jac,
                        method=prob.search["method"], x_scale=1.0, xtol=prob.search["xtol"],
                        ftol=prob.search["ftol"], max_nfev=prob.cfg.fit.max_evaluations)
    return {"z": res.x, "cost": float(res.cost),
            "nfev": int(prob.n_evaluations - n0 + extra[0]),
            "n_failed": int(prob.n_failed - f0 + extra[1]), "status": int(res.status),
            "n_refreeze": n_refreeze[0], "grid": prob.grid,
            "message": str(res.message), "seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - c0, "model": prob.recent(res.x)}


def _start_task(z0):
    """A least-squares start in a worker (the Jacobian's columns evaluated there too)."""
    return _run_start(_WORKER_PROBLEM, z0)


def _residuals_task(args):
    """(z, time grid or None) -> (residuals, evaluations, failures), in a worker."""
    z, grid = args
    prob = _WORKER_PROBLEM
    prob.use_grid(grid)
    n0, f0 = prob.n_evaluations, prob.n_failed
    r = prob.residuals(z)
    return r, prob.n_evaluations - n0, prob.n_failed - f0


def _simulate_task(args):
    z, grid = args
    _WORKER_PROBLEM.use_grid(grid)
    return _WORKER_PROBLEM.simulate(z)


def _start_points(params, n_starts, sampling, seed, z_input) -> np.ndarray:
    """Starts in the normalised box: the input's values, then a quasi-random design."""
    from scipy.stats import qmc

    p = len(params)
    if n_starts == 1:
        return z_input[None, :]
    n = n_starts - 1
    if sampling == "sobol":
        sampler = qmc.Sobol(d=p, scramble=True, rng=np.random.default_rng(seed))
        extra = sampler.random_base2(max(0, math.ceil(math.log2(n))))[:n]
    else:
        extra = qmc.LatinHypercube(d=p, rng=np.random.default_rng(seed)).random(n)
    return np.vstack([z_input[None, :], extra])


def _pool(workers, problem):
    """A process pool whose workers get `problem` from the initializer, or None (serial).

    The workers fork, so the problem (forward model, compiled kernels) is handed over without
    pickling."""
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return None
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=_init_worker, initargs=(problem,))


def _map(pool, fn, items, problem):
    """``fn`` over `items` in the pool, or in this process on `problem` without one."""
    if pool is not None:
        return list(pool.map(fn, items))
    previous = _WORKER_PROBLEM
    _init_worker(problem)
    try:
        return [fn(x) for x in items]
    finally:
        _init_worker(previous)


def _covariance(jac_u, s2):
    """``s2 (J^T J)^-1`` via the SVD; directions with no sensitivity get infinite variance."""
    _, sv, vt = np.linalg.svd(jac_u, full_matrices=False)
    tol = sv.max(initial=0.0) * max(jac_u.shape) * np.finfo(float).eps
    inv_sv2 = np.where(sv > tol, 1.0 / np.where(sv > tol, sv, 1.0) ** 2, np.inf)
    with np.errstate(invalid="ignore"):
        cov = (vt.T * inv_sv2) @ vt
    cov = np.where(np.isnan(cov), np.inf, cov) * s2
    cond = float(sv.max() / sv.min()) if sv.min() > 0 else math.inf
    return cov, cond


def _log_start(log, prob, i, r, what=""):
    vals = prob.z_to_values(r["z"])
    values_text = ", ".join(f"{q.name} = {v:.4g}" for q, v in zip(prob.params, vals))
    log(f"  start {i}{' (' + what + ')' if what else ''}: cost {r['cost']:.6g}, {r['nfev']} "
        f"evaluations, {r['seconds']:.1f} s ({r['cpu_seconds']:.1f} s CPU), {values_text}")


def _jacobian(prob, pool, z, model=None):
    """Central-difference Jacobian of the residuals at `z` (normalised box) and the model there.

    Steps shrink to stay inside the box (one-sided at a bound). Evaluations run in parallel;
    the model at `z` is simulated too unless given.
    Returns (jac, shape (n_points, p); n_evaluations; model concentration(species, depth)).
    """
    p = len(z)
    points, steps = [], []
    for j in range(p):
        h = prob.search["fd_step_covariance"]
        zp, zm = z.copy(), z.copy()
        zp[j] = min(z[j] + h, 1.0)
        zm[j] = max(z[j] - h, 0.0)
        points += [zp, zm]
        steps.append(zp[j] - zm[j])
    out = _map(pool, _residuals_task, [(q, prob.grid) for q in points], prob)
    n_eval = sum(o[1] for o in out)
    if model is None:
        model = _map(pool, _simulate_task, [(z, prob.grid)], prob)[0]
        n_eval += 1
    jac = np.empty((prob.n_points, p))
    for j in range(p):
        jac[:, j] = (out[2 * j][0] - out[2 * j + 1][0]) / steps[j]
    prob.n_failed += sum(o[2] for o in out)
    return jac, n_eval, model


def _cpu_seconds() -> float:
    """CPU time of this process and its joined children (the worker processes) [s]."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class Fitter:
    """Fit the free parameters of ``cfg.fit`` to `measured` profiles, in steps.

    ``Fitter(cfg, measured).run()`` returns the result dataset; the steps are:

    1. :meth:`_search`: least squares from every start, on the search model
       (``fit.search_n_cells``/``fit.search_rtol``, :func:`search_config`) or the full one;
    2. :meth:`_full_model`: with a search model, the best start that the full model can run
       is polished on the full model (the input's ``[npp]``);
    3. :meth:`_refreeze`: for a frozen-grid forward model, the time grid is re-frozen at the
       optimum, and the optimum polished again while the profiles move;
    4. :meth:`_uncertainty`: the central-difference Jacobian at the optimum, the covariance and
       the result dataset (:meth:`_result_dataset`).

    Parameters
    ----------
    cfg : Config
        Scenario with a ``[fit]`` section (parameters, starts, time, solver, workers).
    measured : compare.io.profiles.MeasuredProfiles
        Profiles to fit; their species must be defined in `cfg`.
    forward : callable, optional
        ``forward(cfg) -> xr.Dataset`` (output contract). Default: ``FORWARD_MODELS[solver]()``
        with solver = ``fit.solver`` or ``npp.solver`` (for "full": a :class:`FrozenGridNPP`).
        A forward model with ``smooth = True`` gets the "smooth" `SEARCH_SETTINGS`; one with
        a ``freeze`` method has its time grid re-frozen during the search and at the optimum.
    workers : int, optional
        Worker processes (default ``fit.workers``; 0 = one per core), capped by
        max(n_starts, n_params). With at least as many starts as workers the starts run in
        parallel; otherwise the starts run one after the other, each with the Jacobian's
        columns in parallel. The workers receive the problem from the pool's initializer.
    log : callable or None
        Progress messages (one line per start); None for silence.
    """

    def __init__(self, cfg, measured, forward=None, workers=None, log=print):
        self.t_start, self.cpu_start = time.perf_counter(), _cpu_seconds()
        self.log = log or (lambda *a, **k: None)
        self.measured = measured
        cfg.require("`cait fit`", beam=True)
        self.params = fit_parameters(cfg)
        for s in measured.species:
            cfg.species_by_name(s)
        self.solver = cfg.fit.solver or cfg.npp.solver
        # the model error (shadow run at the optimum) needs the built-in NPP forward model
        self.npp_forward = forward is None
        self.forward = forward = forward or forward_model(cfg)
        self.t_fit = cfg.fit.time_s if cfg.fit.time_s >= 0 else (
            measured.time_s if measured.time_s is not None else cfg.total_duration_s)
        self.run_cfg = truncate_schedule(cfg, self.t_fit)
        self.prob = FitProblem(self.run_cfg, self.params, measured, forward)
        # the starts run on the search model (coarser, optional), the polish and Jacobian on prob
        self.search_cfg = search_config(self.run_cfg)
        self.sprob = self.prob if self.search_cfg is None else FitProblem(
            self.search_cfg, self.params, measured, forward)
        m, p = self.prob.n_points, len(self.params)
        if m <= p:
            raise InputFileError(f"{measured.source}: {m} measured points cannot determine {p} "
                                 f"parameters (need more points than parameters)")
        z_input = self.prob.values_to_z([q.start for q in self.params])
        self.starts = _start_points(self.params, cfg.fit.n_starts, cfg.fit.sampling,
                                    cfg.fit.seed, z_input)
        workers = cfg.fit.workers if workers is None else workers
        # More workers than starts are used for the Jacobian's columns instead (see _run_start).
        self.workers = min(workers or (os.cpu_count() or 1), max(len(self.starts), p))
        self.pool = None
        self.results, self.best = [], 0
        self.n_parent, self.refreeze_shifts, self.corrections = 1, [], []
        self.search_shift, self.n_search, self.n_search_starts = math.nan, 0, 0
        self.search_failures = []
        self.search_text = ("the full model" if self.search_cfg is None else
                            f"{_mesh_text(self.search_cfg.npp)}, rtol "
                            f"{self.search_cfg.npp.rtol:g}")

    def run(self) -> xr.Dataset:
        self._first_evaluation()
        try:
            self._search()
            if self.search_cfg is not None:
                self._full_model()
            self._refreeze()
            return self._uncertainty()
        finally:
            self._close_pool()

    # -- steps -----------------------------------------------------------------------------
    def _first_evaluation(self):
        """One evaluation in the parent first: a broken scenario fails here with the solver's
        own message, and numba compiles once before the workers fork."""
        sprob = self.sprob
        r0 = sprob.residuals(self.starts[0])
        if sprob.n_failed:
            try:
                sprob.simulate(self.starts[0])
            except _engine_errors() as exc:
                raise ConfigError(f"the forward model ({self.solver}) fails at the start "
                                  f"values: {exc}") from None
        self.log(f"fit: {len(self.params)} parameters, {self.prob.n_points} points, "
                 f"{len(self.starts)} starts, {self.workers} worker(s), solver {self.solver}, "
                 f"profile time {self.t_fit:g} s; starts search on {self.search_text}; first "
                 f"evaluation {time.perf_counter() - self.t_start:.2f} s, cost "
                 f"{0.5 * float(r0 @ r0):.4g}")

    def _search(self):
        """Least squares from every start on the search model."""
        sprob = self.sprob
        self.pool = _pool(self.workers, sprob)
        if self.pool is not None and len(self.starts) < self.workers:
            self.results = [_run_start(sprob, z0, self.pool) for z0 in self.starts]  # columns
        elif self.pool is not None:
            self.results = list(self.pool.map(_start_task, list(self.starts)))  # parallel starts
        else:
            self.results = [_run_start(sprob, z0) for z0 in self.starts]
        for i, r in enumerate(self.results):
            _log_start(self.log, sprob, i, r, "" if self.search_cfg is None else "search model")
        self.best = min(range(len(self.results)), key=lambda i: self.results[i]["cost"])

    def _full_model(self):
        """Move to the full model at the best start its solver can run, and polish there
        (always: the search model's optimum is off by its discretisation error)."""
        prob, results = self.prob, self.results
        self.n_search = 1 + sum(r["nfev"] for r in results)
        self._close_pool()  # fresh workers: they get the full problem
        for i in sorted(range(len(results)), key=lambda i: results[i]["cost"]):
            z_best, conc_search = results[i]["z"], results[i]["model"]
            self.n_parent += 1
            try:
                if hasattr(self.forward, "freeze"):
                    self.search_shift = prob.refreeze(z_best, conc_search)
                else:
                    self.search_shift = prob.shift_sigma(prob.simulate(z_best), conc_search)
            except prob._errors as exc:
                if isinstance(exc, CaitError):
                    raise
                self.search_failures.append(f"the full model fails at the end of start {i} "
                                            f"({exc})")
                self.log(f"  {self.search_failures[-1]}")
                continue
            self.best = i
            break
        else:
            raise ConfigError(f"the full forward model ({self.solver}) fails at the end point "
                              f"of every start: {'; '.join(self.search_failures)}")
        self.pool = _pool(self.workers, prob)
        n = self.run_cfg.npp
        grid = self.forward.grid if isinstance(self.forward, FrozenGridNPP) else None
        mesh = (f"{len(grid[1]) - 1} adapted cells" if grid is not None and grid[1] is not None
                else _mesh_text(n))
        self.log(f"  full model ({mesh}, rtol {n.rtol:g}) at the end of start "
                 f"{self.best}: profiles differ from the search model by "
                 f"{self.search_shift:.3g} sigma (max); polishing on the full model")
        self.n_search_starts = len(results)
        self._polish(results[self.best]["z"], f"polish of start {self.best}, full model")

    def _polish(self, z, what):
        """One more least-squares run from `z` on the full model (Jacobian columns in parallel)."""
        r = _run_start(self.prob, z, self.pool)
        self.starts = np.vstack([self.starts, z[None, :]])
        self.results.append(r)
        _log_start(self.log, self.prob, len(self.results) - 1, r, what)
        self.best = len(self.results) - 1

    def _refreeze(self):
        """The time grid was frozen at the first start: re-freeze it at the optimum and, when
        the profiles moved visibly, polish the optimum on the new grid (a least-squares run
        from there; one Gauss-Newton step is not enough along a curved valley)."""
        if not hasattr(self.forward, "freeze"):
            return
        prob = self.prob
        prob.use_grid(self.results[self.best]["grid"])  # that start's grid (maybe a worker's)
        for _ in range(MAX_REFREEZE):
            r = self.results[self.best]
            z_best = r["z"]
            shift = prob.refreeze(z_best, r["model"])
            self.n_parent += 1
            self.refreeze_shifts.append(shift)
            grid = self.forward.grid
            steps = grid[0] if isinstance(self.forward, FrozenGridNPP) else grid
            self.log(f"  time grid re-frozen at the optimum: profiles moved by {shift:.3g} sigma "
                     f"(max), {len(steps)} steps")
            if shift <= REFREEZE_TOL:
                r["model"] = prob.recent(z_best)
                break
            self.corrections.append(f"start {len(self.results)} polishes start {self.best}")
            self._polish(z_best, f"polish of start {self.best}")

    def _uncertainty(self) -> xr.Dataset:
        """Jacobian at the optimum, covariance, messages and the result dataset."""
        prob, measured, results = self.prob, self.measured, self.results
        z_best = results[self.best]["z"]
        jac_z, n_jac, model_conc = _jacobian(prob, self.pool, z_best,
                                             results[self.best]["model"])
        self._close_pool()
        n_eval = self.n_parent + sum(r["nfev"] for r in results) + n_jac
        n_failed = prob.n_failed + sum(r["n_failed"] for r in results)
        if self.sprob is not prob:
            n_failed += self.sprob.n_failed
        fitted = prob.model_at_measured(model_conc)
        resid = (fitted - measured.values) * prob.weights
        chi2 = float(np.sum(resid ** 2))
        dof = prob.n_points - len(self.params)
        has_err = measured.errors is not None
        cov, cond = _covariance(jac_z / (prob.hi_u - prob.lo_u), 1.0 if has_err else chi2 / dof)
        se_stat = np.sqrt(np.diag(cov))
        model_u, model_err = self._model_error(z_best, model_conc, jac_z / (prob.hi_u - prob.lo_u))
        # the stated error includes the shift the forward model's own numerical error implies
        se_u = np.sqrt(se_stat ** 2 + np.nan_to_num(model_u) ** 2)
        seconds = time.perf_counter() - self.t_start
        cpu_seconds = _cpu_seconds() - self.cpu_start
        msgs = self._messages(z_best, se_u, chi2, dof, has_err, n_failed)
        if np.any(np.nan_to_num(model_u) > se_stat):
            names = [q.name for q, m, st in zip(self.params, model_u, se_stat) if m > st]
            msgs.append(f"the forward model's numerical error (profile error estimate "
                        f"{model_err:.2g} of n_bulk) shifts {', '.join(names)} by more than the "
                        f"statistical error: stderr includes it; lower [npp] tol (adaptive mesh) "
                        f"or refine n_cells / zone_nm (graded mesh) to shrink it")
        self.log(f"fit: best start {self.best}, chi2 {chi2:.6g} ({dof} dof), {n_eval} "
                 f"evaluations, {seconds:.1f} s wall, {cpu_seconds:.1f} s CPU"
                 + ("; " + "; ".join(msgs) if msgs else ""))
        ds = self._result_dataset(z_best, se_u, cov, cond, fitted, resid, chi2, dof, has_err,
                                  n_eval, n_failed, seconds, model_conc, "; ".join(msgs))
        ds["stderr_statistical"] = ("param", se_stat, {
            "units": "see fit_coordinate", "long_name": "standard error from the data alone"})
        ds["stderr_model"] = ("param", model_u, {
            "units": "see fit_coordinate", "long_name": "parameter shift implied by the forward "
            "model's numerical error (shadow run at the optimum, continuum/accuracy.py)"})
        ds.attrs["model_error_estimate"] = model_err
        ds["cpu_time"] = ((), cpu_seconds, {"units": "s", "long_name": "CPU time of the fit, all "
                                            "processes"})
        return ds

    def _model_error(self, z_best, model_conc, jac_u):
        """Shift of the parameters (fit coordinates, shape (p,)) that the forward model's own
        numerical error implies, and that error (max over the fitted profiles, fraction of
        n_bulk). The error is the shadow-run estimate of :mod:`continuum.accuracy` at the
        optimum (4/3 x shadow - result); its weighted residual change is projected on the
        Jacobian (least squares). NaN when the shadow run fails or the forward model is not the
        built-in NPP."""
        from continuum import accuracy

        prob = self.prob
        if not self.npp_forward:
            return np.full(len(self.params), np.nan), math.nan
        cfg = apply_parameters(prob.cfg, self.params, prob.z_to_values(z_best))
        try:
            frozen = getattr(self.forward, "problem", None)
            problem = frozen(cfg) if frozen is not None else None
            if problem is None:
                problem = scenario.npp_problem(cfg, solver_name=self.solver)
            shadow = scenario.solver(self.solver)(accuracy.shadow_problem(problem))
        except self.prob._errors:
            return np.full(len(self.params), np.nan), math.nan
        sc = shadow["concentration"].isel(time=-1).sel(species=list(self.measured.species))
        depth = np.asarray(model_conc["depth"].values, float)
        delta = accuracy.RICHARDSON * np.stack([
            np.interp(depth, np.asarray(sc["depth"].values, float), np.asarray(row, float))
            for row in sc.transpose("species", "depth").values]) - accuracy.RICHARDSON * np.asarray(
            model_conc.transpose("species", "depth").values, float)
        d_meas = prob.model_at_measured(xr.DataArray(delta, dims=("species", "depth"),
                                                     coords={"depth": depth}))
        d_res = (d_meas * prob.weights).ravel()
        shift, *_ = np.linalg.lstsq(jac_u, d_res, rcond=None)
        return np.abs(shift), float(np.max(np.abs(delta)))

    def _messages(self, z_best, se_u, chi2, dof, has_err, n_failed) -> list:
        """One line per thing a user must know about the result."""
        msgs = []
        at_bound = [q.name for q, z in zip(self.params, z_best) if z < 1e-6 or z > 1 - 1e-6]
        if at_bound:
            msgs.append(f"at a bound (uncertainty not meaningful): {', '.join(at_bound)}")
        if not np.all(np.isfinite(se_u)):
            msgs.append("some parameters have no effect on the profiles (infinite uncertainty)")
        if has_err and chi2 / dof > 1.0 + 3.0 * math.sqrt(2.0 / dof):
            # chi2/dof of a right model with right errors is 1 +- sqrt(2/dof)
            msgs.append(f"reduced chi2 = {chi2 / dof:.3g} is more than 3 sigma above 1: not "
                        f"converged, wrong model or underestimated errors; the standard errors "
                        f"are then too small")
        if n_failed:
            msgs.append(f"{n_failed} forward evaluations failed and were penalised")
        return msgs + self.search_failures

    def _result_dataset(self, z_best, se_u, cov, cond, fitted, resid, chi2, dof, has_err,
                        n_eval, n_failed, seconds, model_conc, message) -> xr.Dataset:
        """The labelled fit result (see :func:`fit`)."""
        prob, params, results, best = self.prob, self.params, self.results, self.best
        starts, solver, t_fit = self.starts, self.solver, self.t_fit
        u_best = prob.lo_u + z_best * (prob.hi_u - prob.lo_u)
        values = prob.z_to_values(z_best)
        meas = prob.measured
        names = [q.name for q in params]
        ln10 = math.log(10.0)
        se_nat = np.array([v * ln10 * s if q.log_scale else s
                           for q, v, s in zip(params, values, se_u)])
        lo_1s = np.array([float(q.from_fit(u - s)) for q, u, s in zip(params, u_best, se_u)])
        hi_1s = np.array([float(q.from_fit(u + s)) for q, u, s in zip(params, u_best, se_u)])
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = cov / np.outer(se_u, se_u)
        coords = {
            "param": ("param", names, {"long_name": "free parameter"}),
            "param2": ("param2", names, {"long_name": "free parameter"}),
            "species": ("species", list(meas.species)),
            "depth": ("depth", meas.depth_nm, {"units": "nm", "long_name": "measured depth"}),
            "model_depth": ("model_depth", np.asarray(model_conc["depth"].values, dtype=float),
                            {"units": "nm", "long_name": "depth"}),
            "start": ("start", np.arange(len(results)), {"long_name": "least-squares start"}),
            "param_units": ("param", [q.units for q in params]),
            "fit_coordinate": ("param", [q.fit_name for q in params]),
        }
        z_final = np.array([r["z"] for r in results])
        ds = xr.Dataset(coords=coords)
        v = lambda dims, data, units, long_name: (dims, np.asarray(data),  # noqa: E731
                                                  {"units": units, "long_name": long_name})
        ds["best"] = v("param", values, "see param_units", "best-fit value")
        ds["best_fit"] = v("param", u_best, "see fit_coordinate", "best fit, fit coordinate")
        ds["stderr"] = v("param", se_u, "see fit_coordinate",
                         "standard error of the fit coordinate (log10 for log_scale)")
        ds["stderr_natural"] = v("param", se_nat, "see param_units",
                                 "linearised standard error in natural units")
        ds["lower_1sigma"] = v("param", lo_1s, "see param_units", "best - 1 stderr (fit coordinate)")
        ds["upper_1sigma"] = v("param", hi_1s, "see param_units", "best + 1 stderr (fit coordinate)")
        ds["lower"] = v("param", [q.lower for q in params], "see param_units", "lower bound")
        ds["upper"] = v("param", [q.upper for q in params], "see param_units", "upper bound")
        ds["initial"] = v("param", [q.start for q in params], "see param_units", "input value")
        ds["log_scale"] = v("param", [int(q.log_scale) for q in params], "1", "fitted as log10")
        ds["covariance"] = v(("param", "param2"), cov, "fit coordinates",
                             "covariance of the fit coordinates")
        ds["correlation"] = v(("param", "param2"), corr, "1", "correlation of the parameters")
        ds["measured"] = v(("species", "depth"), meas.values, "1", "measured concentration / n_bulk")
        if has_err:
            ds["measured_err"] = v(("species", "depth"), meas.errors, "1",
                                   "standard error of measured")
        ds["fitted"] = v(("species", "depth"), fitted, "1", "fitted concentration / n_bulk")
        ds["residual"] = v(("species", "depth"), resid, "1" if has_err else "1",
                           "(fitted - measured) / error" if has_err else "fitted - measured")
        ds["model"] = v(("species", "model_depth"), np.asarray(model_conc.values, dtype=float), "1",
                        "fitted concentration / n_bulk")
        ds["chi2"] = v((), chi2, "1", "sum of squared (weighted) residuals")
        ds["reduced_chi2"] = v((), chi2 / dof, "1", "chi2 / (n_points - n_params)")
        ds["n_evaluations"] = v((), n_eval, "1", "forward-model evaluations")
        ds["n_failed"] = v((), n_failed, "1", "failed forward-model evaluations")
        ds["wall_time"] = v((), seconds, "s", "wall time of the fit")
        ds["start_initial"] = v(("start", "param"),
                                [prob.z_to_values(z) for z in starts], "see param_units",
                                "initial values of each start")
        ds["start_final"] = v(("start", "param"), [prob.z_to_values(z) for z in z_final],
                              "see param_units", "final values of each start")
        ds["start_cost"] = v("start", [2 * r["cost"] for r in results], "1", "chi2 of each start")
        ds["start_nfev"] = v("start", [r["nfev"] for r in results], "1", "evaluations of each start")
        ds["start_cpu_time"] = v("start", [r["cpu_seconds"] for r in results], "s",
                                 "CPU time of each start (independent of machine load)")
        ds["start_status"] = v("start", [r["status"] for r in results], "1",
                               "scipy least_squares status")
        ds.attrs.update({
            "best_start": int(best), "n_points": int(prob.n_points), "n_params": len(params),
            "dof": int(dof), "weights": "standard errors" if has_err else "uniform (s^2 = chi2/dof)",
            "forward_model": solver, "profile_time_s": float(t_fit),
            "profile_source": meas.source, "condition_number": cond,
            "flux_convention": prob.cfg.npp.flux, "fit_message": message,
        })
        ds.attrs["time_grid"] = "frozen" if hasattr(self.forward, "freeze") else "solver default"
        ds.attrs["n_refreeze"] = len(self.refreeze_shifts)
        ds.attrs["refreeze_shift_sigma"] = ", ".join(f"{x:.3g}" for x in self.refreeze_shifts)
        ds.attrs["refreeze_corrections"] = ", ".join(self.corrections)
        ds["start_model"] = ("start", ["search"] * self.n_search_starts
                             + ["full"] * (len(results) - self.n_search_starts),
                             {"long_name": "forward model of the start: the search model or the "
                                           "full one (start_cost is that model's chi2)"})
        ds.attrs["search_model"] = self.search_text
        ds.attrs["search_shift_sigma"] = self.search_shift
        ds.attrs["n_evaluations_search"] = self.n_search
        return ds

    def _close_pool(self):
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None


def fit(cfg, measured, forward=None, workers=None, log=print) -> xr.Dataset:
    """Fit the free parameters of ``cfg.fit`` to `measured` profiles (:class:`Fitter`).

    Returns
    -------
    xarray.Dataset
        Best parameters (`best`, natural units; `best_fit` in fit coordinates), `stderr`
        (fit coordinates) and `stderr_natural` (linearised), 1-sigma intervals, `covariance`
        and `correlation(param, param2)`, `measured`, `measured_err`, `fitted` and `residual`
        at the measured depths, the full fitted profile `model(species, model_depth)`, `chi2`,
        `reduced_chi2`, `n_evaluations` and per-start results (dim `start`; `start_model`
        says which starts ran on the search model). Attributes `search_model`,
        `search_shift_sigma` (search -> full model at the best start, in measurement errors)
        and `n_evaluations_search`.
    """
    return Fitter(cfg, measured, forward, workers, log).run()


# ---------------------------------------------------------------------------------------------
# File-level driver
# ---------------------------------------------------------------------------------------------
def fit_files(profiles_path, input_path, out_dir=None, quiet=False):
    """Read the input and the profiles, fit, write ``fit.nc`` and ``fit.png`` to `out_dir`.

    Returns
    -------
    (xr.Dataset, Path, Path)
        The result and the paths of the dataset and the figure.
    """
    from compare.io.config import load_config
    from compare.io.datasets import save_figure, write_dataset
    from compare.io.outputs import default_output, output_dir
    from compare.io.profiles import read_profiles
    from compare.reports.fit import plot_fit

    cfg = load_config(input_path)
    measured = read_profiles(profiles_path, cfg.species_names,
                             time_s=cfg.fit.time_s if cfg.fit.time_s >= 0 else None,
                             error_floor=cfg.fit.error_floor)
    out_dir = Path(out_dir) if out_dir is not None else default_output(cfg, "_fit")
    with output_dir(out_dir):
        ds = fit(cfg, measured, log=None if quiet else print)
        nc = write_dataset(ds, out_dir / "fit.nc", cfg=cfg, seed=cfg.fit.seed, status="ok",
                           message=ds.attrs["fit_message"])
        png = save_figure(plot_fit(ds, cfg), out_dir / "fit.png")
    return ds, nc, png
