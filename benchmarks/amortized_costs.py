"""What an amortized proposal q(φ | x, y) costs: training, contexts, draws and densities.

Measures, on one CPU thread:

- the wall time of ``train_proposal`` for the network the tests train (grammar ``tiny``,
  ``max_depth=3``, 10 points, 40 steps of 16 simulated draws, 32 validation draws,
  hidden 16), and the time per step (simulation included);
- for ``arith`` with inputs ``["x"]`` (constants included), ``max_depth=4, max_size=9`` with
  hidden 16 and 64, and ``max_depth=8`` with hidden 64 (larger programs): the time of
  ``context(x, y)`` on 20 points, of one ``sample(rng, ctx)`` and of one
  ``log_prob(program, ctx)`` of an untrained network (medians over repeats).

Run::

    python -m benchmarks.amortized_costs
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

import ppl
from inference.amortized import ProgramProposal, train_proposal
from ppl import dist


def per_call(fn: Callable[[], object], count: int, repeats: int = 5) -> float:
    """Median seconds per call of ``fn`` over ``repeats`` runs of ``count`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(count):
            fn()
        times.append((time.perf_counter() - start) / count)
    return statistics.median(times)


def training_seconds(repeats: int) -> tuple[float, float]:
    """(median wall time, its per-step share) of the tests' training run."""
    prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=3)

    def model(x: Any, y: Any = None) -> None:
        f = ppl.sample("f", prior)
        s = ppl.sample("sigma", dist.HalfNormal(0.2))
        with ppl.plate("data", len(x)):
            ppl.sample("y", dist.Normal(f(x), s), obs=y)

    x = np.linspace(-2.0, 2.0, 10)
    times = []
    for seed in range(repeats):
        start = time.perf_counter()
        train_proposal(model, x, y=np.zeros(10), num_steps=40, batch_size=16, valid_size=32,
                       hidden=16, lr=0.01, eval_every=10, seed=seed, progress=False)
        times.append(time.perf_counter() - start)
    best = statistics.median(times)
    return best, best / 40


def proposal_costs(hidden: int, limits: dict[str, int]) -> dict[str, float]:
    """Seconds per context, sample and log_prob call on arith with ``limits``."""
    prior = ppl.ProgramPrior("arith", inputs=["x"], **limits)
    q = ProgramProposal(prior, hidden=hidden, seed=0)
    x = np.linspace(0.1, 2.0, 20)
    y = np.log(x) + x
    ctx = q.context(x, y)
    rng = np.random.default_rng(0)
    programs = [q.sample(rng, ctx)[0] for _ in range(1000)]
    it = iter(programs * 100)
    return {"context": per_call(lambda: q.context(x, y), 200),
            "sample": per_call(lambda: q.sample(rng, ctx), 5000),
            "log_prob": per_call(lambda: q.log_prob(next(it), ctx), 5000),
            "mean size": float(np.mean([p.size for p in programs]))}


def main(argv: Sequence[str] | None = None) -> str:
    """Measure and print a Markdown table; return it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    total, step = training_seconds(args.repeats)
    lines = ["| measure | value |", "|---|---|",
             f"| train_proposal, tests' network (40 steps) | {total:.2f} s |",
             f"| one training step (16 draws simulated) | {step * 1e3:.1f} ms |"]
    cases = [(16, {"max_depth": 4, "max_size": 9}), (64, {"max_depth": 4, "max_size": 9}),
             (64, {"max_depth": 8})]
    for hidden, limits in cases:
        costs = proposal_costs(hidden, limits)
        where = ", ".join(f"{k}={v}" for k, v in limits.items()) + f", hidden {hidden}"
        lines += [f"| context(x, y), 20 points; {where} | {costs['context'] * 1e6:.0f} µs |",
                  f"| sample (mean size {costs['mean size']:.1f}); {where} | "
                  f"{costs['sample'] * 1e6:.1f} µs |",
                  f"| log_prob; {where} | {costs['log_prob'] * 1e6:.1f} µs |"]
    table = "\n".join(lines)
    print(table)
    return table


if __name__ == "__main__":
    main()
