"""The root share of the library move's node pick (``library_root``): with probability ρ the
move works at the root (a whole program proposed from the data), else at a node drawn
uniformly, and the pick enters the Hastings ratio as P(v | φ) = ρ 1[v = root] + (1 − ρ) / N(φ)
(TESTING.md P1).

- on the 302-program grammar the move's exact transition matrix leaves π invariant;
- a broken twin that picks with the root share but keeps the uniform pick's ratio does not;
- with constants (arith), detailed balance holds pair by pair, at the root and below it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import ppl
from inference.config import McmcOptions
from inference.mcmc.blocks import semantic
from inference.mcmc.blocks.base import GibbsState
from inference.mcmc.library import SubtreeLibrary
from tests.inference.mcmc.test_library import (
    TINY,
    WRAP,
    Mover,
    X,
    balance_gap,
    log_joint,
    q_v,
    tiny_matrix,
)

ROOT = 0.3
"""``library_root`` of the tests."""


class RootScript:
    """A stand-in Generator for a move with a root share: the root coin (never the root
    by the coin), a node index, the library branch, the accept uniform."""

    def __init__(self, node: int) -> None:
        self.node, self.uniforms = node, [0.99, 0.99, 0.5]

    def integers(self, n: int) -> int:
        return self.node

    def random(self) -> float:
        return self.uniforms.pop(0)


class RootMover(Mover):
    def alpha(self, phi: ppl.Program, v: int, tree: Any) -> float:
        self.tree = tree
        state = GibbsState({"f": phi}, log_joint(self.prior, phi), {}, 0)
        script = RootScript(v) if self.ctx.options.library_root > 0 else None
        if script is None:
            return super().alpha(phi, v, tree)
        _, info = semantic.library(script, self.ctx, state, self.site,
                                   self.view)  # type: ignore[arg-type]
        return float(info.alpha)


def pick(phi: ppl.Program, v: int, share: float) -> float:
    """P(v | φ) of the pick with root share ``share``."""
    return (share if v == 0 else 0.0) + (1 - share) / phi.size


def matrix(monkeypatch: pytest.MonkeyPatch, options: McmcOptions
           ) -> tuple[np.ndarray, np.ndarray]:
    """(π, P) of the library move run with ``options``, nodes picked with the root share
    ROOT (as the move with ``library_root=ROOT`` picks them)."""
    return tiny_matrix(monkeypatch, options.library_wrap, options,
                       RootMover(TINY, monkeypatch, options), lambda phi, v: pick(phi, v, ROOT))


@pytest.mark.parametrize("wrap", [0.0, WRAP])
def test_the_root_share_is_exactly_stationary(monkeypatch: pytest.MonkeyPatch, wrap: float
                                              ) -> None:
    pi, p = matrix(monkeypatch, McmcOptions(library_root=ROOT, library_wrap=wrap))
    assert np.all(p >= -1e-12)
    assert np.abs(pi @ p - pi).max() < 1e-12


def test_without_the_picks_ratio_the_move_is_not_stationary(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Broken twin: nodes picked with the root share, the ratio of the uniform pick."""
    pi, p = matrix(monkeypatch, McmcOptions(library_root=0.0))
    assert np.abs(pi @ p - pi).max() > 1e-6


@pytest.mark.parametrize(("text", "v", "new"), [
    ("(x + 0.3)", 0, "(x * sin(x))"),            # the root: sizes 3 and 4
    ("(x + 0.3)", 0, "exp((x * 0.7))"),          # the root, a wrapped entry
    ("(x * sin(x))", 2, "(x * 1.7)"),            # below the root
])
def test_detailed_balance_with_the_root_share(monkeypatch: pytest.MonkeyPatch, text: str,
                                              v: int, new: str) -> None:
    prior = ppl.ProgramPrior("arith", inputs=["x"], max_depth=4)
    lib = SubtreeLibrary(prior, 0, {"x": X})
    mover = RootMover(prior, monkeypatch, McmcOptions(library_wrap=WRAP, library_root=ROOT))
    gap = balance_gap(prior, text, v, new, lambda phi, u: q_v(prior, lib, phi, u), mover,
                      lambda phi, u: pick(phi, u, ROOT))
    assert abs(gap) < 1e-9
