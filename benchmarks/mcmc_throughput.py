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
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime
import importlib
import io
import json
import os
import pstats
import re
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import ppl
from benchmarks._report import replace_sections
from benchmarks.prior_costs import machine
from inference import infer
from inference.arviz import az
from inference.mcmc import collapsed
from inference.mcmc.cache import LRU
from inference.mcmc.gibbs import CACHE_NAMES, Gibbs
from inference.mcmc.laplace import ConstantFitter
from inference.target import Target
from ppl import dist

ROOT = Path(__file__).resolve().parent.parent
HEADING = "## B2. Program MCMC throughput"
PRIOR = ppl.ProgramPrior("arith", inputs=["x"], max_depth=6)
GOAL = 20_000
"""Proposals per second per core asked for (BENCHMARKS.md B2, DESIGN.md §5)."""
STRUCTURE = ("_structure", "_refit_structure")
CONSTANT = ("_constant_rw", "_laplace_constants", "_mala")


def model(x: Any, y: Any = None) -> None:
    """y ~ Normal(f(x), sigma), f ~ arith prior (depth <= 6), sigma ~ HalfNormal(1)."""
    f = ppl.sample("f", PRIOR)
    sigma = ppl.sample("sigma", dist.HalfNormal(1.0))
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), sigma), obs=y)


def example() -> Any:
    """The main example as a module (``examples/`` on ``sys.path``, so that chain processes
    can import its model too)."""
    path = str(ROOT / "examples")
    if path not in sys.path:
        sys.path.insert(0, path)
    return importlib.import_module("symbolic_regression")


# ---------------------------------------------------------------------- 1. throughput
@dataclass(frozen=True)
class Variant:
    """One configuration of the kernel, measured side by side with the others."""

    name: str
    refit: float = 0.5
    incremental: bool = True
    fast: bool = True
    cache: bool = True
    eval_cache: bool = True
    collapsed: bool = False


VARIANTS = (
    Variant("full (default kernel)"),
    Variant("no Laplace refits (`refit=0`)", refit=0.0),
    Variant("no caches (`cache_size=0`)", cache=False),
    Variant("no log L or output caches (the others on)", eval_cache=False),
    Variant("collapsed (`collapsed=True`, an approximation)", collapsed=True),
    Variant("no incremental likelihood", incremental=False),
    Variant("no fast path (Pyro traces)", incremental=False, fast=False),
)


@dataclass(frozen=True)
class Throughput:
    """What one timed stretch of sweeps did."""

    variant: Variant
    seconds: float
    sweeps: int
    structure: int  # structure proposals (program_moves per sweep)
    constant: int  # constant proposals (random walk, Laplace, MALA)
    structure_accepted: int
    solves: int  # Laplace least-squares solves (cache misses)
    mean_size: float  # mean program size over the sweeps
    cache: dict[str, tuple[int, int]]  # (hits, misses) per cache in the timed stretch

    @property
    def proposals(self) -> int:
        return self.structure + self.constant

    @property
    def rate(self) -> float:
        return self.proposals / self.seconds


def count_moves(kernel: Gibbs) -> dict[str, list[int]]:
    """Wrap the kernel's update methods (on the instance) to count calls and acceptances."""
    counts: dict[str, list[int]] = {}
    for name in (*STRUCTURE, *CONSTANT):
        tally = counts[name] = [0, 0]
        method = getattr(kernel, name)

        def wrapped(*args: Any, _method: Any = method, _tally: list[int] = tally,
                    **kwargs: Any) -> Any:
            out = _method(*args, **kwargs)
            _tally[0] += 1
            _tally[1] += bool(out[2])
            return out

        setattr(kernel, name, wrapped)
    return counts


@contextlib.contextmanager
def count_solves() -> Iterator[list[int]]:
    """Count Laplace least-squares solves (new tree shapes) while the block runs: the
    misses of the fitters' solve caches, each of which runs one solve."""
    least_squares = ConstantFitter.least_squares
    tally = [0]

    def wrapped(self: ConstantFitter, *args: Any) -> Any:
        misses = self.solves.stats[1]
        out = least_squares(self, *args)
        tally[0] += self.solves.stats[1] - misses
        return out

    ConstantFitter.least_squares = wrapped  # type: ignore[method-assign]
    try:
        yield tally
    finally:
        ConstantFitter.least_squares = least_squares  # type: ignore[method-assign]


def make_kernel(variant: Variant, data: tuple[np.ndarray, np.ndarray], seed: int,
                warmup: int, program_moves: int) -> tuple[Gibbs, Any, np.random.Generator]:
    """A kernel of ``variant`` after ``init`` and ``warmup`` adaptive sweeps."""
    x, y = data
    target = Target(model, (x,), {"y": y}, seed=seed)
    kernel = Gibbs(target, None, 100, program_moves, refit=variant.refit,
                   cache_size=4096 if variant.cache else 0, collapsed=variant.collapsed)
    rng = np.random.default_rng(seed)
    state = kernel.init(rng)
    if not variant.fast:
        target.fast = False  # every proposal is now a Pyro trace
    if not variant.incremental:
        kernel.view = lambda b, s: None  # type: ignore[method-assign]
    if not variant.eval_cache:
        kernel.view = without_eval_caches(kernel.view)  # type: ignore[method-assign]
    for _ in range(warmup):
        state, _ = kernel.step(rng, state, adapt=True)
    return kernel, state, rng


def without_eval_caches(view_of: Any) -> Any:
    """``Gibbs.view`` whose views keep no log L and no outputs (same chain, no memo)."""
    def wrapped(b: Any, state: Any) -> Any:
        view = view_of(b, state)
        if view is not None:
            view.lik, view.outputs = LRU(0), None
        return view
    return wrapped


def throughput(variant: Variant, data: tuple[np.ndarray, np.ndarray], seed: int,
               warmup: int, sweeps: int, program_moves: int) -> Throughput:
    """Time ``sweeps`` non-adaptive sweeps after ``warmup`` adaptive ones."""
    kernel, state, rng = make_kernel(variant, data, seed, warmup, program_moves)
    counts = count_moves(kernel)
    before = {k: tuple(v) for k, v in kernel.cache_stats.items()}
    sizes = 0
    with count_solves() as solves, count_collapsed() as folded:
        start = time.process_time()  # CPU seconds: other load on the machine does not count
        for _ in range(sweeps):
            state, _ = kernel.step(rng, state)
            sizes += state.values["f"].size
        seconds = time.process_time() - start
    cache = {k: (kernel.cache_stats[k][0] - before[k][0], kernel.cache_stats[k][1]
                 - before[k][1]) for k in CACHE_NAMES}
    return Throughput(variant, seconds, sweeps,
                      sum(counts[k][0] for k in STRUCTURE) + folded[0],
                      sum(counts[k][0] for k in CONSTANT),
                      sum(counts[k][1] for k in STRUCTURE) + folded[1], solves[0],
                      sizes / sweeps, cache)


@contextlib.contextmanager
def count_collapsed() -> Iterator[list[int]]:
    """Count the collapsed mode's structure moves and their acceptances."""
    move = collapsed.structure_move
    tally = [0, 0]

    def wrapped(*args: Any) -> Any:
        out = move(*args)
        tally[0] += 1
        tally[1] += out.program is not None
        return out

    collapsed.structure_move = wrapped  # type: ignore[assignment]
    try:
        yield tally
    finally:
        collapsed.structure_move = move  # type: ignore[assignment]


# ---------------------------------------------------------------------- 2. ESS per second
@dataclass(frozen=True)
class EssRun:
    """ESS per second of one ``infer`` run."""

    fast: bool
    seed: int
    seconds: float
    ess_lp: float  # arviz bulk ESS over both chains
    ess_size: float
    chain_ess_lp: float  # sum over chains of each chain's own bulk ESS
    chain_ess_size: float


@contextlib.contextmanager
def fast_paths(enabled: bool) -> Iterator[None]:
    """With ``enabled=False``, ``Target.check_fast`` refuses: every score is a Pyro trace."""
    check = Target.check_fast

    def refuse(self: Target, states: Any) -> bool:
        self.fast = False
        return False

    if not enabled:
        Target.check_fast = refuse  # type: ignore[method-assign]
    try:
        yield
    finally:
        Target.check_fast = check  # type: ignore[method-assign]


def ess_run(data: tuple[np.ndarray, np.ndarray], seed: int, draws: int, fast: bool
            ) -> EssRun:
    x, y = data
    with fast_paths(fast):
        start = time.perf_counter()
        post = infer(model, x, y=y, method="mcmc", num_samples=draws, num_warmup=draws,
                     num_chains=2, chain_method="sequential", seed=seed, progress=False)
        seconds = time.perf_counter() - start
    lp = np.asarray(post.stats["lp"], dtype=float)
    size = np.asarray(post.to_arviz().posterior["f_size"].values, dtype=float)
    with warnings.catch_warnings():  # a chain stuck on one size makes ESS 0/0
        warnings.simplefilter("ignore", RuntimeWarning)
        pooled = [float(az.ess(v)) for v in (lp, size)]
        within = [float(np.nansum([az.ess(v[c:c + 1]) for c in range(len(v))]))
                  for v in (lp, size)]
    return EssRun(fast, seed, seconds, *pooled, *within)


# ---------------------------------------------------------------------- 3. the example
@dataclass(frozen=True)
class ExampleRun:
    """One run of the main example's model: settings, wall time, P(true law)."""

    draws: int  # num_warmup = num_samples
    seed: int
    seconds: float
    p_true: float
    refit: bool  # the default kernel (True) or one without Laplace refits
    collapsed: bool = False  # the collapsed mode (an approximation), chains in processes


def example_default(out: Path) -> tuple[float, str]:
    """Run ``examples/symbolic_regression.py`` as a user does; (wall seconds, its output)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))  # this tree's code
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "symbolic_regression.py"),
                           "--out", str(out)], cwd=ROOT, env=env, capture_output=True,
                          text=True, check=True)
    return time.perf_counter() - start, done.stdout


@contextlib.contextmanager
def no_refits() -> Iterator[None]:
    """Every Gibbs kernel built in this process gets ``refit=0`` (no Laplace proposals)."""
    init = Gibbs.__init__

    def patched(self: Gibbs, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **{**kwargs, "refit": 0.0})

    Gibbs.__init__ = patched  # type: ignore[method-assign]
    try:
        yield
    finally:
        Gibbs.__init__ = init  # type: ignore[method-assign]


def example_run(draws: int, seed: int, refit: bool = True, folded: bool = False
                ) -> ExampleRun:
    """The example's model and data, 4 chains, ``draws`` warmup and samples each: in
    processes with the default kernel (or the collapsed mode), or in sequence in this
    process without refits."""
    sr = example()
    t, y = sr.make_data()
    start = time.perf_counter()
    with contextlib.nullcontext() if refit else no_refits():
        post = infer(sr.model, t, y=y, method="mcmc", seed=seed, num_chains=4,
                     num_warmup=draws, num_samples=draws, progress=False,
                     chain_method="parallel" if refit else "sequential", collapsed=folded)
    seconds = time.perf_counter() - start
    grid = np.linspace(0.0, 6.0, 61)
    hits = np.vectorize(lambda p: sr.is_true_law(p, grid))(post.samples["f"])
    return ExampleRun(draws, seed, seconds, float(hits.mean()), refit, folded)


# ---------------------------------------------------------------------- 4. profile
@dataclass(frozen=True)
class Profile:
    """cProfile of ``kernel.step`` of one kernel in the steady state."""

    variant: Variant
    excerpt: str
    seconds: float
    sweeps: int
    parts: dict[str, float]  # fraction of step's cumulative time per update
    across: dict[str, float]  # fraction of step's cumulative time per cross-cutting cost
    in_solves: float  # fraction of the numpy evaluation time spent inside the solves


PARTS = {
    "structure moves with a Laplace refit (`_refit_structure`)": ("gibbs.py", "_refit_structure"),
    "structure moves, constants kept or drawn from the prior (`_structure`)":
        ("gibbs.py", "_structure"),
    "Laplace independence moves on the constants (`_laplace_constants`)":
        ("gibbs.py", "_laplace_constants"),
    "constant random walk (`_constant_rw`)": ("gibbs.py", "_constant_rw"),
    "MALA on the constants (`_mala`)": ("gibbs.py", "_mala"),
    "sigma's random walk, the whole model scored (`_continuous`)": ("gibbs.py", "_continuous"),
    "rebuilding the incremental likelihood after sigma moved (`view`)": ("gibbs.py", "view"),
}
"""The updates of one sweep (they partition ``Gibbs.step`` up to its own loop overhead)."""
ACROSS = {
    "Levenberg–Marquardt solves for shapes not yet in the cache (`ConstantFitter._solve`)":
        ("laplace.py", "_solve"),
    "Laplace proposal densities and draws for cached shapes (`ConstantFitter.fit` minus "
    "solves)": ("laplace.py", "fit"),
    "numpy program evaluations (`Program.evaluate_numpy`, inside the solves too)":
        ("program.py", "evaluate_numpy"),
    "the structure moves' own code (`moves.py`)": ("moves.py", "*"),
    "prior log densities (`ProgramPrior.log_density`)": ("prior.py", "log_density"),
    "torch: the model run under the scorer (`Target._score`)": ("target.py", "_score"),
}
"""Costs that cut across the updates."""


def shares(stats: pstats.Stats) -> tuple[dict[str, float], dict[str, float], float]:
    """Cumulative time of each part of ``PARTS`` and ``ACROSS`` over that of ``Gibbs.step``,
    and the fraction of the time in ``ProgramLikelihood.locations`` called by the solves."""
    table: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]

    def cum(file: str, name: str) -> float:
        if name == "*":  # every entry into the file from outside it
            return sum(t for (f, _, _), v in table.items() if f == file
                       for (caller, _, _), (_, _, _, t) in v[4].items() if caller != file)
        return sum(v[3] for (f, _, fn), v in table.items() if f == file and fn == name)

    total = cum("gibbs.py", "step")
    parts = {label: cum(*where) / total for label, where in PARTS.items()}
    across = {label: cum(*where) / total for label, where in ACROSS.items()}
    solve, fit = list(ACROSS)[:2]
    across[fit] -= across[solve]
    locations = [v for (f, _, fn), v in table.items()
                 if f == "fastlik.py" and fn in ("locations", "locations_batch")]
    in_solves = sum(t for v in locations for (_, _, caller), (_, _, _, t) in v[4].items()
                    if caller in ("_residuals", "_residuals_batch"))
    return parts, across, in_solves / max(sum(v[3] for v in locations), 1e-12)


def profile_step(variant: Variant, data: tuple[np.ndarray, np.ndarray], seed: int,
                 warmup: int, sweeps: int, program_moves: int, top: int) -> Profile:
    kernel, state, rng = make_kernel(variant, data, seed, warmup, program_moves)
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    for _ in range(sweeps):
        state, _ = kernel.step(rng, state)
    profiler.disable()
    seconds = time.perf_counter() - start
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime")
    stats.print_stats(top)
    lines = out.getvalue().splitlines()
    head = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
    excerpt = [line for line in lines if "function calls" in line]
    excerpt += [""] + [line.rstrip() for line in lines[head:] if line.strip()]
    return Profile(variant, "\n".join(excerpt), seconds, sweeps, *shares(stats))


# ---------------------------------------------------------------------- report
def fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def median(values: list[float]) -> float:
    return statistics.median(values)


def throughput_table(runs: dict[Variant, list[Throughput]]) -> list[str]:
    base = median([r.rate for r in runs[VARIANTS[-1]]])
    rows = ["| kernel | program proposals/s (median) | min – max | µs per proposal | "
            "structure / constant moves per sweep | structure moves accepted | Laplace solves "
            "per 100 sweeps | mean program size | × Pyro traces |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for variant, rs in runs.items():
        rate = median([r.rate for r in rs])
        per_sweep = median([r.constant / r.sweeps for r in rs])
        rows.append(
            f"| {variant.name} | {fmt(rate)} | {fmt(min(r.rate for r in rs))} – "
            f"{fmt(max(r.rate for r in rs))} | {1e6 / rate:.0f} | "
            f"{rs[0].structure // rs[0].sweeps} / {per_sweep:.1f} | "
            f"{median([r.structure_accepted / r.structure for r in rs]):.1%} | "
            f"{median([100 * r.solves / r.sweeps for r in rs]):.1f} | "
            f"{median([r.mean_size for r in rs]):.1f} | {rate / base:.2f} |")
    return rows


def ess_table(runs: list[EssRun]) -> list[str]:
    """Per seed and median: ESS pooled over the chains, and per chain (summed)."""
    rows = ["| scoring | seed | wall time (s) | ESS of lp: pooled (per chain) | ESS/s of lp | "
            "ESS of f_size: pooled (per chain) | ESS/s of f_size |",
            "|---|---:|---:|---:|---:|---:|---:|"]

    def cells(rs: list[EssRun]) -> str:
        out = [f"{median([r.seconds for r in rs]):.1f}"]
        for pooled, within in (("ess_lp", "chain_ess_lp"), ("ess_size", "chain_ess_size")):
            a, b = ([getattr(r, k) for r in rs] for k in (pooled, within))
            per_s = [[v / r.seconds for v, r in zip(x, rs, strict=True)] for x in (a, b)]
            out += [f"{median(a):.0f} ({median(b):.0f})",
                    f"{median(per_s[0]):.2f} ({median(per_s[1]):.2f})"]
        return " | ".join(out)

    for fast in (True, False):
        rs = [r for r in runs if r.fast is fast]
        name = "fast paths (default)" if fast else "Pyro traces (fast paths refused)"
        rows += [f"| {name} | {r.seed} | {cells([r])} |" for r in rs]
        rows.append(f"| {name} | **median** | {cells(rs)} |")
    return rows


def example_table(runs: list[ExampleRun]) -> tuple[list[str], int | None]:
    """The settings table and the smallest setting whose median P(true law) >= 0.5 with
    the default kernel."""
    rows = ["| kernel | num_warmup = num_samples | wall time (s, median) | P(true law) per "
            "seed | median P(true law) |", "|---|---:|---:|---|---:|"]
    first = None
    kinds = {(True, False): "default, chains in processes",
             (False, False): "no Laplace refits, chains in sequence",
             (True, True): "collapsed (an approximation), chains in processes"}
    for (refit, folded), name in kinds.items():
        for draws in sorted({r.draws for r in runs if (r.refit, r.collapsed) == (refit, folded)}):
            rs = [r for r in runs if r.draws == draws and (r.refit, r.collapsed)
                  == (refit, folded)]
            p = median([r.p_true for r in rs])
            rows.append(f"| {name} | {draws} | {median([r.seconds for r in rs]):.1f} | "
                        f"{', '.join(f'{r.p_true:.3f}' for r in rs)} | {p:.3f} |")
            if refit and not folded and first is None and p >= 0.5:
                first = draws
    return rows, first


def refit_text(runs: list[ExampleRun]) -> list[str]:
    """The default kernel against the one without refits, at equal settings."""
    out = []

    def p_of(draws: int, refit: bool, folded: bool) -> float | None:
        rs = [r.p_true for r in runs if r.draws == draws and r.refit is refit
              and r.collapsed is folded]
        return median(rs) if rs else None

    for draws in sorted({r.draws for r in runs}):
        default, bare, folded = (p_of(draws, True, False), p_of(draws, False, False),
                                 p_of(draws, True, True))
        if default is not None and bare is not None:
            out.append(f"At {draws} + {draws} draws the kernel without Laplace refits puts a "
                       f"median {bare:.3f} on the true law against {default:.3f} with them: "
                       "the refits cost proposals per second (above) and buy the law.")
        if default is not None and folded is not None:
            out.append(f"At {draws} + {draws} draws the collapsed mode puts a median "
                       f"{folded:.3f} on the true law against {default:.3f} for the exact "
                       "kernel (its probabilities are those of the Laplace evidence: an "
                       "approximation).")
    return [" ".join(out)] if out else []


def excerpt_of(output: str) -> str:
    """The lines of the example's output a reader needs (plan, P(true law), R-hat)."""
    keep = ("Gibbs:", "P(true law", "N0 given", "rate given", "sigma:", "R-hat:")
    return "\n".join(line for line in output.splitlines() if line.startswith(keep))


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


@dataclass(frozen=True)
class Results:
    """Everything measured, for the report."""

    args: argparse.Namespace
    host: dict[str, str]
    commit: str
    when: str
    throughput: dict[Variant, list[Throughput]]
    ess: list[EssRun]
    default_seconds: float
    default_output: str
    examples: list[ExampleRun]
    profiles: tuple[Profile, Profile]  # the default kernel, and without refits
    baseline: Baseline | None = None


def p_true_of(output: str) -> float:
    found = re.search(r"P\(true law[^=]*= ([0-9.]+)", output)
    return float(found.group(1)) if found else float("nan")


def report(res: Results) -> str:
    a = res.args
    ex_rows, first = example_table(res.examples)
    reached = "no setting tried reached a median P(true law) of 0.5"
    if first is not None:
        seconds = median([r.seconds for r in res.examples if r.draws == first and r.refit
                          and not r.collapsed])
        reached = (f"the smallest setting tried whose median P(true law) reaches 0.5 is "
                   f"**{first} warmup + {first} samples per chain: {seconds:.1f} s wall "
                   "time** (median over seeds, process start-up included)")
    lines = [
        HEADING, "",
        "Proposals per second per core of program MCMC on the `arith` grammar (inputs "
        f"`[\"x\"]`, `max_depth={PRIOR.max_depth}`) and the 20-point radioactive-decay data "
        "of `examples/symbolic_regression.py` (y = 2·exp(−0.8x) + noise 0.05, x in [0, 3]), "
        "model `y ~ Normal(f(x), sigma)`, `sigma ~ HalfNormal(1)`; the full move set "
        "(regenerate / insert–delete / relabel with exact Hastings ratios, half of them "
        "refitting constants by Laplace; constant random walk or Laplace independence move "
        "after each; one MALA move per sweep; a random walk on sigma). The kernel runs "
        "directly (`Target`, `Gibbs`, `init`, `step`) in one process with one torch thread, "
        f"`program_moves={a.program_moves}`: per seed, init, {a.warmup} adaptive sweeps, "
        f"then {a.sweeps} timed sweeps, timed in CPU seconds of this process "
        "(`time.process_time`: other load on the shared machine does not count; with one "
        "torch thread the process runs on one core). A program proposal is a structure move "
        "or a constant move (sigma's moves are not counted). The kernels run side by side "
        f"on the same seeds; figures are medians over {a.repeats} seeds.", "",
        "### Proposals per second per core", "",
        *throughput_table(res.throughput), "",
        *throughput_text(res), "",
        *baseline_table(res),
        "Hit rates of the default kernel's caches in the timed stretches (all seeds; "
        "bounded LRU caches of 4,096 entries each, `inference.mcmc.cache`):", "",
        *cache_table(res.throughput), "",
        "### ESS per second", "",
        "`infer(model, x, y=y, num_chains=2, chain_method=\"sequential\", "
        f"num_warmup={a.ess_draws}, num_samples={a.ess_draws})` in this process, wall time "
        "of the call; `arviz.ess` "
        "(bulk) of the log joint `stats[\"lp\"]` and of the program size `f_size`, pooled "
        "over both chains and, in parentheses, each chain on its own (summed over the two); "
        f"medians over {a.repeats} seeds. \"Pyro traces\" patches `Target.check_fast` to "
        "refuse the fast path (so no incremental likelihood and no Laplace refits either). "
        "The pooled ESS counts disagreement between chains: two chains that hold different "
        "trees of the same law, or different local modes, give a pooled ESS near the number "
        "of chains however well each chain mixes within its mode (see \"Diagnosing a "
        "program posterior\" in the inference guide); the per-chain ESS measures the "
        "mixing within a chain (a chain that never changes its size has no ESS and counts "
        "0). These are small numbers that vary widely from seed to seed, hence every seed "
        "is shown.", "",
        *ess_table(res.ess), "",
        "### Time to P(true law) ≥ 0.5 (main example)", "",
        "`python examples/symbolic_regression.py` as `make demo` runs it (4 chains × 500 "
        f"warmup + 500 samples, chains in processes on {res.host['cores (nproc)']} cores) "
        f"took {res.default_seconds:.1f} s of wall time and put "
        f"**P(true law) = {p_true_of(res.default_output):.3f}** on N0·exp(−λt). Its "
        "output, abridged:", "",
        "```text", excerpt_of(res.default_output), "```", "",
        "Shorter runs of the same model, data and chains (`infer(sr.model, t, y=y, "
        "num_chains=4, num_warmup=n, num_samples=n, seed=s)`, seeds "
        f"{', '.join(str(s) for s in range(a.example_seeds))}):", "",
        *ex_rows, "",
        f"So {reached}. A seed whose chains have not all found the law by then pulls its P "
        "down (the per-seed column), which is why the settings are compared by their "
        "median. " + " ".join(refit_text(res.examples)), "",
        "### Where the time goes", "",
        f"cProfile of `kernel.step`, seed {a.seed}, {a.sweeps} sweeps after {a.warmup} "
        f"warmup sweeps, for the default kernel ({res.profiles[0].seconds:.2f} s under the "
        f"profiler, which inflates per-call overhead) and without refits "
        f"({res.profiles[1].seconds:.2f} s). Share of `Gibbs.step`'s cumulative time"
        + (f"; the first column is the default kernel of {res.baseline.tree} (before), "
           "profiled the same way in the same run" if res.baseline else "") + ":", "",
        *profile_table(res.profiles, res.baseline), "",
        *interpretation(res), "",
        f"Top {a.top} functions by own time, default kernel:", "",
        "```text", res.profiles[0].excerpt, "```", "",
        "Command:", "",
        "```bash", "python -m benchmarks.mcmc_throughput " + " ".join(a.argv), "```", "",
        f"Run on {res.when}, code at commit {res.commit}.", "",
        "| machine | |", "|---|---|",
        *[f"| {k} | {v} |" for k, v in res.host.items()], "",
    ]
    return "\n".join(lines)


def throughput_text(res: Results) -> list[str]:
    """The throughput figures in words, with the side-by-side ratios."""
    full, no_refit, no_cache, no_eval, folded, scorer, pyro = (
        median([r.rate for r in res.throughput[v]]) for v in VARIANTS)
    return [
        f"The default kernel makes **{fmt(full)} program proposals per second per core**, "
        f"{full / GOAL:.0%} of the {GOAL:,} asked for (DESIGN.md §5 budgets "
        f"{1e6 / GOAL:.0f} µs a proposal; it takes {1e6 / full:.0f} µs), "
        f"{full / pyro:.1f}× the rate of the same kernel scoring every proposal with a Pyro "
        f"trace. The Laplace refits are what it pays for: without them (`refit=0`) the "
        f"kernel makes {fmt(no_refit)} proposals per second ({no_refit / full:.1f}× as "
        "many), and the table's solve column shows why: every tree shape met for the first "
        "time is fitted by least squares. With every cache off (`cache_size=0`: the same "
        f"chain, state for state) it makes {fmt(no_cache)} ({no_cache / full:.2f}× the "
        "default; the cache table below says which cache pays); with only the log L and "
        f"output caches off, {fmt(no_eval)} ({no_eval / full:.2f}×: those two see few "
        "repeats, as most proposals are new trees and trees with constants never repeat; "
        + ("within 5% of the default, they hardly pay on this model" if no_eval > 0.95 * full
           else "they pay") + "). The collapsed mode makes "
        f"{fmt(folded)} structure proposals per second: it has no constant moves (its "
        "constants are drawn once per sweep from their Laplace posterior) and each new "
        "shape costs a posterior-mode fit per value of sigma, so its rate counts a different "
        "unit of work. The scoring fast path alone, with every proposal running the model "
        f"under the scorer instead of a Pyro trace, is {scorer / pyro:.2f}× as fast as Pyro "
        "traces on exactly the same chain (those two rows take the same random choices and "
        "visit the same states). The other rows visit other programs than the last two and "
        "than each other (refits change the path; see the size column), so those rates "
        "compare kernels, not only scoring; what the proposals buy is measured below by ESS "
        "per second and by the time to the true law.",
    ]


CACHE_LABELS = {
    "lik": "log L of a program, per incremental-likelihood view (Program.key without "
           "constants, the exact tree with them)",
    "outputs": "program outputs, shared by the views of the site",
    "memo": "Laplace proposals (and evidence), per view and canonical shape",
    "canonical": "canonical form of an exact shape",
    "solve": "least-squares solves, per data and canonical shape",
}


def cache_table(runs: dict[Variant, list[Throughput]]) -> list[str]:
    """Hit rates of the default kernel's caches in the timed stretch (summed over seeds)."""
    rows = ["| cache | lookups per sweep | hit rate |", "|---|---:|---:|"]
    rs = runs[VARIANTS[0]]
    for name, label in CACHE_LABELS.items():
        hits = sum(r.cache[name][0] for r in rs)
        total = hits + sum(r.cache[name][1] for r in rs)
        rate = f"{hits / total:.0%}" if total else "–"
        rows.append(f"| {label} | {total / sum(r.sweeps for r in rs):.1f} | {rate} |")
    return rows


@dataclass(frozen=True)
class Baseline:
    """The default kernel of an earlier source tree, measured side by side."""

    tree: str
    rates: list[float]
    solves: list[float]  # Laplace solves per 100 sweeps
    parts: dict[str, float]
    across: dict[str, float]


BASELINE_SCRIPT = """
import json, sys, time, torch
torch.set_num_threads(1)
from benchmarks import mcmc_throughput as mt
seed, warmup, sweeps, moves, profile = (int(a) for a in sys.argv[1:6])
data = mt.example().make_data()
if profile:
    p = mt.profile_step(mt.VARIANTS[0], data, seed, warmup, sweeps, moves, 5)
    print(json.dumps({"parts": p.parts, "across": p.across}))
else:  # the timed loop of this tree's throughput(), in CPU seconds
    kernel, state, rng = mt.make_kernel(mt.VARIANTS[0], data, seed, warmup, moves)
    counts = mt.count_moves(kernel)
    with mt.count_solves() as solves:
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


def baseline_table(res: Results) -> list[str]:
    if res.baseline is None:
        return []
    b = res.baseline
    now = res.throughput[VARIANTS[0]]
    before, after = median(b.rates), median([r.rate for r in now])
    rows = [f"Before and after, side by side in this run (the default kernel of the source "
            f"tree {b.tree}, run by its own harness in a subprocess on the same seeds, "
            "alternating with this tree's runs):", "",
            "| default kernel | program proposals/s (median) | min – max | Laplace solves "
            "per 100 sweeps |", "|---|---:|---:|---:|",
            f"| before ({b.tree}) | {fmt(before)} | {fmt(min(b.rates))} – "
            f"{fmt(max(b.rates))} | {median(b.solves):.1f} |",
            f"| after (this tree) | {fmt(after)} | {fmt(min(r.rate for r in now))} – "
            f"{fmt(max(r.rate for r in now))} | "
            f"{median([100 * r.solves / r.sweeps for r in now]):.1f} |", "",
            f"So {after / before:.2f}× the proposals per second of the tree before. The two "
            "kernels do not visit the same programs (the fits differ: canonical order, "
            "fewer LM iterations), so part of the difference is the path.", ""]
    return rows


def profile_table(profiles: tuple[Profile, Profile], baseline: Baseline | None = None
                  ) -> list[str]:
    head = "| where | " + ("before: default kernel | " if baseline else "")
    rows = [head + "default kernel | no Laplace refits |",
            "|---|" + ("---:|" if baseline else "") + "---:|---:|"]
    for group, label in (("parts", "update"), ("across", "across the updates")):
        for i, part in enumerate(getattr(profiles[0], group)):
            cells = [f"{getattr(p, group)[part]:.0%}" for p in profiles]
            if baseline is not None:  # the same rows in the same order (labels may differ)
                old = list(getattr(baseline, group).values())
                cells.insert(0, f"{old[i]:.0%}" if i < len(old) else "–")
            rows.append(f"| {label}: {part} | {' | '.join(cells)} |")
    return rows


def interpretation(res: Results) -> list[str]:
    """What the profiles say, with their figures, and what they point to next."""
    full, bare = res.profiles
    solve, fit, evaluate, moves, prior, score = list(full.across)
    solves = median([100 * r.solves / r.sweeps for r in res.throughput[VARIANTS[0]]])
    rate = median([r.rate for r in res.throughput[VARIANTS[1]]])
    ranked = sorted(bare.parts, key=lambda k: -bare.parts[k])[:3]

    def short(label: str) -> str:
        return label.split(" (`")[0]

    parts = list(full.parts)
    sigma = full.parts[parts[5]] + full.parts[parts[6]]
    levers = [
        (full.across[solve], f"fewer solves of shapes that are then rejected "
         f"({full.across[solve]:.0%}): most refit proposals are random subtrees that no "
         "constants would save; a delayed-acceptance first stage (screen the new structure "
         "by a cheap surrogate ratio, fit only the survivors; Christen and Fox 2005) keeps "
         "the move exact and skips most fits"),
        (sigma, f"sigma's update and the view rebuilt after it ({sigma:.0%}): a torch run of "
         "the model, then five probe programs each re-scored by a full model run to verify "
         "the new view; both are closed-form for a Normal likelihood given the program's "
         "cached output, and the probes could be verified once per site instead of once "
         "per view"),
        (full.across[evaluate], f"batch the K proposals of a sweep into one (K, n) "
         f"evaluation (DESIGN.md §5, lever 2; numpy evaluation is "
         f"{full.across[evaluate]:.0%}), which removes the interpreter's fixed cost per "
         "evaluation that dominates on 20 points"),
    ]
    return [
        "Default kernel: a structure move scored by the incremental likelihood is cheap (one "
        "numpy evaluation of the proposed program, its prior density, the move's own "
        "bookkeeping); the Laplace machinery around it is not. Least-squares fits of tree "
        f"shapes not met before take {full.across[solve]:.0%} of the time ({solves:.0f} "
        "solves per 100 sweeps in the timed stretch; each runs up to 20 Levenberg–Marquardt "
        "iterations from one start, a second start only when the first meets invalid "
        "programs, every trial point evaluated together with its forward-difference "
        "Jacobian in one batched numpy call of k + 1 rows). Turning a cached fit into a "
        f"proposal density costs {full.across[fit]:.0%} (the proposal is memoised per view: "
        "rebuilt only after sigma moved). Numpy program evaluation takes "
        f"{full.across[evaluate]:.0%} in all, {full.in_solves:.0%} of it inside the solves; "
        f"the moves' own code {full.across[moves]:.0%}, prior densities "
        f"{full.across[prior]:.0%}, torch runs of the model under the scorer (sigma's moves "
        f"and the verification of rebuilt views) {full.across[score]:.0%}.", "",
        f"Without refits ({fmt(rate)} proposals/s, {1e6 / rate:.0f} µs each) the largest "
        f"updates are {', '.join(f'{short(k)} ({bare.parts[k]:.0%})' for k in ranked)}; "
        f"numpy evaluation takes {bare.across[evaluate]:.0%}, torch runs of the model "
        f"{bare.across[score]:.0%}, prior densities {bare.across[prior]:.0%} and the moves' "
        f"code {bare.across[moves]:.0%}; the largest cost left is "
        f"{short(max(bare.across, key=lambda k: bare.across[k]))}.", "",
        "What this points to next, in order of the time at stake: " + "; ".join(
            f"({i}) {text}" for i, (_, text) in enumerate(sorted(levers, reverse=True), 1))
        + f". {GOAL:,} proposals per second (50 µs each) needs all of them and a compiled "
        "evaluator.",
    ]


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
