"""The noise block: a Normal likelihood's scale drawn from its residuals, then an MH test.

For a scalar positive site σ whose value enters the scale of observed Normal sites one for
one (scale = σ + c at every point, c fixed by the other sites: ``Normal(f(x), sigma)`` or
``Normal(f(x), sigma + floor)``), the likelihood's own conditional of t = σ + c given the
residuals r = y − loc of the N points is, under a flat prior on t and temperature β,

    p(t | r) ∝ t^(−βN) exp(−β S / (2 t²)),   S = Σ r²,

that is t² ~ InverseGamma((βN − 1) / 2, β S / 2). Half the time the block draws t² from
it and sets σ' = t − c; the other half it takes a random walk on log σ (scale
:data:`RW_SCALE`), which moves σ where the first cannot: with an exact fit S ≈ 0 puts t
below the floor c, and only the walk brings σ down to it. The draw is accepted with the
Metropolis–Hastings ratio of the model's own log joint (its prior on σ included) and of the
mixture's densities at both states (each read from its own state's residuals and offset),
so the update is exact for any prior and any model. At a state where the residuals'
proposal is not defined (offsets that differ between points, S = 0, βN ≤ 1) the mixture is
the walk alone, and that is the proposal's density there: a fixed state-dependent MH
proposal, so the target stays invariant.

Why: the noise scale's NUTS transition was 26–41% of a Nguyen run's time (issue 11); this
update mixes in one step. When a program site's incremental likelihood links σ
(:class:`inference.mcmc.fastlik.NoiseLink`: σ enters only these sites' scale, as σ + c), the
residuals come from the program's cached outputs and the log joint at σ' from the view at σ'
(:meth:`~inference.mcmc.fastlik.ProgramLikelihood.with_noise`): no model run, and the
program block's next view is that same one. Otherwise each update costs two scoring runs.

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
from ppl.trace import PROGRAM

__all__ = ["RW_SCALE", "log_mix", "log_q", "noise_sites", "normal_terms", "step"]

RW_SCALE = 1.0
"""Scale of the random walk on log σ, the other half of the proposal: it moves σ where the
residuals' proposal cannot (an exact fit: Σr² ≈ 0 puts that proposal below the floor)."""
RTOL = 1e-6
"""Relative tolerance of "the scale moves one for one with σ" and of "one offset c at every
point" (float32 sites round at about 1e-7)."""
MIN_TEMPERED_POINTS = 2.0
"""The residuals' proposal is used only where βN ≥ this: its Gamma shape (βN − 1)/2 is then
at least 1/2. A shape just above 0 (βN = 1 + 1e-16, e.g. 10 points at the rung β = 0.1 of
a geometric ladder) draws 0 in floating point and t² = S/0; below the bound the block
takes the random walk only (forward and reverse alike: the bound is part of the proposal)."""


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


def _terms(target: Target, values: Mapping[str, Any], names: list[str], site: str
           ) -> tuple[float, tuple[float, float, int] | None]:
    """(log joint, (offset c, S, N)) at ``values``; the second is None where the residuals'
    proposal is not defined (a scale that is not σ + c at every point, S = 0)."""
    found = normal_terms(target, values, names)
    if found is None:
        return target.log_joint(values), None
    lj, terms = found
    sigma = float(torch.as_tensor(values[site]).detach())
    offsets = np.concatenate([(s - sigma).reshape(-1) for _, _, s in terms])
    resid = np.concatenate([(y - loc).reshape(-1) for y, loc, _ in terms])
    c = float(offsets[0])
    if not np.allclose(offsets, c, rtol=0.0, atol=RTOL * max(abs(sigma), abs(c), 1e-300)):
        return lj, None
    sse = float(resid @ resid)
    if not (math.isfinite(sse) and sse > 0
            and target.beta * resid.size >= MIN_TEMPERED_POINTS):
        return lj, None
    return lj, (c, sse, resid.size)


def _linked_view(ctx: Context, values: Mapping[str, Any], site: str, names: list[str]
                 ) -> tuple[SiteInfo, Any] | None:
    """(program site, its view at ``values``) when that view links noise site ``site`` with
    exactly the observed sites ``names``; else None."""
    for p in ctx.target.latents.values():
        if p.kind != PROGRAM:
            continue
        view = ctx.workspace.view(ctx.target, p, values)
        link = None if view is None else view.noise
        if link is not None and link.site == site and set(link.names) == set(names):
            return p, view
    return None


def _view_terms(view: Any, program: Any, beta: float) -> tuple[float, float, int] | None:
    """(c, S, N) of the residuals' proposal read from a linked view; None where it is not
    defined (as :func:`_terms`)."""
    sse, n = view.noise_sse(program)
    if not (math.isfinite(sse) and sse > 0 and beta * n >= MIN_TEMPERED_POINTS):
        return None
    return view.noise.offset, sse, n


def log_mix(to: float, frm: float, params: tuple[float, float, int] | None, beta: float
            ) -> float:
    """log density of the block's proposal of σ = ``to`` from σ = ``frm``: half the
    residuals' proposal (``params`` = (c, S, N) of the state proposed from; absent when
    None) and half a random walk on log σ of scale :data:`RW_SCALE`.

    Examples
    --------
    >>> from scipy.integrate import quad
    >>> round(quad(lambda s: math.exp(log_mix(s, 0.3, (0.1, 2.0, 10), 1.0)), 0, 60,
    ...            points=[0.3])[0], 6)
    1.0
    """
    z = (math.log(to) - math.log(frm)) / RW_SCALE if to > 0 else math.inf
    rw = -0.5 * z * z - math.log(RW_SCALE * math.sqrt(2 * math.pi)) - math.log(to) \
        if math.isfinite(z) else -math.inf
    if params is None:
        return rw
    ig = log_q(to, params[0], params[1], params[2], beta)
    return float(np.logaddexp(math.log(0.5) + ig, math.log(0.5) + rw))


def step(rng: np.random.Generator, ctx: Context, state: GibbsState, site: SiteInfo,
         names: list[str]) -> tuple[GibbsState, BlockInfo]:
    """One update of ``site``: a draw from the mixture of :func:`log_mix` (the residuals'
    proposal, or a random walk on log σ), then the MH test."""
    target, beta = ctx.target, ctx.target.beta
    old = state.values[site.name]
    sigma = float(old.detach())
    linked = _linked_view(ctx, state.values, site.name, names)
    if linked is None:
        _, here = _terms(target, state.values, names, site.name)
    else:
        here = _view_terms(linked[1], state.values[linked[0].name], beta)
    if here is not None and rng.random() < 0.5:
        c, sse, n = here
        sigma2 = math.sqrt(0.5 * beta * sse / rng.gamma(0.5 * (beta * n - 1.0))) - c
    else:
        sigma2 = sigma * math.exp(RW_SCALE * rng.standard_normal())
    if not sigma2 > 0:  # outside the support: rejected
        return state, BlockInfo((0.0,))
    value = torch.as_tensor(sigma2, dtype=old.dtype).reshape(old.shape)
    values = dict(state.values)
    values[site.name] = value
    if linked is None:
        lj2, there = _terms(target, values, names, site.name)
    else:  # the residuals do not move with σ: the proposal's parameters are the same
        view = ctx.workspace.view(target, linked[0], values)
        lj2 = view.log_joint(values[linked[0].name]) if view is not None else \
            target.log_joint(values)
        there = here
    if not math.isfinite(lj2):
        return state, BlockInfo((0.0,), invalid=1)
    ratio = log_mix(sigma, sigma2, there, beta) - log_mix(sigma2, sigma, here, beta)
    if math.isnan(ratio):
        return state, BlockInfo((0.0,))
    new, info = accept(rng, target, state, site.name, value, ratio, lj2)
    return new, BlockInfo((info.alpha,), accepted=info.accepted)
