"""Tests of inference/mcmc/blocks/ (issue 9, item 3): the MH step, the move table, the
workspace, and the composition in ``Gibbs``.

The blocks' statistical correctness is tested where the moves are (P1 in
test_moves_exact.py, P2 in test_posterior_enumeration.py, P3 in test_continuous.py); here,
the contracts: a block is a function of (rng, ctx, state), a move added to the table is
used by name, caches never change the chain, and the kernel's only mutable object is its
workspace.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import ppl
from inference.config import McmcOptions
from inference.mcmc.blocks import program
from inference.mcmc.blocks.base import (
    INVALID,
    BlockInfo,
    GibbsState,
    MoveChoice,
    MoveInfo,
    Workspace,
    accept,
    pick_move,
)
from inference.mcmc.gibbs import Gibbs
from inference.target import Target
from ppl import dist
from ppl.errors import PPLError

PRIOR = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=3)
X = np.linspace(-1.0, 1.0, 8)


def model(x, y=None):
    f = ppl.sample("f", PRIOR)
    sigma = ppl.sample("sigma", dist.HalfNormal(1.0))
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), sigma), obs=y)


def kernel(**options):
    return Gibbs(Target(model, (X,), {"y": X + 1.0}),
                 McmcOptions(**{"program_moves": 2, **options}))


class FixedTarget:
    """A stand-in target whose log joint is read from a table."""

    def __init__(self, table):
        self.table = table

    def log_joint(self, values):
        return self.table[values["z"]]


def test_accept_is_the_metropolis_hastings_rule() -> None:
    target = FixedTarget({"a": 0.0, "b": math.log(0.25), "bad": -math.inf})
    state = GibbsState({"z": "a"}, 0.0, {}, 0)
    rng = np.random.default_rng(0)
    moves = [accept(rng, target, state, "z", "b", 0.0) for _ in range(4000)]
    assert all(info.alpha == pytest.approx(0.25) for _, info in moves)
    rate = np.mean([info.accepted for _, info in moves])
    assert abs(rate - 0.25) < 4 * math.sqrt(0.25 * 0.75 / 4000)
    up, info = accept(rng, target, GibbsState({"z": "b"}, math.log(0.25), {}, 0), "z", "a",
                      0.0)
    assert info == MoveInfo(1.0, True, 0) and up.values["z"] == "a"
    # the Hastings term enters the ratio: log q(x | x') − log q(x' | x) = log 4 → α = 1
    assert accept(rng, target, state, "z", "b", math.log(4.0))[1].alpha == 1.0
    same, bad = accept(rng, target, state, "z", "bad", 0.0)
    assert bad == INVALID and same is state


def test_pick_move_follows_the_weights() -> None:
    rng = np.random.default_rng(1)
    weights = {"a": 1.0, "b": 3.0, "c": 0.0}
    picks = [pick_move(rng, MoveChoice.of(weights)) for _ in range(8000)]
    assert "c" not in picks
    assert abs(picks.count("b") / 8000 - 0.75) < 4 * math.sqrt(0.75 * 0.25 / 8000)


def test_a_move_added_to_the_table_is_used_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def stay(rng, ctx, state, site, view):
        calls.append(site.name)
        return state, MoveInfo(0.5, False, 0)

    monkeypatch.setitem(program.STRUCTURE_MOVES, "stay", stay)
    k = kernel(structure_weights={"stay": 1.0})
    rng = np.random.default_rng(0)
    state = k.init(rng)
    before = state.values["f"]
    state, info = k.step(rng, state)
    assert calls == ["f", "f"]  # program_moves=2
    assert info.move == "stay" and not info.accepted
    assert state.values["f"] is before


def test_unknown_moves_are_refused_by_name() -> None:
    with pytest.raises(PPLError, match="structure_weights must map moves"):
        kernel(structure_weights={"teleport": 1.0})
    with pytest.raises(PPLError, match="structure_weights"):
        kernel(structure_weights={"regenerate": 0.0})


def test_the_kernel_keeps_its_caches_in_one_workspace() -> None:
    k = kernel()
    rng = np.random.default_rng(2)
    state = k.init(rng)
    for _ in range(5):
        state, _ = k.step(rng, state)
    assert isinstance(k.workspace, Workspace) and k.context.workspace is k.workspace
    assert sum(hits + misses for hits, misses in k.workspace.stats.values()) > 0
    assert set(vars(k)) == {"target", "options", "backend", "sites", "noise", "plan",
                            "workspace", "context"}


def test_same_chain_with_and_without_caches() -> None:
    def run(cache_size):
        k = kernel(cache_size=cache_size)
        rng = np.random.default_rng(3)
        state = k.init(rng)
        out = []
        for i in range(15):
            state, info = k.step(rng, state, adapt=i < 5)
            out.append((state.values["f"], float(state.values["sigma"]), state.log_joint,
                        info.move, info.accepted))
        return out

    assert run(4096) == run(0)


def test_block_info_composes_into_the_sweep_info() -> None:
    k = kernel()
    rng = np.random.default_rng(4)
    state = k.init(rng)
    new, info = k.step(rng, state)
    assert new.iteration == state.iteration + 1
    assert 0.0 <= info.acceptance_rate <= 1.0
    assert info.move in program.STRUCTURE_MOVES
    assert BlockInfo(()).move == "" and not BlockInfo(()).diverging
