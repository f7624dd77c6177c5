"""How often the search phase ends on the true law, by its number of sweeps: the demo's model.

A timed run's search phase (:mod:`inference.mcmc.search`) hands its best state to the exact
chain, which keeps that mode for the rest of the budget; so whether a chain holds the law
depends on whether its search found it, and a slower machine gives the search fewer sweeps.
This measures that chance without the clock: the search on the 20-point radioactive-decay
data of ``examples/symbolic_regression.py`` (the default walkers, ladder, patience and
options of a timed run), stopped after exactly ``--sweeps`` population sweeps, once per
seed; a search "finds the law" when its best state matches N0·exp(−λt) within 5% on
[0, 6] (the example's test). Same seeds, same sweeps: the same outcome on any machine.
One torch and one BLAS thread, as a chain runs::

    python -m benchmarks.search_curve --sweeps 50,110,300 --seeds 24 [--no-descent]

Examples
--------
>>> rows = curve([3], seeds=[0])
>>> rows[0]["sweeps"], rows[0]["seed"], isinstance(rows[0]["found"], bool)
(3, 0, True)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["curve", "main"]


def curve(sweeps: list[int], seeds: list[int], descent: bool = True
          ) -> list[dict[str, Any]]:
    """One search per (sweeps, seed): whether its best state is the law, its log joint,
    restarts and best program; ``descent`` as ``McmcOptions.search_descent``."""
    import torch
    from threadpoolctl import threadpool_limits

    from inference.config import McmcOptions
    from inference.mcmc.gibbs import Gibbs
    from inference.mcmc.search import search
    from inference.mcmc.tempering import geometric_ladder
    from inference.target import Target

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
    import symbolic_regression as sr  # the example's model, data and test of the law

    torch.set_num_threads(1)
    rows = []
    with threadpool_limits(limits=1):
        t, y = sr.make_data()
        grid = np.linspace(0.0, 6.0, 61)
        options = McmcOptions()
        walker = McmcOptions(joint_noise=options.search_joint_noise)  # as the driver's
        for n in sweeps:
            for seed in seeds:
                rng = np.random.default_rng(seed)
                kernels = [Gibbs(Target(sr.model, (t,), {"y": y}, seed=seed, beta=float(b)),
                                 walker)
                           for b in geometric_ladder(options.search_rungs,
                                                     options.search_beta_min)]
                states = [k.init(rng) for k in kernels]
                _, found = search(rng, kernels, states, seconds=1e9,
                                  patience=options.search_patience, max_sweeps=n,
                                  descent=descent)
                rows.append({"sweeps": n, "seed": seed,
                             "found": sr.is_true_law(found.values["f"], grid),
                             "log_joint": found.log_joint, "restarts": found.restarts,
                             "best": str(found.values["f"])})
    return rows


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweeps", default="50,110,300",
                        help="comma-separated numbers of population sweeps")
    parser.add_argument("--seeds", type=int, default=24)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--no-descent", action="store_true",
                        help="search without the two-edit descent (search_descent=False)")
    args = parser.parse_args(argv)
    sweeps = [int(s) for s in args.sweeps.split(",")]
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    rows = curve(sweeps, seeds, descent=not args.no_descent)
    for n in sweeps:
        mine = [r for r in rows if r["sweeps"] == n]
        missed = [f"{r['seed']}: {r['best'][:60]} ({r['log_joint']:.1f})"
                  for r in mine if not r["found"]]
        print(f"{n:5d} sweeps: found the law in {sum(r['found'] for r in mine)}/{len(mine)}"
              + ("; missed " + "; ".join(missed) if missed else ""))
    return rows


if __name__ == "__main__":
    main()
