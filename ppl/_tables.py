"""Truncation masses of a PCFG conditioned on depth and size limits, and exact samplers.

With a depth limit (MOVES.md, "The conditioned prior")::

    Z_0(A) = 0,   Z_b(A) = Σ_{r ∈ R(A)} w(r) · Π_{B ∈ children(r)} Z_{b−1}(B)

and the subtree distribution under budget b picks production r with probability
w(r) Π_B Z_{b−1}(B) / Z_b(A), each child then under budget b − 1. A size limit uses masses
W_b(s, A) of derivations of depth ≤ b and *exact* size s (a convolution over children's
sizes); a draw first picks the size, then the production and the children's sizes. Values of
leaves (input names, constants) integrate to one and never enter the masses.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from ppl.errors import PriorError, SupportError
from ppl.ops import KIND_CONSTANT, KIND_INPUT

if TYPE_CHECKING:
    from ppl.grammar import Grammar

Subtree = tuple[tuple[int, ...], tuple[Any, ...], float, int]
"""An enumerated subtree: (prods, values, log prior mass without normaliser, size)."""


def _pick(rng: np.random.Generator, cumsum: list[float]) -> int:
    """The index ``np.searchsorted(cumsum, u * cumsum[-1], side="right")``, u ~ U[0, 1)
    (bisect on a list: the same index, without numpy's per-call cost)."""
    return bisect.bisect_right(cumsum, rng.random() * cumsum[-1])


class Tables:
    """Masses and exact samplers of ``grammar`` conditioned on ``max_depth``/``max_size``."""

    def __init__(self, grammar: Grammar, max_depth: int | None, max_size: int | None) -> None:
        self.grammar = grammar
        self.max_depth = max_depth
        self.max_size = max_size
        self.n = len(grammar.nonterminals)
        self.probs = grammar.probs
        self.prods_of = [[r for r in idx if grammar.probs[r] > 0] for idx in grammar.by_lhs]
        self.children = [p.children for p in grammar.productions]
        self._choice: dict[tuple[int, int, int], list[float]] = {}
        self._suffix: dict[tuple[int, int], list[np.ndarray]] = {}
        if max_size is not None:
            self.mode = "size"
            self.top = min(max_depth, max_size) if max_depth is not None else max_size
            self.W = self._size_masses()
        elif max_depth is not None:
            self.mode = "depth"
            self.top = max_depth
            self.Z = self._depth_masses()
        else:
            self.mode = "free"
            self.top = 0

    # ------------------------------------------------------------------ masses
    def _depth_masses(self) -> np.ndarray:
        assert self.max_depth is not None
        z = np.zeros((self.max_depth + 1, self.n))
        for b in range(1, self.max_depth + 1):
            for a in range(self.n):
                z[b, a] = sum(self.probs[r] * math.prod(z[b - 1, c] for c in self.children[r])
                              for r in self.prods_of[a])
        return z

    def _size_masses(self) -> np.ndarray:
        assert self.max_size is not None
        s_max = self.max_size
        w = np.zeros((self.top + 1, s_max + 1, self.n))
        for b in range(1, self.top + 1):
            for a in range(self.n):
                for r in self.prods_of[a]:
                    conv = self._suffix_at(r, b, w)[0]
                    w[b, 1:, a] += self.probs[r] * conv[:s_max]
        return w

    def _suffix_at(self, r: int, b: int, w: np.ndarray | None = None) -> list[np.ndarray]:
        """Y[j][t]: mass of children j.. of r (each depth ≤ b − 1) with total size t."""
        key = (r, b)
        if key in self._suffix:
            return self._suffix[key]
        w = self.W if w is None else w
        assert self.max_size is not None
        s_max = self.max_size
        kids = self.children[r]
        ys = [np.zeros(s_max + 1) for _ in range(len(kids) + 1)]
        ys[-1][0] = 1.0
        for j in range(len(kids) - 1, -1, -1):
            ys[j] = np.convolve(w[b - 1, :, kids[j]], ys[j + 1])[: s_max + 1]
        self._suffix[key] = ys
        return ys

    def _budget(self, b: int | None) -> int:
        return self.top if b is None else min(b, self.top)

    def log_mass(self, a: int, depth_budget: int | None = None,
                 size_budget: int | None = None) -> float:
        """log Z of nonterminal ``a`` under the budgets (0 without limits)."""
        if self.mode == "free":
            return 0.0
        b = self._budget(depth_budget)
        if self.mode == "depth":
            return math.log(self.Z[b, a]) if self.Z[b, a] > 0 else -math.inf
        assert self.max_size is not None
        s = self.max_size if size_budget is None else min(size_budget, self.max_size)
        total = float(self.W[b, 1: s + 1, a].sum())
        return math.log(total) if total > 0 else -math.inf

    # ------------------------------------------------------------------ sampling
    def _choose(self, rng: np.random.Generator, a: int, b: int, s: int) -> int:
        key = (a, b, s)
        cum = self._choice.get(key)
        if cum is None:
            if self.mode == "free":
                mass = [self.probs[r] for r in self.prods_of[a]]
            elif self.mode == "depth":
                mass = [self.probs[r] * math.prod(self.Z[b - 1, c] for c in self.children[r])
                        for r in self.prods_of[a]]
            else:
                mass = [self.probs[r] * self._suffix_at(r, b)[0][s - 1]
                        for r in self.prods_of[a]]
            cum = self._choice[key] = np.cumsum(mass).tolist()
        return self.prods_of[a][_pick(rng, cum)]

    def sample(self, rng: np.random.Generator, a: int, depth_budget: int | None,
               size_budget: int | None,
               leaf: Callable[[np.random.Generator, int], Any]) -> tuple[list[int], list[Any]]:
        """Draw a subtree of nonterminal ``a`` exactly from the prior conditioned on budgets.

        Returns the preorder productions and values; ``leaf(rng, r)`` draws a leaf's value.
        """
        if self.log_mass(a, depth_budget, size_budget) == -math.inf:
            raise PriorError(f"No derivation of '{self.grammar.nonterminals[a]}' fits depth "
                             f"{depth_budget} and size {size_budget}.")
        b = self._budget(depth_budget)
        s = 0
        if self.mode == "size":
            assert self.max_size is not None
            s_cap = self.max_size if size_budget is None else min(size_budget, self.max_size)
            s = 1 + _pick(rng, np.cumsum(self.W[b, 1: s_cap + 1, a]).tolist())
        prods: list[int] = []
        values: list[Any] = []
        stack = [(a, b, s)]
        while stack:
            a, b, s = stack.pop()
            r = self._choose(rng, a, b, s)
            prods.append(r)
            values.append(leaf(rng, r))
            kids = self.children[r]
            if not kids:
                continue
            sizes = self._split(rng, r, b, s) if self.mode == "size" else [0] * len(kids)
            nb = b - 1 if self.mode != "free" else 0
            for c, u in zip(reversed(kids), reversed(sizes), strict=True):
                stack.append((c, nb, u))
        return prods, values

    def _split(self, rng: np.random.Generator, r: int, b: int, s: int) -> list[int]:
        ys = self._suffix_at(r, b)
        kids = self.children[r]
        t = s - 1
        sizes = []
        for j, c in enumerate(kids):
            if j == len(kids) - 1:
                sizes.append(t)
                break
            weights = self.W[b - 1, 1: t + 1, c] * ys[j + 1][t - 1:: -1][:t]
            u = 1 + _pick(rng, np.cumsum(weights).tolist())
            sizes.append(u)
            t -= u
        return sizes

    def size_distribution(self, s_max: int | None = None) -> np.ndarray:
        """P(size = s) for s = 0..s_max under the conditioned prior (exact).

        Without a size limit the masses are computed up to ``s_max`` (default: the largest
        size the depth limit allows, or 50), so the result may sum to less than one.
        """
        if self.mode == "size":
            assert self.max_size is not None
            mass = self.W[self.top, :, self.grammar.start]
        else:
            if s_max is None:
                s_max = self._max_size_at_depth() if self.mode == "depth" else 50
            sized = Tables(self.grammar, self.max_depth, s_max)
            mass = sized.W[sized.top, :, self.grammar.start]
            if self.mode == "free":  # Z = 1: a truncated distribution sums to < 1
                return np.asarray(mass)
        return np.asarray(mass / mass.sum())

    def _max_size_at_depth(self) -> int:
        assert self.max_depth is not None
        big = [0] * self.n
        for _ in range(self.max_depth):
            big = [max((1 + sum(big[c] for c in self.children[r])
                        if all(big[c] for c in self.children[r]) else 0)
                       for r in self.prods_of[a]) for a in range(self.n)]
        return max(big[self.grammar.start], 1)

    # ------------------------------------------------------------------ finite spaces
    def _reachable_prods(self) -> list[int]:
        seen = {self.grammar.start}
        order = [self.grammar.start]
        out = []
        while order:
            a = order.pop()
            for r in self.prods_of[a]:
                out.append(r)
                for c in self.children[r]:
                    if c not in seen:
                        seen.add(c)
                        order.append(c)
        return out

    def _finite_top(self) -> int:
        """The depth bound that makes the space finite, or raise SupportError."""
        for r in self._reachable_prods():
            p = self.grammar.productions[r]
            if p.op.kind == KIND_CONSTANT:
                raise SupportError(
                    f"The program space of {self.grammar.name} is infinite: production "
                    f"'{p.rule} -> {p.alias}' draws a real constant. Enumeration needs a grammar "
                    "without constants (e.g. 'koza'), or set that weight to 0.")
        if self.mode != "free":
            return self.top
        n = self.n
        if self._recursive():
            raise SupportError(
                f"The program space of {self.grammar.name} is infinite: it is recursive and "
                "no max_depth or max_size is set.")
        return n + 1

    def _recursive(self) -> bool:
        m = self.grammar.mean_matrix() > 0
        reach = m.copy()
        for _ in range(self.n):
            reach = reach | (reach.astype(int) @ m.astype(int) > 0)
        return bool(np.any(np.diag(reach)))

    def enumerate(self, input_logp: dict[str, float], a: int | None = None,
                  depth_budget: int | None = None,
                  size_budget: int | None = None) -> Iterator[Subtree]:
        """Every derivation of ``a`` (default: start) within the budgets (default: the
        limits), with its unnormalised log mass. Finite spaces only."""
        top = self._finite_top()
        if depth_budget is not None:
            top = min(top, depth_budget)
        a = self.grammar.start if a is None else a
        s_max: float = math.inf
        for cap in (self.max_size, size_budget):
            if cap is not None:
                s_max = min(s_max, cap)
        level: list[list[Subtree]] = [[] for _ in range(self.n)]
        for b in range(1, top + 1):
            nxt: list[list[Subtree]] = [[] for _ in range(self.n)]
            wanted = range(self.n) if b < top else [a]
            for lhs in wanted:
                for r in self.prods_of[lhs]:
                    nxt[lhs].extend(self._expand(r, level, input_logp, s_max))
            level = nxt
        yield from level[a]

    def _expand(self, r: int, level: list[list[Subtree]], input_logp: dict[str, float],
                s_max: float) -> list[Subtree]:
        lp = math.log(self.probs[r])
        p = self.grammar.productions[r]
        if not p.children:
            if p.op.kind == KIND_INPUT:
                return [((r,), (name,), lp + q, 1) for name, q in input_logp.items()]
            return [((r,), (None,), lp, 1)]
        partial: list[Subtree] = [((r,), (None,), lp, 1)]
        for c in p.children:
            partial = [(pp + cp, pv + cv, pl + cl, ps + cs)
                       for pp, pv, pl, ps in partial for cp, cv, cl, cs in level[c]
                       if ps + cs <= s_max]
        return partial

    def count(self, n_inputs: int) -> int:
        """Number of programs of the conditioned space (exact integer)."""
        top = self._finite_top()
        if self.max_size is None:
            counts = [0] * self.n
            for _ in range(top):
                counts = [sum(self._mult(r, n_inputs) * math.prod(counts[c] for c in
                                                                    self.children[r])
                              for r in self.prods_of[a]) for a in range(self.n)]
            return counts[self.grammar.start]
        s_max = self.max_size
        sized = [[0] * (s_max + 1) for _ in range(self.n)]
        for _ in range(top):
            new = [[0] * (s_max + 1) for _ in range(self.n)]
            for a in range(self.n):
                for r in self.prods_of[a]:
                    conv = [1] + [0] * s_max
                    for c in self.children[r]:
                        conv = [sum(conv[i] * sized[c][t - i] for i in range(t + 1))
                                for t in range(s_max + 1)]
                    for t in range(s_max):
                        new[a][t + 1] += self._mult(r, n_inputs) * conv[t]
            sized = new
        return sum(sized[self.grammar.start])

    def _mult(self, r: int, n_inputs: int) -> int:
        return n_inputs if self.grammar.productions[r].op.kind == KIND_INPUT else 1
