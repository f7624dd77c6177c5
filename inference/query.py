"""``query``: any question about a world model p(x, y, φ, θ), given any subset of its sites.

A query names target sites and gives values to others. Its plan follows from the factor
graph (:class:`ppl.World`):

- **forward** (ancestral simulation): when no evidence (a given site, or an ``obs=`` site of
  the model) is a descendant of the targets or of their ancestors that are not given, the
  targets' conditional equals what running the model forward with the given sites clamped
  produces, so draws are exact and independent, e.g. p(y | x, φ);
- **inference** otherwise (reverse p(x | y, φ), posterior p(φ, θ | x, y)): the given sites
  become part of the target of inference (observations when they have no children in the
  graph, fixed values otherwise) and ``method`` runs as in :func:`inference.infer`.

Programs may be given as text: they are parsed with the grammar of the site's prior.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from inference.api import check_model_call, run_target
from inference.config import METHODS, RunConfig
from inference.results import Posterior
from inference.target import Target, checked_value, to_torch
from inference.vi import run_svi
from ppl.errors import PPLError
from ppl.program import Program
from ppl.trace import PROGRAM, log_joint, seeded, trace_model
from ppl.world import World

__all__ = ["conditioned", "query"]


def query(world_or_model: World | Callable[..., Any], targets: str | Sequence[str] | None = None,
          given: Mapping[str, Any] | None = None, method: str = "auto", *,
          model_args: Sequence[Any] = (), model_kwargs: Mapping[str, Any] | None = None,
          **options: Any) -> Posterior:
    """The conditional distribution of ``targets`` given the ``given`` sites.

    Parameters
    ----------
    world_or_model : World or callable
        A traced :class:`ppl.World`, or a model (then ``model_args``/``model_kwargs`` are its
        arguments and the world is traced here).
    targets : str or sequence of str, optional
        Sites to infer; default: every latent site that is not given.
    given : mapping, optional
        Site -> value: observations (e.g. ``{"y": y}``), inputs, parameters, or a program as
        a :class:`ppl.Program` or as text in its grammar.
    method : {"auto", "mcmc", "enumerate", "importance", "amortized", "svi"}
        As in :func:`inference.infer`; ignored by forward queries, which always simulate.
        ``"svi"`` fits a guide to the model with the given sites observed
        (:func:`conditioned`) on ``backend`` (``"pyro"``; ``"numpyro"`` when no program
        is given).
        ``"auto"`` prints its plan in one line.
    model_args, model_kwargs
        The model's arguments when ``world_or_model`` is a model (any names).
    **options
        Run options, as in :func:`inference.infer` (``num_samples``, ``num_chains``,
        ``seed``, ``program_moves``, ...; their defaults live in :mod:`inference.config`).
        Forward queries draw ``num_chains × num_samples`` independent simulations.

    Returns
    -------
    Posterior
        ``samples`` holds the targets (and any other latent sites inference had to sample);
        ``attrs["query"]`` says which kind of query ran.

    Examples
    --------
    >>> import numpy as np
    >>> import ppl
    >>> from ppl import dist
    >>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=3)
    >>> def model(x, y=None):
    ...     f = ppl.sample("f", prior)
    ...     with ppl.plate("data", len(x)):
    ...         return ppl.sample("y", dist.Normal(f(x), 0.1), obs=y)
    >>> world = ppl.World(model, np.linspace(-1, 1, 5))
    >>> fwd = query(world, "y", given={"f": "sin(x)"}, num_samples=200, num_chains=1)
    forward: ancestral simulation of [y] given [f]
    >>> fwd.samples["y"].shape
    (1, 200, 5)
    """
    if method not in METHODS or method == "nuts":
        raise PPLError(f"query takes method in {[m for m in METHODS if m != 'nuts']}; got "
                       f"{method!r} (the 'mcmc' plan runs NUTS on the continuous sites; infer "
                       "runs 'nuts').")
    config = RunConfig.build(caller="query", method=method, **options)
    if config.method == "svi" and config.checkpoint is not None:
        raise PPLError("query(method='svi') does not checkpoint (resume would need the given "
                       "sites); use method='mcmc' with checkpoint=, or infer(..., "
                       "method='svi', checkpoint=...) on a model with the sites observed.")
    if isinstance(world_or_model, World):
        world = world_or_model
    else:
        check_model_call(world_or_model, model_args, dict(model_kwargs or {}))
        world = World(world_or_model, *model_args, **dict(model_kwargs or {}))
    given = _parse_given(world, dict(given or {}))
    targets = _targets(world, targets, given)
    evidence = set(given) | set(world.observed)
    upstream = set(targets) | {a for t in targets for a in world.ancestors(t)} - set(given)
    reached = {d for s in upstream for d in world.descendants(s)} & evidence
    if not reached:
        line = (f"forward: ancestral simulation of [{', '.join(targets)}]"
                + (f" given [{', '.join(given)}]" if given else ""))
        print(line)
        return _forward(world, targets, given, config.num_samples * config.num_chains,
                        config.num_chains, config.seed, line)
    if config.method == "svi":
        post = run_svi(conditioned(world.model, given, config.backend), world.args,
                       world.kwargs, config)
        post.attrs["query"] = (f"inference of [{', '.join(targets)}] given "
                               f"[{', '.join(sorted(evidence))}] (svi: the given sites are "
                               "observed)")
        return post
    data_sites = [s for s in given if not world.children(s)]
    target = Target(world.model, world.args, world.kwargs, seed=config.seed, given=given,
                    data_sites=data_sites)
    post = run_target(target, config)
    post.attrs["query"] = (f"inference of [{', '.join(targets)}] given "
                           f"[{', '.join(sorted(evidence))}]")
    return post


def conditioned(model: Callable[..., Any], given: Mapping[str, Any], backend: str
                ) -> Callable[..., Any]:
    """``model`` with the ``given`` sites observed at their values, on ``backend``: what
    ``method="svi"`` fits (every given site's density is part of the joint it targets,
    which for p(targets | given) is a constant or the likelihood of the evidence).

    Examples
    --------
    >>> import ppl
    >>> from ppl import dist
    >>> def model():
    ...     return ppl.sample("a", dist.Normal(0.0, 1.0))
    >>> float(conditioned(model, {"a": torch.tensor(0.5)}, "pyro")())
    0.5
    """
    if backend == "numpyro":
        programs = [k for k, v in given.items() if isinstance(v, Program)]
        if programs:
            raise PPLError(f"query(method='svi', backend='numpyro') cannot take the given "
                           f"program of site {programs[0]!r} (NumPyro's autoguides check every "
                           "site's value as an array); use backend='pyro'.")
        import jax.numpy as jnp
        from numpyro import handlers

        data = {k: jnp.asarray(np.asarray(v.detach().cpu() if isinstance(v, torch.Tensor)
                                          else v))
                for k, v in given.items()}
        return handlers.condition(model, data=data)  # type: ignore[no-any-return]
    from pyro import poutine

    return poutine.condition(model, data=dict(given))  # type: ignore[no-any-return]


def _parse_given(world: World, given: dict[str, Any]) -> dict[str, Any]:
    """Validate given site names; parse programs given as text with their site's grammar."""
    out = {}
    for name, value in given.items():
        if name not in world.sites:
            raise PPLError(f"Given site {name!r} is not a site of the model; its sites are "
                           f"{list(world.sites)}.")
        if world.kind(name) == "deterministic":
            raise PPLError(f"Site {name!r} is deterministic (a function of other sites); it "
                           "cannot be given. Give the sites it is computed from.")
        fn = world.distribution(name)
        checked = checked_value(f"Given value of site {name!r}", name, fn,
                                tuple(np.shape(world.value(name))), value)
        value = checked if isinstance(checked, Program) else to_torch(
            np.asarray(value, dtype=float) if isinstance(value, (int, float, list)) else value)
        out[name] = value
    return out


def _targets(world: World, targets: str | Sequence[str] | None, given: Mapping[str, Any]
             ) -> list[str]:
    if targets is None:
        names = [s for s in world.latent if s not in given]
        if not names:
            raise PPLError("Every latent site is given: there is nothing to infer; name "
                           "targets.")
        return names
    names = [targets] if isinstance(targets, str) else list(targets)
    if not names:
        raise PPLError("targets is empty; name at least one site.")
    for name in names:
        if name not in world.sites:
            raise PPLError(f"Target {name!r} is not a site of the model; its sites are "
                           f"{list(world.sites)}.")
        if name in given:
            raise PPLError(f"Site {name!r} is both a target and given.")
        if world.is_observed(name):
            raise PPLError(f"Target {name!r} is observed data in this world (the model passes "
                           "obs=); trace the world without its data (e.g. y=None) to predict "
                           "it, or use Posterior.predict.")
    return names


def _forward(world: World, targets: list[str], given: Mapping[str, Any], n: int,
             num_chains: int, seed: int, plan: str) -> Posterior:
    """``n`` independent runs of the model with the given sites clamped."""
    draws: dict[str, list[Any]] = {t: [] for t in targets}
    lp = np.empty(n)
    with seeded(seed):
        for i in range(n):
            tr = trace_model(world.model, world.args, world.kwargs, data=given, log_prob=True)
            total = log_joint(tr)
            lp[i] = total if math.isfinite(total) else -math.inf
            for t in targets:
                value: Any = tr.nodes[t]["value"]
                draws[t].append(value if world.kind(t) == PROGRAM
                                else np.asarray(value.detach().cpu().numpy(), dtype=float))
    per = n // num_chains
    samples: dict[str, np.ndarray] = {}
    for t, vals in draws.items():
        if world.kind(t) == PROGRAM:
            arr = np.empty((num_chains, per), dtype=object)
            for i, v in enumerate(vals):
                arr[i // per, i % per] = v
            samples[t] = arr
        else:
            stacked = np.stack(vals)
            samples[t] = stacked.reshape((num_chains, per) + stacked.shape[1:])
    invalid = int(np.sum(~np.isfinite(lp)))
    if invalid:
        warnings.warn(f"{invalid} of {n} forward simulations were invalid (NaN/inf, e.g. a "
                      "program undefined at an input).", RuntimeWarning, stacklevel=3)
    fixed = {k: v for k, v in given.items() if k not in world.observed}
    priors = {t: world.distribution(t) for t in targets if world.kind(t) == PROGRAM}
    return Posterior(method="forward", samples=samples,
                     stats={"lp": lp.reshape(num_chains, per)}, log_lik={}, observed={},
                     priors=priors, model=world.model, args=tuple(world.args),
                     kwargs=dict(world.kwargs), attrs={"query": plan, "plan": plan},
                     fixed=fixed)
