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

Wrapped entries
---------------
A library of subtrees up to four nodes cannot propose exp(c · log x) (a power law, five
nodes) in one move, although its inner part is a library entry: c · log x fits log z.
With share u (``library_wrap``) the move proposes a **wrapped entry** g(U) instead: a unary
production g of A_v with an inverse (exp: log, log: exp, sin: arcsin, cos: arccos, ...,
:data:`inference.residuals.INVERSES`), uniform among those whose transformed targets
g⁻¹(z) exist at half the points and two, and U drawn from the fitted mixture of g's child
(library and prior, no further wrapping) at g⁻¹(z), one level of budget below. So

    q_v(T) = (1 − w − u) q_lib(T | z) + u/|G(z)| Σ_g 1[T = g(U)] q_g(U | g⁻¹(z)) + w p_b(T)

is an explicit density (the three parts for T's root are read off T), depends on φ only
through z, and the ratio stays exact. Without usable wrappers (no such g, or budgets too
small), u = 0 and the move is the plain library move, draw for draw.

Affine entries
--------------
With share e (``library_affine``) the mixture has one more part, the **affine entries**
(c₁ + (c₂ · U)) around the library's constant-free entries U, both constants fitted by
least squares and drawn from their Gaussian (:mod:`inference.mcmc.affine`): an offset and a
scale around a small function in one proposal, at every level of the mixture (inside a
wrapper too: exp(c₁ + c₂ · log x), a power law with its prefactor). The affine part's
density is read off T's shape, so the mixture stays explicit and the ratio exact; where
the grammar lacks +, * or constants, or no entry qualifies, e = 0.

The root share
--------------
With share ρ (``library_root``) the node is the root with probability ρ, else drawn
uniformly: the root's targets are the data themselves, so a whole program is proposed from
them however large the current one has grown. The pick enters the ratio as
P(v | φ) = ρ 1[v = root] + (1 − ρ) / N(φ) in place of 1 / N(φ) (the same for the library and
the assemble move); with ρ = 0 the move is the uniform one, draw for draw.

Grow
----
The library move replaces a subtree by a small one; the grow move builds on the subtree
that is there. With probability ½ it **grows**: pick a node v uniformly (N(φ) nodes), a
recursive production r of A_v uniformly (R choices), a slot j of r's children of type A_v
uniformly (J slots); T_v becomes r's child j, and r's other child, when it has exactly one,
is drawn from the fitted mixture q_u (as above) at its own targets z_u: for ``T_v + T``
that is y − T_v(x), for ``T_v * T`` y / T_v(x), the residual of the current fit. Its
budgets are one level below v and, under a size limit, the room the rest of φ' leaves. A
unary r has no new child; a production with several others draws them from the budgeted
prior. Otherwise it **prunes**: pick a node v uniformly and, among its children of A_v's
type (J slots), one uniformly to take v's place, dropping the others. Grow from φ and
prune from φ' are each other's reverse, and z_u depends on φ' only outside the new child,
so the densities are

    q(φ' | φ) = ½ · 1/N(φ) · 1/R · 1/J · q_u(T)        q(φ | φ') = ½ · 1/N(φ') · 1/J

and the move is accepted with min(1, p(φ') q(φ | φ') / (p(φ) q(φ' | φ))). A sum of terms
or a product of factors is reached one fitted term at a time: from x³ the move proposes
x³ + T with T fitted to y − x³.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from inference.mcmc.affine import AffineScores, affine_log_prob, affine_sample, affine_scores
from inference.mcmc.blocks.base import (
    INVALID,
    REJECTED,
    Context,
    GibbsState,
    MoveInfo,
    accept,
    swap_subtree,
)
from inference.mcmc.blocks.joint import accept_joint, draw_noise, joint_move
from inference.mcmc.fastlik import ProgramLikelihood
from inference.mcmc.library import Scores, SubtreeLibrary
from inference.mcmc.moves import budgets
from inference.residuals import INVERSES, subtree_targets
from inference.target import SiteInfo
from ppl.ops import KIND_FUNCTION
from ppl.prior import ProgramPrior
from ppl.program import Program

__all__ = ["PRIOR_SHARE", "LibraryData", "grow", "library", "library_data"]

LibraryData = tuple[dict[str, np.ndarray], np.ndarray, float]
"""What the library move reads from a view: (inputs by name, observations y, σ / √β)."""

PRIOR_SHARE = 0.1
"""w: the budgeted prior's share of the library move's proposal."""


Tree = tuple[tuple[int, ...], tuple[Any, ...]]
Propose = Callable[..., tuple[Callable[..., float], Callable[[np.random.Generator], Any]]]
"""A proposal at a node: (ctx, site, view, nonterminal, targets z, σ, depth budget, size
budget) -> (log q(prods, values), draw(rng) -> tree)."""


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
            view: ProgramLikelihood | None, data: LibraryData | None = None,
            joint: bool | None = None, propose: Propose | None = None
            ) -> tuple[GibbsState, MoveInfo]:
    """The library move (module docstring); ``data`` is ``library_data(view)`` when the
    caller has it already; ``joint`` says whether the move is joint (None: a coin of
    probability ``joint_noise``, drawn after the subtree); ``propose`` is the proposal at
    the node (default the fitted mixture with wrapped entries, :func:`fitted_subtree`; the
    assemble move passes :func:`inference.mcmc.blocks.assemble.assembled_subtree`)."""
    data = data if data is not None else library_data(view)
    if data is None or view is None:
        return state, REJECTED
    prior = site.fn
    phi: Program = state.values[site.name]
    root = ctx.options.library_root
    v = 0 if root > 0 and rng.random() < root else int(rng.integers(phi.size))
    z = _targets(phi, v, data)
    if z is None:
        return state, REJECTED
    a = prior.grammar.productions[phi.prods[v]].lhs
    b, s = budgets(prior, phi, v)

    def node_ratio(size2: int) -> float:
        """log P(v | φ') − log P(v | φ) of the pick with a root share."""
        at_root = root if v == 0 else 0.0
        return math.log(at_root + (1 - root) / size2) - math.log(at_root + (1 - root) / phi.size)

    def proposal(sigma: float) -> tuple[Callable[..., float], Callable[..., Any]]:
        if propose is None:
            return fitted_subtree(ctx, site, view, a, z, sigma, b, s, wrap=True)
        return propose(ctx, site, view, a, z, sigma, b, s)

    log_q, draw = proposal(data[2])
    new = draw(rng)
    is_joint = joint_move(rng, ctx, view) if joint is None else joint
    if is_joint:
        assert view.noise is not None
        phi2 = phi.replace(v, *new)
        noise = draw_noise(rng, view, phi2, state.values[view.noise.site])
        data2 = None if noise is None else library_data(noise.view)
        if data2 is None:
            return state, REJECTED
        back, _ = proposal(data2[2])
        end = int(phi.ends()[v])
        if root == 0:
            ratio = (-math.log(phi2.size) + back(phi.prods[v:end], phi.values[v:end])
                     + math.log(phi.size) - log_q(*new))
        else:
            ratio = node_ratio(phi2.size) + back(phi.prods[v:end], phi.values[v:end]) \
                - log_q(*new)
        return accept_joint(rng, ctx, state, site.name, view, phi2, noise, ratio)
    return swap_subtree(rng, ctx.target, state, site.name, v, new, log_q, view,
                        None if root == 0 else node_ratio)


@dataclass
class Mixture:
    """The parts of the fitted mixture q(T) = (1 − w − u) q_lib(T | z) + u q_wrap(T | z) +
    w p_b(T | A) at one node (:func:`mixture`)."""

    lib: SubtreeLibrary
    """The library of the node's nonterminal."""
    scores: Scores
    """The library scored against the node's targets."""
    log_mass: float
    """log of the budgeted prior's mass (its normaliser)."""
    fits: bool
    """Whether any library entry fits (else the library's share goes to the others)."""
    wrappers: dict[int, tuple[int, np.ndarray]]
    """The usable wrappers (:func:`_wrappers`; empty unless ``library_wrap`` > 0)."""
    affine: AffineScores | None
    """The affine entries scored (None unless ``library_affine`` > 0 and one qualifies)."""
    shares: tuple[float, float, float, float]
    """(prior, wrapped, library, affine) shares of the proposal."""
    log_shares: tuple[float, float, float, float]
    """Their logs (−inf for a share of 0)."""
    node: tuple[int, int | None, int | None]
    """The node's nonterminal and (depth, size) budgets."""


def mixture(ctx: Context, site: SiteInfo, view: ProgramLikelihood, a: int, z: np.ndarray,
            sigma: float, b: int | None, s: int | None, wrap: bool = False) -> Mixture:
    """The fitted mixture's parts over subtrees of nonterminal ``a`` within the budgets at
    targets ``z`` (module docstring, "Wrapped entries"; u = ``library_wrap``, 0 without
    ``wrap`` or without a usable wrapper)."""
    prior = site.fn
    lib = ctx.workspace.library(site, a, view)
    scores = lib.score(z, sigma, b, s)
    log_mass = prior.tables.log_mass(a, b, s)
    fits = bool(np.isfinite(scores.log_q).any())
    share = ctx.options.library_wrap if wrap else 0.0
    wrappers = _wrappers(prior, a, z, b, s) if share > 0 else {}
    w, u = PRIOR_SHARE, (share if wrappers else 0.0)
    aff = ctx.options.library_affine
    affine = affine_scores(lib, a, z, sigma, b, s) if aff > 0 else None
    e = aff if affine is not None else 0.0
    rest = w + u + e
    shares = (w, u, 1.0 - rest, e) if fits else (w / rest, u / rest, 0.0, e / rest)
    log_shares = (math.log(shares[0]), math.log(u) if u else -math.inf,
                  math.log1p(-rest) if fits else -math.inf, math.log(e) if e else -math.inf)
    return Mixture(lib, scores, log_mass, fits, wrappers, affine, shares, log_shares,
                   (a, b, s))


def fitted_subtree(ctx: Context, site: SiteInfo, view: ProgramLikelihood, a: int,
                   z: np.ndarray, sigma: float, b: int | None, s: int | None,
                   wrap: bool = False, mix: Mixture | None = None
                   ) -> tuple[Callable[..., float], Callable[[np.random.Generator], Tree]]:
    """(log q, draw) of the fitted mixture (:func:`mixture`, or ``mix`` when the caller
    has it) over subtrees of nonterminal ``a`` within the budgets."""
    prior = site.fn
    m = mix if mix is not None else mixture(ctx, site, view, a, z, sigma, b, s, wrap)
    lib, scores, log_mass, fits = m.lib, m.scores, m.log_mass, m.fits
    wrappers, shares, log_shares = m.wrappers, m.shares, m.log_shares
    inner: dict[int, tuple[Callable[..., float], Callable[[np.random.Generator], Tree]]] = {}

    def wrapped(r: int) -> tuple[Callable[..., float], Callable[[np.random.Generator], Tree]]:
        if r not in inner:
            c, zc = wrappers[r]
            inner[r] = fitted_subtree(ctx, site, view, c, zc, sigma,
                                      None if b is None else b - 1,
                                      None if s is None else s - 1)
        return inner[r]

    def log_q(prods: tuple[int, ...], values: tuple[Any, ...]) -> float:
        terms = [log_shares[0] + prior.subtree_log_prob(prods, values) - log_mass]
        if prods[0] in wrappers:
            terms.append(log_shares[1] - math.log(len(wrappers))
                         + wrapped(prods[0])[0](prods[1:], values[1:]))
        if fits:
            terms.append(log_shares[2] + lib.log_prob(scores, prods, values))
        if m.affine is not None:
            terms.append(log_shares[3] + affine_log_prob(lib, m.affine, prods, values))
        top = float(max(terms))
        if top == -math.inf:
            return top
        return top + math.log(sum(math.exp(t - top) for t in terms))

    def draw(rng: np.random.Generator) -> Tree:
        u = rng.random()
        if u < shares[0]:
            tree: Tree = prior.sample_subtree(rng, a, b, s)
            return tree
        if u < shares[0] + shares[1]:
            keys = list(wrappers)
            r = keys[int(rng.integers(len(keys)))]
            prods, values = wrapped(r)[1](rng)
            return (r, *prods), (None, *values)
        if m.affine is not None and u < shares[0] + shares[1] + shares[3]:
            return affine_sample(lib, m.affine, rng)
        return lib.sample(rng, scores)

    return log_q, draw


def _wrappers(prior: ProgramPrior, a: int, z: np.ndarray, b: int | None, s: int | None
              ) -> dict[int, tuple[int, np.ndarray]]:
    """The unary productions r of ``a`` a wrapped entry may use at targets ``z`` and
    budgets (b, s), each with (its child's nonterminal, the child's targets g⁻¹(z)): an
    operator with an inverse, room for a child, targets at half the points and two."""
    if (b is not None and b < 2) or (s is not None and s < 2):
        return {}
    out = {}
    with np.errstate(all="ignore"):
        for r in prior.grammar.by_lhs[a]:
            p = prior.grammar.productions[r]
            inverse = INVERSES.get((p.op.name, 0))
            if len(p.children) != 1 or p.op.kind != KIND_FUNCTION or p.op.boolean or \
                    inverse is None or prior.grammar.probs[r] <= 0:
                continue
            zc = np.asarray(inverse(z, []), dtype=np.float64)
            if enough_targets(zc):
                out[r] = (p.children[0], zc)
    return out


def _targets(phi: Program, u: int, data: LibraryData) -> np.ndarray | None:
    """Node u's targets when at least half of them (and two) exist, else None."""
    env, y, _ = data
    z = subtree_targets(phi, u, env, y)
    return z if z is not None and enough_targets(z) else None


def enough_targets(z: np.ndarray) -> bool:
    """Whether targets exist at half the points and at two at least."""
    count = int(np.isfinite(z).sum())
    return count >= 2 and 2 * count >= z.size


def grow(rng: np.random.Generator, ctx: Context, state: GibbsState, site: SiteInfo,
         view: ProgramLikelihood | None, data: LibraryData | None = None
         ) -> tuple[GibbsState, MoveInfo]:
    """The grow move (module docstring, "Grow"): with probability ½ wrap the subtree at a
    node in a recursive production whose new child is fitted to its targets, else remove
    such a production keeping one child; ``data`` is ``library_data(view)``."""
    data = data if data is not None else library_data(view)
    if data is None or view is None:
        return state, REJECTED
    phi: Program = state.values[site.name]
    grammar = site.fn.grammar
    if rng.random() < 0.5:
        v = int(rng.integers(phi.size))
        a = grammar.productions[phi.prods[v]].lhs
        rec = site.fn.recursive()[a]
        if not rec:
            return state, REJECTED
        r = rec[int(rng.integers(len(rec)))]
        slots = [i for i, c in enumerate(grammar.productions[r].children) if c == a]
        j = slots[int(rng.integers(len(slots)))]
        b, _ = budgets(site.fn, phi, v)
        if b is not None and int(phi.heights()[v]) > b - 1:
            return state, REJECTED
        end = int(phi.ends()[v])
        kept = (phi.prods[v:end], phi.values[v:end])
        siblings = _siblings(rng, ctx, site, view, data, phi, v, r, j, kept)
        if siblings is None:
            return state, REJECTED
        phi2, log_q_siblings = siblings
        fwd = -math.log(phi.size) - math.log(len(rec)) - math.log(len(slots)) + log_q_siblings
        rev = -math.log(phi2.size) - math.log(len(slots))
        if joint_move(rng, ctx, view):
            assert view.noise is not None
            noise = draw_noise(rng, view, phi2, state.values[view.noise.site])
            return accept_joint(rng, ctx, state, site.name, view, phi2, noise, rev - fwd)
        return accept(rng, ctx.target, state, site.name, phi2, rev - fwd,
                      view.log_joint(phi2))
    v = int(rng.integers(phi.size))
    r = phi.prods[v]
    a = grammar.productions[r].lhs
    kids = grammar.productions[r].children
    slots = [i for i, c in enumerate(kids) if c == a]
    if not slots:
        return state, REJECTED
    j = slots[int(rng.integers(len(slots)))]
    spans = _child_spans(phi, v, len(kids))
    start, end = spans[j]
    phi2 = phi.replace(v, phi.prods[start:end], phi.values[start:end])
    noise = None
    if joint_move(rng, ctx, view):  # the reverse grow's densities at σ'
        assert view.noise is not None
        noise = draw_noise(rng, view, phi2, state.values[view.noise.site])
        data = None if noise is None else library_data(noise.view)
        if data is None:
            return state, REJECTED
    log_q_siblings = _siblings_log_q(ctx, site, view, data, phi, v, spans, j)
    rec = site.fn.recursive()[a]
    fwd = -math.log(phi.size) - math.log(len(slots))
    rev = (-math.log(phi2.size) - math.log(len(rec)) - math.log(len(slots))
           + log_q_siblings)
    if not math.isfinite(rev):
        return state, INVALID
    if noise is not None:
        return accept_joint(rng, ctx, state, site.name, view, phi2, noise, rev - fwd)
    return accept(rng, ctx.target, state, site.name, phi2, rev - fwd, view.log_joint(phi2))


def _child_spans(phi: Program, v: int, arity: int) -> list[tuple[int, int]]:
    """[start, end) of each child of node v."""
    ends = phi.ends()
    spans, c = [], v + 1
    for _ in range(arity):
        spans.append((c, int(ends[c])))
        c = int(ends[c])
    return spans


def _sibling_budgets(prior: ProgramPrior, phi: Program, v: int, rest: int, one: bool
                     ) -> tuple[int | None, int | None]:
    """Depth and size budgets of a new child of node v: one level below v, and, when it
    is the only new child (``one``), the room left by the ``rest`` of the program (every
    node but the child's); a child among several gets no size budget (the move rejects a
    result too large, as the insert move does)."""
    b, _ = budgets(prior, phi, v)
    depth = None if b is None else b - 1
    size = None if prior.max_size is None or not one else prior.max_size - rest
    return depth, size


def _siblings(rng: np.random.Generator, ctx: Context, site: SiteInfo,
              view: ProgramLikelihood, data: LibraryData, phi: Program, v: int, r: int,
              j: int, kept: Tree) -> tuple[Program, float] | None:
    """φ with node v wrapped in production r (T_v in slot j) and its other children
    drawn (:func:`_sibling_density`), with the log density of the draw; None when the
    result is too large."""
    prior = site.fn
    kids = prior.grammar.productions[r].children
    one = len(kids) == 2
    depth, size = _sibling_budgets(prior, phi, v, phi.size + 1, one)
    # placeholders for the new children: a child's targets read only the rest of φ
    a = prior.grammar.productions[phi.prods[v]].lhs
    parts = [kept if c == a else prior.sample_subtree(rng, c, depth, None) for c in kids]
    draft = phi.replace(v, (r,) + tuple(p for sp, _ in parts for p in sp),
                        (None,) + tuple(x for _, sv in parts for x in sv))
    spans = _child_spans(draft, v, len(kids))
    log_q = 0.0
    for i, c in enumerate(kids):
        if i != j:
            density, draw = _sibling_density(ctx, site, view, data, draft, spans[i][0], c,
                                             depth, size, one)
            parts[i] = draw(rng)
            log_q += density(*parts[i])
    new_p = (r,) + tuple(p for sp, _ in parts for p in sp)
    if prior.max_size is not None and phi.size - len(kept[0]) + len(new_p) > prior.max_size:
        return None
    return phi.replace(v, new_p, (None,) + tuple(x for _, sv in parts for x in sv)), log_q


def _siblings_log_q(ctx: Context, site: SiteInfo, view: ProgramLikelihood,
                    data: LibraryData, phi: Program, v: int, spans: list[tuple[int, int]],
                    j: int) -> float:
    """log q of node v's children other than slot j as :func:`_siblings` would draw them
    when growing φ without them back into φ."""
    prior = site.fn
    kids = prior.grammar.productions[phi.prods[v]].children
    one = len(kids) == 2
    rest = phi.size - sum(e - s for i, (s, e) in enumerate(spans) if i != j)
    depth, size = _sibling_budgets(prior, phi, v, rest, one)
    total = 0.0
    for i, c in enumerate(kids):
        if i != j:
            density, _ = _sibling_density(ctx, site, view, data, phi, spans[i][0], c,
                                          depth, size, one)
            s, e = spans[i]
            total += density(phi.prods[s:e], phi.values[s:e])
    return total


def _sibling_density(ctx: Context, site: SiteInfo, view: ProgramLikelihood,
                     data: LibraryData, phi: Program, u: int, c: int, depth: int | None,
                     size: int | None, fitted: bool
                     ) -> tuple[Callable[..., float], Callable[[np.random.Generator], Tree]]:
    """(log q, draw) of a new child at node u of φ: the fitted mixture at u's targets
    when it is the only new child (``fitted``) and u has targets, else the budgeted
    prior."""
    prior = site.fn
    z = _targets(phi, u, data) if fitted else None
    if z is not None:
        return fitted_subtree(ctx, site, view, c, z, data[2], depth, size)
    log_mass = prior.tables.log_mass(c, depth, size)

    def log_q(prods: tuple[int, ...], values: tuple[Any, ...]) -> float:
        return float(prior.subtree_log_prob(prods, values) - log_mass)

    return log_q, lambda rng: prior.sample_subtree(rng, c, depth, size)
