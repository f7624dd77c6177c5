"""``infer(..., method="nuts")``: NUTS for models whose latent sites are all continuous,
run by the backends' own samplers.

The model is written once with ``ppl.sample``, ``ppl.plate``, ``ppl.dist`` and
``ppl.deterministic``. With ``backend="pyro"`` it runs under ``pyro.infer.NUTS``/``MCMC``
(:mod:`inference._nuts_pyro`), with ``backend="numpyro"`` under ``numpyro.infer.NUTS``/``MCMC``
inside ``ppl.backend.use("numpyro")`` with float64 jax arrays (:mod:`inference._nuts_numpyro`).
NUTS itself is never re-implemented here: this module finds the sites, refuses what NUTS
cannot sample, and turns either library's output into one :class:`~inference.Posterior`
(draws, ArviZ sample statistics, the log joint and pointwise log-likelihood per draw).

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
>>> post = infer(model, y=np.array([1.0, 2.0, 3.0]), method="nuts", num_samples=50,
...              num_warmup=50, num_chains=1, progress=False)
>>> post.attrs["plan"], post.samples["mu"].shape
('NUTS[mu]', (1, 50))
"""

from __future__ import annotations

import contextlib
import importlib
import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from inference.checkpoint import begin, run_fingerprint
from inference.config import RunConfig
from inference.results import Posterior
from ppl.errors import PPLError
from ppl.trace import CONTINUOUS, PROGRAM

__all__ = ["BackendRun", "Sites", "per_draw", "run_nuts", "tree_depth"]


class Sites(NamedTuple):
    """What one discovery run of the model found."""

    latents: dict[str, str]
    """Latent site -> kind ("continuous", "discrete" or "program")."""
    observed: dict[str, np.ndarray]
    """Observed site -> its data."""
    args: tuple[Any, ...]
    """The model's positional arguments, converted for the backend."""
    kwargs: dict[str, Any]
    """The model's keyword arguments, converted for the backend."""
    max_plate_nesting: int
    """How deeply the model's plates nest (Pyro's NUTS needs it given, so that it need not
    run the model with sampling, which improper priors cannot do)."""


class BackendRun(NamedTuple):
    """A backend's output, already shaped (chain, draw, ...)."""

    samples: dict[str, np.ndarray]
    """Latent and deterministic site -> draws."""
    stats: dict[str, np.ndarray]
    """ArviZ sample statistics: lp, acceptance_rate, diverging, energy, n_steps,
    step_size, tree_depth."""
    log_lik: dict[str, np.ndarray]
    """Observed site -> pointwise log-likelihood."""
    seconds: list[float]
    """Wall seconds of sampling, per chain (Pyro) or for all chains (NumPyro)."""
    chain_method: str
    """How the chains ran: "sequential", "parallel", "vectorized" or "executor"."""


def tree_depth(n_steps: np.ndarray) -> np.ndarray:
    """Tree depth of a NUTS transition from its leapfrog steps: ⌊log2 n⌋ + 1 (a full tree
    of depth d has 2**d − 1 steps; ArviZ's convention for NumPyro)."""
    depth: np.ndarray = (np.floor(np.log2(np.maximum(n_steps, 1))) + 1).astype(np.int64)
    return depth


def per_draw(value: Any, n: int, shape: tuple[int, ...]) -> np.ndarray:
    """``value`` from a run vectorized over ``n`` draws as an (n, *shape) array; a value
    that does not depend on the draws is repeated. ValueError if it fits neither."""
    arr = np.asarray(value, dtype=np.float64)
    size = math.prod(shape)
    if arr.size == n * size:
        out: np.ndarray = arr.reshape((n, *shape))
        return out
    if arr.size == size:
        return np.broadcast_to(arr.reshape(shape), (n, *shape)).copy()
    raise ValueError(f"a value of shape {arr.shape} is not {n} draws of shape {shape}")


def _check_sites(sites: Sites, init_values: Mapping[str, Any] | None) -> None:
    """NUTS moves continuous sites only: refuse program and discrete ones by name."""
    other = {n: k for n, k in sites.latents.items() if k != CONTINUOUS}
    if other:
        listed = ", ".join(f"'{n}' ({k})" for n, k in other.items())
        hint = ("program sites need program moves" if PROGRAM in other.values() else
                "discrete sites need Metropolis or Gibbs updates")
        raise PPLError(f"method='nuts' samples continuous latent sites only; this model has "
                       f"{listed}: {hint}. Use method='mcmc' (Metropolis-within-Gibbs over "
                       "every kind of site).")
    if not sites.latents:
        raise PPLError("The model has no latent sites: there is nothing for NUTS to sample. "
                       "Use method='mcmc' (it reports the log-likelihood of the data).")
    unknown = sorted(set(init_values or {}) - set(sites.latents))
    if unknown:
        raise PPLError(f"init_values names {unknown}, which are not latent sites of the "
                       f"model; latent sites: {sorted(sites.latents)}.")


def run_nuts(model: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any],
             cfg: RunConfig, resuming: bool = False, force: bool = False) -> Posterior:
    """Run NUTS on ``model(*args, **kwargs)`` with ``backend``'s sampler; see
    :func:`inference.infer` (``method="nuts"``) for the arguments and the result.
    With ``cfg.checkpoint`` the run is checkpointed (:mod:`inference.checkpoint`); with
    ``resuming`` it continues from the checkpoint (:func:`inference.resume`, which passes
    ``force``).

    Warns with ``RunWarning`` when transitions diverged after warmup."""
    backend = cfg.backend
    impl: Any = importlib.import_module(f"inference._nuts_{backend}")
    ctx = impl.context() if hasattr(impl, "context") else contextlib.nullcontext()
    with ctx:
        sites = impl.discover(model, args, kwargs, cfg.seed)
        _check_sites(sites, cfg.init_values)
        if cfg.checkpoint is not None:
            fp = run_fingerprint(model, [args, dict(kwargs), sites.observed], sites.latents)
            begin(cfg.checkpoint, fp, cfg, resuming, force)
        out: BackendRun = impl.run(model, sites, cfg, resuming)
    plan = f"NUTS[{', '.join(sites.latents)}]"
    divergent = int(out.stats["diverging"].sum())
    if divergent:
        from inference.api import RunWarning  # api imports this module

        per_chain = out.stats["diverging"].sum(axis=1).tolist()
        warnings.warn(f"{divergent} divergent transitions after warmup (per chain: "
                      f"{per_chain}); the draws may miss part of the posterior. "
                      "Reparameterize the model (e.g. non-centered: sample a standard "
                      "normal and scale it with ppl.deterministic) or raise "
                      f"target_accept_prob (now {cfg.nuts.target_accept_prob}).",
                      RunWarning, stacklevel=3)
    attrs = {"plan": plan, "backend": backend, "chains": list(range(cfg.num_chains)),
             "seconds": [round(s, 3) for s in out.seconds], "chain_method": out.chain_method,
             "num_divergent": divergent, "target_accept_prob": cfg.nuts.target_accept_prob,
             "max_tree_depth": cfg.nuts.max_tree_depth, "dense_mass": cfg.nuts.dense_mass}
    return Posterior(method="nuts", samples=out.samples, stats=out.stats,
                     log_lik=out.log_lik, observed=sites.observed, priors={}, model=model,
                     args=tuple(args), kwargs=dict(kwargs), attrs=attrs)
