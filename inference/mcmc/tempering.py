"""Likelihood-tempered parallel tempering (MOVES.md, "Tempering").

Rung k targets π₀ · L^{β_k} with 1 = β_0 > β_1 > … > β_{K−1} > 0 on a geometric ladder.
After every sweep, adjacent rungs (k, k+1) propose to exchange their states, pairs of one
parity at a time (even pairs after even sweeps, odd pairs after odd ones), with

    α = min(1, (L(φ_{k+1}) / L(φ_k))^{β_k − β_{k+1}})

Only rung 0's draws are posterior draws; each pair's swap acceptance is reported.
"""

from __future__ import annotations

import math

import numpy as np

from inference.mcmc.gibbs import Gibbs, GibbsState
from ppl.errors import PPLError

__all__ = ["geometric_ladder", "swap"]


def geometric_ladder(num_rungs: int, beta_min: float) -> np.ndarray:
    """β_k = beta_min^(k / (K − 1)), k = 0..K−1 (β_0 = 1).

    Examples
    --------
    >>> geometric_ladder(3, 0.01).tolist()
    [1.0, 0.1, 0.01]
    """
    if not isinstance(num_rungs, int) or num_rungs < 1:
        raise PPLError(f"num_rungs must be a positive integer; got {num_rungs!r}.")
    if not 0.0 < beta_min < 1.0:
        raise PPLError(f"beta_min must be in (0, 1); got {beta_min!r}.")
    if num_rungs == 1:
        return np.ones(1)
    return np.asarray(beta_min ** (np.arange(num_rungs) / (num_rungs - 1)))


def swap(rng: np.random.Generator, kernels: list[Gibbs], states: list[GibbsState],
         parity: int) -> tuple[list[GibbsState], np.ndarray]:
    """Propose exchanges between rungs (k, k+1) for k = parity, parity + 2, …

    Returns the new states and, per pair, 1.0 (accepted), 0.0 (rejected) or NaN (not
    proposed this time).
    """
    states = list(states)
    outcome = np.full(len(states) - 1, np.nan)
    lik = [k.log_parts(s.values)[1] for k, s in zip(kernels, states, strict=True)]
    for k in range(parity, len(states) - 1, 2):
        b_hi, b_lo = kernels[k].target.beta, kernels[k + 1].target.beta
        log_alpha = (b_hi - b_lo) * (lik[k + 1] - lik[k])
        accept = math.isfinite(log_alpha) and math.log(rng.random()) < min(0.0, log_alpha)
        outcome[k] = float(accept)
        if accept:
            hi, lo = states[k].values, states[k + 1].values
            states[k] = states[k]._replace(
                values=lo, log_joint=kernels[k].log_joint_at(lo, b_hi))
            states[k + 1] = states[k + 1]._replace(
                values=hi, log_joint=kernels[k + 1].log_joint_at(hi, b_lo))
            lik[k], lik[k + 1] = lik[k + 1], lik[k]
    return states, outcome
