"""Trees that compute the same function: one row of a program table.

A posterior over trees spreads the mass of one law over its many ways of writing it:
``(x + x) * x`` and ``(x * x) + (x * x)``, or ``x * (x + 1)`` and ``(x * x) + x``. Their
canonical keys differ (the key knows commutativity, not algebra), so a user reading the
table would see one law split into rows. :func:`merge_equal_functions` merges rows whose
programs agree on :data:`NUM_POINTS` fresh points to within 1e-12 (relative), a
numerical test of identity that needs no symbolic algebra: programs that differ as
functions almost surely differ at random points. Points are drawn once from a fixed
seed, N(0, 2²) per input and, for inputs that must be positive (log, sqrt), the same
points' absolute values: two programs must agree on both sets, NaN where one is NaN.

Examples
--------
>>> import numpy as np
>>> from ppl import Grammar
>>> g = Grammar.load("arith")
>>> a, b, c = (g.parse(t, inputs=["x"]) for t in ("((x + x) * x)", "((x * x) + (x * x))",
...                                               "(x * x)"))
>>> bool(np.allclose(signature(a), signature(b))), bool(np.allclose(signature(a), signature(c)))
(True, False)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ppl.program import Program

__all__ = ["NUM_POINTS", "TOLERANCE", "merge_equal_functions", "signature"]

NUM_POINTS = 24
"""Fresh points per sign pattern at which two programs must agree."""
TOLERANCE = 1e-12
"""Relative (and absolute, near 0) tolerance of agreement."""


def _points(d: int) -> np.ndarray:
    """(2 · NUM_POINTS, d) fixed fresh points: N(0, 2²) and their absolute values."""
    z = np.random.default_rng(20261206).normal(0.0, 2.0, (NUM_POINTS, max(d, 1)))
    return np.concatenate([z, np.abs(z)])[:, :d]


def signature(program: Program) -> np.ndarray:
    """The program's outputs (float64) at the fresh points of its inputs.

    Examples
    --------
    >>> from ppl import Grammar
    >>> signature(Grammar.load("arith").parse("(x + 1.0)", inputs=["x"])).shape
    (48,)
    """
    pts = _points(len(program.inputs))
    with np.errstate(all="ignore"):
        try:
            out = program(*(pts[:, j] for j in range(pts.shape[1])))
        except Exception:  # a tree the interpreter cannot run is its own function
            return np.full(len(pts), np.nan)
        out = np.asarray(out, dtype=np.float64)
    return np.broadcast_to(out, (len(pts),)).copy() if out.ndim <= 1 else out.reshape(-1)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape:
        return False
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    if not np.array_equal(nan_a, nan_b) or nan_a.all():
        return False
    ok = ~nan_a
    x, y = a[ok], b[ok]
    inf = ~np.isfinite(x) | ~np.isfinite(y)
    if not np.array_equal(x[inf], y[inf]):
        return False
    x, y = x[~inf], y[~inf]
    return bool(np.all(np.abs(x - y) <= TOLERANCE * np.maximum(1.0, np.abs(x))))


def _bucket(sig: np.ndarray) -> tuple[Any, ...]:
    """A coarse hash: the outputs rounded to 8 significant digits (NaN as None)."""
    with np.errstate(all="ignore"):
        r = [None if np.isnan(v) else float(f"{v:.8g}") for v in sig]
    return tuple(r)


def merge_equal_functions(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge program-table rows whose ``program`` computes the same function: the merged
    row keeps the most probable row's program and constants, sums ``probability`` and
    ``count``, averages ``log_joint`` weighted by count, and counts the distinct trees
    merged in ``trees``. Programs that are NaN everywhere on the points are never merged.

    Examples
    --------
    >>> from ppl import Grammar
    >>> g = Grammar.load("tiny")
    >>> rows = [{"program": g.parse(t, inputs=["x"]), "probability": p, "count": n,
    ...          "log_joint": -1.0, "constants": ""}
    ...         for t, p, n in (("(x + x)", 0.5, 5), ("(x * (1 + 1))", 0.3, 3),
    ...                         ("x", 0.2, 2))]
    >>> [(str(r["program"]), r["probability"], r["trees"]) for r in
    ...  merge_equal_functions(rows)]
    [('(x + x)', 0.8, 2), ('x', 0.2, 1)]
    """
    order = sorted(range(len(rows)), key=lambda i: (-rows[i]["probability"],
                                                    -rows[i]["count"]))
    merged: list[dict[str, Any]] = []
    buckets: dict[tuple[Any, ...], list[tuple[np.ndarray, int]]] = {}
    for i in order:
        row = rows[i]
        sig = signature(row["program"])
        home = None
        if not np.isnan(sig).all():
            for other, j in buckets.get(_bucket(sig), []):
                if _same(sig, other):
                    home = j
                    break
        if home is None:
            buckets.setdefault(_bucket(sig), []).append((sig, len(merged)))
            merged.append({**row, "trees": 1})
            continue
        into = merged[home]
        count = into["count"] + row["count"]
        into["log_joint"] = float((into["log_joint"] * into["count"]
                                   + row["log_joint"] * row["count"]) / count)
        # a sum of fractions that add up to one can exceed it by an ulp
        into["probability"] = min(1.0, into["probability"] + row["probability"])
        into["count"] = count
        into["trees"] += 1
    return merged
