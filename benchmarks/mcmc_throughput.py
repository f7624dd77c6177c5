"""B2 (BENCHMARKS.md): program MCMC throughput, ESS per second, and time to the true law.

1. Proposals per second per core: the Gibbs kernel (``Target``, ``Gibbs``, ``init``,
   ``step``) run directly in this process with one torch thread, on the ``arith`` grammar
   (inputs ``["x"]``, ``max_depth=6``) and the 20-point data of
   ``examples/symbolic_regression.py``; side by side with the fast paths taken away one by
   one (``refit=0``; ``cache_size=0``; no incremental likelihood; ``target.fast = False``
   after ``init``), and the collapsed mode (an approximation); with ``--baseline``, the
   default kernel of an earlier source tree side by side (before/after).
2. ESS per second of ``lp`` and ``f_size`` on ``infer(..., num_chains=2,
   chain_method="sequential")``, with and without the fast paths.
3. Time to P(true law) >= 0.5 of the main example, as ``make demo`` runs it and shorter.
4. cProfile of ``kernel.step``: where the time goes.

Figures are medians over ``--repeats`` seeds (>= 3). ``--write`` replaces only the section
``## B2. Program MCMC throughput`` of the shared page (``benchmarks._report``)::

    python -m benchmarks.mcmc_throughput                             # print only
    python -m benchmarks.mcmc_throughput --write docs/benchmarks.md  # what the docs quote
    git archive e32d5fe | tar -x -C /tmp/base; echo e32d5fe > /tmp/base/BASELINE_COMMIT
    python -m benchmarks.mcmc_throughput --baseline /tmp/base --write docs/benchmarks.md

This module runs the measurements (``benchmarks/mcmc_throughput_measure.py``), the
baseline's in a subprocess, and holds the command line; the report is built by
``benchmarks/mcmc_throughput_report.py``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from threadpoolctl import threadpool_limits

from benchmarks._report import replace_sections
from benchmarks.mcmc_throughput_measure import (
    CONSTANT,
    ROOT,
    STRUCTURE,
    VARIANTS,
    Baseline,
    Throughput,
    Variant,
    count_moves,
    count_solves,
    ess_run,
    example,
    example_default,
    example_run,
    make_kernel,
    profile_step,
    throughput,
)
from benchmarks.mcmc_throughput_report import HEADING, Results, fmt, report
from benchmarks.prior_costs import machine

__all__ = ["CONSTANT", "STRUCTURE", "VARIANTS", "count_moves", "count_solves", "example",
           "main", "make_kernel", "parse_args", "profile_step"]
"""The command line, and the names ``BASELINE_SCRIPT`` reads from ``benchmarks.mcmc_throughput``
of the tree it runs in (kept importable from here, so that this tree can be a baseline)."""


def git_commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True
                              ).stdout.strip()

    dirty = " (with uncommitted changes)" if git("status", "--porcelain", "--",
                                                  "ppl", "inference") else ""
    return (git("rev-parse", "--short", "HEAD") or "unknown") + dirty


def baseline_commit(tree: Path) -> str:
    """The commit named in the tree's ``BASELINE_COMMIT`` file, else the tree's path."""
    marker = tree / "BASELINE_COMMIT"
    return marker.read_text().strip() if marker.exists() else str(tree)


BASELINE_SCRIPT = """
import contextlib, inspect, json, sys, time, torch
from threadpoolctl import threadpool_limits
torch.set_num_threads(1)
threadpool_limits(limits=1)
from benchmarks import mcmc_throughput as mt
seed, warmup, sweeps, moves, profile = (int(a) for a in sys.argv[1:6])
data = mt.example().make_data()
if profile:
    p = mt.profile_step(mt.VARIANTS[0], data, seed, warmup, sweeps, moves, 5)
    print(json.dumps({"parts": p.parts, "across": p.across}))
else:  # the timed loop of this tree's throughput(), in CPU seconds
    kernel, state, rng = mt.make_kernel(mt.VARIANTS[0], data, seed, warmup, moves)
    if inspect.signature(mt.count_moves).parameters:  # trees before the blocks: per kernel
        counting = contextlib.nullcontext(mt.count_moves(kernel))
    else:
        counting = mt.count_moves()
    with counting as counts, mt.count_solves() as solves:
        start = time.process_time()
        for _ in range(sweeps):
            state, _ = kernel.step(rng, state)
        seconds = time.process_time() - start
    n = sum(counts[k][0] for k in (*mt.STRUCTURE, *mt.CONSTANT))
    print(json.dumps({"rate": n / seconds, "solves": 100 * solves[0] / sweeps}))
"""


def baseline_run(tree: Path, *args: int) -> dict[str, Any]:
    """Run the earlier tree's own harness in a subprocess (its code, this interpreter)."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    done = subprocess.run([sys.executable, "-c", BASELINE_SCRIPT, *map(str, args)],
                          cwd=tree, env=env, capture_output=True, text=True, check=True)
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="replace the B2 section of this file")
    parser.add_argument("--repeats", type=int, default=3, help="seeds per figure (>= 3)")
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--warmup", type=int, default=200, help="adaptive sweeps before timing")
    parser.add_argument("--sweeps", type=int, default=300, help="timed sweeps per run")
    parser.add_argument("--program-moves", type=int, default=10,
                        help="structure moves per sweep (infer's default)")
    parser.add_argument("--ess-draws", type=int, default=500,
                        help="num_warmup = num_samples of the ESS runs")
    parser.add_argument("--example-draws", default="20,50,100,200,500",
                        help="num_warmup = num_samples settings of the example runs")
    parser.add_argument("--no-refit-draws", default="500",
                        help="settings of the example runs without Laplace refits ('' for none)")
    parser.add_argument("--collapsed-draws", default="50,200",
                        help="settings of the example runs in the collapsed mode ('' for none)")
    parser.add_argument("--example-seeds", type=int, default=3, help="seeds per setting")
    parser.add_argument("--top", type=int, default=15, help="profile lines to keep")
    parser.add_argument("--baseline", type=Path,
                        help="source tree of an earlier commit: its default kernel is "
                             "measured side by side (before/after)")
    args = parser.parse_args(argv)
    if args.repeats < 3:
        parser.error("--repeats must be >= 3 (figures are medians over repeats)")
    args.argv = argv
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(1)  # per core: chain processes run with one thread too
    threadpool_limits(limits=1)  # and one BLAS thread (driver.run_chain)
    host = machine()
    data = example().make_data()
    seeds = [args.seed + i for i in range(args.repeats)]
    runs: dict[Variant, list[Throughput]] = {v: [] for v in VARIANTS}
    old: list[dict[str, Any]] = []
    for seed in seeds:
        if args.baseline is not None:
            old.append(baseline_run(args.baseline, seed, args.warmup, args.sweeps,
                                    args.program_moves, 0))
            print(f"seed {seed} baseline {args.baseline}: {fmt(old[-1]['rate']):>8} "
                  "proposals/s", flush=True)
        for variant in VARIANTS:
            r = throughput(variant, data, seed, args.warmup, args.sweeps, args.program_moves)
            runs[variant].append(r)
            print(f"seed {seed} {variant.name:<32} {fmt(r.rate):>8} proposals/s  "
                  f"size {r.mean_size:4.1f}  solves {r.solves}", flush=True)
    ess = []
    for seed in seeds:
        for fast in (True, False):
            e = ess_run(data, seed, args.ess_draws, fast)
            ess.append(e)
            print(f"seed {seed} fast={fast!s:<5} {e.seconds:6.1f} s  ESS lp {e.ess_lp:5.0f} "
                  f"({e.chain_ess_lp:5.0f})  ESS f_size {e.ess_size:5.0f} "
                  f"({e.chain_ess_size:5.0f})", flush=True)
    with tempfile.TemporaryDirectory() as out:
        default_seconds, default_output = example_default(Path(out))
    print(default_output, f"({default_seconds:.1f} s)", flush=True)
    examples = []
    settings = [(int(d), True, False) for d in args.example_draws.split(",")]
    settings += [(int(d), False, False) for d in args.no_refit_draws.split(",") if d]
    settings += [(int(d), True, True) for d in args.collapsed_draws.split(",") if d]
    for draws, refit, folded in settings:
        for seed in range(args.example_seeds):
            e = example_run(draws, seed, refit, folded)
            examples.append(e)
            print(f"example {draws}/{draws} seed {seed} refit={refit} collapsed={folded}: "
                  f"{e.seconds:5.1f} s  "
                  f"P(true law) {e.p_true:.3f}", flush=True)
    profiles = tuple(profile_step(v, data, args.seed, args.warmup, args.sweeps,
                                  args.program_moves, args.top) for v in VARIANTS[:2])
    print(profiles[0].excerpt)
    baseline = None
    if args.baseline is not None:
        shares_before = baseline_run(args.baseline, args.seed, args.warmup, args.sweeps,
                                     args.program_moves, 1)
        baseline = Baseline(baseline_commit(args.baseline), [r["rate"] for r in old],
                            [r["solves"] for r in old], shares_before["parts"],
                            shares_before["across"])
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    res = Results(args, host, git_commit(), when, runs, ess, default_seconds,
                  default_output, examples, profiles, baseline)  # type: ignore[arg-type]
    section = report(res)
    print("\n" + section)
    if args.write is not None:
        replace_sections(args.write, section, (HEADING,))  # re-reads the page first
        print(f"Wrote the B2 section of {args.write}")


if __name__ == "__main__":
    main()
