"""B2's measurements (``benchmarks/mcmc_throughput.py``): the kernel variants, their timed
sweeps, the ESS runs, the runs of the main example and the profile of ``kernel.step``.

Each measurement returns a frozen record (``Throughput``, ``EssRun``, ``ExampleRun``,
``Profile``, ``Baseline``); ``benchmarks.mcmc_throughput_report`` turns them into the
section of ``docs/benchmarks.md`` and ``benchmarks.mcmc_throughput`` runs them.
"""

from __future__ import annotations

import contextlib
import cProfile
import importlib
import io
import os
import pstats
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import ppl
from inference import infer
from inference.arviz import az
from inference.config import McmcOptions
from inference.mcmc.blocks import collapsed, program
from inference.mcmc.blocks.base import CACHE_NAMES
from inference.mcmc.cache import LRU
from inference.mcmc.gibbs import Gibbs
from inference.mcmc.laplace import ConstantFitter
from inference.target import Target
from ppl import dist

ROOT = Path(__file__).resolve().parent.parent
PRIOR = ppl.ProgramPrior("arith", inputs=["x"], max_depth=6)
STRUCTURE = ("structure", "refit_structure", "library", "library_tries", "grow")
CONSTANT = ("constant_rw", "laplace_constants", "mala")
"""The program block's update functions (module globals of ``inference.mcmc.blocks.program``,
which looks them up at call time)."""


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


@contextlib.contextmanager
def count_moves() -> Iterator[dict[str, list[int]]]:
    """Count calls and acceptances of the program block's updates while the block runs."""
    counts: dict[str, list[int]] = {}
    saved = {name: getattr(program, name) for name in (*STRUCTURE, *CONSTANT)}
    for name, fn in saved.items():
        tally = counts[name] = [0, 0]

        def wrapped(*args: Any, _fn: Any = fn, _tally: list[int] = tally,
                    **kwargs: Any) -> Any:
            out = _fn(*args, **kwargs)
            _tally[0] += 1
            _tally[1] += bool(out[1].accepted)
            return out

        setattr(program, name, wrapped)
    try:
        yield counts
    finally:
        for name, fn in saved.items():
            setattr(program, name, fn)


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
    kernel = Gibbs(target, McmcOptions(program_moves=program_moves, refit=variant.refit,
                                       cache_size=4096 if variant.cache else 0,
                                       collapsed=variant.collapsed))
    rng = np.random.default_rng(seed)
    state = kernel.init(rng)
    if not variant.fast:
        target.fast = False  # every proposal is now a Pyro trace
    if not variant.incremental:
        kernel.workspace.view = lambda *a: None  # type: ignore[method-assign]
    if not variant.eval_cache:
        kernel.workspace.view = without_eval_caches(  # type: ignore[method-assign]
            kernel.workspace.view)
    for _ in range(warmup):
        state, _ = kernel.step(rng, state, adapt=True)
    return kernel, state, rng


def without_eval_caches(view_of: Any) -> Any:
    """``Workspace.view`` whose views keep no log L and no outputs (same chain, no memo)."""
    def wrapped(*args: Any) -> Any:
        view = view_of(*args)
        if view is not None:
            view.lik, view.outputs = LRU(0), None
        return view
    return wrapped


def throughput(variant: Variant, data: tuple[np.ndarray, np.ndarray], seed: int,
               warmup: int, sweeps: int, program_moves: int) -> Throughput:
    """Time ``sweeps`` non-adaptive sweeps after ``warmup`` adaptive ones."""
    kernel, state, rng = make_kernel(variant, data, seed, warmup, program_moves)
    before = {k: tuple(v) for k, v in kernel.workspace.stats.items()}
    sizes = 0
    with count_moves() as counts, count_solves() as solves, count_collapsed() as folded:
        start = time.process_time()  # CPU seconds: other load on the machine does not count
        for _ in range(sweeps):
            state, _ = kernel.step(rng, state)
            sizes += state.values["f"].size
        seconds = time.process_time() - start
    cache = {k: (kernel.workspace.stats[k][0] - before[k][0], kernel.workspace.stats[k][1]
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


def example_run(draws: int, seed: int, refit: bool = True, folded: bool = False
                ) -> ExampleRun:
    """The example's model and data, 4 chains, ``draws`` warmup and samples each: in
    processes with the default kernel (or the collapsed mode), or in sequence in this
    process without refits."""
    sr = example()
    t, y = sr.make_data()
    start = time.perf_counter()
    post = infer(sr.model, t, y=y, method="mcmc", seed=seed, num_chains=4,
                 num_warmup=draws, num_samples=draws, progress=False,
                 chain_method="parallel" if refit else "sequential", collapsed=folded,
                 **({} if refit else {"refit": 0.0}))
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
    "structure moves with a Laplace refit (`refit_structure`)":
        ("program.py", "refit_structure"),
    "structure moves, constants kept or drawn from the prior (`structure`)":
        ("program.py", "structure"),
    "Laplace independence moves on the constants (`laplace_constants`)":
        ("program.py", "laplace_constants"),
    "constant random walk (`constant_rw`)": ("program.py", "constant_rw"),
    "MALA on the constants (`mala`)": ("continuous.py", "mala"),
    "sigma's random walk, the whole model scored (`random_walk`)":
        ("continuous.py", "random_walk"),
    "rebuilding the incremental likelihood after sigma moved (`Workspace.view`)":
        ("base.py", "view"),
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


# ---------------------------------------------------------------------- before / after
@dataclass(frozen=True)
class Baseline:
    """The default kernel of an earlier source tree, measured side by side."""

    tree: str
    rates: list[float]
    solves: list[float]  # Laplace solves per 100 sweeps
    parts: dict[str, float]
    across: dict[str, float]
