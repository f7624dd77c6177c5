"""Chains that share their searches: the main example's run with and without the pool.

A timed run's chains each search first, then sample exactly from the best state their own
search found (:mod:`inference.mcmc.search`); a chain whose search missed the law keeps a
wrong mode for the rest of the budget, and P(true law) is then about the share of chains
that found it. With ``search_pool`` (the default) the searches run first, then every
chain's exact phase may start from the best chain's state
(:func:`inference.mcmc.driver.pool_start`). This runs the main example
(``examples/symbolic_regression.py``: 20 points of N0·exp(−λt) + noise, ``arith`` prior,
4 chains in processes) at a short budget where searches miss the law, both ways, same
seeds, alternating, and prints P(true law) per run::

    python -m benchmarks.pooled_search --budget 2 --seeds 10

Examples
--------
>>> row = run(seed=0, budget=1.0, pool=False, chains=2)
>>> sorted(row)
['chains_on_law', 'draws', 'p_true', 'pool', 'seed', 'starts']
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main", "run"]


def run(seed: int, budget: float, pool: bool, chains: int = 4) -> dict[str, Any]:
    """One run of the main example's model: P(true law), chains whose draws are mostly
    the law, where each chain started (pooled runs), draws per chain."""
    examples = str(Path(__file__).resolve().parent.parent / "examples")
    if examples not in sys.path:
        sys.path.insert(0, examples)
    import symbolic_regression as sr  # the example's model, data and test of the law

    from inference import infer
    from inference.api import RunWarning

    t, y = sr.make_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RunWarning)
        post = infer(sr.model, t, y=y, method="mcmc", seed=seed, progress=False,
                     num_chains=chains, num_warmup=200, num_samples=10**6, max_time=budget,
                     search_pool=pool)
    grid = np.linspace(0.0, 6.0, 61)
    hits = np.vectorize(lambda p: sr.is_true_law(p, grid))(post.samples["f"])
    return {"seed": seed, "pool": pool, "p_true": float(hits.mean()),
            "chains_on_law": int((hits.mean(axis=1) > 0.5).sum()),
            "starts": [s.get("start") for s in post.attrs["search"]],
            "draws": int(post.num_draws)}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=2.0, help="max_time per chain (s)")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--chains", type=int, default=4)
    args = parser.parse_args(argv)
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for pool in (False, True):
            row = run(seed, args.budget, pool, args.chains)
            rows.append(row)
            print(f"seed {seed:3d} pool={pool!s:5}  P(true law) {row['p_true']:.3f}  "
                  f"chains on the law {row['chains_on_law']}/{args.chains}  "
                  f"starts {row['starts']}  draws {row['draws']}", flush=True)
    for pool in (False, True):
        p = np.array([r["p_true"] for r in rows if r["pool"] == pool])
        on = sum(r["chains_on_law"] for r in rows if r["pool"] == pool)
        print(f"pool={pool!s:5}: P(true law) median {np.median(p):.3f}, mean {p.mean():.3f}, "
              f"runs with P >= 0.95: {(p >= 0.95).sum()}/{p.size}; chains on the law "
              f"{on}/{p.size * args.chains}")
    return rows


if __name__ == "__main__":
    main()
