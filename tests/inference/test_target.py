"""Tests of inference/target.py: which sites a model has.

Pyro records ``deterministic`` values as observed sample sites (flagged
``infer["_deterministic"]``); they are derived quantities, not data, so they must not become
observed sites (nor enter the log-likelihood). A latent site whose distribution cannot sample
(``ImproperUniform``, a flat prior) must still be discovered. Target and ``ppl.World`` find
and classify sites with the same code (:mod:`ppl.trace`), so they agree.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import ppl
from benchmarks.posteriordb import kilpisjarvi, reference
from inference.mcmc.plan import make_plan
from inference.target import Target
from ppl import dist
from ppl.errors import PPLError
from ppl.trace import CONTINUOUS, DISCRETE

Y = np.array([0.5, 1.5])


def model_with_deterministic(y: Any = None) -> None:
    mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
    ppl.deterministic("shifted", mu + 1.0)
    with ppl.plate("data", 2):
        ppl.sample("y", dist.Normal(mu, 1.0), obs=y)


def test_deterministic_sites_are_not_observed() -> None:
    target = Target(model_with_deterministic, (), {"y": Y})
    assert list(target.observed) == ["y"]
    assert list(target.latents) == ["mu"]
    assert list(target.pointwise({"mu": torch.tensor(0.0)})) == ["y"]


def test_improper_prior_is_discovered() -> None:
    target = Target(kilpisjarvi, reference("kilpisjarvi").args, {})
    assert {n: s.kind for n, s in target.latents.items()} == {
        "alpha": CONTINUOUS, "beta": CONTINUOUS, "sigma": CONTINUOUS}
    assert list(target.observed) == ["y"]


TINY = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
X = np.linspace(0.0, 1.0, 4)


def mixed_model(x: Any, y: Any = None) -> None:
    f = ppl.sample("f", TINY)
    sigma = ppl.sample("sigma", dist.HalfNormal(1.0))
    ppl.sample("k", dist.Categorical(torch.tensor([0.5, 0.5])))
    with ppl.plate("data", len(x)):
        mean = ppl.deterministic("mean", f(x))
        ppl.sample("y", dist.Normal(mean, sigma), obs=y)
    ppl.factor("penalty", -sigma)


def test_target_and_world_see_the_same_sites() -> None:
    """Both discover the model with ppl.trace: same latent sites, kinds and data."""
    world = ppl.World(mixed_model, X, y=X)
    target = Target(mixed_model, (X,), {"y": X})
    assert {n: s.kind for n, s in target.latents.items()} == {
        n: world.kind(n) for n in world.latent}
    assert list(target.observed) == world.observed == ["y"]
    assert target.latents["f"].fn is TINY and target.latents["f"].shape == ()
    assert target.max_plate_nesting == 1


def test_a_discrete_site_without_a_finite_support_has_no_gibbs_block() -> None:
    def model() -> None:
        ppl.sample("n", dist.Poisson(3.0))

    target = Target(model, (), {})
    assert target.latents["n"].kind == DISCRETE
    with pytest.raises(PPLError, match=r"'n' \(Poisson\) has no finite support"):
        make_plan(target.latents)


def test_the_temperature_is_set_at_construction() -> None:
    def model(y=None):
        mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
        ppl.sample("y", dist.Normal(mu, 1.0), obs=y)

    hot = Target(model, (), {"y": 2.0}, beta=0.25)
    cold = Target(model, (), {"y": 2.0})
    values = {"mu": torch.tensor(0.0, dtype=torch.float64)}
    prior = float(dist.Normal(0.0, 1.0).log_prob(torch.tensor(0.0)))
    assert hot.beta == 0.25 and cold.beta == 1.0
    lik = float(dist.Normal(0.0, 1.0).log_prob(torch.tensor(2.0)))
    for target in (hot, cold):  # the trace path (fast off), then the scoring fast path
        for fast in (False, True):
            target.fast = fast
            assert target.log_lik(values) == pytest.approx(lik)
            assert target.log_joint(values) == pytest.approx(prior + target.beta * lik)
    with pytest.raises(PPLError, match="beta"):
        Target(model, (), {"y": 2.0}, beta=0.0)


def test_pandas_columns_and_jax_arrays_are_data() -> None:
    """A data frame's columns, as scientists pass them, and jax arrays become float64
    tensors (before, the model failed inside torch: "Input arguments must all be instances
    of Number, torch.Tensor ...")."""
    import jax.numpy as jnp
    import pandas as pd

    def model(x, y=None):
        f = ppl.sample("f", ppl.ProgramPrior("arith", inputs=["x"], max_depth=3))
        with ppl.plate("data", len(x)):
            ppl.sample("y", ppl.dist.Normal(f(x), 0.5), obs=y)

    frame = pd.DataFrame({"x": np.linspace(0.5, 2.0, 8), "y": np.linspace(1.0, 4.0, 8)})
    target = Target(model, (frame["x"],), {"y": frame["y"]})
    assert target.args[0].dtype == torch.float64
    assert target.kwargs["y"].tolist() == frame["y"].tolist()
    target = Target(model, (jnp.asarray(frame["x"].to_numpy()),), {"y": frame["y"].to_numpy()})
    assert target.args[0].dtype == torch.float64
    assert target.args[0].tolist() == pytest.approx(frame["x"].tolist(), abs=1e-6)
