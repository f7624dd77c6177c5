"""Shared fixtures of the inference tests: a real Dask cluster for the tests that run
chains (tests/inference/test_cluster.py) and simulations (tests/inference/amortized/
test_batches.py) on an executor."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pytest

from tests.inference.cluster_models import KILL_FLAG

if TYPE_CHECKING:
    from distributed import Client


@contextmanager
def _local_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """A client of a ``LocalCluster`` of 2 worker processes on the loopback interface;
    :data:`KILL_FLAG` names a fresh file path while it runs."""
    # imported here: the other inference tests need no Dask
    import dask
    from distributed import Client, LocalCluster

    flag, before = tmp_path_factory.mktemp("cluster") / "killed", os.environ.get(KILL_FLAG)
    os.environ[KILL_FLAG] = str(flag)  # the workers inherit it; dies_once reads it
    try:
        # a killed worker's task is not retried elsewhere: its chain or chunk is reported;
        # the scheduler's HTTP server gets a free port (with dashboard_address=None it still
        # binds 8787, and a run failed when another process held that port)
        with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
                LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                             host="127.0.0.1", dashboard_address="127.0.0.1:0",
                             silence_logs=logging.CRITICAL) as cluster, \
                Client(cluster) as c:
            yield c
    finally:  # a module's cluster may still be running: its flag comes back
        if before is None:
            del os.environ[KILL_FLAG]
        else:
            os.environ[KILL_FLAG] = before


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """A client of a local cluster (:func:`_local_client`), one per test module."""
    with _local_client(tmp_path_factory) as c:
        yield c


@pytest.fixture
def killable_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """A client of a local cluster of its own, for a test that kills a worker: no other
    test runs on a cluster whose nanny restarted a worker (a timed run on one once waited
    for its tasks for the whole test timeout in the full suite)."""
    with _local_client(tmp_path_factory) as c:
        yield c
