"""Program moves with their exact proposal densities (MOVES.md, moves 1–3).

Each move is a function ``move(chooser, prior, φ) -> Proposal | None``. All randomness comes
from the ``chooser`` (:class:`RandomChooser` in MCMC; the enumerating chooser of
:mod:`inference.mcmc.exact` in the P1 tests, which runs the very same code down every choice
path). A move returns the proposed program with ``log_q_fwd`` = log q(φ' | φ) of the path
taken and ``log_q_rev`` = log q(φ | φ') of its reverse path, or ``None`` when the move is
impossible at the chosen node (an immediate rejection, which keeps reverse probabilities
1/N). The acceptance probability is then::

    α = min(1, π(φ') q(φ | φ') / (π(φ) q(φ' | φ)))

Densities are computed in full (subtree rule probabilities, truncation masses, node counts)
instead of relying on their cancellation, so the P1 tests check the arithmetic itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import numpy as np

from ppl.ops import KIND_CONSTANT, KIND_INPUT
from ppl.prior import ProgramPrior
from ppl.program import Program

__all__ = [
    "MOVES",
    "Chooser",
    "Proposal",
    "RandomChooser",
    "budgets",
    "insert_delete",
    "leaf_log_prob",
    "regenerate",
    "relabel",
]

LOG_HALF = math.log(0.5)


class Proposal(NamedTuple):
    """A proposed program and the densities of the forward and reverse paths."""

    program: Program
    """φ', the proposed program."""
    log_q_fwd: float
    """log q(φ' | φ) of the path taken."""
    log_q_rev: float
    """log q(φ | φ') of the reverse path."""


class Chooser(Protocol):
    """Source of a move's random choices."""

    def index(self, n: int) -> int:
        """A uniform choice in ``range(n)``."""
        ...

    def subtree(self, prior: ProgramPrior, nonterminal: int, depth_budget: int | None,
                size_budget: int | None) -> tuple[tuple[int, ...], tuple[Any, ...]]:
        """T ~ p_b(· | A) under the budgets (see :meth:`ProgramPrior.sample_subtree`)."""
        ...

    def leaf_value(self, prior: ProgramPrior, production: int) -> Any:
        """A leaf's value drawn from its prior (input name or constant)."""
        ...


class RandomChooser:
    """The chooser MCMC uses: every choice drawn from ``rng``."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def index(self, n: int) -> int:
        return int(self.rng.integers(n))

    def subtree(self, prior: ProgramPrior, nonterminal: int, depth_budget: int | None,
                size_budget: int | None) -> tuple[tuple[int, ...], tuple[Any, ...]]:
        return prior.sample_subtree(self.rng, nonterminal, depth_budget, size_budget)

    def leaf_value(self, prior: ProgramPrior, production: int) -> Any:
        return prior.sample_leaf_value(self.rng, production)


def leaf_log_prob(prior: ProgramPrior, production: int, value: Any,
                  structural: bool = False) -> float:
    """log density of a leaf's value under its prior (0 for leaves without a value, and for
    constants when ``structural``)."""
    kind = prior.grammar.productions[production].op.kind
    if kind == KIND_INPUT:
        return prior.input_log_prob(value)
    if kind == KIND_CONSTANT and not structural:
        return prior.constant_prior.log_prob(value)
    return 0.0


def budgets(prior: ProgramPrior, phi: Program, v: int) -> tuple[int | None, int | None]:
    """Depth budget b_v = D − depth(v) + 1 and size budget S − (N − |T_v|) at node v.

    Examples
    --------
    >>> from ppl import ProgramPrior
    >>> prior = ProgramPrior("tiny", inputs=["x"], max_depth=3, max_size=5)
    >>> budgets(prior, prior.parse("(x + sin(1))"), 2)   # the node sin(1)
    (2, 3)
    """
    b = None if prior.max_depth is None else prior.max_depth - int(phi.node_depths()[v]) + 1
    s = None
    if prior.max_size is not None:
        s = prior.max_size - (phi.size - (int(phi.ends()[v]) - v))
    return b, s


def _child(b: int | None) -> int | None:
    return None if b is None else b - 1


def regenerate(chooser: Chooser, prior: ProgramPrior, phi: Program,
               structural: bool = False) -> Proposal | None:
    """Move 1: pick a node uniformly, redraw its subtree from the budgeted prior.

    log q(φ' | φ) = −log N(φ) + log p_{b_v}(T' | A_v), and the reverse redraws T_v in φ'.
    With ``structural`` the densities leave out the constants' values (they are integrated
    out, for moves that redraw every constant afterwards; MOVES.md move 5).
    """
    g = prior.grammar
    n = phi.size
    v = chooser.index(n)
    a = g.productions[phi.prods[v]].lhs
    b, s = budgets(prior, phi, v)
    new_p, new_v = chooser.subtree(prior, a, b, s)
    end = int(phi.ends()[v])
    old_p, old_v = phi.prods[v:end], phi.values[v:end]
    phi2 = phi.replace(v, new_p, new_v)
    log_mass = prior.tables.log_mass(a, b, s)
    keep = not structural
    fwd = -math.log(n) + prior.subtree_log_prob(new_p, new_v, keep) - log_mass
    rev = -math.log(phi2.size) + prior.subtree_log_prob(old_p, old_v, keep) - log_mass
    return Proposal(phi2, fwd, rev)


def relabel(chooser: Chooser, prior: ProgramPrior, phi: Program,
            structural: bool = False) -> Proposal | None:
    """Move 2: swap a node's production for an exchangeable one (same lhs and children).

    log q = −log M(φ) − log(K − 1) + log p(new leaf value); the reverse has the old value.
    """
    alts = prior.exchangeable()
    cands = [i for i, r in enumerate(phi.prods) if alts[r]]
    if not cands:
        return None
    v = cands[chooser.index(len(cands))]
    r = phi.prods[v]
    options = alts[r]
    r2 = options[chooser.index(len(options))]
    has_value = prior.grammar.productions[r2].value_terminal is not None
    value = chooser.leaf_value(prior, r2) if has_value else None
    prods = phi.prods[:v] + (r2,) + phi.prods[v + 1:]
    values = phi.values[:v] + (value,) + phi.values[v + 1:]
    phi2 = Program.unchecked(prior.grammar, prods, values, phi.inputs)
    base = -math.log(len(cands)) - math.log(len(options))
    return Proposal(phi2, base + leaf_log_prob(prior, r2, value, structural),
                    base + leaf_log_prob(prior, r, phi.values[v], structural))


def _child_starts(phi: Program, v: int, k: int) -> list[int]:
    starts = []
    pos = v + 1
    ends = phi.ends()
    for _ in range(k):
        starts.append(pos)
        pos = int(ends[pos])
    return starts


def _siblings_log_q(prior: ProgramPrior, kids: tuple[int, ...], j: int, b: int | None,
                    subtrees: list[tuple[tuple[int, ...], tuple[Any, ...]]],
                    structural: bool) -> float:
    """Σ_{i ≠ j} log p_{b−1}(S_i | B_i) of the siblings an insert draws."""
    total = 0.0
    for i, (c, (sp, sv)) in enumerate(zip(kids, subtrees, strict=True)):
        if i != j:
            total += (prior.subtree_log_prob(sp, sv, not structural)
                      - prior.tables.log_mass(c, _child(b), None))
    return total


def insert_delete(chooser: Chooser, prior: ProgramPrior, phi: Program,
                  structural: bool = False) -> Proposal | None:
    """Move 3: with probability ½ each, wrap a subtree in a recursive production (insert)
    or replace a recursive node by one of its same-type children (delete)."""
    if chooser.index(2) == 0:
        return _insert(chooser, prior, phi, structural)
    return _delete(chooser, prior, phi, structural)


def _insert(chooser: Chooser, prior: ProgramPrior, phi: Program,
            structural: bool) -> Proposal | None:
    g = prior.grammar
    n = phi.size
    v = chooser.index(n)
    a = g.productions[phi.prods[v]].lhs
    rec = prior.recursive()[a]
    if not rec:
        return None
    r = rec[chooser.index(len(rec))]
    kids = g.productions[r].children
    slots = [i for i, c in enumerate(kids) if c == a]
    j = slots[chooser.index(len(slots))]
    b, _ = budgets(prior, phi, v)
    if b is not None and int(phi.heights()[v]) > b - 1:
        return None
    end = int(phi.ends()[v])
    subtrees: list[tuple[tuple[int, ...], tuple[Any, ...]]] = []
    for i, c in enumerate(kids):
        subtrees.append((phi.prods[v:end], phi.values[v:end]) if i == j else
                        chooser.subtree(prior, c, _child(b), None))
    new_p = (r,) + tuple(p for sp, _ in subtrees for p in sp)
    new_v = (None,) + tuple(x for _, sv in subtrees for x in sv)
    if prior.max_size is not None and n - (end - v) + len(new_p) > prior.max_size:
        return None
    phi2 = phi.replace(v, new_p, new_v)
    fwd = (LOG_HALF - math.log(n) - math.log(len(rec)) - math.log(len(slots))
           + _siblings_log_q(prior, kids, j, b, subtrees, structural))
    rev = LOG_HALF - math.log(phi2.size) - math.log(len(slots))
    return Proposal(phi2, fwd, rev)


def _delete(chooser: Chooser, prior: ProgramPrior, phi: Program,
            structural: bool) -> Proposal | None:
    g = prior.grammar
    n = phi.size
    v = chooser.index(n)
    r = phi.prods[v]
    a = g.productions[r].lhs
    kids = g.productions[r].children
    slots = [i for i, c in enumerate(kids) if c == a]
    if not slots:
        return None
    j = slots[chooser.index(len(slots))]
    starts = _child_starts(phi, v, len(kids))
    ends = phi.ends()
    subtrees = [(phi.prods[s:int(ends[s])], phi.values[s:int(ends[s])]) for s in starts]
    phi2 = phi.replace(v, *subtrees[j])
    b, _ = budgets(prior, phi, v)
    rec = prior.recursive()[a]
    fwd = LOG_HALF - math.log(n) - math.log(len(slots))
    rev = (LOG_HALF - math.log(phi2.size) - math.log(len(rec)) - math.log(len(slots))
           + _siblings_log_q(prior, kids, j, b, subtrees, structural))
    return Proposal(phi2, fwd, rev)


MOVES: dict[str, Callable[..., Proposal | None]] = {
    "regenerate": regenerate,
    "insert_delete": insert_delete,
    "relabel": relabel,
}
"""The structure moves by name."""
