"""B1's protocol (``benchmarks/nguyen.py``): the problems, their data, the settings every
method shares and the recovery check that scores them all alike.

The harness (``benchmarks.nguyen``), the methods it runs (``benchmarks.nguyen_methods``) and
its report (``benchmarks.nguyen_report``) read everything they share from here.
"""

from __future__ import annotations

import contextlib
import math
import signal
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy

from ppl.models import NOISE_FLOOR

LOAD = "load average (1 min) before the run"
"""Key of the machine record read before a run (the report quotes it with the command)."""
METHODS = ("ours", "ours+q", "pyoperon", "gplearn")
"""The methods compared, in the order of the report's columns. ``ours+q`` is ours with a
proposal trained on the grammar's prior (``benchmarks/nguyen_proposal.py``)."""
DEFAULT_METHODS = ("ours", "pyoperon", "gplearn")
"""The methods run when ``--methods`` is not given (``ours+q`` trains proposals first, minutes
of extra time, so it runs only when asked for)."""
OURS = ("ours", "ours+q")
"""Our engine's methods (their records carry P(true) and draws)."""
N_POINTS = 20
N_FRESH = 1000
MAX_DEPTH = 6
EXACT_NRMSE = 1e-10
"""Primary recovery criterion (noiseless and noisy Nguyen): NRMSE on fresh points."""
CONSTANT_NRMSE = 1e-3
"""Constant-* problems: NRMSE on fresh noiseless points below this and the same structure."""
SIGMA_FLOOR = NOISE_FLOOR
"""Noise-scale floor of our model, relative to std(y): the library's default
(:data:`ppl.models.NOISE_FLOOR`, docs/decisions.md)."""
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
