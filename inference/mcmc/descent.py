"""A greedy two-edit library descent for the search phase (:mod:`inference.mcmc.search`).

Some near-laws are two coupled edits from the law: the demo's c + c/exp(t) becomes the
law c/exp(c·t) only when the offset goes *and* the rate comes; either edit alone is
downhill, so an exact chain at β = 1 holds the near-law for thousands of sweeps, and the
search's hot walkers rarely take both steps in a row. The descent takes them together:
from a state, every node's best library entries (fitted to the node's targets, as the
library move's proposal does; then every constant refitted jointly, and a linked noise
scale set to the new residuals) give the first edits; each node's best first edit,
downhill or not, gets every node's best entries again as a second edit; the best state of
all, by its log joint at β = 1, is the result when it holds another law and beats the
start.

It is deterministic and not an MCMC move (no Hastings ratio): the search uses it once on
each law that becomes its best state (``McmcOptions.search_descent``), and what it
returns is only a start (the exact phase is an MH chain from wherever it starts;
MOVES.md, "Initialisation"). It costs about 50 ms on the demo's 20 points (two dozen
edits scored, each with its constants refitted), once per law.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import torch

from inference.mcmc.blocks.semantic import enough_targets, library_data
from inference.mcmc.gibbs import Gibbs
from inference.mcmc.moves import budgets
from inference.residuals import subtree_targets
from ppl.program import Program
from ppl.trace import PROGRAM

__all__ = ["FIRST_EDITS", "descend"]

FIRST_EDITS = 3
"""Library entries tried at each node for an edit (the best-scored ones)."""


def descend(kernel: Gibbs, values: dict[str, Any]) -> tuple[dict[str, Any], float] | None:
    """The best state within two library edits of ``values`` on ``kernel``'s program sites
    (one site at a time, the others held), with its log joint at ``kernel``'s β; None
    when none beats ``values`` or the model gives the library no data (more than one
    call or factor of the program, as for the library move).

    Examples
    --------
    >>> import numpy as np, ppl
    >>> from ppl import dist
    >>> from inference.target import Target
    >>> prior = ppl.ProgramPrior("arith", inputs=["x"], max_depth=4)
    >>> def model(x, y=None):
    ...     f = ppl.sample("f", prior)
    ...     with ppl.plate("data", len(x)):
    ...         ppl.sample("y", dist.Normal(f(x), 0.05), obs=y)
    >>> x = np.linspace(0.1, 2.0, 20)
    >>> kernel = Gibbs(Target(model, (x,), {"y": 2.0 * np.exp(-1.5 * x)}))
    >>> _ = kernel.init(np.random.default_rng(0))  # a search's kernels are initialised
    >>> start = {"f": prior.parse("(0.1 + (1.9 / exp(x)))")}
    >>> better, lj = descend(kernel, start)
    >>> better["f"]  # the offset gone and the rate in: c / exp(c·x)
    Program('(2.0 / exp((x * 1.5)))')
    >>> bool(lj > kernel.log_joint_at(start, 1.0))
    True
    """
    best_values, best_lj = values, kernel.log_joint_at(values, kernel.target.beta)
    for name, site in kernel.target.latents.items():
        if site.kind != PROGRAM:
            continue
        ctx = kernel.context
        view = ctx.workspace.view(ctx.target, site, best_values)
        data = library_data(view)
        if view is None or data is None:
            continue
        now = best_values[view.noise.site] if view.noise is not None else None
        first: dict[str, Edit] = {}  # each node's best edit, by law
        for edits in _edits(ctx, site, view, data, best_values[name], now, FIRST_EDITS):
            edit = max(edits, key=lambda item: item[0])
            if edit[1].key not in first or edit[0] > first[edit[1].key][0]:
                first[edit[1].key] = edit
        own = best_values[name].key
        second = (e for _, phi, _ in first.values()
                  for edits in _edits(ctx, site, view, data, phi, now, FIRST_EDITS)
                  for e in edits)
        for lj, phi, noise in itertools.chain(first.values(), second):
            if lj > best_lj and phi.key != own:  # another law (not its own refitted)
                best_values, best_lj = {**best_values, name: phi}, lj
                if noise is not None:
                    assert view.noise is not None
                    best_values[view.noise.site] = noise
    return (best_values, best_lj) if best_values is not values else None


Edit = tuple[float, Program, Any]
"""(log joint, program, its noise scale's value or None: the state's own)."""


def _edits(ctx: Any, site: Any, view: Any, data: Any, phi: Program, now: Any, top: int
           ) -> list[list[Edit]]:
    """Per node of ``phi`` (those with edits), the edits that replace the node's subtree
    by one of the ``top`` library entries best scored against its targets, other than the
    subtree's own shape (then every constant refitted and a linked noise scale set to the
    residuals', :func:`_scored`, whose current value is ``now``; edits whose log joint is
    not finite are dropped)."""
    env, y, sigma = data
    prior = site.fn
    out = []
    for v in range(phi.size):
        z = subtree_targets(phi, v, env, y)
        if z is None or not enough_targets(z):
            continue
        lhs = prior.grammar.productions[phi.prods[v]].lhs
        b, s = budgets(prior, phi, v)
        lib = ctx.workspace.library(site, lhs, view)
        scores = lib.score(z, sigma, b, s)
        end = int(phi.ends()[v])
        here: list[Edit] = []
        for j in np.argsort(-scores.log_q):
            if len(here) == top or not math.isfinite(scores.log_q[j]):
                break
            c = scores.c_hat[j]
            prods, vals = lib.tree(int(j), float(c) if np.isfinite(c) else None)
            if prods == phi.prods[v:end]:  # the subtree's own shape: not an edit
                continue
            edit = _scored(view, _refit(ctx, site, view, phi.replace(v, prods, vals)), now)
            if math.isfinite(edit[0]):
                here.append(edit)
        if here:
            out.append(here)
    return out


def _refit(ctx: Any, site: Any, view: Any, phi: Program) -> Program:
    """``phi`` with all its constants at their joint fit (the Laplace mean of its shape,
    :meth:`~inference.mcmc.laplace.ConstantFitter.fit`), or as they are without one: an
    edit fits only its own constant, and the law's other constants must move with it."""
    fit = ctx.workspace.fitter(site.name).fit(phi, view)
    if fit is None:
        return phi
    c = np.empty_like(fit.mean)
    c[fit.perm] = fit.mean
    return phi.with_constants(c) if np.all(np.isfinite(c)) else phi


def _scored(view: Any, phi: Program, now: Any) -> Edit:
    """``phi``'s edit with its log joint; where the view links a noise scale σ (the
    linked factors' scale σ + c), σ is set to the residuals' root mean square less c
    (its Normal maximum likelihood), so a law is compared at its own noise, not at the
    one fitted to the state it came from (which favours fewer nodes when it is larger);
    ``now`` is σ's current value (its shape and dtype)."""
    link = view.noise
    if link is None or not view.normal:
        return view.log_joint(phi), phi, None
    sse, n = view.noise_sse(phi)
    sigma = math.sqrt(sse / n) - link.offset if n and math.isfinite(sse) else math.nan
    if not (math.isfinite(sigma) and sigma > 0):
        return view.log_joint(phi), phi, None
    value = torch.full_like(now, sigma) if isinstance(now, torch.Tensor) else \
        torch.tensor(sigma, dtype=torch.float64)
    return view.with_noise(value).log_joint(phi), phi, value
