"""B4: amortization pays. MCMC with and without a trained proposal q(f | x, y) on held-out
tasks of the arithmetic prior, and the latency of one amortized query.

Protocol: ``/work/shared/BENCHMARKS.md`` section B4; what is measured is written out in the
report this harness writes to ``docs/benchmarks.md`` (``benchmarks/amortized_b4_report.py``).

- Model: ``f ~ ProgramPrior("arith", inputs=["x"], max_depth=5)``,
  ``y_i ~ Normal(f(x_i), sigma)`` with the noise scale ``sigma`` known (a model argument),
  so the program is the only latent site.
- A task: a program drawn from the prior (seed stream disjoint from training; kept when its
  size is at least 3 and it is finite, not flat and bounded on its design), 20 points
  x ~ U[-2, 2] (sorted), sigma = 5% of the standard deviation of the clean outputs,
  y = f(x) + sigma · N(0, 1).
- Training, once: ``train_proposal`` on simulations whose design is drawn like a task's
  (x as above, sigma log-uniform on [0.01, 1]), one core, up to ``--train-time`` seconds.
- Per task: one MCMC chain without and one with the proposal, each for ``--time`` seconds
  (time to first reach the true structure, P(true structure) at the end), and the amortized
  importance-sampling query of 1,000 particles (top-1 structure, P(true structure), latency).

Run::

    python -m benchmarks.amortized_b4 --tasks 100 --jobs 2 --proposal out/b4_q.pt \\
        --write docs/benchmarks.md
    python -m benchmarks.amortized_b4 --report-from out/b4.json --write docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

import ppl
from benchmarks.amortized_b4_report import HEADING, report, write_section
from benchmarks.nguyen import code_version, machine
from inference import infer
from inference.amortized import Proposal, load_proposal, train_proposal
from inference.api import RunWarning
from ppl import dist

PRIOR = ppl.ProgramPrior("arith", inputs=["x"], max_depth=5)
"""The prior of the tasks' programs and of the model."""
N_POINTS = 20
X_RANGE = (-2.0, 2.0)
NOISE = 0.05
"""sigma of a task, relative to the standard deviation of its clean outputs."""
SIGMA_RANGE = (0.01, 1.0)
"""Training designs: sigma log-uniform on this range."""
TASK_STREAM = 4
"""Task k is drawn from ``default_rng([seed, TASK_STREAM, k])``; training draws use the
streams (seed, 0, step) and (seed, 1, 0) of ``train_proposal``."""
RUN_STREAM = 5
"""The inference seed of task k comes from ``SeedSequence([seed, RUN_STREAM, k])``."""
NUM_WARMUP = 20
"""Adaptive sweeps before the draws are kept (not recorded: a hit in them is seen late)."""
MAX_DRAWS = 10**7
"""num_samples of a chain: the time budget, not the count, ends the run."""
NUM_PARTICLES = 1000
IS_DRAWS = 1000
"""Draws resampled from the particles (one chain) by the amortized query."""
LATENCY_REPEATS = 3
BATCH_SIZE, VALID_SIZE, PATIENCE, EVAL_EVERY = 32, 256, 50, 20
"""Training: draws per step, validation draws, evaluations without improvement before an
early stop, steps between evaluations."""

T = TypeVar("T")


# ---------------------------------------------------------------------- the protocol
def model(x: Any, sigma: Any, y: Any = None) -> None:
    """y_i ~ Normal(f(x_i), sigma), f ~ PRIOR; sigma known."""
    f = ppl.sample("f", PRIOR)
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), sigma), obs=y)


def design(rng: np.random.Generator) -> tuple[tuple[np.ndarray, float], dict[str, Any]]:
    """A training design ``((x, sigma), {})``: x as a task's, sigma log-uniform on
    SIGMA_RANGE (the ``inputs=`` sampler of ``train_proposal``)."""
    x = np.sort(rng.uniform(*X_RANGE, N_POINTS))
    low, high = np.log(SIGMA_RANGE)
    return (x, float(np.exp(rng.uniform(low, high)))), {}


@dataclass(frozen=True)
class Task:
    """One held-out data set and the program that made it."""

    index: int
    law: ppl.Program
    """The true program."""
    x: np.ndarray
    sigma: float
    y: np.ndarray


def usable(law: ppl.Program, clean: np.ndarray, x: np.ndarray | None = None) -> bool:
    """The filter of examples/amortized.py (size >= 3, finite, range >= 0.5, |f| <= 50),
    and, given the design ``x``, no subtree of two or more nodes that is constant on it
    (``x/x``, ``x - x``, ``cos(c)``: a structure the data cannot identify, whose key no
    chain can be expected to match)."""
    ok = bool(law.size >= 3 and np.all(np.isfinite(clean)) and np.ptp(clean) >= 0.5
              and np.abs(clean).max() <= 50)
    return ok and (x is None or not constant_subtree(law, x))


def constant_subtree(law: ppl.Program, x: np.ndarray) -> bool:
    """Whether a subtree of ``law`` with two or more nodes is constant on ``x``."""
    ends = law.ends()
    for v in range(law.size):
        end = int(ends[v])
        if end - v < 2:
            continue
        sub = ppl.Program(law.grammar, law.prods[v:end], law.values[v:end], law.inputs)
        with np.errstate(all="ignore"):
            out = np.asarray(sub(x), dtype=float) * np.ones(len(x))
        if np.all(np.isfinite(out)) and np.ptp(out) < 1e-12:
            return True
    return False


def make_task(seed: int, index: int) -> Task:
    """Task ``index``: prior draws (with their designs) until one passes :func:`usable`."""
    rng = np.random.default_rng([seed, TASK_STREAM, index])
    while True:
        law = PRIOR.sample_program(rng)
        x = np.sort(rng.uniform(*X_RANGE, N_POINTS))
        with np.errstate(all="ignore"):
            clean = np.asarray(law(x), dtype=float) * np.ones(N_POINTS)
        if usable(law, clean, x):
            sigma = NOISE * float(np.std(clean))
            return Task(index, law, x, sigma, clean + sigma * rng.standard_normal(N_POINTS))


def run_seed(seed: int, index: int) -> int:
    """The inference seed of task ``index`` (the same for every method)."""
    return int(np.random.SeedSequence([seed, RUN_STREAM, index]).generate_state(1)[0])


# ---------------------------------------------------------------------- the proposal
def _reference_args() -> tuple[tuple[np.ndarray, float], dict[str, Any]]:
    """Model arguments to train and load the proposal with (any design of the right shape)."""
    return (np.linspace(*X_RANGE, N_POINTS), 0.1), {"y": np.zeros(N_POINTS)}


def obtain_proposal(path: Path, hidden: int, train_time: float, seed: int) -> dict[str, Any]:
    """Load the proposal at ``path``, or train one on one core and save it there; return
    what the report needs of it (training seconds and steps, validation losses)."""
    args, kwargs = _reference_args()
    trained_now = not path.exists()
    if trained_now:
        q = train_proposal(model, *args, **kwargs, inputs=design, hidden=hidden,
                           max_time=train_time, num_steps=10**7, seed=seed, progress=False,
                           batch_size=BATCH_SIZE, valid_size=VALID_SIZE, patience=PATIENCE,
                           eval_every=EVAL_EVERY)
        path.parent.mkdir(parents=True, exist_ok=True)
        q.save(path)
    else:
        q = load_proposal(path, model, *args, **kwargs)
    stopped = None  # unknown for a proposal trained by an earlier run
    if trained_now:
        stopped = "time budget" if q.seconds >= train_time else "early stop"
    return {"path": str(path), "trained_now": trained_now, "seconds": q.seconds,
            "steps": q.steps, "hidden": q.network.hidden, "seed": q.seed,
            "valid_loss_first": q.history[0].valid_loss,
            "valid_loss_best": min(e.valid_loss for e in q.history),
            "train_time_budget": train_time if trained_now else None, "stopped": stopped,
            "batch_size": BATCH_SIZE, "valid_size": VALID_SIZE, "patience": PATIENCE,
            "eval_every": EVAL_EVERY}


_LOADED: dict[str, Proposal] = {}
"""Proposals loaded by this process, by path (a worker loads each once)."""


def _proposal(path: str, task: Task) -> Proposal:
    if path not in _LOADED:
        _LOADED[path] = load_proposal(path, model, task.x, task.sigma, y=task.y)
    return _LOADED[path]


# ---------------------------------------------------------------------- measurements
def _timed(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _top(post: Any, law: ppl.Program) -> dict[str, Any]:
    """The most probable structure of a posterior's draws and P(true structure): the
    fraction of draws whose ``Program.key`` (equality up to commutativity and constant
    values) is the true program's."""
    table = post.programs("f", top=None, simplify=False, group="key")
    same = np.array([p.key == law.key for p in table["program"]], dtype=bool)
    return {"top_program": str(table["program"][0]),
            "top_probability": float(table["probability"][0]),
            "top_is_true": bool(same[0]), "p_true": float(table["probability"][same].sum()),
            "distinct_structures": len(table)}


def mcmc_arm(task: Task, proposal: Proposal | None, budget: float, seed: int
             ) -> dict[str, Any]:
    """One chain for ``budget`` seconds; when it first holds the true structure.

    The wall time of a kept draw is read off a linear clock: a first call with one sweep
    and no warmup (same seed, so the same initial state) times the set-up ``s`` (model
    tracing, initial state, one sweep); the timed run's sweeps then share the rest of its
    wall time ``W`` evenly, so sweep ``k`` (warmup included, from 0) ends at
    ``s + k (W − s) / (K − 1)`` of ``K`` sweeps.
    """
    # search_share=0: B4 times the kept draws of one chain from its start; a timed run's
    # search phase would keep nothing for half the budget (docs/decisions.md)
    options: dict[str, Any] = {"method": "mcmc", "num_chains": 1, "seed": seed,
                               "progress": False, "search_share": 0}
    if proposal is not None:
        options["proposal"] = proposal
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RunWarning)  # max_time cuts the run: expected
        _, setup = _timed(lambda: infer(model, task.x, task.sigma, y=task.y, num_warmup=0,
                                        num_samples=1, **options))
        post, wall = _timed(lambda: infer(model, task.x, task.sigma, y=task.y,
                                          num_warmup=NUM_WARMUP, num_samples=MAX_DRAWS,
                                          max_time=budget, **options))
    draws = post.samples["f"][0]
    hits = np.array([p.key == task.law.key for p in draws], dtype=bool)
    sweeps = NUM_WARMUP + len(draws)
    per_sweep = (wall - setup) / max(sweeps - 1, 1)
    first = int(np.argmax(hits)) if hits.any() else None
    return {"first_hit_seconds": None if first is None
            else setup + (NUM_WARMUP + first) * per_sweep,
            "first_hit_draw": first, "num_draws": len(draws), "sweeps": sweeps,
            "seconds": wall, "chain_seconds": float(post.attrs["seconds"][0]),
            "setup_seconds": setup, "sweep_seconds": per_sweep, **_top(post, task.law),
            "p_true_draws": float(hits.mean())}


def amortized_arm(task: Task, proposal: Proposal, seed: int) -> dict[str, Any]:
    """The 1,000-particle amortized query, ``LATENCY_REPEATS`` times (same seed): its
    answer, its wall time, and the network's part of it (context, 1,000 draws)."""
    seconds = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RunWarning)
        for _ in range(LATENCY_REPEATS):
            post, wall = _timed(lambda: infer(
                model, task.x, task.sigma, y=task.y, method="amortized", proposal=proposal,
                num_particles=NUM_PARTICLES, num_chains=1, num_samples=IS_DRAWS, seed=seed,
                progress=False))
            seconds.append(wall)
    contexts = [_timed(lambda: proposal.context(task.x, task.y))[1]
                for _ in range(LATENCY_REPEATS)]
    ctx = proposal.context(task.x, task.y)
    rng = np.random.default_rng(seed)
    _, sampling = _timed(lambda: [proposal.sample(rng, ctx) for _ in range(NUM_PARTICLES)])
    attrs = post.attrs
    return {**_top(post, task.law), "latency_seconds": statistics.median(seconds),
            "seconds": seconds, "context_seconds": statistics.median(contexts),
            "sampling_seconds": sampling, "ess": attrs["ess"], "khat": attrs["khat"],
            "log_evidence": attrs["log_evidence"], "fast": attrs["fast"],
            "warnings": sorted({str(w.message)[:120] for w in caught})}


def run_task(index: int, seed: int, budget: float, proposal_path: str) -> dict[str, Any]:
    """Every measurement of task ``index`` as a JSON-ready record; a crash is recorded."""
    task = make_task(seed, index)
    record: dict[str, Any] = {
        "task": index, "law": str(task.law), "size": task.law.size,
        "depth": task.law.depth, "sigma": task.sigma, "budget": budget,
        "x": task.x.tolist(), "y": task.y.tolist()}
    start = time.perf_counter()
    try:
        q = _proposal(proposal_path, task)
        rs = run_seed(seed, index)
        record["mcmc"] = mcmc_arm(task, None, budget, rs)
        record["mcmc_proposal"] = mcmc_arm(task, q, budget, rs)
        record["amortized"] = amortized_arm(task, q, rs)
        record["error"] = None
    except Exception as err:  # a crashed task is reported, and says why
        record["error"] = f"{type(err).__name__}: {err}"
    record["job_seconds"] = time.perf_counter() - start
    out: dict[str, Any] = jsonable(record)
    return out


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars as Python numbers and non-finite floats as strings."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else str(float(value))
    return value


# ---------------------------------------------------------------------- driver
def _worker_init() -> None:
    torch.set_num_threads(1)


def _progress(rec: dict[str, Any], start: float) -> None:
    def hit(arm: str) -> str:
        t = rec.get(arm, {}).get("first_hit_seconds")
        return "-" if t is None else f"{t:.2f}s"

    amortized = rec.get("amortized", {})
    print(f"[{time.perf_counter() - start:7.1f} s] task {rec['task']:3d} "
          f"{rec['law'][:50]:<50} without {hit('mcmc'):>7} with {hit('mcmc_proposal'):>7} "
          f"IS top-1 {amortized.get('top_is_true', '-')!s:<5} "
          f"{1e3 * amortized.get('latency_seconds', math.nan):5.1f} ms "
          f"{rec['error'] or ''}"[:200], flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train or load the proposal, measure every task, write the JSON as records come."""
    meta: dict[str, Any] = {
        "command": "python -m benchmarks.amortized_b4 " + " ".join(args.argv),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(), "code": code_version(), "tasks": args.tasks,
        "budget": args.time, "seed": args.seed, "jobs": args.jobs,
        "settings": {"prior": repr(PRIOR), "n_points": N_POINTS, "x_range": X_RANGE,
                     "noise": NOISE, "sigma_range": SIGMA_RANGE, "num_warmup": NUM_WARMUP,
                     "num_particles": NUM_PARTICLES, "is_draws": IS_DRAWS,
                     "latency_repeats": LATENCY_REPEATS}}
    out: dict[str, Any] = {"meta": meta, "records": []}
    start = time.perf_counter()

    def save() -> None:
        meta["wall_seconds"] = time.perf_counter() - start
        if args.out is not None:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(jsonable(out), indent=1))

    def done(rec: dict[str, Any]) -> None:
        out["records"].append(rec)
        _progress(rec, start)
        save()

    with tempfile.TemporaryDirectory() as tmp:
        path = args.proposal or Path(tmp) / "q.pt"
        meta["proposal"] = obtain_proposal(path, args.hidden, args.train_time, args.seed)
        print(f"proposal: {meta['proposal']['steps']} steps, "
              f"{meta['proposal']['seconds']:.1f} s of training "
              f"({'trained now' if meta['proposal']['trained_now'] else 'loaded'})",
              flush=True)
        jobs = [(k, args.seed, args.time, str(path)) for k in range(args.tasks)]
        if args.jobs <= 1:
            for job in jobs:
                done(run_task(*job))
        else:
            with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn"),
                                     initializer=_worker_init) as ex:
                for fut in as_completed([ex.submit(run_task, *job) for job in jobs]):
                    done(fut.result())
    out["records"].sort(key=lambda r: r["task"])
    save()
    return out


# ---------------------------------------------------------------------- CLI
def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100, help="held-out tasks (100)")
    parser.add_argument("--time", type=float, default=20.0,
                        help="seconds per MCMC chain, one core (20)")
    parser.add_argument("--train-time", type=float, default=300.0,
                        help="training budget in seconds, one core (300)")
    parser.add_argument("--hidden", type=int, default=64, help="width of the network (64)")
    parser.add_argument("--proposal", type=Path,
                        help="proposal file: loaded when it exists, else trained and saved "
                             "there (default: trained into a temporary file)")
    parser.add_argument("--jobs", type=int, default=2,
                        help="tasks at a time, each in its own process on one core (2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of training and tasks (0)")
    parser.add_argument("--out", type=Path, default=Path("out/b4.json"),
                        help="JSON file of the records (out/b4.json)")
    parser.add_argument("--write", type=Path,
                        help="write the report section into this Markdown file")
    parser.add_argument("--report-from", type=Path, metavar="JSON",
                        help="do not run: build the report from this JSON file")
    args = parser.parse_args(argv)
    if args.tasks < 1 or args.jobs < 1 or args.time <= 0 or args.train_time <= 0 \
            or args.hidden < 1 or args.seed < 0:
        parser.error("--tasks, --jobs and --hidden must be >= 1, --time and --train-time "
                     "> 0, --seed >= 0")
    args.argv = argv
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run (or read) B4, print the report and write it when asked; return the run."""
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.report_from is not None:
        out: dict[str, Any] = json.loads(args.report_from.read_text())
    else:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # training and --jobs 1 on one core, as the workers
        try:
            out = run(args)
        finally:
            torch.set_num_threads(threads)
    section = report(out)
    print(section)
    if args.write is not None:
        write_section(args.write, section)
        print(f"Wrote {args.write} ({HEADING[3:]})")
    return out


if __name__ == "__main__":
    main()
