"""``infer(..., method="svi")``: fit a guide q(θ) to p(θ | data) by maximising the ELBO,
then draw from it, and say how far the draws can be trusted.

The model is written once with ``ppl`` primitives; ``backend="pyro"`` runs Pyro's SVI
(:mod:`inference.vi._pyro`), ``backend="numpyro"`` NumPyro's (:mod:`inference.vi._numpyro`),
each with its own autoguides, ELBOs and clipped Adam: nothing of SVI is re-implemented
here. This module refuses what SVI cannot fit, runs the backend, and builds the
:class:`~inference.Posterior`:

- ``num_chains × num_samples`` independent draws of the fitted guide (the "chains" are
  blocks of them), with the deterministic sites, the log joint ``stats["lp"]`` = log p(θ,
  data), ``stats["log_weight"]`` = log p(θ, data) − log q(θ), and the pointwise
  log-likelihood of every observed site (so ``az.loo`` and :func:`inference.compare` work);
- the Pareto k̂ of those importance weights (:func:`pareto_khat`; Yao et al. 2018, "Yes, but
  did it work?"): k̂ ≤ 0.5 the guide covers the posterior well, 0.5–0.7 usable, > 0.7 the
  guide misses mass the posterior has (too narrow, wrong shape), and a ``RunWarning`` says
  so. ``psis=True`` resamples the draws by their Pareto-smoothed weights, which corrects a
  guide that is good but not exact (k̂ < 0.7);
- ``attrs``: the ELBO trace (window means when thinned), steps run, whether the ELBO
  converged, why the run stopped, seconds, the guide's name and k̂.

Examples
--------
>>> import numpy as np
>>> import ppl
>>> from ppl import dist
>>> from inference import infer
>>> def model(y=None):
...     mu = ppl.sample("mu", dist.Normal(0.0, 10.0))
...     with ppl.plate("data", 3):
...         ppl.sample("y", dist.Normal(mu, 1.0), obs=y)
>>> post = infer(model, y=np.array([1.0, 2.0, 3.0]), method="svi", num_steps=500,
...              num_samples=200, num_chains=1, progress=False)
>>> post.attrs["plan"], post.samples["mu"].shape, bool(post.attrs["khat"] < 0.7)
('SVI[normal: mu]', (1, 200), True)
"""

from __future__ import annotations

import importlib
import math
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from inference._arviz import az
from inference.config import RunConfig
from inference.nuts import Sites
from inference.results import Posterior
from inference.vi import program_fit
from inference.vi.checkpoint import Checkpoints, write_manifest
from inference.vi.fit import Fit, thin, window
from ppl.errors import PPLError
from ppl.trace import CONTINUOUS, PROGRAM

__all__ = ["check_sites", "pareto_khat", "run_svi"]


def check_sites(sites: Sites, init_values: Mapping[str, Any] | None,
                backend: str = "pyro") -> None:
    """SVI here fits continuous latent sites (both backends) and program sites (Pyro):
    refuse program sites on NumPyro and discrete sites by name, a model without latent
    sites, and ``init_values`` naming no latent site.

    Examples
    --------
    >>> sites = Sites({"f": "program", "s": "continuous"}, {}, (), {}, 0)
    >>> check_sites(sites, None)
    >>> try:
    ...     check_sites(sites, None, backend="numpyro")
    ... except PPLError as err:
    ...     print(str(err)[:77])
    method='svi' fits program site 'f' on backend='pyro' only (the program guide
    """
    programs = [n for n, k in sites.latents.items() if k == PROGRAM]
    if programs and backend != "pyro":
        listed = ", ".join(repr(n) for n in programs)
        raise PPLError(f"method='svi' fits program site {listed} on backend='pyro' only (the "
                       "program guide is trained by score-function gradients in torch). Use "
                       "backend='pyro', or method='mcmc'.")
    discrete = [n for n, k in sites.latents.items() if k not in (CONTINUOUS, PROGRAM)]
    if discrete:
        listed = ", ".join(repr(n) for n in discrete)
        raise PPLError(f"method='svi' fits continuous and program latent sites; {listed} "
                       f"{'is' if len(discrete) == 1 else 'are'} discrete (the autoguides "
                       "cannot reparameterize a discrete draw). Use method='mcmc'.")
    if not sites.latents:
        raise PPLError("The model has no latent sites: there is nothing for SVI to fit. "
                       "Use method='mcmc' (it reports the log-likelihood of the data).")
    unknown = sorted(set(init_values or {}) - set(sites.latents))
    if unknown:
        raise PPLError(f"init_values names {unknown}, which are not latent sites of the "
                       f"model; latent sites: {sorted(sites.latents)}.")


def pareto_khat(log_weights: np.ndarray) -> tuple[np.ndarray, float]:
    """Pareto-smoothed importance sampling of draws θ_s ~ q with log weights
    log p(θ_s, data) − log q(θ_s): the smoothed, normalised log weights and the Pareto
    shape k̂ of the weights' upper tail (ArviZ's ``psislw``, relative efficiency 1: the
    draws are independent). Non-finite log weights count as zero weights.

    Examples
    --------
    A guide q = N(0, 1) for p = N(0, s) has weights whose tail shape is 1 − 1/s² when
    s > 1 (q too narrow), and a light tail when s < 1:

    >>> rng = np.random.default_rng(0)
    >>> theta = rng.normal(0.0, 1.0, 4000)
    >>> def log_w(s):
    ...     return -0.5 * (theta / s) ** 2 + 0.5 * theta ** 2
    >>> [round(pareto_khat(log_w(s))[1], 2) for s in (0.8, 1.5, 4.0)]  # 1 − 1/s²: 0.56, 0.94
    [-1.78, 0.53, 0.84]
    """
    log_w = np.asarray(log_weights, dtype=np.float64).reshape(-1)
    with warnings.catch_warnings():  # ArviZ warns on k̂ > 0.7: our RunWarning says so
        warnings.simplefilter("ignore")
        lw, khat = az.psislw(np.where(np.isfinite(log_w), log_w,  # type: ignore[no-untyped-call]
                                      -1e300))
    return np.asarray(lw, dtype=np.float64), float(np.asarray(khat))


def run_svi(model: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any],
            cfg: RunConfig, checkpoints: Checkpoints | None = None) -> Posterior:
    """Fit ``cfg.svi.guide`` to ``model(*args, **kwargs)`` with ``cfg.backend``'s SVI; see
    :func:`inference.infer` (``method="svi"``) for the options and the module docstring for
    the result. With ``cfg.checkpoint``, the fit is checkpointed
    (:mod:`inference.vi.checkpoint`); ``checkpoints`` carries the state a resumed fit
    continues from.

    Warns with ``RunWarning`` when k̂ > 0.7, and when ``max_time`` stopped the
    optimisation before the ELBO converged.
    """
    from inference.api import KHAT_LIMIT, RunWarning  # api imports this module

    impl: Any = importlib.import_module(f"inference.vi._{cfg.backend}")
    n = cfg.num_samples * cfg.num_chains
    start = time.perf_counter()
    with impl.context():
        sites: Sites = impl.discover(model, args, kwargs, cfg.seed)
        check_sites(sites, cfg.init_values, cfg.backend)
    if checkpoints is None:  # outside the backend's context, as resume reads it
        checkpoints = Checkpoints(cfg)
        if cfg.checkpoint is not None:
            write_manifest(model, args, kwargs, cfg)
    with impl.context():
        extra: dict[str, Any] = {}
        if PROGRAM in sites.latents.values():
            fit, draws, extra = program_fit.run(model, sites.args, sites.kwargs, cfg, n,
                                                checkpoints)
        else:
            fit, draws = impl.run(model, sites, cfg, n, checkpoints)
    opts = cfg.svi
    log_w = draws.lp - draws.log_q
    if opts.guide == "delta":  # a point has no importance weights: no tail to fit
        smoothed, khat = np.full(n, -math.log(n)), math.inf
    else:
        smoothed, khat = pareto_khat(log_w)
    priors = extra.pop("priors", {})
    attrs = {**_attrs(cfg, sites, fit, khat), **extra}
    picks = np.arange(n)
    if opts.psis:
        w = np.exp(smoothed - np.logaddexp.reduce(smoothed))
        w /= w.sum()
        picks = np.random.default_rng(cfg.seed).choice(n, size=n, p=w)
        attrs["psis_ess"] = float(1.0 / np.sum(w**2))
    attrs["seconds"] = round(time.perf_counter() - start, 3)
    _warn(attrs, cfg, RunWarning, KHAT_LIMIT)
    attrs["chains"] = list(range(cfg.num_chains))
    shape = (cfg.num_chains, cfg.num_samples)

    def blocks(values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The picked draws as (chain, draw, ...) arrays."""
        return {k: v[picks].reshape(shape + v.shape[1:]) for k, v in values.items()}

    stats = {"lp": draws.lp[picks].reshape(shape), "log_weight": log_w[picks].reshape(shape)}
    return Posterior(method="svi", samples={**blocks(draws.samples), **blocks(draws.derived)},
                     stats=stats, log_lik=blocks(draws.log_lik), observed=sites.observed,
                     priors=priors, model=model, args=tuple(args), kwargs=dict(kwargs),
                     attrs=attrs)


def _attrs(cfg: RunConfig, sites: Sites, fit: Fit, khat: float) -> dict[str, Any]:
    opts = cfg.svi
    trace, every = thin(fit.losses)
    last = fit.losses[-window(fit.steps):]
    return {"plan": f"SVI[{opts.guide_name}: {', '.join(sites.latents)}]",
            "backend": cfg.backend, "guide": opts.guide_name, "elbo": opts.elbo,
            "num_steps": opts.num_steps, "steps": fit.steps, "converged": fit.converged,
            "stopped": fit.stopped, "tolerance": opts.tolerance,
            "learning_rate": opts.learning_rate, "lr_decay": opts.lr_decay,
            "num_particles": opts.num_particles or 1, "final_elbo": -float(last.mean()),
            "elbo_trace": trace, "elbo_every": every, "fit_seconds": round(fit.seconds, 3),
            "khat": khat, "psis": opts.psis}


def _warn(attrs: Mapping[str, Any], cfg: RunConfig, category: type[Warning],
          limit: float) -> None:
    khat, guide = attrs["khat"], attrs["guide"]
    if cfg.svi.guide == "delta":
        warnings.warn("guide='delta' fits a point (the MAP estimate): its draws are that one "
                      "point, with no posterior uncertainty (Pareto k̂ = inf). Use it for a "
                      "mode; for a posterior use guide='normal' or 'mvn', or method='nuts'.",
                      category, stacklevel=4)
    elif not khat <= limit:
        hints = [] if guide in ("mvn", "lowrank", "grammar") else ["guide='mvn'"]
        if attrs["stopped"] != "num_steps":
            hints.append(f"a smaller tolerance (the fit stopped after {attrs['steps']} steps)")
        hints += ["more num_steps", "more num_particles" if guide == "grammar" else
                  "method='nuts'"] + (["method='mcmc'"] if guide == "grammar" else [])
        warnings.warn(f"Pareto k̂ = {khat:.2f} > {limit} for guide {guide!r}: the guide misses "
                      "part of the posterior (too narrow, lighter tails, or the wrong shape), "
                      "so its draws are unreliable"
                      f"{', even reweighted by PSIS' if cfg.svi.psis else ''}. Try "
                      f"{', '.join(hints[:-1])} or {hints[-1]}.", category, stacklevel=4)
    if attrs["stopped"] == "max_time":
        warnings.warn(f"max_time stopped SVI after {attrs['steps']} of {attrs['num_steps']} "
                      "steps, before the ELBO converged.", category, stacklevel=4)

