"""``infer`` and ``load``: write a model, call infer, get a Posterior."""

from __future__ import annotations

import dataclasses
import inspect
import time
import warnings
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import numpy as np

from inference.amortized.mixture import MixedProposal
from inference.amortized.persist import ProposalMismatchError, differences, key_parts
from inference.amortized.train import Proposal, resume_training
from inference.checkpoint import (
    FORMAT,
    CheckpointError,
    chain_path,
    check_run,
    fingerprint,
    read,
    save,
)
from inference.config import RunConfig, option_names
from inference.enumerate import enumerate_posterior
from inference.importance import importance_posterior
from inference.mcmc.driver import ChainResult, make_specs, run_chains, searches
from inference.mcmc.gibbs import Gibbs
from inference.nuts import run_nuts
from inference.results import Posterior, load
from inference.target import Target
from inference.vi import run_svi
from inference.vi.checkpoint import resume_svi
from ppl.errors import PPLError
from ppl.trace import PROGRAM

__all__ = ["RunWarning", "check_model_call", "check_proposal", "infer", "load", "resume",
           "run_target", "split_options"]


APPROXIMATION_NOTE = (
    "collapsed: Laplace. Structures were scored by the Laplace approximation of their "
    "evidence (constants integrated out at the posterior mode with the Gauss-Newton "
    "curvature) and constants drawn from N(c*, H^-1): an approximate posterior, exact only "
    "for programs linear in their constants.")
"""``attrs["approximation"]`` of a collapsed run."""


AMORTIZED_PARTICLES = 1000
"""Particles of ``method="amortized"`` when ``num_particles`` is not given."""
KHAT_LIMIT = 0.7
"""Pareto k̂ above which importance weights are flagged unreliable (TESTING.md P7)."""


class RunWarning(UserWarning):
    """A run that finished but not as asked (chains crashed or were cut short)."""


def infer(model: Callable[..., Any], *args: Any,
          model_kwargs: Mapping[str, Any] | None = None, **kwargs: Any) -> Posterior:
    """Posterior of every unobserved site of ``model(*args, **model_kwargs)`` given its
    ``obs=`` sites.

    Keyword arguments are the run's options when their name is a run option (below: the
    fields of :class:`~inference.config.RunConfig`, whose defaults live in
    :mod:`inference.config`), else the model's. A model argument whose name is also a run
    option (``seed``, ``method``, ``num_samples``, ``backend``, ...) goes in
    ``model_kwargs``, which takes any name: ``infer(model, x, model_kwargs={"seed": 3},
    seed=0)``.

    Parameters
    ----------
    model : callable
        A model written with ``ppl.sample``; program sites use ``ppl.ProgramPrior``.
    *args
        The model's positional arguments (numpy arrays become float64 tensors).
    model_kwargs : mapping, optional
        The model's keyword arguments, any names; merged with the model keywords among
        ``**kwargs`` (a name in both is an error).
    method : {"mcmc", "auto", "enumerate", "importance", "nuts", "amortized", "svi"}
        ``"mcmc"`` (default): Metropolis-within-Gibbs (program moves with data-driven
        constants, NUTS on the continuous sites with the programs held fixed, MH on discrete
        sites); ``"auto"``: the same, printing its plan; ``"enumerate"``: exact (finite
        latents only); ``"importance"``: importance sampling from the prior; ``"nuts"``: the
        backend's own NUTS run on the model (continuous latent sites only);
        ``"amortized"``: importance sampling with a trained ``proposal`` for its program
        site (mixed with the prior), the other latents from their priors; ``"svi"``: the
        backend's SVI fits a guide to the continuous latent sites (with program sites, on
        Pyro: a grammar guide trained by score-function gradients, jointly), and the
        result holds draws of the guide (:mod:`inference.vi`).
    proposal, prior_weight, neural_weight, edit_weight : Proposal, float, float, float
        A trained proposal (:func:`inference.amortized.train_proposal`): the proposal of
        ``method="amortized"`` (1,000 particles unless ``num_particles``); with
        ``method="mcmc"`` its site also gets the exact neural independence move and the
        neural edit move (a subtree redrawn by the network), weights ``neural_weight`` and
        ``edit_weight`` (0.2 each) among the structure moves; with ``method="svi"`` the
        site's grammar guide starts at 1,000 draws of the proposal on the data (smoothed
        toward the prior; ``attrs["guide_init"]``). ``prior_weight`` (0.05, at least
        0.05) is the prior's share of the proposal. ``attrs`` report ESS, Pareto k̂ (a
        RunWarning above 0.7) and the log evidence.
    num_samples, num_warmup, num_chains, thin : int
        Draws kept per chain (1000), adaptive sweeps before them (default ``num_samples``,
        or at most 200 when ``max_time`` is set), chains (4), and sweeps per kept draw (1).
    seed : int
        Master seed (0): the same seed gives bitwise-identical draws.
    progress : bool
        tqdm bars per chain (only on a terminal, never with ``CI`` set).
    chain_method : {"parallel", "sequential"}
        Chains in processes (default) or one after another; ``executor`` (any
        process-based ``concurrent.futures.Executor``: a ``ProcessPoolExecutor``, a Dask
        client's ``get_executor()``) overrides both.
    init_values : dict, optional
        Initial values of some or all latent sites.
    init_candidates : int
        Each chain starts at the best of this many valid random initial states (100).
    program_moves : int
        Structure moves per program site per sweep (10); each is scored incrementally
        when the model allows it, so they cost a program evaluation, not a model run.
    structure_weights : dict, optional
        Probabilities of the structure moves (normalised).
    num_rungs, beta_min : int, float
        Parallel tempering on the likelihood: ``num_rungs`` copies of each chain on the
        geometric ladder β_k = beta_min^(k/(K−1)), swapping adjacent states after every
        sweep; draws come from β = 1, swap acceptance goes to ``stats["swap_accepted"]``.
    max_time : float, optional
        Seconds per chain; a chain stops cleanly at the budget (with a warning).
    num_particles : int, optional
        ``method="importance"``: particles from the prior (10 × num_samples × num_chains);
        ``method="svi"``: particles of the ELBO estimate per step (1; with a program site
        10, at least 2: each particle's baseline is the mean of the others).
    guide : {"normal", "mvn", "lowrank", "delta"} or callable
        ``method="svi"``: the backend's ``AutoNormal`` (default), ``AutoMultivariateNormal``,
        ``AutoLowRankMultivariateNormal`` or ``AutoDelta`` (MAP), or a guide written with
        ``ppl.sample``/``ppl.param`` that takes the model's arguments.
    elbo, num_steps, learning_rate, lr_decay, tolerance : str, int, float, float, float
        ``method="svi"``: ``"trace"`` (``Trace_ELBO``, default) or ``"meanfield"``
        (``TraceMeanField_ELBO``); at most ``num_steps`` (3000) steps of clipped Adam whose
        step size decays from ``learning_rate`` (0.02) to ``learning_rate × lr_decay``
        (0.1); the run stops early when the mean ELBO of a window of 100 steps changes by
        less than ``tolerance`` (1e-3) relative to the previous window's, or at
        ``max_time``. ``num_samples × num_chains`` draws of the fitted guide form the
        result; ``attrs`` hold the ELBO trace, steps, convergence and the Pareto k̂ of the
        guide's importance weights (a RunWarning above 0.7).
    psis : bool
        ``method="svi"``: resample the guide's draws by their Pareto-smoothed importance
        weights (False).
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

    Examples
    --------
    >>> import numpy as np
    >>> import ppl
    >>> from ppl import dist
    >>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
    >>> def model(x, seed, y=None):   # a model argument named like a run option
    ...     f = ppl.sample("f", prior)
    ...     with ppl.plate("data", len(x)):
    ...         ppl.sample("y", dist.Normal(f(x) + seed, 0.1), obs=y)
    >>> x = np.linspace(-1, 1, 8)
    >>> post = infer(model, x, model_kwargs={"seed": 1.0}, y=x + 2.0, method="enumerate",
    ...              seed=0)
    >>> str(post.best())
    '(x + 1)'
    """
    config, model_kw = split_options(model, args, kwargs, model_kwargs, caller="infer")
    if config.method == "nuts":
        return run_nuts(model, args, model_kw, config)
    if config.method == "svi":
        return run_svi(model, args, model_kw, config)
    target = Target(model, args, model_kw, seed=config.seed)
    return run_target(target, config)


def split_options(model: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any],
                  model_kwargs: Mapping[str, Any] | None, caller: str
                  ) -> tuple[RunConfig, dict[str, Any]]:
    """Split ``infer``-style keywords into a validated RunConfig and the model's keyword
    arguments, and check that the model accepts its arguments (a PPLError naming a missing
    or unexpected one, before anything runs)."""
    names = set(option_names())
    options = {k: v for k, v in kwargs.items() if k in names}
    model_kw = {k: v for k, v in kwargs.items() if k not in names}
    extra = dict(model_kwargs or {})
    both = sorted(set(extra) & set(model_kw))
    if both:
        raise PPLError(f"Model argument {both[0]!r} given twice: as a keyword of {caller} and "
                       "in model_kwargs.")
    model_kw.update(extra)
    check_model_call(model, args, model_kw, set(options))
    return RunConfig.build(caller=caller, **options), model_kw


def check_model_call(model: Callable[..., Any], args: Sequence[Any],
                     kwargs: Mapping[str, Any], taken: Collection[str] = ()) -> None:
    """Raise a PPLError when ``model(*args, **kwargs)`` cannot bind its arguments; a
    missing argument whose name was taken as a run option gets the ``model_kwargs`` hint."""
    try:
        signature = inspect.signature(model)
    except (TypeError, ValueError):  # builtins and some callables have none: skip
        return
    try:
        signature.bind(*args, **kwargs)
    except TypeError as err:
        params = signature.parameters
        clash = sorted(n for n in taken if n in params and n not in kwargs)
        hint = (f" {', '.join(map(repr, clash))} {'was' if len(clash) == 1 else 'were'} "
                f"taken as run option(s); pass the model's value(s) in model_kwargs, e.g. "
                f"model_kwargs={{{clash[0]!r}: ...}}." if clash else "")
        name = getattr(model, "__name__", type(model).__name__)
        raise PPLError(f"The model {name}{signature} cannot be called with these arguments: "
                       f"{err}.{hint}") from None


def run_target(target: Target, config: RunConfig, resumed: list[bool] | None = None
               ) -> Posterior:
    """Run ``config.method`` on a prepared :class:`~inference.target.Target`: the engine
    behind :func:`infer` and :func:`inference.query` (and :func:`resume`, which passes
    which chains continue from their checkpoint files)."""
    model = target.model
    common: dict[str, Any] = {"model": model, "args": target.args, "kwargs": target.kwargs,
              "observed": {k: _numpy(v) for k, v in target.observed.items()},
              "priors": {n: s.fn for n, s in target.latents.items() if s.kind == PROGRAM}}
    if target.fixed:
        common["fixed"] = dict(target.fixed)
    rng = np.random.default_rng(config.seed)
    if config.method == "enumerate":
        out = enumerate_posterior(target, config.num_samples, config.num_chains, rng)
        return Posterior(method=config.method, samples=out["samples"], stats=out["stats"],
                         log_lik=out["log_lik"], exact=out["exact"],
                         attrs={"log_evidence": out["log_evidence"]}, **common)
    if config.method in ("importance", "amortized"):
        return _importance(target, config, rng, common)
    if config.amortized.proposal is not None:
        check_proposal(config.amortized.proposal, target)
    if config.init_values is not None:  # named and checked here, not in a crashed chain
        config = dataclasses.replace(config, init_values=target.check_init(config.init_values))
    kernel = Gibbs(target, config.mcmc, config.nuts, config.backend, config.amortized)
    if config.mcmc.collapsed:  # fail before any chain starts when the model does not allow it
        probe = dataclasses.replace(config.mcmc, init_candidates=5)
        Gibbs(target, probe, config.nuts, config.backend, config.amortized).init(
            np.random.default_rng(config.seed))
    if config.method == "auto":
        print(kernel.describe())
    given = {**target.fixed, **target.given_obs} or None
    data_sites = list(target.given_obs) if given else None
    if config.checkpoint is not None and resumed is None:
        save(config.checkpoint, {
            "format": FORMAT, "fingerprint": fingerprint(target), "given": given,
            "data_sites": data_sites, "config": dataclasses.replace(config, executor=None)})
    specs = make_specs(model, target.args, target.kwargs, config, given, data_sites)
    if resumed is not None:
        specs = [spec._replace(resume=r) for spec, r in zip(specs, resumed, strict=True)]
    pooled = (config.mcmc.search_pool and config.num_chains > 1 and resumed is None
              and searches(config, target))
    results = run_chains(specs, config.chain_method, config.executor, pooled)
    post = _assemble(results, kernel.describe(), common)
    if config.mcmc.collapsed:
        post.attrs["approximation"] = APPROXIMATION_NOTE
    if resumed is not None:
        post.attrs["resumed"] = [bool(r) for r in resumed]
    return post


RESUME_OPTIONS = ("progress", "chain_method", "executor")
"""The run options :func:`resume` may change: how the chains run, not what they do."""


def resume(path: str, model: Callable[..., Any], *args: Any, force: bool = False,
           model_kwargs: Mapping[str, Any] | None = None, **kwargs: Any
           ) -> Posterior | Proposal:
    """Continue the run checkpointed to ``path`` (``infer(..., checkpoint=path)``, a method
    of :data:`~inference.config.CHECKPOINT_METHODS`) and return its whole posterior: with
    ``"mcmc"`` and ``"nuts"`` the draws before the checkpoint included, with ``"svi"`` the
    fit continued from its last saved step (:mod:`inference.vi.checkpoint`); or continue
    the training checkpointed by ``train_proposal(..., checkpoint=path)`` and return the
    trained proposal (:func:`inference.amortized.train.resume_training`: only ``progress``
    and ``executor`` may change; ``max_time`` counts from the resume).

    The model and its data are given again, as to ``infer`` (keywords that are not in
    :data:`RESUME_OPTIONS` go to the model); the run's other options come from the
    checkpoint. A checkpoint of another model (name or source), data, program prior or
    package version is refused with a :class:`~inference.checkpoint.CheckpointError` naming
    what differs, unless ``force=True``. Each chain continues from its own file; a chain
    that had written none yet starts again from its seed (the same draws it would have
    made). Without ``max_time``, the result is bitwise the uninterrupted run's; with it,
    the budget counts from the resume.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, ppl
    >>> from ppl import dist
    >>> def model(y=None):
    ...     m = ppl.sample("m", dist.Normal(0.0, 1.0))
    ...     ppl.sample("y", dist.Normal(m, 1.0), obs=y)
    >>> path = str(pathlib.Path(tempfile.mkdtemp()) / "run.ckpt")
    >>> whole = infer(model, y=np.array(0.5), num_samples=40, num_warmup=20, num_chains=1,
    ...               seed=3, progress=False, checkpoint=path, checkpoint_every=25)
    >>> again = resume(path, model, y=np.array(0.5), progress=False)  # from sweep 50 of 60
    >>> bool(np.array_equal(whole.samples["m"], again.samples["m"]))
    True
    """
    manifest = read(path)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{path!r} is not a checkpoint of this version (format "
                              f"{FORMAT}).")
    if manifest.get("kind") == "train":
        return resume_training(path, manifest, model, *args, force=force,
                               model_kwargs=model_kwargs, **kwargs)
    names = set(option_names()) - set(RESUME_OPTIONS)
    fixed = sorted(set(kwargs) & names)
    if fixed:
        raise PPLError(f"resume continues the run with its own options; {fixed[0]!r} cannot "
                       f"be changed (only {', '.join(RESUME_OPTIONS)}).")
    options = {k: kwargs.pop(k) for k in RESUME_OPTIONS if k in kwargs}
    model_kw = {**kwargs, **dict(model_kwargs or {})}
    check_model_call(model, args, model_kw)
    config = dataclasses.replace(manifest["config"], checkpoint=path, **options)
    if config.method == "nuts":
        return run_nuts(model, args, model_kw, config, resuming=True, force=force)
    if config.method == "svi":
        return resume_svi(path, manifest, config, model, args, model_kw, force)
    return _resume_mcmc(path, manifest, config, model, args, model_kw, force)


def _resume_mcmc(path: str, manifest: Mapping[str, Any], config: RunConfig,
                 model: Callable[..., Any], args: tuple[Any, ...],
                 model_kw: dict[str, Any], force: bool) -> Posterior:
    """:func:`resume` for ``method="mcmc"`` (and ``"auto"``): the chains of
    :func:`run_target` continue from their files."""
    target = Target(model, args, model_kw, seed=config.seed, given=manifest["given"],
                    data_sites=manifest["data_sites"])
    check_run(path, manifest, target, force)
    resumed = [chain_path(path, c).exists() for c in range(config.num_chains)]
    return run_target(target, config, resumed)


def check_proposal(proposal: Any, target: Target) -> Any:
    """The program site a trained proposal is used for; raises when the model has no such
    latent program site, or when the site's prior differs from the one the proposal was
    trained on (grammar, weights, limits, inputs, constant prior), naming what differs.

    Examples
    --------
    >>> import numpy as np, ppl
    >>> from ppl import dist
    >>> from inference.amortized import train_proposal
    >>> def model(x, y=None, depth=2):
    ...     f = ppl.sample("f", ppl.ProgramPrior("tiny", inputs=["x"], max_depth=depth))
    ...     ppl.sample("y", dist.Normal(f(x), 0.1).to_event(1), obs=y)
    >>> x = np.linspace(0, 1, 4)
    >>> q = train_proposal(model, x, y=x, num_steps=0, hidden=8, progress=False)
    >>> check_proposal(q, Target(model, (x,), {"y": x})).name
    'f'
    >>> try:
    ...     check_proposal(q, Target(model, (x,), {"y": x, "depth": 3}))
    ... except PPLError as err:
    ...     print(str(err)[:70])
    The proposal for site 'f' was trained for another prior: limits (saved
    """
    site = target.latents.get(proposal.site)
    if site is None or site.kind != PROGRAM:
        raise PPLError(f"The proposal is for program site {proposal.site!r}, which is not a "
                       f"latent program site of this model; its latent sites are "
                       f"{list(target.latents)}.")
    now = key_parts(site.fn, site.name, {})
    saved = {k: v for k, v in proposal.key_parts.items() if k != "sites"}
    diffs = differences(saved, {k: v for k, v in now.items() if k != "sites"})
    if diffs:
        raise ProposalMismatchError(
            f"The proposal for site {site.name!r} was trained for another prior: "
            + "; ".join(diffs) + ". Hint: train it for this model "
            "(inference.amortized.train_proposal).")
    return site


def _importance(target: Target, config: RunConfig, rng: np.random.Generator,
                common: dict[str, Any]) -> Posterior:
    """``method="importance"`` (every latent from its prior) or ``"amortized"`` (the
    proposal's program site from the trained proposal mixed with the prior)."""
    proposals: dict[str, Any] = {}
    attrs: dict[str, Any] = {}
    if config.method == "amortized":
        opts = config.amortized
        site = check_proposal(opts.proposal, target)
        proposals[site.name] = MixedProposal.for_model(
            opts.proposal, target.args, target.kwargs,
            {**target.observed, **target.given_obs}, opts.prior_weight)
        attrs["prior_weight"] = opts.prior_weight
    n = config.importance.num_particles or (
        AMORTIZED_PARTICLES if config.method == "amortized"
        else 10 * config.num_samples * config.num_chains)
    start = time.perf_counter()
    out = importance_posterior(target, n, config.num_samples, config.num_chains, rng,
                               config.seed, proposals)
    attrs.update({"ess": out["ess"], "khat": out["khat"], "num_particles": n,
                  "log_evidence": out["log_evidence"], "fast": out["fast"],
                  "seconds": round(time.perf_counter() - start, 4)})
    if out["ess"] < 0.01 * n:
        warnings.warn(f"Importance sampling kept an effective sample size of "
                      f"{out['ess']:.1f} of {n} particles; the result is unreliable.",
                      RunWarning, stacklevel=4)
    elif config.method == "amortized" and out["khat"] > KHAT_LIMIT:
        warnings.warn(f"Pareto k̂ = {out['khat']:.2f} > {KHAT_LIMIT}: the proposal misses "
                      "part of the posterior, so the weights are unreliable (train the "
                      "proposal longer, raise prior_weight, or use method='mcmc' with "
                      "proposal=).", RunWarning, stacklevel=4)
    return Posterior(method=config.method, samples=out["samples"], stats=out["stats"],
                     log_lik=out["log_lik"], attrs=attrs, **common)


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
    if any(r.search is not None for r in ok):
        attrs["search"] = [r.search for r in ok]
    if "swap_accepted" in stats:
        with warnings.catch_warnings():  # a pair never proposed has no rate
            warnings.simplefilter("ignore", RuntimeWarning)
            attrs["swap_rate"] = np.nanmean(stats["swap_accepted"], axis=(0, 1)).tolist()
    return Posterior(method="mcmc", samples=samples, stats=stats, log_lik=log_lik,
                     attrs=attrs, **common)



