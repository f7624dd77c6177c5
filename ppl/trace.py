"""Tracing a model: the one place where ``ppl`` and ``inference`` run a model under Pyro's
``poutine.trace``, find its sites and check its data.

- :func:`seeded` is the *seeded quiet run*: torch's global generator forked (the caller's
  state comes back on exit) and seeded, and Pyro's validation off, so an invalid program
  gives nan (scored as −inf by the callers) instead of an error.
- :func:`trace_model` runs a model once under ``poutine.trace``, optionally conditioned on
  values and with latent values from an init function.
- :func:`discover` is the discovery run: one seeded quiet trace of the model, every site
  classified (:func:`classify`: :data:`PROGRAM`, :data:`CONTINUOUS`, :data:`DISCRETE`,
  :data:`DETERMINISTIC` or :data:`FACTOR`) and the observed data checked
  (:func:`check_observed`). :class:`ppl.World` and ``inference.target.Target`` both start
  from it.

The scoring fast path (:mod:`ppl.scoring`) and the provenance tracer (:mod:`ppl._tracer`)
run models through handlers of their own. Pyro traces are ``Trace`` objects and NumPyro's
are dicts of sites; the functions that read a trace (:func:`sites_of`,
:func:`max_plate_nesting`) take either.

Examples
--------
>>> import torch
>>> import ppl
>>> from ppl import dist
>>> def model(y=None):
...     mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
...     with ppl.plate("data", 3):
...         ppl.sample("y", dist.Normal(mu, 1.0), obs=y)
>>> found = discover(model, kwargs={"y": torch.zeros(3)}, seed=0)
>>> found.latent, found.observed, found.sites["y"].plates
(['mu'], ['y'], ('data',))
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pyro
import torch
from pyro import poutine
from pyro.infer.autoguide.initialization import InitMessenger
from pyro.poutine.util import site_is_subsample
from torch.distributions import biject_to

from ppl import backend
from ppl.errors import DataError, PPLError
from ppl.prior import ProgramPrior
from ppl.program import BoundProgram, Program

__all__ = [
    "CONTINUOUS",
    "DETERMINISTIC",
    "DISCRETE",
    "FACTOR",
    "LATENT_KINDS",
    "PROGRAM",
    "ModelTrace",
    "Site",
    "base_distribution",
    "check_arguments",
    "check_observed",
    "classify",
    "data_errors",
    "discover",
    "discovery_value",
    "log_joint",
    "max_plate_nesting",
    "seeded",
    "sites_of",
    "trace_model",
]

PROGRAM = "program"
"""Kind of a site whose value is a program (its distribution a ProgramPrior)."""
CONTINUOUS = "continuous"
"""Kind of a site whose distribution has a continuous support."""
DISCRETE = "discrete"
"""Kind of a site whose distribution has a discrete support (``fn.support.is_discrete``,
finite or not: a Poisson site is discrete)."""
DETERMINISTIC = "deterministic"
"""Kind of a ``ppl.deterministic`` value: a function of other sites, neither latent nor
data."""
FACTOR = "factor"
"""Kind of a ``ppl.factor`` statement: a term of the log joint, not a variable."""
LATENT_KINDS = (PROGRAM, CONTINUOUS, DISCRETE)
"""The kinds a latent (or observed) site can have."""

_WRAPPERS = frozenset({"Independent", "ExpandedDistribution", "MaskedDistribution"})
_RUN_ERRORS = (ValueError, RuntimeError, TypeError, IndexError, ZeroDivisionError)


# ---------------------------------------------------------------------- running
@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """The seeded quiet run: torch's global generator seeded with ``seed`` inside
    ``torch.random.fork_rng(devices=[])`` (restored on exit), Pyro's validation off.

    Only the CPU generator is forked and seeded: ``torch.manual_seed`` would also seed
    every accelerator generator, which is slow, and models run on the CPU.

    Examples
    --------
    >>> import torch
    >>> before = torch.get_rng_state()
    >>> with seeded(7):
    ...     a = torch.rand(2)
    >>> with seeded(7):
    ...     b = torch.rand(2)
    >>> torch.equal(a, b), torch.equal(torch.get_rng_state(), before)
    (True, True)
    """
    with torch.random.fork_rng(devices=[]), pyro.validation_enabled(False):
        torch.default_generator.manual_seed(int(seed))
        yield


def trace_model(model: Callable[..., Any], args: Sequence[Any] = (),
                kwargs: Mapping[str, Any] | None = None, *,
                data: Mapping[str, Any] | None = None,
                init: Callable[[Mapping[str, Any]], Any] | None = None,
                log_prob: bool = False) -> Any:
    """The Pyro trace of one run of ``model(*args, **kwargs)``, with the Pyro backend and
    Pyro's validation off.

    Parameters
    ----------
    model : callable
        The model.
    args, kwargs
        Its arguments, passed as they are (convert arrays with ``ppl.backend.to_torch``).
    data : mapping, optional
        Site -> value to condition on (``poutine.condition``): those sites are observed.
    init : callable, optional
        Value of a latent site from its message (as ``pyro.infer.autoguide``'s init
        functions take), instead of a draw of its distribution (``InitMessenger``).
    log_prob : bool
        Compute every site's ``log_prob`` and ``log_prob_sum`` (``compute_log_prob``).

    Returns
    -------
    pyro.poutine.Trace
        Draws come from torch's global generator: run inside :func:`seeded` to fix them.

    Examples
    --------
    >>> import torch
    >>> import ppl
    >>> from ppl import dist
    >>> def model():
    ...     ppl.sample("a", dist.Normal(0.0, 1.0))
    >>> tr = trace_model(model, data={"a": torch.tensor(0.0)}, log_prob=True)
    >>> round(float(tr.nodes["a"]["log_prob_sum"]), 4)
    -0.9189
    """
    run = poutine.condition(model, data=dict(data)) if data else model
    if init is not None:
        messenger: Any = InitMessenger(init)  # type: ignore[no-untyped-call]
        run = messenger(run)
    with backend.use("pyro"), pyro.validation_enabled(False):
        trace = poutine.trace(run).get_trace(*args, **dict(kwargs or {}))
        if log_prob:
            trace.compute_log_prob()
    return trace


def log_joint(trace: Any) -> float:
    """Σ of ``log_prob_sum`` over the sample sites of a Pyro trace whose log-probabilities
    are computed (``trace_model(..., log_prob=True)``): log p(all sites), factors included.
    nan and ±inf pass through.

    Examples
    --------
    >>> import torch
    >>> import ppl
    >>> from ppl import dist
    >>> def model():
    ...     ppl.sample("a", dist.Normal(0.0, 1.0), obs=torch.tensor(0.0))
    ...     ppl.factor("bonus", torch.tensor(1.0))
    >>> round(log_joint(trace_model(model, log_prob=True)), 4)
    0.0811
    """
    return sum(float(s["log_prob_sum"]) for s in trace.nodes.values()
               if s["type"] == "sample" and not site_is_subsample(s))


def discovery_value(site: Mapping[str, Any]) -> Any:
    """A value for a latent site while finding the model's sites: a draw of its
    distribution, or, for one that cannot sample (``ImproperUniform``), a point drawn
    uniformly in (−2, 2) in the unconstrained space of its support.

    Examples
    --------
    >>> from ppl import dist
    >>> flat = dist.ImproperUniform(dist.constraints.positive, (), ())
    >>> bool(discovery_value({"fn": flat}) > 0)
    True
    """
    fn = site["fn"]
    try:
        return fn.sample()
    except NotImplementedError:
        transform = biject_to(fn.support)
        shape = transform.inverse_shape(fn.shape())
        return transform(torch.rand(shape, dtype=torch.float64) * 4.0 - 2.0)


# ---------------------------------------------------------------------- sites
class Site(NamedTuple):
    """One site of a traced run: a sample site, a deterministic value or a factor
    statement."""

    name: str
    """Site name."""
    kind: str
    """:data:`PROGRAM`, :data:`CONTINUOUS`, :data:`DISCRETE`, :data:`DETERMINISTIC` or
    :data:`FACTOR`."""
    observed: bool
    """Whether the site is data (given ``obs=``, or conditioned on as data); never true
    of a deterministic value or a factor statement."""
    shape: tuple[int, ...]
    """Shape of the site's value (() for programs)."""
    plates: tuple[str, ...]
    """Names of the plates around the site, outermost first."""
    fn: Any
    """The site's distribution in the run (None for a NumPyro deterministic site)."""
    value: Any
    """The site's value in the run."""

    @property
    def latent(self) -> bool:
        """Whether the site is a latent variable: neither data, deterministic nor a
        factor."""
        return not self.observed and self.kind in LATENT_KINDS


def base_distribution(fn: Any) -> Any:
    """The distribution under ``Independent``, ``ExpandedDistribution`` and
    ``MaskedDistribution`` wrappers (the batching ones; ``HalfNormal`` stays itself).

    Examples
    --------
    >>> from ppl import dist
    >>> type(base_distribution(dist.Normal(0.0, 1.0).expand([3]).to_event(1))).__name__
    'Normal'
    """
    while type(fn).__name__ in _WRAPPERS and hasattr(fn, "base_dist"):
        fn = fn.base_dist
    return fn


def _is_discrete(fn: Any) -> bool:
    try:
        return bool(fn.support.is_discrete)
    except (AttributeError, NotImplementedError):
        return False


def classify(site: Mapping[str, Any]) -> str:
    """The kind of a traced site (a Pyro or NumPyro site message).

    :data:`FACTOR` for a factor statement (an observed ``Unit``), :data:`DETERMINISTIC`
    for a deterministic value, :data:`PROGRAM` when the distribution is a ProgramPrior (or
    NumPyro's wrapper of one) or the value a program, :data:`DISCRETE` when the
    distribution's support is discrete, else :data:`CONTINUOUS`.

    Examples
    --------
    >>> import torch
    >>> from ppl import dist
    >>> classify({"type": "sample", "fn": dist.Poisson(2.0), "value": torch.tensor(1.0),
    ...           "is_observed": False, "infer": {}})
    'discrete'
    """
    if site["type"] == "deterministic":  # NumPyro's deterministic sites
        return DETERMINISTIC
    base = base_distribution(site["fn"])
    if site["is_observed"] and type(base).__name__ == "Unit":
        return FACTOR
    if (site.get("infer") or {}).get("_deterministic", False):
        return DETERMINISTIC
    if isinstance(base, ProgramPrior) or isinstance(getattr(base, "prior", None), ProgramPrior) \
            or isinstance(site["value"], (Program, BoundProgram)):
        return PROGRAM
    return DISCRETE if _is_discrete(site["fn"]) else CONTINUOUS


def _nodes(trace: Any) -> Mapping[str, Any]:
    """The sites of a Pyro ``Trace`` or of a NumPyro trace (a dict)."""
    nodes: Mapping[str, Any] = trace.nodes if hasattr(trace, "nodes") else trace
    return nodes


def sites_of(trace: Any) -> dict[str, Site]:
    """Every site of a Pyro or NumPyro trace (plate subsample sites left out), in execution
    order, classified by :func:`classify`.

    Examples
    --------
    >>> import ppl
    >>> from ppl import dist
    >>> def model():
    ...     a = ppl.sample("a", dist.Normal(0.0, 1.0))
    ...     ppl.deterministic("b", 2 * a)
    >>> [(s.name, s.kind, s.latent) for s in sites_of(trace_model(model)).values()]
    [('a', 'continuous', True), ('b', 'deterministic', False)]
    """
    out: dict[str, Site] = {}
    for name, site in _nodes(trace).items():
        if site["type"] not in ("sample", "deterministic") or site_is_subsample(site):
            continue
        kind = classify(site)
        value = site["value"]
        out[name] = Site(
            name=name, kind=kind,
            observed=bool(site.get("is_observed", False)) and kind in LATENT_KINDS,
            shape=tuple(value.shape) if hasattr(value, "shape") and not isinstance(
                value, (Program, BoundProgram)) else (),
            plates=tuple(f.name for f in sorted(site["cond_indep_stack"],
                                                key=lambda f: -(f.dim or 0))),
            fn=site.get("fn"), value=value)
    return out


def max_plate_nesting(trace: Any) -> int:
    """How many batch dimensions the plates of a Pyro or NumPyro trace use (the
    ``max_plate_nesting`` NUTS needs): the largest −dim over every site's plates.

    Examples
    --------
    >>> import ppl
    >>> from ppl import dist
    >>> def model():
    ...     with ppl.plate("rows", 2, dim=-2), ppl.plate("cols", 3, dim=-1):
    ...         ppl.sample("z", dist.Normal(0.0, 1.0))
    >>> max_plate_nesting(trace_model(model))
    2
    """
    dims: list[int] = [-f.dim for s in _nodes(trace).values() if s["type"] == "sample"
                       for f in s["cond_indep_stack"] if f.dim is not None]
    return max(dims + [0])


# ---------------------------------------------------------------------- data checks
def check_observed(site: Site) -> None:
    """Raise :class:`~ppl.errors.DataError` naming the site when its observed data are
    empty, hold NaN or infinite values, or have another shape than the site's distribution
    (``batch_shape + event_shape``: the data would be broadcast). Program values pass.

    Examples
    --------
    >>> import torch
    >>> from ppl import dist
    >>> y = Site("y", "continuous", True, (2,), (), dist.Normal(torch.zeros(2), 1.0),
    ...          torch.tensor([0.0, float("nan")]))
    >>> check_observed(y)
    Traceback (most recent call last):
    ...
    ppl.errors.DataError: Observed site 'y' has 1 NaN or infinite value(s); drop or impute them.
    """
    value = site.value
    if isinstance(value, (Program, BoundProgram)):
        return
    arr = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value)
    if arr.size == 0:
        raise DataError(f"Observed site '{site.name}' is empty: there is nothing to "
                        "condition on.")
    if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
        bad = int(np.sum(~np.isfinite(arr)))
        raise DataError(f"Observed site '{site.name}' has {bad} NaN or infinite value(s); "
                        "drop or impute them.")
    want = tuple(site.fn.batch_shape) + tuple(site.fn.event_shape)
    if tuple(arr.shape) != want:
        raise DataError(f"Observed site '{site.name}' has shape {tuple(arr.shape)} but its "
                        f"distribution has shape {want}: the data would be broadcast. "
                        "Reshape the data (e.g. y.reshape(-1)) to match.")


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
    empty or non-finite numeric array (keyword arguments first).

    Examples
    --------
    >>> import numpy as np
    >>> check_arguments((np.zeros(2),), {"y": np.array([1.0, np.inf])})
    Traceback (most recent call last):
    ...
    ppl.errors.DataError: Model 'y' has 1 NaN or infinite value(s); drop or impute them
    before inference.
    """
    for name, value in [(f"'{k}'", v) for k, v in kwargs.items()] + \
            [(f"argument {i}", a) for i, a in enumerate(args)]:
        _check_argument(name, value)


@contextlib.contextmanager
def data_errors() -> Iterator[None]:
    """Report a model that fails on its data (``ValueError``, ``RuntimeError``,
    ``TypeError``, ``IndexError``, ``ZeroDivisionError``: mostly data of the wrong shape)
    as a :class:`~ppl.errors.DataError`; a :class:`~ppl.errors.PPLError` passes unchanged.

    Examples
    --------
    >>> with data_errors():
    ...     raise ValueError("shape mismatch")
    Traceback (most recent call last):
    ...
    ppl.errors.DataError: Running the model on its data failed: shape mismatch
    Check that observed data match their distributions' shapes.
    """
    try:
        yield
    except PPLError:
        raise
    except _RUN_ERRORS as err:
        raise DataError(f"Running the model on its data failed: {err}\nCheck that "
                        "observed data match their distributions' shapes.") from err


# ---------------------------------------------------------------------- discovery
class ModelTrace(NamedTuple):
    """What the discovery run of a model found (:func:`discover`)."""

    trace: Any
    """The Pyro trace of the run."""
    sites: dict[str, Site]
    """Every site but those held fixed, in execution order."""

    @property
    def latent(self) -> list[str]:
        """The latent sites, in execution order."""
        return [n for n, s in self.sites.items() if s.latent]

    @property
    def observed(self) -> list[str]:
        """The observed sites (data), in execution order."""
        return [n for n, s in self.sites.items() if s.observed]

    @property
    def max_plate_nesting(self) -> int:
        """The run's plate depth (:func:`max_plate_nesting`)."""
        return max_plate_nesting(self.trace)


def discover(model: Callable[..., Any], args: Sequence[Any] = (),
             kwargs: Mapping[str, Any] | None = None, *, seed: int = 0,
             data: Mapping[str, Any] | None = None,
             fixed: Mapping[str, Any] | None = None) -> ModelTrace:
    """Run ``model(*args, **kwargs)`` once to find its sites, and check its data.

    The run is a seeded quiet run (:func:`seeded`) traced by :func:`trace_model`, with
    ``data`` and ``fixed`` conditioned on. Latent sites take draws of their distributions;
    when one cannot sample (``ImproperUniform``), the run is repeated (same seed) with
    :func:`discovery_value` for every latent site. Every site is classified
    (:func:`sites_of`) and every observed site's data checked (:func:`check_observed`).

    Parameters
    ----------
    model : callable
        The model.
    args, kwargs
        Its arguments, passed as they are.
    seed : int
        Seed of the run (torch's global generator is untouched).
    data : mapping, optional
        Values of sites to treat as observed data, beyond the model's ``obs=`` sites.
    fixed : mapping, optional
        Values of sites held fixed: conditioned on, but neither data nor latent, so left
        out of the result's ``sites``.

    Returns
    -------
    ModelTrace
        The trace and its classified sites.

    Raises
    ------
    DataError
        When observed data are empty, not finite or mis-shaped (naming the site).
    Exception
        Whatever the model raises: callers report it (see :func:`data_errors`).

    Examples
    --------
    >>> import torch
    >>> import ppl
    >>> from ppl import dist
    >>> def model():
    ...     ppl.sample("s", dist.ImproperUniform(dist.constraints.positive, (), ()))
    ...     ppl.sample("y", dist.Normal(0.0, 1.0), obs=torch.zeros(2))
    >>> discover(model)
    Traceback (most recent call last):
    ...
    ppl.errors.DataError: Observed site 'y' has shape (2,) but its distribution has shape ():
    the data would be broadcast. Reshape the data (e.g. y.reshape(-1)) to match.
    """
    conditioned = {**(fixed or {}), **(data or {})}
    with seeded(seed):
        try:
            trace = trace_model(model, args, kwargs, data=conditioned)
        except NotImplementedError:  # a distribution that cannot sample (improper)
            with seeded(seed):
                trace = trace_model(model, args, kwargs, data=conditioned,
                                    init=discovery_value)
    held: Collection[str] = fixed or {}
    sites = {n: s for n, s in sites_of(trace).items() if n not in held}
    for site in sites.values():
        if site.observed:
            check_observed(site)
    return ModelTrace(trace, sites)
