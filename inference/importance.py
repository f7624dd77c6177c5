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
from inference.config import CACHE_SIZE
from inference.mcmc.blocks.base import Workspace
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
    weight them (module docstring), resample into ``num_chains × num_draws`` draws.

    When the proposals cover every latent site and the model's likelihood of the program
    is incremental (:mod:`inference.mcmc.fastlik`, verified against Pyro traces), particles
    are scored by a numpy evaluation each instead of a model run (``stats["fast"]``)."""
    proposals = dict(proposals or {})
    drawn = None
    if proposals and set(proposals) == set(target.latents):
        drawn = [{name: q.sample(rng) for name, q in proposals.items()}
                 for _ in range(num_particles)]
        out = _fast(target, drawn)
        if out is not None:
            particles, log_w, joint = out
            pointwise: list[dict[str, np.ndarray]] | None = None
            return _resample(target, particles, log_w, joint, pointwise, rng, num_draws,
                             num_chains, bool(proposals), fast=True)
    particles = []
    log_w = np.empty(num_particles)
    joint = np.empty(num_particles)
    pointwise = []
    with seeded(seed):
        for i in range(num_particles):
            picked = drawn[i] if drawn is not None else {
                name: q.sample(rng) for name, q in proposals.items()}
            values = {name: value for name, (value, _) in picked.items()}
            tr = trace_model(target.conditioned(values), target.args, target.kwargs,
                             log_prob=True)
            lw = sum(float(tr.nodes[n]["log_prob_sum"]) for n in target.observed)
            lw += sum(float(tr.nodes[name]["log_prob_sum"]) - log_q
                      for name, (_, log_q) in picked.items())
            log_w[i] = lw if math.isfinite(lw) else -math.inf
            lj = log_joint(tr)
            joint[i] = lj if math.isfinite(lj) else -math.inf
            particles.append({n: tr.nodes[n]["value"] for n in target.latents})
            pointwise.append({n: tr.nodes[n]["log_prob"].detach().cpu().numpy().astype(float)
                              for n in target.observed})
    return _resample(target, particles, log_w, joint, pointwise, rng, num_draws, num_chains,
                     bool(proposals), fast=False)


def _fast(target: Target, drawn: list[dict[str, tuple[Any, float]]]
          ) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray] | None:
    """(particles, log weights, log joints) scored by the incremental likelihood, or None
    when the model has none (one program site, likelihood verified on the particles)."""
    if len(target.latents) != 1:
        return None
    site = next(iter(target.latents.values()))
    if site.kind != PROGRAM:
        return None
    states = [{site.name: d[site.name][0]} for d in drawn[:5]]
    if not target.check_fast(states):
        return None
    workspace = Workspace(CACHE_SIZE)
    view = workspace.view(target, site, states[0])
    if view is None:
        return None
    joint = np.array([view.log_joint(d[site.name][0]) for d in drawn])
    joint[~np.isfinite(joint)] = -math.inf
    log_w = joint - np.array([d[site.name][1] for d in drawn])
    log_w[~np.isfinite(log_w)] = -math.inf
    return [{site.name: d[site.name][0]} for d in drawn], log_w, joint


def _resample(target: Target, particles: list[dict[str, Any]], log_w: np.ndarray,
              joint: np.ndarray, pointwise: list[dict[str, np.ndarray]] | None,
              rng: np.random.Generator, num_draws: int, num_chains: int, proposed: bool,
              fast: bool) -> dict[str, Any]:
    """ESS, k̂, log evidence and ``num_chains × num_draws`` draws resampled by weight
    (pointwise log-likelihoods computed for the picked particles when not given)."""
    num_particles = len(particles)
    finite = np.isfinite(log_w)
    if not finite.any():
        source = "proposal" if proposed else "prior"
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
    if pointwise is None:  # the fast path: score only the particles drawn
        unique = {int(i) for i in picks.reshape(-1)}
        scored = {i: target.pointwise(particles[i]) for i in unique}
        pointwise = [scored.get(i, {}) for i in range(num_particles)]
    first = pointwise[int(picks.reshape(-1)[0])]
    log_lik = {n: np.stack([pointwise[i][n] for i in picks.reshape(-1)]).reshape(
        picks.shape + first[n].shape) for n in target.observed}
    log_evidence = float(np.logaddexp.reduce(log_w[finite]) - math.log(num_particles))
    return {"samples": samples, "stats": {"lp": joint[picks], "log_weight": log_w[picks]},
            "log_lik": log_lik, "log_evidence": log_evidence, "fast": fast,
            "ess": ess, "khat": float(np.asarray(khat))}
