"""The library move with K tries (inference/mcmc/blocks/tries.py): multiple-try Metropolis
with an independent proposal, exact for every K (TESTING.md P1, P2).

- the choice (which try, its α) leaves π invariant exactly: the K-try kernel enumerated on a
  small space for K = 1, 2, 3; without the current state's weight in α it does not;
- the move weighs each try by π̃(T) / q_v(T) with π̃(T) = p(φ[v ← T]) / N(φ[v ← T]) and
  q_v the library move's own mixture, read from the move against the densities written
  out independently (tests/inference/mcmc/test_library.py);
- MCMC with only the K-try library move matches the enumerated posterior; a broken twin
  (the picked try always accepted) fails.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest

import ppl
from inference import infer
from inference.config import McmcOptions, NutsOptions
from inference.mcmc.blocks import semantic, tries
from inference.mcmc.blocks.base import Context, GibbsState, Workspace
from inference.mcmc.exact import structures
from inference.mcmc.library import SubtreeLibrary
from inference.target import SiteInfo
from ppl.trace import PROGRAM
from tests.inference.mcmc.test_library import (
    SIGMA,
    TINY,
    FakeView,
    TableTarget,
    X,
    Y,
    log_joint,
    model,
    p_value,
    q_v,
)
from tests.stats.discrete import gtest_pvalue


def kernel(pi: np.ndarray, q: np.ndarray, k: int, choose: Any = tries.selection
           ) -> np.ndarray:
    """The K-try transition matrix on a finite space: every K-tuple of tries drawn from q,
    the try picked and accepted as ``choose`` says."""
    m = len(pi)
    log_w = np.log(pi) - np.log(q)
    p = np.zeros((m, m))
    for x in range(m):
        for ys in itertools.product(range(m), repeat=k):
            prob = float(np.prod(q[list(ys)]))
            probs, alphas = choose(log_w[list(ys)], float(log_w[x]))
            for j, y in enumerate(ys):
                p[x, y] += prob * probs[j] * alphas[j]
        p[x, x] += 1.0 - p[x].sum()
    return p


@pytest.mark.parametrize("k", [1, 2, 3])
def test_the_choice_is_exactly_stationary(k: int) -> None:
    rng = np.random.default_rng(k)
    pi = rng.dirichlet(np.ones(5))
    q = rng.dirichlet(np.ones(5))
    p = kernel(pi, q, k)
    assert np.all(p >= -1e-12)
    assert np.abs(pi @ p - pi).max() < 1e-12
    assert np.abs(pi[:, None] * p - (pi[:, None] * p).T).max() < 1e-12  # reversible


def test_without_the_current_weight_the_choice_is_not_stationary() -> None:
    """Broken twin: the picked try accepted with Σ w / Σ_{j≠J} w (w of the current state
    left out: the reference set is the other tries only)."""
    def broken(log_w: np.ndarray, log_w_old: float) -> tuple[np.ndarray, np.ndarray]:
        w = np.exp(log_w - log_w.max())
        rest = np.array([np.delete(w, j).sum() for j in range(len(w))])
        return w / w.sum(), np.minimum(1.0, w.sum() / np.maximum(rest, 1e-300))

    rng = np.random.default_rng(2)
    pi, q = rng.dirichlet(np.ones(5)), rng.dirichlet(np.ones(5))
    p = kernel(pi, q, 2, broken)
    assert np.abs(pi @ p - pi).max() > 1e-4


class ForcedNode:
    """A Generator whose first ``integers`` call (the move's node) returns ``node``."""

    def __init__(self, node: int, seed: int = 0) -> None:
        self.node, self.rng, self.first = node, np.random.default_rng(seed), True

    def integers(self, *args: Any, **kwargs: Any) -> Any:
        if self.first:
            self.first = False
            return self.node
        return self.rng.integers(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.rng, name)


class RowsView(FakeView):
    """FakeView with the batched log-likelihood the K-try move reads."""

    def log_lik(self, phi: ppl.Program) -> float:
        return log_joint(self.prior, phi) - self.prior.log_density(phi)

    def log_lik_rows(self, outputs: np.ndarray) -> np.ndarray:
        lp = -0.5 * ((Y - outputs) / SIGMA) ** 2 - math.log(SIGMA) - 0.5 * math.log(2 * math.pi)
        total = lp.sum(axis=1)
        return np.where(np.isfinite(total), total, -np.inf)


def context(prior: ppl.ProgramPrior, k: int, wrap: float = 0.0) -> Context:
    return Context(TableTarget(prior), McmcOptions(library_tries=k, library_wrap=wrap),
                   NutsOptions(), Workspace(0))


@pytest.mark.parametrize(("text", "v"), [("(x + sin(x))", 0), ("(x + sin(x))", 2),
                                         ("(sin(x) + x)", 1), ("x", 0)])
def test_the_tries_are_weighed_by_the_target_over_the_proposal(
        monkeypatch: pytest.MonkeyPatch, text: str, v: int) -> None:
    """log w_j − log w(T_v) = log π̃(T_j) − log q_v(T_j) − (log π̃(T_v) − log q_v(T_v)) for
    60 tries at node v of φ, q_v written out independently (test_library.q_v)."""
    phi = TINY.parse(text)
    lib = SubtreeLibrary(TINY, 0, {"x": X})
    q = q_v(TINY, lib, phi, v, wrap_share=0.0)
    assert q is not None
    end = int(phi.ends()[v])
    old = (phi.prods[v:end], phi.values[v:end])
    seen: dict[str, Any] = {}
    real_draw, real_choice = tries.draw_tries, tries.selection

    def recording_draw(*args: Any) -> Any:
        seen["batch"] = real_draw(*args)
        return seen["batch"]

    def recording_choice(log_w: np.ndarray, log_w_old: float) -> Any:
        seen["log_w"], seen["old"] = log_w, log_w_old
        return real_choice(log_w, log_w_old)

    monkeypatch.setattr(tries, "draw_tries", recording_draw)
    monkeypatch.setattr(tries, "selection", recording_choice)
    state = GibbsState({"f": phi}, log_joint(TINY, phi), {}, 0)
    tries.library_tries(ForcedNode(v), context(TINY, 60), state,  # type: ignore[arg-type]
                        SiteInfo("f", PROGRAM, TINY, ()), RowsView(TINY),  # type: ignore[arg-type]
                        ({"x": X}, Y, SIGMA))

    def log_weight(tree: Any) -> float:
        phi2 = phi.replace(v, *tree)
        return log_joint(TINY, phi2) - math.log(phi2.size) - math.log(q(tree))

    batch = seen["batch"]
    expected = np.array([log_weight(batch.tree(i)) for i in range(60)]) - log_weight(old)
    got = seen["log_w"] - seen["old"]
    finite = np.isfinite(expected)
    assert np.array_equal(finite, np.isfinite(got))
    assert np.abs(got[finite] - expected[finite]).max() < 1e-9


@pytest.mark.parametrize("wrap", [0.0, 0.3])
def test_a_batch_of_tries_has_the_mixture_s_densities(wrap: float) -> None:
    """Each try of a batch (library tries drawn as one array, with constants) carries the
    fitted mixture's log q, its prior log density, size and outputs, as computed for the
    tree alone; with wrapped entries every try is drawn one by one."""
    prior = ppl.ProgramPrior("arith", inputs=["x"], max_depth=4)
    x = np.linspace(0.5, 2.0, 15)
    y = 2.5 * x + np.sin(x)
    ctx = context(prior, 1, wrap)
    site, view = SiteInfo("f", PROGRAM, prior, ()), RowsView(prior)
    view.envs = [{"x": x}]
    mix = semantic.mixture(ctx, site, view, 0, y, 0.1, 3, None, wrap=True)  # type: ignore[arg-type]
    log_q, draw = semantic.fitted_subtree(ctx, site, view, 0, y, 0.1, 3, None,  # type: ignore[arg-type]
                                          mix=mix)
    batch = tries.draw_tries(np.random.default_rng(0), mix, log_q, draw, 400, {"x": x}, 15,
                             prior)
    sizes = []
    for i in range(400):
        tree = batch.tree(i)
        assert abs(batch.log_q[i] - log_q(*tree)) < 1e-9
        assert abs(batch.log_prior[i] - prior.subtree_log_prob(*tree)) < 1e-9
        assert batch.sizes[i] == len(tree[0])
        with np.errstate(all="ignore"):
            out = np.broadcast_to(ppl.Program(prior.grammar, *tree, prior.inputs)
                                  .evaluate_numpy({"x": x}), (15,))
        np.testing.assert_allclose(batch.outputs[i], out, rtol=1e-12, atol=1e-12)
        sizes.append(len(tree[0]))
    assert len(set(sizes)) > 1


def test_a_batch_of_tries_is_drawn_from_the_mixture() -> None:
    """20,000 tries at the root of the 302-program grammar: their frequencies match q_v
    (a G-test over every subtree of the budgets)."""
    phi = TINY.parse("(x + sin(x))")
    lib = SubtreeLibrary(TINY, 0, {"x": X})
    q = q_v(TINY, lib, phi, 0, wrap_share=0.0)
    assert q is not None
    ctx = context(TINY, 1)
    site, view = SiteInfo("f", PROGRAM, TINY, ()), RowsView(TINY)
    mix = semantic.mixture(ctx, site, view, 0, Y, SIGMA, 3, None)  # type: ignore[arg-type]
    log_q, draw = semantic.fitted_subtree(ctx, site, view, 0, Y, SIGMA, 3, None,  # type: ignore[arg-type]
                                          mix=mix)
    batch = tries.draw_tries(np.random.default_rng(1), mix, log_q, draw, 20_000, {"x": X},
                             X.size, TINY)
    counts: dict[Any, int] = {}
    for i in range(20_000):
        tree = batch.tree(i)
        counts[tree] = counts.get(tree, 0) + 1
    expected = {t: q(t) for t in structures(TINY, 0, 3, None)}
    assert abs(sum(expected.values()) - 1.0) < 1e-9
    assert gtest_pvalue(counts, expected, top_k=25) > 0.001


@pytest.fixture(scope="module")
def exact() -> dict[Any, float]:
    post = infer(model, X, y=Y, method="enumerate", num_samples=10, num_chains=1)
    table = post.exact["f"]
    return dict(zip(table["program"], table["probability"], strict=True))


def library_only(seed: int = 3) -> Any:
    return infer(model, X, y=Y, method="mcmc", num_samples=1500, num_warmup=100,
                 num_chains=2, seed=seed, chain_method="sequential", progress=False,
                 program_moves=10, structure_weights={"library": 1.0}, library_tries=4)


def test_mcmc_with_the_k_try_library_move_matches_enumeration(exact) -> None:
    assert p_value(library_only(), exact) > 0.001


def test_k_try_mcmc_that_always_accepts_the_pick_fails(exact, monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    """Broken twin: the picked try always accepted (α = 1)."""
    choose = tries.selection

    def greedy(log_w: np.ndarray, log_w_old: float) -> Any:
        probs, alphas = choose(log_w, log_w_old)
        return probs, None if alphas is None else np.ones_like(alphas)

    monkeypatch.setattr(tries, "selection", greedy)
    assert p_value(library_only(), exact) < 0.001
