"""``method="svi"`` on Pyro: ``pyro.infer.SVI``, ``Trace_ELBO`` or ``TraceMeanField_ELBO``,
``ClippedAdam`` with an exponentially decaying step size, and a Pyro guide.

The model runs as under ``method="nuts"`` (:mod:`inference._nuts_pyro`: float64 tensors,
the Pyro backend of ``ppl``), on one torch thread, with a parameter store of its own
(``ParamStore.scope``), so a run neither reads nor clobbers the caller's parameters.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import pyro
import torch
from pyro.infer import SVI as _SVI
from pyro.infer import Trace_ELBO as _Trace_ELBO
from pyro.infer import TraceMeanField_ELBO as _TraceMeanField_ELBO
from pyro.optim import ClippedAdam
from pyro.poutine.util import site_is_subsample

from inference._nuts_pyro import context as float64
from inference._nuts_pyro import discover, evaluate
from inference.checkpoint import CheckpointError
from inference.config import RunConfig
from inference.nuts import Sites, per_draw
from inference.threads import one_thread
from inference.vi.checkpoint import Checkpoints
from inference.vi.fit import Draws, Fit, train
from inference.vi.guides import GuideError, check_coverage, check_signature, make_guide
from ppl import backend
from ppl.trace import seeded, trace_model

__all__ = ["CLIP_NORM", "ELBOS", "RUN_ERRORS", "SVI", "context", "discover", "run"]

SVI: Any = _SVI  # untyped in Pyro
ELBOS: dict[str, Any] = {"trace": _Trace_ELBO, "meanfield": _TraceMeanField_ELBO}
"""ELBO name -> Pyro's class."""
CLIP_NORM = 10.0
"""ClippedAdam's bound on each parameter's gradient norm."""
RUN_ERRORS = (ValueError, RuntimeError, TypeError, KeyError, IndexError, AttributeError,
              NotImplementedError, AssertionError)
"""What a failing model or guide raises inside Pyro: turned into a PPLError naming it."""


@contextlib.contextmanager
def context() -> Iterator[None]:
    """float64 default dtype, one torch and one BLAS thread
    (:func:`inference.threads.one_thread`; measured 10x slower per step for
    AutoMultivariateNormal on eight schools with 2 torch threads on a busy 2-core machine),
    a fresh parameter store and the Pyro backend, all restored on exit."""
    with one_thread(), float64(), pyro.get_param_store().scope(), backend.use("pyro"):
        yield


def _tensor(value: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(value, dtype=np.float64))


def _seeds(seed: int) -> tuple[int, int]:
    """Independent seeds of the optimisation and of the draws."""
    a, b = (int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(2))
    return a, b


def run(model: Callable[..., Any], sites: Sites, cfg: RunConfig, n: int,
        checkpoints: Checkpoints | None = None) -> tuple[Fit, Draws]:
    """Fit ``cfg.svi.guide`` to ``model`` and draw ``n`` scored draws from it (inside
    :func:`context`); ``checkpoints`` saves the fit's state, or holds the state a resumed
    fit continues from (:mod:`inference.vi.checkpoint`)."""
    checkpoints = checkpoints or Checkpoints(cfg)
    opts = cfg.svi
    train_seed, draw_seed = _seeds(cfg.seed)
    label = opts.guide_name
    with seeded(train_seed):
        guide = make_guide(opts.guide, "pyro", model, cfg.init_values, _tensor)
        if not isinstance(opts.guide, str):
            check_signature(guide, sites.args, sites.kwargs)
        shapes = _shapes(guide, sites, label)
        loss = ELBOS[opts.elbo](
            num_particles=opts.num_particles or 1,
            vectorize_particles=(opts.num_particles or 1) > 1,
            max_plate_nesting=sites.max_plate_nesting)
        optim = ClippedAdam({"lr": opts.learning_rate, "clip_norm": CLIP_NORM,
                             "lrd": opts.lr_decay ** (1.0 / opts.num_steps)})
        svi = SVI(model, guide, optim, loss)
        saved = checkpoints.load("pyro")
        if saved is not None:
            _restore(saved, optim)

        def chunk(k: int) -> np.ndarray:
            return np.array([svi.step(*sites.args, **sites.kwargs) for _ in range(k)])

        try:
            fit = train(chunk, opts.num_steps, opts.tolerance, cfg.max_time,
                        cfg.show_progress, desc=f"SVI[{label}]", done=checkpoints.losses,
                        every=checkpoints.every,
                        save=checkpoints.saver("pyro", lambda: _snapshot(optim)))
        except RUN_ERRORS as err:
            raise GuideError(f"SVI with guide {label!r} failed: {type(err).__name__}: "
                             f"{err}") from err
    with seeded(draw_seed), torch.no_grad():
        return fit, _draws(model, guide, sites, shapes, n)


def _snapshot(optim: Any) -> dict[str, Any]:
    """The fit's state: the parameter store's unconstrained values, ClippedAdam's state
    per parameter, torch's generator (the ELBO's draws)."""
    store = pyro.get_param_store()
    return {"params": {k: v.detach().clone() for k, v in store.named_parameters()},
            "optim": optim.get_state(), "rng": torch.get_rng_state()}


def _restore(saved: Mapping[str, Any], optim: Any) -> None:
    """Load :func:`_snapshot`'s state over a fit built anew (its guide run once, so every
    parameter exists): the values in place, the optimiser's state for each parameter's
    first step, the generator."""
    params = dict(pyro.get_param_store().named_parameters())
    if set(params) != set(saved["params"]) or any(
            params[k].shape != v.shape for k, v in saved["params"].items()):
        shapes = {k: tuple(v.shape) for k, v in sorted(saved["params"].items())}
        now = {k: tuple(v.shape) for k, v in sorted(params.items())}
        raise CheckpointError(f"The checkpoint's parameters {shapes} are not this fit's "
                              f"{now}.")
    with torch.no_grad():
        for k, v in saved["params"].items():
            params[k].copy_(v)
    optim.set_state(saved["optim"])
    torch.set_rng_state(saved["rng"])


def _shapes(guide: Callable[..., Any], sites: Sites, label: str) -> dict[str, tuple[int, ...]]:
    """One run of the guide: it must take the model's arguments and sample every latent
    site; the shape of each latent site's value."""
    try:
        tr: Any = trace_model(guide, sites.args, sites.kwargs)
    except RUN_ERRORS as err:
        raise GuideError(f"The guide {label!r} failed on the model's arguments: "
                         f"{type(err).__name__}: {err}") from err
    names = [k for k, s in tr.nodes.items() if s["type"] == "sample"]
    check_coverage(names, sites.latents, repr(label))
    return {k: tuple(tr.nodes[k]["value"].shape) for k in sites.latents}


def _sum_per_draw(log_prob: Any, n: int, dim: int) -> np.ndarray:
    """Σ of a site's log-probabilities per draw, the draws along ``dim`` (negative); a
    term without that dimension does not depend on the draw. ValueError otherwise."""
    t = torch.as_tensor(log_prob, dtype=torch.float64)
    if t.dim() >= -dim and t.shape[dim] == n:
        out: np.ndarray = t.movedim(dim, 0).reshape(n, -1).sum(1).cpu().numpy()
        return out
    if t.dim() < -dim or t.shape[dim] == 1:
        return np.full(n, float(t.sum()))
    raise ValueError(f"a log-probability of shape {tuple(t.shape)} is not per draw")


def _vectorized(guide: Callable[..., Any], sites: Sites, shapes: Mapping[str, tuple[int, ...]],
                n: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``n`` draws of the guide in one run, under a plate left of the model's plates."""
    dim = -(sites.max_plate_nesting + 1)
    with pyro.plate("_ppl_draws", n, dim=dim):
        tr: Any = trace_model(guide, sites.args, sites.kwargs)
    tr.compute_log_prob()
    log_q = np.zeros(n)
    for site in tr.nodes.values():
        if site["type"] == "sample" and not site_is_subsample(site):
            log_q += _sum_per_draw(site["log_prob"], n, dim)
    values = {k: per_draw(tr.nodes[k]["value"].cpu().numpy(), n, shapes[k]) for k in shapes}
    return values, log_q


def _looped(guide: Callable[..., Any], sites: Sites, shapes: Mapping[str, tuple[int, ...]],
            n: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``n`` draws of the guide, one run each (a guide that does not vectorize)."""
    values: dict[str, list[np.ndarray]] = {k: [] for k in shapes}
    log_q = np.zeros(n)
    for i in range(n):
        tr: Any = trace_model(guide, sites.args, sites.kwargs)
        tr.compute_log_prob()
        log_q[i] = sum(float(s["log_prob_sum"]) for s in tr.nodes.values()
                       if s["type"] == "sample" and not site_is_subsample(s))
        for k in shapes:
            values[k].append(tr.nodes[k]["value"].cpu().numpy())
    return {k: np.stack(v).astype(np.float64) for k, v in values.items()}, log_q


def _draws(model: Callable[..., Any], guide: Callable[..., Any], sites: Sites,
           shapes: Mapping[str, tuple[int, ...]], n: int) -> Draws:
    try:
        values, log_q = _vectorized(guide, sites, shapes, n)
    except (ValueError, RuntimeError, TypeError, IndexError):
        values, log_q = _looped(guide, sites, shapes, n)
    lp, log_lik, derived = evaluate(model, sites, {k: v[None] for k, v in values.items()})
    return Draws(values, log_q, lp[0], {k: v[0] for k, v in log_lik.items()},
                 {k: v[0] for k, v in derived.items()})
