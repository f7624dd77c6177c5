"""Where a grammar-constrained decoder may go: the prior's limits as production masks.

A decoder that writes a program production by production, in preorder, keeps a stack of
pending nonterminals, each with its depth budget b (the root gets the prior's ``max_depth``;
a child gets its parent's budget − 1; a leaf needs b ≥ 1, as in :mod:`ppl.prior`). With a
size cap C (the prior's ``max_size``, or a subtree's budget), choosing production r for the
current nonterminal A with budget b is allowed exactly when

- w(r) > 0 (a production of prior weight 0 never appears),
- every child B of r has a derivation within budget b − 1, i.e. Z_{b−1}(B) > 0 in the
  prior's truncation table (``prior.tables``), and
- 1 + Σ_B m_{b−1}(B) + Σ_{pending} m(·) + (nodes already written) ≤ C,

where m_b(A) is the smallest size of a derivation of A within depth b. The pending subtrees
are independent, so these masks never lead into a dead end: every prefix the decoder writes
completes, every completed program lies within the prior's limits, and every program of
the prior's support is reachable. The masks depend on (A, b) and on the slack C − (written)
− Σ_{pending} m only.

:class:`Support` also fixes the decoder's *states*: a row per (position, budget), where the
position is the root of a subtree of a nonterminal (no parent) or a child slot (parent
production, slot index), so it determines the nonterminal; and the prior's own choice
log-probabilities per row,

    bias(r | A, b) = log w(r) + Σ_{B ∈ children(r)} log Z_{b−1}(B),

which a network adds to its logits: with a zero residual, the decoder's choices are those
of the prior's exact sampler (MOVES.md, "The conditioned prior") when only a depth limit is
set.

Examples
--------
>>> import ppl
>>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
>>> support = Support(prior)
>>> [prior.grammar.productions[r].alias for r in support.allowed(0, 1, 10)]
['var', 'one']
>>> support.min_size[2][0], support.max_subtree[2][0]
(1.0, 3.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from ppl.errors import PPLError, ProgramError
from ppl.ops import KIND_CONSTANT, KIND_INPUT
from ppl.prior import ProgramPrior

__all__ = ["Step", "Support", "SupportLimitError"]


class SupportLimitError(PPLError):
    """A prior a grammar-constrained decoder cannot cover: one without any limit.

    Examples
    --------
    >>> issubclass(SupportLimitError, PPLError)
    True
    """


class Step(NamedTuple):
    """One decoding step of a known (sub)tree (teacher forcing).

    Examples
    --------
    >>> Step(row=2, allowed=(3, 4), production=3, value="x").value
    'x'
    """

    row: int
    """The decoder state's row (:meth:`Support.row`)."""
    allowed: tuple[int, ...]
    """Productions the masks allow at this step, in increasing order."""
    production: int
    """The production the tree has here."""
    value: Any
    """The node's value: input name, constant, or None."""


class Support:
    """Masks, states and prior biases of a grammar-constrained decoder for ``prior``.

    Parameters
    ----------
    prior : ProgramPrior
        A prior with ``max_depth`` or ``max_size`` set (otherwise decoding is unbounded).

    Raises
    ------
    SupportLimitError
        When the prior has neither limit.

    Examples
    --------
    >>> import ppl
    >>> support = Support(ppl.ProgramPrior("tiny", inputs=["x"], max_depth=3))
    >>> support.num_rows == support.num_positions * (support.top + 1)
    True
    """

    def __init__(self, prior: ProgramPrior) -> None:
        if prior.max_depth is None and prior.max_size is None:
            raise SupportLimitError(
                f"A decoder needs a bounded program space; got {prior!r} without limits. "
                "Expected max_depth or max_size on the ProgramPrior; hint: set max_depth "
                "(e.g. 6).")
        g = prior.grammar
        self.prior = prior
        """The prior whose limits and tables the masks follow."""
        self.num_productions = len(g.productions)
        """P: the number of productions of the grammar."""
        self.num_nonterminals = len(g.nonterminals)
        """The number of nonterminals of the grammar."""
        self.top: int = prior.tables.top
        """The largest depth budget (the prior's effective depth limit)."""
        self.size_cap: float = math.inf if prior.max_size is None else float(prior.max_size)
        """The prior's size limit (inf without one)."""
        self.children: tuple[tuple[int, ...], ...] = tuple(p.children for p in g.productions)
        """Child nonterminals of each production."""
        self.kinds: tuple[int, ...] = tuple(p.op.kind for p in g.productions)
        """Operator kind of each production (``ppl.ops.KIND_*``)."""
        self.productions_of: tuple[tuple[int, ...], ...] = tuple(
            tuple(sorted(r for r in g.by_lhs[a] if g.probs[r] > 0))
            for a in range(self.num_nonterminals))
        """Positive-weight productions of each nonterminal."""
        self.min_size, self.max_subtree = self._size_tables()
        nts = list(range(self.num_nonterminals))
        offsets = []
        for r in range(self.num_productions):
            offsets.append(len(nts))
            nts.extend(self.children[r])
        self.position_offset: tuple[int, ...] = tuple(offsets)
        """Position of child slot k of production r: ``position_offset[r] + k``; position
        A < (number of nonterminals) is the root of a subtree of nonterminal A."""
        self.position_nonterminal: tuple[int, ...] = tuple(nts)
        """The nonterminal of each position."""
        self.num_positions: int = len(nts)
        """The subtree roots (one per nonterminal) plus every child slot."""
        self.num_rows: int = self.num_positions * (self.top + 1)
        """Number of decoder states (position, depth budget 0..top)."""
        self.row_position, self.row_budget = np.divmod(np.arange(self.num_rows), self.top + 1)
        """Position and depth budget of each row."""
        self.bias = self._bias()
        """(num_rows, P) prior log-probabilities of each choice (−inf: not a choice)."""
        self.input_bias: np.ndarray = np.array(
            [math.log(p) if p > 0 else -math.inf for p in prior.input_probs])
        """log q(name) of the prior's input-leaf choice, in the prior's input order."""
        self.inputs_allowed: tuple[int, ...] = tuple(
            int(i) for i in np.flatnonzero(np.isfinite(self.input_bias)))
        """Inputs of positive prior probability."""
        self.input_index: dict[str, int] = {n: i for i, n in enumerate(prior.inputs)}
        """Index of each input name."""
        self.cache: dict[tuple[int, int, float], tuple[int, ...]] = {}
        """Allowed productions by (nonterminal, budget, clamped slack)."""

    # ------------------------------------------------------------------ tables
    def _size_tables(self) -> tuple[list[list[float]], list[list[float]]]:
        """m_b(A) and the largest subtree size of A within budget b (inf: none / no bound)."""
        n = self.num_nonterminals
        low = [[math.inf] * n]
        high = [[-math.inf] * n]
        for _ in range(self.top):
            lo_prev, hi_prev = low[-1], high[-1]
            lo, hi = [math.inf] * n, [-math.inf] * n
            for a in range(n):
                for r in self.productions_of[a]:
                    kids = self.children[r]
                    if all(lo_prev[c] < math.inf for c in kids):
                        lo[a] = min(lo[a], 1.0 + sum(lo_prev[c] for c in kids))
                        hi[a] = max(hi[a], 1.0 + sum(hi_prev[c] for c in kids))
            low.append(lo)
            high.append(hi)
        return low, high

    def _bias(self) -> np.ndarray:
        tables, probs = self.prior.tables, self.prior.grammar.probs
        out = np.full((self.num_rows, self.num_productions), -math.inf)
        for row in range(self.num_rows):
            b = int(self.row_budget[row])
            a = self.position_nonterminal[int(self.row_position[row])]
            for r in self.productions_of[a] if b >= 1 else ():
                kids = self.children[r]
                if all(self.min_size[b - 1][c] < math.inf for c in kids):
                    out[row, r] = math.log(probs[r]) + sum(
                        tables.log_mass(c, b - 1) for c in kids)
        return out

    # ------------------------------------------------------------------ states
    def row(self, position: int, budget: int) -> int:
        """The decoder state's row of a node at ``position`` with depth budget ``budget``.

        Examples
        --------
        >>> import ppl
        >>> sup = Support(ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2))
        >>> sup.row(0, 2), sup.num_rows
        (2, 18)
        """
        return position * (self.top + 1) + budget

    def allowed(self, nonterminal: int, budget: int, slack: float) -> tuple[int, ...]:
        """Productions the masks allow for ``nonterminal`` with depth ``budget`` when the
        subtree may have at most ``slack`` nodes (see the module docstring).

        Examples
        --------
        >>> import ppl
        >>> sup = Support(ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2))
        >>> sup.allowed(0, 2, 3), sup.allowed(0, 2, 2), sup.allowed(0, 2, 1)
        ((0, 1, 2, 3, 4), (2, 3, 4), (3, 4))
        """
        slack = min(slack, self.max_subtree[budget][nonterminal]) if budget >= 0 else slack
        key = (nonterminal, budget, slack)
        got = self.cache.get(key)
        if got is None:
            low = self.min_size[budget - 1] if budget >= 1 else None
            got = () if low is None else tuple(
                r for r in self.productions_of[nonterminal]
                if 1 + sum(low[c] for c in self.children[r]) <= slack)
            self.cache[key] = got
        return got

    def start(self, nonterminal: int, depth_budget: int | None,
              size_budget: int | None) -> tuple[int, float]:
        """The root budget and size cap of a subtree of ``nonterminal``: None means the
        prior's own limit; a larger budget than the prior's is cut to it.

        Examples
        --------
        >>> import ppl
        >>> sup = Support(ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2))
        >>> sup.start(0, None, None), sup.start(0, 5, 4)
        ((2, inf), (2, 4.0))
        """
        if not 0 <= nonterminal < self.num_nonterminals:
            raise ProgramError(f"Nonterminal {nonterminal} is not one of the grammar's "
                               f"{self.num_nonterminals}; expected an index into "
                               "grammar.nonterminals.")
        b = self.top if depth_budget is None else min(int(depth_budget), self.top)
        cap = self.size_cap if size_budget is None else min(float(size_budget),
                                                           self.size_cap)
        return max(b, 0), cap

    def position(self, nonterminal: int, parent: tuple[int, int] | None) -> int:
        """The position of a subtree root: the root of ``nonterminal``, or the child slot
        ``parent = (r, k)`` (whose nonterminal must be ``nonterminal``).

        Examples
        --------
        >>> import ppl
        >>> sup = Support(ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2))
        >>> sup.position(0, None), sup.position(0, (1, 1))  # second slot of mul
        (0, 4)
        """
        if parent is None:
            return nonterminal
        r, k = parent
        if not (0 <= r < self.num_productions and 0 <= k < len(self.children[r])) \
                or self.children[r][k] != nonterminal:
            raise ProgramError(f"parent={parent} is not a child slot of nonterminal "
                               f"{nonterminal}; expected (production, slot) with "
                               "grammar.productions[production].children[slot] == "
                               "nonterminal.")
        return self.position_offset[r] + k

    def fits(self, nonterminal: int, budget: int, cap: float) -> bool:
        """Whether some derivation of ``nonterminal`` fits depth ``budget`` and size ``cap``.

        Examples
        --------
        >>> import ppl
        >>> sup = Support(ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2))
        >>> sup.fits(0, 1, 1), sup.fits(0, 0, 1), sup.fits(0, 2, 0)
        (True, False, False)
        """
        return budget >= 1 and self.min_size[budget][nonterminal] <= cap

    def walk(self, prods: Sequence[int], values: Sequence[Any], nonterminal: int,
             budget: int, cap: float, position: int | None = None) -> list[Step] | None:
        """The decoding steps of a known subtree (preorder ``prods``/``values``) from
        ``nonterminal``, or None when a choice falls outside the masks.

        Raises
        ------
        ProgramError
            When ``prods`` is not one complete derivation (too short or too long).

        Examples
        --------
        >>> import ppl
        >>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
        >>> sup, phi = Support(prior), prior.parse("sin(x)")
        >>> [(s.row, s.production) for s in sup.walk(phi.prods, phi.values, 0, 2, 9)]
        [(2, 2), (16, 3)]
        >>> sup.walk(phi.prods, phi.values, 0, 1, 9) is None  # too deep for budget 1
        True
        """
        if not self.fits(nonterminal, budget, cap):
            return None
        if len(prods) != len(values):
            raise ProgramError(f"A subtree needs one value per production; got "
                               f"{len(prods)} productions and {len(values)} values.")
        stack = [(nonterminal, budget, nonterminal if position is None else position)]
        pending = self.min_size[budget][nonterminal]
        steps: list[Step] = []
        for used, (r, v) in enumerate(zip(prods, values, strict=True)):
            if not stack:
                raise ProgramError(f"The production sequence {tuple(prods)} continues after "
                                   f"its derivation is complete (at node {used}).")
            a, b, pos = stack.pop()
            pending -= self.min_size[b][a]
            allowed = self.allowed(a, b, cap - used - pending)
            if r not in allowed:
                return None
            steps.append(Step(self.row(pos, b), allowed, r, v))
            kids = self.children[r]
            base = self.position_offset[r]
            for k in range(len(kids) - 1, -1, -1):
                stack.append((kids[k], b - 1, base + k))
                pending += self.min_size[b - 1][kids[k]]
        if stack:
            raise ProgramError(f"The production sequence {tuple(prods)} ends before its "
                               "derivation is complete.")
        return steps

    def value_ok(self, production: int, value: Any) -> bool:
        """Whether a node's value is in the support: a known input of positive prior
        probability, a finite constant, or None for other nodes.

        Examples
        --------
        >>> import ppl
        >>> sup = Support(ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2))
        >>> sup.value_ok(3, "x"), sup.value_ok(3, "z"), sup.value_ok(4, None)
        (True, False, True)
        """
        kind = self.kinds[production]
        if kind == KIND_INPUT:
            i = self.input_index.get(value) if isinstance(value, str) else None
            return i is not None and i in self.inputs_allowed
        if kind == KIND_CONSTANT:
            return isinstance(value, (float, int, np.floating)) and math.isfinite(value)
        return value is None
