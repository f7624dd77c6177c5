"""The library move with several tries, scored as one batch.

The library move (:mod:`inference.mcmc.blocks.semantic`) picks a node v of φ, computes its
targets z and draws one subtree T' from the fitted mixture q_v(· | z). Its acceptance ratio
p(φ') N(φ) q_v(T_v) / (p(φ) N(φ') q_v(T')) is that of an independence sampler on the
subtree at v with target

    π̃(T) ∝ p(φ[v ← T]) / N(φ[v ← T])

and proposal q_v, which depends on φ only outside T_v. Any kernel on T that leaves π̃
invariant (reversibly) makes the move, averaged over v, reversible for p: so K tries.
With ``library_tries`` K > 1 the move draws T₁ … T_K independently from q_v, weighs each by
w_j = π̃(T_j) / q_v(T_j), picks T_J with probability w_J / Σ w, and accepts it with

    min(1, Σ_j w_j / (Σ_j w_j − w_J + w(T_v)))

(multiple-try Metropolis with an independent proposal, whose reference points are the other
tries: Liu, Liang and Wong 2000). Detailed balance holds for any K: π̃(T) K q(T') w(T')
/ (w(T') + S) · min(1, (w(T') + S) / (S + w(T))) is symmetric in T and T' (S the other tries'
weights), since π̃(T) q(T') w(T') = π̃(T) π̃(T') = π̃(T') q(T) w(T).

The K tries cost far less than K moves: z, the ancestors' other children and the
library's scores are computed once; the library's tries (share 1 − w of q_v) are drawn as
one array (:meth:`~inference.mcmc.library.SubtreeLibrary.sample_many`: entries, constants,
outputs read from the library's table, densities vectorised), only the prior's tries (share
w) one by one; all K outputs are pushed up the path to the root as one (K, n) array
(:func:`inference.residuals.lift`) and scored by one vectorised log-likelihood
(:meth:`~inference.mcmc.fastlik.ProgramLikelihood.log_lik_rows`); p(φ[v ← T]) is p(φ) with
T_v's prior terms swapped for T's. With wrapped entries (``library_wrap``) every try is
drawn one by one. A joint move (a redrawn noise scale, ``joint_noise``) stays a single try.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from inference.mcmc.blocks.base import INVALID, REJECTED, Context, GibbsState, MoveInfo
from inference.mcmc.blocks.joint import joint_move
from inference.mcmc.blocks.semantic import (
    LibraryData,
    Mixture,
    Tree,
    enough_targets,
    fitted_subtree,
    library,
    mixture,
)
from inference.mcmc.fastlik import ProgramLikelihood
from inference.mcmc.moves import budgets
from inference.residuals import lift, path_outputs, targets_along
from inference.target import SiteInfo
from ppl.prior import ProgramPrior
from ppl.program import Program

__all__ = ["library_tries", "selection"]


def library_tries(rng: np.random.Generator, ctx: Context, state: GibbsState, site: SiteInfo,
                  view: ProgramLikelihood, data: LibraryData
                  ) -> tuple[GibbsState, MoveInfo]:
    """The library move with ``ctx.options.library_tries`` tries (module docstring);
    ``data`` is ``library_data(view)``.

    Examples
    --------
    >>> import torch
    >>> import ppl
    >>> from inference import infer
    >>> def model(x, y=None):
    ...     f = ppl.sample("f", ppl.ProgramPrior("arith", inputs=["x"], max_depth=4))
    ...     ppl.sample("y", ppl.dist.Normal(f(x), 0.1), obs=y)
    >>> x = torch.linspace(0.5, 2.0, 12)
    >>> post = infer(model, x, y=3 * x + 1, num_samples=100, num_warmup=100, num_chains=1,
    ...              seed=0, progress=False, library_tries=8)
    >>> f = post.best()                         # 3x + 1, as one of its spellings
    >>> bool(abs(float(f.evaluate([1.0])[0]) - 4.0) < 0.1)
    True
    """
    if joint_move(rng, ctx, view):
        return library(rng, ctx, state, site, view, data, joint=True)
    env, y, sigma = data
    prior = site.fn
    phi: Program = state.values[site.name]
    v = int(rng.integers(phi.size))
    steps = path_outputs(phi, v, env, y.size)
    z = targets_along(steps, y)
    if z is None or not enough_targets(z):
        return state, REJECTED
    a = prior.grammar.productions[phi.prods[v]].lhs
    b, s = budgets(prior, phi, v)
    mix = mixture(ctx, site, view, a, z, sigma, b, s, wrap=True)
    log_q, draw = fitted_subtree(ctx, site, view, a, z, sigma, b, s, mix=mix)
    batch = draw_tries(rng, mix, log_q, draw, ctx.options.library_tries, env, y.size, prior)
    log_lik = view.log_lik_rows(lift(steps, batch.outputs))
    end = int(phi.ends()[v])
    old = (phi.prods[v:end], phi.values[v:end])
    # log π̃(T) − log q(T) up to a constant: log p(φ[v ← T]) = log p(φ) − log p(T_v) + log p(T)
    base = state.log_joint - prior.subtree_log_prob(*old) - view.beta * view.log_lik(phi)
    with np.errstate(all="ignore"):
        log_w = (base + batch.log_prior + view.beta * log_lik
                 - np.log(phi.size - (end - v) + batch.sizes) - batch.log_q)
    log_w = np.where(np.isnan(log_w), -np.inf, log_w)
    log_w_old = state.log_joint - math.log(phi.size) - log_q(*old)
    probs, alphas = selection(log_w, log_w_old)
    if probs is None or alphas is None:
        return state, INVALID
    j = min(int(np.searchsorted(np.cumsum(probs), rng.random(), side="right")),
            len(probs) - 1)
    alpha = float(alphas[j])
    if rng.random() >= alpha:
        return state, MoveInfo(alpha, False, 0)
    phi2 = phi.replace(v, *batch.tree(j))
    lj = view.log_joint(phi2)
    if not math.isfinite(lj):
        return state, INVALID
    values = dict(state.values)
    values[site.name] = phi2
    return state._replace(values=values, log_joint=lj), MoveInfo(alpha, True, 0)


def selection(log_w: np.ndarray, log_w_old: float
              ) -> tuple[np.ndarray, np.ndarray] | tuple[None, None]:
    """The multiple-try choice from the tries' log weights and the current subtree's:
    (P(try j is picked), its acceptance probability) for each j (module docstring);
    (None, None) when no try has positive weight or the current weight is not finite.

    Examples
    --------
    >>> import numpy as np
    >>> probs, alphas = selection(np.log([1.0, 3.0]), np.log(2.0))
    >>> probs.tolist(), alphas.tolist()     # α_j = min(1, 4 / (4 − w_j + 2))
    ([0.25, 0.75], [0.8, 1.0])
    """
    top = float(log_w.max())
    if not math.isfinite(top) or not math.isfinite(log_w_old):
        return None, None
    weights = np.exp(log_w - top)
    total = float(weights.sum())
    old = math.exp(log_w_old - top) if log_w_old - top < 700 else math.inf
    with np.errstate(divide="ignore"):  # Σ_{i≠j} w_i + w(T_v) = 0 only when α = 1
        alphas = np.minimum(1.0, total / (np.maximum(total - weights, 0.0) + old))
    return weights / total, alphas


@dataclass
class Batch:
    """K tries: their outputs (K, n), log q, log prior (constants included) and sizes, and
    how to build try j's tree."""

    outputs: np.ndarray
    log_q: np.ndarray
    log_prior: np.ndarray
    sizes: np.ndarray
    tree: Callable[[int], Tree]


def draw_tries(rng: np.random.Generator, mix: Mixture, log_q: Callable[..., float],
               draw: Callable[[np.random.Generator], Tree], k: int,
               env: dict[str, np.ndarray], n: int, prior: ProgramPrior) -> Batch:
    """K independent draws from the fitted mixture. Without wrapped entries the library's
    draws are one array (entries, constants, outputs from the library's table, densities);
    the prior's (share w) and, with wrapped or affine entries, every draw are made one by
    one."""
    one_by_one = bool(mix.wrappers) or mix.affine is not None
    library = np.zeros(k, dtype=bool) if one_by_one else rng.random(k) >= mix.shares[0]
    single = [draw(rng) if one_by_one else prior.sample_subtree(rng, *mix.node)
              for _ in range(int((~library).sum()))]
    j, c = mix.lib.sample_many(rng, mix.scores, int(library.sum()))
    outputs = np.empty((k, n))
    lq, lp, sizes = np.empty(k), np.empty(k), np.empty(k)
    rows = np.flatnonzero(~library)
    with np.errstate(all="ignore"):
        for i, (prods, consts) in zip(rows, single, strict=True):
            outputs[i] = Program.unchecked(prior.grammar, prods, consts,
                                           prior.inputs).evaluate_numpy(env)
            lq[i], lp[i] = log_q(prods, consts), prior.subtree_log_prob(prods, consts)
            sizes[i] = len(prods)
        if library.any():
            lib_prior = mix.lib.entry_prior(j, c)
            outputs[library] = mix.lib.entry_outputs(j, c)
            lq[library] = np.logaddexp(mix.log_shares[0] + lib_prior - mix.log_mass,
                                       mix.log_shares[2] + mix.lib.entry_log_prob(mix.scores,
                                                                                  j, c))
            lp[library] = lib_prior
            sizes[library] = mix.lib.size[j]
    where = np.cumsum(library) - 1

    def tree(i: int) -> Tree:
        if library[i]:
            return mix.lib.tree(int(j[where[i]]), float(c[where[i]]))
        return single[int(np.searchsorted(rows, i))]

    return Batch(outputs, lq, lp, sizes, tree)
