"""A Gibbs model (a program plus a continuous noise scale) against its exact posterior.

y_i ~ N(f(x_i), σ²), f from the 302-program tiny grammar, σ ~ HalfNormal(1). The exact
posterior is enumeration over f with σ integrated by quadrature:
p(f | y) ∝ p(f) ∫ Π_i N(y_i | f(x_i), σ²) p(σ) dσ, and E[σ | y] = Σ_f p(f | y) E[σ | f, y].
The default plan ``ProgramMH[f] + Noise[sigma]`` (σ from the residuals, an MH test) must
match it: a G-test on the program frequencies (counts deflated to the ESS), TV against its
iid null, and E[σ] and E[size] within 4 MCSE (the same check passed with the plan
``ProgramMH[f] + NUTS[sigma]``, the default until 2026-12-06: 47 s of CI, dropped; NUTS
blocks keep their known-posterior tests in test_continuous.py). Broken twins fail: NUTS
without the Jacobian of σ's log transform, and the noise block without its proposal
densities in the ratio.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from scipy import integrate, stats

import ppl
from inference import infer
from inference.arviz import az
from inference.mcmc import nuts_block
from inference.mcmc.blocks import noise
from ppl import dist
from tests.stats.discrete import empirical, gtest_pvalue, tv_distance, tv_null_quantile

PRIOR = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=3)
X = np.linspace(-1.0, 1.0, 6)
Y = X + np.sin(X) + 0.4 * np.random.default_rng(5).standard_normal(6)


def model(x: Any, y: Any = None) -> None:
    f = ppl.sample("f", PRIOR)
    sigma = ppl.sample("sigma", dist.HalfNormal(1.0))
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), sigma), obs=y)


def _exact() -> tuple[dict[Any, float], float]:
    """Posterior program probabilities and E[σ | y], by enumeration and quadrature."""
    prior_sigma = stats.halfnorm(scale=1.0)
    log_w, mean_sigma = [], []
    for program, log_p in PRIOR.enumerate():
        resid = Y - np.broadcast_to(program(X), X.shape)
        ss = float(np.sum(resid**2))

        def lik(s: float, ss: float = ss) -> float:
            return float(np.exp(-ss / (2 * s * s) - len(X) * np.log(s)) * prior_sigma.pdf(s))

        z, _ = integrate.quad(lik, 0, np.inf, limit=200)
        m, _ = integrate.quad(lambda s: s * lik(s), 0, np.inf, limit=200)
        log_w.append(log_p + np.log(z))
        mean_sigma.append(m / z)
    w = np.exp(np.asarray(log_w) - np.max(log_w))
    w /= w.sum()
    programs = [p for p, _ in PRIOR.enumerate()]
    return dict(zip(programs, w, strict=True)), float(np.dot(w, mean_sigma))


@pytest.fixture(scope="module")
def exact() -> tuple[dict[Any, float], float]:
    return _exact()


NUTS_PLAN = [("ProgramMH", "f"), ("NUTS", "sigma")]


def _run(seed: int = 0, draws: int = 2000, **options: Any) -> Any:
    # sequential: the broken twin's monkeypatch must reach the chains (spawned workers
    # would import the unpatched kernel). 2000 draws per chain: with 1000 the ESS of the
    # program indicators is estimated unreliably (one run estimated 819 of 4000 draws where
    # longer runs of the same kernel give about 1 in 10), which made the ESS-deflated
    # G-test overconfident; at 6000 draws per chain the default kernel matches the exact
    # posterior (p = 0.19, TV 0.023 against a null of 0.045).
    return infer(model, X, y=Y, method="mcmc", num_samples=draws, num_warmup=200,
                 num_chains=4, seed=seed, progress=False, chain_method="sequential",
                 **options)


def _check(post: Any, probs: dict[Any, float], mean_sigma: float) -> dict[str, float]:
    draws = post.samples["f"]
    counts: dict[Any, int] = {}
    for p in draws.reshape(-1):
        counts[p] = counts.get(p, 0) + 1
    sizes = np.vectorize(lambda p: p.size)(draws).astype(float)
    top = max(probs, key=probs.__getitem__)
    indicator = np.vectorize(lambda p: p == top)(draws).astype(float)
    ess = float(min(az.ess(sizes), az.ess(indicator), az.ess(post.samples["sigma"])))
    sigma = post.samples["sigma"]
    mean_size = sum(p.size * q for p, q in probs.items())
    return {"ess": ess, "p": gtest_pvalue(counts, probs, top_k=20, ess=ess),
            "tv": tv_distance(empirical(counts), probs),
            "tv_null": tv_null_quantile(probs, int(ess), q=0.99,
                                        rng=np.random.default_rng(0)),
            "sigma_z": (float(sigma.mean()) - mean_sigma) / float(az.mcse(sigma)),
            "size_z": (float(sizes.mean()) - mean_size) / float(az.mcse(sizes))}


def test_program_and_noise_scale_match_enumeration_with_quadrature(exact: Any) -> None:
    probs, mean_sigma = exact
    post = _run()
    assert post.attrs["plan"] == "Gibbs: ProgramMH[f] + Noise[sigma]"
    r = _check(post, probs, mean_sigma)
    assert r["ess"] > 200, r  # the G-test and TV null are deflated to this ESS
    assert r["p"] > 0.001, r
    assert r["tv"] < r["tv_null"], r
    assert abs(r["sigma_z"]) < 4 and abs(r["size_z"]) < 4, r


def _without_jacobian(self: Any, params: Any) -> torch.Tensor:
    return -self.target.log_joint_tensor(self.constrain(params)[0])


@pytest.mark.slow  # the NUTS plan is no longer the default (30 s of CI); make validate runs it
def test_broken_twin_nuts_without_jacobian(exact: Any, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    """Dropping log|dσ/du| samples σ from p(σ | …)/σ: E[σ] too small, caught by the check."""
    monkeypatch.setattr(nuts_block._Potential, "__call__", _without_jacobian)
    probs, mean_sigma = exact
    r = _check(_run(draws=1000, blocks=NUTS_PLAN), probs, mean_sigma)
    assert r["sigma_z"] < -4, r


def test_broken_twin_noise_block_without_proposal_densities(
        exact: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The residuals' proposal taken as symmetric samples σ from about p(σ | …) · q(σ):
    caught by the E[σ] check."""
    monkeypatch.setattr(noise, "log_q", lambda *args: 0.0)
    probs, mean_sigma = exact
    r = _check(_run(draws=1000), probs, mean_sigma)
    assert abs(r["sigma_z"]) > 4, r
