"""The noise block: σ of a Normal likelihood drawn from the residuals, then an MH test.

Which sites get it (the default plan: scales that enter a Normal likelihood one for one),
errors for a plan by hand that names another site, and exactness on a model with an
offset (scale σ + 0.2) and a HalfNormal prior against quadrature (E[σ] and P(σ < median)
within 4 MCSE), with a broken twin that drops the proposal's densities from the ratio.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from scipy import integrate, stats

import ppl
from inference import infer
from inference.arviz import az
from inference.mcmc.blocks import noise
from inference.mcmc.gibbs import Gibbs
from inference.target import Target
from ppl import dist

Y = np.array([0.9, 1.4, 0.2, 1.1, 0.7, 1.6, 0.4, 1.0])
OFFSET = 0.2


def offset_model(y: Any = None) -> None:
    sigma = ppl.sample("sigma", dist.HalfNormal(0.5))
    with ppl.plate("data", len(Y)):
        ppl.sample("y", dist.Normal(0.9, sigma + OFFSET), obs=y)


def doubled_model(y: Any = None) -> None:
    sigma = ppl.sample("sigma", dist.HalfNormal(0.5))
    with ppl.plate("data", len(Y)):
        ppl.sample("y", dist.Normal(0.9, 2 * sigma), obs=y)


def program_model(x: Any, y: Any = None) -> None:
    f = ppl.sample("f", ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2))
    sigma = ppl.sample("sigma", dist.HalfNormal(1.0))
    scale = ppl.sample("scale", dist.LogNormal(0.0, 1.0))
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x) * scale, sigma), obs=y)


def _posterior_density(s: float) -> float:
    return float(stats.halfnorm.pdf(s, scale=0.5)
                 * np.prod(stats.norm.pdf(Y, 0.9, s + OFFSET)))


def test_default_plan_gives_scales_the_noise_block():
    assert Gibbs(Target(offset_model, (), {"y": Y})).describe() == "Gibbs: Noise[sigma]"
    assert Gibbs(Target(doubled_model, (), {"y": Y})).describe() == "Gibbs: NUTS[sigma]"
    x = np.linspace(-1, 1, 5)
    kernel = Gibbs(Target(program_model, (x,), {"y": x}))
    assert kernel.describe() == "Gibbs: ProgramMH[f] + Noise[sigma] + NUTS[scale]"
    assert kernel.noise == {"sigma": ["y"]}


def test_noise_block_by_hand_must_name_a_scale():
    target = Target(doubled_model, (), {"y": Y})
    with pytest.raises(ppl.PPLError, match="Block Noise cannot update 'sigma'"):
        Gibbs(target, options=_options(blocks=[("Noise", "sigma")]))
    x = np.linspace(-1, 1, 5)
    with pytest.raises(ppl.PPLError, match="Noise cannot update program site 'f'"):
        infer(program_model, x, y=x, num_samples=5, num_chains=1, progress=False,
              blocks=[("Noise", ["f", "sigma"]), ("NUTS", "scale")])


def _options(**kw: Any) -> Any:
    from inference.config import McmcOptions
    return McmcOptions(**kw)


def _exact() -> tuple[float, float]:
    norm = integrate.quad(_posterior_density, 0, 5)[0]
    mean = integrate.quad(lambda s: s * _posterior_density(s), 0, 5)[0] / norm
    return mean, norm


def _check(post: Any) -> tuple[float, float]:
    mean, norm = _exact()
    median = float(np.median(post.samples["sigma"]))
    below = integrate.quad(_posterior_density, 0, median)[0] / norm
    sigma = post.samples["sigma"]
    z_mean = (float(sigma.mean()) - mean) / float(az.mcse(sigma))
    ind = (sigma < median).astype(float)
    z_cdf = (float(ind.mean()) - below) / max(float(az.mcse(ind)), 1e-12)
    return z_mean, z_cdf


def _run(**kw: Any) -> Any:
    return infer(offset_model, y=Y, num_samples=3000, num_warmup=100, num_chains=4, seed=1,
                 progress=False, chain_method="sequential", **kw)


def test_noise_block_matches_quadrature():
    post = _run()
    assert post.attrs["plan"] == "Gibbs: Noise[sigma]"
    assert float(az.ess(post.samples["sigma"])) > 3000  # nearly independent draws
    z_mean, z_cdf = _check(post)
    assert abs(z_mean) < 4 and abs(z_cdf) < 4, (z_mean, z_cdf)


def test_broken_twin_without_proposal_densities(monkeypatch: pytest.MonkeyPatch):
    """The proposal's densities dropped from the ratio (as if it were symmetric): the
    chain samples about p(σ | y) · q(σ), and E[σ] moves by many MCSE."""
    real = noise.log_q

    def wrong(sigma: float, offset: float, sse: float, n: int, beta: float) -> float:
        return 0.0 if math.isfinite(real(sigma, offset, sse, n, beta)) else real(
            sigma, offset, sse, n, beta)

    monkeypatch.setattr(noise, "log_q", wrong)
    z_mean, _ = _check(_run())
    assert abs(z_mean) > 4, z_mean


def exact_model(y: Any = None) -> None:
    sigma = ppl.sample("sigma", dist.HalfNormal(1.0))
    with ppl.plate("data", 8):
        ppl.sample("y", dist.Normal(0.9, sigma + 1e-6), obs=y)


def test_an_exact_fit_brings_sigma_down_to_the_floor():
    """Σr² = 0: the residuals' proposal is undefined and the walk on log σ takes σ from
    its start to the floor's scale (the posterior ∝ (σ + 1e-6)^-8 near 0)."""
    kernel = Gibbs(Target(exact_model, (), {"y": np.full(8, 0.9)}))
    assert kernel.describe() == "Gibbs: Noise[sigma]"
    rng = np.random.default_rng(0)
    state = kernel.init(rng, {"sigma": torch.tensor(0.5)})
    for _ in range(300):
        state, _ = kernel.step(rng, state)
    assert float(state.values["sigma"]) < 1e-4


def test_a_hot_rung_just_above_one_point_does_not_divide_by_zero():
    """βN = 1 + 1e-15 (10 points at the rung β = 0.1 of the search's geometric ladder is
    such a case): the residuals' Gamma shape (βN − 1)/2 ≈ 0 draws 0 in floating point;
    below βN = 2 the block walks on log σ only, and every step ends at a finite σ."""
    beta = (1 + 1e-15) / len(Y)
    assert beta * len(Y) > 1
    kernel = Gibbs(Target(offset_model, (), {"y": Y}, beta=beta))
    rng = np.random.default_rng(0)
    state = kernel.init(rng)
    for _ in range(200):
        state, _ = kernel.step(rng, state)
        assert math.isfinite(float(state.values["sigma"])) and math.isfinite(state.log_joint)
