"""Guides of ``method="svi"``: the backends' own autoguides, by name, or the user's guide.

========= ============================================= =========================================
name      Pyro (``pyro.infer.autoguide``)               NumPyro (``numpyro.infer.autoguide``)
========= ============================================= =========================================
normal    ``AutoNormal`` (mean field, the default)      ``AutoNormal``
mvn       ``AutoMultivariateNormal`` (full covariance)  ``AutoMultivariateNormal``
lowrank   ``AutoLowRankMultivariateNormal``             ``AutoLowRankMultivariateNormal``
delta     ``AutoDelta`` (a point: MAP)                  ``AutoDelta``
========= ============================================= =========================================

Each guide lives in the unconstrained space of every latent site and pushes its draws
through the support's bijection, so log q of a draw, summed over the guide's sites, is a
density of the constrained values: the space in which the model scores them.

Examples
--------
>>> autoguide_class("mvn", "pyro").__name__
'AutoMultivariateNormal'
>>> autoguide_class("normal", "numpyro").__module__
'numpyro.infer.autoguide'
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ppl.errors import PPLError

__all__ = ["AUTOGUIDES", "GuideError", "autoguide_class", "check_coverage", "check_signature",
           "make_guide"]

AUTOGUIDES = {"normal": "AutoNormal", "mvn": "AutoMultivariateNormal",
              "lowrank": "AutoLowRankMultivariateNormal", "delta": "AutoDelta"}
"""Guide name -> the autoguide class name, the same on both backends."""

_MODULES = {"pyro": "pyro.infer.autoguide", "numpyro": "numpyro.infer.autoguide"}
_INIT = {"pyro": "pyro.infer.autoguide.initialization", "numpyro": "numpyro.infer"}


class GuideError(PPLError):
    """A guide that cannot serve the model: it fails on the model's arguments, or it
    leaves latent sites out.

    Examples
    --------
    >>> issubclass(GuideError, PPLError)
    True
    """


def autoguide_class(name: str, backend: str) -> type:
    """The autoguide class called ``name`` (a key of :data:`AUTOGUIDES`) on ``backend``."""
    cls: type = getattr(importlib.import_module(_MODULES[backend]), AUTOGUIDES[name])
    return cls


def make_guide(guide: Any, backend: str, model: Callable[..., Any],
               init_values: Mapping[str, Any] | None, to_array: Callable[[Any], Any]
               ) -> Callable[..., Any]:
    """The guide for ``model``: an autoguide by name (its locations initialised at
    ``init_values`` where given, each value converted by ``to_array``, the backend's own
    default elsewhere), or the user's callable unchanged."""
    if not isinstance(guide, str):
        return guide  # type: ignore[no-any-return]
    cls: Any = autoguide_class(guide, backend)
    if not init_values:
        return cls(model)  # type: ignore[no-any-return]
    init = importlib.import_module(_INIT[backend]).init_to_value(
        values={k: to_array(v) for k, v in init_values.items()})
    return cls(model, init_loc_fn=init)  # type: ignore[no-any-return]


def check_signature(guide: Callable[..., Any], args: Iterable[Any],
                    kwargs: Mapping[str, Any]) -> None:
    """Raise a :class:`GuideError` when a user's guide cannot take the model's arguments
    (a guide is called as ``guide(*args, **kwargs)``, like the model).

    Examples
    --------
    >>> def guide(x):
    ...     pass
    >>> check_signature(guide, (1.0,), {})
    >>> check_signature(guide, (1.0,), {"y": 2.0})
    Traceback (most recent call last):
    ...
    inference.vi.guides.GuideError: The guide guide(x) must take the model's arguments (args
    of 1, keywords ['y']): got an unexpected keyword argument 'y'.
    """
    try:
        signature = inspect.signature(guide)
    except (TypeError, ValueError):  # some callables have none: the first step tells
        return
    args = tuple(args)
    try:
        signature.bind(*args, **kwargs)
    except TypeError as err:
        name = getattr(guide, "__name__", type(guide).__name__)
        raise GuideError(f"The guide {name}{signature} must take the model's arguments (args "
                         f"of {len(args)}, keywords {sorted(kwargs)}): {err}.") from None


def check_coverage(guide_sites: Iterable[str], latents: Iterable[str], name: str) -> None:
    """Raise a :class:`GuideError` when the guide samples no site of some latent sites:
    the ELBO would then draw them from the prior, silently.

    Examples
    --------
    >>> check_coverage(["mu", "tau"], ["mu"], "guide")
    >>> check_coverage(["mu"], ["mu", "tau"], "guide")
    Traceback (most recent call last):
    ...
    inference.vi.guides.GuideError: The guide guide samples no site 'tau' (latent sites of
    the model: ['mu', 'tau']); a guide must sample every latent site, under its name.
    """
    present = set(guide_sites)
    names = list(latents)
    missing = [n for n in names if n not in present]
    if missing:
        listed = ", ".join(repr(n) for n in missing)
        raise GuideError(f"The guide {name} samples no site {listed} (latent sites of the "
                         f"model: {names}); a guide must sample every latent site, under its "
                         "name.")
