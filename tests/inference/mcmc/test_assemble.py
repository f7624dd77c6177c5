"""Assembled subtrees (inference/mcmc/blocks/assemble.py): the proposal's density is the
law of its draws (so the move's ratio, which uses it both ways, is exact)."""

from __future__ import annotations

from typing import Any

import numpy as np

from inference.config import McmcOptions, NutsOptions
from inference.mcmc.blocks.assemble import assembled_subtree
from inference.mcmc.blocks.base import Context, Workspace
from inference.mcmc.exact import structures
from inference.target import SiteInfo
from ppl.trace import PROGRAM
from tests.inference.mcmc.test_library import SIGMA, TINY, X, Y
from tests.inference.mcmc.test_library import TableTarget
from tests.inference.mcmc.test_tries import RowsView as View
from tests.stats.discrete import gtest_pvalue


def proposal(depth: int) -> Any:
    ctx = Context(TableTarget(TINY), McmcOptions(), NutsOptions(), Workspace(0))
    site = SiteInfo("f", PROGRAM, TINY, ())
    return assembled_subtree(ctx, site, View(TINY), {"x": X}, 0, Y, SIGMA, depth, None)


def test_the_density_sums_to_the_mass_of_proposals() -> None:
    log_q, draw = proposal(3)
    total = sum(np.exp(log_q(*t)) for t in structures(TINY, 0, 3, None))
    rng = np.random.default_rng(0)
    none = sum(draw(rng) is None for _ in range(2000)) / 2000
    assert abs(total + none - 1.0) < 0.03
    assert total <= 1.0 + 1e-9


def test_draws_follow_the_density() -> None:
    log_q, draw = proposal(3)
    rng = np.random.default_rng(1)
    counts: dict[Any, int] = {}
    for _ in range(20_000):
        t = draw(rng)
        if t is not None:
            counts[t] = counts.get(t, 0) + 1
    probs = {t: float(np.exp(log_q(*t))) for t in structures(TINY, 0, 3, None)}
    mass = sum(probs.values())
    probs = {t: p / mass for t, p in probs.items()}
    assert gtest_pvalue(counts, probs, top_k=25) > 0.001
