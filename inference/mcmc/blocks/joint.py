"""Structure moves that redraw the noise scale with the program (option ``joint_noise``).

With a learned noise scale σ, a structure move scored at the current σ can gain at most
about N/2 nats of likelihood: σ sits at the scale of the current residuals, S/σ² ≈ N, and
even a perfect fit only removes that term. On a small data set (N = 20: 10 nats) a jump to
a much better law that costs more than that in prior (four or five nodes) is almost never
accepted, however well it fits; the chain has to creep there through laws that each halve
the residuals, and the noise block only shrinks σ after the program has improved. Scored
with σ moved to the new residuals' scale, the same jump gains (N/2) log(S / S') instead.

A joint move draws φ' from the structure move as usual, then σ' from a law r(· | φ')
fixed by φ''s residuals: log σ' ~ Normal(log m, τ²) with

    m = max(√(S'/N) − c, c / N),   τ = 1 if √(S'/N) < 2c else clip(1/√(βN), 0.25, 2)

(S': φ''s residual sum of squares on the N linked points, c: the floor offset of the
scale σ + c; the two regimes are "the residuals set σ" and "the floor does"). The reverse
draws σ from r(· | φ) and the structure move's reverse path, any of its densities that
depend on σ read at σ' (the library's fit scale, say). The ratio is

    p(φ', σ') q(φ | φ', σ') r(σ | φ) / (p(φ, σ) q(φ' | φ, σ) r(σ' | φ')),

exact for any prior on σ. Where r is not defined at either end (S and c both 0, or a
non-finite S) the joint move is rejected, in both directions alike. Which moves are joint
is a coin of probability ``joint_noise`` per move, independent of the state.

Examples
--------
>>> law = noise_law(sse=0.08, n=20, offset=0.0, beta=1.0)
>>> round(math.exp(law[0]), 6), law[1]
(0.063246, 0.25)
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import torch

from inference.mcmc.blocks.base import INVALID, REJECTED, Context, GibbsState, MoveInfo
from inference.mcmc.fastlik import ProgramLikelihood
from ppl.program import Program

__all__ = ["NoiseDraw", "accept_joint", "draw_noise", "joint_move", "noise_law",
           "noise_log_q"]

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class NoiseDraw(NamedTuple):
    """σ' drawn for a proposed program, and what scoring there needs."""

    value: Any
    """σ' as the site's tensor."""
    view: ProgramLikelihood
    """The program's view at σ' (no model run)."""
    log_q: float
    """log r(σ' | φ')."""


def noise_law(sse: float, n: int, offset: float, beta: float) -> tuple[float, float] | None:
    """(log m, τ) of r (module docstring) for residuals with sum of squares ``sse`` on
    ``n`` points, floor ``offset`` and temperature ``beta``; None where it is not defined."""
    if not (math.isfinite(sse) and sse >= 0 and n > 0 and beta > 0 and offset >= 0):
        return None
    rms = math.sqrt(sse / n)
    m = max(rms - offset, offset / n)
    if not m > 0:
        return None
    tau = 1.0 if rms < 2 * offset else min(2.0, max(0.25, 1.0 / math.sqrt(beta * n)))
    return math.log(m), tau


def _law(view: ProgramLikelihood, program: Program) -> tuple[float, float] | None:
    link = view.noise
    assert link is not None
    sse, n = view.noise_sse(program)
    return noise_law(sse, n, float(link.offset), float(view.beta))


def noise_log_q(view: ProgramLikelihood, program: Program, sigma: float) -> float:
    """log r(σ | φ) (−inf outside σ > 0; NaN where r is not defined)."""
    return _log_r(_law(view, program), sigma)


def _log_r(law: tuple[float, float] | None, sigma: float) -> float:
    if law is None:
        return math.nan
    if not sigma > 0:
        return -math.inf
    z = (math.log(sigma) - law[0]) / law[1]
    return -0.5 * z * z - math.log(law[1]) - LOG_SQRT_2PI - math.log(sigma)


def draw_noise(rng: np.random.Generator, view: ProgramLikelihood, program: Program,
               current: Any) -> NoiseDraw | None:
    """σ' ~ r(· | φ') for the proposed ``program`` (``current``: σ's tensor, for its dtype
    and shape), with the view at σ'; None where r is not defined."""
    law = _law(view, program)
    if law is None:
        return None
    sigma = math.exp(law[0] + law[1] * rng.standard_normal())
    if not (math.isfinite(sigma) and sigma > 0):
        return None
    value = torch.as_tensor(sigma, dtype=current.dtype).reshape(current.shape)
    log_q = _log_r(law, float(value.detach()))  # at the value as stored
    return NoiseDraw(value, view.with_noise(value), log_q)


def joint_move(rng: np.random.Generator, ctx: Context, view: ProgramLikelihood | None
               ) -> bool:
    """Whether this structure move is joint: a view linked to a noise scale and a coin of
    probability ``joint_noise`` (drawn only then, so chains without a link are unchanged)."""
    return (view is not None and view.noise is not None and ctx.options.joint_noise > 0
            and rng.random() < ctx.options.joint_noise)


def accept_joint(rng: np.random.Generator, ctx: Context, state: GibbsState, site: str,
                 view: ProgramLikelihood, program: Program, draw: NoiseDraw | None,
                 log_q_ratio: float) -> tuple[GibbsState, MoveInfo]:
    """The MH step of a joint proposal (``program``, σ' of ``draw``): ``log_q_ratio`` is the
    structure move's log q(φ | φ', σ') − log q(φ' | φ, σ); r's ratio is added here."""
    if draw is None:
        return state, REJECTED
    link = view.noise
    assert link is not None
    sigma = float(torch.as_tensor(state.values[link.site]).detach())
    log_r_back = noise_log_q(view, state.values[site], sigma)
    ratio = log_q_ratio + log_r_back - draw.log_q
    if math.isnan(ratio):
        return state, REJECTED
    lj = draw.view.log_joint(program)
    if not math.isfinite(lj):
        return state, INVALID
    log_alpha = lj - state.log_joint + ratio
    alpha = 1.0 if log_alpha >= 0 else math.exp(log_alpha)
    if rng.random() < alpha:
        values = dict(state.values)
        values[site] = program
        values[link.site] = draw.value
        ctx.workspace.offer(site, view, draw.value, draw.view)
        return state._replace(values=values, log_joint=lj), MoveInfo(alpha, True, 0)
    return state, MoveInfo(alpha, False, 0)
