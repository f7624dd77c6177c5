"""Pyro's NUTS chains in local worker processes (``chain_method="parallel"``, the default).

A run of at least ``PARALLEL_ITERATIONS`` (chains × iterations) runs its chains in spawned
processes, with the same draws as in sequence (one torch and one BLAS thread in both);
smaller runs, ``chain_method="sequential"`` and models a worker cannot import stay in this
process. Scripts that start the run at import time are checked in
test_unguarded_script.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import ppl
from inference import infer
from inference._nuts_pyro import PARALLEL_ITERATIONS
from ppl import dist

Y = np.array([0.3, 1.1, 2.2])


def normal_model(y: Any = None) -> None:
    mu = ppl.sample("mu", dist.Normal(0.0, 10.0))
    with ppl.plate("data", 3):
        ppl.sample("y", dist.Normal(mu, 1.0), obs=y)


RUN: dict[str, Any] = {"method": "nuts", "backend": "pyro", "num_chains": 2, "num_warmup": 100,
                       "num_samples": 100, "seed": 7, "progress": False}


def test_the_default_run_is_large_enough_for_processes() -> None:
    from inference.config import RunConfig

    cfg = RunConfig.build(method="nuts")
    assert cfg.num_chains * (cfg.warmup + cfg.num_samples) >= PARALLEL_ITERATIONS


def test_a_large_run_uses_processes_with_the_draws_of_a_sequence(monkeypatch) -> None:
    """(The threshold lowered to this run's 400 iterations, to keep the test short.)"""
    from inference import _nuts_pyro

    small = infer(normal_model, y=Y, **RUN)
    assert small.attrs["chain_method"] == "sequential"  # 400 < PARALLEL_ITERATIONS
    monkeypatch.setattr(_nuts_pyro, "PARALLEL_ITERATIONS", 400)
    parallel = infer(normal_model, y=Y, **RUN)
    sequence = infer(normal_model, y=Y, **{**RUN, "chain_method": "sequential"})
    assert parallel.attrs["chain_method"] == "parallel"
    assert sequence.attrs["chain_method"] == "sequential"
    assert np.array_equal(parallel.samples["mu"], small.samples["mu"])
    assert np.array_equal(parallel.samples["mu"], sequence.samples["mu"])
    assert np.array_equal(parallel.stats["lp"], sequence.stats["lp"])
    assert not np.array_equal(parallel.samples["mu"][0], parallel.samples["mu"][1])


def test_an_unimportable_model_stays_in_this_process(monkeypatch) -> None:
    from inference import _nuts_pyro

    monkeypatch.setattr(_nuts_pyro, "PARALLEL_ITERATIONS", 400)

    def local(y: Any = None) -> None:  # a closure: a spawned worker cannot import it
        normal_model(y)

    post = infer(local, y=Y, **RUN)
    assert post.attrs["chain_method"] == "sequential"
    assert post.samples["mu"].shape == (2, 100)
