"""The whitelisted operator table.

A grammar production's alias (``-> add``) names its operator here, so a grammar file defines
both the syntax and the semantics of its programs, and no program text is ever passed to
``eval``. Each operator is written once against an array namespace ``xp`` (``numpy``,
``torch`` or ``jax.numpy``): the input arrays' type picks the namespace at evaluation time.

Invalid arithmetic is not an error: ``x/0`` gives ``inf``, ``log`` of a negative gives
``nan``, and callers detect it with ``isfinite``. Scalars are never Python floats, so a
negative base to a fractional power gives ``nan``, never a complex number.

Examples
--------
>>> import numpy as np
>>> from ppl.ops import OPS
>>> OPS["add"].fn(np, np.array([1.0, 2.0]), np.array([3.0, 4.0]))
array([4., 6.])
>>> OPS["add"].commutative, OPS["sub"].commutative
(True, False)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sympy

__all__ = ["KIND_CONSTANT", "KIND_FUNCTION", "KIND_INPUT", "KIND_LITERAL", "OPS", "Op"]

KIND_FUNCTION = 0
"""An operator applied to the values of its child nonterminals."""
KIND_INPUT = 1
"""A leaf that reads an input array by name (its value is the input's name)."""
KIND_CONSTANT = 2
"""A leaf holding a real constant drawn from the constant prior."""
KIND_LITERAL = 3
"""A leaf with a fixed value (``one``, ``pi``, ``true``)."""


@dataclass(frozen=True)
class Op:
    """One operator: how to evaluate it, print it in sympy, and treat it in hashing.

    Attributes
    ----------
    name : str
        The alias grammars use (``-> name``).
    arity : int
        Number of child values (0 for leaves).
    kind : int
        One of ``KIND_FUNCTION``, ``KIND_INPUT``, ``KIND_CONSTANT``, ``KIND_LITERAL``.
    fn : callable or None
        ``fn(xp, *children) -> array`` for functions.
    sympy_fn : callable or None
        ``sympy_fn(*children) -> sympy.Expr`` for functions.
    value : float or bool or None
        The value of a literal.
    commutative : bool
        Children may be reordered without changing the value (used by ``Program.key``).
    boolean : bool
        The operator returns booleans.
    """

    name: str
    arity: int
    kind: int
    fn: Callable[..., Any] | None = None
    sympy_fn: Callable[..., Any] | None = None
    value: float | bool | None = None
    commutative: bool = False
    boolean: bool = False


def _fn(name: str, arity: int, fn: Callable[..., Any], sym: Callable[..., Any],
        commutative: bool = False, boolean: bool = False) -> Op:
    return Op(name, arity, KIND_FUNCTION, fn=fn, sympy_fn=sym, commutative=commutative,
              boolean=boolean)


def _lit(name: str, value: float | bool) -> Op:
    return Op(name, 0, KIND_LITERAL, value=value, boolean=isinstance(value, bool))


_OPS_LIST = [
    # arithmetic (the Koza set and a few more)
    _fn("add", 2, lambda xp, a, b: a + b, lambda a, b: a + b, commutative=True),
    _fn("sub", 2, lambda xp, a, b: a - b, lambda a, b: a - b),
    _fn("mul", 2, lambda xp, a, b: a * b, lambda a, b: a * b, commutative=True),
    _fn("div", 2, lambda xp, a, b: a / b, lambda a, b: a / b),
    _fn("pow", 2, lambda xp, a, b: a ** b, lambda a, b: a ** b),
    _fn("neg", 1, lambda xp, a: -a, lambda a: -a),
    _fn("sin", 1, lambda xp, a: xp.sin(a), sympy.sin),
    _fn("cos", 1, lambda xp, a: xp.cos(a), sympy.cos),
    _fn("tan", 1, lambda xp, a: xp.tan(a), sympy.tan),
    _fn("exp", 1, lambda xp, a: xp.exp(a), sympy.exp),
    _fn("log", 1, lambda xp, a: xp.log(a), sympy.log),
    _fn("sqrt", 1, lambda xp, a: xp.sqrt(a), sympy.sqrt),
    _fn("abs", 1, lambda xp, a: xp.abs(a), sympy.Abs),
    _fn("tanh", 1, lambda xp, a: xp.tanh(a), sympy.tanh),
    _fn("square", 1, lambda xp, a: a * a, lambda a: a**2),
    _fn("pass", 1, lambda xp, a: a, lambda a: a),
    # boolean (concept learning)
    _fn("and", 2, lambda xp, a, b: xp.logical_and(a, b), sympy.And, True, True),
    _fn("or", 2, lambda xp, a, b: xp.logical_or(a, b), sympy.Or, True, True),
    _fn("not", 1, lambda xp, a: xp.logical_not(a), sympy.Not, boolean=True),
    _fn("gt", 2, lambda xp, a, b: a > b, sympy.StrictGreaterThan, boolean=True),
    _fn("lt", 2, lambda xp, a, b: a < b, sympy.StrictLessThan, boolean=True),
    # leaves
    Op("var", 0, KIND_INPUT),
    Op("bvar", 0, KIND_INPUT, boolean=True),
    Op("const", 0, KIND_CONSTANT),
    _lit("zero", 0.0),
    _lit("one", 1.0),
    _lit("two", 2.0),
    _lit("half", 0.5),
    _lit("pi", math.pi),
    _lit("true", True),
    _lit("false", False),
]

OPS: dict[str, Op] = {op.name: op for op in _OPS_LIST}
"""Operator name -> :class:`Op`. Grammar aliases must be keys of this table."""
