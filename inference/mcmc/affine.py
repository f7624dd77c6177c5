"""Affine library entries: c₁ + c₂ · T with both constants fitted, a data-driven proposal.

The library (:class:`~inference.mcmc.library.SubtreeLibrary`) holds subtrees with at most
one constant, so a law with an offset and a scale around a small function, a + b · g(x),
is two moves away from anything it proposes, and under a wrapper (exp(a + b · log x), a
power law with a prefactor) or in a divisor (1 / (a + b · x)) out of reach. An **affine
entry** is the tree (c₁ + (c₂ · T)) for a constant-free library entry T, in a grammar whose
nonterminal A has the productions A → A + A, A → A * A and a constant leaf
(:func:`affine_rules`). At targets z (m points where z exists) each T is fitted by least
squares on [1, T]: with t̄, z̄ the means and S_tt = Σ(T − t̄)², S_tz = Σ(T − t̄)(z − z̄),

    ĉ₂ = S_tz / S_tt,   ĉ₁ = z̄ − ĉ₂ t̄,   SSE_T = Σ(z − z̄)² − S_tz² / S_tt,

and weighted as the library weights its one-constant entries (the Laplace approximation of
the constants' marginal, exact for a model affine in them):

    log w_T = log p_s(T') + log π(ĉ₁) + log π(ĉ₂) + log(2π σ_z²) − ½ log(m S_tt)
              − SSE_T / (2 σ_z²),

with p_s(T') the prior of the structure (c₁ + (c₂ · T)), π the constants' prior and
σ_z² = max(σ², min_T SSE_T / m). Entries that are constant on the points (S_tt ≈ 0), not
finite there, or beyond the budgets (depth of T ≤ b − 2, size ≤ s − 4) get weight 0. The
constants are drawn from their Gaussian: in the coordinates (level at the mean
a = c₁ + c₂ t̄, slope c₂) it factorises, a ~ Normal(z̄, σ_z / √m) and
c₂ ~ Normal(ĉ₂, σ_z / √S_tt), with Jacobian 1.

So q_aff(T' | z) is an explicit density over trees and constants, computable for any tree
(0 unless it has the affine shape around a constant-free entry), and depends on the program
only through z: the fitted mixture of the library move (``library_affine``,
:mod:`inference.mcmc.blocks.semantic`) adds it as one more part and keeps its exact ratio.

Examples
--------
>>> import numpy as np
>>> from ppl import ProgramPrior
>>> from inference.mcmc.library import SubtreeLibrary
>>> prior = ProgramPrior("arith", inputs=["x"], max_depth=5)
>>> x = np.linspace(0.5, 2.0, 12)
>>> lib = SubtreeLibrary(prior, 0, {"x": x}, max_size=3)
>>> table = affine_scores(lib, 0, 1.5 - 2.0 * np.sin(x), 0.01, None, None)
>>> prods, values = affine_sample(lib, table, np.random.default_rng(0))
>>> prior.grammar.format(prods, tuple(round(v, 2) if isinstance(v, float) else v
...                                   for v in values))
'(1.5 + (-2.0 * sin(x)))'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from inference.mcmc.cache import MISSING
from inference.mcmc.library import SubtreeLibrary, constant_log_prob, draw_index
from ppl.ops import KIND_CONSTANT
from ppl.prior import ProgramPrior

__all__ = ["AffineScores", "affine_log_prob", "affine_rules", "affine_sample", "affine_scores"]

FLAT = 1e-12
"""An entry whose spread on the points (S_tt) is below this fraction of Σ T² counts as
constant there: its slope is not identified next to the offset."""


@dataclass
class AffineScores:
    """The affine entries scored against one target vector: per library entry T, log q_aff
    of the structure (c₁ + (c₂ · T)) (−inf where excluded), and the constants' Gaussian in
    the coordinates (level at the mean, slope)."""

    rules: tuple[int, int, int]
    """The productions (+, constant, *) of the nonterminal."""
    log_q: np.ndarray
    slope: np.ndarray
    """ĉ₂ per entry."""
    slope_sd: np.ndarray
    """σ_z / √S_tt per entry."""
    t_mean: np.ndarray
    """t̄ per entry."""
    z_mean: float
    level_sd: float
    """σ_z / √m."""
    cumulative: np.ndarray
    """Running sums of exp(log_q), for draws."""


def affine_rules(prior: ProgramPrior, a: int) -> tuple[int, int, int] | None:
    """The productions (A → A + A, A → constant, A → A * A) of nonterminal ``a`` with prior
    mass, or None when the grammar lacks one of them (no affine entries).

    Examples
    --------
    >>> from ppl import ProgramPrior
    >>> affine_rules(ProgramPrior("koza", inputs=["x"]), 0) is None   # no constants
    True
    >>> affine_rules(ProgramPrior("arith", inputs=["x"]), 0) is not None
    True
    """
    g = prior.grammar
    found: dict[str, int] = {}
    for r in g.by_lhs[a]:
        p = g.productions[r]
        if g.probs[r] <= 0:
            continue
        if p.op.kind == KIND_CONSTANT and not p.children:
            found.setdefault("const", r)
        elif p.op.name in ("add", "mul") and tuple(p.children) == (a, a):
            found.setdefault(p.op.name, r)
    if len(found) < 3:
        return None
    return found["add"], found["const"], found["mul"]


def _shape(lib: SubtreeLibrary, a: int) -> tuple[tuple[int, int, int] | None, float]:
    """(the rules of :func:`affine_rules`, the prior log probability of the shape
    (c + (c * ·)) without its constants) for nonterminal ``a``, kept in the library's memo."""
    key = ("affine-shape", a)
    hit = lib.memo.get(key)
    if hit is not MISSING:
        return hit  # type: ignore[no-any-return]
    rules = affine_rules(lib.prior, a)
    prefix = math.nan
    if rules is not None:
        add, const, mul = rules
        prefix = lib.prior.subtree_log_prob((add, const, mul, const), (None, 0.0, None, 0.0),
                                            constants=False)
    lib.memo.put(key, (rules, prefix))
    return rules, prefix


def _fit(lib: SubtreeLibrary, z: np.ndarray) -> tuple[np.ndarray, ...]:
    """(SSE, ĉ₂, t̄, S_tt, usable) per entry and (z̄, m) at targets ``z``: the σ-free part
    of a scoring, kept per target vector in the library's memo."""
    key = ("affine", z.tobytes())
    hit = lib.memo.get(key)
    if hit is not MISSING:
        return hit  # type: ignore[no-any-return]
    keep = np.isfinite(z)
    zk, t = (z, lib.outputs) if keep.all() else (z[keep], lib.outputs[:, keep])
    m = zk.size
    with np.errstate(all="ignore"):
        usable = ~lib.has_c & np.isfinite(t).all(axis=1)
        t = np.where(usable[:, None], t, 0.0)
        t_mean = t.mean(axis=1) if m else np.zeros(len(lib))
        tc = t - t_mean[:, None]
        s_tt = np.einsum("ij,ij->i", tc, tc)
        z_mean = float(zk.mean()) if m else 0.0
        zc = zk - z_mean
        s_tz = tc @ zc
        slope = s_tz / s_tt
        sse = float(zc @ zc) - s_tz * slope
        usable &= np.isfinite(s_tt) & (s_tt > FLAT * np.einsum("ij,ij->i", t, t)) & \
            np.isfinite(slope) & np.isfinite(sse)
    out = (np.maximum(sse, 0.0), slope, t_mean, s_tt, usable, np.array([z_mean, m]))
    lib.memo.put(key, out)
    return out


def affine_scores(lib: SubtreeLibrary, a: int, z: np.ndarray, sigma: float,
                  depth_budget: int | None, size_budget: int | None) -> AffineScores | None:
    """The affine entries of ``lib`` (nonterminal ``a``) scored against targets ``z`` (NaN:
    no target at that point) at noise scale ``sigma`` within a node's budgets (module
    docstring); None when the grammar has no affine shape or no entry qualifies.

    Examples
    --------
    >>> import numpy as np
    >>> from ppl import ProgramPrior
    >>> from inference.mcmc.library import SubtreeLibrary
    >>> prior = ProgramPrior("arith", inputs=["x"], max_depth=4)
    >>> x = np.linspace(-1.0, 1.0, 8)
    >>> lib = SubtreeLibrary(prior, 0, {"x": x}, max_size=2)
    >>> s = affine_scores(lib, 0, 3.0 + x, 0.1, 4, None)
    >>> round(float(np.exp(s.log_q).sum()), 12), affine_scores(lib, 0, x, 0.1, 2, None)
    (1.0, None)
    """
    rules, prefix = _shape(lib, a)
    if rules is None:
        return None
    sse, slope, t_mean, s_tt, usable, (z_mean, m) = _fit(lib, z)
    ok = usable.copy()
    if depth_budget is not None:
        ok &= lib.depth <= depth_budget - 2
    if size_budget is not None:
        ok &= lib.size <= size_budget - 4
    if not ok.any() or m < 2:
        return None
    var = max(sigma * sigma, float(sse[ok].min()) / m, 1e-300)
    with np.errstate(all="ignore"):
        c1 = z_mean - slope * t_mean
        log_c = constant_log_prob(lib.prior, c1[ok]) + constant_log_prob(lib.prior, slope[ok])
        log_w = np.full(len(lib), -np.inf)
        log_w[ok] = (prefix + lib.log_p[ok] + log_c + math.log(2 * math.pi * var)
                     - 0.5 * np.log(m * s_tt[ok]) - sse[ok] / (2 * var))
        log_w = np.where(np.isfinite(log_w), log_w, -np.inf)
        top = float(log_w.max())
        if not math.isfinite(top):
            return None
        log_q = log_w - top - math.log(float(np.exp(log_w - top).sum()))
        slope_sd = np.sqrt(var / s_tt)
    return AffineScores(rules, log_q, slope, slope_sd, t_mean, float(z_mean),
                        math.sqrt(var / m), np.cumsum(np.exp(log_q)))


def _normal(u: float, mean: float, sd: float) -> float:
    return -0.5 * ((u - mean) / sd) ** 2 - math.log(sd) - 0.5 * math.log(2 * math.pi)


def affine_log_prob(lib: SubtreeLibrary, scores: AffineScores, prods: tuple[int, ...],
                    values: tuple[Any, ...]) -> float:
    """log q_aff(T' | z) of a subtree (structure and both constants); −inf unless it is
    (c₁ + (c₂ · T)) around a scored constant-free entry T.

    Examples
    --------
    >>> import numpy as np
    >>> from ppl import ProgramPrior
    >>> from inference.mcmc.library import SubtreeLibrary
    >>> prior = ProgramPrior("arith", inputs=["x"], max_depth=4)
    >>> x = np.linspace(-1.0, 1.0, 8)
    >>> lib = SubtreeLibrary(prior, 0, {"x": x}, max_size=2)
    >>> s = affine_scores(lib, 0, 3.0 + x, 0.1, 4, None)
    >>> t = prior.parse("(3.0 + (1.0 * x))")
    >>> u = prior.parse("(3.0 + (1.5 * x))")
    >>> affine_log_prob(lib, s, t.prods, t.values) > affine_log_prob(lib, s, u.prods, u.values)
    True
    """
    add, const, mul = scores.rules
    if len(prods) < 5 or prods[:4] != (add, const, mul, const):
        return -math.inf
    j = lib.index.get((prods[4:], values[4:]))
    if j is None or scores.log_q[j] == -math.inf:
        return -math.inf
    c1, c2 = float(values[1]), float(values[3])
    return float(scores.log_q[j]) + _normal(c2, float(scores.slope[j]),
                                            float(scores.slope_sd[j])) + \
        _normal(c1 + c2 * float(scores.t_mean[j]), scores.z_mean, scores.level_sd)


def affine_sample(lib: SubtreeLibrary, scores: AffineScores, rng: np.random.Generator
                  ) -> tuple[tuple[int, ...], tuple[Any, ...]]:
    """T' ~ q_aff(· | z): an entry by its weight, then the slope and the level at the mean
    from their Gaussians (module docstring).

    Examples
    --------
    >>> import numpy as np
    >>> from ppl import ProgramPrior
    >>> from inference.mcmc.library import SubtreeLibrary
    >>> prior = ProgramPrior("arith", inputs=["x"], max_depth=4)
    >>> x = np.linspace(-1.0, 1.0, 8)
    >>> lib = SubtreeLibrary(prior, 0, {"x": x}, max_size=2)
    >>> s = affine_scores(lib, 0, 3.0 + 2.0 * np.exp(x), 0.01, 4, None)
    >>> prods, values = affine_sample(lib, s, np.random.default_rng(1))
    >>> prior.grammar.format(prods, tuple(round(v, 1) if isinstance(v, float) else v
    ...                                   for v in values))
    '(3.0 + (2.0 * exp(x)))'
    """
    j = draw_index(rng, scores.cumulative)
    c2 = float(scores.slope[j] + scores.slope_sd[j] * rng.standard_normal())
    c1 = float(scores.z_mean + scores.level_sd * rng.standard_normal()
               - c2 * scores.t_mean[j])
    add, const, mul = scores.rules
    prods, values = lib.entries[j]
    return (add, const, mul, const, *prods), (None, c1, None, c2, *values)
