"""The NUTS block: one transition of the backend's NUTS on a block of continuous sites,
the other sites held fixed (:mod:`inference.mcmc.nuts_block` bridges the model's log
density to Pyro's or NumPyro's sampler; NUTS itself is theirs)."""

from __future__ import annotations

import math

import numpy as np

from inference.mcmc.blocks.base import BlockInfo, Context, GibbsState

__all__ = ["step"]


def step(rng: np.random.Generator, ctx: Context, state: GibbsState, index: int,
         adapting: bool) -> tuple[GibbsState, BlockInfo]:
    """One NUTS transition of NUTS block ``index``; the log joint is rescored after it.
    (Adaptation runs inside the backend's kernel during its warmup window.)"""
    values, info = ctx.nuts_blocks[index].step(rng, state.nuts[index], state.values)
    lj = ctx.target.log_joint(values)
    if not math.isfinite(lj):  # NUTS never moves to an invalid state; keep the old one
        return state, BlockInfo((0.0,), diverging=info.diverging)
    return (state._replace(values=values, log_joint=lj),
            BlockInfo((info.accept_prob,), diverging=info.diverging))
