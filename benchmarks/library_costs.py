"""What one library move's proposal costs: a node's targets and the library's scores.

On ``arith`` (one input, ``max_depth=6``, 20 points), for the program
``((x * (x * x)) + (x + 0.3))`` and data y = x³ + x + 0.5: the mean time of
``subtree_targets`` plus ``SubtreeLibrary.score`` over its nodes 1, 5, 6 and 7
(2,000 rounds), and the library's build time and size.

Run::

    python -m benchmarks.library_costs
"""

from __future__ import annotations

import time

import numpy as np

import ppl
from inference.mcmc.library import SubtreeLibrary
from inference.residuals import subtree_targets


def main() -> dict[str, float]:
    """Measure and print; return the figures."""
    prior = ppl.ProgramPrior("arith", inputs=["x"], max_depth=6)
    x = np.linspace(-1, 1, 20)
    y = x**3 + x + 0.5
    start = time.perf_counter()
    lib = SubtreeLibrary(prior, 0, {"x": x})
    build = time.perf_counter() - start
    phi = prior.parse("((x * (x * x)) + (x + 0.3))")
    start = time.perf_counter()
    for _ in range(2000):
        for v in (1, 5, 6, 7):
            lib.score(subtree_targets(phi, v, {"x": x}, y), 0.01, 4, None)
    per_call = (time.perf_counter() - start) / 8000
    out = {"entries": float(len(lib)), "build_ms": build * 1e3, "targets_score_us": per_call * 1e6}
    print(f"library: {len(lib)} entries, built in {build * 1e3:.1f} ms; targets + score: "
          f"{per_call * 1e6:.1f} µs per node")
    return out


if __name__ == "__main__":
    main()
