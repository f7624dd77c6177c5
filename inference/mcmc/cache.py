"""Bounded caches of the program kernel, and the canonical form of a tree shape.

Everything a program move computes from a program is a deterministic function of the
program (and of what the move holds fixed), so it can be memoised without changing the
chain: a cached value is the value recomputation would give, bit for bit, and an evicted one
is simply recomputed. :class:`LRU` is the bounded store; ``capacity=0`` turns it off (every
lookup misses and nothing is kept), which is how the kernel's ``cache_size=0`` reproduces
the uncached chain exactly.

:func:`canonical` puts a tree in the canonical order of :attr:`ppl.program.Program.key`
(children of commutative operators sorted by their canonical text, constants' values left
out) and says where each constant went, so that programs equal up to commutativity share one
constant fit (:mod:`inference.mcmc.laplace`) with their constants mapped correctly.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any, Final, NamedTuple

import numpy as np

from ppl.ops import KIND_CONSTANT, KIND_INPUT
from ppl.program import Program

__all__ = ["LRU", "MISSING", "Canonical", "canonical", "shape_of"]

MISSING: Final = object()
"""What :meth:`LRU.get` returns for a key it does not hold (cached values may be None)."""


class LRU:
    """A least-recently-used map of at most ``capacity`` entries, counting hits and misses.

    Parameters
    ----------
    capacity : int
        Largest number of entries kept; 0 keeps none (every lookup misses).
    stats : list of two ints, optional
        ``[hits, misses]`` counters to add to (shared between caches of one kind, e.g. the
        per-view caches of a kernel); a fresh pair by default.

    Examples
    --------
    >>> cache = LRU(2)
    >>> cache.put("a", 1); cache.put("b", 2); cache.put("c", 3)
    >>> cache.get("a") is MISSING, cache.get("c"), cache.stats
    (True, 3, [1, 1])
    """

    __slots__ = ("capacity", "data", "stats")

    def __init__(self, capacity: int, stats: list[int] | None = None) -> None:
        self.capacity = capacity
        self.data: OrderedDict[Hashable, Any] = OrderedDict()
        self.stats = [0, 0] if stats is None else stats

    def get(self, key: Hashable) -> Any:
        """The value stored under ``key`` (now the most recently used), or ``MISSING``."""
        try:
            value = self.data[key]
        except KeyError:
            self.stats[1] += 1
            return MISSING
        self.data.move_to_end(key)
        self.stats[0] += 1
        return value

    def put(self, key: Hashable, value: Any) -> None:
        """Store ``value`` under ``key``, evicting the least recently used beyond capacity."""
        if self.capacity <= 0:
            return
        self.data[key] = value
        self.data.move_to_end(key)
        if len(self.data) > self.capacity:
            self.data.popitem(last=False)

    def __len__(self) -> int:
        return len(self.data)


def shape_of(program: Program) -> tuple[Any, ...]:
    """The exact tree shape: productions and input names, constants' values left out.

    Examples
    --------
    >>> from ppl import Grammar
    >>> g = Grammar.load("arith")
    >>> shape_of(g.parse("(x * 2.0)")) == shape_of(g.parse("(x * -1.5)"))
    True
    """
    return (program.prods, tuple(v for v in program.values if isinstance(v, str)))


class Canonical(NamedTuple):
    """A program's tree in canonical order, and where its constants went."""

    program: Program
    """The same function as the program, children of commutative operators in canonical
    order (its constants are the program's, permuted by ``perm``)."""
    shape: tuple[Any, ...]
    """``shape_of(program)``: equal for every tree equal up to commutativity."""
    perm: np.ndarray
    """Constant j of the canonical tree (preorder) is constant ``perm[j]`` of the original:
    ``canonical.program.constants == original.constants[perm]``."""


def canonical(program: Program) -> Canonical:
    """The canonical form of ``program``: reorder the children of every commutative node by
    their canonical text (the string :attr:`Program.key` hashes), ties kept in their
    original order, and track each constant to its new position.

    Reordering operands of commutative operators (+, ×) never changes a program's value, bit
    for bit (IEEE addition and multiplication are commutative), so ``program`` with
    constants ``c`` and the canonical tree with ``c[perm]`` compute the same function.

    Examples
    --------
    >>> from ppl import Grammar
    >>> g = Grammar.load("arith")
    >>> a = canonical(g.parse("((x * 2.0) + 3.0)"))
    >>> b = canonical(g.parse("(3.0 + (2.0 * x))"))
    >>> a.shape == b.shape, a.perm.tolist(), b.perm.tolist()
    (True, [0, 1], [1, 0])
    >>> str(a.program) == str(b.program)
    True
    """
    prods_table = program.grammar.productions
    prods, values = program.prods, program.values
    n_const = 0
    const_index: dict[int, int] = {}
    for i, r in enumerate(prods):
        if prods_table[r].op.kind == KIND_CONSTANT:
            const_index[i] = n_const
            n_const += 1
    # each stack entry: (canonical text, prods, values, original constant indices)
    stack: list[tuple[str, tuple[int, ...], tuple[Any, ...], tuple[int, ...]]] = []
    for i in range(len(prods) - 1, -1, -1):
        p = prods_table[prods[i]]
        if p.children:
            kids = [stack.pop() for _ in p.children]
            if p.op.commutative:
                kids.sort(key=lambda kid: kid[0])  # stable: ties keep their order
            stack.append((f"{p.id}({','.join(k[0] for k in kids)})",
                          (prods[i],) + tuple(x for k in kids for x in k[1]),
                          (values[i],) + tuple(x for k in kids for x in k[2]),
                          tuple(x for k in kids for x in k[3])))
        elif p.op.kind == KIND_INPUT:
            stack.append((f"{p.id}:{values[i]}", (prods[i],), (values[i],), ()))
        else:
            idx = (const_index[i],) if i in const_index else ()
            stack.append((str(p.id), (prods[i],), (values[i],), idx))
    _, new_prods, new_values, perm = stack[0]
    out = Program.unchecked(program.grammar, new_prods, new_values, program.inputs)
    return Canonical(out, shape_of(out), np.asarray(perm, dtype=np.int64))
