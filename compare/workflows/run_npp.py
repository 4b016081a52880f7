"""`cait npp run`: build the full NPP problem from an input file, solve, write npp.nc + figures."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from compare.errors import ConfigError
from compare.io.datasets import axis_label, save_figure, write_dataset

CM3_TO_M3 = 1e6  # n [cm^-3] -> n [m^-3]


def npp_problem_from_config(cfg):
    """The `continuum.npp.NPPProblem` described by a validated `compare.io.config.Config`.

    Output times are the input's output times plus its plot times (so that figures show solver
    states, not interpolations).

    Raises
    ------
    ConfigError
        When the continuum side rejects the combination (e.g. a mesh that cannot be built).
    """
    from continuum import npp
    from continuum.errors import ProblemError
    from compare.workflows.run_sed import dmodels_from_config

    f_vac = float(cfg.material.vacancy_fraction)
    phases = []
    for ph in cfg.beam:
        galv = ph.drive == "galvanostatic"
        pot = ph.drive == "potentiostatic"
        phases.append(npp.Phase(
            species=ph.species or None, duration_s=float(ph.duration_s), drive=ph.drive,
            back_field_V_per_m=float(ph.back_field_V_per_m) if galv else 0.0,
            voltage_V=float(ph.voltage_V) if pot else 0.0,
            theta_front=float(ph.theta_front) if ph.theta_front >= 0 else 1.0 - f_vac))
    models = dmodels_from_config(cfg)
    names = tuple(cfg.species_names)
    times = np.union1d(np.asarray(cfg.output_times_s, dtype=float),
                       np.asarray(cfg.plot_times_s, dtype=float))
    n = cfg.npp
    try:
        problem = npp.NPPProblem(
            species=names, d_models=tuple(models[s] for s in names), native=cfg.native.name,
            charges=tuple(int(s.charge) for s in cfg.species),
            n_bulk_m3=float(cfg.material.n_bulk_cm3) * CM3_TO_M3,
            thickness_m=float(cfg.sample.thickness_nm) * 1e-9, phases=tuple(phases),
            output_times_s=tuple(times), f_vac=f_vac,
            temperature_K=float(cfg.material.temperature_K), eps_r=float(cfg.material.eps_r),
            back=cfg.sample.back,
            mesh=npp.MeshSpec(n_cells=int(n.n_cells), h_surface_nm=float(n.h_surface_nm),
                              zone_nm=float(n.zone_nm) if n.zone_nm > 0 else None),
            flux_convention=n.flux, rtol=float(n.rtol), atol=float(n.atol),
            dt_initial_s=float(n.dt_initial_s), max_newton=int(n.max_newton))
        npp._Setup(problem)  # data checks now, so that errors name the input
    except ProblemError as exc:
        raise ConfigError(f"npp: {exc}") from None
    return problem


def _depth_limit(ds, plot_times):
    """Depth [nm] that shows the replacement zone: 1.5x the deepest foreign front (>= 20 nm)."""
    foreign = [s for s in ds.species.values if s != ds.attrs.get("native")]
    deepest = 0.0
    for s in foreign:
        c = ds.concentration.sel(species=s).sel(time=list(plot_times), method="nearest")
        mask = (c > 1e-2).any("time").values
        if mask.any():
            deepest = max(deepest, float(ds.depth.values[mask].max()))
    return float(min(ds.depth.values[-1], max(20.0, 1.5 * deepest)))


def plot_profiles(ds, plot_times, path):
    """Depth profiles of every species at `plot_times` (paper Fig. 1 style)."""
    import matplotlib.pyplot as plt

    species = list(ds.species.values)
    fig, axes = plt.subplots(1, len(species), figsize=(4.2 * len(species), 3.6), sharey=True,
                             squeeze=False)
    xmax = _depth_limit(ds, plot_times)
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(plot_times)))
    for ax, s in zip(axes[0], species):
        for col, t in zip(colors, plot_times):
            c = ds.concentration.sel(species=s).sel(time=t, method="nearest")
            ax.plot(ds.depth, c, color=col, label=f"t = {t:.3g} s")
        ax.set_title(str(s))
        ax.set_xlim(0, xmax)
        ax.set_xlabel(axis_label(ds.depth))
    axes[0, 0].set_ylabel(axis_label(ds.concentration))
    axes[0, -1].legend(fontsize="small")
    fig.suptitle(f"NPP ({ds.attrs.get('flux_convention')}) depth profiles")
    return save_figure(fig, path)


def plot_potential(ds, plot_times, path):
    """Electric potential profiles at `plot_times`."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(plot_times)))
    for col, t in zip(colors, plot_times):
        ax.plot(ds.depth, ds.potential.sel(time=t, method="nearest"), color=col,
                label=f"t = {t:.3g} s")
    ax.set_xlim(0, _depth_limit(ds, plot_times))
    ax.set_xlabel(axis_label(ds.depth))
    ax.set_ylabel(axis_label(ds.potential))
    ax.legend(fontsize="small")
    return save_figure(fig, path)


def solver_from_config(cfg):
    """``solve(problem, progress) -> Dataset`` for `npp.solver` (`full` or `electroneutral`)."""
    from continuum.electroneutral import solve_electroneutral
    from continuum.npp import solve

    solvers = {"full": solve,
               "electroneutral": lambda problem, progress=False: solve_electroneutral(problem)}
    try:
        return solvers[cfg.npp.solver]
    except KeyError:
        raise ConfigError(f"`npp.solver` must be one of {', '.join(solvers)}, got "
                          f"{cfg.npp.solver!r}") from None


def run_npp(cfg, outdir, progress=True):
    """Solve the NPP problem of `cfg` with its `npp.solver`; write ``npp.nc`` and figures.

    Returns
    -------
    (xarray.Dataset, list of Path)
        The result and the files written.

    Raises
    ------
    continuum.errors.SolverError
        After writing the partial result with ``status="failed"``.
    """
    from continuum.errors import SolverError

    outdir = Path(outdir)
    problem = npp_problem_from_config(cfg)
    solve = solver_from_config(cfg)
    nc = outdir / "npp.nc"
    try:
        ds = solve(problem, progress=progress)
    except SolverError as err:
        if err.partial is not None:
            write_dataset(err.partial, nc, cfg=cfg, status="failed", message=str(err))
        raise
    paths = [write_dataset(ds, nc, cfg=cfg, status="ok")]
    plot_times = [t for t in cfg.plot_times_s if t <= float(ds.time[-1])]
    paths.append(plot_profiles(ds, plot_times, outdir / "npp_profiles.png"))
    paths.append(plot_potential(ds, plot_times, outdir / "npp_potential.png"))
    return ds, paths
