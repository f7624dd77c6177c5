"""A noise scale moved without a model run (``inference.mcmc.fastlik.NoiseLink``).

TESTING.md P1 for the link: the view at σ' derived from the view at σ equals, bit for bit,
the view built afresh at σ' (so a resumed chain, whose views are fresh, is the same chain),
and its log joint equals a full re-scoring of the model to 1e-9 for many programs. Models
in which σ reaches anything but the linked scales get no link (and keep their view):
σ as another site's scale, σ in the program's inputs, a scale that is not σ + c.
Exactness of the noise block on the link is P2: ``test_mixed.py`` (the default plan links
σ) and the B1 model here against its own slow path (the same proposal, the same ratio).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

import ppl
from inference.mcmc import fastlik
from inference.mcmc.blocks import noise
from inference.mcmc.blocks.base import Workspace
from inference.mcmc.gibbs import Gibbs
from inference.target import Target
from ppl import dist

PRIOR = ppl.ProgramPrior("arith", inputs=["x"], max_depth=4)
X = np.linspace(-1.0, 1.0, 12)
Y = 1.5 * X**2 + 0.1 * np.random.default_rng(0).standard_normal(12)
REGRESSION = ppl.regression(PRIOR, scale=float(np.std(Y)))  # Normal(f(x), sigma + floor)


def shared_scale_model(x: Any, y: Any = None) -> None:
    f = ppl.sample("f", PRIOR)
    sigma = ppl.sample("sigma", dist.HalfNormal(1.0))
    ppl.sample("a", dist.Normal(0.0, sigma))  # σ reaches another term
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), sigma), obs=y)


def sigma_in_inputs_model(x: Any, y: Any = None) -> None:
    f = ppl.sample("f", PRIOR)
    sigma = ppl.sample("sigma", dist.HalfNormal(1.0))
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x + sigma), sigma), obs=y)


def _kernel(model: Any) -> tuple[Gibbs, Any]:
    kernel = Gibbs(Target(model, (X,), {"y": Y}, seed=0))
    state = kernel.init(np.random.default_rng(0))
    return kernel, state


def _view(kernel: Gibbs, values: dict[str, Any]) -> Any:
    return kernel.workspace.view(kernel.target, kernel.target.latents["f"], values)


def test_the_regression_model_links_its_noise_scale():
    kernel, state = _kernel(REGRESSION)
    assert kernel.noise == {"sigma": ["y"]}
    link = _view(kernel, state.values).noise
    assert link is not None and link.site == "sigma" and link.names == ("y",)
    assert link.offset == pytest.approx(REGRESSION.s0, rel=1e-12)


def test_a_derived_view_is_a_fresh_build_bit_for_bit_and_scores_the_model():
    kernel, state = _kernel(REGRESSION)
    view = _view(kernel, state.values)
    rng = np.random.default_rng(1)
    programs = [PRIOR.sample_program(rng) for _ in range(40)] + [state.values["f"]]
    for sigma in (0.013, 0.37, 2.5):
        values = dict(state.values, sigma=torch.tensor(sigma, dtype=torch.float64))
        derived = view.with_noise(values["sigma"])
        fresh = Workspace(0, kernel.noise).view(kernel.target, kernel.target.latents["f"],
                                                values)
        assert fresh is not None and fresh.noise is not None and derived.noise is not None
        assert fresh.noise._replace(fn=None, density=None) == \
            derived.noise._replace(fn=None, density=None)
        assert derived.rest == fresh.rest
        for a, b in zip(derived.factors, fresh.factors, strict=True):
            assert np.array_equal(a.params["scale"], b.params["scale"])
        for p in programs:
            fast, full = derived.log_joint(p), kernel.target.log_joint(dict(values, f=p))
            assert fast == fresh.log_joint(p)
            assert fast == full or math.isclose(fast, full, rel_tol=1e-9, abs_tol=1e-9)


def test_the_workspace_derives_a_view_when_only_sigma_moved():
    kernel, state = _kernel(REGRESSION)
    view = _view(kernel, state.values)
    moved = dict(state.values, sigma=torch.tensor(0.5, dtype=torch.float64))
    runs = []
    real = kernel.target.record
    kernel.target.record = lambda values: runs.append(1) or real(values)  # type: ignore
    derived = _view(kernel, moved)
    assert not runs and derived is not view and derived.noise == view.noise
    assert _view(kernel, state.values) is view  # the view before it, caches intact


@pytest.mark.parametrize("model", [shared_scale_model, sigma_in_inputs_model],
                         ids=["sigma-scales-another-site", "sigma-in-the-inputs"])
def test_no_link_where_sigma_reaches_another_term(model: Any):
    kernel, state = _kernel(model)
    assert kernel.noise == {"sigma": ["y"]}
    view = _view(kernel, state.values)
    assert view is not None and view.noise is None


def test_linked_and_run_noise_updates_propose_and_score_alike():
    """From the same state and generator, the noise update on the link and the update that
    runs the model (the link removed) propose the same σ' and accept alike; their log joints
    agree to 1e-9."""
    kernel, state = _kernel(REGRESSION)
    site = kernel.target.latents["sigma"]
    for seed in range(30):
        linked, _ = noise.step(np.random.default_rng(seed), kernel.context, state, site, ["y"])
        plain = Gibbs(kernel.target)
        plain.workspace.noise = {}
        run, _ = noise.step(np.random.default_rng(seed), plain.context, state, site, ["y"])
        assert _view(plain, state.values).noise is None
        assert math.isclose(float(linked.values["sigma"]), float(run.values["sigma"]),
                            rel_tol=1e-12)
        assert math.isclose(linked.log_joint, run.log_joint, rel_tol=1e-9, abs_tol=1e-9)


def extra_terms_model(x: Any, y: Any = None) -> None:
    f = ppl.sample("f", PRIOR)
    sigma = ppl.sample("sigma", dist.HalfNormal(1.0))
    a = ppl.sample("a", dist.Normal(0.0, 1.0))
    ppl.sample("z", dist.Normal(a, 0.5), obs=torch.tensor(0.3, dtype=torch.float64))
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), sigma), obs=y)


@pytest.mark.parametrize("model", [REGRESSION, extra_terms_model], ids=["regression", "extra"])
@pytest.mark.parametrize("beta", [1.0, 0.05])
def test_log_parts_from_the_view_equal_a_scoring_run(model: Any, beta: float):
    """What tempering swaps and the search read (Gibbs.log_parts, from the view: the other
    latents' and data's terms in its rest) equals a scoring run, to 1e-9, at many
    programs, at a rung's β; and latent + β · likelihood is the state's log joint."""
    kernel = Gibbs(Target(model, (X,), {"y": Y}, seed=0, beta=beta))
    state = kernel.init(np.random.default_rng(0))
    assert _view(kernel, state.values) is not None  # the view's path, not a scoring run
    rng = np.random.default_rng(2)
    for p in [state.values["f"]] + [PRIOR.sample_program(rng) for _ in range(30)]:
        values = dict(state.values, f=p)
        fast, full = kernel.log_parts(values), kernel.target.log_parts(values)
        for a, b in zip(fast, full, strict=True):
            assert a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9), (str(p), a, b)
        joint = kernel.log_joint_at(values, beta)
        target = kernel.target.log_joint(values)
        assert joint == target or math.isclose(joint, target, rel_tol=1e-9, abs_tol=1e-9)


@pytest.mark.parametrize("fn", [
    dist.HalfNormal(1.3), dist.HalfNormal(torch.tensor(0.77, dtype=torch.float64)),
    dist.HalfCauchy(torch.tensor(0.7, dtype=torch.float64)),
    dist.Exponential(torch.tensor(2.0, dtype=torch.float64)),
    dist.LogNormal(torch.tensor(0.2, dtype=torch.float64), torch.tensor(0.9, dtype=torch.float64)),
    dist.Gamma(torch.tensor(2.5, dtype=torch.float64), torch.tensor(1.5, dtype=torch.float64))],
    ids=["halfnormal-float32", "halfnormal", "halfcauchy", "exponential", "lognormal", "gamma"])
def test_a_noise_prior_in_closed_form_is_torchs(fn: Any):
    """σ's prior term without a torch call: HalfNormal bit for bit (torch's arithmetic,
    float32 scale included), the other families to 1e-12; −inf below the support."""
    density = fastlik.scalar_density(fn)
    assert density is not None
    for v in (0.01, 0.5, 1.0, 3.7, 123.0):
        want = float(fn.log_prob(torch.tensor(v, dtype=torch.float64)))
        got = density(v)
        assert got == want if isinstance(fn, dist.HalfNormal) else \
            math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-12), (v, got, want)
    assert density(-0.5) == -math.inf
    assert fastlik.scalar_density(dist.Gamma(2.5, 1.5)) is None  # float32: torch's rounding
