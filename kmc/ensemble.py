"""Independent replicas of a stochastic run, in parallel through dask.distributed, merged.

A replica is any function ``func(seed, replica, *args, stop=..., **kwargs) -> xarray.Dataset``
that must be a top-level (picklable) function. Replica ``r`` always gets the seed derived from
``(base_seed, r)`` by :func:`replica_seeds`, so a replica's result does not depend on how many
replicas run or on which worker: same base seed, same ensemble.

``stop`` is a callable returning True once the user asked to stop (SIGINT/SIGTERM in the
driving process); a replica checks it between chunks of work, saves what it has and returns a
partial dataset. With a cluster, the request travels through a ``distributed.Event``.
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
import warnings
from typing import Callable, Sequence

import numpy as np
import xarray as xr

from kmc.errors import KMCConfigError

SEED_BITS = 63  # seeds fit a signed int64 (NetCDF attributes, numpy default ints)


def replica_seeds(base_seed: int, n_replicas: int) -> np.ndarray:
    """Independent per-replica seeds derived from one base seed (numpy SeedSequence spawning).

    Parameters
    ----------
    base_seed : int
        Base seed, >= 0.
    n_replicas : int

    Returns
    -------
    ndarray of int64, shape (n_replicas,)
        Seed of replica r; entry r depends on (base_seed, r) only.
    """
    if int(base_seed) < 0:
        raise ValueError(f"`seed` must be >= 0, got {base_seed}")
    if int(n_replicas) < 1:
        raise ValueError(f"`replicas` must be >= 1, got {n_replicas}")
    out = np.empty(int(n_replicas), dtype=np.int64)
    for r in range(int(n_replicas)):
        # Equivalent to SeedSequence(base_seed).spawn(n)[r], but independent of n.
        ss = np.random.SeedSequence(int(base_seed), spawn_key=(r,))
        out[r] = int(ss.generate_state(1, dtype=np.uint64)[0]) >> (64 - SEED_BITS)
    return out


class _NeverStop:
    def __call__(self) -> bool:
        return False


class DaskStop:
    """Picklable stop test for replicas on a dask cluster: polls a named ``distributed.Event``.

    The scheduler is asked at most every ``min_interval_s`` (a round trip costs ~1 ms).
    """

    def __init__(self, name: str, min_interval_s: float = 0.5):
        self.name = name
        self.min_interval_s = min_interval_s
        self._last = 0.0
        self._value = False

    def __call__(self) -> bool:
        now = time.monotonic()
        if not self._value and now - self._last >= self.min_interval_s:
            self._last = now
            from distributed import Event
            try:
                self._value = Event(self.name).is_set()
            except (ValueError, OSError, RuntimeError):  # no client in this process: local call
                self._value = False
        return self._value


@contextlib.contextmanager
def quiet_distributed(level: int = logging.ERROR):
    """Silence distributed's and tornado's loggers and their warnings for the duration."""
    names = ("distributed", "distributed.scheduler", "distributed.nanny", "distributed.worker",
             "distributed.core", "distributed.comm", "tornado", "bokeh")
    saved = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(level)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module="distributed")
            warnings.filterwarnings("ignore", category=ResourceWarning)
            yield
    finally:
        for n, lvl in saved.items():
            logging.getLogger(n).setLevel(lvl)


def default_n_workers(n_replicas: int) -> int:
    """min(n_replicas, usable cores)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(int(n_replicas), cores))


def _connect(cluster, address, timeout_s):
    """A dask Client of `cluster`; an unreachable scheduler `address` is one clear error."""
    from distributed import Client

    if address is None:
        return Client(cluster, set_as_default=False)
    try:
        return Client(address, set_as_default=False, timeout=float(timeout_s))
    except (OSError, TimeoutError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise KMCConfigError(f"`--scheduler` {address!r}: no dask scheduler answered within "
                             f"{timeout_s:g} s ({reason}); start one (dask scheduler) or omit "
                             f"--scheduler for a private local cluster") from None


def run_replicas(func: Callable, n_replicas: int, base_seed: int, args: Sequence = (),
                 kwargs: dict | None = None, *, scheduler_address: str | None = None,
                 n_workers: int | None = None, stop: Callable[[], bool] | None = None,
                 poll_s: float = 0.2, connect_timeout_s: float = 10.0) -> list:
    """Run ``func(seed_r, r, *args, stop=..., **kwargs)`` for r = 0 .. n_replicas - 1.

    Parameters
    ----------
    func : callable
        Top-level function returning the replica's result (usually an ``xarray.Dataset``).
    n_replicas : int
    base_seed : int
        Seeds come from :func:`replica_seeds`.
    args, kwargs
        Extra arguments passed to every replica (must pickle when a cluster is used).
    scheduler_address : str, optional
        Address of a running dask scheduler (``tcp://host:8786``). Default: a private
        ``LocalCluster`` of worker processes, closed afterwards. Ignored for one replica,
        which runs in this process.
    n_workers : int, optional
        Workers of the private cluster (default ``min(n_replicas, cores)``).
    stop : callable, optional
        Polled in this process (every ``poll_s`` while waiting, and passed to a serial
        replica); once True, the replicas are told to stop through a ``distributed.Event``.
    connect_timeout_s : float
        How long to wait for the scheduler at ``scheduler_address``; then
        :class:`~kmc.errors.KMCConfigError` naming the address (before any replica runs).

    Returns
    -------
    list
        The replicas' results, in replica order.
    """
    kwargs = dict(kwargs or {})
    seeds = replica_seeds(base_seed, n_replicas)
    stop = stop or _NeverStop()
    if n_replicas == 1 and scheduler_address is None:
        return [func(int(seeds[0]), 0, *args, stop=stop, **kwargs)]

    from distributed import Event, LocalCluster

    with quiet_distributed():
        if scheduler_address is None:
            cluster = LocalCluster(n_workers=n_workers or default_n_workers(n_replicas),
                                   threads_per_worker=1, processes=True, dashboard_address=None,
                                   silence_logs=logging.ERROR)
        else:
            cluster = contextlib.nullcontext(scheduler_address)
        with cluster as c, _connect(c, scheduler_address, connect_timeout_s) as client:
            token = uuid.uuid4().hex
            event_name = f"cait-stop-{token}"
            event = Event(event_name, client=client)
            futures = [client.submit(func, int(seeds[r]), r, *args, stop=DaskStop(event_name),
                                     key=f"cait-replica-{r}-{token}", pure=False, **kwargs)
                       for r in range(n_replicas)]
            signalled = False
            while not all(f.done() for f in futures):
                time.sleep(poll_s)
                if not signalled and stop():
                    event.set()
                    signalled = True
            results = client.gather(futures)
            if scheduler_address is not None:
                event.clear()
    return results


def _numeric(da: xr.DataArray) -> bool:
    return da.dtype.kind in "fiub"


def merge_replicas(datasets: Sequence[xr.Dataset], seeds: Sequence[int] | None = None,
                   variables: Sequence[str] | None = None) -> xr.Dataset:
    """Stack replica datasets along a ``replica`` dim and add ``<var>_mean`` and ``<var>_sem``.

    Parameters
    ----------
    datasets : sequence of xarray.Dataset
        Replica results with the same variables (coordinates are outer-joined; a shorter
        partial replica is padded with NaN).
    seeds : sequence of int, optional
        Seeds of the replicas, stored as the ``seed`` coordinate along ``replica``.
    variables : sequence of str, optional
        Variables to summarise; default every numeric variable whose name does not end in
        ``_sem``.

    Returns
    -------
    xarray.Dataset
        Every data variable gains the leading ``replica`` dim; ``<var>_mean`` is the mean over
        replicas and ``<var>_sem`` the standard error of that mean (std with ddof = 1 over
        sqrt(n_replicas); NaN for a single replica). Attrs of the first replica are kept, with
        ``n_replicas``.
    """
    datasets = list(datasets)
    if not datasets:
        raise ValueError("no replica datasets to merge")
    n = len(datasets)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        # a partial replica may have fewer times: outer join fills NaN (float casts are expected)
        warnings.simplefilter("ignore", RuntimeWarning)
        merged = xr.concat(datasets, dim="replica", data_vars="all", coords="minimal",
                           compat="override", join="outer", combine_attrs="override")
        merged = merged.assign_coords(replica=np.arange(n))
        if seeds is not None:
            merged = merged.assign_coords(seed=("replica", np.asarray(seeds, dtype=np.int64)))
        names = variables if variables is not None else [
            v for v in datasets[0].data_vars if _numeric(datasets[0][v]) and not v.endswith("_sem")]
        for v in names:
            da = merged[v]
            if "replica" not in da.dims:
                continue
            mean = da.mean("replica", skipna=False)
            if n > 1:
                sem = da.std("replica", ddof=1, skipna=False) / np.sqrt(n)
            else:
                sem = xr.full_like(mean, np.nan, dtype=float)
            units = da.attrs.get("units", "")
            long = da.attrs.get("long_name", v)
            merged[f"{v}_mean"] = mean.assign_attrs(units=units, long_name=f"{long}, mean over replicas")
            merged[f"{v}_sem"] = sem.assign_attrs(units=units, long_name=f"standard error of {long} over replicas")
    merged.attrs["n_replicas"] = n
    return merged


def run_ensemble(func: Callable, n_replicas: int, base_seed: int, args: Sequence = (),
                 kwargs: dict | None = None, **options) -> xr.Dataset:
    """:func:`run_replicas` then :func:`merge_replicas` (``options`` go to ``run_replicas``)."""
    results = run_replicas(func, n_replicas, base_seed, args, kwargs, **options)
    return merge_replicas(results, seeds=replica_seeds(base_seed, n_replicas))
