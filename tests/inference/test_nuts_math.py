"""Issue 14 item 4: one model text on both backends, for models that do their own math.

A Gaussian-process regression (squared-exponential kernel, Cholesky factor) and a
two-component normal mixture (``logsumexp`` marginal added with ``ppl.factor``) are written
once with :mod:`ppl.math` and run with ``infer(method="nuts")`` on Pyro and on NumPyro; the
posterior means of every continuous site agree within 4 Monte Carlo standard errors
(ArviZ's ``mcse`` of each run, combined). The broken twin, a GP whose kernel multiplies by
the lengthscale instead of dividing, must disagree. The slow versions run longer chains on
more data, the GP through the triangular-solve log density instead of ``MultivariateNormal``.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import Any

import numpy as np
import pytest

import ppl
from inference import Posterior, infer
from inference.arviz import az
from ppl import dist
from ppl import math as pm

BACKENDS = ("pyro", "numpyro")
MCSE_LIMIT = 4.0
CI_RUN: dict[str, Any] = {"method": "nuts", "num_chains": 1, "num_warmup": 150,
                          "num_samples": 200, "seed": 5, "progress": False}
SLOW_RUN: dict[str, Any] = {**CI_RUN, "num_chains": 2, "num_warmup": 500,
                            "num_samples": 1000}


def kernel(x: Any, amplitude: Any, lengthscale: Any, noise: Any, broken: bool = False
           ) -> Any:
    """Squared-exponential covariance of the points ``x`` plus noise on the diagonal."""
    d = pm.expand_dims(x, 1) - pm.expand_dims(x, 0)
    scaled = d * lengthscale if broken else d / lengthscale
    return amplitude**2 * pm.exp(-0.5 * pm.square(scaled)) \
        + (noise**2 + 1e-6) * pm.eye(len(x))


def gp_priors() -> tuple[Any, Any, Any]:
    return (ppl.sample("amplitude", dist.LogNormal(0.0, 0.5)),
            ppl.sample("lengthscale", dist.LogNormal(0.0, 0.5)),
            ppl.sample("noise", dist.LogNormal(-1.5, 0.5)))


def gp(x: Any, y: Any = None, broken: bool = False) -> None:
    """GP regression: y ~ MultivariateNormal(0, K(x) + noise² I)."""
    k = kernel(x, *gp_priors(), broken=broken)
    ppl.sample("y", dist.MultivariateNormal(pm.zeros(len(x)), scale_tril=pm.cholesky(k)),
               obs=y)


def gp_solve(x: Any, y: Any) -> None:
    """The same GP, its log density written out: with K = L Lᵀ and z = L⁻¹ y,
    log p(y) = −½ zᵀz − Σ log diag(L) − n/2 log 2π."""
    ppl.factor("y", solve_log_density(pm.cholesky(kernel(x, *gp_priors())), y))


def solve_log_density(chol: Any, y: Any) -> Any:
    """log N(y | 0, L Lᵀ) from the Cholesky factor L, by one triangular solve."""
    z = pm.triangular_solve(chol, y, lower=True)
    return -0.5 * pm.sum(pm.square(z)) - pm.sum(pm.log(pm.diagonal(chol))) \
        - 0.5 * len(y) * pm.log(2 * pm.pi)


def mixture(y: Any) -> None:
    """Two normals with ordered locations loc0 < loc1 (no label switching), a weight w and a
    common scale; the component indicator summed out with ``logsumexp``."""
    w = ppl.sample("w", dist.Beta(2.0, 2.0))
    loc0 = ppl.sample("loc0", dist.Normal(-2.0, 2.0))
    gap = ppl.sample("gap", dist.LogNormal(1.0, 0.5))
    scale = ppl.sample("scale", dist.HalfNormal(1.0))
    loc1 = ppl.deterministic("loc1", loc0 + gap)

    def log_normal(loc: Any) -> Any:
        return -0.5 * pm.square((y - loc) / scale) - pm.log(scale) - 0.5 * pm.log(2 * pm.pi)

    parts = pm.stack([pm.log(w) + log_normal(loc0), pm.log1p(-w) + log_normal(loc1)])
    ppl.factor("y", pm.sum(pm.logsumexp(parts, axis=0)))


def gp_data(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    x = np.linspace(-2.0, 2.0, n)
    return {"x": x, "y": np.sin(1.5 * x) + 0.2 * rng.normal(size=n)}


def mixture_data(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {"y": np.concatenate([rng.normal(-1.5, 0.5, n // 2),
                                 rng.normal(1.5, 0.5, n - n // 2)])}


def disagreement(a: Posterior, b: Posterior) -> dict[str, float]:
    """|mean_a − mean_b| / √(mcse_a² + mcse_b²) of every site, in combined MCSEs."""
    out = {}
    for site in a.samples:
        da, db = a.samples[site], b.samples[site]
        mcse = np.hypot(float(az.mcse(da, method="mean")), float(az.mcse(db, method="mean")))
        out[site] = float(abs(da.mean() - db.mean()) / mcse)
    return out


CASES = {"gp": (gp, gp_data(12)), "mixture": (mixture, mixture_data(15))}


@pytest.fixture(scope="module")
def posteriors() -> dict[tuple[str, str], Posterior]:
    return {(name, backend): infer(model, backend=backend, **data, **CI_RUN)
            for name, (model, data) in CASES.items() for backend in BACKENDS}


@pytest.mark.parametrize("name", sorted(CASES))
def test_one_model_text_agrees_on_both_backends(
        posteriors: dict[tuple[str, str], Posterior], name: str) -> None:
    pyro_post, numpyro_post = (posteriors[name, b] for b in BACKENDS)
    assert sorted(pyro_post.samples) == sorted(numpyro_post.samples)
    for post in (pyro_post, numpyro_post):
        assert post.attrs["num_divergent"] == 0
        assert post.samples[next(iter(post.samples))].shape == (1, 200)
    z = disagreement(pyro_post, numpyro_post)
    assert max(z.values()) < MCSE_LIMIT, z


def test_broken_twin_disagrees(posteriors: dict[tuple[str, str], Posterior]) -> None:
    """The twin: d · lengthscale for d / lengthscale shifts the posterior beyond 4 MCSE."""
    broken = infer(gp, backend="numpyro", broken=True, **gp_data(12), **CI_RUN)
    z = disagreement(posteriors["gp", "pyro"], broken)
    assert max(z.values()) > MCSE_LIMIT, z


@pytest.mark.parametrize("backend", BACKENDS)
def test_triangular_solve_density_is_the_multivariate_normal(backend: str) -> None:
    """``gp_solve``'s log density equals ``MultivariateNormal.log_prob``."""
    data = gp_data(6)
    with contextlib.ExitStack() as stack:
        stack.enter_context(ppl.backend.use(backend))
        if backend == "numpyro":
            stack.enter_context(importlib.import_module("jax").enable_x64(True))
        chol = pm.cholesky(kernel(data["x"], 0.8, 1.3, 0.3))
        y = pm.asarray(data["y"])
        expected = dist.MultivariateNormal(pm.zeros(6), scale_tril=chol).log_prob(y)
        np.testing.assert_allclose(float(solve_log_density(chol, y)), float(expected),
                                   rtol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "model", "data"), [
    ("gp-solve", gp_solve, gp_data(30)), ("mixture", mixture, mixture_data(60))],
    ids=["gp-solve", "mixture"])
def test_longer_runs_agree_on_both_backends(name: str, model: Any,
                                            data: dict[str, np.ndarray]) -> None:
    pyro_post, numpyro_post = (infer(model, backend=b, **data, **SLOW_RUN)
                               for b in BACKENDS)
    z = disagreement(pyro_post, numpyro_post)
    assert max(z.values()) < MCSE_LIMIT, (name, z)
