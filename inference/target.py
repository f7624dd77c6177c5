"""The target of inference: a model's log joint log p(latents, data), through Pyro traces.

:class:`Target` runs the model once to find its sites (program, continuous, discrete,
observed), checks the observed data, and then scores any assignment of the latent sites by
replaying the model under ``poutine.condition``. Invalid programs (nan/inf outputs) give a
log joint of −inf, which the kernels count and reject.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pyro
import torch
from pyro import poutine
from pyro.infer.autoguide.initialization import InitMessenger
from pyro.poutine.util import site_is_subsample
from torch.distributions import biject_to

from ppl.backend import to_torch
from ppl.errors import DataError, PPLError
from ppl.prior import ProgramPrior
from ppl.scoring import Scorer, Unsupported

__all__ = ["SiteInfo", "Target", "check_arguments", "check_observed", "discovery_value",
           "to_torch"]

PROGRAM, CONTINUOUS, DISCRETE = "program", "continuous", "discrete"


class SiteInfo(NamedTuple):
    """What inference needs to know about one latent site."""

    name: str
    """Site name."""
    kind: str
    """"program", "continuous" or "discrete"."""
    fn: Any
    """The site's distribution in the discovery trace."""
    shape: tuple[int, ...]
    """Shape of the site's value (() for programs)."""


def discovery_value(site: Mapping[str, Any]) -> Any:
    """A value for a latent site while finding the model's sites: a draw of its
    distribution, or, for one that cannot sample (``ImproperUniform``), a point drawn
    uniformly in (−2, 2) in the unconstrained space of its support."""
    fn = site["fn"]
    try:
        return fn.sample()
    except NotImplementedError:
        transform = biject_to(fn.support)
        shape = transform.inverse_shape(fn.shape())
        return transform(torch.rand(shape, dtype=torch.float64) * 4.0 - 2.0)


def _check_argument(name: str, value: Any) -> None:
    """Model arguments that are numeric arrays must be non-empty and finite."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if not isinstance(value, (np.ndarray, list, tuple)):
        return
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return
    if arr.size == 0:
        raise DataError(f"Model {name} is empty: there is nothing to condition on.")
    if not np.all(np.isfinite(arr)):
        bad = int(np.sum(~np.isfinite(arr)))
        raise DataError(f"Model {name} has {bad} NaN or infinite value(s); drop or impute "
                        "them before inference.")


def check_arguments(args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    """Raise :class:`~ppl.errors.DataError` naming the first model argument that is an
    empty or non-finite numeric array."""
    for name, value in [(f"'{k}'", v) for k, v in kwargs.items()] + \
            [(f"argument {i}", a) for i, a in enumerate(args)]:
        _check_argument(name, value)


def check_observed(name: str, site: Mapping[str, Any]) -> Any:
    """The value of the observed trace site ``site`` (named ``name``), after checking it:
    :class:`~ppl.errors.DataError` when it is empty, holds NaN or infinite values, or its
    shape differs from its distribution's batch + event shape (data that would broadcast).

    Examples
    --------
    >>> import pyro.distributions as dist
    >>> site = {"value": torch.tensor([0.5, 1.0]), "fn": dist.Normal(torch.zeros(2), 1.0)}
    >>> check_observed("y", site)
    tensor([0.5000, 1.0000])
    """
    value = site["value"]
    arr = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value)
    if arr.size == 0:
        raise DataError(f"Observed site '{name}' is empty.")
    if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
        bad = int(np.sum(~np.isfinite(arr)))
        raise DataError(f"Observed site '{name}' has {bad} NaN or infinite value(s); "
                        "drop or impute them before inference.")
    fn = site["fn"]
    want = tuple(fn.batch_shape) + tuple(fn.event_shape)
    if tuple(arr.shape) != want:
        raise DataError(f"Observed site '{name}' has shape {tuple(arr.shape)} but its "
                        f"distribution has shape {want}: the data would be broadcast. "
                        "Reshape the data (e.g. y.reshape(-1)) to match.")
    return value


class Target:
    """log p(latents, data) of ``model(*args, **kwargs)`` by Pyro traces.

    Parameters
    ----------
    model : callable
        A model written with ``ppl.sample`` (or ``pyro.sample``).
    args, kwargs
        The model's arguments; numpy arrays become float64 tensors. Observed sites are the
        ones the model passes ``obs=``.
    seed : int
        Seed of the discovery run (under ``torch.random.fork_rng``, so the global torch RNG
        is untouched).
    given : mapping, optional
        Values of sites the query conditions on, beyond the model's ``obs=`` sites (see
        :func:`inference.query`): ``given_obs`` (numeric values of sites without children:
        observations, in the likelihood) and ``fixed`` (every other given site, e.g. a
        program or a parameter held at a value: a constant prior term).
    data_sites : collection of str, optional
        Which ``given`` sites are observations; the rest are fixed. Default: every given
        site whose value is not a Program.
    """

    def __init__(self, model: Callable[..., Any], args: tuple[Any, ...],
                 kwargs: Mapping[str, Any], seed: int = 0,
                 given: Mapping[str, Any] | None = None,
                 data_sites: Collection[str] | None = None) -> None:
        self.model = model
        check_arguments(args, kwargs)
        self.args = tuple(to_torch(a) for a in args)
        self.kwargs = {k: to_torch(v) for k, v in kwargs.items()}
        given = {k: to_torch(v) for k, v in (given or {}).items()}
        if data_sites is None:
            data_sites = [k for k, v in given.items() if not hasattr(v, "prods")]
        self.given_obs: dict[str, Any] = {k: v for k, v in given.items() if k in data_sites}
        """Given sites that are observations (likelihood terms)."""
        self.fixed: dict[str, Any] = {k: v for k, v in given.items() if k not in data_sites}
        """Given sites held at a value (prior terms, never tempered)."""
        self.fast = False
        """Whether the scoring fast path is on (see :meth:`check_fast`)."""
        self.beta = 1.0
        """Likelihood temperature: scores are log prior + beta · log likelihood."""
        trace = self._discover(seed)
        missing = sorted(set(given) - set(trace.nodes))
        if missing:
            raise DataError(f"Given site(s) {missing} are not sites of the model; its sites "
                            f"are {[n for n, s in trace.nodes.items() if s['type'] == 'sample']}.")
        self.latents: dict[str, SiteInfo] = {}
        self.observed: dict[str, Any] = {}
        for name, site in trace.nodes.items():
            if site["type"] != "sample" or site_is_subsample(site) or name in self.fixed:
                continue
            if site["is_observed"]:
                if type(site["fn"]).__name__ == "Unit" or site["infer"].get("_deterministic"):
                    continue  # a factor or a deterministic value, not observed data
                self.observed[name] = check_observed(name, site)
            else:
                self.latents[name] = self._classify(name, site)

    def _discover(self, seed: int) -> Any:
        with torch.random.fork_rng(), pyro.validation_enabled(False):
            torch.manual_seed(seed)
            try:
                try:
                    return poutine.trace(self.conditioned()).get_trace(*self.args,
                                                                       **self.kwargs)
                except NotImplementedError:  # a distribution that cannot sample (improper)
                    torch.manual_seed(seed)
                    init: Any = InitMessenger(discovery_value)  # type: ignore[no-untyped-call]
                    return poutine.trace(init(self.conditioned())).get_trace(*self.args,
                                                                             **self.kwargs)
            except PPLError:
                raise
            except (ValueError, RuntimeError, TypeError, IndexError, ZeroDivisionError) as err:
                raise DataError(f"Running the model on its data failed: {err}\nCheck that "
                                "observed data match their distributions' shapes.") from err

    @staticmethod
    def _classify(name: str, site: Mapping[str, Any]) -> SiteInfo:
        fn = site["fn"]
        while hasattr(fn, "base_dist") and not isinstance(fn, ProgramPrior):
            fn = fn.base_dist
        if isinstance(fn, ProgramPrior):
            return SiteInfo(name, PROGRAM, fn, ())
        shape = tuple(site["value"].shape)
        if getattr(site["fn"], "has_enumerate_support", False) and \
                site["fn"].support.is_discrete:
            return SiteInfo(name, DISCRETE, site["fn"], shape)
        return SiteInfo(name, CONTINUOUS, site["fn"], shape)

    # ------------------------------------------------------------------ scoring
    def conditioned(self, values: Mapping[str, Any] | None = None) -> Callable[..., Any]:
        """The model with the given sites (and ``values``) conditioned, for Pyro traces."""
        data = {**self.fixed, **self.given_obs, **dict(values or {})}
        return poutine.condition(self.model, data=data) if data else self.model

    def trace(self, values: Mapping[str, Any]) -> Any:
        """The model's Pyro trace with the latent sites set to ``values`` (log probs
        computed)."""
        with pyro.validation_enabled(False):
            tr = poutine.trace(self.conditioned(values)).get_trace(*self.args, **self.kwargs)
            tr.compute_log_prob()
        return tr

    def _trace_terms(self, values: Mapping[str, Any]) -> tuple[Any, Any]:
        """(Σ latent log probs, Σ observed log probs and factors) of a Pyro trace, as
        tensors (fixed sites count as latent: their terms are constants of the prior)."""
        tr = self.trace(values)
        latent: Any = 0.0
        lik: Any = 0.0
        for name, site in tr.nodes.items():
            if site["type"] == "sample" and not site_is_subsample(site):
                if site["is_observed"] and name not in self.fixed:
                    lik = lik + site["log_prob_sum"]
                else:
                    latent = latent + site["log_prob_sum"]
        return latent, lik

    def _trace_parts(self, values: Mapping[str, Any]) -> tuple[float, float]:
        """(Σ latent log probs, Σ observed log probs and factors) from a Pyro trace."""
        latent, lik = self._trace_terms(values)
        return float(latent), float(lik)

    def _trace_log_joint(self, values: Mapping[str, Any]) -> float:
        latent, lik = self._trace_parts(values)
        return latent + lik if self.beta == 1.0 else latent + self.beta * lik

    def _score(self, values: Mapping[str, Any], record: bool = False) -> Scorer:
        if self.fixed:
            values = {**self.fixed, **values}
        with pyro.validation_enabled(False), \
                Scorer(values, record=record, observed=self.given_obs) as scorer:
            self.model(*self.args, **self.kwargs)
        return scorer

    def check_fast(self, states: Sequence[Mapping[str, Any]]) -> bool:
        """Enable the scoring fast path (:mod:`ppl.scoring`) if it reproduces the Pyro
        trace's log joint to 1e-9 on every state given; return whether it is on."""
        self.fast = False
        try:
            for values in states:
                fast = float(self._score(values).total(self.beta))
                slow = self._trace_log_joint(values)
                if not math.isclose(fast, slow, rel_tol=1e-9, abs_tol=1e-9) and not (
                        math.isnan(fast) and math.isnan(slow)):
                    return False
        except Unsupported:
            return False
        self.fast = bool(states)
        return self.fast

    def log_joint(self, values: Mapping[str, Any]) -> float:
        """log p(values, data) (tempered: log prior + beta · log likelihood); −inf when any
        factor is nan or −inf."""
        total = float(self._score(values).total(self.beta)) if self.fast else \
            self._trace_log_joint(values)
        return -math.inf if math.isnan(total) else total

    def log_lik(self, values: Mapping[str, Any]) -> float:
        """log p(data | values): the observed sites and factors, untempered."""
        total = float(self._score(values).log_lik()) if self.fast else \
            self._trace_parts(values)[1]
        return -math.inf if math.isnan(total) else total

    def pointwise(self, values: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Per-observation log-likelihood of every observed site at ``values``."""
        if self.fast:
            sites = self._score(values, record=True).sites
            lps = {name: sites[name][2] for name in self.observed}
        else:
            tr = self.trace(values)
            lps = {name: tr.nodes[name]["log_prob"] for name in self.observed}
        return {name: np.broadcast_to(lp.detach().cpu().numpy().astype(np.float64),
                                      tuple(np.shape(self.observed[name]))).copy()
                for name, lp in lps.items()}

    def record(self, values: Mapping[str, Any]) -> Scorer:
        """A recorded fast-path run at ``values`` (sites and program calls); needs
        ``self.fast``."""
        return self._score(values, record=True)

    def log_joint_tensor(self, values: Mapping[str, Any]) -> torch.Tensor:
        """log p(values, data) (tempered) as a torch scalar that keeps the autograd graph of
        ``values``: what gradient-based blocks (MALA, NUTS) differentiate."""
        if self.fast:
            return torch.as_tensor(self._score(values).total(self.beta))
        latent, lik = self._trace_terms(values)
        return torch.as_tensor(latent + lik if self.beta == 1.0 else latent + self.beta * lik)

    def log_joint_grad(self, values: Mapping[str, Any], site: str, replacement: Any,
                       leaf: torch.Tensor) -> tuple[float, np.ndarray]:
        """log joint and its gradient with respect to ``leaf``, with ``values[site]`` set to
        ``replacement`` (e.g. a BoundProgram whose constants are ``leaf``)."""
        vals = dict(values)
        vals[site] = replacement
        lp = self.log_joint_tensor(vals)
        if not torch.isfinite(lp):
            return -math.inf, np.full(leaf.shape, np.nan)
        if not lp.requires_grad:
            return float(lp), np.zeros(leaf.shape)
        (grad,) = torch.autograd.grad(lp, leaf, allow_unused=True)
        g = np.zeros(leaf.shape) if grad is None else grad.detach().cpu().numpy()
        return float(lp.detach()), g.astype(np.float64)
