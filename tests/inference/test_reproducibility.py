"""P8 (TESTING.md): reproducibility of ``method="mcmc"``.

The same seed gives bitwise-identical draws (programs, their constants, continuous values,
sample statistics, pointwise log-likelihoods), whatever the global random state and whether
chains run in sequence, in processes or on an executor; chains use distinct streams; other
seeds give other draws. The model has a program site with constants (so structure moves,
constant random walk and MALA all run) and a positive continuous site.

The model lives at module level so that it pickles into worker processes. The rest of P8
(N steps, checkpoint, fresh process, N more == 2N steps) waits for checkpoints in the driver.
"""

from __future__ import annotations

import itertools
import os
import random
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context
from typing import Any

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_info, threadpool_limits

import ppl
from inference import Posterior, infer
from inference.mcmc import driver
from ppl import dist
from ppl.errors import PPLError

PRIOR = ppl.ProgramPrior("arith", inputs=["x"], max_depth=4)
X = np.linspace(-1.0, 1.0, 10)
Y = X**2 + X + 0.2 * np.random.default_rng(0).normal(size=10)
RUN: dict[str, Any] = {"method": "mcmc", "num_samples": 20, "num_warmup": 20,
                       "num_chains": 2, "seed": 11, "progress": False}


def program_model(x: Any, y: Any = None) -> None:
    f = ppl.sample("f", PRIOR)
    sigma = ppl.sample("sigma", dist.HalfNormal(1.0))
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), sigma), obs=y)


def run(**kw: Any) -> Posterior:
    return infer(program_model, X, y=Y, **{**RUN, "chain_method": "sequential", **kw})


def assert_bitwise_identical(a: Posterior, b: Posterior) -> None:
    """Every draw, statistic and log-likelihood equal bit for bit."""
    assert set(a.samples) == set(b.samples) == {"f", "sigma"}
    for p, q in zip(a.samples["f"].reshape(-1), b.samples["f"].reshape(-1), strict=True):
        assert p == q  # productions, inputs and constant values
        assert np.asarray(p.constants).tobytes() == np.asarray(q.constants).tobytes()
    assert a.samples["sigma"].dtype == b.samples["sigma"].dtype
    assert a.samples["sigma"].tobytes() == b.samples["sigma"].tobytes()
    assert set(a.stats) == set(b.stats)
    for name in a.stats:
        x, y = a.stats[name], b.stats[name]
        if x.dtype == object:
            assert x.tolist() == y.tolist(), name
        else:
            assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), name
    assert a.log_lik["y"].tobytes() == b.log_lik["y"].tobytes()


def assert_no_common_draw(a: np.ndarray, b: np.ndarray) -> None:
    """Two sequences of continuous draws that share no value: independent streams (equal
    streams would give equal values; independent ones coincide with probability 0)."""
    assert not np.intersect1d(a.reshape(-1), b.reshape(-1)).size


@pytest.fixture(scope="module")
def reference() -> Posterior:
    return run()


def test_same_seed_same_draws(reference: Posterior) -> None:
    assert_bitwise_identical(reference, run())


def test_global_random_state_neither_used_nor_changed(reference: Posterior) -> None:
    """Randomness is explicit (CONVENTIONS 3): reseeding the global generators changes
    nothing, and a run leaves them where it found them."""
    torch.manual_seed(999)
    np.random.seed(999)
    random.seed(999)
    before = (torch.get_rng_state(), np.random.get_state(), random.getstate())
    post = run()
    after = (torch.get_rng_state(), np.random.get_state(), random.getstate())
    assert_bitwise_identical(reference, post)
    assert torch.equal(before[0], after[0])
    assert before[1][0] == after[1][0] and np.array_equal(before[1][1], after[1][1])
    assert before[1][2:] == after[1][2:]
    assert before[2] == after[2]


def test_sequential_run_leaves_torch_threads_alone() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run(num_chains=1, num_samples=5, num_warmup=5)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


def blas_threads() -> list[int]:
    """The thread count of every BLAS library loaded in this process."""
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_a_chain_runs_on_one_blas_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """A chain process must not spin BLAS threads against its sibling chains (two chains on
    two cores ran the demo's search at 0.4x the sweeps with OpenBLAS's default); the
    caller's setting comes back afterwards."""
    seen: list[list[int]] = []
    inner = driver._run_chain

    def spy(spec: Any) -> Any:
        seen.append(blas_threads())
        return inner(spec)

    monkeypatch.setattr(driver, "_run_chain", spy)
    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        run(num_chains=1, num_samples=5, num_warmup=5)
        after = blas_threads()
    assert seen and seen[0] and all(n == 1 for n in seen[0])
    assert after == before


def test_chains_use_distinct_streams() -> None:
    post = run(num_chains=4)
    sigma = post.samples["sigma"]
    for i, j in itertools.combinations(range(4), 2):
        assert_no_common_draw(sigma[i], sigma[j])
        assert post.stats["lp"][i].tobytes() != post.stats["lp"][j].tobytes()


def test_different_seeds_different_draws(reference: Posterior) -> None:
    other = run(seed=RUN["seed"] + 1)
    for c in range(RUN["num_chains"]):
        assert_no_common_draw(reference.samples["sigma"][c], other.samples["sigma"][c])
    assert [str(p) for p in reference.samples["f"].reshape(-1)] != [
        str(p) for p in other.samples["f"].reshape(-1)]


def test_parallel_equals_sequential(reference: Posterior, monkeypatch: pytest.MonkeyPatch
                                    ) -> None:
    """chain_method="parallel" (spawned processes) gives the very same draws."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("parallel chains need two cores")
    pools: list[int] = []

    class SpyPool(ProcessPoolExecutor):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pools.append(kwargs.get("max_workers", 0))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(driver, "ProcessPoolExecutor", SpyPool)
    post = infer(program_model, X, y=Y, **{**RUN, "chain_method": "parallel"})
    assert pools == [2], "the chains did not run in a process pool"
    assert_bitwise_identical(reference, post)


def test_process_executor_equals_sequential(reference: Posterior) -> None:
    with ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as pool:
        post = infer(program_model, X, y=Y, executor=pool, **RUN)
    assert_bitwise_identical(reference, post)


def test_thread_executor_is_refused() -> None:
    """Threads would share Pyro's global handler stack: refused up front (a decision
    recorded in docs/decisions.md), instead of corrupting chains."""
    with ThreadPoolExecutor(max_workers=2) as pool, pytest.raises(PPLError, match="threads"):
        infer(program_model, X, y=Y, executor=pool, **{**RUN, "num_samples": 20})
