"""Importance sampling from the prior (a baseline): particles from the model's prior, weights
from the likelihood, multinomial resampling into draws. ESS and PSIS k̂ are reported."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from inference._arviz import az
from inference.target import Target
from ppl.errors import PPLError
from ppl.trace import PROGRAM, log_joint, seeded, trace_model

__all__ = ["importance_posterior"]


def importance_posterior(target: Target, num_particles: int, num_draws: int, num_chains: int,
                         rng: np.random.Generator, seed: int) -> dict[str, Any]:
    """Draw ``num_particles`` from the prior, weight by the likelihood, resample."""
    particles: list[dict[str, Any]] = []
    log_w = np.empty(num_particles)
    joint = np.empty(num_particles)
    pointwise = []
    with seeded(seed):
        for i in range(num_particles):
            tr = trace_model(target.conditioned(), target.args, target.kwargs, log_prob=True)
            lw = sum(float(tr.nodes[n]["log_prob_sum"]) for n in target.observed)
            log_w[i] = lw if math.isfinite(lw) else -math.inf
            lj = log_joint(tr)
            joint[i] = lj if math.isfinite(lj) else -math.inf
            particles.append({n: tr.nodes[n]["value"] for n in target.latents})
            pointwise.append({n: tr.nodes[n]["log_prob"].detach().cpu().numpy().astype(float)
                              for n in target.observed})
    finite = np.isfinite(log_w)
    if not finite.any():
        raise PPLError(f"All {num_particles} prior particles have zero likelihood (or an "
                       "invalid program): importance sampling from the prior cannot work here; "
                       "use method='mcmc'.")
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
    return {"samples": samples, "stats": {"lp": joint[picks], "log_weight": log_w[picks]},
            "log_lik": log_lik,
            "ess": ess, "khat": float(np.asarray(khat))}
