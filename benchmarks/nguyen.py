"""B1: program induction on the Nguyen suite, our engine (without and with a trained
proposal) against pyoperon and gplearn.

Protocol: ``/work/shared/BENCHMARKS.md`` section B1 (what is measured is written out in the
report this harness writes to ``docs/benchmarks.md``). Per problem and seed index the data
are 20 points from a fixed seed; every method gets the same data, the same wall-clock budget
on one core, and its reported best model is scored by the same recovery check against the
true function on 1000 fresh points.

Methods:

- ``ours``: ``f ~ ProgramPrior(koza | arith, max_depth=6)``, noise scale
  ``s0 + sigma`` with ``sigma ~ HalfNormal(std(y))`` and a fixed floor
  ``s0 = 1e-6 · std(y)`` (``ppl.regression``); ``infer(method="mcmc")`` on one chain until
  ``max_time`` (its first half a search phase, the rest an exact chain). Reported best
  program: the draw with the highest log joint (``stats["lp"]``), or the search's best
  state when its log joint is higher; time to first recovery: when the search's best
  program first recovered the target (its history).
- ``ours+q``: ``ours`` with ``proposal=q`` in the ``infer`` call (the neural structure
  moves), q trained once per (grammar, inputs) on the same model with scale 1, programs
  from the grammar's prior and a broad design (``benchmarks/nguyen_proposal.py``), for
  ``--proposal-time`` seconds on one core, before the runs; saved under ``--proposal-dir``
  and reused when present. Training time is not part of a run's budget.
- ``pyoperon``: Nguyen (no constants) through pyoperon's lower-level bindings, variable
  weights fixed at 1, no coefficient optimisation, no linear scaling, MSE objective;
  Constant-* through its scikit-learn wrapper as is; its time limit is ``max_time``.
- ``gplearn``: ``SymbolicRegressor`` with the Koza set (a protected ``exp`` added with
  ``make_function``), ``const_range=None`` on Nguyen, (−5, 5) on Constant-*; one generation
  per ``fit`` with ``warm_start`` until the next generation would pass the budget.

Run::

    python -m benchmarks.nguyen --seeds 3 --budget 20 --jobs 2 --out nguyen.json
    python -m benchmarks.nguyen --seeds 2 --budget 8 --jobs 2 --methods ours ours+q \\
        --proposal-time 120 --out nguyen_q.json
    python -m benchmarks.nguyen --report-from nguyen.json --write docs/benchmarks.md

This module runs the jobs and holds the command line; the problems, the shared settings and
the recovery check are in ``benchmarks/nguyen_protocol.py``, the methods in
``benchmarks/nguyen_methods.py`` (``ours+q``'s proposals in ``benchmarks/nguyen_proposal.py``)
and the report in ``benchmarks/nguyen_report.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.nguyen_methods import RUNNERS
from benchmarks.nguyen_proposal import Pair, obtain, pair_of
from benchmarks.nguyen_protocol import DEFAULT_METHODS, LOAD, METHODS, N_POINTS, PROBLEMS
from benchmarks.nguyen_report import HEADING, report, write_section


# ---------------------------------------------------------------------- driver
def run_job(method: str, name: str, seed: int, budget: float, noise: float,
            proposal_file: str | None = None, options: dict[str, Any] | None = None
            ) -> dict[str, Any]:
    """One (method, problem, seed) run as a JSON-ready record; a crash is recorded.
    ``proposal_file``: the trained proposal of ``ours+q``; ``options``: engine options of
    ``ours`` and ``ours+q`` (``--options``; both ignored by the other methods)."""
    record: dict[str, Any] = {"method": method, "problem": name, "seed": seed,
                              "budget": budget, "noise": noise, "n_points": N_POINTS}
    if method == "ours+q":
        record.update(proposal_file=proposal_file, proposal_train_seconds=None)
    start, cpu = time.perf_counter(), time.process_time()
    try:
        extra: dict[str, Any] = {"proposal_file": proposal_file} if method == "ours+q" else {}
        if options and method in ("ours", "ours+q"):
            extra["options"] = options
        record.update(RUNNERS[method](PROBLEMS[name], seed, budget, noise, **extra))
        record["error"] = None
    except Exception as err:  # a crashed run counts as not recovered, and says why
        record.update(recovered=False, error=f"{type(err).__name__}: {err}",
                      wall_time=time.perf_counter() - start)
    record["job_seconds"] = time.perf_counter() - start
    record["job_cpu_seconds"] = time.process_time() - cpu
    return _jsonable(record)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else str(v)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


def machine() -> dict[str, str]:
    import importlib.metadata as md

    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions = {}
    for pkg in ("ppl", "numpy", "torch", "pyro-ppl", "sympy", "pyoperon", "gplearn",
                "scikit-learn"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = "not installed"
    return {"cores (nproc)": str(cores), "CPU": model,
            "OS": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(),
            **versions,
            LOAD: f"{os.getloadavg()[0]:.2f}"}


def code_version() -> str:
    """The repository's HEAD commit, marked when ppl/ or inference/ differ from it."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, text=True,
                              capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "ppl", "inference"], cwd=root,
                               text=True, capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" (ppl/ or inference/ modified)" if dirty else "")


def proposals(args: argparse.Namespace, ex: ProcessPoolExecutor | None
              ) -> dict[Pair, dict[str, Any]]:
    """The proposal of each (grammar, inputs) of the problems run, when ``ours+q`` is among
    the methods: loaded from ``--proposal-dir``, or trained there first (distinct pairs in
    parallel on the pool ``ex``, each pair once)."""
    if "ours+q" not in args.methods:
        return {}
    pairs = list(dict.fromkeys(pair_of(p) for p in args.problems))
    options = (str(args.proposal_dir), args.proposal_hidden, args.proposal_time)
    if ex is None:
        found = {pair: obtain(pair, *options) for pair in pairs}
    else:
        futures = {pair: ex.submit(obtain, pair, *options) for pair in pairs}
        found = {pair: fut.result() for pair, fut in futures.items()}
    for info in found.values():
        how = (f"trained now: {info['steps']} steps in {info['seconds']:.0f} s"
               if info["trained_now"] else f"reused ({info['seconds']:.0f} s of training)")
        print(f"proposal {info['grammar']} {info['inputs']}: {info['file']}, {how}",
              flush=True)
    return found


def run(args: argparse.Namespace) -> dict[str, Any]:
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    jobs = [(m, p, s) for p in args.problems for s in seeds for m in args.methods]
    meta = {"command": "python -m benchmarks.nguyen " + " ".join(args.argv),
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(), "code": code_version(), "budget": args.budget,
            "seeds": args.seeds, "first_seed": args.first_seed,
            "noise": args.noise, "methods": list(args.methods), "problems": list(args.problems),
            "options": args.options,
            "jobs": args.jobs}
    out: dict[str, Any] = {"meta": meta, "records": []}
    start = time.perf_counter()
    found: dict[Pair, dict[str, Any]] = {}

    def job_args(method: str, name: str, seed: int) -> tuple[Any, ...]:
        file = found[pair_of(name)]["file"] if method == "ours+q" else None
        return method, name, seed, args.budget, args.noise, file, args.options

    def done(rec: dict[str, Any]) -> None:
        out["records"].append(rec)
        flag = "recovered" if rec.get("recovered") else "-"
        extra = f" p_true={rec['p_true']:.3f}" if "p_true" in rec else ""
        print(f"[{time.perf_counter() - start:7.1f} s] {rec['method']:<8} {rec['problem']:<10} "
              f"seed {rec['seed']}: {flag:<9} nrmse={rec.get('nrmse')}{extra} "
              f"{rec.get('best_program', rec.get('error'))}"[:220], flush=True)
        if args.out is not None:
            meta["wall_seconds"] = time.perf_counter() - start
            args.out.write_text(json.dumps(out, indent=1))

    if args.jobs <= 1:
        t0 = time.perf_counter()
        found = proposals(args, None)
        meta["proposals"] = _jsonable(list(found.values()))
        meta["proposal_wall_seconds"] = time.perf_counter() - t0
        for job in jobs:
            done(run_job(*job_args(*job)))
    else:
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn"),
                                 initializer=_worker_init) as ex:
            t0 = time.perf_counter()
            found = proposals(args, ex)
            meta["proposals"] = _jsonable(list(found.values()))
            meta["proposal_wall_seconds"] = time.perf_counter() - t0
            futures = [ex.submit(run_job, *job_args(*job)) for job in jobs]
            for fut in as_completed(futures):
                done(fut.result())
    meta["wall_seconds"] = time.perf_counter() - start
    key = {(m, p, s): i for i, (m, p, s) in enumerate(jobs)}
    out["records"].sort(key=lambda r: key[(r["method"], r["problem"], r["seed"])])
    if args.out is not None:
        args.out.write_text(json.dumps(out, indent=1))
    return out


# ---------------------------------------------------------------------- CLI
def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS),
                        choices=list(PROBLEMS), metavar="NAME",
                        help="problems to run (default: all Nguyen-1..12 and Constant-1..3)")
    parser.add_argument("--seeds", type=int, default=3, help="seed indices 0..S-1 (3)")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="the first seed index: runs seeds F..F+S-1, so a measurement can "
                        "be split across sessions and merged (0)")
    parser.add_argument("--budget", type=float, default=20.0,
                        help="wall-clock seconds per run, one core (20)")
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), choices=METHODS,
                        help="methods to run (default: " + " ".join(DEFAULT_METHODS) +
                        "; ours+q, our engine with a trained proposal, only when named)")
    parser.add_argument("--noise", type=float, default=0.0,
                        help="eps: y += eps*std(y)*N(0,1) (0, 0.01, 0.1)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs at a time, each on one core, in separate processes (1)")
    parser.add_argument("--proposal-dir", type=Path, default=Path("out/nguyen_q"),
                        help="ours+q: folder of the trained proposals, one per grammar and "
                        "number of inputs, reused when present (out/nguyen_q)")
    parser.add_argument("--proposal-time", type=float, default=120.0,
                        help="ours+q: training seconds per proposal, one core (120)")
    parser.add_argument("--proposal-hidden", type=int, default=64,
                        help="ours+q: width of the proposal network (64)")
    parser.add_argument("--options", type=json.loads, default={},
                        help="engine options of ours and ours+q as JSON, passed to infer "
                        "(e.g. '{\"structure_weights\": {...}}'; default: none)")
    parser.add_argument("--out", type=Path, help="JSON file for the records")
    parser.add_argument("--write", type=Path,
                        help="write the report section into this Markdown file")
    parser.add_argument("--report-from", type=Path, nargs="+", metavar="JSON",
                        help="do not run: build the report from these JSON files")
    parser.add_argument("--notes", type=Path, help="Markdown appended to the report section")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.first_seed < 0 or args.budget <= 0 or args.noise < 0 or args.jobs < 1:
        parser.error("--seeds and --jobs must be >= 1, --first-seed >= 0, --budget > 0, "
                     "--noise >= 0")
    if args.proposal_time <= 0 or args.proposal_hidden < 1:
        parser.error("--proposal-time must be > 0 and --proposal-hidden >= 1")
    args.argv = argv
    return args


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.report_from:
        runs = [json.loads(p.read_text()) for p in args.report_from]
    else:
        runs = [run(args)]
    section = report(runs, args.notes.read_text() if args.notes else "")
    if args.write is not None:
        write_section(args.write, section)
        print(f"Wrote {args.write} ({HEADING[3:]})")
    elif args.report_from:
        print(section)
    return runs[0] if not args.report_from else None


if __name__ == "__main__":
    main()
