"""The discrete block: a uniform proposal over the support for one element of a discrete
site (symmetric, so the ratio is the log joint's alone)."""

from __future__ import annotations

import numpy as np

from inference.mcmc.blocks.base import BlockInfo, Context, GibbsState, MoveInfo, accept
from inference.target import SiteInfo

__all__ = ["propose", "step"]


def propose(rng: np.random.Generator, ctx: Context, state: GibbsState, site: SiteInfo
            ) -> tuple[GibbsState, MoveInfo]:
    """One element of ``site`` set to a uniform draw from the support; MH accept."""
    support = site.fn.enumerate_support(expand=False).reshape(-1)
    v = state.values[site.name]
    flat = v.reshape(-1).clone()
    i = int(rng.integers(flat.numel())) if flat.numel() else 0
    flat[i] = support[int(rng.integers(support.numel()))]
    return accept(rng, ctx.target, state, site.name, flat.reshape(v.shape), 0.0)


def step(rng: np.random.Generator, ctx: Context, state: GibbsState, site: SiteInfo,
         adapting: bool) -> tuple[GibbsState, BlockInfo]:
    """A ``DiscreteMH`` block's update of one discrete site."""
    state, info = propose(rng, ctx, state, site)
    return state, BlockInfo((info.alpha,), info.invalid)
