"""Pyro NUTS chains in worker processes against in sequence: where start-up pays.

Each case is one ``infer(..., method="nuts", backend="pyro")`` call timed whole (the
worker processes' start-up and imports included), with ``chain_method="parallel"`` (worker
processes when the run has at least ``PARALLEL_ITERATIONS`` chains × iterations) and
``"sequential"``, alternating, ``--repeats`` times each; the medians and their ratio::

    python -m benchmarks.nuts_processes --repeats 2

Cases: eight schools (non-centred, ``examples/eight_schools.py``) with 4 chains × (500 +
500), the smallest run that uses processes by default, and a one-parameter normal model
(about the cheapest NUTS iteration there is) at the default size, 4 chains × (1000 +
1000).

Examples
--------
>>> row = measure("normal", chains=2, iterations=100, chain_method="sequential")
>>> row["chain_method"], row["seconds"] > 0
('sequential', True)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main", "measure"]

CASES = {"eight_schools": (4, 500), "normal": (4, 1000)}
"""Case -> (chains, warmup = kept iterations per chain)."""


def normal_model(y: Any = None) -> None:
    """mu ~ Normal(0, 10), three points y ~ Normal(mu, 1)."""
    import ppl
    from ppl import dist

    mu = ppl.sample("mu", dist.Normal(0.0, 10.0))
    with ppl.plate("data", 3):
        ppl.sample("y", dist.Normal(mu, 1.0), obs=y)


def measure(case: str, chains: int, iterations: int, chain_method: str) -> dict[str, Any]:
    """Wall seconds of one whole ``infer`` call of ``case``."""
    from inference import infer

    if case == "eight_schools":
        examples = str(Path(__file__).resolve().parent.parent / "examples")
        if examples not in sys.path:
            sys.path.insert(0, examples)
        import eight_schools as es

        model, args, kwargs = es.eight_schools, (es.SIGMA,), {"y": es.Y}
    else:
        model, args, kwargs = normal_model, (), {"y": np.array([0.3, 1.1, 2.2])}
    start = time.perf_counter()
    post = infer(model, *args, **kwargs, method="nuts", backend="pyro", num_chains=chains,
                 num_warmup=iterations, num_samples=iterations, seed=0, progress=False,
                 chain_method=chain_method)
    return {"case": case, "chain_method": post.attrs["chain_method"],
            "seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cases", default=",".join(CASES))
    args = parser.parse_args(argv)
    rows = []
    for case in args.cases.split(","):
        chains, iterations = CASES[case]
        for _ in range(args.repeats):
            for method in ("parallel", "sequential"):
                row = measure(case, chains, iterations, method)
                rows.append(row)
                print(f"{case}: {row['chain_method']} {row['seconds']:.1f} s", flush=True)
        med = {m: float(np.median([r["seconds"] for r in rows
                                   if r["case"] == case and r["chain_method"] == m]))
               for m in ("parallel", "sequential")}
        print(f"{case} ({chains} chains x ({iterations} + {iterations})): processes "
              f"{med['parallel']:.1f} s, sequence {med['sequential']:.1f} s (median of "
              f"{args.repeats}), ratio {med['parallel'] / med['sequential']:.2f}", flush=True)
    return rows


if __name__ == "__main__":
    main()
