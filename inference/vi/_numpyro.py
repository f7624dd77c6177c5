"""``method="svi"`` on NumPyro: ``numpyro.infer.SVI``, ``Trace_ELBO`` or
``TraceMeanField_ELBO``, ``numpyro.optim.ClippedAdam`` on an exponentially decaying step
size (``jax.example_libraries.optimizers.exponential_decay``), and a NumPyro guide.

The model runs as under ``method="nuts"`` (:mod:`inference._nuts_numpyro`: float64 jax
arrays, the NumPyro backend of ``ppl``). A window of steps is one compiled call (a
``fori_loop`` over ``svi.update``, its length an argument: one compilation for every
window), and every draw's scores come out of one compiled ``vmap``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.example_libraries import optimizers
from numpyro import handlers
from numpyro.infer import SVI, Trace_ELBO, TraceMeanField_ELBO
from numpyro.infer.util import log_density
from numpyro.optim import ClippedAdam

from inference._nuts_numpyro import context, discover
from inference.checkpoint import CheckpointError
from inference.config import RunConfig
from inference.nuts import Sites
from inference.vi.checkpoint import Checkpoints
from inference.vi.fit import Draws, Fit, train, window
from inference.vi.guides import GuideError, check_coverage, check_signature, make_guide

__all__ = ["CLIP_NORM", "RUN_ERRORS", "context", "discover", "run"]

CLIP_NORM = 10.0
"""NumPyro's ClippedAdam clips every gradient element to [−CLIP_NORM, CLIP_NORM]."""
RUN_ERRORS = (ValueError, RuntimeError, TypeError, KeyError, IndexError, AttributeError,
              NotImplementedError, AssertionError)
"""What a failing model or guide raises inside NumPyro: turned into a PPLError naming it."""


def _array(value: Any) -> Any:
    return jnp.asarray(np.asarray(value, dtype=np.float64))


def run(model: Callable[..., Any], sites: Sites, cfg: RunConfig, n: int,
        checkpoints: Checkpoints | None = None) -> tuple[Fit, Draws]:
    """Fit ``cfg.svi.guide`` to ``model`` and draw ``n`` scored draws from it (inside
    :func:`context`); ``checkpoints`` saves the fit's state (the ``SVIState`` pytree's
    leaves), or holds the state a resumed fit continues from
    (:mod:`inference.vi.checkpoint`)."""
    checkpoints = checkpoints or Checkpoints(cfg)
    opts = cfg.svi
    label = opts.guide_name
    guide = make_guide(opts.guide, "numpyro", model, cfg.init_values, _array)
    if not isinstance(opts.guide, str):
        check_signature(guide, sites.args, sites.kwargs)
    loss = (Trace_ELBO if opts.elbo == "trace" else TraceMeanField_ELBO)(
        num_particles=opts.num_particles or 1)
    decay: Any = optimizers.exponential_decay  # untyped in jax
    optim = ClippedAdam(decay(opts.learning_rate, opts.num_steps, opts.lr_decay),
                        clip_norm=CLIP_NORM)
    svi = SVI(model, guide, optim, loss)
    train_key, draw_key = jax.random.split(jax.random.PRNGKey(cfg.seed))
    try:
        state = svi.init(train_key, *sites.args, **sites.kwargs)
        tr = handlers.trace(handlers.substitute(handlers.seed(guide, draw_key),
                                                data=svi.get_params(state))
                            ).get_trace(*sites.args, **sites.kwargs)
    except RUN_ERRORS as err:
        raise GuideError(f"The guide {label!r} failed on the model's arguments: "
                         f"{type(err).__name__}: {err}") from err
    check_coverage([k for k, s in tr.items() if s["type"] == "sample"], sites.latents,
                   repr(label))
    saved = checkpoints.load("numpyro")
    if saved is not None:
        state = _restore(state, saved)
    step = jax.jit(_steps(svi, sites, window(opts.num_steps)))
    box = [state]

    def chunk(k: int) -> np.ndarray:
        box[0], losses = step(box[0], k)
        return np.asarray(losses)[:k]

    try:
        fit = train(chunk, opts.num_steps, opts.tolerance, cfg.max_time, cfg.show_progress,
                    desc=f"SVI[{label}]", done=checkpoints.losses, every=checkpoints.every,
                    save=checkpoints.saver("numpyro", lambda: [
                        np.asarray(x) for x in jax.tree_util.tree_leaves(
                            jax.device_get(box[0]))]))
    except RUN_ERRORS as err:
        raise GuideError(f"SVI with guide {label!r} failed: {type(err).__name__}: "
                         f"{err}") from err
    return fit, _draws(model, guide, sites, svi.get_params(box[0]), draw_key, n)


def _restore(fresh: Any, leaves: list[np.ndarray]) -> Any:
    """The ``SVIState`` of ``fresh``'s structure (the state ``svi.init`` built) with the
    saved ``leaves``: the optimiser's state and step, the guide's parameters, the key."""
    now, tree = jax.tree_util.tree_flatten(fresh)
    if len(now) != len(leaves) or any(
            np.shape(a) != np.shape(b) or np.asarray(a).dtype != b.dtype
            for a, b in zip(now, leaves, strict=False)):
        raise CheckpointError(f"The checkpoint's SVI state ({len(leaves)} arrays, shapes "
                              f"{[np.shape(b) for b in leaves]}) is not this fit's "
                              f"({len(now)}, {[np.shape(a) for a in now]}).")
    return jax.tree_util.tree_unflatten(tree, [jnp.asarray(b) for b in leaves])


def _steps(svi: Any, sites: Sites, size: int) -> Callable[[Any, Any], tuple[Any, Any]]:
    """(state, k) -> (state after k steps, the k losses in a buffer of ``size``)."""

    def steps(state: Any, k: Any) -> tuple[Any, Any]:
        def body(i: Any, carry: tuple[Any, Any]) -> tuple[Any, Any]:
            s, buf = carry
            s, loss = svi.update(s, *sites.args, **sites.kwargs)
            return s, buf.at[i].set(loss)

        out: tuple[Any, Any] = jax.lax.fori_loop(0, k, body, (state, jnp.zeros(size)))
        return out

    return steps


def _draws(model: Callable[..., Any], guide: Callable[..., Any], sites: Sites,
           params: Mapping[str, Any], key: Any, n: int) -> Draws:
    """``n`` draws of the fitted guide with log q, the model's log joint, the pointwise
    log-likelihood and the deterministic sites, in one compiled ``vmap``."""

    def one(k: Any) -> dict[str, Any]:
        log_q, gtr = log_density(handlers.seed(guide, k), sites.args, sites.kwargs, params)
        values = {name: gtr[name]["value"] for name in sites.latents}
        lp, mtr = log_density(model, sites.args, sites.kwargs, values)
        return {"values": values, "log_q": log_q, "lp": lp,
                "log_lik": {name: mtr[name]["fn"].log_prob(mtr[name]["value"])
                            for name in sites.observed},
                "derived": {name: s["value"] for name, s in mtr.items()
                            if s["type"] == "deterministic"}}

    out = jax.device_get(jax.jit(jax.vmap(one))(jax.random.split(key, n)))

    def f64(tree: Mapping[str, Any]) -> dict[str, np.ndarray]:
        return {k: np.asarray(v, dtype=np.float64) for k, v in tree.items()}

    return Draws(f64(out["values"]), np.asarray(out["log_q"], dtype=np.float64),
                 np.asarray(out["lp"], dtype=np.float64), f64(out["log_lik"]),
                 f64(out["derived"]))
