"""The assemble move (inference/mcmc/blocks/assemble.py): subtrees made of a free factor and
a child fitted to what the factor leaves, exact by its Hastings ratio (TESTING.md P1, P2).

- the proposal's density equals q_R written out independently from the module docstring,
  and its draws follow it (G-test);
- on the 302-program grammar, the move's exact transition matrix (every node, every
  subtree of its budgets, α read from the move itself) leaves π invariant; without the
  proposal's density in the ratio it does not;
- with constants (arith), detailed balance holds pair by pair for the move's own α;
- MCMC with only the assemble move matches the enumerated posterior; a broken twin fails.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import ppl
from inference import infer
from inference.config import McmcOptions, NutsOptions
from inference.mcmc.blocks import semantic
from inference.mcmc.blocks.assemble import (
    ASSEMBLE_LEVELS,
    ASSEMBLE_SHARE,
    ERROR_FLOOR,
    GUIDED_SHARE,
    assembled_subtree,
)
from inference.mcmc.blocks.base import Context, GibbsState, Workspace
from inference.mcmc.exact import structures
from inference.mcmc.library import SubtreeLibrary
from inference.mcmc.moves import budgets
from inference.residuals import subtree_targets
from inference.target import SiteInfo
from ppl.ops import KIND_CONSTANT
from ppl.trace import PROGRAM
from tests.inference.mcmc.test_library import (
    PROGRAMS,
    SIGMA,
    TINY,
    FakeView,
    Script,
    TableTarget,
    X,
    Y,
    greedy_swap,
    log_joint,
    mixture,
    model,
    p_value,
)
from tests.inference.mcmc.test_library import exact as exact
from tests.stats.discrete import gtest_pvalue

Tree = tuple[tuple[int, ...], tuple[Any, ...]]
SLOT_INVERSE = {("add", 0): lambda z, o: z - o, ("add", 1): lambda z, o: z - o,
                ("sub", 0): lambda z, o: z + o, ("sub", 1): lambda z, o: o - z,
                ("mul", 0): lambda z, o: z / o, ("mul", 1): lambda z, o: z / o,
                ("div", 0): lambda z, o: z * o, ("div", 1): lambda z, o: o / z}


SLOT_SLOPE = {("add", 0): lambda z, o: 1.0, ("add", 1): lambda z, o: 1.0,
              ("mul", 0): lambda z, o: o, ("mul", 1): lambda z, o: o}
"""d r / d child at the child's targets (the grammars tested here have + and × only)."""


def guided_choice(prior: ppl.ProgramPrior, lib: SubtreeLibrary, rules: list[int],
                  factors: dict[Tree, float], z: np.ndarray, b: int | None, s: int | None
                  ) -> dict[tuple[int, int, Tree], float]:
    """c(r, k, F) written out from the module docstring, one fit at a time: the child's
    best weighted least-squares library entry, the error's log scaled by the points, mixed
    with the prior's choice."""
    g = prior.grammar
    total = sum(factors.values())
    fit: dict[tuple[int, int, Tree], float] = {}
    for r in rules:
        name = g.productions[r].op.name
        for k in (0, 1):
            for free, p_free in factors.items():
                with np.errstate(all="ignore"):
                    o = np.asarray(ppl.Program(g, *free, prior.inputs)(X), dtype=float) \
                        * np.ones_like(X)
                    zk = SLOT_INVERSE[(name, k)](z, o)
                    w = SLOT_SLOPE[(name, k)](z, o) ** 2 * np.ones_like(X)
                keep = np.isfinite(zk) & np.isfinite(w) & (w > 0)
                if int(keep.sum()) < 2 or 2 * int(keep.sum()) < z.size:
                    continue
                usable = np.isfinite(lib.outputs ** 2).all(axis=1) & \
                    np.isfinite(lib.grads ** 2).all(axis=1)
                if b is not None:
                    usable &= lib.depth <= b - 1
                if s is not None:
                    usable &= lib.size <= s - 1 - len(free[0])
                o_t, g_t = lib.outputs[usable][:, keep], lib.grads[usable][:, keep]
                resid = zk[keep] - o_t                       # (entries, points)
                den = (w[keep] * g_t ** 2).sum(axis=1)
                with np.errstate(all="ignore"):
                    c = np.where(den > 0, (w[keep] * resid * g_t).sum(axis=1) / den, 0.0)
                err = (w[keep] * (resid - c[:, None] * g_t) ** 2).sum(axis=1)
                err = err[~lib.has_c[usable] | (den > 0)]
                best = float(err.min()) if err.size else math.inf
                if best == math.inf:
                    continue
                seen = np.isfinite(z)
                floor = ERROR_FLOOR * float(np.mean(z[seen] ** 2))
                mse = max(best / int(keep.sum()), floor)
                fit[(r, k, free)] = -0.5 * int(seen.sum()) * math.log(mse) \
                    + math.log(p_free / total)
    top = max(fit.values()) if fit else -math.inf
    norm = sum(math.exp(v - top) for v in fit.values())
    out = {}
    for r in rules:
        for k in (0, 1):
            for free, p_free in factors.items():
                prior_part = p_free / total / (2 * len(rules))
                key = (r, k, free)
                if not fit:
                    out[key] = prior_part
                else:
                    guided = math.exp(fit[key] - top) / norm if key in fit else 0.0
                    out[key] = GUIDED_SHARE * guided + (1 - GUIDED_SHARE) * prior_part
    return out


def split(prior: ppl.ProgramPrior, tree: Tree) -> tuple[Tree, Tree]:
    """The two children of a binary root."""
    phi = ppl.Program(prior.grammar, tree[0], tree[1], prior.inputs)
    mid = int(phi.ends()[1])
    return (tree[0][1:mid], tree[1][1:mid]), (tree[0][mid:], tree[1][mid:])


def q_r(prior: ppl.ProgramPrior, lib: SubtreeLibrary, a: int, z: np.ndarray,
        b: int | None, s: int | None, level: int = ASSEMBLE_LEVELS) -> Any:
    """T -> q_R(T | z, ℓ), written out from the module docstring (the fitted mixture from
    test_library; no wrapped entries, as ``library_wrap`` is 0)."""
    g = prior.grammar
    fit = mixture(prior, lib, a, z, b, s, wrap=True)
    rules = [r for r in g.by_lhs[a] if g.productions[r].op.name in ("add", "sub", "mul", "div")
             and tuple(g.productions[r].children) == (a, a)]
    room = level > 0 and (b is None or b >= 2) and (s is None or s >= 3)
    factors: dict[Tree, float] = {}
    fb, fs = (None if b is None else b - 1), (None if s is None else s - 2)
    for prods, values in (structures(prior, a, fb, fs) if room else []):
        if any(g.productions[r].op.kind == KIND_CONSTANT for r in prods):
            continue
        tree = ppl.Program(g, prods, values, prior.inputs)
        if len(prods) > lib.max_size:
            continue
        with np.errstate(all="ignore"):
            out = np.asarray(tree(X), dtype=float) * np.ones_like(X)
        if np.isfinite(out).all():
            factors[(prods, values)] = math.exp(prior.subtree_log_prob(prods, values))
    rho = ASSEMBLE_SHARE if rules and factors else 0.0
    choice = guided_choice(prior, lib, rules, factors, z, b, s) if rho else {}
    inner: dict[Any, Any] = {}

    def q(tree: Tree) -> float:
        p = (1 - rho) * fit(tree)
        if rho and tree[0][0] in rules:
            name = g.productions[tree[0][0]].op.name
            parts = split(prior, tree)
            for k in (0, 1):
                free = parts[1 - k]
                if free not in factors:
                    continue
                rs = None if s is None else s - 1 - len(free[0])
                if rs is not None and rs < 1:
                    continue
                with np.errstate(all="ignore"):
                    o = np.asarray(ppl.Program(g, *free, prior.inputs)(X), dtype=float)
                    zk = SLOT_INVERSE[(name, k)](z, o * np.ones_like(X))
                zk = np.where(np.isfinite(zk), zk, np.nan)
                nb = None if b is None else b - 1
                if 2 * int(np.isfinite(zk).sum()) >= zk.size and np.isfinite(zk).sum() >= 2:
                    key = (name, k, free)
                    if key not in inner:
                        inner[key] = q_r(prior, lib, a, zk, nb, rs, level - 1)
                    child = inner[key](parts[k])
                else:
                    child = math.exp(prior.subtree_log_prob(*parts[k])
                                     - prior.tables.log_mass(a, nb, rs))
                p += rho * choice[(tree[0][0], k, free)] * child
        return p
    return q


def proposal(prior: ppl.ProgramPrior, z: np.ndarray, b: int | None, s: int | None) -> Any:
    ctx = Context(TableTarget(prior), McmcOptions(), NutsOptions(), Workspace(0))
    site = SiteInfo("f", PROGRAM, prior, ())
    return assembled_subtree(ctx, site, FakeView(prior), 0, z, SIGMA, b, s)


@pytest.mark.parametrize(("b", "s"), [(3, None), (2, None), (3, 5)])
def test_the_density_is_q_r_written_out(b: int, s: int | None) -> None:
    log_q, _ = proposal(TINY, Y, b, s)
    q = q_r(TINY, SubtreeLibrary(TINY, 0, {"x": X}), 0, Y, b, s)
    trees = list(structures(TINY, 0, b, s))
    got = np.array([math.exp(log_q(*t)) for t in trees])
    want = np.array([q(t) for t in trees])
    assert np.abs(got - want).max() < 1e-12
    fit = mixture(TINY, SubtreeLibrary(TINY, 0, {"x": X}), 0, Y, b, s, wrap=True)
    plain = (1 - ASSEMBLE_SHARE) * np.array([fit(t) for t in trees])
    assert (got - plain).max() > 0.01  # the assembled part adds mass
    assert got.sum() <= 1.0 + 1e-9


def test_draws_follow_the_density() -> None:
    log_q, draw = proposal(TINY, Y, 3, None)
    rng = np.random.default_rng(1)
    counts: dict[Any, int] = {}
    none = 0
    for _ in range(20_000):
        t = draw(rng)
        if t is None:
            none += 1
        else:
            counts[t] = counts.get(t, 0) + 1
    probs = {t: float(np.exp(log_q(*t))) for t in structures(TINY, 0, 3, None)}
    mass = sum(probs.values())
    assert none == 0 and abs(mass - 1.0) < 1e-9  # every draw is a tree
    probs = {t: p / mass for t, p in probs.items()}
    assert gtest_pvalue(counts, probs, top_k=25) > 0.001


class Mover:
    """Runs the assemble move with a forced draw and its real density; reads its α."""

    def __init__(self, prior: ppl.ProgramPrior, monkeypatch: pytest.MonkeyPatch) -> None:
        self.prior, self.tree = prior, None
        self.ctx = Context(TableTarget(prior), McmcOptions(), NutsOptions(), Workspace(0))
        self.site, self.view = SiteInfo("f", PROGRAM, prior, ()), FakeView(prior)

        self.densities: dict[Any, Any] = {}

        def forced(ctx: Any, site: Any, view: Any, a: int, z: np.ndarray, sigma: float,
                   b: int | None, s: int | None) -> Any:
            key = (a, z.tobytes(), sigma, b, s)  # one node's proposal: computed once
            if key not in self.densities:
                self.densities[key] = assembled_subtree(ctx, site, view, a, z, sigma, b, s)[0]
            return self.densities[key], lambda rng: self.tree
        self.propose = forced

    def alpha(self, phi: ppl.Program, v: int, tree: Any) -> float:
        self.tree = tree
        state = GibbsState({"f": phi}, log_joint(self.prior, phi), {}, 0)
        _, info = semantic.library(Script(v), self.ctx, state, self.site,  # type: ignore[arg-type]
                                   self.view, propose=self.propose)  # type: ignore[arg-type]
        return float(info.alpha)


def matrix(monkeypatch: pytest.MonkeyPatch) -> tuple[np.ndarray, np.ndarray]:
    """(π, P) of the assemble move on the 302 programs, q_R from :func:`q_r`."""
    lib = SubtreeLibrary(TINY, 0, {"x": X})
    mover = Mover(TINY, monkeypatch)
    index = {phi: i for i, phi in enumerate(PROGRAMS)}
    p = np.zeros((len(PROGRAMS), len(PROGRAMS)))
    for i, phi in enumerate(PROGRAMS):
        for v in range(phi.size):
            z = subtree_targets(phi, v, {"x": X}, Y)
            if z is None or 2 * int(np.isfinite(z).sum()) < z.size:
                continue
            b, s = budgets(TINY, phi, v)
            q = q_r(TINY, lib, 0, z, b, s)
            for tree in structures(TINY, 0, b, s):
                j = index[phi.replace(v, *tree)]
                qt = q(tree)
                if j != i and qt > 0:
                    p[i, j] += qt * mover.alpha(phi, v, tree) / phi.size
        p[i, i] = 1.0 - p[i].sum()
    log_pi = np.array([log_joint(TINY, phi) for phi in PROGRAMS])
    pi = np.exp(log_pi - log_pi.max())
    return pi / pi.sum(), p


def test_the_assemble_move_is_exactly_stationary(monkeypatch: pytest.MonkeyPatch) -> None:
    pi, p = matrix(monkeypatch)
    assert np.all(p >= -1e-12)
    assert np.abs(pi @ p - pi).max() < 1e-12


def test_without_its_ratio_the_move_is_not_stationary(monkeypatch: pytest.MonkeyPatch
                                                      ) -> None:
    """Broken twin: the move accepts by the target ratio alone (q_R and N left out)."""
    monkeypatch.setattr(semantic, "swap_subtree", greedy_swap)
    pi, p = matrix(monkeypatch)
    assert np.abs(pi @ p - pi).max() > 1e-6


@pytest.mark.parametrize(("text", "v", "new"), [
    ("(x + 0.3)", 2, "(x * (x + 0.5))"),         # a constant: a factor times a fitted sum
    ("(x + 0.3)", 0, "((x * x) - (x * 0.7))"),   # the root: free x * x, fitted x * c
    ("(sin(x) * 0.9)", 0, "(sin(x) * (x + 1.2))"),
    ("((x * x) * (x - 0.5))", 0, "(x + 0.25)"),
])
def test_detailed_balance_with_constants(monkeypatch: pytest.MonkeyPatch, text: str, v: int,
                                         new: str) -> None:
    """π(φ) q(T') α(φ → φ') = π(φ') q(T_v) α(φ' → φ), α read from the move."""
    prior = ppl.ProgramPrior("arith", inputs=["x"], max_depth=4)
    log_pi = {}
    phi = prior.parse(text)
    t_new = prior.parse(new)
    phi2 = phi.replace(v, t_new.prods, t_new.values)
    end = int(phi.ends()[v])
    t_old = (phi.prods[v:end], phi.values[v:end])
    densities = []
    for here, tree in ((phi, (t_new.prods, t_new.values)), (phi2, t_old)):
        z = subtree_targets(here, v, {"x": X}, Y)
        log_q, _ = proposal(prior, z, *budgets(prior, here, v))
        densities.append(log_q(*tree))
        log_pi[here] = log_joint(prior, here)
    assert all(d > -math.inf for d in densities)
    mover = Mover(prior, monkeypatch)
    a_f = mover.alpha(phi, v, (t_new.prods, t_new.values))
    a_b = mover.alpha(phi2, v, t_old)
    lhs = log_pi[phi] + densities[0] - math.log(phi.size) + math.log(a_f)
    rhs = log_pi[phi2] + densities[1] - math.log(phi2.size) + math.log(a_b)
    assert abs(lhs - rhs) < 1e-9
    assert max(a_f, a_b) == 1.0


def assemble_only(seed: int = 3) -> Any:
    return infer(model, X, y=Y, method="mcmc", num_samples=1500, num_warmup=100,
                 num_chains=2, seed=seed, chain_method="sequential", progress=False,
                 program_moves=10, structure_weights={"assemble": 1.0})


def test_mcmc_with_only_the_assemble_move_matches_enumeration(exact) -> None:
    assert p_value(assemble_only(), exact) > 0.001


def test_assemble_mcmc_without_its_ratio_fails(exact, monkeypatch: pytest.MonkeyPatch
                                               ) -> None:
    """Broken twin: the proposal densities and N(φ)/N(φ') left out of the ratio."""
    monkeypatch.setattr(semantic, "swap_subtree", greedy_swap)
    assert p_value(assemble_only(), exact) < 0.001


def test_without_a_free_factor_the_proposal_is_the_fitted_mixture() -> None:
    """A size budget of 2 leaves no room for an operator: q_R is q_fit exactly."""
    log_q, _ = proposal(TINY, Y, 3, 2)
    fit = mixture(TINY, SubtreeLibrary(TINY, 0, {"x": X}), 0, Y, 3, 2, wrap=True)
    for t in structures(TINY, 0, 3, 2):
        assert abs(math.exp(log_q(*t)) - fit(t)) < 1e-12


def test_least_errors_match_one_fit_at_a_time() -> None:
    """SubtreeLibrary.least_errors (five matrix products) against each entry's weighted
    least squares written out, with constants, missing targets, zero weights and budgets."""
    prior = ppl.ProgramPrior("arith", inputs=["x"], max_depth=4)
    x = np.linspace(0.5, 2.0, 9)
    lib = SubtreeLibrary(prior, 0, {"x": x})
    rng = np.random.default_rng(4)
    targets = np.stack([x + 0.3, np.sin(x) * 2.5, rng.standard_normal(9), x / (x + 1.0)])
    targets[2, :3] = np.nan
    weights = rng.uniform(0.0, 3.0, targets.shape)
    weights[1, 4] = 0.0
    sizes = np.array([5, 4, 2, 3])
    got = lib.least_errors(targets, weights, 3, sizes)
    assert lib.has_c.any()
    for p in range(len(targets)):
        keep = np.isfinite(targets[p]) & (weights[p] > 0)
        w, z = weights[p][keep], targets[p][keep]
        best = math.inf
        for j in range(len(lib)):
            o, g = lib.outputs[j][keep], lib.grads[j][keep]
            if lib.depth[j] > 3 or lib.size[j] > sizes[p] or \
                    not (np.isfinite(lib.outputs[j] ** 2).all()
                         and np.isfinite(lib.grads[j] ** 2).all()):
                continue
            resid = z - o
            if lib.has_c[j]:
                den = float(np.sum(w * g * g))
                if den <= 0:
                    continue
                resid = resid - float(np.sum(w * resid * g)) / den * g
            best = min(best, float(np.sum(w * resid * resid)))
        assert got[p] == pytest.approx(best, rel=1e-9, abs=1e-12)
    assert got[0] < 1e-10 and got[1] < 1e-10  # x + c and sin(x) · c are entries
