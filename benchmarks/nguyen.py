"""B1: program induction on the Nguyen suite, our engine against pyoperon and gplearn.

Protocol: ``/work/shared/BENCHMARKS.md`` section B1 (what is measured is written out in the
report this harness writes to ``docs/benchmarks.md``). Per problem and seed index the data
are 20 points from a fixed seed; every method gets the same data, the same wall-clock budget
on one core, and its reported best model is scored by the same recovery check against the
true function on 1000 fresh points.

Methods:

- ``ours``: ``f ~ ProgramPrior(koza | arith, max_depth=6)``, noise scale
  ``s0 + sigma`` with ``sigma ~ HalfNormal(std(y))`` and a fixed floor
  ``s0 = 1e-6 · std(y)``; ``infer(method="mcmc")`` on one chain until ``max_time``.
  Reported best program: the draw with the highest log joint (``stats["lp"]``).
- ``pyoperon``: Nguyen (no constants) through pyoperon's lower-level bindings, variable
  weights fixed at 1, no coefficient optimisation, no linear scaling, MSE objective;
  Constant-* through its scikit-learn wrapper as is; its time limit is ``max_time``.
- ``gplearn``: ``SymbolicRegressor`` with the Koza set (a protected ``exp`` added with
  ``make_function``), ``const_range=None`` on Nguyen, (−5, 5) on Constant-*; one generation
  per ``fit`` with ``warm_start`` until the next generation would pass the budget.

Run::

    python -m benchmarks.nguyen --seeds 3 --budget 20 --jobs 2 --out nguyen.json
    python -m benchmarks.nguyen --report-from nguyen.json --write docs/benchmarks.md

This module runs the jobs and holds the command line; the problems, the shared settings and
the recovery check are in ``benchmarks/nguyen_protocol.py``, the three methods in
``benchmarks/nguyen_methods.py`` and the report in ``benchmarks/nguyen_report.py``.
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
from benchmarks.nguyen_protocol import LOAD, METHODS, N_POINTS, PROBLEMS
from benchmarks.nguyen_report import HEADING, report, write_section


# ---------------------------------------------------------------------- driver
def run_job(method: str, name: str, seed: int, budget: float, noise: float
            ) -> dict[str, Any]:
    """One (method, problem, seed) run as a JSON-ready record; a crash is recorded."""
    record: dict[str, Any] = {"method": method, "problem": name, "seed": seed,
                              "budget": budget, "noise": noise, "n_points": N_POINTS}
    start, cpu = time.perf_counter(), time.process_time()
    try:
        record.update(RUNNERS[method](PROBLEMS[name], seed, budget, noise))
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


def run(args: argparse.Namespace) -> dict[str, Any]:
    jobs = [(m, p, s) for p in args.problems for s in range(args.seeds) for m in args.methods]
    meta = {"command": "python -m benchmarks.nguyen " + " ".join(args.argv),
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(), "code": code_version(), "budget": args.budget,
            "seeds": args.seeds,
            "noise": args.noise, "methods": list(args.methods), "problems": list(args.problems),
            "jobs": args.jobs}
    out: dict[str, Any] = {"meta": meta, "records": []}
    start = time.perf_counter()

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
        for job in jobs:
            done(run_job(*job, args.budget, args.noise))
    else:
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn"),
                                 initializer=_worker_init) as ex:
            futures = [ex.submit(run_job, *job, args.budget, args.noise) for job in jobs]
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
    parser.add_argument("--budget", type=float, default=20.0,
                        help="wall-clock seconds per run, one core (20)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--noise", type=float, default=0.0,
                        help="eps: y += eps*std(y)*N(0,1) (0, 0.01, 0.1)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs at a time, each on one core, in separate processes (1)")
    parser.add_argument("--out", type=Path, help="JSON file for the records")
    parser.add_argument("--write", type=Path,
                        help="write the report section into this Markdown file")
    parser.add_argument("--report-from", type=Path, nargs="+", metavar="JSON",
                        help="do not run: build the report from these JSON files")
    parser.add_argument("--notes", type=Path, help="Markdown appended to the report section")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.budget <= 0 or args.noise < 0 or args.jobs < 1:
        parser.error("--seeds and --jobs must be >= 1, --budget > 0, --noise >= 0")
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
