"""The noise block: a Normal likelihood's scale drawn from its residuals, then an MH test.

For a scalar positive site σ whose value enters the scale of observed Normal sites one for
one (scale = σ + c at every point, c fixed by the other sites: ``Normal(f(x), sigma)`` or
``Normal(f(x), sigma + floor)``), the likelihood's own conditional of t = σ + c given the
residuals r = y − loc of the N points is, under a flat prior on t and temperature β,

    p(t | r) ∝ t^(−βN) exp(−β S / (2 t²)),   S = Σ r²,

that is t² ~ InverseGamma((βN − 1) / 2, β S / 2). The block draws t² from it, sets
σ' = t − c, and accepts with the Metropolis–Hastings ratio of the model's own log joint
(its prior on σ included) and of this proposal's densities at both states (each read from
its own state's residuals and offset), so the update is exact for any prior; with a flat
prior on the scale it is a Gibbs draw (acceptance 1). At a state where the proposal is not
defined (offsets that differ between points, S = 0, βN ≤ 1) the block stays put, and a
proposal to such a state is rejected: the kernel is a fixed state-dependent MH proposal,
so it leaves the target invariant.

Why: the noise scale's NUTS transition was 26–41% of a Nguyen run's time (issue 11); this
update costs two scoring runs of the model and mixes in one step.

Examples
--------
>>> from scipy.integrate import quad
>>> round(quad(lambda s: math.exp(log_q(s, 0.1, 20.0, 40, 0.5)), -0.1, 50)[0], 9)
1.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from inference.mcmc.blocks.base import BlockInfo, Context, GibbsState, accept
from inference.target import SiteInfo, Target

__all__ = ["log_q", "noise_sites", "normal_terms", "step"]

RTOL = 1e-6
"""Relative tolerance of "the scale moves one for one with σ" and of "one offset c at every
point" (float32 sites round at about 1e-7)."""


def _base(fn: Any) -> Any:
    while hasattr(fn, "base_dist"):
        fn = fn.base_dist
    return fn


def normal_terms(target: Target, values: Mapping[str, Any], names: list[str]
                 ) -> tuple[float, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] | None:
    """The tempered log joint at ``values`` and, per observed site in ``names``, the
    (y, loc, scale) arrays of its Normal likelihood broadcast to y's shape; None when a
    site is not Normal there.

    Examples
    --------
    >>> import numpy as np, ppl
    >>> from ppl import dist
    >>> def model(y=None):
    ...     s = ppl.sample("s", dist.HalfNormal(1.0))
    ...     ppl.sample("y", dist.Normal(0.0, s + 0.5), obs=y)
    >>> target = Target(model, (), {"y": np.array(1.0)})
    >>> lj, [(y, loc, scale)] = normal_terms(target, {"s": torch.tensor(0.5)}, ["y"])
    >>> float(y), float(loc), float(scale)
    (1.0, 0.0, 1.0)
    """
    out = []
    if target.fast:
        rec = target.record(values)
        lj = float(torch.as_tensor(rec.total(target.beta)).detach())
        sites = {name: (rec.sites[name][0], rec.sites[name][1]) for name in names}
    else:
        tr = target.trace(values)
        lj = target.log_joint(values)
        sites = {name: (tr.nodes[name]["fn"], tr.nodes[name]["value"]) for name in names}
    for name in names:
        fn, value = sites[name]
        fn = _base(fn)
        if not isinstance(fn, torch.distributions.Normal):
            return None
        y = np.asarray(torch.as_tensor(value).detach().cpu().numpy(), dtype=np.float64)
        loc, scale = (np.broadcast_to(np.asarray(t.detach().cpu().numpy(), dtype=np.float64),
                                      y.shape) for t in (fn.loc, fn.scale))
        out.append((y, loc, scale))
    return (-math.inf if math.isnan(lj) else lj), out


def noise_sites(target: Target, values: Mapping[str, Any], site: SiteInfo) -> list[str]:
    """The observed Normal sites whose scale moves one for one with the scalar positive
    site ``site`` at ``values`` (tried at σ and 1.5 σ); empty if none (or ``site`` is not a
    scalar positive site).

    Examples
    --------
    >>> import numpy as np, ppl
    >>> from ppl import dist
    >>> def model(y=None):
    ...     s = ppl.sample("s", dist.HalfNormal(1.0))
    ...     ppl.sample("y", dist.Normal(0.0, s), obs=y)
    ...     ppl.sample("z", dist.Normal(0.0, 2 * s), obs=y)
    >>> target = Target(model, (), {"y": np.array(1.0)})
    >>> noise_sites(target, {"s": torch.tensor(0.5)}, target.latents["s"])
    ['y']
    """
    value = values.get(site.name)
    support = getattr(site.fn, "support", None)
    if (site.shape != () or value is None or not torch.is_tensor(value)
            or value.numel() != 1 or support is None
            or float(getattr(support, "lower_bound", -1.0)) != 0.0
            or not math.isinf(float(getattr(support, "upper_bound", math.inf)))):
        return []
    sigma = float(value.detach())
    if not sigma > 0:
        return []
    moved = dict(values)
    moved[site.name] = value * 1.5
    found = []
    for name in target.observed:
        try:
            before = normal_terms(target, values, [name])
            after = normal_terms(target, moved, [name])
        except Exception:  # a model the scorer cannot run here: no noise block
            return []
        if before is not None and after is not None and np.allclose(
                after[1][0][2] - before[1][0][2], 0.5 * sigma, rtol=0.0, atol=RTOL * sigma):
            found.append(name)
    return found


def log_q(sigma: float, offset: float, sse: float, n: int, beta: float) -> float:
    """log density of the proposal at σ: t = σ + offset with t² ~ InverseGamma((βn − 1)/2,
    β·sse/2); −inf outside t > 0, NaN where the proposal is not defined."""
    a, b = 0.5 * (beta * n - 1.0), 0.5 * beta * sse
    if not (a > 0 and b > 0 and math.isfinite(b)):
        return math.nan
    t = sigma + offset
    if not t > 0:
        return -math.inf
    v = t * t
    return a * math.log(b) - math.lgamma(a) - (a + 1.0) * math.log(v) - b / v + \
        math.log(2.0 * t)


def _proposal_terms(target: Target, values: Mapping[str, Any], names: list[str],
                    site: str) -> tuple[float, float, float, int] | None:
    """(log joint, offset c, S, N) at ``values``; None where the proposal is undefined."""
    found = normal_terms(target, values, names)
    if found is None:
        return None
    lj, terms = found
    sigma = float(torch.as_tensor(values[site]).detach())
    offsets = np.concatenate([(s - sigma).reshape(-1) for _, _, s in terms])
    resid = np.concatenate([(y - loc).reshape(-1) for y, loc, _ in terms])
    c = float(offsets[0])
    if not np.allclose(offsets, c, rtol=0.0, atol=RTOL * max(abs(sigma), abs(c), 1e-300)):
        return None
    sse = float(resid @ resid)
    if not (math.isfinite(sse) and sse > 0):
        return None
    return lj, c, sse, resid.size


def step(rng: np.random.Generator, ctx: Context, state: GibbsState, site: SiteInfo,
         names: list[str]) -> tuple[GibbsState, BlockInfo]:
    """One update of ``site`` from the residuals of the observed sites ``names``."""
    target, beta = ctx.target, ctx.target.beta
    here = _proposal_terms(target, state.values, names, site.name)
    _, c, sse, n = here if here is not None else (0.0, 0.0, 0.0, 0)
    a, b = 0.5 * (beta * n - 1.0), 0.5 * beta * sse
    if not (a > 0 and b > 0):  # the proposal is not defined here: stay
        return state, BlockInfo((0.0,))
    v = b / rng.gamma(a)
    sigma2 = math.sqrt(v) - c
    if not sigma2 > 0:
        return state, BlockInfo((0.0,))
    old = state.values[site.name]
    value = torch.as_tensor(sigma2, dtype=old.dtype).reshape(old.shape)
    values = dict(state.values)
    values[site.name] = value
    there = _proposal_terms(target, values, names, site.name)
    if there is None:
        return state, BlockInfo((0.0,))
    lj2, c2, sse2, n2 = there
    ratio = log_q(float(old.detach()), c2, sse2, n2, beta) - log_q(sigma2, c, sse, n, beta)
    if math.isnan(ratio):
        return state, BlockInfo((0.0,))
    new, info = accept(rng, target, state, site.name, value, ratio, lj2)
    return new, BlockInfo((info.alpha,), accepted=info.accepted)
