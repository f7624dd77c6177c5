"""The library move (inference/mcmc/blocks/semantic.py): a subtree chosen to fit its node's
targets, exact by its Hastings ratio (TESTING.md P1, P2).

- the subtree library's q is a normalised density over trees and constants;
- on the 302-program grammar, the move's exact transition matrix (every node, every
  subtree of its budgets, α read from the move itself) leaves π invariant, and without
  the library's density in the ratio it does not;
- with constants (arith), detailed balance holds pair by pair for the move's own α;
- MCMC with only the library move matches the enumerated posterior; a broken twin fails.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import ppl
from inference import infer
from inference.config import McmcOptions, NutsOptions
from inference.mcmc.blocks import semantic
from inference.mcmc.blocks.base import Context, GibbsState, Workspace, accept
from inference.mcmc.exact import structures
from inference.mcmc.library import SubtreeLibrary
from inference.mcmc.moves import budgets
from inference.residuals import subtree_targets
from inference.target import SiteInfo
from ppl import dist
from ppl.trace import PROGRAM
from tests.stats.discrete import empirical, gtest_pvalue, tv_distance, tv_null_quantile

TINY = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=3)
PROGRAMS = [p for p, _ in TINY.enumerate()]
X = np.linspace(-1.0, 1.0, 6)
Y = X + np.sin(X) + 0.3 * np.random.default_rng(3).standard_normal(6)
SIGMA = 0.3
WRAP = 0.2
"""``library_wrap`` of the tests: wrapped entries (sin(U), U fitted to arcsin z) in the mix."""


def model(x, y=None):
    f = ppl.sample("f", TINY)
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), SIGMA), obs=y)


def log_joint(prior: ppl.ProgramPrior, phi: ppl.Program) -> float:
    with np.errstate(all="ignore"):
        out = np.asarray(phi(X), dtype=float) * np.ones_like(X)
    lik = float(np.sum(-0.5 * ((Y - out) / SIGMA) ** 2 - math.log(SIGMA)
                       - 0.5 * math.log(2 * math.pi)))
    return prior.log_density(phi) + (lik if math.isfinite(lik) else -math.inf)


class FakeView:
    """The parts of a ProgramLikelihood the move reads, scoring by ``log_joint``."""

    def __init__(self, prior: ppl.ProgramPrior) -> None:
        self.prior = prior
        self.calls = [((X,), {})]
        self.factors = [SimpleNamespace(y=Y, params={"scale": np.array(SIGMA)})]
        self.envs = [{"x": X}]
        self.beta = 1.0
        self.input_key = "fake"
        self.noise = None

    def log_joint(self, phi: ppl.Program) -> float:
        return log_joint(self.prior, phi)


class TableTarget:
    def __init__(self, prior: ppl.ProgramPrior) -> None:
        self.prior = prior

    def log_joint(self, values: dict[str, Any]) -> float:
        return log_joint(self.prior, values["f"])


class Script:
    """A stand-in Generator: a node index, then the library branch, then the accept
    uniform."""

    def __init__(self, node: int) -> None:
        self.node, self.uniforms = node, [0.99, 0.5]

    def integers(self, n: int) -> int:
        return self.node

    def random(self) -> float:
        return self.uniforms.pop(0)


def q_v(prior: ppl.ProgramPrior, lib: SubtreeLibrary, phi: ppl.Program, v: int,
        wrap_share: float | None = None) -> Any:
    """T -> q_v(T) of the move at node v of φ (None when the move is a no-op there): the
    library, the wrapped entries (sin(U), U fitted to arcsin z; exp(U), U to log z; ...),
    the budgeted prior, written out from the module docstring."""
    z = subtree_targets(phi, v, {"x": X}, Y)
    if z is None or 2 * int(np.isfinite(z).sum()) < z.size:
        return None
    a = prior.grammar.productions[phi.prods[v]].lhs
    b, s = budgets(prior, phi, v)
    share = WRAP if wrap_share is None else wrap_share
    return mixture(prior, lib, a, z, b, s, wrap=True, wrap_share=share)


INVERSE = {"sin": np.arcsin, "cos": np.arccos, "exp": np.log, "log": np.exp}


def mixture(prior: ppl.ProgramPrior, lib: SubtreeLibrary, a: int, z: np.ndarray,
            b: int | None, s: int | None, wrap: bool, wrap_share: float = 0.0,
            affine: Any = None, affine_share: float = 0.0) -> Any:
    """tree -> q(tree) of the fitted mixture: budgeted prior, wrapped entries (one level,
    with ``wrap``), library, and with ``affine`` (a reference (prior, lib, a, z, b, s) ->
    q_aff or None) affine entries at every level, from the module docstrings."""
    scores = lib.score(z, SIGMA, b, s)
    w = semantic.PRIOR_SHARE
    log_mass = prior.tables.log_mass(a, b, s)
    fits = bool(np.isfinite(scores.log_q).any())
    inner = {}
    if wrap and (b is None or b >= 2) and (s is None or s >= 2):
        for r in prior.grammar.by_lhs[a]:
            name = prior.grammar.productions[r].op.name
            if name in INVERSE:
                with np.errstate(all="ignore"):
                    zc = INVERSE[name](z)
                k = int(np.isfinite(zc).sum())
                if k >= 2 and 2 * k >= z.size:
                    inner[r] = mixture(prior, lib, a, zc, None if b is None else b - 1,
                                       None if s is None else s - 1, wrap=False,
                                       affine=affine, affine_share=affine_share)
    aff = affine(prior, lib, a, z, b, s) if affine is not None and affine_share else None
    u, e = (wrap_share if inner else 0.0), (affine_share if aff is not None else 0.0)
    rest = w + u + e
    shares = (w, u, 1 - rest, e) if fits else (w / rest, u / rest, 0.0, e / rest)

    def q(tree: tuple[tuple[int, ...], tuple[Any, ...]]) -> float:
        total = shares[0] * math.exp(prior.subtree_log_prob(*tree) - log_mass)
        if tree[0][0] in inner:
            total += shares[1] / len(inner) * inner[tree[0][0]]((tree[0][1:], tree[1][1:]))
        if fits:
            total += shares[2] * math.exp(lib.log_prob(scores, *tree))
        if aff is not None:
            total += shares[3] * aff(tree)
        return total
    return q


class Mover:
    """Runs the library move with a forced proposal and reads its α (one kernel context
    for every call)."""

    def __init__(self, prior: ppl.ProgramPrior, monkeypatch: pytest.MonkeyPatch,
                 options: McmcOptions | None = None) -> None:
        self.prior, self.tree = prior, None
        self.ctx = Context(TableTarget(prior), options or McmcOptions(library_wrap=WRAP),
                           NutsOptions(), Workspace(0))
        self.site, self.view = SiteInfo("f", PROGRAM, prior, ()), FakeView(prior)
        monkeypatch.setattr(SubtreeLibrary, "sample", lambda _, rng, scores: self.tree)
        monkeypatch.setattr(ppl.ProgramPrior, "sample_subtree",
                            lambda _, rng, a, b, s: self.tree)

    def alpha(self, phi: ppl.Program, v: int, tree: Any) -> float:
        """α of the move at node v of φ proposing ``tree``."""
        self.tree = tree
        state = GibbsState({"f": phi}, log_joint(self.prior, phi), {}, 0)
        _, info = semantic.library(Script(v), self.ctx, state, self.site,
                                   self.view)  # type: ignore[arg-type]
        return float(info.alpha)


def tiny_matrix(monkeypatch: pytest.MonkeyPatch, wrap_share: float | None = None,
                options: McmcOptions | None = None, mover: Any = None, pick: Any = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """(π, P) of the library move (run with ``options``, or by ``mover``) on the 302
    programs, proposals drawn with the wrapped entries' share ``wrap_share`` (default the
    move's) at nodes picked with probability ``pick(φ, v)`` (default 1 / N(φ))."""
    lib = SubtreeLibrary(TINY, 0, {"x": X})
    mover = mover or Mover(TINY, monkeypatch, options)
    pick = pick or (lambda phi, v: 1.0 / phi.size)
    index = {phi: i for i, phi in enumerate(PROGRAMS)}
    p = np.zeros((len(PROGRAMS), len(PROGRAMS)))
    for i, phi in enumerate(PROGRAMS):
        for v in range(phi.size):
            q = q_v(TINY, lib, phi, v, wrap_share)
            if q is None:
                continue
            a = TINY.grammar.productions[phi.prods[v]].lhs
            for tree in structures(TINY, a, *budgets(TINY, phi, v)):
                j = index[phi.replace(v, *tree)]
                if j != i:
                    p[i, j] += q(tree) * mover.alpha(phi, v, tree) * pick(phi, v)
        p[i, i] = 1.0 - p[i].sum()
    log_pi = np.array([log_joint(TINY, phi) for phi in PROGRAMS])
    pi = np.exp(log_pi - log_pi.max())
    return pi / pi.sum(), p


def test_library_density_is_normalised_and_respects_budgets() -> None:
    prior = ppl.ProgramPrior("arith", inputs=["x"], max_depth=4)
    lib = SubtreeLibrary(prior, 0, {"x": X})
    scores = lib.score(2.0 * X + 1.0, 0.1, 2, 3)
    assert abs(np.exp(scores.log_q).sum() - 1.0) < 1e-12
    allowed = (lib.depth <= 2) & (lib.size <= 3)
    assert np.all(scores.log_q[~allowed] == -np.inf)
    rng = np.random.default_rng(0)
    for _ in range(50):
        prods, values = lib.sample(rng, scores)
        tree = ppl.Program(prior.grammar, prods, values, prior.inputs)
        assert tree.depth <= 2 and tree.size <= 3
        j = lib.index[(prods, tuple(0.0 if isinstance(u, float) else u for u in values))]
        expected = scores.log_q[j]
        if lib.slot[j] >= 0:
            c, mu, sd = values[lib.slot[j]], scores.c_hat[j], scores.c_sd[j]
            expected += -0.5 * ((c - mu) / sd) ** 2 - math.log(sd) - 0.5 * math.log(2 * math.pi)
        assert abs(lib.log_prob(scores, prods, values) - expected) < 1e-12
    deep = prior.parse("sin(sin(sin(x)))")
    assert lib.log_prob(scores, deep.prods, deep.values) == -math.inf


@pytest.mark.parametrize("wrap", [0.0, WRAP])
def test_library_move_is_exactly_stationary(monkeypatch: pytest.MonkeyPatch, wrap: float
                                            ) -> None:
    pi, p = tiny_matrix(monkeypatch, wrap, McmcOptions(library_wrap=wrap))
    assert np.all(p >= -1e-12)
    assert np.abs(pi @ p - pi).max() < 1e-12


def greedy_swap(rng, target, state, name, v, new, log_q, view, node_ratio=None):
    """The subtree swap accepted by the target ratio alone (q_v and the node pick left out)."""
    phi2 = state.values[name].replace(v, *new)
    return accept(rng, target, state, name, phi2, 0.0, view.log_joint(phi2))


def test_without_its_ratio_the_move_is_not_stationary(monkeypatch: pytest.MonkeyPatch
                                                      ) -> None:
    """Broken twin: the move accepts by the target ratio alone (q_v and N left out)."""
    monkeypatch.setattr(semantic, "swap_subtree", greedy_swap)
    pi, p = tiny_matrix(monkeypatch)
    assert np.all(p >= -1e-12)
    assert np.abs(pi @ p - pi).max() > 1e-6


def test_without_the_wrapped_density_the_move_is_not_stationary(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Broken twin: proposals drawn with wrapped entries (sin(U), U fitted to arcsin z),
    the move's ratio computed as if there were none."""
    pi, p = tiny_matrix(monkeypatch, wrap_share=WRAP, options=McmcOptions(library_wrap=0.0))
    assert np.abs(pi @ p - pi).max() > 1e-6


@pytest.mark.parametrize(("text", "v", "new"), [
    ("(x + 0.3)", 2, "0.9"),               # a constant for a constant
    ("(x * sin(x))", 2, "(x * 1.7)"),      # a subtree with a constant
    ("(x + 0.3)", 0, "(x + -0.2)"),        # the root
    ("exp((x * 0.5))", 1, "(x + 0.25)"),   # targets under a nonlinear parent
    ("(x + 0.3)", 0, "exp((x * 0.7))"),    # a wrapped entry: x * c fitted to log z
    ("sin((x * 0.5))", 0, "log((x + 1.5))"),  # wrapped entries both ways
])
def test_detailed_balance_with_constants(monkeypatch: pytest.MonkeyPatch, text: str, v: int,
                                         new: str) -> None:
    """π(φ) q_v(T') α(φ → φ') = π(φ') q_v(T_v) α(φ' → φ), α read from the move."""
    prior = ppl.ProgramPrior("arith", inputs=["x"], max_depth=4)
    lib = SubtreeLibrary(prior, 0, {"x": X})
    gap = balance_gap(prior, text, v, new, lambda phi, u: q_v(prior, lib, phi, u),
                      Mover(prior, monkeypatch))
    assert abs(gap) < 1e-9


def balance_gap(prior: ppl.ProgramPrior, text: str, v: int, new: str, q_at: Any, mover: Any,
                pick: Any = None) -> float:
    """log π(φ) P(v|φ) q(T'|φ) α(φ→φ') − log π(φ') P(v|φ') q(T_v|φ') α(φ'→φ) for φ =
    ``text`` with node v replaced by ``new``: q from ``q_at(φ, v)`` (a reference), α from
    ``mover``, the pick P(v | φ) from ``pick`` (default uniform, 1 / N(φ))."""
    pick = pick or (lambda phi, u: 1.0 / phi.size)
    phi = prior.parse(text)
    t_new = prior.parse(new)
    phi2 = phi.replace(v, t_new.prods, t_new.values)
    end = int(phi.ends()[v])
    t_old = (phi.prods[v:end], phi.values[v:end])
    forward = q_at(phi, v)((t_new.prods, t_new.values))
    backward = q_at(phi2, v)(t_old)
    assert forward > 0 and backward > 0
    a_f = mover.alpha(phi, v, (t_new.prods, t_new.values))
    a_b = mover.alpha(phi2, v, t_old)
    assert max(a_f, a_b) == 1.0
    return (log_joint(prior, phi) + math.log(forward * pick(phi, v) * a_f)
            - log_joint(prior, phi2) - math.log(backward * pick(phi2, v) * a_b))


@pytest.fixture(scope="module")
def exact() -> dict[Any, float]:
    post = infer(model, X, y=Y, method="enumerate", num_samples=10, num_chains=1)
    table = post.exact["f"]
    return dict(zip(table["program"], table["probability"], strict=True))


def p_value(post: Any, exact: dict[Any, float]) -> float:
    from inference.arviz import az

    draws = post.samples["f"]
    counts: dict[Any, int] = {}
    for p in draws.reshape(-1):
        counts[p] = counts.get(p, 0) + 1
    top = max(exact, key=exact.get)
    sizes = np.vectorize(lambda p: p.size)(draws).astype(float)
    hit = np.vectorize(lambda p: p == top)(draws).astype(float)
    n = int(min(az.ess(sizes), az.ess(hit), draws.size))
    assert tv_distance(empirical(counts), exact) >= 0.0
    assert tv_null_quantile(exact, n, q=0.99, rng=np.random.default_rng(0)) > 0.0
    return gtest_pvalue(counts, exact, top_k=25, ess=n)


def test_mcmc_with_only_the_library_move_matches_enumeration(exact) -> None:
    """Ten library moves per draw: with three (as until 2026-12-07) the chains visited
    the products at the root (5 nodes, outside the library: reached only through the
    prior's share) too rarely for the ESS of the size and top-program indicators, and the
    test failed on 5 of seeds 9-16 without wrapped entries, 3 of 14 with them."""
    post = infer(model, X, y=Y, method="mcmc", num_samples=1500, num_warmup=100,
                 num_chains=2, seed=3, chain_method="sequential", progress=False,
                 program_moves=10, structure_weights={"library": 1.0}, library_wrap=WRAP)
    assert p_value(post, exact) > 0.001


def test_library_mcmc_without_its_ratio_fails(exact, monkeypatch: pytest.MonkeyPatch
                                              ) -> None:
    """Broken twin: the proposal densities and N(φ)/N(φ') left out of the ratio."""
    monkeypatch.setattr(semantic, "swap_subtree", greedy_swap)
    post = infer(model, X, y=Y, method="mcmc", num_samples=1500, num_warmup=100,
                 num_chains=2, seed=3, chain_method="sequential", progress=False,
                 program_moves=10, structure_weights={"library": 1.0}, library_wrap=WRAP)
    assert p_value(post, exact) < 0.001


def test_a_scoring_reuses_the_fits_of_its_targets_exactly() -> None:
    """The σ-free part of a scoring is kept per target vector: a second scoring at another
    σ and other budgets equals a fresh library's, number for number, and the cache is
    bounded."""
    from inference.mcmc.library import FIT_CACHE

    prior = ppl.ProgramPrior("arith", inputs=["x"], max_depth=4)
    lib = SubtreeLibrary(prior, 0, {"x": X})
    z = np.where(X > 0.8, np.nan, 2.0 * X + 1.0)
    lib.score(z, 0.1, 4, None)
    for sigma, b, s in [(0.5, 2, 3), (1e-3, 4, None)]:
        again, fresh = lib.score(z, sigma, b, s), SubtreeLibrary(prior, 0, {"x": X}).score(
            z, sigma, b, s)
        for got, want in zip((again.log_q, again.c_hat, again.c_sd),
                             (fresh.log_q, fresh.c_hat, fresh.c_sd), strict=True):
            assert np.array_equal(got, want, equal_nan=True)
    for k in range(FIT_CACHE + 5):
        lib.score(X + k, 0.1, 4, None)
    assert lib.score(z, 0.1, 4, None).log_q.shape == (len(lib),)
    assert len(lib._fits) == FIT_CACHE
