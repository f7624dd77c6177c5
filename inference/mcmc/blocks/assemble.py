"""Subtrees assembled top-down to fit their targets: the assemble move's proposal.

The library move proposes subtrees of at most four nodes; a law like x⁴ − x² + x sits
beyond a valley (every partial program on the way from x + c scores below it,
``benchmarks/law_valley.py``) and must be proposed whole. Its parts are small, though:
x⁴ − x² = (x · x) · ((x · x) − 1), a free factor times a subtree fitted to what the factor
leaves. At a node with nonterminal A, targets z, budgets (b, s) and ℓ levels left, the
proposal q_R(T | z, ℓ) is a mixture: with probability 1 − ρ a subtree from the library
move's fitted mixture q_fit(· | z); with probability ρ (when ℓ > 0, the budgets leave room
and a free factor exists) an operator r ∈ {+, −, ×, ÷} of A (R of them), a slot k of its
two and the **free factor** F in the other slot, jointly from the choice c(r, k, F | z); the
child in slot k from q_R(· | z_k(F), ℓ − 1), where z_k is slot k's inverse of r at z given
F's outputs (z − F for +, z / F for ×, F / z for the divisor, ...). The density of a tree
sums every way to make it, read off its root and children:

    q_R(T) = (1 − ρ) q_fit(T | z)
             + ρ · Σ_k 1[T = r(T₀, T₁)] c(r, k, T₁₋ₖ | z) q_R(Tₖ | z_k(T₁₋ₖ), ℓ − 1)

The choice mixes the prior's with a guided one, c = (1 − η) q_0(F) / (2R) + η g(r, k, F),
where q_0 is the prior renormalised over the library's constant-free entries within budgets
(b − 1, s − 2) (:meth:`~inference.mcmc.library.SubtreeLibrary.factors`), and g looks one
step ahead: how well could the child fit z_k(F)? With e(r, k, F) the least squared error of
a library entry (constant fitted) to z_k, each point weighted by the squared slope of r in
the child (1 for + and −, F² for ×, 1/F² and z⁴/F² for ÷'s slots: the error it makes in
z), over the p points where it exists (at least half), and m targets,

    log g(r, k, F) = log q_0(F) − (m/2) log max(e / p, ε · mean(z²)) + const,

the profile likelihood of the assembled tree under Normal noise; ε (:data:`ERROR_FLOOR`)
makes exact fits tie rather than race on round-off. All (r, k, F) are scored in one table
(:meth:`~inference.mcmc.library.SubtreeLibrary.least_errors`), kept per target vector. A
fitted child gets budgets (b − 1, s − 1 − |F|), at least one node as |F| ≤ s − 2; where
z_k exists at fewer than half the points it comes from the budgeted prior instead. q_R
depends on the program only through z, and the move
(:func:`inference.mcmc.blocks.semantic.library` with ``propose=assembled_subtree``) uses it
both ways, so its ratio is exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from inference.mcmc.blocks.base import Context
from inference.mcmc.blocks.semantic import Tree, enough_targets, fitted_subtree
from inference.mcmc.cache import MISSING
from inference.mcmc.fastlik import ProgramLikelihood
from inference.mcmc.library import draw_index
from inference.residuals import INVERSES
from inference.target import SiteInfo
from ppl.program import Program

__all__ = ["ASSEMBLE_LEVELS", "ASSEMBLE_SHARE", "ERROR_FLOOR", "GUIDED_SHARE", "WEIGHTS",
           "assembled_subtree"]

ASSEMBLE_SHARE = 0.5
"""ρ: the share of an operator with a free factor and a fitted child at each level."""
ASSEMBLE_LEVELS = 2
"""ℓ at the node: operators nested along the fitted children."""
GUIDED_SHARE = 0.5
"""η: the share of the guided choice of (operator, slot, free factor) (module docstring);
the rest is the prior's choice q_0(F) / (2R)."""
ERROR_FLOOR = 1e-12
"""Errors below this fraction of the targets' mean square count as exact fits (round-off)."""
WEIGHTS: dict[tuple[str, int], Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    ("add", 0): lambda z, f: np.ones_like(f), ("add", 1): lambda z, f: np.ones_like(f),
    ("sub", 0): lambda z, f: np.ones_like(f), ("sub", 1): lambda z, f: np.ones_like(f),
    ("mul", 0): lambda z, f: f * f, ("mul", 1): lambda z, f: f * f,
    ("div", 0): lambda z, f: 1.0 / (f * f), ("div", 1): lambda z, f: z ** 4 / (f * f),
}
"""(operator, child slot) -> the squared derivative of r's output in the child at the
child's targets, given z and the free factor's outputs f: an error δ in the child moves the
output by about √w δ."""
OPERATORS = ("add", "sub", "mul", "div")

Proposal = tuple[Callable[..., float], Callable[[np.random.Generator], Tree]]


def _rules(site: SiteInfo, a: int) -> list[int]:
    g = site.fn.grammar
    return [r for r in g.by_lhs[a] if g.productions[r].op.name in OPERATORS
            and tuple(g.productions[r].children) == (a, a) and g.probs[r] > 0]


def _choices(lib: Any, names: list[str], z: np.ndarray, q0: np.ndarray, b: int | None,
             s: int | None) -> np.ndarray:
    """log c(r, k, F) for every operator (of ``names``), slot and library entry: the
    guided choice mixed with the prior's (module docstring), shape (R, 2, M)."""
    cols = np.flatnonzero(np.isfinite(q0))
    f = lib.outputs[cols]
    rows, weights = [], []
    with np.errstate(all="ignore"):
        for name in names:
            for k in (0, 1):
                rows.append(INVERSES[(name, k)](z, [f]))
                weights.append(WEIGHTS[(name, k)](z, f))
    rows_a = np.concatenate(rows)
    w = np.concatenate(weights)
    w = np.where(np.isfinite(rows_a) & np.isfinite(w), w, 0.0)
    sizes = None if s is None else np.tile(s - 1 - lib.size[cols], 2 * len(names))
    err = lib.least_errors(rows_a, w, b, sizes)
    seen = np.isfinite(z)
    points = (w > 0).sum(axis=1)
    with np.errstate(all="ignore"):
        scale = float(np.mean(z[seen] ** 2)) if seen.any() else 1.0
        mse = np.maximum(err / points, ERROR_FLOOR * max(scale, 1e-300))
        fit = np.where((points >= 2) & (2 * points >= z.size) & np.isfinite(mse),
                       -0.5 * int(seen.sum()) * np.log(mse), -np.inf)
    log_q0 = np.tile(q0[cols], 2 * len(names))
    fit = fit + log_q0
    prior_part = log_q0 - math.log(2 * len(names))
    top = fit.max() if fit.size else -math.inf
    if np.isfinite(top):
        guided = fit - top - math.log(float(np.exp(fit - top).sum()))
        mixed = np.logaddexp(math.log(GUIDED_SHARE) + guided,
                             math.log1p(-GUIDED_SHARE) + prior_part)
    else:
        mixed = prior_part
    out = np.full((len(names) * 2, len(lib)), -np.inf)
    out[:, cols] = mixed.reshape(len(names) * 2, cols.size)
    return out.reshape(len(names), 2, len(lib))


def _log_sum(terms: list[float]) -> float:
    top = max(terms) if terms else -math.inf
    if top == -math.inf:
        return -math.inf
    return top + math.log(sum(math.exp(t - top) for t in terms))


def assembled_subtree(ctx: Context, site: SiteInfo, view: ProgramLikelihood, a: int,
                      z: np.ndarray, sigma: float, b: int | None, s: int | None,
                      level: int = ASSEMBLE_LEVELS) -> Proposal:
    """(log q_R, draw) at targets ``z`` (module docstring)."""
    prior = site.fn
    leaf_q, leaf_draw = fitted_subtree(ctx, site, view, a, z, sigma, b, s, wrap=True)
    room = level > 0 and (b is None or b >= 2) and (s is None or s >= 3)
    rules = _rules(site, a) if room else []
    lib = ctx.workspace.library(site, a, view)
    lb = None if b is None else b - 1
    q0 = lib.factors(lb, None if s is None else s - 2) if rules else None
    rho = ASSEMBLE_SHARE if q0 is not None and np.isfinite(q0).any() else 0.0
    children: dict[tuple[int, int, int], Proposal] = {}
    table: list[tuple[np.ndarray, np.ndarray]] = []

    def choices() -> tuple[np.ndarray, np.ndarray]:
        """log c(r, k, F) and the running sums of c over its flattened table, computed on
        first use and kept with the library's fits."""
        if not table:
            assert q0 is not None
            key = ("assemble", z.tobytes(), tuple(rules), lb, s)
            hit = lib.memo.get(key)
            if hit is MISSING:
                names = [prior.grammar.productions[r].op.name for r in rules]
                log_c = _choices(lib, names, z, q0, lb, s)
                hit = (log_c, np.cumsum(np.exp(log_c.reshape(-1))))
                lib.memo.put(key, hit)
            table.append(hit)
        return table[0]

    def fitted(r: int, k: int, j: int) -> Proposal:
        """The proposal of slot k's child of r when entry j is the free factor."""
        key = (r, k, j)
        if key not in children:
            rs = None if s is None else s - 1 - int(lib.size[j])
            name = prior.grammar.productions[r].op.name
            with np.errstate(all="ignore"):
                zk = np.asarray(INVERSES[(name, k)](z, [lib.outputs[j]]), dtype=np.float64)
            zk = np.where(np.isfinite(zk), zk, np.nan)
            if enough_targets(zk):
                children[key] = assembled_subtree(ctx, site, view, a, zk, sigma, lb, rs,
                                                  level - 1)
            else:
                log_mass = prior.tables.log_mass(a, lb, rs)
                children[key] = (lambda p, v: prior.subtree_log_prob(p, v) - log_mass,
                                 lambda rng: prior.sample_subtree(rng, a, lb, rs))
        return children[key]

    def log_q(prods: tuple[int, ...], values: tuple[Any, ...]) -> float:
        terms = [math.log1p(-rho) + leaf_q(prods, values)] if rho < 1 else []
        if rho > 0 and q0 is not None and prods[0] in rules:
            mid = int(Program.unchecked(prior.grammar, prods, values, prior.inputs).ends()[1])
            parts = ((prods[1:mid], values[1:mid]), (prods[mid:], values[mid:]))
            for k in (0, 1):
                j = lib.index.get(parts[1 - k])
                if j is None or q0[j] == -math.inf:
                    continue
                terms.append(math.log(rho) + float(choices()[0][rules.index(prods[0]), k, j])
                             + fitted(prods[0], k, j)[0](*parts[k]))
        return _log_sum(terms)

    def draw(rng: np.random.Generator) -> Tree:
        if rng.random() >= rho or q0 is None:
            return leaf_draw(rng)
        i = draw_index(rng, choices()[1])
        r, k, j = rules[i // (2 * len(lib))], (i // len(lib)) % 2, i % len(lib)
        child = fitted(r, k, j)[1](rng)
        free = lib.entries[j]
        left, right = (child, free) if k == 0 else (free, child)
        return (r, *left[0], *right[0]), (None, *left[1], *right[1])

    return log_q, draw

