"""Continuous updates: the random walk of a continuous site (an ``RW`` block) and MALA on a
program's constants (the move that ends a program block).

The random walk moves a site in unconstrained space u = T⁻¹(v), u' = u + s·ε, and the
Jacobian of T enters the ratio: log |det J_T(u')| − log |det J_T(u)|. MALA proposes
c' ~ N(c + ε²/2 ∇log p(c), ε² I) and puts both Gaussian proposal densities in the ratio.
Step sizes adapt (Robbins–Monro) only during warmup.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch.distributions import biject_to

from inference.mcmc.blocks.base import (
    INVALID,
    BlockInfo,
    Context,
    GibbsState,
    MoveInfo,
    accept,
    adapt,
)
from inference.mcmc.fastlik import ProgramLikelihood
from inference.target import SiteInfo
from ppl.program import BoundProgram, Program
from ppl.trace import DISCRETE, PROGRAM

__all__ = ["draw_initial", "grad", "mala", "random_walk", "step", "unconstrained_shape"]


def unconstrained_shape(t: Any, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of a value of ``shape`` on the unconstrained side of transform ``t``."""
    return tuple(t.inverse_shape(torch.Size(shape))) if hasattr(t, "inverse_shape") else shape


def draw_initial(rng: np.random.Generator, site: SiteInfo) -> Any:
    """A random initial value of any site: a program from its prior, a discrete value
    uniform over the support, anything else uniform in (−2, 2) on the unconstrained
    scale."""
    if site.kind == PROGRAM:
        return site.fn.sample_program(rng)
    if site.kind == DISCRETE:
        support = site.fn.enumerate_support(expand=True)
        idx = rng.integers(support.shape[0], size=site.shape or None)
        flat = support.reshape(support.shape[0], -1)
        pick = torch.as_tensor(np.asarray(idx).reshape(-1))
        return flat[pick, torch.arange(flat.shape[1])].reshape(site.shape)
    t = biject_to(site.fn.support)
    u = torch.as_tensor(rng.uniform(-2, 2, size=unconstrained_shape(t, site.shape)))
    return t(u)


def random_walk(rng: np.random.Generator, ctx: Context, state: GibbsState, site: SiteInfo,
                adapting: bool) -> tuple[GibbsState, MoveInfo]:
    """Gaussian random walk of ``site`` in unconstrained space, scale ``step_size[site]``,
    the transform's log-Jacobian in the ratio."""
    t = biject_to(site.fn.support)
    v = state.values[site.name]
    u = t.inv(v)
    u2 = u + state.step_size[site.name] * torch.as_tensor(rng.standard_normal(tuple(u.shape)),
                                                           dtype=u.dtype)
    v2 = t(u2)
    ratio = float(t.log_abs_det_jacobian(u2, v2).sum() - t.log_abs_det_jacobian(u, v).sum())
    new, info = accept(rng, ctx.target, state, site.name, v2, ratio)
    if adapting:
        target_rate = 0.44 if u.numel() == 1 else 0.234
        adapt(new.step_size, site.name, info.alpha, target_rate, state.iteration)
    return new, info


def step(rng: np.random.Generator, ctx: Context, state: GibbsState, site: SiteInfo,
         adapting: bool) -> tuple[GibbsState, BlockInfo]:
    """An ``RW`` block's update of one continuous site."""
    state, info = random_walk(rng, ctx, state, site, adapting)
    return state, BlockInfo((info.alpha,), info.invalid)


def grad(ctx: Context, state: GibbsState, site: SiteInfo, phi: Program, c: np.ndarray,
         view: ProgramLikelihood | None = None) -> tuple[float, np.ndarray]:
    """log joint at constants c and its gradient d/dc (constant prior analytically).

    With the incremental view the likelihood's gradient is a central difference,
    β (log L(c + h e_j) − log L(c − h e_j)) / 2h with h_j = 1e-6·max(1, |c_j|), all 2k
    points in one batched evaluation; without it, torch autograd through the model. Both
    are deterministic functions of c, which is all MALA's Hastings ratio needs."""
    if view is not None:
        h = 1e-6 * np.maximum(1.0, np.abs(c))
        k = len(c)
        ll = view.log_lik_batch(phi, np.concatenate([c + np.diag(h), c - np.diag(h)]))
        with np.errstate(all="ignore"):
            g = view.beta * (ll[:k] - ll[k:]) / (2 * h)
        g = np.where(np.isfinite(ll[:k]) & np.isfinite(ll[k:]), g, np.nan)
        return view.log_joint(phi), g + site.fn.constant_prior.grad_log_prob(c)
    leaf = torch.tensor(c, dtype=torch.float64, requires_grad=True)
    lj, g = ctx.target.log_joint_grad(state.values, site.name, BoundProgram(phi, leaf), leaf)
    return lj, g + site.fn.constant_prior.grad_log_prob(c)


def mala(rng: np.random.Generator, ctx: Context, state: GibbsState, site: SiteInfo,
         adapting: bool, view: ProgramLikelihood | None = None
         ) -> tuple[GibbsState, MoveInfo]:
    """MALA on all constants of the program at ``site``, step ``step_size["<site>.mala"]``."""
    phi: Program = state.values[site.name]
    key = f"{site.name}.mala"
    eps = state.step_size[key]
    c = phi.constants
    _, g = grad(ctx, state, site, phi, c, view)
    if not np.all(np.isfinite(g)):
        return state, INVALID
    with np.errstate(over="ignore", invalid="ignore"):
        mean = c + 0.5 * eps**2 * g
        c2 = mean + eps * rng.standard_normal(len(c))
    phi2 = phi.with_constants(c2) if np.all(np.isfinite(c2)) else None
    if phi2 is None:
        return state, INVALID
    lj2, g2 = grad(ctx, state, site, phi2, c2, view)
    with np.errstate(over="ignore", invalid="ignore"):
        log_q_fwd = -np.sum((c2 - mean) ** 2) / (2 * eps**2)
        log_q_rev = -np.sum((c - c2 - 0.5 * eps**2 * g2) ** 2) / (2 * eps**2)
    ratio = float(log_q_rev - log_q_fwd)
    if not (math.isfinite(lj2) and math.isfinite(ratio)):
        new, info = state, INVALID
    else:
        new, info = accept(rng, ctx.target, state, site.name, phi2, ratio, scored=lj2)
    if adapting:
        adapt(new.step_size, key, info.alpha, 0.57, state.iteration)
    return new, info
