"""Issue 11's first scenario as a new user writes it: torch data, ``koza``, one chain.

Three laws of 7–9 nodes (a cubic, a trigonometric product plus x, an exponential minus a
square) on ``x = torch.linspace(-1, 1, 20)`` (torch's default float32, as a user makes
it), the model ``y ~ Normal(f(x), sigma)``, ``sigma ~ HalfNormal(1)``, ``f`` from ``koza``
at depth 5, and ``infer(model, x, y=y, num_chains=1, max_time=BUDGET, seed=S)``. One JSON
line per run: the top program of ``post.programs()`` (simplified), its probability,
``post.best()`` and its largest error on fresh points, the run's wall time::

    python benchmarks/user_laws.py 0,1 30          # seeds 0 and 1, 30 s a run

Run it with an earlier source tree first on ``PYTHONPATH`` for the engine before.
"""

from __future__ import annotations

import json
import sys
import time

import torch

import ppl
from inference import infer

LAWS = {"cubic": lambda x: x**3 + x**2 + x,
        "trig": lambda x: torch.sin(x) * torch.cos(x) + x,
        "expsq": lambda x: torch.exp(x) - x**2}
"""The three laws, as functions of a torch tensor."""


def model(x, y=None):
    f = ppl.sample("f", ppl.ProgramPrior("koza", inputs=["x"], max_depth=5))
    sigma = ppl.sample("sigma", ppl.dist.HalfNormal(1.0))
    with ppl.plate("data", len(x)):
        ppl.sample("y", ppl.dist.Normal(f(x), sigma), obs=y)


def main(seeds: list[int], budget: float) -> None:
    for name, law in LAWS.items():
        for seed in seeds:
            x = torch.linspace(-1.0, 1.0, 20)
            start = time.time()
            post = infer(model, x, y=law(x), num_chains=1, max_time=budget, seed=seed,
                         progress=False)
            top = post.programs().iloc[0]
            fresh = torch.linspace(-0.9, 0.9, 7, dtype=torch.float64)
            best = post.best()
            error = float((torch.as_tensor(best.evaluate(fresh.numpy())) - law(fresh)).abs().max())
            print(json.dumps({"law": name, "seed": seed, "top": str(top["simplified"]),
                              "p": float(top["probability"]), "best": str(best),
                              "max_err_best": error,
                              "seconds": round(time.time() - start, 1)}), flush=True)


if __name__ == "__main__":
    main([int(s) for s in sys.argv[1].split(",")], float(sys.argv[2]))
