"""A scoring fast path for models written with ``ppl`` primitives.

Inference scores the same model millions of times with every latent site fixed. Under an
active :class:`Scorer`, ``ppl.sample`` returns the conditioned (or observed) value and adds
``fn.log_prob(value).sum()`` to a running total; ``ppl.plate`` only yields its indices
(log-probabilities broadcast to the plate's shape by themselves), ``ppl.deterministic``
returns its value and ``ppl.factor`` adds its term. That is the log joint a Pyro trace under
``poutine.condition`` computes, without the messenger stack, which costs most of the time of
a small model (DESIGN §5, "Where the time goes").

This is not an effect-handler system: it handles exactly these primitives and raises
:class:`Unsupported` for anything else it cannot reproduce (subsampled plates, ``param``),
and inference enables it for a model only after checking that it equals the Pyro trace's log
joint to 1e-9 on several states (see ``inference.target.Target``).

With ``record=True`` the scorer also keeps each site's log-probability tensor and the calls
of program-valued sites (inputs and output), which the incremental likelihood of
``inference.mcmc.fastlik`` is built from.

Examples
--------
>>> import torch
>>> import ppl
>>> from ppl import dist
>>> def model(x, y=None):
...     s = ppl.sample("s", dist.HalfNormal(1.0))
...     with ppl.plate("data", len(x)):
...         ppl.sample("y", dist.Normal(x, s), obs=y)
>>> x = torch.zeros(3, dtype=torch.float64)
>>> with Scorer({"s": torch.tensor(1.0, dtype=torch.float64)}) as sc:
...     model(x, y=x)
>>> round(float(sc.total()), 6)
-3.482607
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import torch

__all__ = ["ProgramCall", "Scorer", "Unsupported", "active_scorer"]

_STACK: list[Scorer] = []


class Unsupported(Exception):
    """The scorer cannot reproduce the backend's semantics for this model."""


class ProgramCall:
    """One call of a program-valued site during a recorded run."""

    __slots__ = ("args", "kwargs", "output", "site")

    def __init__(self, site: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                 output: Any) -> None:
        self.site = site
        self.args = args
        self.kwargs = kwargs
        self.output = output


class _RecordingProgram:
    """A program site's value as the model sees it in a recorded run."""

    __slots__ = ("_calls", "_site", "program")

    def __init__(self, site: str, program: Any, calls: list[ProgramCall]) -> None:
        self._site = site
        self.program = program
        self._calls = calls

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self.program(*args, **kwargs)
        if isinstance(out, torch.Tensor) and out.is_floating_point():
            out = out.detach().clone().requires_grad_(True)  # own storage: exact matching
        self._calls.append(ProgramCall(self._site, args, kwargs, out))
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.program, name)


class Scorer:
    """Context in which ``ppl`` primitives score a run with latent sites set to ``values``.

    Parameters
    ----------
    values : mapping
        Value of every latent site.
    record : bool
        Keep per-site log-probabilities (``sites``) and program calls (``calls``).
    observed : mapping, optional
        Values of sites to treat as observed although the model passes no ``obs=`` (a query
        conditioning on them, like ``poutine.condition``).
    """

    def __init__(self, values: Mapping[str, Any], record: bool = False,
                 observed: Mapping[str, Any] | None = None) -> None:
        self.values = values
        self.observed = observed or {}
        self.record = record
        self.terms: list[Any] = []
        """Log-probability sums of the latent sites."""
        self.obs_terms: list[Any] = []
        """Log-probability sums of observed sites and factors (the likelihood)."""
        self.sites: dict[str, tuple[Any, Any, Any, bool]] = {}
        """Site name -> (distribution, value, log_prob tensor, observed)."""
        self.calls: list[ProgramCall] = []

    def __enter__(self) -> Scorer:
        _STACK.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _STACK.remove(self)

    def total(self, beta: float = 1.0) -> Any:
        """Σ latent log-probabilities + beta · Σ observed ones (a torch scalar): the log
        joint, tempered on the likelihood when beta < 1."""
        latent = sum(self.terms) if self.terms else torch.zeros((), dtype=torch.float64)
        if not self.obs_terms:
            return latent
        lik: Any = sum(self.obs_terms)
        return latent + lik if beta == 1.0 else latent + beta * lik

    def log_lik(self) -> Any:
        """Σ of the observed sites' and factors' log-probabilities (untempered)."""
        return sum(self.obs_terms) if self.obs_terms else torch.zeros((), dtype=torch.float64)

    def sample(self, name: str, fn: Any, obs: Any) -> Any:
        if obs is None and name in self.observed:
            obs = self.observed[name]
        observed = obs is not None
        if observed:
            value = obs
        else:
            try:
                value = self.values[name]
            except KeyError:
                raise Unsupported(f"latent site '{name}' has no value") from None
        lp = fn.log_prob(value)
        (self.obs_terms if observed else self.terms).append(lp.sum())
        if self.record:
            self.sites[name] = (fn, value, lp, observed)
            if hasattr(value, "prods"):
                return _RecordingProgram(name, value, self.calls)
        return value

    def factor(self, name: str, log_factor: Any) -> None:
        term = torch.as_tensor(log_factor)
        self.obs_terms.append(term.sum())
        if self.record:
            self.sites[name] = (None, None, term, False)

    @staticmethod
    @contextlib.contextmanager
    def plate(size: int, subsample_size: int | None) -> Iterator[Any]:
        if subsample_size is not None and subsample_size != size:
            raise Unsupported("subsampled plates scale log-probabilities")
        yield torch.arange(size)


def active_scorer() -> Scorer | None:
    """The innermost active scorer, or None."""
    return _STACK[-1] if _STACK else None
