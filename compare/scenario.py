"""The scenario layer: the only place a validated input (:class:`compare.io.config.Config`)
becomes engine inputs.

::

    Config ─┬─► native_sed ──► continuum.sed.SED           (both engines: the landscape)
            ├─► dmodels    ──► continuum.dmodel models     (NPP: D(n) per species, m^2/s)
            ├─► npp_problem ─► continuum.problem.NPPProblem (SI units, checked)
            ├─► SOLVERS[...] (full / electroneutral NPP)
            └─► kmc_params ──► kmc.engine.KMCParams        (SI / eV, resolved foreign landscapes)

Unit conversions go through :mod:`compare.units`. Placeholders of the input file (a default
``theta_front``, a drive value that does not apply) are resolved once in
:mod:`compare.io.config`; the foreign landscape width (``site_fwhm_eV < 0``) is resolved here,
against the native SED that this module builds.
"""
from __future__ import annotations

import dataclasses

from compare import units
from compare.errors import ConfigError, InputFileError
from continuum import dmodel as dm
from continuum import sed as sedmod


# ---------------------------------------------------------------------------------------------
# Landscapes and D models
# ---------------------------------------------------------------------------------------------
def kT_eV(cfg) -> float:
    """k_B T [eV] of the material."""
    return units.kT_eV(cfg.material.temperature_K)


def native_sed(cfg, fwhm_eV=None, center_eV=None) -> sedmod.SED:
    """The native SED described by ``cfg.sed``; `fwhm_eV` / `center_eV` override a Gaussian's.

    Raises
    ------
    ConfigError
        Invalid parameters; :class:`InputFileError` for a bad table file.
    """
    s = cfg.sed
    if s.kind not in sedmod.SEDS:
        raise ConfigError(f"`sed.kind` = {s.kind!r} is unknown; choose one of: "
                          f"{', '.join(sedmod.SEDS)}")
    if s.kind == "gaussian" and (s.fwhm_eV if fwhm_eV is None else fwhm_eV) == 0.0:
        raise ConfigError("`sed.fwhm_eV` = 0 (the ordered lattice) is for KMC runs only: the SED "
                          "formulas (NPP D(n), `cait sed`) need a width > 0")
    if (fwhm_eV is not None or center_eV is not None) and s.kind != "gaussian":
        raise ConfigError(f"the SED width and centre can only be changed for `sed.kind = "
                          f"\"gaussian\"`, got kind = {s.kind!r}")
    try:
        if s.kind == "gaussian":
            return sedmod.GaussianSED(s.center_eV if center_eV is None else center_eV,
                                      s.fwhm_eV if fwhm_eV is None else fwhm_eV)
        if s.kind == "gaussians":
            return sedmod.GaussianMixtureSED(s.components)
        return sedmod.TabulatedSED.from_csv(s.file)
    except ValueError as exc:
        cls = InputFileError if s.kind == "table" else ConfigError
        raise cls(f"`sed`: {exc}") from None


def native_sampler(cfg):
    """The KMC's native site-energy sampler: the native SED, or for ``sed.fwhm_eV = 0`` the
    ordered lattice (every site at ``sed.center_eV``)."""
    if cfg.sed.kind == "gaussian" and cfg.sed.fwhm_eV == 0.0:
        from kmc.lattice import Gaussian

        return Gaussian(float(cfg.sed.center_eV), 0.0)
    return native_sed(cfg)


def foreign_sigma_eV(species, native) -> float:
    """Standard deviation [eV] of a foreign species' Gaussian site energies.

    ``site_fwhm_eV > 0``: that FWHM. Negative (the default): the native landscape's width, i.e.
    the standard deviation of the native SED whatever its kind (for a Gaussian SED its FWHM).
    """
    if species.site_fwhm_eV > 0:
        return units.fwhm_to_sigma(species.site_fwhm_eV)
    return float(native.std if hasattr(native, "std") else native.sigma_eV)


def sed_diffusivity(cfg, D_bulk_cm2_s: float, sed=None, filling=None, vacancy_fraction=None):
    """Paper eqn (2), ``D(n) = D_bulk exp((E_F(n) - E_F(n_bulk))/kT)``, D in m^2/s."""
    return dm.SEDDiffusivity(native_sed(cfg) if sed is None else sed,
                             float(D_bulk_cm2_s) * units.CM2_TO_M2,
                             float(cfg.material.vacancy_fraction if vacancy_fraction is None
                                   else vacancy_fraction),
                             kT_eV(cfg), cfg.sed.filling if filling is None else filling)


def dmodel(cfg, species, sed=None):
    """The D model of one species (``constant``, ``sed`` or ``table``), D in m^2/s."""
    name = species.D_model
    where = f"species.{species.name}"
    if name not in dm.D_MODELS:
        raise ConfigError(f"`{where}.D_model` = {name!r} is unknown; choose one of: "
                          f"{', '.join(dm.D_MODELS)}")
    try:
        if name == "constant":
            return dm.ConstantD(float(species.D_cm2_s) * units.CM2_TO_M2)
        if name == "sed":
            return sed_diffusivity(cfg, species.D_cm2_s, sed)
        return dm.TableD.from_csv(species.D_table)
    except ValueError as exc:
        cls = InputFileError if name == "table" else ConfigError
        raise cls(f"`{where}`: {exc}") from None


def dmodels(cfg, sed=None) -> dict:
    """``{species name: D model}`` for every species, native first (``sed`` models share one
    native SED, built once)."""
    if sed is None and any(s.D_model == "sed" for s in cfg.species):
        sed = native_sed(cfg)
    return {s.name: dmodel(cfg, s, sed) for s in cfg.species}


# ---------------------------------------------------------------------------------------------
# NPP
# ---------------------------------------------------------------------------------------------
def _solve_full(problem, progress=False, stop=None):
    from continuum.npp import solve

    return solve(problem, progress=progress, stop=stop)


def _solve_electroneutral(problem, progress=False, stop=None):
    """The electroneutral solver runs in seconds; it does not poll `stop` (an interrupt is
    honoured when it returns)."""
    from continuum.electroneutral import solve_electroneutral

    return solve_electroneutral(problem)


# `npp.solver` -> ``solve(problem, progress=False, stop=None) -> xarray.Dataset``
SOLVERS = {"full": _solve_full, "electroneutral": _solve_electroneutral}


def solver(name: str):
    """The NPP solver registered as `name` (``npp.solver`` / ``fit.solver``)."""
    try:
        return SOLVERS[name]
    except KeyError:
        raise ConfigError(f"`npp.solver` must be one of {', '.join(SOLVERS)}, got "
                          f"{name!r}") from None


def npp_phases(cfg, field_scale: float = 1.0) -> tuple:
    """The beam schedule as ``continuum.problem.Phase`` objects; `field_scale` multiplies the
    galvanostatic back fields."""
    from continuum.problem import Phase

    return tuple(Phase(species=ph.species, duration_s=float(ph.duration_s), drive=ph.drive,
                       back_field_V_per_m=float(ph.back_field_V_per_m) * field_scale,
                       voltage_V=float(ph.voltage_V), theta_front=float(ph.theta_front))
                 for ph in cfg.beam)


def npp_problem(cfg, *, d_models=None, thickness_nm=None, output_times_s=None,
                field_scale: float = 1.0, solver_name=None):
    """The NPP problem of `cfg`, checked (:func:`continuum.problem.check_problem`).

    Parameters
    ----------
    d_models : dict, optional
        ``{species: D model}`` replacing the input's (:func:`dmodels`).
    thickness_nm : float, optional
        Sample depth replacing ``sample.thickness_nm`` (e.g. the KMC lattice depth).
    output_times_s : sequence of float, optional
        Default: the input's output times plus its plot times (figures show solver states).
    field_scale : float
        Multiplies the galvanostatic back fields (same current with another bulk D).
    solver_name : str, optional
        The solver the problem is checked for (default ``npp.solver``).

    Raises
    ------
    ConfigError
        When the continuum side rejects the combination (e.g. a mesh that cannot be built).
    """
    import numpy as np

    from continuum.errors import ProblemError
    from continuum.problem import MeshSpec, NPPProblem, check_problem

    cfg.require("an NPP run", beam=True, D=d_models is None)
    models = dmodels(cfg) if d_models is None else d_models
    names = tuple(cfg.species_names)
    if output_times_s is None:
        output_times_s = np.union1d(np.asarray(cfg.output_times_s, dtype=float),
                                    np.asarray(cfg.plot_times_s, dtype=float))
    thickness_nm = float(cfg.sample.thickness_nm if thickness_nm is None else thickness_nm)
    n = cfg.npp
    try:
        problem = NPPProblem(
            species=names, d_models=tuple(models[s] for s in names), native=cfg.native.name,
            charges=tuple(int(s.charge) for s in cfg.species),
            n_bulk_m3=float(cfg.material.n_bulk_cm3) * units.PER_CM3_TO_PER_M3,
            thickness_m=thickness_nm * units.NM_TO_M, phases=npp_phases(cfg, field_scale),
            output_times_s=tuple(float(t) for t in output_times_s),
            f_vac=float(cfg.material.vacancy_fraction),
            temperature_K=float(cfg.material.temperature_K), eps_r=float(cfg.material.eps_r),
            back=cfg.sample.back,
            mesh=MeshSpec(n_cells=int(n.n_cells), h_surface_nm=float(n.h_surface_nm),
                          zone_nm=float(n.zone_nm) if n.zone_nm > 0 else None),
            flux_convention=n.flux, rtol=float(n.rtol), atol=float(n.atol),
            dt_initial_s=float(n.dt_initial_s), max_newton=int(n.max_newton))
        check_problem(problem, solver=solver_name or n.solver)
    except ProblemError as exc:
        raise ConfigError(f"npp: {exc}") from None
    return problem


def solve_npp(cfg, problem=None, progress=False, solver_name=None, stop=None,
              estimate_error=None):
    """Solve `problem` (default :func:`npp_problem`) with ``npp.solver`` (or `solver_name`);
    `stop` (polled by the solvers) ends the run early with ``SolverInterrupted``.

    With ``[npp] mesh = "adaptive"`` (and no explicit nodes in `problem`) the mesh is designed
    from a pilot run and refined until the error estimate is within ``[npp] tol``
    (:mod:`continuum.adapt`); else the problem's graded mesh is used as it is. The result
    carries the model-validity attrs of :mod:`continuum.validity` and, with `estimate_error`
    (default ``[npp] error_estimate``), the shadow-run error estimate of
    :mod:`continuum.accuracy` (status "inaccurate" beyond ``[npp] tol``)."""
    from continuum import accuracy, adapt
    from continuum.validity import annotate

    name = solver_name or cfg.npp.solver
    problem = npp_problem(cfg, solver_name=name) if problem is None else problem
    check = cfg.npp.error_estimate if estimate_error is None else estimate_error
    tol = float(cfg.npp.tol)
    if (cfg.npp.mesh == "adaptive" and problem.mesh.nodes_nm is None
            and problem.mesh.windows is None):
        res = adapt.solve_adaptive(problem, solver(name), tol, check=check,
                                   native=cfg.native.name, plateau=_plateau_of_profile,
                                   progress=progress, stop=stop,
                                   windows=cfg.npp.mesh_windows)
        return annotate(res.ds, res.problem)
    ds = solver(name)(problem, progress=progress, stop=stop)
    ds.attrs["mesh"] = ("graded" if problem.mesh.nodes_nm is None and problem.mesh.windows is None
                        else "explicit")
    if check:
        shadow = accuracy.shadow_run(solver(name), problem, ds, stop=stop)
        accuracy.attach(ds, shadow, tol, native=cfg.native.name, plateau=_plateau_of_profile)
    return annotate(ds, problem)


def _plateau_of_profile(depth, native, foreign):
    """The one plateau metric of a point profile (NPP nodes): median over 0.25-0.75 x front."""
    from compare.workflows.profile_metrics import front_and_plateau_of

    return front_and_plateau_of(depth, native, foreign)[1]


# ---------------------------------------------------------------------------------------------
# KMC
# ---------------------------------------------------------------------------------------------
def bulk_conductivity_S_per_m(cfg) -> float:
    """Ohmic bulk conductivity e^2 n_bulk D_native / kT [S/m] of the input (NPP's bulk)."""
    return units.ohmic_conductivity_S_per_m(
        float(cfg.material.n_bulk_cm3) * units.PER_CM3_TO_PER_M3,
        float(cfg.native.D_cm2_s) * units.CM2_TO_M2, cfg.material.temperature_K)


def kmc_species(cfg, native=None) -> tuple:
    """``kmc.engine.Species`` of every input species (foreign landscapes resolved)."""
    from kmc.engine import Species

    native = native_sampler(cfg) if native is None else native
    return tuple(Species(name=s.name, role=s.role, E_DC_eV=float(s.E_DC_eV),
                         nu_Hz=float(s.attempt_frequency_Hz), mu_eV=float(s.site_mu_eV),
                         sigma_eV=foreign_sigma_eV(s, native) if s.role == "foreign" else 0.0,
                         rho=float(s.site_correlation))
                 for s in cfg.species)


def kmc_phases(cfg) -> tuple:
    """The beam schedule as ``kmc.engine.Phase`` objects.

    Galvanostatic: the KMC fixes the BEAM CURRENT ``j = sigma_bulk E_back`` with the ohmic
    conductivity the NPP solver gives the bulk (:func:`bulk_conductivity_S_per_m`), so both
    engines carry the same current; the KMC's bulk field then follows from its own D.
    """
    from kmc.engine import Phase

    sigma = bulk_conductivity_S_per_m(cfg)
    return tuple(Phase(species=ph.species, duration_s=float(ph.duration_s), drive=ph.drive,
                       back_field_V_per_m=float(ph.back_field_V_per_m),
                       voltage_V=float(ph.voltage_V), theta_front=float(ph.theta_front),
                       beam_current_A_per_m2=(sigma * float(ph.back_field_V_per_m)
                                              if ph.drive == "galvanostatic" else 0.0))
                 for ph in cfg.beam)


def energy_range_eV(species, native, tail=1e-5, n_sigma=4.5) -> tuple:
    """Energy window [eV] of the populated-SED histograms: every landscape's sites but a
    fraction ~`tail` fall inside (native: SED quantiles; foreign: mu +- n_sigma sigma)."""
    if hasattr(native, "ppf"):
        lo, hi = float(native.ppf(tail)), float(native.ppf(1.0 - tail))
    else:                                   # the ordered lattice: one energy
        lo = hi = float(native.center_eV)
    if hi - lo < 0.05:
        lo, hi = 0.5 * (lo + hi) - 0.025, 0.5 * (lo + hi) + 0.025
    for s in species[1:]:
        lo = min(lo, s.mu_eV - n_sigma * s.sigma_eV)
        hi = max(hi, s.mu_eV + n_sigma * s.sigma_eV)
    return (lo, hi)


def kmc_params(cfg):
    """``kmc.engine.KMCParams`` of the input's CAIT scenario (open geometry, beam schedule)."""
    from kmc.engine import check_params

    galvanostatic = any(ph.drive == "galvanostatic" for ph in cfg.beam)
    cfg.require("a KMC CAIT run", beam=True, foreign=True, D_native=galvanostatic)
    params = _kmc_params(cfg)
    check_params(params)  # before any worker starts: the engine's own rules, one line each
    return params


def _kmc_params(cfg):
    from kmc.engine import KMCParams

    native = native_sampler(cfg)
    species = kmc_species(cfg, native)
    k = cfg.kmc
    return KMCParams(nx=int(k.nx), ny=int(k.ny), nz=int(k.nz), species=species,
                     native_sampler=native,
                     n_bulk_m3=float(cfg.material.n_bulk_cm3) * units.PER_CM3_TO_PER_M3,
                     vacancy_fraction=float(cfg.material.vacancy_fraction),
                     temperature_K=float(cfg.material.temperature_K),
                     eps_r=float(cfg.material.eps_r), rate_model=k.rate_model,
                     selector=k.selector, back=cfg.sample.back, phases=kmc_phases(cfg),
                     output_times_s=tuple(float(t) for t in cfg.output_times_s),
                     n_energy_bins=int(cfg.output.n_energy_bins),
                     n_slabs=min(int(cfg.output.n_slabs), int(k.nx)),
                     energy_range_eV=energy_range_eV(species, native),
                     buffer_layers=int(k.buffer_layers), acceleration=k.acceleration,
                     bond_cap_kT=float(k.bond_cap_kT))


def filling_note(params, tolerance=0.05) -> str:
    """One line when the lattice cannot realise the input's vacancy fraction within
    `tolerance` (relative): each layer holds round((1 - f_vac) ny nz) ions. Empty otherwise."""
    from kmc.electrostatics import background_per_layer

    m = params.ny * params.nz
    f = float(params.vacancy_fraction)
    f_eff = 1.0 - background_per_layer(f, params.ny, params.nz) / m
    if f > 0 and abs(f_eff - f) > tolerance * f:
        return (f"the lattice realises vacancy_fraction {f_eff:.4g} instead of {f:g} "
                f"({100 * (f_eff - f) / f:+.0f} %): ny x nz = {m} sites per layer hold "
                f"{m - round(f_eff * m)} ions; choose ny nz so that (1 - f_vac) ny nz is "
                f"close to an integer")
    return ""


def kmc_equilibrium_params(cfg):
    """The CAIT parameters reshaped for `cait kmc equilibrium` (``eq_size``^3, no schedule)."""
    from kmc.engine import check_params

    L = int(cfg.kmc.eq_size)
    params = dataclasses.replace(_kmc_params(cfg), nx=L, ny=L, nz=L, phases=(),
                                 output_times_s=(), n_slabs=1, geometry="periodic",
                                 buffer_layers=0)
    check_params(params)
    return params


def replicas(cfg, override=None) -> int:
    """Number of KMC replicas: `override` (e.g. ``--replicas``) or ``kmc.replicas``, >= 1."""
    n = cfg.kmc.replicas if override is None else override
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"`--replicas` must be an integer >= 1, got {n!r}")
    return int(n)


__all__ = ["kT_eV", "native_sed", "foreign_sigma_eV", "sed_diffusivity", "dmodel", "dmodels",
           "SOLVERS", "solver", "npp_phases", "npp_problem", "solve_npp",
           "bulk_conductivity_S_per_m", "kmc_species", "kmc_phases", "energy_range_eV",
           "kmc_params", "kmc_equilibrium_params", "replicas"]
