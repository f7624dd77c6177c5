"""The target of inference: a model's log joint log p(latents, data), through Pyro traces.

:class:`Target` runs the model once to find its sites (program, continuous, discrete,
observed), checks the observed data, and then scores any assignment of the latent sites by
replaying the model under ``poutine.condition``. Invalid programs (nan/inf outputs) give a
log joint of −inf, which the kernels count and reject.

Finding, classifying and checking the sites is :func:`ppl.trace.discover`, the run
:class:`ppl.World` makes too; the site kinds ``PROGRAM``, ``CONTINUOUS`` and ``DISCRETE`` are
those of :mod:`ppl.trace`, re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pyro
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

from ppl.backend import to_torch
from ppl.errors import DataError, PPLError
from ppl.prior import ProgramPrior
from ppl.program import Program
from ppl.scoring import Scorer, Unsupported
from ppl.trace import (
    CONTINUOUS,
    DISCRETE,
    PROGRAM,
    Site,
    base_distribution,
    check_arguments,
    data_errors,
    discover,
    trace_model,
)

__all__ = ["CONTINUOUS", "DISCRETE", "PROGRAM", "SiteInfo", "Target", "checked_value",
           "to_torch"]


class SiteInfo(NamedTuple):
    """What inference needs to know about one latent site."""

    name: str
    """Site name."""
    kind: str
    """"program", "continuous" or "discrete" (:mod:`ppl.trace`)."""
    fn: Any
    """The site's distribution in the discovery trace (for a program site, its
    ProgramPrior)."""
    shape: tuple[int, ...]
    """Shape of the site's value (() for programs)."""

    @classmethod
    def of(cls, site: Site) -> SiteInfo:
        """The SiteInfo of a latent :class:`ppl.trace.Site`."""
        if site.kind == PROGRAM:
            return cls(site.name, PROGRAM, base_distribution(site.fn), ())
        return cls(site.name, site.kind, site.fn, site.shape)


def checked_value(label: str, site: str, fn: Any, shape: tuple[int, ...], value: Any,
                  broadcast: bool = False) -> Program | np.ndarray:
    """A value given for site ``site`` (distribution ``fn``, value shape ``shape``), checked:
    for a program site, a :class:`ppl.Program` or its text, parsed by the site's prior (its
    input order); otherwise a non-empty finite float64 array of the site's shape (or one
    that broadcasts to it, with ``broadcast``) inside the site's support. Each failure is a
    :class:`PPLError` that starts with ``label``. Used for ``init_values`` and for the
    given sites of a query.

    Examples
    --------
    >>> from ppl import dist
    >>> checked_value("init_values['s']", "s", dist.HalfNormal(1.0), (), 0.5)
    array(0.5)
    >>> try:
    ...     checked_value("init_values['s']", "s", dist.HalfNormal(1.0), (), -1.0)
    ... except PPLError as err:
    ...     print(str(err)[:52])
    init_values['s'] = -1.0 is outside the support of si
    """
    if isinstance(fn, ProgramPrior):
        if not isinstance(value, (str, Program)):
            raise PPLError(f"{label} must be a ppl.Program or its text: site {site!r} is "
                           f"program-valued; got {type(value).__name__}.")
        try:
            return fn.parse(value)
        except PPLError as err:
            raise PPLError(f"{label} does not parse as a program of its site's prior: "
                           f"{err}") from err
    try:
        arr = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value,
                         dtype=np.float64)
    except (TypeError, ValueError):
        raise PPLError(f"{label} must be a number or an array; got "
                       f"{type(value).__name__}.") from None
    if arr.size == 0 or not np.all(np.isfinite(arr)):
        raise PPLError(f"{label} is empty or has NaN/inf values.")
    try:
        fits = (np.broadcast_shapes(arr.shape, shape) if broadcast else arr.shape) == shape
    except ValueError:  # shapes that do not broadcast
        fits = False
    if not fits:
        raise PPLError(f"{label} has shape {arr.shape}; site {site!r} has shape {shape}.")
    support = getattr(fn, "support", None)
    if support is not None and not bool(torch.all(support.check(torch.as_tensor(
            np.broadcast_to(arr, shape).copy())))):
        shown = arr.tolist() if arr.size <= 4 else f"an array of shape {arr.shape}"
        raise PPLError(f"{label} = {shown} is outside the support of site {site!r} "
                       f"({support}).")
    return arr


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
        Seed of the discovery run (:func:`ppl.trace.discover`: a seeded quiet run, so the
        global torch RNG is untouched).
    given : mapping, optional
        Values of sites the query conditions on, beyond the model's ``obs=`` sites (see
        :func:`inference.query`): ``given_obs`` (numeric values of sites without children:
        observations, in the likelihood) and ``fixed`` (every other given site, e.g. a
        program or a parameter held at a value: a constant prior term).
    data_sites : collection of str, optional
        Which ``given`` sites are observations; the rest are fixed. Default: every given
        site whose value is not a Program.
    beta : float
        Likelihood temperature in (0, 1] (parallel tempering's rungs; 1: the posterior).
    """

    def __init__(self, model: Callable[..., Any], args: tuple[Any, ...],
                 kwargs: Mapping[str, Any], seed: int = 0,
                 given: Mapping[str, Any] | None = None,
                 data_sites: Collection[str] | None = None, beta: float = 1.0) -> None:
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0 < beta <= 1:
            raise PPLError(f"beta (the likelihood temperature) must be in (0, 1]; got "
                           f"{beta!r}.")
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
        self.last_record: tuple[tuple[tuple[str, Any], ...], Scorer] | None = None
        """The last :meth:`record`: the values it ran at (by identity) and its run."""
        self.beta = float(beta)
        """Likelihood temperature: scores are log prior + beta · log likelihood."""
        with data_errors():
            found = discover(model, self.args, self.kwargs, seed=seed, data=self.given_obs,
                             fixed=self.fixed)
        missing = sorted(set(given) - set(found.trace.nodes))
        if missing:
            names = [n for n, s in found.trace.nodes.items() if s["type"] == "sample"]
            raise DataError(f"Given site(s) {missing} are not sites of the model; its sites "
                            f"are {names}.")
        self.latents: dict[str, SiteInfo] = {
            name: SiteInfo.of(site) for name, site in found.sites.items() if site.latent}
        """Latent site -> what inference needs to know of it, in execution order."""
        self.example: dict[str, Any] = {
            name: site.value for name, site in found.sites.items() if site.latent}
        """The latent sites' values in the discovery run (a draw from the prior): where a
        kernel reads the model's structure (e.g. which likelihood a noise scale enters)."""
        self.observed: dict[str, Any] = {
            name: site.value for name, site in found.sites.items() if site.observed}
        """Observed site -> its data (checked: finite, non-empty, of its distribution's
        shape)."""
        self.max_plate_nesting = found.max_plate_nesting
        """How many batch dimensions the model's plates use."""

    # ------------------------------------------------------------------ scoring
    def conditioned(self, values: Mapping[str, Any] | None = None) -> Callable[..., Any]:
        """The model with the given sites (and ``values``) conditioned, for Pyro traces."""
        data = {**self.fixed, **self.given_obs, **dict(values or {})}
        return poutine.condition(self.model, data=data) if data else self.model

    def trace(self, values: Mapping[str, Any]) -> Any:
        """The model's Pyro trace with the latent sites set to ``values`` (log probs
        computed)."""
        return trace_model(self.conditioned(values), self.args, self.kwargs, log_prob=True)

    def _trace_terms(self, values: Mapping[str, Any]) -> tuple[Any, Any]:
        """(Σ latent log probs, Σ observed log probs and factors) of a Pyro trace, as
        tensors (fixed sites count as latent: their terms are constants of the prior). The
        latent sites are conditioned on ``values`` in the trace, so Pyro marks them observed:
        they are told apart by name, never by that flag."""
        tr = self.trace(values)
        latent: Any = 0.0
        lik: Any = 0.0
        for name, site in tr.nodes.items():
            if site["type"] == "sample" and not site_is_subsample(site):
                if site["is_observed"] and name not in self.fixed and name not in self.latents:
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

    def check_init(self, init_values: Mapping[str, Any]) -> dict[str, Any]:
        """``init_values`` checked against the latent sites (:func:`checked_value`) and made
        ready to hold: programs parsed, numbers as float64 tensors of the site's shape.
        Raises a :class:`PPLError` naming the first offending site.

        Examples
        --------
        >>> import ppl
        >>> from ppl import dist
        >>> def model():
        ...     f = ppl.sample("f", ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2))
        ...     ppl.sample("s", dist.HalfNormal(1.0))
        >>> target = Target(model, (), {})
        >>> out = target.check_init({"f": "sin(x)", "s": 0.5})
        >>> str(out["f"]), float(out["s"])
        ('sin(x)', 0.5)
        """
        out: dict[str, Any] = {}
        for name, value in init_values.items():
            site = self.latents.get(name)
            if site is None:
                raise PPLError(f"init_values names {name!r}, which is not a latent site of the "
                               f"model; its latent sites are {list(self.latents)}.")
            got = checked_value(f"init_values[{name!r}]", name, site.fn, site.shape, value,
                                broadcast=True)
            out[name] = got if isinstance(got, Program) else \
                torch.as_tensor(np.broadcast_to(got, site.shape).copy())
        return out

    def log_joint(self, values: Mapping[str, Any]) -> float:
        """log p(values, data) (tempered: log prior + beta · log likelihood); −inf when any
        factor is nan or −inf."""
        total = float(self._score(values).total(self.beta)) if self.fast else \
            self._trace_log_joint(values)
        return -math.inf if math.isnan(total) else total

    def log_parts(self, values: Mapping[str, Any]) -> tuple[float, float]:
        """(Σ latent log densities, untempered log likelihood) at ``values``, each −inf
        when nan or −inf: the log joint at temperature β is latent + β · likelihood."""
        if self.fast:
            scorer = self._score(values)
            latent = float(sum(scorer.terms)) if scorer.terms else 0.0
            lik = float(scorer.log_lik())
        else:
            latent, lik = self._trace_parts(values)
        return (-math.inf if math.isnan(latent) else latent,
                -math.inf if math.isnan(lik) else lik)

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
        ``self.fast``. The last run is kept: called again with the same value objects (by
        identity; values are never changed in place) it is returned without running the
        model again (the noise block records the state it moves to, and the program
        block's incremental likelihood is then built from that same state)."""
        items = tuple(values.items())
        last = self.last_record
        if last is not None and len(last[0]) == len(items) and all(
                k == j and v is w for (k, v), (j, w) in zip(last[0], items, strict=True)):
            return last[1]
        run = self._score(values, record=True)
        self.last_record = (items, run)
        return run

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
