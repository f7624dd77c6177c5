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
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import signal
import sys
import time
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import sympy

from benchmarks._report import replace_sections

HEADING = "## B1. Program induction: the Nguyen suite"
LOAD = "load average (1 min) before the run"
METHODS = ("ours", "pyoperon", "gplearn")
N_POINTS = 20
N_FRESH = 1000
MAX_DEPTH = 6
EXACT_NRMSE = 1e-10
"""Primary recovery criterion (noiseless and noisy Nguyen): NRMSE on fresh points."""
CONSTANT_NRMSE = 1e-3
"""Constant-* problems: NRMSE on fresh noiseless points below this and the same structure."""
SIGMA_FLOOR = 1e-6
"""Noise-scale floor of our model, relative to std(y)."""
SYMPY_TIMEOUT = 10.0
"""Seconds per sympy simplification (a guard: simplify can take minutes on big trees)."""
NUM_WARMUP = 200
"""Our engine: adaptive sweeps before draws are kept (a few percent of a 20 s run)."""
SYMPY_CHECKS = 20
"""At most this many distinct programs per run get the sympy check (our posterior)."""


# ---------------------------------------------------------------------- problems
@dataclass(frozen=True)
class Problem:
    """One benchmark target."""

    name: str
    target: str
    """The true function in sympy syntax."""
    inputs: tuple[str, ...]
    low: float
    high: float
    grammar: str
    """Grammar of our engine: "koza" (no constants) or "arith" (constants)."""
    reference: str
    """The target written in that grammar (checks that it is expressible within
    ``max_depth``, and that it passes the recovery check)."""

    @property
    def constants(self) -> bool:
        return self.grammar == "arith"


PROBLEMS: dict[str, Problem] = {p.name: p for p in [
    Problem("Nguyen-1", "x**3 + x**2 + x", ("x",), -1, 1, "koza",
            "(((x * x) * x) + ((x * x) + x))"),
    Problem("Nguyen-2", "x**4 + x**3 + x**2 + x", ("x",), -1, 1, "koza",
            "((((x * x) * x) * x) + (((x * x) * x) + ((x * x) + x)))"),
    Problem("Nguyen-3", "x**5 + x**4 + x**3 + x**2 + x", ("x",), -1, 1, "koza",
            "(((x + (x * x)) * (((x * x) * x) + (x / x))) + ((x * x) * x))"),
    Problem("Nguyen-4", "x**6 + x**5 + x**4 + x**3 + x**2 + x", ("x",), -1, 1, "koza",
            "((((x * x) * x) + ((x * x) + x)) * (((x * x) * x) + (x / x)))"),
    Problem("Nguyen-5", "sin(x**2)*cos(x) - 1", ("x",), -1, 1, "koza",
            "((sin((x * x)) * cos(x)) - (x / x))"),
    Problem("Nguyen-6", "sin(x) + sin(x + x**2)", ("x",), -1, 1, "koza",
            "(sin(x) + sin((x + (x * x))))"),
    Problem("Nguyen-7", "log(x + 1) + log(x**2 + 1)", ("x",), 0, 2, "koza",
            "(log((x + (x / x))) + log(((x * x) + (x / x))))"),
    Problem("Nguyen-8", "sqrt(x)", ("x",), 0, 4, "koza",
            "exp((log(x) * (x / (x + x))))"),
    Problem("Nguyen-9", "sin(x) + sin(y**2)", ("x", "y"), 0, 1, "koza",
            "(sin(x) + sin((y * y)))"),
    Problem("Nguyen-10", "2*sin(x)*cos(y)", ("x", "y"), 0, 1, "koza",
            "((sin(x) + sin(x)) * cos(y))"),
    Problem("Nguyen-11", "x**y", ("x", "y"), 0, 1, "koza", "exp((y * log(x)))"),
    Problem("Nguyen-12", "x**4 - x**3 + y**2/2 - y", ("x", "y"), 0, 1, "koza",
            "((((x * x) * x) * (x - (x / x))) + (((y * y) / ((y / y) + (y / y))) - y))"),
    Problem("Constant-1", "3.39*x**3 + 2.12*x**2 + 1.78*x", ("x",), -1, 1, "arith",
            "(((3.39 * ((x * x) * x)) + (2.12 * (x * x))) + (1.78 * x))"),
    Problem("Constant-2", "sin(x**2)*cos(x) - 0.75", ("x",), -1, 1, "arith",
            "((sin((x * x)) * cos(x)) - 0.75)"),
    Problem("Constant-3", "sin(1.5*x)*cos(0.5*y)", ("x", "y"), 0, 1, "arith",
            "(sin((1.5 * x)) * cos((0.5 * y)))"),
]}


def symbols(problem: Problem) -> dict[str, sympy.Symbol]:
    """The inputs as sympy symbols: positive on a domain in [0, ∞), else real (the same
    assumptions for every method, so log|x| and log(x) agree where they should)."""
    if problem.low >= 0:
        return {n: sympy.Symbol(n, positive=True) for n in problem.inputs}
    return {n: sympy.Symbol(n, real=True) for n in problem.inputs}


def target_expr(problem: Problem) -> Any:
    return sympy.sympify(problem.target, locals=symbols(problem))


def evaluate_expr(expr: Any, problem: Problem, X: np.ndarray) -> np.ndarray:
    """A sympy expression evaluated in float64 on the columns of X (nan/inf when invalid)."""
    syms = symbols(problem)
    fn = sympy.lambdify([syms[n] for n in problem.inputs], expr, modules="numpy")
    with np.errstate(all="ignore"):
        out = fn(*[X[:, i].astype(np.float64) for i in range(X.shape[1])])
    return np.broadcast_to(np.asarray(out, dtype=np.float64), (X.shape[0],)).copy()


def _stream(problem: Problem, seed: int, part: int) -> np.random.Generator:
    return np.random.default_rng([zlib.crc32(problem.name.encode()), seed, part])


def make_data(problem: Problem, seed: int, noise: float = 0.0
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, y, y_clean): 20 points U[low, high]^d from a fixed seed per (problem, seed index);
    y = f(X) + noise · std(f(X)) · N(0, 1) (the noise from its own stream, so X and the
    clean values are the same at every noise level)."""
    X = _stream(problem, seed, 0).uniform(problem.low, problem.high,
                                          (N_POINTS, len(problem.inputs)))
    clean = evaluate_expr(target_expr(problem), problem, X)
    y = clean.copy()
    if noise > 0:
        y = y + noise * np.std(clean) * _stream(problem, seed, 1).standard_normal(N_POINTS)
    return X, y, clean


def fresh_points(problem: Problem, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """1000 fresh inputs from the same distribution and the true (noiseless) outputs."""
    X = _stream(problem, seed, 2).uniform(problem.low, problem.high,
                                          (N_FRESH, len(problem.inputs)))
    return X, evaluate_expr(target_expr(problem), problem, X)


# ---------------------------------------------------------------------- recovery check
class _Timeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise _Timeout after ``seconds`` (SIGALRM; no limit outside the main thread)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise _Timeout

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def nrmse(pred: np.ndarray, truth: np.ndarray) -> float:
    """sqrt(mean((pred − truth)²)) / std(truth); inf when pred has a nan or inf."""
    pred = np.broadcast_to(np.asarray(pred, dtype=np.float64), truth.shape)
    if not np.all(np.isfinite(pred)):
        return math.inf
    with np.errstate(all="ignore"):
        value = float(np.sqrt(np.mean((pred - truth) ** 2)) / np.std(truth))
    return value if math.isfinite(value) else math.inf


def integerize(expr: Any) -> Any:
    """Floats with integer values (1.0 · x from pyoperon) become sympy Integers."""
    return expr.xreplace({f: sympy.Integer(int(f)) for f in expr.atoms(sympy.Float)
                          if f == int(f)})


def sympy_equal(expr: Any, target: Any, timeout: float = SYMPY_TIMEOUT) -> bool | None:
    """``simplify(expr − target) == 0``; None when it timed out or failed."""
    try:
        with time_limit(timeout):
            return bool(sympy.simplify(integerize(expr) - target) == 0)
    except _Timeout:
        return None
    except Exception:
        return None


C = sympy.Symbol("c")


def skeleton(expr: Any, timeout: float = SYMPY_TIMEOUT) -> Any:
    """The structure of an expression with constants: simplify, expand, drop constants
    smaller than 1e-6 in magnitude, then every remaining non-integer number becomes the
    same symbol ``c`` (None on timeout)."""
    try:
        with time_limit(timeout):
            e = sympy.expand(sympy.simplify(integerize(expr)))
            e = e.xreplace({f: sympy.Integer(0) for f in e.atoms(sympy.Float)
                            if abs(f) < 1e-6})
            e = integerize(e)
            return e.xreplace({f: C for f in e.atoms(sympy.Float)})
    except _Timeout:
        return None
    except Exception:
        return None


def check(problem: Problem, expr: Any, pred: np.ndarray | None, truth: np.ndarray,
          X_fresh: np.ndarray, symbolic: bool = True) -> dict[str, Any]:
    """The recovery check, identical for every method.

    ``pred``: the method's own float64 outputs on the fresh points (None: evaluate ``expr``).
    Nguyen: recovered when NRMSE < 1e-10 (primary) or simplify(expr − target) == 0
    (secondary, tried only when the primary fails and ``symbolic``). Constant-*: NRMSE on
    fresh noiseless points < 1e-3 and the same :func:`skeleton` as the target.
    """
    if pred is None:
        pred = evaluate_expr(expr, problem, X_fresh) if expr is not None else None
    err = nrmse(pred, truth) if pred is not None else math.inf
    out: dict[str, Any] = {"nrmse": err, "recovered": False, "recovered_by": None,
                           "sympy_equal": None}
    target = target_expr(problem)
    if problem.constants:
        if err < CONSTANT_NRMSE and expr is not None and symbolic:
            same = skeleton(expr)
            out["sympy_equal"] = None if same is None else bool(same == skeleton(target))
            if out["sympy_equal"]:
                out.update(recovered=True, recovered_by="nrmse<1e-3 and structure")
        return out
    if err < EXACT_NRMSE:
        out.update(recovered=True, recovered_by="nrmse")
    elif expr is not None and symbolic:
        out["sympy_equal"] = sympy_equal(expr, target)
        if out["sympy_equal"]:
            out.update(recovered=True, recovered_by="sympy")
    return out


def _text(expr: Any) -> str | None:
    return None if expr is None else str(expr)


# ---------------------------------------------------------------------- our engine
def run_ours(problem: Problem, seed: int, budget: float, noise: float) -> dict[str, Any]:
    import torch

    import ppl
    from inference import infer
    from inference.api import RunWarning
    from ppl import dist

    torch.set_num_threads(1)
    X, y, _ = make_data(problem, seed, noise)
    X_fresh, truth = fresh_points(problem, seed)
    scale = float(np.std(y))
    floor = SIGMA_FLOOR * scale
    prior = ppl.ProgramPrior(problem.grammar, inputs=list(problem.inputs), max_depth=MAX_DEPTH)

    def model(*columns: Any, obs: Any = None) -> None:
        f = ppl.sample("f", prior)
        sigma = ppl.sample("sigma", dist.HalfNormal(scale))
        with ppl.plate("data", N_POINTS):
            ppl.sample("obs", dist.Normal(f(*columns), sigma + floor), obs=obs)

    columns = [X[:, i].copy() for i in range(X.shape[1])]
    start, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        post = infer(model, *columns, obs=y, method="mcmc", num_chains=1,
                     chain_method="sequential", max_time=budget, num_samples=10**7,
                     num_warmup=NUM_WARMUP, progress=False, seed=seed)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    cut = [str(w.message) for w in caught if issubclass(w.category, RunWarning)
           and "max_time cut the run short" in str(w.message)]
    other = [f"{w.category.__name__}: {w.message}" for w in caught
             if not (issubclass(w.category, RunWarning)
                     and "max_time cut the run short" in str(w.message))]
    draws = post.samples["f"].reshape(-1)
    lp = post.stats["lp"].reshape(-1)
    best = draws[int(np.argmax(lp))]
    env = {n: X_fresh[:, i] for i, n in enumerate(problem.inputs)}
    syms = symbols(problem)

    def as_sympy(p: Any) -> Any:
        e = p.to_sympy()
        return e.xreplace({s: syms[s.name] for s in e.free_symbols})

    best_expr = as_sympy(best)
    result = check(problem, best_expr, best(**env), truth, X_fresh)
    top = post.programs("f", top=1, simplify=False).iloc[0]
    p_true, checked = _posterior_true(problem, draws, lp, env, truth, X_fresh, as_sympy)
    return {"best_program": str(best), "best_sympy": _text(best_expr), **result,
            "wall_time": wall, "cpu_seconds": cpu,
            "chain_seconds": float(post.attrs["seconds"][0]),
            "num_draws": len(draws), "num_warmup": NUM_WARMUP,
            "best_log_joint": float(lp.max()),
            "top_program": str(top["program"]), "top_probability": float(top["probability"]),
            "p_true": p_true, "distinct_programs": len({p.key for p in draws}),
            "sympy_checked_programs": checked,
            "sigma_median": float(np.median(post.samples["sigma"])) + floor,
            "cut_short": bool(cut), "warnings": other[:5],
            "settings": {"grammar": problem.grammar, "max_depth": MAX_DEPTH,
                         "sigma": f"HalfNormal({scale:.4g}) + {floor:.3g}",
                         "num_chains": 1, "program_moves": 10}}


def _posterior_true(problem: Problem, draws: np.ndarray, lp: np.ndarray,
                    env: dict[str, np.ndarray], truth: np.ndarray, X_fresh: np.ndarray,
                    as_sympy: Callable[[Any], Any]) -> tuple[float, int]:
    """Fraction of draws that recover the target by :func:`check`.

    Without constants a program's key fixes its function, so each distinct key is checked
    once (numerically; sympy only when the numeric check fails but the NRMSE is below 1e-2
    or not finite, at most ``SYMPY_CHECKS`` keys, most frequent first). With constants each
    draw's NRMSE is checked and each key's structure once (on its highest-lp draw)."""
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(draws):
        groups.setdefault(p.key, []).append(i)
    order = sorted(groups, key=lambda k: -len(groups[k]))
    hits = np.zeros(len(draws), dtype=bool)
    checked = 0
    target = target_expr(problem)
    target_skeleton = skeleton(target) if problem.constants else None
    for key in order:
        idx = np.asarray(groups[key])
        if problem.constants:
            ok = np.array([nrmse(draws[i](**env), truth) < CONSTANT_NRMSE for i in idx])
            if not ok.any() or checked >= SYMPY_CHECKS:
                continue
            rep = draws[max(idx[ok], key=lambda i: lp[i])]
            checked += 1
            if skeleton(as_sympy(rep)) == target_skeleton:
                hits[idx[ok]] = True
            continue
        rep = draws[idx[0]]
        err = nrmse(rep(**env), truth)
        if err < EXACT_NRMSE:
            hits[idx] = True
        elif (err < 1e-2 or not math.isfinite(err)) and checked < SYMPY_CHECKS:
            checked += 1
            if sympy_equal(as_sympy(rep), target):
                hits[idx] = True
    return float(hits.mean()), checked


# ---------------------------------------------------------------------- pyoperon
KOZA_OPERON = "add,sub,mul,div,sin,cos,exp,log"


def _operon_no_constants(X: np.ndarray, y: np.ndarray, budget: float, seed: int
                         ) -> tuple[Any, dict[str, Any]]:
    """pyoperon's GP without constants, built from its lower-level bindings (the wrapper
    cannot switch constants off): variable leaves carry weight 1 (a coefficient initialiser
    fixed at 1, no mutation or local optimisation of coefficients), MSE without linear
    scaling. Other settings are the wrapper's defaults (population 1000, tournament 5,
    max length 50, max depth 10, crossover 1.0, mutation 0.25)."""
    import pyoperon as op

    D = np.asfortranarray(np.column_stack((X, y)))
    ds = op.Dataset(D)
    target = max(ds.Variables, key=lambda v: v.Index)
    inputs = [v.Hash for v in sorted(ds.Variables, key=lambda v: v.Index)
              if v.Hash != target.Hash]
    problem = op.Problem(ds)
    problem.TrainingRange = op.Range(0, ds.Rows)
    problem.TestRange = op.Range(ds.Rows - 1, ds.Rows)
    problem.Target = target
    problem.InputHashes = inputs
    config = 0
    for name in (KOZA_OPERON + ",variable").split(","):
        config |= int(getattr(op.NodeType, name.capitalize()))
    problem.ConfigurePrimitiveSet(config)
    pset = problem.PrimitiveSet
    creator = op.BalancedTreeCreator(pset, inputs, 0.0)
    ones = op.UniformIntCoefficientAnalyzer()
    ones.ParameterizeDistribution(1, 1)
    dtable = op.DispatchTable()
    optimizer = op.LMOptimizer(dtable, problem, 0, 0)
    evaluator = op.Evaluator(problem, dtable, op.MSE(), False)
    evaluator.Budget = 2**62
    comparison = op.SingleObjectiveComparison(0)
    selector = op.TournamentSelector(comparison)
    selector.TournamentSize = 5
    reinserter = op.KeepBestReinserter(comparison)
    crossover = op.SubtreeCrossover(0.9, 10, 50)
    mutation = op.MultiMutation()
    mutators = [op.ChangeVariableMutation(inputs), op.ChangeFunctionMutation(pset),
                op.ReplaceSubtreeMutation(creator, ones, 10, 50),
                op.InsertSubtreeMutation(creator, ones, 10, 50),
                op.RemoveSubtreeMutation(pset)]
    for m in mutators:
        mutation.Add(m, 1.0)
    coeff_optimizer = op.CoefficientOptimizer(optimizer)
    generator = op.BasicOffspringGenerator(evaluator, crossover, mutation, selector, selector,
                                           coeff_optimizer)
    min_arity, _ = pset.FunctionArityLimits()
    initializer = op.UniformLengthTreeInitializer(creator)
    initializer.ParameterizeDistribution(min_arity + 1, 10)
    initializer.MinDepth = 1
    initializer.MaxDepth = 1000
    cfg = op.GeneticAlgorithmConfig(generations=10**9, max_evaluations=2**62,
                                    local_iterations=0, population_size=1000, pool_size=1000,
                                    p_crossover=1.0, p_mutation=0.25, p_local=0.0,
                                    p_lamarck=0.0, epsilon=1e-5, seed=seed,
                                    max_time=max(1, round(budget)))
    gp = op.GeneticProgrammingAlgorithm(cfg, problem, initializer, ones, generator, reinserter)
    gp.Run(op.RandomGenerator(np.uint64(seed)), None, 1, False)
    names = {h: f"v{i}" for i, h in enumerate(inputs)}
    text = op.InfixFormatter.Format(gp.BestModel.Genotype, names, 17)
    _keep = (mutators, creator, ones, evaluator)  # C++ objects held by pointer
    del _keep
    return text, {"generations": int(gp.Generation), "evaluations": int(evaluator.CallCount),
                  "interface": "lower-level bindings, weights fixed at 1, no scaling"}


def _operon_wrapper(X: np.ndarray, y: np.ndarray, budget: float, seed: int
                    ) -> tuple[Any, dict[str, Any]]:
    """pyoperon's scikit-learn wrapper as is (constants on, r2 with linear scaling)."""
    from pyoperon.sklearn import SymbolicRegressor

    est = SymbolicRegressor(allowed_symbols=KOZA_OPERON + ",constant,variable",
                            max_time=max(1, round(budget)), n_threads=1,
                            random_state=seed, generations=10**9, max_evaluations=10**12)
    est.fit(X, y)
    names = [f"v{i}" for i in range(X.shape[1])]
    text = est.get_model_string(est.model_, precision=17, names=names)
    return text, {"generations": int(est.stats_["generations"]),
                  "evaluations": int(est.stats_["evaluation_count"]),
                  "interface": "scikit-learn wrapper, defaults, max_time"}


def run_pyoperon(problem: Problem, seed: int, budget: float, noise: float) -> dict[str, Any]:
    X, y, _ = make_data(problem, seed, noise)
    X_fresh, truth = fresh_points(problem, seed)
    start, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runner = _operon_wrapper if problem.constants else _operon_no_constants
        text, info = runner(X, y, budget, seed)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    syms = symbols(problem)
    local = {f"v{i}": syms[n] for i, n in enumerate(problem.inputs)}
    try:
        expr = sympy.sympify(text, locals=local)
    except (sympy.SympifyError, TypeError, SyntaxError):
        expr = None
    result = check(problem, expr, None, truth, X_fresh)
    return {"best_program": text, "best_sympy": _text(expr), **result, "wall_time": wall,
            "cpu_seconds": cpu, **info,
            "warnings": [f"{w.category.__name__}: {w.message}" for w in caught][:5]}


# ---------------------------------------------------------------------- gplearn
def _protected_exp(a: np.ndarray) -> np.ndarray:
    """exp(a) for a < 100, else 0 (gplearn needs closed functions)."""
    with np.errstate(over="ignore"):
        return np.where(a < 100.0, np.exp(np.minimum(a, 100.0)), 0.0)


GPLEARN_SYMPY: dict[str, Callable[..., Any]] = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b, "sin": sympy.sin, "cos": sympy.cos,
    "log": lambda a: sympy.log(sympy.Abs(a)), "exp": sympy.exp,
}
"""gplearn's functions in sympy: its protections (x/0 → 1, log|x| with log(0) → 0, exp
capped) are dropped except log's absolute value; the numeric check uses gplearn's own
float64 execution, protections included."""


def gplearn_sympy(program: Sequence[Any], names: Sequence[Any]) -> Any:
    """gplearn's flattened prefix program (functions, feature indices, float constants at
    full precision) as a sympy expression."""
    pos = 0

    def build() -> Any:
        nonlocal pos
        node = program[pos]
        pos += 1
        if hasattr(node, "arity"):
            args = [build() for _ in range(node.arity)]
            return GPLEARN_SYMPY[node.name](*args)
        if isinstance(node, (int, np.integer)):
            return names[int(node)]
        return sympy.Float(float(node))

    return build()


def run_gplearn(problem: Problem, seed: int, budget: float, noise: float) -> dict[str, Any]:
    from gplearn.functions import make_function
    from gplearn.genetic import SymbolicRegressor

    X, y, _ = make_data(problem, seed, noise)
    X_fresh, truth = fresh_points(problem, seed)
    exp = make_function(function=_protected_exp, name="exp", arity=1)
    est = SymbolicRegressor(population_size=1000, generations=1, warm_start=True,
                            function_set=("add", "sub", "mul", "div", "sin", "cos", "log",
                                          exp),
                            const_range=(-5.0, 5.0) if problem.constants else None,
                            random_state=seed, n_jobs=1, verbose=0)
    start, cpu = time.perf_counter(), time.process_time()
    generations, stopped = 0, False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        while True:
            t0 = time.perf_counter()
            est.set_params(generations=generations + 1)
            est.fit(X, y)
            generations += 1
            last = time.perf_counter() - t0
            if len(est._programs) < generations:  # gplearn's own stopping criterion
                stopped = True
                break
            if time.perf_counter() - start + last > budget:
                break
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    syms = symbols(problem)
    names = [syms[n] for n in problem.inputs]
    program = est._program
    try:
        expr = gplearn_sympy(program.program, names)
    except (KeyError, IndexError, TypeError, ValueError):
        expr = None
    with np.errstate(all="ignore"):
        pred = np.asarray(program.execute(X_fresh), dtype=np.float64)
    result = check(problem, expr, pred, truth, X_fresh)
    return {"best_program": str(program), "best_sympy": _text(expr), **result,
            "wall_time": wall, "cpu_seconds": cpu, "generations": generations,
            "stopped_early": stopped,
            "warnings": [f"{w.category.__name__}: {w.message}" for w in caught][:5]}


RUNNERS: dict[str, Callable[[Problem, int, float, float], dict[str, Any]]] = {
    "ours": run_ours, "pyoperon": run_pyoperon, "gplearn": run_gplearn}


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


# ---------------------------------------------------------------------- report
def _fmt_time(values: list[float]) -> str:
    return f"{np.median(values):.1f}" if values else "–"


def _cpu(record: dict[str, Any]) -> float:
    """CPU seconds of the method's run (older records: of the whole job, scoring included)."""
    return float(record.get("cpu_seconds", record.get("job_cpu_seconds", math.nan)))


def _times(recs: list[dict[str, Any]]) -> str:
    return f"{_fmt_time([r['wall_time'] for r in recs])} / {_fmt_time([_cpu(r) for r in recs])}"


def table(records: list[dict[str, Any]], methods: list[str], problems: list[str]
          ) -> list[str]:
    """Recovery per problem (k/S), median run time, and for ours the mean P(true)."""
    head = "| problem | target |"
    rule = "|---|---|"
    for m in methods:
        head += f" {m}: recovered | {m}: wall / CPU s |"
        rule += "---:|---:|"
        if m == "ours":
            head += " ours: P(true) mean [min–max] | ours: draws |"
            rule += "---:|---:|"
    rows = [head, rule]
    totals = {m: [0, 0] for m in methods}
    for p in problems:
        row = f"| {p} | ${sympy.latex(target_expr(PROBLEMS[p]))}$ |"
        for m in methods:
            recs = [r for r in records if r["method"] == m and r["problem"] == p]
            k = sum(bool(r.get("recovered")) for r in recs)
            totals[m][0] += k
            totals[m][1] += len(recs)
            errors = sum(r.get("error") is not None for r in recs)
            mark = f" ({errors} crashed)" if errors else ""
            row += f" {k}/{len(recs)}{mark} | {_times(recs)} |"
            if m == "ours":
                ps = [r["p_true"] for r in recs if "p_true" in r]
                draws = [r["num_draws"] for r in recs if "num_draws" in r]
                row += (f" {np.mean(ps):.2f} [{min(ps):.2f}–{max(ps):.2f}] |" if ps else " – |")
                row += f" {int(np.median(draws)):,} |" if draws else " – |"
        rows.append(row)
    avg = "| **average** | |"
    for m in methods:
        k, n = totals[m]
        rate = f"{100 * k / n:.0f}%" if n else "–"
        recs = [r for r in records if r["method"] == m]
        avg += f" **{rate}** ({k}/{n}) | {_times(recs)} |"
        if m == "ours":
            ps = [r["p_true"] for r in recs if "p_true" in r]
            avg += f" {np.mean(ps):.2f} | |" if ps else " – | |"
    rows.append(avg)
    return rows


def split_rates(records: list[dict[str, Any]], methods: list[str]) -> list[str]:
    lines = []
    for m in methods:
        parts = []
        for label, pred in (("Nguyen-*", lambda p: p.startswith("Nguyen")),
                            ("Constant-*", lambda p: p.startswith("Constant"))):
            recs = [r for r in records if r["method"] == m and pred(r["problem"])]
            if recs:
                k = sum(bool(r.get("recovered")) for r in recs)
                parts.append(f"{label} {k}/{len(recs)} ({100 * k / len(recs):.0f}%)")
        lines.append(f"- {m}: " + ", ".join(parts))
    return lines


def effort(records: list[dict[str, Any]], methods: list[str]) -> list[str]:
    """Median number of programs each method proposed or evaluated per run."""
    lines = []
    for m in methods:
        recs = [r for r in records if r["method"] == m and r.get("error") is None]
        if m == "ours":
            sweeps = [r["num_draws"] + r.get("num_warmup", 0) for r in recs]
            lines.append(f"- ours: {np.median(sweeps):,.0f} sweeps per run (median), each 10 "
                         f"program proposals: about {10 * np.median(sweeps):,.0f} programs")
        elif m == "pyoperon":
            ev = [r["evaluations"] for r in recs if "evaluations" in r]
            gens = [r["generations"] for r in recs if "generations" in r]
            if ev:
                lines.append(f"- pyoperon: {np.median(ev):,.0f} evaluations per run (median), "
                             f"{np.median(gens):,.0f} generations")
        elif m == "gplearn":
            gens = [r["generations"] for r in recs if "generations" in r]
            if gens:
                lines.append(f"- gplearn: {np.median(gens):,.0f} generations of 1000 per run "
                             f"(median): about {1000 * np.median(gens):,.0f} programs")
    return lines


def report(runs: list[dict[str, Any]], notes: str = "") -> str:
    """The Markdown section (from HEADING to the end) for one or more runs."""
    lines = [HEADING, "",
             "Protocol B1 of BENCHMARKS.md, measured side by side in one run per table. Each "
             "run: 20 points drawn with a fixed seed per (problem, seed index), one core, "
             "the same wall-clock budget for every method; a crashed run counts as not "
             "recovered. The harness is `benchmarks/nguyen.py`; this section is written by "
             "it (`--write`), from the JSON records of the runs (`--report-from`).", ""]
    for run in runs:
        meta, records = run["meta"], run["records"]
        methods = [m for m in METHODS if any(r["method"] == m for r in records)]
        problems = [p for p in PROBLEMS if any(r["problem"] == p for r in records)]
        eps = meta["noise"]
        kind = "noiseless" if eps == 0 else f"noisy, ε = {eps} (y += ε·std(y)·N(0, 1))"
        lines += [f"### {kind}: {meta['seeds']} seeds, {meta['budget']:g} s per run", "",
                  *table(records, methods, problems), "", "By family:", "",
                  *split_rates(records, methods), "",
                  "Search effort in the budget:", "", *effort(records, methods), "",
                  *(["CPU seconds of this run are those of the whole job (the method and "
                     "the scoring after it), an upper bound of the method's own."]
                    + [""] if any("cpu_seconds" not in r for r in records) else []),
                  f"Command (run on {meta['date']}, code {meta.get('code', 'not recorded')}, "
                  f"load average {meta['machine'].get(LOAD, '?')} before it, "
                  f"{meta['jobs']} runs at a time, "
                  f"{meta.get('wall_seconds', float('nan')) / 60:.1f} min in all):", "",
                  "```bash", meta["command"], "```", ""]
    host = runs[0]["meta"]["machine"]
    lines += ["| machine | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in host.items() if k != LOAD]
    lines += ["", *_what_is_measured(), ""]
    if notes:
        lines += [notes.rstrip(), ""]
    return "\n".join(lines)


def _what_is_measured() -> list[str]:
    return [
        "What the columns are:",
        "",
        "- **recovered**: runs whose reported best model recovers the target, out of the "
        "seeds run. The check is the same for every method and is made against the true, "
        "noiseless function on 1000 fresh points from the data's input distribution, in "
        "float64. Nguyen-*: NRMSE < 1e-10 (primary) or `sympy.simplify(model - target) == 0` "
        f"(secondary, tried when the primary fails, {SYMPY_TIMEOUT:g} s timeout). The same "
        "check scores the noisy runs: an NRMSE below 1e-10 against the true function is an "
        "exact identity, so this is symbolic recovery, not a fit to the noise. Constant-* "
        "(exact equality of fitted constants is impossible): NRMSE < 1e-3 on fresh noiseless "
        "points **and** the same structure as the target: both simplified and expanded by "
        "sympy, constants below 1e-6 dropped, every remaining non-integer number replaced by "
        "one symbol c, then compared for equality (so 3.39x³+2.12x²+1.78x and "
        "c·x³+c·x²+c·x match, Horner forms included).",
        "- **run time**: median wall time of one run, including the method's set-up; it is "
        "not a time to first recovery. Our engine cannot stop at a recovery, so it always "
        "uses the full budget (plus set-up: tracing the model, the prior tables, the "
        "initial state); pyoperon stops at its `max_time` (whole seconds); gplearn stops "
        "when the next generation would pass the budget, or at its own stopping criterion "
        "(a training error of exactly 0). Median time to first recovery (BENCHMARKS.md) "
        "is therefore **not measured** here.",
        "- **ours: P(true)**: the fraction of the run's kept draws (one chain, after "
        f"{NUM_WARMUP} warmup sweeps) that recover the target by the same check; a short "
        "single chain, so it measures how much of the run was spent on the true program "
        "(it is 0 when the chain never found it), not a converged posterior probability. "
        "**draws**: median number of kept draws (one sweep = 10 program moves plus a "
        "noise-scale move).",
        "- **Our model**: `f ~ ProgramPrior(koza` for Nguyen-*, `arith` for Constant-*, "
        f"`max_depth={MAX_DEPTH})` (every target is expressible within it: the harness "
        "carries each as a program), `y ~ Normal(f(x), s0 + sigma)` with `sigma ~ "
        f"HalfNormal(std(y))` and a fixed floor `s0 = {SIGMA_FLOOR:g}·std(y)`. The floor is "
        "there for noiseless data: with a learnable sigma and no floor, an exact fit makes "
        "the posterior of sigma pile up at 0 (density ∝ sigma^-20 with 20 points), so "
        "round-off differences of 1e-16 between equivalent trees would decide between them; "
        "with it, exact programs all fit equally well and the prior decides. Constants "
        "(arith): prior Normal(0, 1), Laplace refits (MOVES.md move 5). "
        "`infer(method=\"mcmc\", num_chains=1, chain_method=\"sequential\", "
        f"max_time=budget, num_warmup={NUM_WARMUP}, num_samples=10**7)`; the RunWarning "
        "that max_time cut the run short is expected and recorded. Reported best program: "
        "the kept draw with the highest log joint.",
        "- **pyoperon**: Nguyen-* through its lower-level bindings (BENCHMARKS.md fairness "
        "notes): Koza primitives, variable weights fixed at 1 (coefficient initialiser at "
        "1, no coefficient mutation, no local optimisation), MSE without linear scaling, "
        "otherwise the wrapper's defaults (population 1000, tournament 5, max length 50, "
        "max depth 10), `max_time` = budget, one thread. Constant-* through its "
        "scikit-learn wrapper as is (constants, r2 with scale and offset). Its best model "
        "is printed with 17 digits and scored in float64 (it computes in float32).",
        "- **gplearn**: `SymbolicRegressor` defaults (population 1000, tournament 20, "
        "parsimony 0.001, MAE) with the Koza set: add, sub, mul, div, sin, cos, log (its "
        "protected versions) and a protected exp from `make_function` (exp(a) for a < 100, "
        "else 0); `const_range=None` on Nguyen-*, (−5, 5) on Constant-*; one generation per "
        "`fit` with `warm_start`. Its numeric check uses gplearn's own float64 execution "
        "(protections included); its sympy form drops the protections except log|a|.",
    ]


def write_section(path: Path, section: str) -> None:
    """Replace this harness's section of ``path``, or append it."""
    replace_sections(path, section, (HEADING,))


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
