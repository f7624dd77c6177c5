"""P5 smoke (TESTING.md): simulation-based calibration of ``method="amortized"``.

200 data sets drawn from the model; for each, 100 posterior draws by importance sampling
from a briefly trained proposal mixed with the prior; the rank of the true value among the
draws (ties broken uniformly at random) of each test quantity must be uniform over 10 bins:
χ² p > 0.01 / K over the K quantities (size, depth, root production, log prior, log
likelihood of the data, the program's output at three inputs). Its broken twin (weights
without the proposal's density) must fail.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from scipy import stats

import ppl
from inference import infer
from inference.amortized import train_proposal
from inference.amortized.mixture import MixedProposal
from inference.api import RunWarning
from ppl import dist

PRIOR = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=3)
X = np.linspace(-1.0, 1.0, 6)
NOISE = 0.8
PROBES = np.array([-0.5, 0.3, 0.9])
DATASETS, DRAWS, BINS = 200, 100, 10


def model(x, y=None):
    f = ppl.sample("f", PRIOR)
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), NOISE), obs=y)


def quantities(phi: Any, y: np.ndarray) -> np.ndarray:
    out = np.broadcast_to(np.asarray(phi(PROBES), dtype=float), PROBES.shape)
    lik = float(dist.Normal(torch.as_tensor(np.broadcast_to(phi(X), X.shape).astype(float)),
                            NOISE).log_prob(torch.as_tensor(y)).sum())
    return np.array([phi.size, phi.depth, phi.prods[0], PRIOR.log_density(phi), lik, *out])


def sbc_pvalues(proposal: Any, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ranks = []
    for d in range(DATASETS):
        truth = PRIOR.sample_program(rng)
        y = np.broadcast_to(truth(X), X.shape) + NOISE * rng.standard_normal(len(X))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RunWarning)
            post = infer(model, X, y=y, method="amortized", proposal=proposal,
                         num_particles=500, num_samples=DRAWS, num_chains=1, seed=d)
        true_q = quantities(truth, y)
        draws = np.array([quantities(p, y) for p in post.samples["f"].reshape(-1)])
        below = (draws < true_q).sum(axis=0)
        ties = np.isclose(draws, true_q, rtol=0, atol=1e-12).sum(axis=0)
        ranks.append(below + rng.integers(0, ties + 1))
    ranks = np.array(ranks)  # (datasets, K), each in 0..DRAWS
    bins = np.minimum(ranks * BINS // (DRAWS + 1), BINS - 1)
    return np.array([stats.chisquare(np.bincount(bins[:, k], minlength=BINS)).pvalue
                     for k in range(ranks.shape[1])])


@pytest.fixture(scope="module")
def trained():
    return train_proposal(model, X, y=np.zeros(len(X)), num_steps=60, batch_size=32,
                          hidden=16, seed=0, progress=False)


def test_amortized_posteriors_are_calibrated(trained) -> None:
    p = sbc_pvalues(trained, seed=1)
    assert p.min() > 0.01 / len(p), p


def test_sbc_rejects_weights_without_the_proposal_density(trained, monkeypatch) -> None:
    """Broken twin: log q_mix left out of the weights (the draws follow p(φ | y) q(φ))."""
    real = MixedProposal.sample
    monkeypatch.setattr(MixedProposal, "sample", lambda self, rng: (real(self, rng)[0], 0.0))
    monkeypatch.setattr(MixedProposal, "log_prob", lambda self, phi: 0.0)
    p = sbc_pvalues(trained, seed=1)
    assert p.min() < 0.01 / len(p), p
