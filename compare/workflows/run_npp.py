"""`cait npp run`: solve the input's NPP problem (:mod:`compare.scenario`), write npp.nc + figures."""
from __future__ import annotations

import sys

from compare import scenario
from compare.errors import RunInterrupted
from compare.io.datasets import write_dataset
from compare.io.outputs import output_dir
from compare.reports.npp import plot_potential, plot_profiles


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
    compare.errors.RunInterrupted
        On SIGINT/SIGTERM, after writing the result so far with ``status="interrupted"``.
    """
    from continuum.errors import SolverError, SolverInterrupted
    from continuum.validity import OUTSIDE
    from kmc.checkpoint import interrupt_guard

    problem = scenario.npp_problem(cfg)  # checked before anything is written
    with output_dir(outdir) as outdir, interrupt_guard() as flag:
        nc = outdir / "npp.nc"
        try:
            ds = scenario.solve_npp(cfg, problem, progress=progress, stop=flag)
        except SolverError as err:
            interrupted = isinstance(err, SolverInterrupted)
            if err.partial is not None:
                write_dataset(err.partial, nc, cfg=cfg,
                              status="interrupted" if interrupted else "failed", message=str(err))
            if interrupted:
                raise RunInterrupted(f"{err}; the result so far is in {str(nc)!r}",
                                     128 + int(flag.signum) if flag.signum else 130) from None
            raise
        note = ds.attrs.get("validity_note", "")
        if note:
            print(f"cait: warning: {note}", file=sys.stderr, flush=True)
        status = ds.attrs.get("status", "ok")
        if status not in ("ok", OUTSIDE):   # OUTSIDE: its message is the note above
            print(f"cait: warning: {ds.attrs.get('message', status)}", file=sys.stderr, flush=True)
        paths = [write_dataset(ds, nc, cfg=cfg, status=status, message=ds.attrs.get("message", ""))]
        plot_times = [t for t in cfg.plot_times_s if t <= float(ds.time[-1])]
        paths.append(plot_profiles(ds, plot_times, outdir / "npp_profiles.png", cfg))
        paths.append(plot_potential(ds, plot_times, outdir / "npp_potential.png", cfg))
        return ds, paths
