"""Subtrees assembled top-down to fit their targets (exploration: an opt-in proposal).

At a node with nonterminal A, targets z and budgets (b, s), the proposal q_R(T | z, ℓ) is a
mixture: with probability 1 − ρ a subtree from the fitted mixture q_fit(· | z) of the
library move; with probability ρ (when ℓ > 0 and the budgets leave room) an operator
r ∈ {+, −, ×, ÷} of A (uniform among R), its left child L from q_fit(· | z) one level down
(fitted to z as well as it can), and its right child from q_R(· | z_R(L), ℓ − 1), z_R the
right slot's inverse of r at z given L's outputs (z − L for +, z / L for ×, ...). The
density of a tree sums both ways, the second read off the tree's root and children:

    q_R(T) = (1 − ρ) q_fit(T | z) + ρ/R · 1[T = r(L, R)] q_fit(L | z) q_R(R | z_R(L), ℓ − 1)

A draw whose right child has no room (size budget) proposes nothing (a rejected no-op), so
q_R may have mass below one; the move's ratio uses q_R both ways and stays exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from inference.mcmc.blocks.base import Context
from inference.mcmc.blocks.semantic import Tree, enough_targets, fitted_subtree
from inference.mcmc.fastlik import ProgramLikelihood
from inference.residuals import INVERSES
from inference.target import SiteInfo
from ppl.program import Program

__all__ = ["ASSEMBLE_LEVELS", "ASSEMBLE_SHARE", "assembled_subtree"]

ASSEMBLE_SHARE = 0.5
"""ρ: the share of an operator with fitted children at each level."""
ASSEMBLE_LEVELS = 2
"""ℓ at the node: operators nested along the right spine."""
OPERATORS = ("add", "sub", "mul", "div")


def _rules(site: SiteInfo, a: int) -> list[int]:
    g = site.fn.grammar
    return [r for r in g.by_lhs[a] if g.productions[r].op.name in OPERATORS
            and tuple(g.productions[r].children) == (a, a) and g.probs[r] > 0]


def assembled_subtree(ctx: Context, site: SiteInfo, view: ProgramLikelihood,
                      env: dict[str, np.ndarray], a: int, z: np.ndarray, sigma: float,
                      b: int | None, s: int | None, level: int = ASSEMBLE_LEVELS
                      ) -> tuple[Callable[..., float],
                                 Callable[[np.random.Generator], Tree | None]]:
    """(log q_R, draw) at targets ``z`` (module docstring); a draw may be None."""
    prior = site.fn
    leaf_q, leaf_draw = fitted_subtree(ctx, site, view, a, z, sigma, b, s, wrap=True)
    room = level > 0 and (b is None or b >= 2) and (s is None or s >= 3)
    rules = _rules(site, a) if room else []
    rho = ASSEMBLE_SHARE if rules else 0.0
    lb = None if b is None else b - 1
    ls = None if s is None else s - 2
    left_q, left_draw = (fitted_subtree(ctx, site, view, a, z, sigma, lb, ls, wrap=True)
                         if rules else (leaf_q, leaf_draw))
    n = z.size

    def right(r: int, left: Tree) -> Any:
        rs = None if s is None else s - 1 - len(left[0])
        if rs is not None and rs < 1:
            return None
        with np.errstate(all="ignore"):
            out = np.broadcast_to(np.asarray(Program.unchecked(
                prior.grammar, *left, prior.inputs).evaluate_numpy(env), dtype=np.float64), (n,))
            zr = np.asarray(INVERSES[(prior.grammar.productions[r].op.name, 1)](z, [out]),
                            dtype=np.float64)
        zr = np.where(np.isfinite(zr), zr, np.nan)
        if enough_targets(zr):
            return assembled_subtree(ctx, site, view, env, a, zr, sigma, lb, rs, level - 1)
        log_mass = prior.tables.log_mass(a, lb, rs)
        return (lambda p, v: prior.subtree_log_prob(p, v) - log_mass,
                lambda rng: prior.sample_subtree(rng, a, lb, rs))

    def log_q(prods: tuple[int, ...], values: tuple[Any, ...]) -> float:
        terms = []
        if rho < 1:
            terms.append(math.log1p(-rho) + leaf_q(prods, values))
        if rho > 0 and prods[0] in rules:
            ends = Program.unchecked(prior.grammar, prods, values, prior.inputs).ends()
            mid = int(ends[1])
            left = (prods[1:mid], values[1:mid])
            lq = left_q(*left)
            part = right(prods[0], left) if lq > -math.inf else None
            if part is not None:
                terms.append(math.log(rho) - math.log(len(rules)) + lq
                             + part[0](prods[mid:], values[mid:]))
        top = max(terms) if terms else -math.inf
        if top == -math.inf:
            return -math.inf
        return top + math.log(sum(math.exp(t - top) for t in terms))

    def draw(rng: np.random.Generator) -> Tree | None:
        if rng.random() >= rho:
            return leaf_draw(rng)
        r = rules[int(rng.integers(len(rules)))]
        left = left_draw(rng)
        part = right(r, left)
        if part is None:
            return None
        child = part[1](rng)
        if child is None:
            return None
        return (r, *left[0], *child[0]), (None, *left[1], *child[1])

    return log_q, draw
