"""SVI on program sites (issue 12, item 2; TESTING.md P2, P7) against the exact posterior.

The model of ``tests/inference/mcmc/test_posterior_enumeration.py``: grammar tiny at depth
≤ 3 (302 programs), six noisy points; ``method="enumerate"`` gives the exact posterior p.
q's probability of every one of the 302 trees is exact (:meth:`ProgramGuide.log_prob`), so
KL(q ‖ p) = Σ_φ q(φ) log(q(φ) / p(φ)) is computed exactly, not estimated.

- The untrained guide is the prior: log q = log π₀ on all 302 trees (1e-12), same support.
- KL falls from KL(π₀ ‖ p) = 5.05 nats to below :data:`KL_BOUND` = 0.15 nats in 2,000
  steps of 10 particles. Why 0.15: the family cannot represent p exactly (a tree's
  choices depend on its parent, position, depth and left sibling only), and three seeds of
  this fit end at 0.072–0.082 (a longer fit, 3,000 steps of 20 particles, reaches 0.03);
  0.15 is about twice the fits' value and 3% of the untrained KL.
- Its broken twin (the estimator without the score-function term, so the production
  logits get no gradient) stays at 5.05.
- PSIS-reweighted draws (``psis=True``) match p: TV below the 99th percentile of the TV of
  iid exact draws at the effective sample size. That size is the exact importance-sampling
  ESS n / Σ_φ p(φ)²/q(φ) (enumerated; the draws' own ESS estimate cannot see weights of
  trees q almost never draws), combined with the multinomial resampling of n draws:
  1 / (1/ESS + 1/n). The guide's own draws, not reweighted, fail the same check.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
import torch

import ppl
from inference import infer
from inference.api import RunWarning
from inference.config import RunConfig
from inference.target import Target
from inference.vi import program_fit
from inference.vi._pyro import context
from inference.vi.programs import ProgramGuide
from ppl import dist
from ppl.errors import PPLError
from tests.inference.mcmc.test_posterior_enumeration import PRIOR, X, Y, model
from tests.stats.discrete import empirical, tv_distance, tv_null_quantile

KL_BOUND = 0.15
"""Nats; see the module docstring."""
FIT: dict[str, Any] = {"num_steps": 2000, "learning_rate": 0.05, "num_particles": 10,
                       "tolerance": 0.0, "seed": 0, "progress": False}
QUIET: dict[str, Any] = {"num_steps": 200, "num_samples": 20, "num_chains": 1,
                         "progress": False}


@pytest.fixture(scope="module")
def exact() -> dict[Any, float]:
    post = infer(model, X, y=Y, method="enumerate", num_samples=10, num_chains=1)
    table = post.exact["f"]
    return dict(zip(table["program"], table["probability"], strict=True))


def _fit(**options: Any) -> ProgramGuide:
    with context():
        target = Target(model, (X,), {"y": Y}, seed=0)
        cfg = RunConfig.build(method="svi", **{**FIT, **options})
        return program_fit.fit_guides(target, cfg).guides.programs["f"]


@pytest.fixture(scope="module")
def fitted() -> ProgramGuide:
    return _fit()


def _log_q(guide: ProgramGuide, exact: dict[Any, float]) -> dict[Any, float]:
    with context():
        return {f: guide.log_prob(f) for f in exact}


def kl(guide: ProgramGuide, exact: dict[Any, float]) -> float:
    """KL(q ‖ p) over the 302 trees, exactly."""
    return math.fsum(math.exp(lq) * (lq - math.log(exact[f]))
                     for f, lq in _log_q(guide, exact).items())


def test_untrained_guide_is_the_prior() -> None:
    guide = ProgramGuide(PRIOR)
    trees = list(PRIOR.enumerate())
    assert len(trees) == 302
    for f, lp in trees:
        assert abs(guide.log_prob(f) - lp) < 1e-12, str(f)
    assert abs(math.fsum(math.exp(guide.log_prob(f)) for f, _ in trees) - 1.0) < 1e-12
    support = {f for f, _ in trees}
    drafts = guide.sample(np.random.default_rng(0), 2000)
    assert all(guide.program(d, []) in support for d in drafts)
    too_deep = PRIOR.grammar.parse("sin(sin(sin(x)))")
    assert guide.log_prob(too_deep) == -math.inf == PRIOR.log_density(too_deep)


def test_kl_to_the_exact_posterior_falls_below_the_bound(exact: dict[Any, float],
                                                        fitted: ProgramGuide) -> None:
    before = kl(ProgramGuide(PRIOR), exact)
    after = kl(fitted, exact)
    assert before > 5.0
    assert after < KL_BOUND, f"KL {before:.3f} -> {after:.3f}"


def test_broken_twin_without_the_score_term_does_not_learn(
        exact: dict[Any, float], monkeypatch: pytest.MonkeyPatch) -> None:
    def reparameterised_only(f: torch.Tensor, log_q_programs: torch.Tensor) -> torch.Tensor:
        return f.mean()

    monkeypatch.setattr(program_fit, "surrogate", reparameterised_only)
    assert kl(_fit(), exact) > KL_BOUND


def test_a_proposal_starts_the_guide(exact: dict[Any, float]) -> None:
    """proposal= starts the program guide at draws of the amortized proposal on the data;
    an untrained network (no move or fit may depend on training) still fits below the
    bound. (A network trained for 300 steps started the guide at KL 1.10 against the
    prior's 5.05: decisions.md.)"""
    from inference.amortized import train_proposal

    q = train_proposal(model, X, y=Y, num_steps=0, hidden=8, seed=0, progress=False)
    with context():
        target = Target(model, (X,), {"y": Y}, seed=0)
        start = program_fit.Guides(target, RunConfig.build(method="svi", proposal=q, seed=0))
        out = program_fit.fit_guides(target, RunConfig.build(method="svi", proposal=q, **FIT))
    assert start.initialised == out.guides.initialised == "proposal (1000 draws)"
    moved = [f for f in exact if abs(start.programs["f"].log_prob(f) - PRIOR.log_density(f))
             > 1e-6]
    assert moved, "the start did not move from the prior"
    assert all(start.programs["f"].log_prob(f) > -math.inf for f in exact)
    assert kl(out.guides.programs["f"], exact) < KL_BOUND


def _tv_check(counts: dict[Any, int], exact: dict[Any, float], ess: float) -> tuple[float,
                                                                                    float]:
    n = sum(counts.values())
    size = 1.0 / (1.0 / ess + 1.0 / n)
    null = tv_null_quantile(exact, int(size), q=0.99, rng=np.random.default_rng(0))
    return tv_distance(empirical(counts), exact), null


def test_psis_reweighted_programs_match_enumeration(exact: dict[Any, float],
                                                    fitted: ProgramGuide) -> None:
    post = infer(model, X, y=Y, method="svi", psis=True, num_samples=10_000, num_chains=2,
                 **FIT)
    assert post.attrs["plan"] == "SVI[grammar: f]" and post.attrs["psis"]
    assert 0 < post.attrs["khat"] < 0.7 and post.attrs["psis_ess"] > 0
    log_q = _log_q(fitted, exact)
    ess = 20_000 / math.fsum(p * p / math.exp(log_q[f]) for f, p in exact.items())
    counts: dict[Any, int] = {}
    for f in post.samples["f"].reshape(-1):
        counts[f] = counts.get(f, 0) + 1
    tv, null = _tv_check(counts, exact, ess)
    assert tv < null, f"TV {tv:.4f} >= null {null:.4f} at ESS {ess:.0f}"
    raw: dict[Any, int] = {}
    for d in fitted.sample(np.random.default_rng(1), 20_000):
        f = fitted.program(d, [])
        raw[f] = raw.get(f, 0) + 1
    tv_raw, _ = _tv_check(raw, exact, ess)
    assert tv_raw > null, "the unweighted guide should not pass"
    table = post.programs(top=3)
    assert str(table["program"][0]) == "x"


ARITH = ppl.ProgramPrior("arith", inputs=["x"], max_depth=2)
X_LINE = np.linspace(-1.0, 1.0, 10)
Y_LINE = 2.5 * X_LINE + 0.1 * np.random.default_rng(0).standard_normal(10)


def line(x: Any, y: Any = None) -> None:
    f = ppl.sample("f", ARITH)
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), 0.1), obs=y)


def test_constants_get_a_normal_guide_per_structure() -> None:
    """y = 2.5 x + noise(0.1). Each structure drawn gets a Normal guide of its constants,
    started at their Laplace fit and trained: the draws of the structure c·x have c at the
    least-squares slope. Which structures q keeps is the score-function fit's weak spot:
    with this seed q keeps most of its mass on (x + x) (a constant-free tree, about 50 nats
    worse) and k̂ does not see it (the few c·x draws dominate the weights), but the log
    weights do: reweighted, the mass is on c·x. A longer fit (1,000 steps) finds c·x
    (docs/decisions.md)."""
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always", RunWarning)
        post = infer(line, X_LINE, y=Y_LINE, method="svi", num_steps=400, num_particles=30,
                     learning_rate=0.05, tolerance=0.0, num_samples=500, num_chains=2,
                     seed=0, progress=False)
    assert post.attrs["structures"]["f"] > 1
    draws = post.samples["f"].reshape(-1)
    is_scaled = np.array([f.grammar.productions[f.prods[0]].alias == "mul"
                          and len(f.constants) == 1 and f.size == 3 for f in draws])
    scaled = list(draws[is_scaled])
    assert len(scaled) >= 10
    log_w = post.stats["log_weight"].reshape(-1)
    assert log_w[is_scaled].min() > log_w[~is_scaled].max() + 20.0
    c = np.array([f.constants[0] for f in scaled])
    slope = float(np.sum(X_LINE * Y_LINE) / np.sum(X_LINE**2))   # least squares, sd 0.05
    assert abs(c.mean() - slope) < 0.05 and 0.02 < c.std() < 0.1


def noisy(x: Any, y: Any = None) -> None:
    f = ppl.sample("f", PRIOR)
    s = ppl.sample("s", dist.HalfNormal(1.0))
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), s), obs=y)


def test_program_and_noise_scale_are_fitted_jointly() -> None:
    with warnings.catch_warnings(record=True):  # k̂ 0.87: a RunWarning (reported below)
        warnings.simplefilter("always", RunWarning)
        post = infer(noisy, X, y=Y, method="svi", num_steps=300, num_samples=500,
                     num_chains=2, learning_rate=0.05, seed=0, progress=False)
    assert post.attrs["plan"] == "SVI[grammar: f; normal: s]"
    assert post.samples["s"].shape == (2, 500) and np.all(post.samples["s"] > 0)
    assert str(post.programs(top=1)["program"][0]) == "x"
    assert np.all(np.isfinite(post.stats["log_weight"]))
    assert post.log_lik["y"].shape == (2, 500, 6) and math.isfinite(post.attrs["khat"])
    # MCMC on this model (2 × 1000 draws): s 1.24 (sd 0.34), P(x) 0.77
    assert 0.9 < float(post.samples["s"].mean()) < 1.6


BAD = [
    ({"backend": "numpyro"}, noisy, r"program site 'f' on backend='pyro' only"),
    ({"guide": "mvn"}, noisy, r"program site 'f'.*guide='mvn' is not available"),
    ({"elbo": "meanfield"}, noisy, r"program site 'f'.*elbo='meanfield' is not available"),
    ({"num_particles": 1}, noisy, r"program site 'f'.*num_particles >= 2"),
    ({"init_values": {"f": PRIOR.parse("x")}}, noisy, r"init_values gives program site 'f'"),
]


@pytest.mark.parametrize(("options", "bad_model", "message"), BAD,
                         ids=["numpyro", "guide", "elbo", "one-particle", "init-program"])
def test_bad_inputs_are_refused_naming_the_site(options: dict[str, Any], bad_model: Any,
                                                message: str) -> None:
    with pytest.raises(PPLError, match=message):
        infer(bad_model, X, y=Y, method="svi", **{**QUIET, **options})


def test_a_prior_with_max_size_is_refused_naming_the_site() -> None:
    sized = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=3, max_size=5)

    def capped(x: Any, y: Any = None) -> None:
        g = ppl.sample("g", sized)
        with ppl.plate("data", len(x)):
            ppl.sample("y", dist.Normal(g(x), 0.8), obs=y)

    with pytest.raises(PPLError, match=r"program site 'g': its prior has max_size=5"):
        infer(capped, X, y=Y, method="svi", **QUIET)


def test_khat_above_the_limit_warns() -> None:
    """A short fit of few particles leaves q far from p on the constants' model."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RunWarning)
        post = infer(line, X_LINE, y=Y_LINE, method="svi", num_steps=50, num_samples=200,
                     num_chains=1, seed=0, progress=False)
    assert post.attrs["khat"] > 0.7
    assert any("Pareto k̂" in str(w.message) and "'grammar'" in str(w.message)
               for w in caught)
