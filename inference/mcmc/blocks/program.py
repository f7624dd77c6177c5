"""The program block: structure moves and constant moves of one program site.

One block update (``step``) makes ``options.program_moves`` structure moves, each drawn
from :data:`STRUCTURE_MOVES` with probabilities ``options.structure_weights`` and followed,
when the program has constants, by one constant move (a Laplace independence move with
probability ``refit`` when the incremental likelihood exists, else a random walk on one
constant); one MALA move on all constants ends the block
(:func:`inference.mcmc.blocks.continuous.mala`). Every move is an exact MH update with its
Hastings ratio (MOVES.md).

A new structure move (a neural proposal, say) is one function with the signature of
:data:`StructureMove` plus one entry in :data:`STRUCTURE_MOVES`; ``structure_weights``
then selects it by name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from typing import Any

import numpy as np

from inference.mcmc.blocks.assemble import assembled_subtree
from inference.mcmc.blocks.base import (
    INVALID,
    REJECTED,
    BlockInfo,
    Context,
    GibbsState,
    MoveInfo,
    accept,
    adapt,
    pick_move,
    swap_subtree,
)
from inference.mcmc.blocks.continuous import mala
from inference.mcmc.blocks.joint import accept_joint, draw_noise, joint_move
from inference.mcmc.blocks.semantic import grow, library, library_data
from inference.mcmc.blocks.tries import library_tries
from inference.mcmc.fastlik import ProgramLikelihood
from inference.mcmc.moves import MOVES, RandomChooser, budgets
from inference.target import SiteInfo
from ppl.errors import PPLError
from ppl.program import Program

__all__ = ["STRUCTURE_MOVES", "StructureMove", "check_structure_weights",
           "conditioned_proposal", "constant_rw", "constants_log_q", "draw_constants",
           "edit_context", "grow_or_insert", "laplace_constants", "neural", "neural_edit",
           "parent_slot", "refit_structure", "step", "structure", "tree_move"]

StructureMove = Callable[[np.random.Generator, Context, GibbsState, SiteInfo,
                          "ProgramLikelihood | None"], tuple[GibbsState, MoveInfo]]
"""``move(rng, ctx, state, site, view) -> (state, info)``: one exact MH update of the
program at ``site`` (``view``: its incremental likelihood, or None)."""

def structure(rng: np.random.Generator, ctx: Context, state: GibbsState, site: SiteInfo,
              name: str, view: ProgramLikelihood | None = None
              ) -> tuple[GibbsState, MoveInfo]:
    """The tree move ``name`` of :data:`inference.mcmc.moves.MOVES` with the constants
    kept or drawn from their prior; ratio log q(φ | φ') − log q(φ' | φ) (MOVES.md 1–3)."""
    prop = MOVES[name](RandomChooser(rng), site.fn, state.values[site.name])
    if prop is None:
        return state, REJECTED
    if joint_move(rng, ctx, view):
        assert view is not None and view.noise is not None
        draw = draw_noise(rng, view, prop.program, state.values[view.noise.site])
        return accept_joint(rng, ctx, state, site.name, view, prop.program, draw,
                            prop.log_q_rev - prop.log_q_fwd)
    scored = view.log_joint(prop.program) if view is not None else None
    return accept(rng, ctx.target, state, site.name, prop.program,
                  prop.log_q_rev - prop.log_q_fwd, scored)


def draw_constants(rng: np.random.Generator, ctx: Context, view: ProgramLikelihood,
                   site: SiteInfo, phi: Program) -> tuple[Program | None, float]:
    """All constants of φ's shape redrawn from its Laplace fit (or the prior when the fit
    fails), with log q of the draw; (None, 0) when the draw has a non-finite density."""
    k = len(phi.constants)
    if k == 0:
        return phi, 0.0
    fit = ctx.workspace.fitter(site.name).fit(phi, view)
    if fit is None:
        c = np.array([site.fn.constant_prior.sample(rng) for _ in range(k)])
        return phi.with_constants(c), _prior_log_q(site, c)
    c = fit.sample(rng)
    log_q = fit.log_density(c)
    if not (np.all(np.isfinite(c)) and math.isfinite(log_q)):
        return None, 0.0  # rejected: the forward density must be finite
    return phi.with_constants(c), log_q


def constants_log_q(ctx: Context, view: ProgramLikelihood, site: SiteInfo,
                    phi: Program) -> float:
    """log q of φ's own constants under the proposal of its shape (the reverse density)."""
    c = phi.constants
    if not len(c):
        return 0.0
    fit = ctx.workspace.fitter(site.name).fit(phi, view)
    return _prior_log_q(site, c) if fit is None else fit.log_density(c)


def _prior_log_q(site: SiteInfo, c: np.ndarray) -> float:
    return float(sum(site.fn.constant_prior.log_prob(float(x)) for x in c))


def refit_structure(rng: np.random.Generator, ctx: Context, state: GibbsState,
                    site: SiteInfo, name: str, view: ProgramLikelihood
                    ) -> tuple[GibbsState, MoveInfo]:
    """MOVES.md move 5: a structure move (constants integrated out of its densities),
    then every constant of the new shape drawn from its Laplace fit."""
    phi: Program = state.values[site.name]
    prop = MOVES[name](RandomChooser(rng), site.fn, phi, structural=True)
    if prop is None:
        return state, REJECTED
    phi2, log_q_c2 = draw_constants(rng, ctx, view, site, prop.program)
    if phi2 is None:
        return state, INVALID
    ratio = (prop.log_q_rev + constants_log_q(ctx, view, site, phi)
             - prop.log_q_fwd - log_q_c2)
    return accept(rng, ctx.target, state, site.name, phi2, ratio, view.log_joint(phi2))


def tree_move(name: str) -> StructureMove:
    """The structure move of table entry ``name``: with the incremental likelihood, a
    Laplace refit (:func:`refit_structure`) with probability ``refit``, else the plain
    tree move (:func:`structure`)."""
    def move(rng: np.random.Generator, ctx: Context, state: GibbsState, site: SiteInfo,
             view: ProgramLikelihood | None) -> tuple[GibbsState, MoveInfo]:
        if view is not None and rng.random() < ctx.options.refit:
            return refit_structure(rng, ctx, state, site, name, view)
        return structure(rng, ctx, state, site, name, view)
    move.__name__ = move.__qualname__ = f"tree_move_{name}"
    return move


def conditioned_proposal(ctx: Context, site: SiteInfo) -> Any:
    """The kernel's proposal for ``site`` conditioned on the model's data and mixed with
    the prior (:class:`~inference.amortized.mixture.MixedProposal`, built once per kernel);
    None when no proposal was trained for this site."""
    proposal = ctx.amortized.proposal
    if proposal is None or proposal.site != site.name:
        return None
    mixed = ctx.workspace.proposals.get(site.name)
    if mixed is None:
        from inference.amortized.mixture import MixedProposal

        target = ctx.target
        observed = {**target.observed, **target.given_obs}
        mixed = ctx.workspace.proposals[site.name] = MixedProposal.for_model(
            proposal, target.args, target.kwargs, observed, ctx.amortized.prior_weight)
    return mixed


def parent_slot(phi: Program, v: int) -> tuple[int, int] | None:
    """(the parent's production, the child slot) of node ``v`` (preorder); None for the
    root.

    Examples
    --------
    >>> from ppl import ProgramPrior
    >>> prior = ProgramPrior("tiny", inputs=["x"], max_depth=3)
    >>> phi = prior.parse("(x + sin(1))")
    >>> parent_slot(phi, 0), parent_slot(phi, 2)[1], parent_slot(phi, 3)[1]
    (None, 1, 0)
    """
    productions = phi.grammar.productions
    stack: list[list[int]] = []  # [production, next slot, arity] of open parents
    for i, r in enumerate(phi.prods):
        here = None
        if stack:
            top = stack[-1]
            here = (top[0], top[1])
            top[1] += 1
            if top[1] == top[2]:
                stack.pop()
        if i == v:
            return here
        arity = len(productions[r].children)
        if arity:
            stack.append([r, 0, arity])
    raise IndexError(f"node {v} of a program of {phi.size} nodes")


def edit_context(mixed: Any, phi: Program, v: int) -> tuple[Any, tuple[int, int] | None]:
    """(the decoder's context, the position to decode at) of the neural edit at node v:
    the targets' data set at the root position, else the data at v's child slot.

    Examples
    --------
    >>> import numpy as np, ppl
    >>> from ppl import dist
    >>> from inference.amortized import train_proposal
    >>> from inference.amortized.mixture import MixedProposal
    >>> prior = ppl.ProgramPrior("arith", inputs=["x"], max_depth=3)
    >>> def model(x, y=None):
    ...     f = ppl.sample("f", prior)
    ...     ppl.sample("y", dist.Normal(f(x), 0.1).to_event(1), obs=y)
    >>> x = np.linspace(0.1, 1, 6)
    >>> q = train_proposal(model, x, y=x, num_steps=0, hidden=8, progress=False)
    >>> mixed = MixedProposal(q, x[:, None], x + 7.0)
    >>> edit_context(mixed, prior.parse("(x + 1.0)"), 2)[1] is None     # z = y - x
    True
    >>> edit_context(mixed, prior.parse("sin((x + 1.0))"), 2)[1]  # no arcsin(y): (add, slot 0)
    (0, 0)
    """
    targets = mixed.edit_context(phi, v)
    if targets is not None:
        return targets, None
    return mixed.context, parent_slot(phi, v)


def neural_edit(rng: np.random.Generator, ctx: Context, state: GibbsState, site: SiteInfo,
                view: ProgramLikelihood | None) -> tuple[GibbsState, MoveInfo]:
    """The neural edit move Δφ: pick a node v uniformly, redraw its subtree T' from the
    network's subtree decoder with v's budgets, mixed with the budgeted prior
    (q_e(T) = (1 − w) q_θ(T | D_v, A_v, b, s) + w p_b(T | A_v)); accept with
    min(1, p(φ') N(φ) q_e(T_v) / (p(φ) N(φ') q_e(T'))).

    D_v conditions the decoder on the rest of the program: the data set (x, z_v) of v's
    targets (:meth:`~inference.amortized.mixture.MixedProposal.edit_context`: what T_v
    should output given the other nodes), decoded as the root of A_v; where v has no
    targets, the data (x, y) decoded at v's child slot. Both depend on φ only outside T_v,
    so the reverse move (T_v redrawn in φ') sees the same D_v and the ratio is exact
    whatever the training."""
    mixed = conditioned_proposal(ctx, site)
    if mixed is None:
        return state, REJECTED
    prior = site.fn
    phi: Program = state.values[site.name]
    v = int(rng.integers(phi.size))
    a = prior.grammar.productions[phi.prods[v]].lhs
    b, s = budgets(prior, phi, v)
    network = mixed.proposal.network
    data, slot = edit_context(mixed, phi, v)
    log_mass = prior.tables.log_mass(a, b, s)
    w = mixed.prior_weight

    def log_q(prods: tuple[int, ...], values: tuple[Any, ...]) -> float:
        by_prior = float(prior.subtree_log_prob(prods, values) - log_mass)
        if w >= 1.0:
            return by_prior
        by_net = network.subtree_log_prob(data, prods, values, a, b, s, slot)
        return float(np.logaddexp(math.log1p(-w) + by_net, math.log(w) + by_prior))

    if rng.random() < w:
        new = prior.sample_subtree(rng, a, b, s)
    else:
        new = network.sample_subtree(rng, data, a, b, s, slot)[:2]
    return swap_subtree(rng, ctx.target, state, site.name, v, new, log_q, view)


def neural(rng: np.random.Generator, ctx: Context, state: GibbsState, site: SiteInfo,
           view: ProgramLikelihood | None) -> tuple[GibbsState, MoveInfo]:
    """The neural independence move: φ' ~ q_mix(· | x, y), the trained proposal of
    ``ctx.amortized`` on the model's data mixed with the prior, accepted with
    min(1, p(φ') q_mix(φ) / (p(φ) q_mix(φ'))). Exact whatever the network's training (an
    untrained one too: q_mix has the prior's support); a no-op on a program site the
    proposal was not trained for."""
    mixed = conditioned_proposal(ctx, site)
    if mixed is None:
        return state, REJECTED
    phi2, log_q2 = mixed.sample(rng)
    log_q1 = mixed.log_prob(state.values[site.name])
    scored = view.log_joint(phi2) if view is not None else None
    return accept(rng, ctx.target, state, site.name, phi2, log_q1 - log_q2, scored)


STRUCTURE_MOVES: dict[str, StructureMove] = {name: tree_move(name) for name in MOVES}
STRUCTURE_MOVES["neural"] = neural
STRUCTURE_MOVES["neural_edit"] = neural_edit


def library_or_regenerate(rng: np.random.Generator, ctx: Context, state: GibbsState,
                          site: SiteInfo, view: ProgramLikelihood | None
                          ) -> tuple[GibbsState, MoveInfo]:
    """The library move (:func:`~inference.mcmc.blocks.semantic.library`) where the
    incremental likelihood lets it read the data, else a regenerate move; which one runs
    depends only on the other sites' values (through the view), so the kernel is a fixed
    mixture during the move and stays exact."""
    data = library_data(view)
    if data is None:
        return STRUCTURE_MOVES["regenerate"](rng, ctx, state, site, view)
    if ctx.options.library_tries > 1:
        assert view is not None
        return library_tries(rng, ctx, state, site, view, data)
    return library(rng, ctx, state, site, view, data)


STRUCTURE_MOVES["library"] = library_or_regenerate


def assemble_or_regenerate(rng: np.random.Generator, ctx: Context, state: GibbsState,
                           site: SiteInfo, view: ProgramLikelihood | None
                           ) -> tuple[GibbsState, MoveInfo]:
    """The library move with assembled subtrees (:mod:`inference.mcmc.blocks.assemble`)
    where the incremental likelihood allows it, else a regenerate move."""
    data = library_data(view)
    if data is None:
        return STRUCTURE_MOVES["regenerate"](rng, ctx, state, site, view)
    return library(rng, ctx, state, site, view, data, propose=assembled_subtree)


STRUCTURE_MOVES["assemble"] = assemble_or_regenerate


def grow_or_insert(rng: np.random.Generator, ctx: Context, state: GibbsState,
                   site: SiteInfo, view: ProgramLikelihood | None
                   ) -> tuple[GibbsState, MoveInfo]:
    """The grow move (:func:`~inference.mcmc.blocks.semantic.grow`) where the incremental
    likelihood lets it read the data, else an insert/delete move (a fixed mixture during
    the move, as for :func:`library_or_regenerate`)."""
    data = library_data(view)
    if data is None:
        return STRUCTURE_MOVES["insert_delete"](rng, ctx, state, site, view)
    return grow(rng, ctx, state, site, view, data)


STRUCTURE_MOVES["grow"] = grow_or_insert
"""The move table of the program block: name → structure move."""


def laplace_constants(rng: np.random.Generator, ctx: Context, state: GibbsState,
                      site: SiteInfo, view: ProgramLikelihood
                      ) -> tuple[GibbsState, MoveInfo]:
    """Independence move: all constants of the current shape from its Laplace fit."""
    phi: Program = state.values[site.name]
    phi2, log_q_c2 = draw_constants(rng, ctx, view, site, phi)
    if phi2 is None:
        return state, INVALID
    ratio = constants_log_q(ctx, view, site, phi) - log_q_c2
    return accept(rng, ctx.target, state, site.name, phi2, ratio, view.log_joint(phi2))


def constant_rw(rng: np.random.Generator, ctx: Context, state: GibbsState, site: SiteInfo,
                adapting: bool, view: ProgramLikelihood | None = None
                ) -> tuple[GibbsState, MoveInfo]:
    """Symmetric Gaussian random walk on one constant, scale ``step_size["<site>.rw"]``."""
    phi: Program = state.values[site.name]
    c = phi.constants
    key = f"{site.name}.rw"
    c[int(rng.integers(len(c)))] += state.step_size[key] * rng.standard_normal()
    phi2 = phi.with_constants(c)
    scored = view.log_joint(phi2) if view is not None else None
    new, info = accept(rng, ctx.target, state, site.name, phi2, 0.0, scored)
    if adapting:
        adapt(new.step_size, key, info.alpha, 0.44, state.iteration)
    return new, info


def step(rng: np.random.Generator, ctx: Context, state: GibbsState, site: SiteInfo,
         adapting: bool) -> tuple[GibbsState, BlockInfo]:
    """One update of the program at ``site`` (module docstring)."""
    options = ctx.options
    alphas: list[float] = []
    invalid = 0
    first: tuple[str, bool] | None = None
    view = ctx.workspace.view(ctx.target, site, state.values)
    for _ in range(options.program_moves):
        name = pick_move(rng, ctx.moves)
        before = state.values
        state, info = STRUCTURE_MOVES[name](rng, ctx, state, site, view)
        if view is not None and view.noise is not None and info.accepted and \
                state.values[view.noise.site] is not before[view.noise.site]:
            view = ctx.workspace.view(ctx.target, site, state.values)  # a joint move
        alphas.append(info.alpha)
        invalid += info.invalid
        if first is None:
            first = (name, info.accepted)
        if state.values[site.name].num_constants:
            if view is not None and rng.random() < options.refit:
                state, info = laplace_constants(rng, ctx, state, site, view)
            else:
                state, info = constant_rw(rng, ctx, state, site, adapting, view)
            alphas.append(info.alpha)
            invalid += info.invalid
    if state.values[site.name].num_constants:
        state, info = mala(rng, ctx, state, site, adapting, view)
        alphas.append(info.alpha)
        invalid += info.invalid
    move, accepted = first or ("", False)
    return state, BlockInfo(tuple(alphas), invalid, move, accepted)


def check_structure_weights(weights: Mapping[str, float], allowed: Collection[str]) -> None:
    """Raise a PPLError unless ``weights`` maps names in ``allowed`` to weights >= 0, not
    all zero."""
    unknown = set(weights) - set(allowed)
    if unknown or not weights or any(not (w >= 0) for w in weights.values()) \
            or sum(weights.values()) <= 0:
        raise PPLError(f"structure_weights must map moves {sorted(allowed)} to "
                       f"weights >= 0 (not all zero); got {weights}.")
