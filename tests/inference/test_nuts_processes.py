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


BIG: dict[str, Any] = {"method": "nuts", "backend": "pyro", "num_chains": 2,
                       "num_warmup": PARALLEL_ITERATIONS // 4,
                       "num_samples": PARALLEL_ITERATIONS // 4, "seed": 7, "progress": False}


def test_a_large_run_uses_processes_with_the_draws_of_a_sequence() -> None:
    parallel = infer(normal_model, y=Y, **BIG)
    sequence = infer(normal_model, y=Y, **{**BIG, "chain_method": "sequential"})
    assert parallel.attrs["chain_method"] == "parallel"
    assert sequence.attrs["chain_method"] == "sequential"
    assert np.array_equal(parallel.samples["mu"], sequence.samples["mu"])
    assert np.array_equal(parallel.stats["lp"], sequence.stats["lp"])
    assert not np.array_equal(parallel.samples["mu"][0], parallel.samples["mu"][1])


def test_a_small_run_or_an_unimportable_model_stays_in_this_process() -> None:
    small = infer(normal_model, y=Y, **{**BIG, "num_warmup": 50, "num_samples": 50})
    assert small.attrs["chain_method"] == "sequential"

    def local(y: Any = None) -> None:  # a closure: a spawned worker cannot import it
        normal_model(y)

    post = infer(local, y=Y, **BIG)
    assert post.attrs["chain_method"] == "sequential"
    assert post.samples["mu"].shape == (2, PARALLEL_ITERATIONS // 4)
