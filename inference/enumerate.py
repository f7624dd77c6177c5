"""Exact posteriors of models whose latent sites are all finite (the reference answer).

Every program of each program site's (finite) prior and every value of each discrete site is
scored by the model's log joint; normalising gives the exact posterior. Draws for ArviZ are
then iid from it.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd
import torch

from inference.target import Target
from ppl.errors import PPLError
from ppl.trace import CONTINUOUS, DISCRETE, PROGRAM

__all__ = ["enumerate_posterior"]


def _support(site: Any) -> list[Any]:
    if site.kind == PROGRAM:
        return [p for p, _ in site.fn.enumerate()]
    finite = getattr(site.fn, "has_enumerate_support", False)
    if site.kind == DISCRETE and finite and not site.shape:
        return list(site.fn.enumerate_support(expand=False).reshape(-1))
    what = ("continuous" if site.kind == CONTINUOUS else
            "a vector of discretes" if finite else "discrete with an infinite support")
    raise PPLError(f"method='enumerate' needs every latent site finite; site '{site.name}' is "
                   f"{what}.")


def enumerate_posterior(target: Target, num_draws: int, num_chains: int,
                        rng: np.random.Generator) -> dict[str, Any]:
    """The exact posterior table and iid draws from it.

    Returns a dict with ``samples``, ``stats`` (lp), ``log_lik``, ``exact`` (per program
    site: key, program, probability) and ``log_evidence`` (log p(data)).
    """
    sites = list(target.latents.values())
    supports = [_support(s) for s in sites]
    combos = list(itertools.product(*supports))
    lps = np.empty(len(combos))
    pointwise: list[dict[str, np.ndarray]] = []
    for i, combo in enumerate(combos):
        values = {s.name: v for s, v in zip(sites, combo, strict=True)}
        if i == 0:
            target.check_fast([values])
        lps[i] = target.log_joint(values)
        pointwise.append(target.pointwise(values))
    if not np.any(np.isfinite(lps)):
        raise PPLError("Every latent configuration has log joint -inf: the data are "
                       "impossible under the model.")
    log_z = float(np.logaddexp.reduce(lps[np.isfinite(lps)]))
    probs = np.exp(lps - log_z)
    picks = rng.choice(len(combos), size=(num_chains, num_draws), p=probs / probs.sum())
    samples: dict[str, np.ndarray] = {}
    for k, s in enumerate(sites):
        arr = np.empty(picks.shape, dtype=object)
        for idx in np.ndindex(picks.shape):
            arr[idx] = combos[picks[idx]][k]
        samples[s.name] = arr if s.kind == PROGRAM else np.vectorize(
            lambda v: float(v) if isinstance(v, torch.Tensor) else v)(arr).astype(float)
    log_lik = {name: np.stack([pointwise[i][name] for i in picks.reshape(-1)]).reshape(
        picks.shape + pointwise[0][name].shape) for name in target.observed}
    exact = {}
    for k, s in enumerate(sites):
        if s.kind == PROGRAM:
            rows = pd.DataFrame({"program": [c[k] for c in combos], "probability": probs})
            rows["key"] = [p.key for p in rows["program"]]
            exact[s.name] = rows
    return {"samples": samples, "stats": {"lp": lps[picks]}, "log_lik": log_lik,
            "exact": exact, "log_evidence": log_z if math.isfinite(log_z) else None}
