"""Exceptions of the continuum engines.

`continuum` must not import `compare`, so it defines its own errors; `compare` maps them to
its CLI messages and exit codes.
"""


class ProblemError(ValueError):
    """An NPP problem description is inconsistent (bad value, unknown name, impossible mesh)."""


class SolverError(RuntimeError):
    """The time integration failed (Newton did not converge at the minimum step size).

    Parameters
    ----------
    message : str
        What went wrong, including the simulated time reached.
    time_reached_s : float
        Simulated time [s] of the last accepted step.
    partial : xarray.Dataset or None
        The result up to `time_reached_s` (same layout as a successful run, with
        ``status="failed"``), so that it can still be written.
    """

    def __init__(self, message, time_reached_s=float("nan"), partial=None):
        super().__init__(message)
        self.time_reached_s = float(time_reached_s)
        self.partial = partial


class SolverInterrupted(SolverError):
    """The caller asked the solver to stop (e.g. SIGINT); ``partial`` holds the result so far
    with ``status="interrupted"``."""
