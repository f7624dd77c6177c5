"""A provenance tracer: which sites each site of a model run depends on.

:class:`ProvenanceTracer` is a Pyro messenger. After each sample site it tags the site's
tensor value with the site's name (``pyro.ops.provenance``), so every tensor the model
computes from it carries that name along. A site's *parents* are then the names carried by
what defines it: the log-density of its distribution at its (de-tagged) value, which depends
on exactly the distribution's parameters; the value itself for a ``deterministic`` site; the
log-factor for a ``factor`` statement.

Pyro's own ``get_dependencies`` cannot do this for program-valued sites: their values are
:class:`~ppl.program.Program` objects, not tensors, and it fails on them. Here a program
value is handed to the model as a :class:`TracedProgram`, whose call runs the real program
on de-tagged inputs and tags the output with the program site and the inputs' provenance:
x latent, then ``f(x)`` feeding y gives y the parents {f, x}.

Provenance follows torch tensors only. When a program's output is not a tensor, or the model
reads an attribute of a traced program (``f.size``), the dependency cannot be followed, so
the tracer records it conservatively: every later site gets the program (and its call's
inputs) as parents. The graph may then hold an edge too many, never one too few.

Examples
--------
>>> import torch, pyro
>>> from pyro import poutine
>>> def model():
...     a = pyro.sample("a", pyro.distributions.Normal(0.0, 1.0))
...     b = pyro.sample("b", pyro.distributions.Normal(0.0, 1.0))
...     pyro.sample("c", pyro.distributions.Normal(2 * a, 1.0), obs=torch.tensor(0.5))
>>> with ProvenanceTracer() as tracer:
...     model()
>>> {name: sorted(p) for name, p in tracer.parents.items()}
{'a': [], 'b': [], 'c': ['a']}
"""

from __future__ import annotations

from typing import Any

import torch
from pyro.distributions import Distribution
from pyro.ops.provenance import extract_provenance, get_provenance, track_provenance
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample

from ppl.program import BoundProgram, Program

__all__ = ["ProvenanceTracer", "TracedProgram"]


class TracedProgram:
    """A program site's value as the model sees it while tracing.

    Calling it evaluates the real program on de-tagged inputs and returns the output tagged
    with {site} ∪ the provenance of the inputs. Any other attribute is the program's own,
    read through, and makes the tracer treat the program as a parent of every later site.
    """

    __slots__ = ("_program", "_site", "_tracer")

    def __init__(self, program: Any, site: str, tracer: ProvenanceTracer) -> None:
        self._program = program
        self._site = site
        self._tracer = tracer

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        inputs: Any
        inputs, provenance = extract_provenance((args, kwargs))
        out = self._program(*inputs[0], **inputs[1])
        provenance = provenance | {self._site}
        if isinstance(out, torch.Tensor):
            return track_provenance(out, provenance)
        self._tracer.leak(provenance)
        return out

    def __getattr__(self, name: str) -> Any:
        self._tracer.leak(frozenset({self._site}))
        return getattr(self._program, name)

    def __repr__(self) -> str:
        return f"TracedProgram({self._site!r}, {self._program!s})"


def _fn_provenance(fn: Any, value: Any) -> frozenset[str]:
    """The provenance of ``fn``'s parameters: that of log fn(value), or, if ``log_prob``
    cannot be evaluated at ``value``, that of every tensor among its attributes."""
    try:
        return frozenset(get_provenance(fn.log_prob(value)))
    except Exception:  # any failure of a user distribution: fall back to its attributes
        return _attribute_provenance(fn, set())


def _attribute_provenance(obj: Any, seen: set[int]) -> frozenset[str]:
    if id(obj) in seen:
        return frozenset()
    seen.add(id(obj))
    found: frozenset[str] = frozenset()
    for value in vars(obj).values():
        if isinstance(value, Distribution):
            found |= _attribute_provenance(value, seen)
        else:
            found |= frozenset(get_provenance(value)) if isinstance(
                value, (torch.Tensor, list, tuple, dict)) else frozenset()
    return found


class ProvenanceTracer(Messenger):
    """Record each sample site's direct parents (the site names its definition reads).

    Attributes
    ----------
    parents : dict of str to frozenset of str
        Site name → names of the sites its distribution (deterministic value, log-factor)
        depends on, in execution order of the sites. Subsample sites of plates are skipped.
    """

    def __init__(self) -> None:
        super().__init__()
        self.parents: dict[str, frozenset[str]] = {}
        self._leaked: frozenset[str] = frozenset()

    def leak(self, provenance: frozenset[str]) -> None:
        """Make ``provenance`` a parent of every site from now on (a dependency that left
        the tensors, so it cannot be followed)."""
        self._leaked = self._leaked | provenance

    def _pyro_post_sample(self, msg: Any) -> None:
        if site_is_subsample(msg):
            return
        name = msg["name"]
        value, own = extract_provenance(msg["value"])
        parents = frozenset(own) | self._leaked
        if not msg["infer"].get("_deterministic", False):
            parents |= _fn_provenance(msg["fn"], value)
        for key in ("mask", "scale"):
            parents |= frozenset(get_provenance(msg.get(key)))
        self.parents[name] = parents - {name}
        if isinstance(value, torch.Tensor):
            msg["value"] = track_provenance(value, frozenset({name}))
        elif isinstance(value, (Program, BoundProgram)):
            msg["value"] = TracedProgram(value, name, self)
