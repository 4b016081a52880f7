"""Replica ensembles: deterministic seeds, dask parallel == serial, merged mean and SEM."""
import numpy as np
import pytest
import xarray as xr

from kmc import ensemble


def toy_replica(seed, replica, n_steps, stop=None):
    """A cheap stand-in for the engine: a seeded random walk recorded at 5 times."""
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.normal(size=n_steps))
    return xr.Dataset({"x": ("time", x[:: n_steps // 5][:5], {"units": "m"}),
                       "n_events": ((), n_steps)},
                      coords={"time": np.arange(5.0)}, attrs={"replica": replica})


def test_seeds_are_deterministic_distinct_and_prefix_stable():
    s4 = ensemble.replica_seeds(7, 4)
    assert s4.dtype == np.int64 and np.all(s4 >= 0)
    assert len(set(s4.tolist())) == 4
    np.testing.assert_array_equal(s4, ensemble.replica_seeds(7, 4))
    np.testing.assert_array_equal(s4[:2], ensemble.replica_seeds(7, 2))
    assert not np.array_equal(s4, ensemble.replica_seeds(8, 4))
    with pytest.raises(ValueError, match="`replicas` must be >= 1, got 0"):
        ensemble.replica_seeds(7, 0)
    with pytest.raises(ValueError, match="`seed` must be >= 0, got -1"):
        ensemble.replica_seeds(-1, 2)


def test_merge_mean_and_sem():
    dss = [xr.Dataset({"y": ("t", np.array([1.0, 2.0]) * k, {"units": "V"})}, coords={"t": [0, 1]})
           for k in (1.0, 2.0, 3.0)]
    m = ensemble.merge_replicas(dss, seeds=[5, 6, 7])
    assert m.y.dims == ("replica", "t") and m.attrs["n_replicas"] == 3
    np.testing.assert_allclose(m.y_mean, [2.0, 4.0])
    np.testing.assert_allclose(m.y_sem, np.array([1.0, 2.0]) / np.sqrt(3))  # std(1,2,3) = 1
    np.testing.assert_array_equal(m.seed, [5, 6, 7])
    assert m.y_mean.attrs["units"] == "V"


def test_single_replica_runs_serially_with_nan_sem():
    ds = ensemble.run_ensemble(toy_replica, 1, 3, args=(100,))
    assert ds.sizes["replica"] == 1
    assert np.all(np.isnan(ds.x_sem)) and np.isfinite(ds.x_mean).all()


def test_partial_replica_is_padded_with_nan():
    a = xr.Dataset({"y": ("time", [1.0, 2.0, 3.0])}, coords={"time": [0.0, 1.0, 2.0]})
    b = a.isel(time=slice(0, 2))
    m = ensemble.merge_replicas([a, b])
    assert np.isnan(m.y.values[1, 2]) and np.isnan(m.y_mean.values[2])
    np.testing.assert_allclose(m.y_mean.values[:2], [1.0, 2.0])


def test_dask_cluster_equals_serial_and_is_reproducible():
    """Two replicas on a private LocalCluster reproduce the serial per-replica results exactly."""
    seeds = ensemble.replica_seeds(11, 2)
    serial = [toy_replica(int(s), r, 1000) for r, s in enumerate(seeds)]
    par = ensemble.run_ensemble(toy_replica, 2, 11, args=(1000,), n_workers=2)
    for r in range(2):
        np.testing.assert_array_equal(par.x.values[r], serial[r].x.values)
    np.testing.assert_array_equal(par.seed.values, seeds)
    assert par.x_sem.notnull().all()


def looping_replica(seed, replica, stop=None):
    """Works in chunks until told to stop (as the engine runner does), then reports it."""
    import time
    t0, chunks = time.monotonic(), 0
    while not stop() and time.monotonic() - t0 < 30.0:
        time.sleep(0.05)
        chunks += 1
    return xr.Dataset({"chunks": ((), chunks)}, attrs={"status": "interrupted" if stop() else "ok"})


def test_stop_request_reaches_replicas_on_an_existing_cluster():
    import logging
    import time

    from distributed import LocalCluster

    with ensemble.quiet_distributed(), LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
            silence_logs=logging.ERROR) as cluster:
        t0 = time.monotonic()
        results = ensemble.run_replicas(looping_replica, 2, 0, scheduler_address=cluster.scheduler_address,
                                        stop=lambda: time.monotonic() - t0 > 1.0)
    assert time.monotonic() - t0 < 20.0
    assert [r.attrs["status"] for r in results] == ["interrupted", "interrupted"]
