"""Chains on a real Dask cluster (issue 13 item 2): a ``LocalCluster`` of 2 worker
processes on the loopback interface, started by the ``client`` fixture
(tests/inference/conftest.py).

- the same seed gives the same draws as a local run, and the chains ran on the workers;
- a worker killed in the middle of a run is reported (a crashed chain, a RunWarning) and
  the other chain's draws are kept;
- ``compare`` with the executor runs each entry as one task on the workers, with the
  same draws as locally.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from distributed import Client, get_task_stream

from inference import compare, infer
from inference.api import RunWarning
from tests.inference.checkpoint_models import X, Y, regression
from tests.inference.cluster_models import KILL_FLAG, dies_once

RUN: dict[str, Any] = {"num_samples": 40, "num_warmup": 20, "num_chains": 2, "seed": 5,
                       "progress": False}


def test_chains_on_the_cluster_equal_a_local_run(client: Client) -> None:
    local = infer(regression, X, y=Y, chain_method="sequential", **RUN)
    with get_task_stream(client) as stream:
        remote = infer(regression, X, y=Y, executor=client.get_executor(), **RUN)
    workers = {t["worker"] for t in stream.data}
    assert len(stream.data) == 2 and workers <= set(client.scheduler_info()["workers"])
    assert np.array_equal(remote.stats["lp"], local.stats["lp"])
    assert [str(p) for p in remote.samples["f"].reshape(-1)] == \
        [str(p) for p in local.samples["f"].reshape(-1)]


def test_a_killed_worker_is_reported_and_the_other_chain_kept(killable_client: Client,
                                                               tmp_path: Path) -> None:
    with pytest.warns(RunWarning, match="1 of 2 chains crashed"):
        post = infer(dies_once, X, y=Y, executor=killable_client.get_executor(), **RUN)
    assert post.samples["f"].shape == (1, 40)
    assert Path(os.environ[KILL_FLAG]).exists()


def test_compare_runs_its_entries_on_the_workers(client: Client) -> None:
    methods = ["mcmc", ("mcmc", {"seed": 6, "label": "other"})]
    run = {**RUN, "num_samples": 20, "num_warmup": 10}
    local = compare(regression, X, y=Y, methods=methods, **run)
    with get_task_stream(client) as stream:
        remote = compare(regression, X, y=Y, methods=methods,
                         executor=client.get_executor(), **run)
    assert len(stream.data) == 2  # one task per entry: its chains ran inside it
    for label in ("mcmc", "other"):
        a, b = local.attrs["posteriors"][label], remote.attrs["posteriors"][label]
        assert np.array_equal(a.stats["lp"], b.stats["lp"]), label
    columns = ["draws", "top_program", "tv_program"]
    assert remote[columns].equals(local[columns])


def test_timed_chains_share_their_searches_on_the_cluster(client: Client) -> None:
    """With max_time the chains' searches run as tasks first, then their exact phases (four
    tasks for two chains), and each chain records whose best state it started from."""
    with get_task_stream(client) as stream, pytest.warns(RunWarning, match="max_time"):
        post = infer(regression, X, y=Y, executor=client.get_executor(), max_time=2.0,
                     **{**RUN, "num_samples": 10**6})
    assert len(stream.data) == 4
    assert [s["start"] in (0, 1) for s in post.attrs["search"]] == [True, True]
    assert post.num_draws > 0
