"""Wall time of a fixed amount of work in parallel chain processes: the demo's model.

``infer`` on the 20-point radioactive-decay data of ``examples/symbolic_regression.py``
(the ``arith`` prior, sigma ~ HalfNormal(1)) with ``--chains`` chains in spawned processes
(``chain_method="parallel"``, one process per core), ``--warmup`` + ``--samples`` sweeps
each and no time budget, so every run does the same work; wall seconds of the ``infer``
call, process start-up included. This is where chain processes compete for the cores:
threads a chain starts (torch's, the BLAS library's) run against its sibling chains.

``--before DIR`` runs the same measurement on an earlier source tree (a subprocess with
``DIR`` first on ``sys.path``), alternating with this tree ``--repeats`` times::

    python -m benchmarks.parallel_chains --repeats 5 --before ../before

Examples
--------
>>> row = measure(chains=1, warmup=2, samples=3)
>>> row["draws"], row["seconds"] > 0
(3, True)
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main", "measure"]


def measure(chains: int = 2, warmup: int = 100, samples: int = 300,
            seed: int = 0) -> dict[str, Any]:
    """Run the demo's model once; wall seconds of ``infer`` and the draws per chain."""
    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root / "examples"))
    import symbolic_regression as sr  # the example's model and data

    from inference import infer
    from inference.api import RunWarning

    t, y = sr.make_data()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RunWarning)
        post = infer(sr.model, t, y=y, method="mcmc", seed=seed, progress=False,
                     num_chains=chains, num_warmup=warmup, num_samples=samples,
                     chain_method="parallel" if chains > 1 else "sequential")
    return {"seconds": time.perf_counter() - start, "draws": int(post.num_draws),
            "chains": chains}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--before", default=None, help="an earlier source tree")
    args = parser.parse_args(argv)
    rows = []
    from benchmarks.trees import alternating, call_in_tree  # here: not in earlier trees

    kwargs = {"chains": args.chains, "warmup": args.warmup, "samples": args.samples,
              "seed": args.seed}
    for label, tree in alternating(args.before, args.repeats):
        row = call_in_tree(tree, __file__, "measure", kwargs) | {"tree": label}
        rows.append(row)
        print(f"{label:10s} {row['seconds']:.2f} s ({row['chains']} chains x "
              f"{row['draws']} draws)", flush=True)
    for label in ("before", "this tree"):
        times = [r["seconds"] for r in rows if r["tree"] == label]
        if times:
            print(f"{label:10s} median {np.median(times):.2f} s over {len(times)} runs")
    return rows


if __name__ == "__main__":
    main()
