"""The MCMC driver: chains, warmup and adaptation, progress, seeds, parallelism.

Kernels are pure; this module owns everything around them. One master seed spawns
independent per-chain streams (``numpy.random.SeedSequence.spawn``), so the same seed gives
bitwise-identical draws whether chains run in processes or in sequence. Chains run in
parallel processes by default (``spawn`` context, one torch thread each) or on any
``concurrent.futures.Executor``; a chain that crashes is reported and the others are kept.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import math
import os
import pickle
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context
from typing import Any, NamedTuple

import numpy as np
from tqdm.auto import tqdm

from inference.checkpoint import FORMAT, chain_path, read, save
from inference.config import McmcOptions, RunConfig
from inference.mcmc.gibbs import Gibbs, GibbsState
from inference.mcmc.search import program_keys, search
from inference.mcmc.tempering import geometric_ladder, swap
from inference.target import Target
from inference.threads import one_thread
from ppl.errors import PPLError
from ppl.trace import PROGRAM

__all__ = ["ChainResult", "ChainSpec", "Searched", "local_workers", "make_specs", "pool_start",
           "run_chain", "run_chains", "search_chain", "searches", "unguarded_call"]


class ChainSpec(NamedTuple):
    """Everything one chain needs (picklable, so it can run in another process)."""

    model: Callable[..., Any]
    """The model."""
    args: tuple[Any, ...]
    """Its positional arguments."""
    kwargs: dict[str, Any]
    """Its keyword arguments."""
    config: RunConfig
    """The run's options (without the executor, which stays with the caller)."""
    chain: int
    """This chain's index."""
    seed: np.random.SeedSequence
    """This chain's stream, spawned from the master seed."""
    given: dict[str, Any] | None = None
    """Sites held at given values (query)."""
    data_sites: list[str] | None = None
    """Given sites that are observations (query)."""
    resume: bool = False
    """Continue from this chain's checkpoint file (``config.checkpoint``)."""
    searched: Searched | None = None
    """This chain's search phase, already run (:func:`search_chain`): the exact phase
    continues from it instead of searching."""
    pool: tuple[tuple[float, dict[str, Any]], ...] = ()
    """Every chain's search's best state (log joint at β = 1, values), by chain: where
    the exact phase may start instead (:func:`pool_start`)."""


class Searched(NamedTuple):
    """A chain's search phase, handed on to its exact phase (:func:`search_chain`)."""

    values: dict[str, Any]
    """The best state the search found."""
    info: dict[str, Any]
    """What the search did (:attr:`ChainResult.search`; ``info["log_joint"]`` is the best
    state's log joint at β = 1)."""
    rng: Mapping[str, Any]
    """The chain's random stream after the search (its bit generator's state)."""
    step_size: dict[str, float]
    """The step sizes the search adapted (:attr:`GibbsState.step_size`)."""
    iteration: int
    """Steps the search's β = 1 walker took (drives the adaptation schedule)."""
    seconds: float
    """Seconds the chain has spent (the budget's clock goes on from there)."""


class ChainResult(NamedTuple):
    """The draws and statistics of one chain."""

    chain: int
    draws: dict[str, list[Any]]
    """Latent site -> list of draws (Programs, or numpy arrays)."""
    stats: dict[str, np.ndarray]
    """lp, acceptance_rate, move, accepted, n_invalid per draw."""
    pointwise: dict[str, np.ndarray]
    """Observed site -> (draws, *shape) log-likelihoods."""
    error: str | None
    """The traceback of a crashed chain."""
    elapsed: float
    """Seconds spent in this chain."""
    cut_short: bool
    """True when ``max_time`` stopped the chain early."""
    search: dict[str, Any] | None = None
    """What the search phase did (:class:`~inference.mcmc.search.SearchResult`'s numbers,
    and ``history``: (seconds since the chain began, the best state's programs as text)
    each time the best law changed), or None without one."""


def run_chain(spec: ChainSpec) -> ChainResult:
    """Run one chain: init, ``num_warmup`` adaptive sweeps, ``num_samples`` recorded ones,
    on one torch thread and one BLAS thread (:func:`inference.threads.one_thread`)."""
    with one_thread():
        return _run_chain(spec)


def _run_chain(spec: ChainSpec) -> ChainResult:
    start = time.perf_counter()
    draws: dict[str, list[Any]] = {}
    stats: dict[str, list[Any]] = {k: [] for k in ("lp", "acceptance_rate", "move",
                                                     "accepted", "n_invalid", "diverging")}
    pointwise: dict[str, list[np.ndarray]] = {}
    found: dict[str, Any] | None = None
    try:
        rng = np.random.default_rng(spec.seed)
        cfg = spec.config
        kernels = _kernels(spec)
        target = kernels[0].target
        num_warmup, num_samples, thin = cfg.warmup, cfg.num_samples, cfg.thin
        first, warm_until = 0, None
        swaps = np.full(len(kernels) - 1, np.nan)
        if spec.resume:
            snap = read(chain_path(_path(cfg), spec.chain), [k.target for k in kernels])
            states, first, num_warmup = snap["states"], snap["sweep"], snap["num_warmup"]
            rng.bit_generator.state = snap["rng"]
            draws, stats, pointwise = snap["draws"], snap["stats"], snap["pointwise"]
            found, swaps = snap["search"], snap["swaps"]
            for kernel, state in zip(kernels, states, strict=True):
                kernel.target.check_fast([state.values])  # as its init did
        else:
            if spec.searched is not None:  # the search ran (search_chain): go on from it
                rng.bit_generator.state = spec.searched.rng
                start = time.perf_counter() - spec.searched.seconds
                begin = pool_start(rng, spec.chain, spec.pool)
                found = {**spec.searched.info, "start": begin}
                values = dict(spec.pool[begin][1])
                target.check_fast([values])  # as an init does
                states = [kernels[0].restart(rng, GibbsState(
                    values, math.nan, dict(spec.searched.step_size),
                    spec.searched.iteration), values, cfg.warmup)]
                states += [k.init(rng, cfg.init_values, num_warmup) for k in kernels[1:]]
            else:
                states = [k.init(rng, cfg.init_values, num_warmup) for k in kernels]
            if spec.searched is None and searches(cfg, target):
                assert cfg.max_time is not None
                deadline = start + cfg.mcmc.search_share * cfg.max_time
                last, values, found = _search(rng, spec, kernels[0], states[0], deadline,
                                              start)
                states[0] = kernels[0].restart(rng, last, values, cfg.warmup)
            draws = {name: [] for name in target.latents}
            pointwise = {name: [] for name in target.observed}
            if len(kernels) > 1:
                stats["swap_accepted"] = []
            # after a search, warmup yields to the budget: it ends at num_warmup sweeps or
            # when half the time left is spent, so the exact chain always keeps draws
            if found is not None and cfg.max_time is not None:
                warm_until = (time.perf_counter() + start + cfg.max_time) / 2
        bar = tqdm(total=num_warmup + num_samples * thin, initial=first, position=spec.chain,
                   desc=f"chain {spec.chain}", disable=not cfg.progress, leave=False)
        for i in itertools.count(first):
            if i >= num_warmup + num_samples * thin:
                break
            if cfg.checkpoint is not None and i > first and i % cfg.checkpoint_every == 0:
                save(chain_path(_path(cfg), spec.chain), {
                    "format": FORMAT, "chain": spec.chain, "sweep": i,
                    "num_warmup": num_warmup, "states": states,
                    "rng": rng.bit_generator.state, "draws": draws, "stats": stats,
                    "pointwise": pointwise, "search": found, "swaps": swaps},
                    [k.target for k in kernels])
            now = time.perf_counter()
            if cfg.max_time is not None and now - start > cfg.max_time:
                if found is not None and not stats["lp"]:
                    # a search that overran the budget (a loaded machine) still hands its
                    # best state to the user: one exact sweep from it is kept as a draw
                    states[0], info = kernels[0].step(rng, states[0], adapt=False)
                    _record(target, states[0], info, draws, stats, pointwise)
                    if len(kernels) > 1:
                        stats["swap_accepted"].append(np.full(len(kernels) - 1, np.nan))
                bar.close()
                return _result(spec, draws, stats, pointwise, None, start, True, found)
            if warm_until is not None and i < num_warmup and now > warm_until:
                num_warmup = i
            warm = i < num_warmup
            infos = []
            for k, kernel in enumerate(kernels):
                states[k], info = kernel.step(rng, states[k], adapt=warm)
                infos.append(info)
            if len(kernels) > 1:
                states, swaps = swap(rng, kernels, states, i % 2)
            bar.update()
            if warm or (i - num_warmup) % thin:
                continue
            _record(target, states[0], infos[0], draws, stats, pointwise)
            if len(kernels) > 1:
                stats["swap_accepted"].append(swaps.copy())
        bar.close()
    except PPLError:  # bad input (e.g. no valid initial state) is the caller's error
        raise
    except Exception:  # a crashed chain is reported; the other chains are kept
        return _result(spec, draws, stats, pointwise, traceback.format_exc(), start, False,
                       found)
    return _result(spec, draws, stats, pointwise, None, start, False, found)


def searches(config: RunConfig, target: Target) -> bool:
    """Whether a chain runs the search phase first: a time budget, a program site and a
    positive ``search_share`` (:mod:`inference.mcmc.search`).

    Examples
    --------
    >>> import ppl
    >>> from inference.target import Target
    >>> def model():
    ...     ppl.sample("f", ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2))
    >>> target = Target(model, (), {})
    >>> searches(RunConfig.build(max_time=10), target), searches(RunConfig.build(), target)
    (True, False)
    """
    return (config.max_time is not None and config.mcmc.search_share > 0
            and any(site.kind == PROGRAM for site in target.latents.values()))


def _kernels(spec: ChainSpec) -> list[Gibbs]:
    """The chain's kernels, one per rung of its ladder (β = 1 first)."""
    cfg = spec.config
    return [_kernel(spec, float(beta), cfg.mcmc)
            for beta in geometric_ladder(cfg.mcmc.num_rungs, cfg.mcmc.beta_min)]


def _kernel(spec: ChainSpec, beta: float, options: McmcOptions) -> Gibbs:
    """The chain's kernel at inverse temperature ``beta`` with program-move ``options``."""
    cfg = spec.config
    target = Target(spec.model, spec.args, spec.kwargs,
                    seed=int(spec.seed.generate_state(1)[0]), given=spec.given,
                    data_sites=spec.data_sites, beta=beta)
    return Gibbs(target, options, cfg.nuts, cfg.backend, cfg.amortized)


def search_chain(spec: ChainSpec) -> Searched | ChainResult:
    """A chain's search phase alone (its first ``search_share`` of ``max_time``), to be
    continued by :func:`run_chain` with ``spec._replace(searched=...)``: how chains share
    what their searches found (:func:`pool_start`). A crashed search is the chain's
    result (a :class:`ChainResult` with its error)."""
    with one_thread():
        start = time.perf_counter()
        cfg = spec.config
        assert cfg.max_time is not None
        try:
            rng = np.random.default_rng(spec.seed)
            kernel = _kernel(spec, 1.0, cfg.mcmc)  # the exact phase builds its ladder
            state = kernel.init(rng, cfg.init_values, cfg.warmup)
            deadline = start + cfg.mcmc.search_share * cfg.max_time
            last, values, found = _search(rng, spec, kernel, state, deadline, start)
        except PPLError:
            raise
        except Exception:  # reported like a chain that crashed while sampling
            return _result(spec, {}, {}, {}, traceback.format_exc(), start, False)
        return Searched(values, found, rng.bit_generator.state,
                        last.step_size, last.iteration, time.perf_counter() - start)


def pool_start(rng: np.random.Generator, chain: int,
               pool: Sequence[tuple[float, dict[str, Any]]]) -> int:
    """Whose search's best state chain ``chain`` starts its exact phase from: its own when
    its programs are the best state's (the same law, constants aside), else its own with
    probability e^(−δ), δ = (best log joint in ``pool``) − (its own), else the best
    chain's (the first of equals). A chain stuck on a law e^8 times less dense than
    another chain's moves there; chains on laws of about equal density keep their own, so
    R-hat still compares them. Only where chains start depends on the others; each exact
    chain is then an MH chain as any other (MOVES.md, "Initialisation").

    Examples
    --------
    >>> import numpy as np, ppl
    >>> prior = ppl.ProgramPrior("arith", inputs=["x"])
    >>> law, near = prior.parse("(x * 2.0)"), prior.parse("(x + x)")
    >>> pool = [(20.0, {"f": law}), (11.0, {"f": near}), (17.0, {"f": law})]
    >>> rng = np.random.default_rng(0)
    >>> [pool_start(rng, k, pool) for k in range(3)]
    [0, 0, 2]
    """
    lj = np.array([item[0] for item in pool], dtype=float)
    best = int(np.argmax(np.where(np.isfinite(lj), lj, -np.inf)))
    if not math.isfinite(lj[chain]):
        keep = 0.0
    elif program_keys(pool[chain][1]) == program_keys(pool[best][1]):
        keep = 1.0
    else:
        keep = math.exp(min(0.0, lj[chain] - lj[best]))
    return chain if rng.random() < keep else best


def _search(rng: np.random.Generator, spec: ChainSpec, kernel: Gibbs, state: GibbsState,
            deadline: float, start: float
            ) -> tuple[GibbsState, dict[str, Any], dict[str, Any]]:
    """The search phase until ``deadline`` (a ``time.perf_counter`` time): ``kernel``
    (β = 1) and hotter walkers on the search ladder; the β = 1 walker's last state (its
    step sizes adapted), the best state found (where the exact chain starts) and what the
    search did."""
    cfg = spec.config
    options = dataclasses.replace(cfg.mcmc, joint_noise=cfg.mcmc.search_joint_noise)
    walkers, states = [kernel], [state]
    for beta in geometric_ladder(cfg.mcmc.search_rungs, cfg.mcmc.search_beta_min)[1:]:
        walkers.append(_kernel(spec, float(beta), options))
        states.append(walkers[-1].init(rng, cfg.init_values, cfg.warmup))
    began = time.perf_counter()
    exact = kernel.context
    kernel.context = exact._replace(options=options)  # the search's options, then back
    try:
        states, found = search(rng, walkers, states, deadline - began,
                               cfg.mcmc.search_patience, descent=cfg.mcmc.search_descent)
    finally:
        kernel.context = exact
    programs = [n for n, site in kernel.target.latents.items() if site.kind == PROGRAM]
    info: dict[str, Any] = {
        "sweeps": float(found.sweeps), "restarts": float(found.restarts),
        "swap_rate": found.swap_rate, "seconds": found.seconds,
        "log_joint": found.log_joint,
        "best": {n: str(found.values[n]) for n in programs},
        "history": [(round(began - start + t, 4), {n: str(v[n]) for n in programs})
                    for t, v in found.history]}
    return states[0], found.values, info


def _path(cfg: RunConfig) -> str:
    assert cfg.checkpoint is not None
    return os.fspath(cfg.checkpoint)


def _record(target: Target, state: Any, info: Any, draws: dict[str, list[Any]],
            stats: dict[str, list[Any]], pointwise: dict[str, list[np.ndarray]]) -> None:
    """Append rung 0's current draw and its statistics."""
    for name, value in state.values.items():
        draws[name].append(value if target.latents[name].kind == PROGRAM
                           else value.detach().cpu().numpy().copy())
    for name, arr in target.pointwise(state.values).items():
        pointwise[name].append(arr)
    stats["lp"].append(state.log_joint)
    stats["acceptance_rate"].append(info.acceptance_rate)
    stats["move"].append(info.move)
    stats["accepted"].append(info.accepted)
    stats["n_invalid"].append(info.n_invalid)
    stats["diverging"].append(info.diverging)


def _result(spec: ChainSpec, draws: dict[str, list[Any]], stats: dict[str, list[Any]],
            pointwise: dict[str, list[np.ndarray]], error: str | None, start: float,
            cut: bool, search: dict[str, Any] | None = None) -> ChainResult:
    return ChainResult(spec.chain, draws, {k: np.asarray(v) for k, v in stats.items()},
                       {k: np.asarray(v) for k, v in pointwise.items()}, error,
                       time.perf_counter() - start, cut, search)


def local_workers(jobs: Sequence[Any], chain_method: str, stacklevel: int = 2) -> int:
    """How many local worker processes run the chains' ``jobs`` (picklable tuples with a
    ``model``): min(jobs, cores) with ``chain_method="parallel"``, else 1 (in this process,
    one after another): one job or one core, ``"sequential"``, a model a spawned worker
    cannot import (a closure, a function defined in a REPL or notebook), or a script that
    starts the run at import time (:func:`unguarded_call`; a RunWarning, ``stacklevel``
    counted from the caller of this function).

    Examples
    --------
    >>> local_workers(["one chain"], "parallel"), local_workers(["a", "b"], "sequential")
    (1, 1)
    """
    workers = min(len(jobs), os.cpu_count() or 1)
    if chain_method != "parallel" or workers < 2:
        return 1
    where = unguarded_call()
    if where is not None:
        from inference.api import RunWarning  # api imports this module

        warnings.warn(
            f"The {len(jobs)} chains ran one after another in this process, not in "
            f"parallel: the run starts at import time of the script ({where}), and a worker "
            "process imports the script and would start it again. Put the call under "
            "`if __name__ == \"__main__\":` for parallel chains (or pass "
            "chain_method='sequential' to silence this).", RunWarning, stacklevel=stacklevel + 1)
        return 1
    return workers if _picklable(jobs[0]) else 1


def _picklable(spec: Any) -> bool:
    """Whether a spawned worker can rebuild the job: it must pickle, and a model defined
    in ``__main__`` needs a script file the worker can import (not a REPL or notebook)."""
    if getattr(spec.model, "__module__", None) == "__main__":
        script = getattr(sys.modules.get("__main__"), "__file__", None)
        if not script or not os.path.exists(script):
            return False
    try:
        pickle.dumps(spec)
    except Exception:
        return False
    return True


def unguarded_call() -> str | None:
    """``"script:line"`` when this call runs at import time of the main script, outside an
    ``if __name__ == "__main__":`` block: a spawned worker imports the main script and would
    run it again (the pool breaks). None when workers can start safely (no main script, the
    call under the guard, or not made from the script's top level).

    Examples
    --------
    >>> unguarded_call() is None     # a doctest's caller is not a main script's top level
    True
    """
    main = sys.modules.get("__main__")
    script = getattr(main, "__file__", None)
    if main is None or not script or not os.path.exists(script):
        return None
    frame = inspect.currentframe()
    while frame is not None and not (frame.f_globals is vars(main)
                                     and frame.f_code.co_name == "<module>"):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return None
    try:
        with open(script, encoding="utf-8") as fh:
            tree = ast.parse(fh.read())
    except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
        return None
    line = frame.f_lineno
    return None if _guarded(tree.body, line) else f"{script}:{line}"


def _guarded(body: list[ast.stmt], line: int) -> bool:
    """Whether ``line`` lies in the body of an ``if __name__ == "__main__":`` among the
    statements ``body`` (at any nesting)."""
    for node in body:
        if not node.lineno <= line <= (node.end_lineno or node.lineno):
            continue
        if isinstance(node, ast.If) and _is_main_test(node.test) and any(
                s.lineno <= line <= (s.end_lineno or s.lineno) for s in node.body):
            return True
        inner = [c for c in ast.iter_child_nodes(node) if isinstance(c, ast.stmt)]
        inner += [s for h in getattr(node, "handlers", []) for s in h.body]
        return _guarded(inner, line)
    return False


def _is_main_test(test: ast.expr) -> bool:
    """``__name__ == "__main__"`` (either side)."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1
            and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    return any(isinstance(a, ast.Name) and a.id == "__name__" for a in sides) and any(
        isinstance(a, ast.Constant) and a.value == "__main__" for a in sides)


def run_chains(specs: list[ChainSpec], chain_method: str = "parallel",
               executor: Executor | None = None, pooled: bool = False) -> list[ChainResult]:
    """Run chains on ``executor``, in local processes ("parallel") or one after another
    ("sequential"). Models a worker cannot import (closures, functions defined in a REPL or
    notebook) fall back to sequential, and so does a script that starts the run at import
    time (:func:`unguarded_call`), with a RunWarning. With ``pooled``, every chain's search
    phase runs first (:func:`search_chain`) and each exact phase may start from another
    chain's best state (:func:`pool_start`)."""
    if executor is not None:
        if isinstance(executor, ThreadPoolExecutor):
            raise PPLError("Chains cannot run in threads: they would share Pyro's handler "
                           "stack. Pass a process-based executor (ProcessPoolExecutor, a Dask "
                           "client's) or use chain_method='sequential'.")
        return _phases(specs, pooled, lambda fn, todo: [
            _collect(spec, future) for spec, future in
            zip(todo, [executor.submit(fn, s) for s in todo], strict=True)])
    workers = local_workers(specs, chain_method, stacklevel=4)
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as ex:
            return _phases(specs, pooled, lambda fn, todo: list(ex.map(fn, todo)))
    return _phases(specs, pooled, lambda fn, todo: [fn(s) for s in todo])


def _phases(specs: list[ChainSpec], pooled: bool,
            run: Callable[[Callable[[ChainSpec], Any], list[ChainSpec]], list[Any]]
            ) -> list[ChainResult]:
    """The chains through ``run`` (a map over specs): with ``pooled``, all searches, then
    all exact phases, each given every chain's best state; else one call per chain."""
    if not pooled:
        return run(run_chain, specs)
    found = run(search_chain, specs)
    pool = tuple((f.info["log_joint"], f.values) if isinstance(f, Searched) else (-math.inf, {})
                 for f in found)
    todo = [spec._replace(searched=f, pool=pool)
            for spec, f in zip(specs, found, strict=True) if isinstance(f, Searched)]
    done = iter(run(run_chain, todo))
    return [next(done) if isinstance(f, Searched) else f for f in found]


def _collect(spec: ChainSpec, future: Any) -> Any:
    """A chain's result (or its search's, :class:`Searched`) from its future; a chain
    whose worker died (a killed process, a lost connection: the executor raises) is a
    crashed chain, reported like one that raised, so the other chains' draws are kept."""
    try:
        result = future.result()
    except Exception as err:  # whatever the executor raises for a lost worker
        return ChainResult(spec.chain, {}, {}, {}, f"chain {spec.chain}'s worker failed: "
                           f"{type(err).__name__}: {err}", 0.0, False)
    return result


def make_specs(model: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any],
               config: RunConfig, given: dict[str, Any] | None = None,
               data_sites: list[str] | None = None) -> list[ChainSpec]:
    """One spec per chain, each with its own stream spawned from ``config.seed``."""
    streams = np.random.SeedSequence(config.seed).spawn(config.num_chains)
    chain_config = dataclasses.replace(config, executor=None,
                                       progress=config.show_progress)
    return [ChainSpec(model, tuple(args), dict(kwargs), chain_config, c, streams[c], given,
                      data_sites)
            for c in range(config.num_chains)]
