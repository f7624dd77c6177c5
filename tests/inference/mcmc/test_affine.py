"""Affine library entries (inference/mcmc/affine.py): c₁ + c₂ · T with both constants
fitted, a part of the library move's fitted mixture, exact by its Hastings ratio
(TESTING.md P1).

- the scores and densities match a reference written with ``np.linalg.lstsq`` and the
  constants' Gaussian as a 2 × 2 covariance σ² (XᵀX)⁻¹ (not the module's centred sums);
- draws follow that density (constants' mean and covariance within Monte Carlo error);
- with constants (arith), detailed balance holds pair by pair for the move's own α, with
  affine entries at the node and inside a wrapper; a broken twin that draws them but
  leaves them out of the ratio does not;
- without constants in the grammar the share is unused: the chain is the same draw for
  draw.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import ppl
from inference import infer
from inference.config import McmcOptions
from inference.mcmc.affine import affine_log_prob, affine_rules, affine_sample, affine_scores
from inference.mcmc.library import SubtreeLibrary
from inference.mcmc.moves import budgets
from inference.residuals import subtree_targets
from tests.inference.mcmc.test_library import SIGMA, WRAP, Mover, X, Y, balance_gap, mixture

ARITH = ppl.ProgramPrior("arith", inputs=["x"], max_depth=4)
AFFINE = 0.3
"""``library_affine`` of the tests."""
Tree = tuple[tuple[int, ...], tuple[Any, ...]]


def reference_affine(prior: ppl.ProgramPrior, lib: SubtreeLibrary, a: int, z: np.ndarray,
                     sigma: float, b: int | None, s: int | None) -> Any:
    """tree -> q_aff(tree | z) written out entry by entry (None: no affine part)."""
    rules = affine_rules(prior, a)
    if rules is None:
        return None
    add, const, mul = rules
    keep = np.isfinite(z)
    zk, m = z[keep], int(keep.sum())
    fits: dict[int, tuple[np.ndarray, np.ndarray, float]] = {}
    for j in range(len(lib)):
        t = lib.outputs[j, keep]
        if lib.has_c[j] or not np.all(np.isfinite(t)):
            continue
        if (b is not None and lib.depth[j] > b - 2) or (s is not None and lib.size[j] > s - 4):
            continue
        design = np.column_stack([np.ones(m), t])
        if np.sum((t - t.mean()) ** 2) <= 1e-12 * np.sum(t * t):
            continue
        c_hat, *_ = np.linalg.lstsq(design, zk, rcond=None)
        sse = float(np.sum((zk - design @ c_hat) ** 2))
        fits[j] = (c_hat, np.linalg.inv(design.T @ design), sse)
    if not fits or m < 2:
        return None
    var = max(sigma ** 2, min(f[2] for f in fits.values()) / m)
    log_w = {}
    for j, (c_hat, inv, sse) in fits.items():
        prods, values = lib.entries[j]
        shape = prior.subtree_log_prob((add, const, mul, const, *prods),
                                       (None, 0.0, None, 0.0, *values), constants=False)
        cov = var * inv
        log_w[j] = (shape + prior.constant_prior.log_prob(float(c_hat[0]))
                    + prior.constant_prior.log_prob(float(c_hat[1]))
                    + math.log(2 * math.pi) + 0.5 * math.log(np.linalg.det(cov))
                    - sse / (2 * var))
    top = max(log_w.values())
    total = sum(math.exp(v - top) for v in log_w.values())

    def q(tree: Tree) -> float:
        prods, values = tree
        if len(prods) < 5 or prods[:4] != (add, const, mul, const):
            return 0.0
        j = lib.index.get((prods[4:], values[4:]))
        if j not in log_w:
            return 0.0
        c_hat, inv, _ = fits[j]
        cov = var * inv
        d = np.array([values[1], values[3]]) - c_hat
        dens = math.exp(-0.5 * d @ np.linalg.solve(cov, d)) / (
            2 * math.pi * math.sqrt(np.linalg.det(cov)))
        return math.exp(log_w[j] - top) / total * dens
    return q


def reference_mixture(prior: ppl.ProgramPrior, lib: SubtreeLibrary, a: int, z: np.ndarray,
                      b: int | None, s: int | None, wrap_share: float, affine_share: float
                      ) -> Any:
    """tree -> q_v(tree): the library tests' reference mixture with affine entries."""
    return mixture(prior, lib, a, z, b, s, wrap=bool(wrap_share), wrap_share=wrap_share,
                   affine=lambda *node: reference_affine(*node[:4], SIGMA, *node[4:]),
                   affine_share=affine_share)


def z_at(phi: ppl.Program, v: int) -> np.ndarray:
    z = subtree_targets(phi, v, {"x": X}, Y)
    assert z is not None
    return z


def test_scores_and_densities_match_a_reference_fit() -> None:
    lib = SubtreeLibrary(ARITH, 0, {"x": X})
    z = 0.5 - 1.3 * np.sin(X) + 0.05 * np.random.default_rng(1).standard_normal(X.size)
    z[2] = np.nan
    rng = np.random.default_rng(0)
    for b, s in [(4, None), (3, 6), (None, None)]:
        scores = affine_scores(lib, 0, z, SIGMA, b, s)
        assert scores is not None
        assert abs(np.exp(scores.log_q).sum() - 1.0) < 1e-12
        ref = reference_affine(ARITH, lib, 0, z, SIGMA, b, s)
        for _ in range(100):
            tree = affine_sample(lib, scores, rng)
            program = ppl.Program(ARITH.grammar, *tree, ARITH.inputs)
            assert (b is None or program.depth <= b) and (s is None or program.size <= s)
            assert abs(math.exp(affine_log_prob(lib, scores, *tree)) - ref(tree)) < \
                1e-9 * ref(tree)
    scores = affine_scores(lib, 0, z, SIGMA, 4, None)
    for text in ["(0.5 + (1.0 * (x * 0.5)))", "(x + (1.0 * x))", "(0.5 * (1.0 + x))"]:
        t = ARITH.parse(text)
        assert affine_log_prob(lib, scores, t.prods, t.values) == -math.inf
    assert affine_scores(SubtreeLibrary(ppl.ProgramPrior("koza", inputs=["x"]), 0,
                                        {"x": X}), 0, z, SIGMA, 4, None) is None


def test_draws_follow_the_constants_gaussian() -> None:
    """For the entry x (90% of the affine draws here) the drawn (c₁, c₂) have the
    least-squares mean and the covariance σ_z² (XᵀX)⁻¹, within Monte Carlo error."""
    lib = SubtreeLibrary(ARITH, 0, {"x": X})
    z = 0.5 - 1.3 * np.sin(X) + 0.05 * np.random.default_rng(1).standard_normal(X.size)
    scores = affine_scores(lib, 0, z, 0.1, 4, None)
    assert scores is not None
    rng = np.random.default_rng(5)
    bare = ARITH.parse("x")
    draws = [tree for tree in (affine_sample(lib, scores, rng) for _ in range(4000))
             if tree[0][4:] == bare.prods]
    c = np.array([[t[1][1], t[1][3]] for t in draws])
    assert len(c) > 1000
    design = np.column_stack([np.ones(X.size), X])
    c_hat, *_ = np.linalg.lstsq(design, z, rcond=None)
    sse = float(np.sum((z - design @ c_hat) ** 2))
    assert sse / X.size < 0.01      # so σ_z² = σ² = 0.01
    cov = 0.01 * np.linalg.inv(design.T @ design)
    se = np.sqrt(np.diag(cov) / len(c))
    assert np.all(np.abs(c.mean(axis=0) - c_hat) < 4 * se)
    # sample covariance against the reference, each entry within 4 standard errors
    emp = np.cov(c.T)
    se_cov = np.sqrt((cov ** 2 + np.outer(np.diag(cov), np.diag(cov))) / len(c))
    assert np.all(np.abs(emp - cov) < 4 * se_cov)


PAIRS = [
    ("(x + 0.3)", 0, "(0.2 + (1.1 * sin(x)))"),     # the root, an affine entry
    ("(x * sin(x))", 2, "(0.1 + (0.7 * x))"),        # a child
    ("(x + 0.3)", 0, "exp((0.1 + (0.5 * x)))"),      # inside a wrapper (exp, log z)
    ("(0.2 + (1.1 * sin(x)))", 0, "(0.3 + (0.9 * sin(x)))"),  # affine for affine
]


def balance(monkeypatch: pytest.MonkeyPatch, text: str, v: int, new: str,
            options: McmcOptions) -> float:
    """The detailed-balance gap (``balance_gap``): q from the reference with affine
    entries, α from the move run with ``options``."""
    lib = SubtreeLibrary(ARITH, 0, {"x": X})

    def q_at(phi: ppl.Program, u: int) -> Any:
        return reference_mixture(ARITH, lib, 0, z_at(phi, u), *budgets(ARITH, phi, u), WRAP,
                                 AFFINE)
    return balance_gap(ARITH, text, v, new, q_at, Mover(ARITH, monkeypatch, options))


@pytest.mark.parametrize(("text", "v", "new"), PAIRS)
def test_detailed_balance_with_affine_entries(monkeypatch: pytest.MonkeyPatch, text: str,
                                              v: int, new: str) -> None:
    options = McmcOptions(library_wrap=WRAP, library_affine=AFFINE)
    assert abs(balance(monkeypatch, text, v, new, options)) < 1e-9


@pytest.mark.parametrize(("text", "v", "new"), PAIRS)
def test_without_the_affine_density_balance_fails(monkeypatch: pytest.MonkeyPatch, text: str,
                                                  v: int, new: str) -> None:
    """Broken twin: proposals drawn with affine entries, the move's ratio computed as if
    there were none."""
    options = McmcOptions(library_wrap=WRAP, library_affine=0.0)
    assert abs(balance(monkeypatch, text, v, new, options)) > 1e-3


def test_without_constants_the_share_changes_nothing() -> None:
    """koza has no constant leaf: with ``library_affine`` the chain is the same draw for
    draw."""
    prior = ppl.ProgramPrior("koza", inputs=["x"], max_depth=4)

    def model(x: Any, y: Any = None) -> None:
        f = ppl.sample("f", prior)
        with ppl.plate("data", len(x)):
            ppl.sample("y", ppl.dist.Normal(f(x), SIGMA), obs=y)

    runs = [infer(model, X, y=Y, method="mcmc", num_samples=60, num_warmup=20,
                  num_chains=1, seed=4, progress=False, library_affine=share,
                  structure_weights={"library": 0.5, "regenerate": 0.5})
            for share in (0.0, 0.4)]
    first, second = (r.samples["f"].reshape(-1) for r in runs)
    assert [str(p) for p in first] == [str(p) for p in second]
