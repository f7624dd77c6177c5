"""Simulations of training on an executor (inference/amortized/batches.py), on a real Dask
cluster: a ``LocalCluster`` of 2 worker processes on the loopback interface, as
the ``client`` fixture of tests/inference/conftest.py starts it.

- the same seed gives bitwise the proposal of a local run, and every chunk (the validation
  set, one minibatch per step) ran on the workers; a training on the cluster checkpoints
  and resumes on it bitwise;
- a worker killed in the middle of the simulations is a SimulationError naming the lost
  chunk, not a hang;
- thread executors, and an executor with stored simulations, are refused.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import torch
from distributed import Client, get_task_stream

import ppl
from inference import resume
from inference.amortized import Proposal, SimulationError, simulate, train_proposal
from tests.inference.checkpoint_models import X, Y, regression
from tests.inference.cluster_models import KILL_FLAG, dies_once

TRAIN: dict[str, Any] = {"num_steps": 8, "batch_size": 8, "valid_size": 8, "hidden": 8,
                         "lr": 0.02, "eval_every": 4, "seed": 4, "progress": False}


def same_weights(a: Proposal, b: Proposal) -> bool:
    sa, sb = a.network.state_dict(), b.network.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_training_on_the_cluster_equals_a_local_run(client: Client, tmp_path: Path) -> None:
    local = train_proposal(regression, X, y=Y, **TRAIN)
    path = tmp_path / "train.ckpt"
    with get_task_stream(client) as stream:
        remote = train_proposal(regression, X, y=Y, executor=client.get_executor(),
                                checkpoint=str(path), checkpoint_every=4, **TRAIN)
    assert len(stream.data) == 1 + TRAIN["num_steps"]  # the validation set, every step
    assert {t["worker"] for t in stream.data} <= set(client.scheduler_info()["workers"])
    assert same_weights(remote, local)
    assert [e[:3] for e in remote.history] == [e[:3] for e in local.history]
    again = resume(str(path), regression, X, y=Y, executor=client.get_executor())
    assert isinstance(again, Proposal) and same_weights(again, local)


def test_a_killed_worker_is_a_clear_error(killable_client: Client) -> None:
    with pytest.raises(SimulationError, match="lost on the executor: KilledWorker"):
        train_proposal(dies_once, X, y=Y, executor=killable_client.get_executor(), **TRAIN)
    assert Path(os.environ[KILL_FLAG]).exists()


def test_threads_and_stored_simulations_are_refused() -> None:
    with ThreadPoolExecutor(1) as pool, \
            pytest.raises(ppl.PPLError, match="Simulations cannot run in threads"):
        train_proposal(regression, X, y=Y, executor=pool, **TRAIN)
    sims = simulate(regression, X, y=Y, num_simulations=20, seed=0)
    with ProcessPoolExecutor(1) as pool, \
            pytest.raises(ppl.PPLError, match="with simulations= there is none to spread"):
        train_proposal(regression, X, y=Y, executor=pool, simulations=sims, **TRAIN)
    with pytest.raises(ppl.PPLError, match=r"executor must be a concurrent\.futures-style"):
        train_proposal(regression, X, y=Y, executor="cluster", **TRAIN)
