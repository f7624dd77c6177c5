"""The collapsed mode: program structures scored with their constants integrated out
(an approximation, by Laplace evidence).

With the other sites θ fixed, the structure S of a program site is updated by the structure
moves (constants left out of their densities, MOVES.md move 5) against

    log π̃(S | θ) = rest + log p(S) + log Z̃(S),
    log Z̃(S) = β log L(c*) + log p(c*) + (k/2) log 2π − ½ log det H        (k > 0)

(:meth:`inference.mcmc.laplace.ConstantFitter.evidence`; ``rest`` is every factor that does
not involve the program, p(S) the prior of the structure with the constants' densities
integrated out, c* the posterior mode and H the Gauss–Newton curvature there). A structure
without constants has Z̃(S) = L(S)^β exactly. After the structure moves, and whenever a move
is accepted, the constants are drawn from N(c*, H⁻¹): the Laplace approximation of
p(c | S, θ, y), truncated to constants that give a valid program (up to ``DRAW_TRIES``
tries). Then the other sites' updates see a full program.

The sweep is a partially collapsed Gibbs sampler (structure | θ with c integrated out, then
c | S, θ, then θ | S, c). It is exact when the Laplace approximation is (a program linear in
its constants, Normal observations, Normal constant prior); otherwise it samples an
approximation of the posterior, and every result it produces says so.

The block (``step``) makes ``program_moves`` collapsed structure moves, then draws the
constants from N(c*, H⁻¹) given the structure and the other sites.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from inference.mcmc.blocks.base import BlockInfo, Context, GibbsState, pick_move
from inference.mcmc.fastlik import ProgramLikelihood
from inference.mcmc.laplace import ConstantFitter, Evidence
from inference.mcmc.moves import MOVES, RandomChooser
from inference.target import SiteInfo
from ppl.program import Program

__all__ = ["APPROXIMATION", "DRAW_TRIES", "CollapsedStep", "draw_constants", "score", "step",
           "structure_move"]

APPROXIMATION = "collapsed: Laplace"
"""How the plan string and the Posterior's attrs name the approximation."""
DRAW_TRIES = 20
"""Draws of the constants from N(c*, H⁻¹) before giving up on a valid program."""


class CollapsedStep(NamedTuple):
    """What one collapsed structure move did."""

    program: Program | None
    """The new program (constants drawn), or None when the move was rejected."""
    alpha: float
    """Acceptance probability of the structure move."""
    invalid: bool
    """Whether the proposal was invalid (−inf collapsed score or no valid constants)."""


def score(fitter: ConstantFitter, view: ProgramLikelihood, phi: Program
          ) -> tuple[float, Evidence]:
    """log π̃(S | θ) of φ's structure S (module docstring) and its Laplace evidence.

    Examples
    --------
    >>> import numpy as np, ppl
    >>> from ppl import dist
    >>> from inference.config import McmcOptions
    >>> from inference.mcmc.gibbs import Gibbs
    >>> from inference.target import Target
    >>> prior = ppl.ProgramPrior("arith", inputs=["x"], max_depth=3)
    >>> def model(x, y=None):
    ...     f = ppl.sample("f", prior)
    ...     with ppl.plate("d", len(x)):
    ...         ppl.sample("y", dist.Normal(f(x), 0.1), obs=y)
    >>> x = np.linspace(0.0, 1.0, 6)
    >>> kernel = Gibbs(Target(model, (x,), {"y": 2.0 * x}), McmcOptions(collapsed=True))
    >>> state = kernel.init(np.random.default_rng(0))
    >>> view = kernel.workspace.view(kernel.target, kernel.target.latents["f"], state.values)
    >>> fitter = kernel.workspace.fitter("f")
    >>> lin, _ = score(fitter, view, prior.parse("(x * 1.0)"))
    >>> sq, _ = score(fitter, view, prior.parse("(x * x)"))
    >>> bool(lin > sq)
    True
    """
    prior = view.prior
    if (prior.max_size is not None and phi.size > prior.max_size) or \
            (prior.max_depth is not None and phi.depth > prior.max_depth):
        return -math.inf, Evidence(-math.inf, None)
    log_struct = prior.subtree_log_prob(phi.prods, phi.values, False) - prior.log_normalizer
    ev = fitter.evidence(phi, view)
    total = view.rest + log_struct + ev.log_z
    return (total if math.isfinite(total) else -math.inf), ev


def draw_constants(rng: np.random.Generator, view: ProgramLikelihood, phi: Program,
                   ev: Evidence) -> Program | None:
    """φ with its constants drawn from N(c*, H⁻¹) of ``ev``, retried up to ``DRAW_TRIES``
    times until the program is valid on the data; None if no draw was valid. A program
    without constants is returned as is."""
    if ev.posterior is None:
        return phi if not any(isinstance(v, float) for v in phi.values) else None
    for _ in range(DRAW_TRIES):
        c = ev.posterior.sample(rng)
        if np.all(np.isfinite(c)):
            out = phi.with_constants(c)
            if math.isfinite(view.log_lik(out)):
                return out
    return None


def structure_move(rng: np.random.Generator, fitter: ConstantFitter,
                   view: ProgramLikelihood, phi: Program, name: str) -> CollapsedStep:
    """One structure move ``name`` of φ against the collapsed target, with

        α = min(1, π̃(S') p_s(S | S') / (π̃(S) p_s(S' | S)))

    (p_s: the structure-only proposal densities); on acceptance the constants of S' are
    drawn (:func:`draw_constants`)."""
    prop = MOVES[name](RandomChooser(rng), view.prior, phi, structural=True)
    if prop is None:
        return CollapsedStep(None, 0.0, False)
    new, ev = score(fitter, view, prop.program)
    if not math.isfinite(new):
        return CollapsedStep(None, 0.0, True)
    old, _ = score(fitter, view, phi)
    log_alpha = new - old + prop.log_q_rev - prop.log_q_fwd
    alpha = 1.0 if log_alpha >= 0 else math.exp(log_alpha)
    if rng.random() >= alpha:
        return CollapsedStep(None, alpha, False)
    phi2 = draw_constants(rng, view, prop.program, ev)
    return CollapsedStep(phi2, alpha, phi2 is None)


def step(rng: np.random.Generator, ctx: Context, state: GibbsState, site: SiteInfo,
         adapting: bool) -> tuple[GibbsState, BlockInfo]:
    """The collapsed block of program site ``site`` (module docstring)."""
    view = ctx.workspace.view(ctx.target, site, state.values)
    if view is None or not view.normal:
        # init checked the model fits the pattern; a view that fails its verification at
        # this state (round-off on an extreme program) skips the block this sweep only:
        # the next move of another site rebuilds it
        return state, BlockInfo((0.0,), 1)
    fitter = ctx.workspace.fitter(site.name)
    alphas: list[float] = []
    invalid = 0
    first: tuple[str, bool] | None = None
    for _ in range(ctx.options.program_moves):
        name = pick_move(rng, ctx.moves)
        out = structure_move(rng, fitter, view, state.values[site.name], name)
        alphas.append(out.alpha)
        invalid += out.invalid
        if out.program is not None:
            state = state._replace(values=dict(state.values, **{site.name: out.program}),
                                   log_joint=view.log_joint(out.program))
        first = first or (name, out.program is not None)
    phi = state.values[site.name]
    _, ev = score(fitter, view, phi)
    if ev.posterior is not None:
        phi2 = draw_constants(rng, view, phi, ev)
        if phi2 is not None:
            state = state._replace(values=dict(state.values, **{site.name: phi2}),
                                   log_joint=view.log_joint(phi2))
    move, accepted = first or ("", False)
    return state, BlockInfo(tuple(alphas), invalid, move, accepted)
