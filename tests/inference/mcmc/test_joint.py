"""Joint structure moves (inference/mcmc/blocks/joint.py): the program and a learned noise
scale proposed together, exact by their ratio (TESTING.md P2).

- the noise scale's proposal r is a normalised density, and reads the floor regime;
- on a program model with σ ~ HalfNormal and a floor, MCMC whose every structure move is
  joint (regenerate, insert/delete, relabel, grow) matches the posterior of the programs
  (σ integrated out by quadrature) and E[σ]; a broken twin that leaves r out of the ratio
  fails.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy import integrate, stats

import ppl
from inference import infer
from inference.arviz import az
from inference.config import McmcOptions
from inference.mcmc.blocks import joint
from ppl import dist
from tests.inference.mcmc.test_library import p_value

PRIOR = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
X = np.linspace(-1.0, 1.0, 6)
Y = 0.6 * X + 0.3 + 0.5 * np.random.default_rng(1).standard_normal(6)   # no program is sure
FLOOR = 0.05


def model(x: Any, y: Any = None) -> None:
    f = ppl.sample("f", PRIOR)
    sigma = ppl.sample("sigma", dist.HalfNormal(0.5))
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), sigma + FLOOR), obs=y)


def _evidence(phi: ppl.Program) -> tuple[float, float]:
    """(∫ p(σ) p(y | φ, σ) dσ, ∫ σ p(σ) p(y | φ, σ) dσ) by quadrature."""
    with np.errstate(all="ignore"):
        out = np.asarray(phi(X), dtype=float) * np.ones_like(X)
    if not np.all(np.isfinite(out)):
        return 0.0, 0.0

    def dens(s: float) -> float:
        return float(stats.halfnorm.pdf(s, scale=0.5)
                     * np.prod(stats.norm.pdf(Y, out, s + FLOOR)))
    z = integrate.quad(dens, 0, 5, limit=200)[0]
    m = integrate.quad(lambda s: s * dens(s), 0, 5, limit=200)[0]
    return z, m


@pytest.fixture(scope="module")
def exact() -> tuple[dict[Any, float], float]:
    """(posterior of the programs, E[σ | y])."""
    table, mean = {}, 0.0
    for phi, log_prior in PRIOR.enumerate():
        z, m = _evidence(phi)
        table[phi] = math.exp(log_prior) * z
        mean += math.exp(log_prior) * m
    total = sum(table.values())
    return {k: v / total for k, v in table.items()}, mean / total


def test_noise_law_is_a_density_and_reads_the_floor() -> None:
    fit = joint.noise_law(sse=2.0, n=8, offset=0.05, beta=1.0)
    floor = joint.noise_law(sse=1e-20, n=8, offset=0.05, beta=1.0)
    assert fit is not None and floor is not None
    assert math.exp(fit[0]) == pytest.approx(0.5 - 0.05) and fit[1] == pytest.approx(8 ** -0.5)
    assert math.exp(floor[0]) == pytest.approx(0.05 / 8) and floor[1] == 1.0
    assert joint.noise_law(sse=0.0, n=8, offset=0.0, beta=1.0) is None
    assert joint.noise_law(sse=math.inf, n=8, offset=0.0, beta=1.0) is None

    class View:
        noise = type("Link", (), {"offset": 0.05})()
        beta = 1.0

        def noise_sse(self, program: Any) -> tuple[float, int]:
            return 2.0, 8

    mass = integrate.quad(lambda s: math.exp(joint.noise_log_q(View(), None, s)),
                          0, 10, points=[0.45], limit=200)[0]
    assert mass == pytest.approx(1.0, abs=1e-8)


def _run(seed: int = 2) -> Any:
    return infer(model, X, y=Y, method="mcmc", num_samples=2000, num_warmup=100,
                 num_chains=2, seed=seed, chain_method="sequential", progress=False,
                 program_moves=10, joint_noise=1.0,
                 structure_weights={"regenerate": 0.4, "insert_delete": 0.2,
                                    "relabel": 0.2, "grow": 0.2})


def _sigma_z(post: Any, mean: float) -> float:
    sigma = post.samples["sigma"]
    return (float(sigma.mean()) - mean) / float(az.mcse(sigma))


def test_joint_moves_match_the_posterior(exact: tuple[dict[Any, float], float]) -> None:
    table, mean = exact
    post = _run()
    assert post.attrs["plan"] == "Gibbs: ProgramMH[f] + Noise[sigma]"
    codes = post.stats["move"]
    assert codes.size > 0
    assert p_value(post, table) > 0.001
    assert abs(_sigma_z(post, mean)) < 4


def test_without_the_noise_ratio_joint_moves_fail(exact: tuple[dict[Any, float], float],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Broken twin: r(σ | φ) left out of the ratio (σ' treated as a symmetric proposal)."""
    real = joint.noise_log_q

    def flat(view: Any, program: Any, sigma: float) -> float:
        value = real(view, program, sigma)
        return 0.0 if math.isfinite(value) else value

    monkeypatch.setattr(joint, "noise_log_q", flat)
    table, mean = exact
    post = _run()
    assert p_value(post, table) < 0.001 or abs(_sigma_z(post, mean)) > 4


def test_joint_noise_is_a_probability() -> None:
    with pytest.raises(ppl.PPLError, match="joint_noise must be a probability"):
        McmcOptions(joint_noise=1.5)
