"""A training set of laws for tuning the program search (not the benchmark: no Nguyen law).

Each law is observed at 20 points uniform on [−1, 1] (``--laws positive``: on [0.5, 4]; a
fixed seed per seed index) with noise 1% of the clean outputs' sd, known to the model;
``f ~ ProgramPrior("arith", max_depth=6)``; one chain of ``infer(method="mcmc")`` for
``--budget`` seconds with the given engine options. A run recovers the law when the best
draw (highest log joint) has an NRMSE below 0.003 on 200 fresh noiseless points (about the
error of fitted constants at this noise). Move weights, ladders and other search settings
are compared here, and only then run on B1.

With ``--noiseless`` the data are exact and the model is ``ppl.regression(prior,
scale=std(y))`` (a learned noise scale with the library's floor, the B1 setting).

Run::

    python -m benchmarks.train_laws --label default --budget 10
    python -m benchmarks.train_laws --label noiseless --budget 10 --noiseless
    python -m benchmarks.train_laws --label hard --budget 20 --laws hard
    python -m benchmarks.train_laws --label lib --budget 10 \\
        --options '{"structure_weights": {"regenerate": 0.4, "insert_delete": 0.2,
                    "relabel": 0.2, "library": 0.2}}'
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

LAWS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "x2+0.5x": lambda x: x**2 + 0.5 * x,
    "sinx+x2": lambda x: np.sin(x) + x**2,
    "x*exp(-x)": lambda x: x * np.exp(-x),
    "x/(1+x2)": lambda x: x / (1 + x**2),
    "cos(2x)": lambda x: np.cos(2 * x),
    "x*log(x+2)": lambda x: x * np.log(x + 2),
    "x3-x": lambda x: x**3 - x,
    "(x+1)(x-0.5)": lambda x: (x + 1) * (x - 0.5),
    "sinx*cosx": lambda x: np.sin(x) * np.cos(x),
    "exp(x)-1.5": lambda x: np.exp(x) - 1.5,
    "1.7x2-x": lambda x: 1.7 * x**2 - x,
    "sin(x2)+x": lambda x: np.sin(x**2) + x,
}
"""The training laws (none of them a Nguyen or Constant target)."""
HARD_LAWS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "x4-x2+x": lambda x: x**4 - x**2 + x,
    "x3+x2+1": lambda x: x**3 + x**2 + 1,
    "x*sinx+x3": lambda x: x * np.sin(x) + x**3,
    "(x2+1)sinx": lambda x: (x**2 + 1) * np.sin(x),
    "x5-x3": lambda x: x**5 - x**3,
    "exp(x)x2-x": lambda x: np.exp(x) * x**2 - x,
}
"""Harder training laws (``--laws hard``): 9–13 nodes, several terms or factors that a
search must assemble (none of them a Nguyen or Constant target)."""
POSITIVE_LAWS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "x^1.5": lambda x: x**1.5,
    "2x^-0.5": lambda x: 2.0 / np.sqrt(x),
    "x^0.7+1": lambda x: x**0.7 + 1.0,
    "2x*exp(-x/2)": lambda x: 2.0 * x * np.exp(-0.5 * x),
    "log(x)+x": lambda x: np.log(x) + x,
    "3/(1+x)": lambda x: 3.0 / (1.0 + x),
}
"""Laws of positive quantities (``--laws positive``), observed on [0.5, 4]: power laws
(exp(c · log x) in arith), and others of the same size (none a Nguyen or Constant
target)."""
ALL_LAWS = {**LAWS, **HARD_LAWS, **POSITIVE_LAWS}
RECOVERED = 0.003
"""NRMSE on fresh points below which the best draw counts as the law."""


def run(options: dict[str, Any], law: str, seed: int, budget: float,
        noiseless: bool = False) -> dict[str, Any]:
    """One chain on one law: the best draw, its NRMSE on fresh points, the draws. With
    ``noiseless``, the data are exact and the model is ``ppl.regression`` (a learned
    noise scale with the library's floor), as on B1."""
    import torch

    import ppl
    from inference import infer
    from ppl import dist

    torch.set_num_threads(1)
    prior = ppl.ProgramPrior("arith", inputs=["x"], max_depth=6)
    rng = np.random.default_rng(seed)
    low, high = (0.5, 4.0) if law in POSITIVE_LAWS else (-1.0, 1.0)
    x = np.sort(rng.uniform(low, high, 20))
    clean = ALL_LAWS[law](x)
    sd = float(np.std(clean))
    sigma = 0.01 * sd
    y = clean + sigma * rng.standard_normal(20)

    def known_noise(x: Any, y: Any = None) -> None:
        f = ppl.sample("f", prior)
        with ppl.plate("data", len(x)):
            ppl.sample("y", dist.Normal(f(x), sigma), obs=y)

    model = known_noise
    if noiseless:
        y = clean
        model = ppl.regression(prior, scale=sd)

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = infer(model, x, y=y, method="mcmc", num_chains=1, max_time=budget,
                     num_samples=10**6, num_warmup=200, seed=seed, progress=False, **options)
    lp = post.stats["lp"].reshape(-1)
    draws = post.samples["f"].reshape(-1)
    best = draws[int(np.argmax(lp))]
    fresh = np.linspace(low, high, 200)
    with np.errstate(all="ignore"):
        out = np.asarray(best(fresh), dtype=float) * np.ones_like(fresh)
        err = float(np.sqrt(np.mean((out - ALL_LAWS[law](fresh)) ** 2)) / sd)
    err = err if np.isfinite(err) else float("inf")
    return {"law": law, "seed": seed, "best": str(best), "nrmse": err,
            "recovered": err < RECOVERED, "draws": len(draws),
            "seconds": time.perf_counter() - start}


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Run every law and seed; print one JSON line per run and the count recovered."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="run")
    parser.add_argument("--options", default="{}", help="infer options as JSON")
    parser.add_argument("--budget", type=float, default=10.0)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--laws", nargs="+", default=list(LAWS),
                        choices=[*ALL_LAWS, "hard", "positive"],
                        help="laws to run ('hard': the harder set HARD_LAWS, 'positive': "
                             "POSITIVE_LAWS)")
    parser.add_argument("--noiseless", action="store_true",
                        help="exact data, model ppl.regression (learned noise with a floor)")
    args = parser.parse_args(argv)
    options = json.loads(args.options)
    out = []
    laws = [name for law in args.laws
            for name in {"hard": HARD_LAWS, "positive": POSITIVE_LAWS}.get(law, [law])]
    for law in laws:
        for seed in (int(s) for s in args.seeds.split(",")):
            record = {"label": args.label,
                      **run(options, law, seed, args.budget, args.noiseless)}
            out.append(record)
            print(json.dumps(record), flush=True)
    print(f"{args.label}: recovered {sum(r['recovered'] for r in out)}/{len(out)}, "
          f"{sum(r['draws'] for r in out)} draws", flush=True)
    return out


if __name__ == "__main__":
    main()
