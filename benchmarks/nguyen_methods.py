"""B1's methods (``benchmarks/nguyen.py``): one run of our engine (without or with a
trained proposal: ``ours``, ``ours+q``), pyoperon or gplearn on one problem and seed, scored
by the protocol's recovery check.

Each runner takes ``(problem, seed, budget, noise)`` (``ours+q`` also the file of its
proposal, ``benchmarks/nguyen_proposal.py``) and returns the method's part of a record: its
best program, the check's verdict, timings and its own search statistics.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import sympy

from benchmarks.nguyen_protocol import (
    CONSTANT_NRMSE,
    EXACT_NRMSE,
    MAX_DEPTH,
    NUM_WARMUP,
    SIGMA_FLOOR,
    SYMPY_CHECKS,
    Problem,
    check,
    fresh_points,
    make_data,
    nrmse,
    skeleton,
    symbols,
    sympy_equal,
    target_expr,
)


def _text(expr: Any) -> str | None:
    return None if expr is None else str(expr)


# ---------------------------------------------------------------------- our engine
def ours_model(grammar: str, inputs: Sequence[str], scale: float) -> Callable[..., None]:
    """Our model of a data set: ``f ~ ProgramPrior(grammar, inputs, max_depth=MAX_DEPTH)``,
    ``sigma ~ HalfNormal(scale)``, ``obs ~ Normal(f(*columns), sigma + SIGMA_FLOOR·scale)``
    at ``N_POINTS`` points; called as ``model(*columns, obs=y)``, one column per input: the
    library's :func:`ppl.regression` (the user's default model, the same floor).

    ``run_ours`` builds it with ``scale = std(y)``; the ``ours+q`` proposals are trained
    on it with ``scale = 1`` (``benchmarks/nguyen_proposal.py``). The scale enters no part
    of a proposal's key, so the proposal loads for every run's model of its grammar and
    inputs.
    """
    import ppl

    prior = ppl.ProgramPrior(grammar, inputs=list(inputs), max_depth=MAX_DEPTH)
    return ppl.regression(prior, scale, SIGMA_FLOOR, observed="obs")


def run_ours(problem: Problem, seed: int, budget: float, noise: float,
             proposal_file: str | None = None, options: dict[str, Any] | None = None
             ) -> dict[str, Any]:
    """One run of our engine (``options``: more infer options, e.g. ``structure_weights``);
    with ``proposal_file`` (method ``ours+q``) the same run with the trained proposal's
    neural moves (``infer(..., proposal=q)``), q loaded for, and checked against, this
    run's model."""
    import torch

    import ppl
    from inference import infer
    from inference.api import RunWarning

    torch.set_num_threads(1)
    X, y, _ = make_data(problem, seed, noise)
    X_fresh, truth = fresh_points(problem, seed)
    scale = float(np.std(y))
    floor = SIGMA_FLOOR * scale
    model = ours_model(problem.grammar, problem.inputs, scale)
    prior = ppl.ProgramPrior(problem.grammar, inputs=list(problem.inputs), max_depth=MAX_DEPTH)
    columns = [X[:, i].copy() for i in range(X.shape[1])]
    extra: dict[str, Any] = {}
    options = dict(options or {})
    if proposal_file is not None:
        from benchmarks.nguyen_proposal import load

        options["proposal"], extra = load(proposal_file, model, columns, y)
    start, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        post = infer(model, *columns, obs=y, method="mcmc", num_chains=1,
                     chain_method="sequential", max_time=budget, num_samples=10**7,
                     num_warmup=NUM_WARMUP, progress=False, seed=seed, **options)
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
    searched = (post.attrs.get("search") or [None])[0]
    best_from = "draws"
    if searched is not None and searched["log_joint"] > float(lp.max()):
        best, best_from = prior.parse(searched["best"]["f"]), "search"
    syms = symbols(problem)

    def as_sympy(p: Any) -> Any:
        e = p.to_sympy()
        return e.xreplace({s: syms[s.name] for s in e.free_symbols})

    best_expr = as_sympy(best)
    result = check(problem, best_expr, best(**env), truth, X_fresh)
    first = first_recovery(problem, prior, searched, env, truth, X_fresh, as_sympy)
    top = post.programs("f", top=1, simplify=False).iloc[0]
    p_true, checked = _posterior_true(problem, draws, lp, env, truth, X_fresh, as_sympy)
    return {"best_program": str(best), "best_sympy": _text(best_expr), **result,
            "wall_time": wall, "cpu_seconds": cpu,
            "chain_seconds": float(post.attrs["seconds"][0]),
            "num_draws": len(draws), "num_warmup": NUM_WARMUP,
            "best_log_joint": float(lp.max()), "best_from": best_from,
            "first_recovery_seconds": first,
            "search": None if searched is None else {
                k: searched[k] for k in ("sweeps", "restarts", "swap_rate", "seconds")},
            "top_program": str(top["program"]), "top_probability": float(top["probability"]),
            "p_true": p_true, "distinct_programs": len({p.key for p in draws}),
            "sympy_checked_programs": checked, "move_sample": _move_sample(post),
            "sigma_median": float(np.median(post.samples["sigma"])) + floor,
            "cut_short": bool(cut), "warnings": other[:5],
            "settings": {"grammar": problem.grammar, "max_depth": MAX_DEPTH,
                         "sigma": f"HalfNormal({scale:.4g}) + {floor:.3g}",
                         "num_chains": 1, "program_moves": 10}, **extra}


def first_recovery(problem: Problem, prior: Any, searched: dict[str, Any] | None,
                   env: dict[str, np.ndarray], truth: np.ndarray, X_fresh: np.ndarray,
                   as_sympy: Callable[[Any], Any]) -> float | None:
    """Seconds from the chain's start until the search's best program first recovered the
    target (by :func:`check`), or None (no search, or never during the search)."""
    def recovered(best: dict[str, Any]) -> bool:
        program = prior.parse(best["f"])
        with np.errstate(all="ignore"):
            return bool(check(problem, as_sympy(program), program(**env), truth,
                              X_fresh)["recovered"])

    return first_of(searched.get("history", []) if searched else [], recovered)


def first_of(history: Sequence[tuple[float, Any]], recovered: Callable[[Any], bool]
             ) -> float | None:
    """The seconds of the first (seconds, best program) of ``history`` that ``recovered``
    accepts, or None (checked after a run's budget, never inside it).

    Examples
    --------
    >>> first_of([(0.5, "x"), (2.0, "x*x"), (3.0, "x*x*x")], lambda b: b.count("x") > 1)
    2.0
    """
    for seconds, best in history:
        if recovered(best):
            return float(seconds)
    return None


def _move_sample(post: Any) -> dict[str, dict[str, float]]:
    """The first structure move of each kept sweep (``stats["move"]``, a 1-in-10 sample of
    the moves): how often each kind was drawn and the fraction accepted."""
    moves = np.asarray(post.stats["move"]).reshape(-1)
    accepted = np.asarray(post.stats["accepted"], dtype=bool).reshape(-1)
    return {str(m): {"count": int(np.sum(moves == m)),
                     "accepted": float(np.mean(accepted[moves == m]))}
            for m in sorted(set(moves.tolist())) if m}


def run_ours_q(problem: Problem, seed: int, budget: float, noise: float,
               proposal_file: str | None = None, options: dict[str, Any] | None = None
               ) -> dict[str, Any]:
    """Method ``ours+q``: :func:`run_ours` with the proposal saved at ``proposal_file``."""
    if proposal_file is None:
        raise ValueError("ours+q needs the file of its trained proposal (proposal_file=); "
                         "the harness trains or finds it (benchmarks/nguyen_proposal.py).")
    return run_ours(problem, seed, budget, noise, proposal_file, options)


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
    names = {h: f"v{i}" for i, h in enumerate(inputs)}
    history: list[tuple[float, str]] = []
    began = time.perf_counter()

    def report() -> None:  # after each generation: the best model, when it changed
        best = op.InfixFormatter.Format(gp.BestModel.Genotype, names, 17)
        if not history or history[-1][1] != best:
            history.append((time.perf_counter() - began, best))

    gp.Run(op.RandomGenerator(np.uint64(seed)), report, 1, False)
    text = op.InfixFormatter.Format(gp.BestModel.Genotype, names, 17)
    _keep = (mutators, creator, ones, evaluator)  # C++ objects held by pointer
    del _keep
    return text, {"generations": int(gp.Generation), "evaluations": int(evaluator.CallCount),
                  "interface": "lower-level bindings, weights fixed at 1, no scaling",
                  "history": history}


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

    def recovered(best: str) -> bool:
        try:
            best_expr = sympy.sympify(best, locals=local)
        except (sympy.SympifyError, TypeError, SyntaxError):
            return False
        return bool(check(problem, best_expr, None, truth, X_fresh)["recovered"])

    first = first_of(info.pop("history", []), recovered)
    return {"best_program": text, "best_sympy": _text(expr), **result, "wall_time": wall,
            "cpu_seconds": cpu, **info, "first_recovery_seconds": first,
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
    history: list[tuple[float, Any]] = []  # (seconds, the best program) when it changed
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        while True:
            t0 = time.perf_counter()
            est.set_params(generations=generations + 1)
            est.fit(X, y)
            generations += 1
            if not history or str(history[-1][1]) != str(est._program):
                history.append((time.perf_counter() - start, est._program))
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

    def recovered(best: Any) -> bool:
        try:
            best_expr = gplearn_sympy(best.program, names)
        except (KeyError, IndexError, TypeError, ValueError):
            return False
        with np.errstate(all="ignore"):
            out = np.asarray(best.execute(X_fresh), dtype=np.float64)
        return bool(check(problem, best_expr, out, truth, X_fresh)["recovered"])

    first = first_of(history, recovered)
    return {"best_program": str(program), "best_sympy": _text(expr), **result,
            "first_recovery_seconds": first,
            "wall_time": wall, "cpu_seconds": cpu, "generations": generations,
            "stopped_early": stopped,
            "warnings": [f"{w.category.__name__}: {w.message}" for w in caught][:5]}


RUNNERS: dict[str, Callable[..., dict[str, Any]]] = {
    "ours": run_ours, "ours+q": run_ours_q, "pyoperon": run_pyoperon, "gplearn": run_gplearn}
"""Method name -> runner ``(problem, seed, budget, noise)``; ``ours+q`` also takes
``proposal_file``."""
