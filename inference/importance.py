"""Importance sampling: particles, weights, multinomial resampling into draws; ESS and
PSIS k̂ are reported.

By default every latent site comes from its prior and the weight is the likelihood (a
baseline). With ``proposals`` (``method="amortized"``), a program site is drawn instead
from its proposal q (a trained network mixed with the prior,
:class:`inference.amortized.mixture.MixedProposal`) and the other latents from their
priors given it; the weight is then

    log w = log p(y | φ, θ) + log π₀(φ) − log q(φ),

so the weighted particles target the same posterior.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from inference._arviz import az
from inference.target import Target
from ppl.errors import PPLError
from ppl.trace import PROGRAM, log_joint, seeded, trace_model

__all__ = ["SiteProposal", "importance_posterior"]


class SiteProposal(Protocol):
    """What importance sampling needs of a proposal for one site."""

    def sample(self, rng: np.random.Generator) -> tuple[Any, float]:
        """A value and its log proposal density."""

    def log_prob(self, value: Any) -> float:
        """The log proposal density of ``value``."""


def importance_posterior(target: Target, num_particles: int, num_draws: int, num_chains: int,
                         rng: np.random.Generator, seed: int,
                         proposals: Mapping[str, SiteProposal] | None = None
                         ) -> dict[str, Any]:
    """Draw ``num_particles`` (from the prior, or the program sites from ``proposals``),
    weight them (module docstring), resample into ``num_chains × num_draws`` draws."""
    proposals = dict(proposals or {})
    particles: list[dict[str, Any]] = []
    log_w = np.empty(num_particles)
    joint = np.empty(num_particles)
    pointwise = []
    with seeded(seed):
        for i in range(num_particles):
            drawn = {name: q.sample(rng) for name, q in proposals.items()}
            values = {name: value for name, (value, _) in drawn.items()}
            tr = trace_model(target.conditioned(values), target.args, target.kwargs,
                             log_prob=True)
            lw = sum(float(tr.nodes[n]["log_prob_sum"]) for n in target.observed)
            lw += sum(float(tr.nodes[name]["log_prob_sum"]) - log_q
                      for name, (_, log_q) in drawn.items())
            log_w[i] = lw if math.isfinite(lw) else -math.inf
            lj = log_joint(tr)
            joint[i] = lj if math.isfinite(lj) else -math.inf
            particles.append({n: tr.nodes[n]["value"] for n in target.latents})
            pointwise.append({n: tr.nodes[n]["log_prob"].detach().cpu().numpy().astype(float)
                              for n in target.observed})
    finite = np.isfinite(log_w)
    if not finite.any():
        source = "proposal" if proposals else "prior"
        raise PPLError(f"All {num_particles} {source} particles have zero likelihood (or an "
                       f"invalid program): importance sampling from the {source} cannot work "
                       "here; use method='mcmc'.")
    w = np.exp(log_w - log_w[finite].max())
    w /= w.sum()
    ess = float(1.0 / np.sum(w**2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, khat = az.psislw(np.where(finite, log_w, -1e300))  # type: ignore[no-untyped-call]
    picks = rng.choice(num_particles, size=(num_chains, num_draws), p=w)
    samples: dict[str, np.ndarray] = {}
    for name, site in target.latents.items():
        if site.kind == PROGRAM:
            arr = np.empty(picks.shape, dtype=object)
            for idx in np.ndindex(picks.shape):
                arr[idx] = particles[picks[idx]][name]
            samples[name] = arr
        else:
            samples[name] = np.stack([particles[i][name].detach().numpy()
                                      for i in picks.reshape(-1)]).reshape(
                picks.shape + tuple(site.shape))
    log_lik = {n: np.stack([pointwise[i][n] for i in picks.reshape(-1)]).reshape(
        picks.shape + pointwise[0][n].shape) for n in target.observed}
    log_evidence = float(np.logaddexp.reduce(log_w[finite]) - math.log(num_particles))
    return {"samples": samples, "stats": {"lp": joint[picks], "log_weight": log_w[picks]},
            "log_lik": log_lik, "log_evidence": log_evidence,
            "ess": ess, "khat": float(np.asarray(khat))}
