"""Which backend runs models: Pyro (torch, the default) or NumPyro (jax).

A model written with ``ppl.sample``/``ppl.plate``/``ppl.dist`` runs unchanged on either;
``use("numpyro")`` switches inside a ``with`` block. ``ppl.dist`` resolves a distribution
name in the active backend's distribution module at call time.

Examples
--------
>>> import ppl
>>> ppl.backend.active()
'pyro'
>>> with ppl.backend.use("numpyro"):
...     type(ppl.dist.Normal(0.0, 1.0)).__module__
'numpyro.distributions.continuous'
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import torch

from ppl.errors import PPLError

__all__ = ["BACKENDS", "active", "dist", "to_torch", "use"]

BACKENDS = ("pyro", "numpyro")
_active = ["pyro"]


def active() -> str:
    """Name of the active backend."""
    return _active[-1]


def _check(name: str) -> str:
    if name == "numpy":  # pyroapi's alias for NumPyro
        name = "numpyro"
    if name not in BACKENDS:
        raise PPLError(f"Unknown backend {name!r}; expected one of {BACKENDS}.")
    return name


@contextlib.contextmanager
def use(name: str) -> Iterator[None]:
    """Run the enclosed code with backend ``name`` ("pyro" or "numpyro")."""
    _active.append(_check(name))
    try:
        yield
    finally:
        _active.pop()


class _NoDistribution(PPLError, AttributeError):
    """``ppl.dist.Name`` where the active backend has no distribution ``Name``."""


class _Dist:
    """``ppl.dist.X`` is ``pyro.distributions.X`` or ``numpyro.distributions.X``.

    ``ppl.dist`` is the one instance: the name resolves in the active backend's distribution
    module each time it is read.

    Examples
    --------
    >>> import ppl
    >>> ppl.dist.Normal
    <class 'pyro.distributions.torch.Normal'>
    >>> with ppl.backend.use("numpyro"):
    ...     ppl.dist.Normal
    <class 'numpyro.distributions.continuous.Normal'>
    >>> try:
    ...     ppl.dist.Nope
    ... except ppl.PPLError as err:             # an AttributeError too
    ...     print(err)
    The pyro backend has no distribution 'Nope'.
    """

    _modules: ClassVar[dict[str, str]] = {"pyro": "pyro.distributions",
                                          "numpyro": "numpyro.distributions"}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        module = importlib.import_module(self._modules[active()])
        try:
            return getattr(module, name)
        except AttributeError:
            raise _NoDistribution(f"The {active()} backend has no distribution {name!r}."
                                  ) from None

    def __dir__(self) -> list[str]:
        return dir(importlib.import_module(self._modules[active()]))


dist = _Dist()


def to_torch(value: Any) -> Any:
    """numpy and jax arrays, pandas columns and tables of numbers, lists of numbers and
    lower-precision floating tensors (float32, float16, bfloat16) become float64 tensors;
    anything else is unchanged.

    float64 throughout is what lets the engine score a program move in numpy
    (:mod:`inference.mcmc.fastlik` checks its scores against the model's own to 1e-9): a
    model run in float32 would silently lose that path and the data-driven moves built on
    it (docs/decisions.md, "float32 data").

    This is how model arguments reach a Pyro model (``World``, inference targets).

    Examples
    --------
    >>> import numpy as np
    >>> to_torch(np.array([1, 2])).dtype, to_torch([0.5, 1.0]).dtype, to_torch("x")
    (torch.float64, torch.float64, 'x')
    >>> to_torch(torch.linspace(0.0, 1.0, 3)).dtype             # torch's default float32
    torch.float64
    >>> import pandas as pd
    >>> to_torch(pd.Series([1.0, 2.5])).tolist()                # a data frame's column
    [1.0, 2.5]
    >>> frozen = np.ones(2)
    >>> frozen.flags.writeable = False                  # as a pandas column's values
    >>> to_torch(frozen).tolist()
    [1.0, 1.0]
    """
    home = type(value).__module__.split(".")[0]
    if home == "pandas" and hasattr(value, "to_numpy"):
        array = np.asarray(value.to_numpy())  # a Series or DataFrame of numbers
        if array.dtype.kind in "fiub":
            return to_torch(array)
    if home in ("jax", "jaxlib") and hasattr(value, "__array__"):
        return to_torch(np.array(value))  # a jax array (to_jax's converse)
    if isinstance(value, np.ndarray):
        if not value.flags.writeable:  # e.g. a pandas column (copy-on-write): torch warns
            value = value.copy()
        return torch.as_tensor(value, dtype=torch.float64 if value.dtype.kind in "fiu"
                               else None)
    if isinstance(value, torch.Tensor) and value.is_floating_point() and \
            value.dtype != torch.float64:
        return value.to(torch.float64)
    if isinstance(value, (list, tuple)) and value and all(
            isinstance(v, (int, float)) for v in value):
        return torch.tensor(value, dtype=torch.float64)
    return value
