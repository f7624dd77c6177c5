"""The library move: a subtree chosen to fit what its node should output.

Pick a node v uniformly; compute its targets z (the observations pushed down through the
rest of the program, :func:`inference.residuals.subtree_targets`); propose T' from

    q_v(T) = (1 − w) q_lib(T | z) + w p_b(T | A_v),    w = :data:`PRIOR_SHARE`,

the :class:`~inference.mcmc.library.SubtreeLibrary` of A_v scored against z, mixed with the
budgeted prior; accept with min(1, p(φ') N(φ) q_v(T_v) / (p(φ) N(φ') q_v(T'))). z depends on
φ only outside T_v, so φ' = φ[v ← T'] has the same q_v and the ratio is exact. The move
needs the incremental likelihood view with one program call and one observed factor whose
points line up with the inputs (``Normal(f(x), sigma)``); elsewhere, and at nodes with
targets at fewer than half of the points, it is a rejected no-op (the same for the move
and its reverse, so still exact).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from inference.mcmc.blocks.base import REJECTED, Context, GibbsState, MoveInfo, swap_subtree
from inference.mcmc.fastlik import ProgramLikelihood
from inference.mcmc.moves import budgets
from inference.residuals import subtree_targets
from inference.target import SiteInfo
from ppl.program import Program

__all__ = ["PRIOR_SHARE", "LibraryData", "library", "library_data"]

LibraryData = tuple[dict[str, np.ndarray], np.ndarray, float]
"""What the library move reads from a view: (inputs by name, observations y, σ / √β)."""

PRIOR_SHARE = 0.1
"""w: the budgeted prior's share of the library move's proposal."""


def library_data(view: ProgramLikelihood | None) -> LibraryData | None:
    """(inputs by name, observations y, noise scale σ / √β) of a view with one call and
    one factor over n points; None otherwise.

    Examples
    --------
    >>> library_data(None) is None
    True
    """
    if view is None or len(view.calls) != 1 or len(view.factors) != 1:
        return None
    factor = view.factors[0]
    y = np.asarray(factor.y, dtype=np.float64)
    env = view.envs[0]
    if y.ndim != 1 or any(np.shape(a) != y.shape or a.dtype == np.bool_
                          for a in env.values()):
        return None
    scale = np.asarray(factor.params.get("scale", np.nan), dtype=np.float64)
    sigma = float(np.sqrt(np.mean(scale * scale)))
    if not (math.isfinite(sigma) and sigma > 0 and view.beta > 0):
        return None
    return env, y, sigma / math.sqrt(view.beta)


def library(rng: np.random.Generator, ctx: Context, state: GibbsState, site: SiteInfo,
            view: ProgramLikelihood | None, data: LibraryData | None = None
            ) -> tuple[GibbsState, MoveInfo]:
    """The library move (module docstring); ``data`` is ``library_data(view)`` when the
    caller has it already."""
    data = data if data is not None else library_data(view)
    if data is None or view is None:
        return state, REJECTED
    env, y, sigma = data
    prior = site.fn
    phi: Program = state.values[site.name]
    v = int(rng.integers(phi.size))
    z = subtree_targets(phi, v, env, y)
    if z is None:
        return state, REJECTED
    count = int(np.isfinite(z).sum())
    if count < 2 or 2 * count < z.size:
        return state, REJECTED
    a = prior.grammar.productions[phi.prods[v]].lhs
    b, s = budgets(prior, phi, v)
    lib = ctx.workspace.library(site, a, view)
    scores = lib.score(z, sigma, b, s)
    log_mass = prior.tables.log_mass(a, b, s)
    w = PRIOR_SHARE
    fits = bool(np.isfinite(scores.log_q).any())

    def log_q(prods: tuple[int, ...], values: tuple[Any, ...]) -> float:
        by_prior = math.log(w) + prior.subtree_log_prob(prods, values) - log_mass
        if not fits:
            return float(by_prior)
        return float(np.logaddexp(math.log1p(-w) + lib.log_prob(scores, prods, values),
                                  by_prior))

    if rng.random() < w or not fits:
        new = prior.sample_subtree(rng, a, b, s)
    else:
        new = lib.sample(rng, scores)
    return swap_subtree(rng, ctx.target, state, site.name, v, new, log_q, view)
