"""Modeling primitives that dispatch to the active backend (Pyro or NumPyro).

A program-valued site is an ordinary ``sample`` of a :class:`~ppl.prior.ProgramPrior`; the
model then calls the program like a function.

Examples
--------
>>> import torch
>>> import ppl
>>> from ppl import dist
>>> from ppl.trace import trace_model
>>> def model(x, y=None):
...     s = ppl.sample("s", dist.HalfNormal(1.0))
...     with ppl.plate("data", len(x)):
...         return ppl.sample("y", dist.Normal(x, s), obs=y)
>>> tr = trace_model(model, (torch.zeros(3),))
>>> sorted(tr.nodes)[-2:]
['s', 'y']
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import torch

from ppl.backend import active
from ppl.prior import ProgramPrior
from ppl.scoring import Unsupported, active_scorer

__all__ = ["deterministic", "factor", "param", "plate", "sample"]


def _lib() -> Any:
    return importlib.import_module("pyro" if active() == "pyro" else "numpyro")


def sample(name: str, fn: Any, obs: Any = None, **kwargs: Any) -> Any:
    """A random choice named ``name`` from distribution ``fn`` (observed if ``obs`` given).

    Examples
    --------
    >>> import torch, ppl
    >>> from ppl import dist
    >>> from ppl.trace import trace_model
    >>> def model(x, y=None):
    ...     f = ppl.sample("f", ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2))
    ...     return ppl.sample("y", dist.Normal(f(x), 0.1), obs=y)
    >>> tr = trace_model(model, (torch.tensor(0.0),), {"y": torch.tensor(1.0)})
    >>> type(tr.nodes["f"]["value"]).__name__, tr.nodes["y"]["value"]
    ('Program', tensor(1.))
    """
    scorer = active_scorer()
    if scorer is not None:
        return scorer.sample(name, fn, obs)
    if active() == "numpyro" and isinstance(fn, ProgramPrior):
        fn = fn.to_numpyro()
    return _lib().sample(name, fn, obs=obs, **kwargs)


def plate(name: str, size: int, subsample_size: int | None = None, dim: int | None = None
          ) -> Any:
    """Conditionally independent repetitions (vectorised), as ``pyro.plate``.

    Examples
    --------
    >>> import ppl
    >>> from ppl import dist
    >>> def model():
    ...     with ppl.plate("data", 3):
    ...         return ppl.sample("z", dist.Normal(0.0, 1.0))
    >>> model().shape
    torch.Size([3])
    """
    if active_scorer() is not None:
        return active_scorer().plate(size, subsample_size)  # type: ignore[union-attr]
    return _lib().plate(name, size, subsample_size=subsample_size, dim=dim)


def deterministic(name: str, value: Any) -> Any:
    """Record a deterministic value of the model under ``name``.

    Examples
    --------
    >>> import torch, ppl
    >>> from ppl import dist
    >>> from ppl.trace import trace_model
    >>> def model():
    ...     s = ppl.sample("s", dist.Normal(0.0, 1.0), obs=torch.tensor(3.0))
    ...     ppl.deterministic("s2", s ** 2)
    >>> trace_model(model).nodes["s2"]["value"]
    tensor(9.)
    """
    if active_scorer() is not None:
        return value
    return _lib().deterministic(name, value)


def factor(name: str, log_factor: Any) -> Any:
    """Add ``log_factor`` to the model's log density.

    Examples
    --------
    >>> import torch, ppl
    >>> from ppl.trace import trace_model
    >>> def model():
    ...     ppl.factor("penalty", torch.tensor(-1.5))
    >>> trace_model(model).log_prob_sum()
    tensor(-1.5000)
    """
    scorer = active_scorer()
    if scorer is not None:
        return scorer.factor(name, log_factor)
    return _lib().factor(name, log_factor)


def param(name: str, init_value: Any = None, **kwargs: Any) -> Any:
    """A learnable parameter (the backend's ``param``).

    On Pyro, an initial value given as a number, a list of numbers or a numpy array becomes
    a tensor of torch's default dtype (Pyro's ``param`` takes tensors only), so one guide
    text, e.g. ``ppl.param("loc", 0.0)``, runs on either backend.

    Examples
    --------
    >>> import pyro, torch, ppl
    >>> pyro.clear_param_store()
    >>> ppl.param("w", torch.tensor(0.5))
    tensor(0.5000, requires_grad=True)
    >>> ppl.param("v", 1.5)
    tensor(1.5000, requires_grad=True)
    >>> list(pyro.get_param_store().keys())
    ['w', 'v']
    >>> pyro.clear_param_store()
    """
    if active_scorer() is not None:
        raise Unsupported("param sites live in the backend's parameter store")
    if active() == "pyro" and (isinstance(init_value, (int, float, np.ndarray)) or (
            isinstance(init_value, (list, tuple)) and init_value
            and all(isinstance(v, (int, float)) for v in init_value))) \
            and not isinstance(init_value, bool):
        init_value = torch.as_tensor(np.asarray(init_value, dtype=np.float64),
                                     dtype=torch.get_default_dtype())
    return _lib().param(name, init_value, **kwargs)
