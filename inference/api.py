"""``infer`` and ``load``: write a model, call infer, get a Posterior."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

import numpy as np

from inference.enumerate import enumerate_posterior
from inference.importance import importance_posterior
from inference.mcmc.driver import ChainResult, make_specs, run_chains, show_progress
from inference.mcmc.gibbs import Gibbs
from inference.mcmc.tempering import geometric_ladder
from inference.nuts import NutsConfig, run_nuts
from inference.results import Posterior, load
from inference.target import PROGRAM, Target
from ppl.backend import BACKENDS
from ppl.errors import PPLError

__all__ = ["METHODS", "RunWarning", "infer", "load", "run_target"]

METHODS = ("auto", "mcmc", "enumerate", "importance", "nuts")


APPROXIMATION_NOTE = (
    "collapsed: Laplace. Structures were scored by the Laplace approximation of their "
    "evidence (constants integrated out at the posterior mode with the Gauss-Newton "
    "curvature) and constants drawn from N(c*, H^-1): an approximate posterior, exact only "
    "for programs linear in their constants.")
"""``attrs["approximation"]`` of a collapsed run."""


class RunWarning(UserWarning):
    """A run that finished but not as asked (chains crashed or were cut short)."""


def infer(model: Callable[..., Any], *args: Any, method: str = "mcmc",
          num_samples: int = 1000, num_warmup: int | None = None, num_chains: int = 4,
          seed: int = 0, progress: bool = True, thin: int = 1,
          chain_method: str = "parallel", executor: Executor | None = None,
          structure_weights: dict[str, float] | None = None,
          init_values: dict[str, Any] | None = None, init_candidates: int = 100,
          program_moves: int = 10, num_rungs: int = 1, beta_min: float = 0.05,
          max_time: float | None = None, num_particles: int | None = None,
          blocks: list[tuple[str, Any]] | None = None, backend: str = "pyro",
          target_accept_prob: float = 0.8, max_tree_depth: int = 10, dense_mass: bool = False,
          collapsed: bool = False, **kwargs: Any) -> Posterior:
    """Posterior of every unobserved site of ``model(*args, **kwargs)`` given its ``obs=``
    sites.

    Parameters
    ----------
    model : callable
        A model written with ``ppl.sample``; program sites use ``ppl.ProgramPrior``.
    *args, **kwargs
        The model's arguments (numpy arrays become float64 tensors).
    method : {"mcmc", "auto", "enumerate", "importance", "nuts"}
        ``"mcmc"``: Metropolis-within-Gibbs (program moves with data-driven constants, NUTS
        on the continuous sites with the programs held fixed, MH on discrete sites);
        ``"auto"``: the same, printing its plan; ``"enumerate"``: exact (finite latents
        only); ``"importance"``: importance sampling from the prior; ``"nuts"``: the
        backend's own NUTS run on the model (continuous latent sites only).
    num_samples, num_warmup, num_chains, thin : int
        Draws kept per chain, adaptive sweeps before them (default ``num_samples``, or at
        most 200 when ``max_time`` is set), chains, and sweeps per kept draw.
    seed : int
        Master seed: the same seed gives bitwise-identical draws.
    progress : bool
        tqdm bars per chain (only on a terminal, never with ``CI`` set).
    chain_method : {"parallel", "sequential"}
        Chains in processes (default) or one after another; ``executor`` overrides both.
    init_values : dict, optional
        Initial values of some or all latent sites.
    init_candidates : int
        Each chain starts at the best of this many valid random initial states (100).
    program_moves : int
        Structure moves per program site per sweep (10); each is scored incrementally
        when the model allows it, so they cost a program evaluation, not a model run.
    num_rungs, beta_min : int, float
        Parallel tempering on the likelihood: ``num_rungs`` copies of each chain on the
        geometric ladder β_k = beta_min^(k/(K−1)), swapping adjacent states after every
        sweep; draws come from β = 1, swap acceptance goes to ``stats["swap_accepted"]``.
    max_time : float, optional
        Seconds per chain; a chain stops cleanly at the budget (with a warning).
    blocks : list of (kernel, sites) pairs, optional
        The Gibbs plan by hand, e.g. ``[("ProgramMH", "f"), ("RW", ["sigma"])]``; kernels
        ``ProgramMH``, ``NUTS``, ``RW`` (random walk per site), ``DiscreteMH``. Every latent
        site in exactly one block; no program or discrete site in a NUTS block.
    backend : {"pyro", "numpyro"}
        Whose NUTS runs: with ``method="nuts"`` the whole model on Pyro (torch) or NumPyro
        (jax, float64); with ``"mcmc"``/``"auto"`` the NUTS blocks of the Gibbs plan (the
        model itself is scored through Pyro's primitives either way).
    target_accept_prob, max_tree_depth, dense_mass : float, int, bool
        NUTS options (``method="nuts"`` and the Gibbs plan's NUTS blocks): the step-size
        adaptation's target acceptance (0.8), at most 2**max_tree_depth − 1 leapfrog steps
        per transition (10), and a dense (full covariance) mass matrix instead of a diagonal
        one (False).
    collapsed : bool
        MCMC only, an **approximation**: program structures are scored with their constants
        integrated out by Laplace evidence, and constants are drawn from N(c*, H⁻¹) given
        the structure (:mod:`inference.mcmc.collapsed`). Needs Normal observations of the
        program's output and a Normal constant prior; one rung (``num_rungs=1``). The plan
        and ``attrs["approximation"]`` name it.

    Returns
    -------
    Posterior
    """
    if method not in METHODS:
        raise PPLError(f"Unknown method {method!r}; expected one of {METHODS}.")
    _check_run_options(num_samples=num_samples, num_chains=num_chains, thin=thin,
                       num_warmup=num_warmup, seed=seed, num_particles=num_particles,
                       init_candidates=init_candidates, program_moves=program_moves)
    if max_time is not None and not (isinstance(max_time, (int, float)) and max_time > 0):
        raise PPLError(f"max_time must be a positive number of seconds; got {max_time!r}.")
    if not isinstance(collapsed, bool):
        raise PPLError(f"collapsed must be True or False; got {collapsed!r}.")
    if collapsed and (method not in ("mcmc", "auto") or num_rungs != 1):
        raise PPLError(f"collapsed=True is a mode of method='mcmc' with num_rungs=1; got "
                       f"method={method!r}, num_rungs={num_rungs!r}.")
    if chain_method not in ("parallel", "sequential"):
        raise PPLError(f"chain_method must be 'parallel' or 'sequential'; got {chain_method!r}.")
    nuts_options = {"target_accept_prob": target_accept_prob,
                    "max_tree_depth": max_tree_depth, "dense_mass": dense_mass}
    _check_nuts_options(nuts_options)
    if backend not in BACKENDS or (backend != "pyro" and method in ("enumerate", "importance")):
        raise PPLError(f"backend must be one of {BACKENDS} ('numpyro' with method='nuts', "
                       f"'mcmc' or 'auto'); got backend={backend!r} with method={method!r}.")
    if method == "nuts":
        if max_time is not None or num_rungs != 1:
            raise PPLError("method='nuts' supports neither max_time nor num_rungs > 1.")
        return run_nuts(model, args, kwargs, backend, NutsConfig(
            num_samples if num_warmup is None else num_warmup, num_samples, num_chains,
            thin, seed, show_progress(progress), chain_method, executor, init_values,
            target_accept_prob, max_tree_depth, dense_mass))
    target = Target(model, args, kwargs, seed=seed)
    return run_target(target, method=method, num_samples=num_samples, num_warmup=num_warmup,
                      num_chains=num_chains, seed=seed, progress=progress, thin=thin,
                      chain_method=chain_method, executor=executor,
                      structure_weights=structure_weights, init_values=init_values,
                      init_candidates=init_candidates, program_moves=program_moves,
                      num_rungs=num_rungs, beta_min=beta_min, max_time=max_time,
                      num_particles=num_particles, blocks=blocks, nuts_options=nuts_options,
                      backend=backend, collapsed=collapsed)


def run_target(target: Target, *, method: str, num_samples: int, num_warmup: int | None,
               num_chains: int, seed: int, progress: bool, thin: int, chain_method: str,
               executor: Executor | None, structure_weights: dict[str, float] | None,
               init_values: dict[str, Any] | None, init_candidates: int, program_moves: int,
               num_rungs: int, beta_min: float, max_time: float | None,
               num_particles: int | None, blocks: list[tuple[str, Any]] | None,
               nuts_options: dict[str, Any] | None, backend: str = "pyro",
               collapsed: bool = False) -> Posterior:
    """Run ``method`` on a prepared :class:`~inference.target.Target` (validated options):
    the engine behind :func:`infer` and :func:`inference.query`."""
    model = target.model
    common: dict[str, Any] = {"model": model, "args": target.args, "kwargs": target.kwargs,
              "observed": {k: _numpy(v) for k, v in target.observed.items()},
              "priors": {n: s.fn for n, s in target.latents.items() if s.kind == PROGRAM}}
    if target.fixed:
        common["fixed"] = dict(target.fixed)
    rng = np.random.default_rng(seed)
    if method == "enumerate":
        out = enumerate_posterior(target, num_samples, num_chains, rng)
        return Posterior(method=method, samples=out["samples"], stats=out["stats"],
                         log_lik=out["log_lik"], exact=out["exact"],
                         attrs={"log_evidence": out["log_evidence"]}, **common)
    if method == "importance":
        n = num_particles or 10 * num_samples * num_chains
        out = importance_posterior(target, n, num_samples, num_chains, rng, seed)
        if out["ess"] < 0.01 * n:
            warnings.warn(f"Importance sampling kept an effective sample size of "
                          f"{out['ess']:.1f} of {n} particles; the result is unreliable.",
                          RunWarning, stacklevel=3)
        return Posterior(method=method, samples=out["samples"], stats=out["stats"],
                         log_lik=out["log_lik"],
                         attrs={"ess": out["ess"], "khat": out["khat"], "num_particles": n},
                         **common)
    kernel = Gibbs(target, structure_weights, init_candidates, program_moves, blocks=blocks,
                   nuts_options=nuts_options, backend=backend, collapsed=collapsed)
    geometric_ladder(num_rungs, beta_min)  # validates the ladder before any chain starts
    if collapsed:  # fail before any chain starts when the model does not allow it
        Gibbs(target, structure_weights, 5, program_moves, blocks=blocks,
              nuts_options=nuts_options, backend=backend, collapsed=True).init(
            np.random.default_rng(seed))
    if method == "auto":
        print(kernel.describe())
    given = {**target.fixed, **target.given_obs} or None
    specs = make_specs(model, target.args, target.kwargs, seed, num_chains,
                       _default_warmup(num_samples, max_time) if num_warmup is None
                       else num_warmup, num_samples, thin,
                       progress, structure_weights, init_values, max_time, init_candidates,
                       program_moves, num_rungs, beta_min, blocks, nuts_options, given,
                       list(target.given_obs) if given else None, backend, collapsed)
    results = run_chains(specs, chain_method, executor)
    post = _assemble(results, kernel.describe(), common)
    if collapsed:
        post.attrs["approximation"] = APPROXIMATION_NOTE
    return post


def _check_run_options(**options: Any) -> None:
    """Integer run options: num_warmup >= 0, seed >= 0, the others >= 1 (None allowed for
    num_warmup and num_particles)."""
    for name, value in options.items():
        low = 0 if name in ("num_warmup", "seed") else 1
        if value is None and name in ("num_warmup", "num_particles"):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise PPLError(f"{name} must be an integer >= {low}; got {value!r}.")


NUTS_OPTIONS = {"target_accept_prob": (float, int), "max_tree_depth": (int,),
                "dense_mass": (bool,)}


def _check_nuts_options(options: dict[str, Any] | None) -> None:
    for key, value in (options or {}).items():
        if key not in NUTS_OPTIONS:
            raise PPLError(f"Unknown NUTS option {key!r}; expected some of {list(NUTS_OPTIONS)}.")
        if not isinstance(value, NUTS_OPTIONS[key]) or (
                key == "target_accept_prob" and not 0 < value < 1) or (
                key == "max_tree_depth" and (isinstance(value, bool) or value < 1)):
            raise PPLError(f"NUTS option {key} got {value!r}: expected a probability in (0, 1) "
                           "for target_accept_prob, a positive integer for max_tree_depth, "
                           "a bool for dense_mass.")


def _default_warmup(num_samples: int, max_time: float | None) -> int:
    """num_samples warmup sweeps; with a time budget at most 200, so that a large
    num_samples (meaning "until the budget") does not spend the budget on warmup."""
    return num_samples if max_time is None else min(num_samples, 200)


def _numpy(value: Any) -> np.ndarray:
    return np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value)


def _assemble(results: list[ChainResult], plan: str, common: dict[str, Any]) -> Posterior:
    ok = [r for r in results if r.error is None]
    if len(ok) < len(results):
        bad = [r for r in results if r.error is not None]
        if not ok:
            raise PPLError(f"Every chain crashed; the first error:\n{bad[0].error}")
        warnings.warn(f"{len(bad)} of {len(results)} chains crashed (chains "
                      f"{[r.chain for r in bad]}); keeping the other {len(ok)}. First error:\n"
                      f"{bad[0].error.splitlines()[-1] if bad[0].error else ''}",
                      RunWarning, stacklevel=3)
    n = min(len(r.stats["lp"]) for r in ok)
    if any(r.cut_short for r in ok):
        warnings.warn(f"max_time cut the run short: {n} draws per chain were kept.",
                      RunWarning, stacklevel=3)
    if n == 0:
        raise PPLError("No draws were recorded (max_time too short for the warmup?).")
    samples: dict[str, np.ndarray] = {}
    for name in ok[0].draws:
        if name in common["priors"]:
            arr = np.empty((len(ok), n), dtype=object)
            for c, r in enumerate(ok):
                for d in range(n):
                    arr[c, d] = r.draws[name][d]
            samples[name] = arr
        else:
            samples[name] = np.stack([np.asarray(r.draws[name][:n]) for r in ok])
    stats = {k: np.stack([r.stats[k][:n] for r in ok]) for k in ok[0].stats}
    log_lik = {k: np.stack([r.pointwise[k][:n] for r in ok]) for k in ok[0].pointwise}
    attrs: dict[str, Any] = {"plan": plan, "chains": [r.chain for r in ok],
                             "seconds": [round(r.elapsed, 3) for r in ok]}
    if "swap_accepted" in stats:
        with warnings.catch_warnings():  # a pair never proposed has no rate
            warnings.simplefilter("ignore", RuntimeWarning)
            attrs["swap_rate"] = np.nanmean(stats["swap_accepted"], axis=(0, 1)).tolist()
    return Posterior(method="mcmc", samples=samples, stats=stats, log_lik=log_lik,
                     attrs=attrs, **common)



