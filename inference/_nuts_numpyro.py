"""``method="nuts"`` on NumPyro: ``numpyro.infer.NUTS`` and ``MCMC``, the model run inside
``ppl.backend.use("numpyro")`` and ``jax.enable_x64(True)`` (float64, as on Pyro).

Imported only when ``backend="numpyro"`` is asked for, so Pyro users never pay for jax.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import torch
from numpyro import handlers
from numpyro.distributions import ImproperUniform
from numpyro.distributions.transforms import biject_to
from numpyro.infer import MCMC, NUTS, init_to_uniform, init_to_value
from numpyro.infer.util import log_density

import ppl
from inference.checkpoint import FORMAT, chain_path, read, save
from inference.config import RunConfig
from inference.nuts import BackendRun, Sites, tree_depth
from ppl.errors import InitializationError
from ppl.trace import check_arguments, check_observed, data_errors, max_plate_nesting, sites_of

__all__ = ["CHAIN_METHOD", "context", "discover", "run", "scorer", "to_jax"]

CHAIN_METHOD = "vectorized"
"""How NumPyro runs several chains with ``chain_method="parallel"`` on one XLA device:
vectorized (one compilation for all chains, in lock step) measured faster than sequential
(one compilation per chain); see docs/decisions.md."""

EXTRA_FIELDS = ("accept_prob", "adapt_state.step_size", "diverging", "energy", "num_steps")
STAT_NAMES = {"accept_prob": "acceptance_rate", "adapt_state.step_size": "step_size",
              "diverging": "diverging", "energy": "energy", "num_steps": "n_steps"}


@contextlib.contextmanager
def context() -> Iterator[None]:
    """float64 jax arrays and the NumPyro backend of ``ppl``, for the enclosed code only."""
    with jax.enable_x64(True), ppl.backend.use("numpyro"):
        yield


def to_jax(value: Any) -> Any:
    """Numeric numpy arrays, torch tensors and lists of numbers become float64 jax arrays
    (as :func:`ppl.backend.to_torch` makes float64 tensors); anything else is
    unchanged. Call inside :func:`context`."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return jnp.asarray(value, dtype=jnp.float64 if value.dtype.kind in "fiu" else None)
    if isinstance(value, (list, tuple)) and value and all(
            isinstance(v, (int, float)) for v in value):
        return jnp.asarray(value, dtype=jnp.float64)
    return value


def _improper_value(site: Mapping[str, Any]) -> Any:
    """The unconstrained origin for a latent site that cannot sample; None otherwise."""
    fn = site.get("fn")
    if site["type"] != "sample" or site.get("is_observed") or not isinstance(
            fn, ImproperUniform):
        return None
    transform = biject_to(fn.support)
    return transform(jnp.zeros(transform.inverse_shape(fn.shape())))


class _Concrete(Exception):
    """The abstract discovery trace cannot stand in for a concrete one."""


def _site_trace(model: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any],
                seed: int) -> Any:
    """The model's NumPyro trace, seeded, improper sites at their unconstrained origin."""
    seeded = handlers.substitute(handlers.seed(model, rng_seed=seed),
                                 substitute_fn=_improper_value)
    return handlers.trace(seeded).get_trace(*args, **kwargs)


def _abstract_trace(model: Callable[..., Any], args: tuple[Any, ...],
                    kwargs: Mapping[str, Any], seed: int) -> Any:
    """The trace of one run of the model staged by ``jax.make_jaxpr``: no operation is
    executed, so nothing is compiled (eagerly, XLA compiles every operation on its first
    use in a process: 1.5–1.8 s for eight schools or kilpisjarvi). Site values are tracers;
    the observed ones must be the concrete data, else :class:`_Concrete` (as for any
    failure: the caller then runs the model eagerly, which reports errors as before)."""
    box: list[Any] = []

    def run() -> int:
        box.append(_site_trace(model, args, kwargs, seed))
        return 0

    try:
        jax.make_jaxpr(run)()
    except Exception as err:  # any failure: the eager run reports it
        raise _Concrete from err
    tr = box[0]
    if any(s["type"] == "sample" and s["is_observed"] and isinstance(s["value"], jax.core.Tracer)
           for s in tr.values()):
        raise _Concrete
    return tr


def discover(model: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any],
             seed: int) -> Sites:
    """The model's sites from one NumPyro trace (inside :func:`context`), classified and
    their data checked by :mod:`ppl.trace`, as :class:`~inference.target.Target` does.
    The trace is staged, not executed, when it can be (:func:`_abstract_trace`); otherwise
    the model runs eagerly."""
    check_arguments(args, kwargs)
    jargs = tuple(to_jax(a) for a in args)
    jkwargs = {k: to_jax(v) for k, v in kwargs.items()}
    try:
        tr = _abstract_trace(model, jargs, jkwargs, seed)
    except _Concrete:
        with data_errors():
            tr = _site_trace(model, jargs, jkwargs, seed)
    sites = sites_of(tr)
    for site in sites.values():
        if site.observed:
            check_observed(site)
    return Sites({n: s.kind for n, s in sites.items() if s.latent},
                 {n: np.asarray(s.value) for n, s in sites.items() if s.observed},
                 jargs, jkwargs, max_plate_nesting(tr))


def _chain_method(cfg: RunConfig) -> str:
    if cfg.num_chains == 1:
        return "sequential"
    if cfg.chain_method != "parallel":
        return "sequential"
    return "parallel" if jax.local_device_count() >= cfg.num_chains else CHAIN_METHOD


def run(model: Callable[..., Any], sites: Sites, cfg: RunConfig, resuming: bool = False
        ) -> BackendRun:
    """``num_chains`` chains of NumPyro's NUTS from ``PRNGKey(seed)`` (inside
    :func:`context`); the log joint, pointwise log-likelihood and deterministic sites of
    every draw come out of the same compiled run (:func:`scorer`). With ``cfg.checkpoint``
    the sampling phase runs in segments (:func:`_segments`); ``resuming`` continues from
    the checkpoint file."""
    init = init_to_uniform if cfg.init_values is None else init_to_value(
        values={k: jnp.asarray(v, dtype=jnp.float64) for k, v in cfg.init_values.items()})
    kernel = NUTS(model, target_accept_prob=cfg.nuts.target_accept_prob,
                  max_tree_depth=cfg.nuts.max_tree_depth, dense_mass=cfg.nuts.dense_mass,
                  init_strategy=init)
    how = _chain_method(cfg)
    mcmc = MCMC(kernel, num_warmup=cfg.warmup, num_samples=cfg.num_samples * cfg.thin,
                num_chains=cfg.num_chains, thinning=cfg.thin, chain_method=how,
                progress_bar=cfg.show_progress, postprocess_fn=scorer(model, sites, kernel))
    start = time.perf_counter()
    try:
        if cfg.checkpoint is None:
            mcmc.run(jax.random.PRNGKey(cfg.seed), *sites.args, extra_fields=EXTRA_FIELDS,
                     **sites.kwargs)
            draws = jax.device_get(mcmc.get_samples(group_by_chain=True))
            extra = jax.device_get(mcmc.get_extra_fields(group_by_chain=True))
        else:
            draws, extra = _segments(mcmc, sites, cfg, resuming)
    except RuntimeError as err:
        if "valid initial parameters" not in str(err):
            raise
        raise InitializationError(
            f"NUTS found no starting point with a finite log density for the sites "
            f"{list(sites.latents)} (NumPyro's init_to_uniform): check their priors and "
            "the model's factors, or give init_values.") from None
    seconds = time.perf_counter() - start
    samples = {k: np.asarray(draws["latent"][k], dtype=np.float64) for k in sites.latents}
    samples.update({k: np.asarray(v, dtype=np.float64) for k, v in draws["derived"].items()})
    stats = {STAT_NAMES[k]: np.asarray(extra[k]) for k in EXTRA_FIELDS}
    stats["diverging"] = stats["diverging"].astype(bool)
    stats["n_steps"] = stats["n_steps"].astype(np.int64)
    stats["tree_depth"] = tree_depth(stats["n_steps"])
    stats["lp"] = np.asarray(draws["lp"], dtype=np.float64)
    log_lik = {k: np.asarray(v, dtype=np.float64) for k, v in draws["log_lik"].items()}
    return BackendRun(samples, stats, log_lik, [seconds], how)


def _segments(mcmc: Any, sites: Sites, cfg: RunConfig, resuming: bool
              ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run of :func:`run` as NumPyro's warmup, then sampling segments of
    ``checkpoint_every`` transitions (rounded up to whole thinning blocks), each continuing
    from the last one's state (``post_warmup_state = last_state``, run with that state's
    own key: the transitions of one uninterrupted run, bitwise). Before each segment, the
    state of every chain and the draws so far go to the checkpoint file (the final state
    is not saved: the run is over); a resumed run starts from the file (NumPyro sets its
    kernel up again from the seed, keeping the saved state). Each segment compiles
    NumPyro's sampling loop again (``MCMC`` builds it anew per run), so long segments
    cost less."""
    assert cfg.checkpoint is not None
    path = chain_path(cfg.checkpoint, 0)  # one file: NumPyro moves all chains together
    total = cfg.num_samples * cfg.thin
    if resuming and path.exists():
        snap = read(path)
        state = jax.tree.map(jnp.asarray, snap["state"])
        done, parts = snap["done"], snap["parts"]
    else:
        mcmc.warmup(jax.random.PRNGKey(cfg.seed), *sites.args, extra_fields=EXTRA_FIELDS,
                    **sites.kwargs)
        state, done, parts = mcmc.last_state, 0, []
    while done < total:
        save(path, {"format": FORMAT, "state": jax.device_get(state), "done": done,
                    "parts": parts})
        size = min(-(-cfg.checkpoint_every // cfg.thin) * cfg.thin, total - done)
        mcmc.num_samples = size
        mcmc.post_warmup_state = state
        mcmc.run(state.rng_key, *sites.args, extra_fields=EXTRA_FIELDS, **sites.kwargs)
        parts.append((jax.device_get(mcmc.get_samples(group_by_chain=True)),
                      jax.device_get(mcmc.get_extra_fields(group_by_chain=True))))
        state, done = mcmc.last_state, done + size
    join = functools.partial(np.concatenate, axis=1)  # (chain, draw, ...)
    return (jax.tree.map(lambda *a: join(a), *[p[0] for p in parts]),
            jax.tree.map(lambda *a: join(a), *[p[1] for p in parts]))


def scorer(model: Callable[..., Any], sites: Sites, kernel: Any
           ) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """``MCMC``'s ``postprocess_fn``: from one unconstrained state ``z``, the latent sites'
    values (by the kernel's own ``postprocess_fn``, which NumPyro would apply anyway, so the
    draws are NumPyro's to the bit), the log joint log p(θ, data) (constrained values, no
    Jacobian), the pointwise log-likelihood of every observed site and every deterministic
    site. NumPyro traces it into the sampler's compiled loop: no second compilation (a
    separately jitted ``jax.vmap`` over all draws cost 0.1–0.4 s per call).

    NumPyro also calls it once per chain on the concrete initial state, only to size the
    buffers that collect the draws; there the scores are zeros of the right shapes and
    dtypes (``jax.eval_shape``), which spares running the model's log densities op by op
    (XLA compiles each operation on its first use in a process: about 0.4 s)."""

    def scores(latent: dict[str, Any]) -> dict[str, Any]:
        log_joint, tr = log_density(model, sites.args, sites.kwargs, latent)
        return {"lp": log_joint,
                "log_lik": {k: tr[k]["fn"].log_prob(tr[k]["value"]) for k in sites.observed},
                "derived": {k: s["value"] for k, s in tr.items()
                            if s["type"] == "deterministic"}}

    def score(z: dict[str, Any]) -> dict[str, Any]:
        values = kernel.postprocess_fn(sites.args, sites.kwargs)(z)
        latent = {k: values[k] for k in sites.latents}
        if any(isinstance(v, jax.core.Tracer) for v in jax.tree.leaves(latent)):
            out = scores(latent)
        else:
            out = jax.tree.map(lambda a: np.zeros(a.shape, a.dtype),
                               jax.eval_shape(scores, latent))
        return {"latent": latent, **out}

    return score
