"""Modeling primitives that dispatch to the active backend (Pyro or NumPyro).

A program-valued site is an ordinary ``sample`` of a :class:`~ppl.prior.ProgramPrior`; the
model then calls the program like a function.

Examples
--------
>>> import torch, pyro
>>> import ppl
>>> from ppl import dist
>>> def model(x, y=None):
...     s = ppl.sample("s", dist.HalfNormal(1.0))
...     with ppl.plate("data", len(x)):
...         return ppl.sample("y", dist.Normal(x, s), obs=y)
>>> tr = pyro.poutine.trace(model).get_trace(torch.zeros(3))
>>> sorted(tr.nodes)[-2:]
['s', 'y']
"""

from __future__ import annotations

import importlib
from typing import Any

from ppl.backend import active
from ppl.prior import ProgramPrior

__all__ = ["deterministic", "factor", "param", "plate", "sample"]


def _lib() -> Any:
    return importlib.import_module("pyro" if active() == "pyro" else "numpyro")


def sample(name: str, fn: Any, obs: Any = None, **kwargs: Any) -> Any:
    """A random choice named ``name`` from distribution ``fn`` (observed if ``obs`` given)."""
    if active() == "numpyro" and isinstance(fn, ProgramPrior):
        fn = fn.to_numpyro()
    return _lib().sample(name, fn, obs=obs, **kwargs)


def plate(name: str, size: int, subsample_size: int | None = None, dim: int | None = None
          ) -> Any:
    """Conditionally independent repetitions (vectorised), as ``pyro.plate``."""
    return _lib().plate(name, size, subsample_size=subsample_size, dim=dim)


def deterministic(name: str, value: Any) -> Any:
    """Record a deterministic value of the model under ``name``."""
    return _lib().deterministic(name, value)


def factor(name: str, log_factor: Any) -> Any:
    """Add ``log_factor`` to the model's log density."""
    return _lib().factor(name, log_factor)


def param(name: str, init_value: Any = None, **kwargs: Any) -> Any:
    """A learnable parameter (the backend's ``param``)."""
    return _lib().param(name, init_value, **kwargs)
