"""Tests of inference/target.py: which sites a model has.

Pyro records ``deterministic`` values as observed sample sites (flagged
``infer["_deterministic"]``); they are derived quantities, not data, so they must not become
observed sites (nor enter the log-likelihood). A latent site whose distribution cannot sample
(``ImproperUniform``, a flat prior) must still be discovered.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

import ppl
from benchmarks.posteriordb import kilpisjarvi, reference
from inference.target import CONTINUOUS, Target
from ppl import dist

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
