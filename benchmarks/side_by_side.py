"""B2 before/after: the default kernel of an earlier source tree and of this one, timed side
by side (alternating per seed), each by its own harness in a subprocess.

Usage: ``python -m benchmarks.side_by_side --before PATH [--seeds 3]``, where PATH is a
checkout of the earlier commit (e.g. ``git worktree add ../before 3135e3f``). Prints program
proposals per second per core (CPU seconds, one torch thread) and Laplace solves per 100
sweeps per seed and tree, the medians and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from benchmarks.mcmc_throughput import baseline_run

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the earlier source tree")
    parser.add_argument("--seeds", type=int, default=3, help="seeds (medians over them)")
    parser.add_argument("--warmup", type=int, default=200, help="adaptive sweeps")
    parser.add_argument("--sweeps", type=int, default=300, help="timed sweeps")
    parser.add_argument("--program-moves", type=int, default=10)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    trees = {"before": args.before.resolve(), "after": ROOT}
    rates: dict[str, list[float]] = {name: [] for name in trees}
    for seed in range(args.seeds):
        for name, tree in trees.items():
            r = baseline_run(tree, seed, args.warmup, args.sweeps, args.program_moves, 0)
            rates[name].append(r["rate"])
            print(f"seed {seed} {name:<6} {r['rate']:8.0f} proposals/s  "
                  f"{r['solves']:6.1f} solves per 100 sweeps", flush=True)
    medians = {name: statistics.median(v) for name, v in rates.items()}
    print(f"medians: before {medians['before']:.0f}, after {medians['after']:.0f}; "
          f"after/before {medians['after'] / medians['before']:.3f}")


if __name__ == "__main__":
    main()
