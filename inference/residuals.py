"""What a subtree should output: the data pushed down a program through its other parts.

The neural edit move regenerates the subtree T_v at node v of φ. Its proposal may depend on
anything but T_v itself (the reverse move must see the same context), so it conditions on
the rest of the program through the **targets** of node v: the outputs z that T_v would
need for φ to reproduce y, found by inverting each ancestor's operator given the outputs of
its other children (semantic backpropagation; the seed's intermediate z):

    root ``a + T``       ->  z = y − a(x)
    ``a / T``            ->  z = a(x) / y
    ``exp(T)``           ->  z = log y
    ``sin(T)``           ->  z = arcsin y   (the principal branch)

Where an inverse is many-valued the principal branch is taken (``square``: the positive
root), and where it does not exist at a point (arcsin of 2, log of −1, division by a zero
sibling) the point has no target (NaN). An operator without an inverse (a comparison, a
boolean) gives no targets at all. The targets depend only on the rest of φ, v and the data,
so a proposal conditioned on them keeps the edit move's Hastings ratio exact.

Examples
--------
>>> import numpy as np
>>> from ppl import Grammar
>>> phi = Grammar.load("arith").parse("(x + sin(x))", inputs=["x"])
>>> x = np.array([0.0, 1.0, 2.0])
>>> subtree_targets(phi, 2, {"x": x}, x + np.sin(x))   # node 2 is sin(x): z = y - x
array([0.        , 0.84147098, 0.90929743])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ppl.ops import KIND_FUNCTION
from ppl.program import Program

__all__ = ["INVERSES", "Step", "lift", "path_outputs", "subtree_targets", "targets_along"]

Inverse = Callable[[np.ndarray, list[np.ndarray]], np.ndarray]


def _nan_unless(ok: np.ndarray, value: np.ndarray) -> np.ndarray:
    return np.where(ok, value, np.nan)


INVERSES: dict[tuple[str, int], Inverse] = {
    ("add", 0): lambda z, o: z - o[0],
    ("add", 1): lambda z, o: z - o[0],
    ("sub", 0): lambda z, o: z + o[0],
    ("sub", 1): lambda z, o: o[0] - z,
    ("mul", 0): lambda z, o: z / o[0],
    ("mul", 1): lambda z, o: z / o[0],
    ("div", 0): lambda z, o: z * o[0],
    ("div", 1): lambda z, o: o[0] / z,
    ("pow", 0): lambda z, o: z ** (1.0 / o[0]),
    ("pow", 1): lambda z, o: np.log(z) / np.log(o[0]),
    ("neg", 0): lambda z, o: -z,
    ("pass", 0): lambda z, o: z,
    ("exp", 0): lambda z, o: np.log(z),
    ("log", 0): lambda z, o: np.exp(z),
    ("sqrt", 0): lambda z, o: _nan_unless(z >= 0, z * z),
    ("square", 0): lambda z, o: np.sqrt(z),
    ("abs", 0): lambda z, o: _nan_unless(z >= 0, z),
    ("sin", 0): lambda z, o: np.arcsin(z),
    ("cos", 0): lambda z, o: np.arccos(z),
    ("tan", 0): lambda z, o: np.arctan(z),
    ("tanh", 0): lambda z, o: np.arctanh(z),
}
"""(operator, child slot) -> z_child(z, [outputs of the other children, in order])."""


def _path(phi: Program, v: int) -> list[tuple[int, int, list[tuple[int, int]]]]:
    """[(ancestor u, slot of the child toward v, the other children's [start, end))] from
    the root down to v's parent."""
    ends = phi.ends()
    productions = phi.grammar.productions
    out = []
    u = 0
    while u != v:
        arity = len(productions[phi.prods[u]].children)
        spans, c = [], u + 1
        for _ in range(arity):
            spans.append((c, int(ends[c])))
            c = int(ends[c])
        k = next(i for i, (s, e) in enumerate(spans) if s <= v < e)
        out.append((u, k, spans[:k] + spans[k + 1:]))
        u = spans[k][0]
    return out


def _as_points(out: Any, n: int) -> np.ndarray:
    """A subtree's output as n float64 values (a constant subtree gives a scalar)."""
    arr = np.asarray(out, dtype=np.float64)
    if arr.shape == (n,):
        return arr
    return np.full(n, arr.item()) if arr.size == 1 else np.broadcast_to(arr, (n,))


def subtree_targets(phi: Program, v: int, env: Mapping[str, np.ndarray], y: np.ndarray
                    ) -> np.ndarray | None:
    """The outputs node ``v``'s subtree would need for ``phi`` to give ``y`` on the inputs
    ``env`` (NaN at points without an inverse), or None when an ancestor's operator has no
    inverse. Depends on ``phi`` only through the nodes outside v's subtree.

    Parameters
    ----------
    phi : Program
        The program.
    v : int
        A node (preorder); v = 0 gives ``y`` itself.
    env : mapping
        Input name -> float64 array of n points.
    y : array
        The n outputs.

    Examples
    --------
    >>> import numpy as np
    >>> from ppl import Grammar
    >>> phi = Grammar.load("arith").parse("exp((x * 2.0))", inputs=["x"])
    >>> x = np.array([0.5, 1.0])
    >>> subtree_targets(phi, 1, {"x": x}, np.exp(3 * x))   # (x * 2.0) should be 3x
    array([1.5, 3. ])
    >>> subtree_targets(phi, 3, {"x": x}, np.exp(3 * x))   # the constant: 3
    array([3., 3.])
    """
    z = np.asarray(y, dtype=np.float64).reshape(-1)
    return targets_along(path_outputs(phi, v, env, z.size), z)


Step = tuple[Any, int, list[np.ndarray]]
"""One ancestor of a node: (its operator, the slot of the child toward the node, the
other children's outputs in order)."""


def path_outputs(phi: Program, v: int, env: Mapping[str, np.ndarray], n: int) -> list[Step]:
    """The ancestors of node ``v`` from the root down, each with its operator, the slot
    toward v and its other children's outputs on the inputs ``env`` (n points): what
    :func:`targets_along` pushes the data down through and :func:`lift` pushes a new
    subtree's outputs up through.

    Examples
    --------
    >>> import numpy as np
    >>> from ppl import Grammar
    >>> phi = Grammar.load("arith").parse("(x + sin(x))", inputs=["x"])
    >>> [(op.name, k, len(outs)) for op, k, outs in path_outputs(phi, 2, {"x": np.ones(2)}, 2)]
    [('add', 1, 1)]
    """
    productions = phi.grammar.productions
    steps = []
    with np.errstate(all="ignore"):
        for u, k, others in _path(phi, v):
            outs = [_as_points(Program.unchecked(phi.grammar, phi.prods[s:e], phi.values[s:e],
                                                 phi.inputs).evaluate_numpy(env), n)
                    for s, e in others]
            steps.append((productions[phi.prods[u]].op, k, outs))
    return steps


def targets_along(steps: list[Step], y: np.ndarray) -> np.ndarray | None:
    """:func:`subtree_targets` from the ancestors' :func:`path_outputs`: ``y`` pushed down
    through each operator's inverse (NaN where none exists at a point), None when an
    operator has no inverse.

    Examples
    --------
    >>> import numpy as np
    >>> from ppl import Grammar
    >>> phi = Grammar.load("arith").parse("(x * sin(x))", inputs=["x"])
    >>> x = np.array([1.0, 2.0])
    >>> targets_along(path_outputs(phi, 2, {"x": x}, 2), 3 * x)   # sin(x) should be 3
    array([3., 3.])
    """
    z = np.asarray(y, dtype=np.float64).reshape(-1)
    with np.errstate(all="ignore"):
        for op, k, outs in steps:
            inverse = INVERSES.get((op.name, k)) if op.kind == KIND_FUNCTION else None
            if inverse is None or op.boolean:
                return None
            z = np.asarray(inverse(z, outs), dtype=np.float64)
    return np.where(np.isfinite(z), z, np.nan)


def lift(steps: list[Step], out: np.ndarray) -> np.ndarray:
    """The program's outputs when the node below ``steps`` outputs ``out``: its outputs
    pushed up through the ancestors (:func:`path_outputs`), vectorised over leading axes
    (``out`` of shape (K, n) gives K programs' outputs in one pass).

    Examples
    --------
    >>> import numpy as np
    >>> from ppl import Grammar
    >>> phi = Grammar.load("arith").parse("(x * sin(x))", inputs=["x"])
    >>> x = np.array([1.0, 2.0])
    >>> lift(path_outputs(phi, 2, {"x": x}, 2), np.array([[1.0, 1.0], [2.0, 3.0]]))
    array([[1., 2.],
           [2., 6.]])
    """
    with np.errstate(all="ignore"):
        for op, k, outs in reversed(steps):
            out = op.fn(np, *outs[:k], out, *outs[k:])
    return np.asarray(out, dtype=np.float64)
