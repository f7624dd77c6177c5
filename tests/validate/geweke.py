"""Geweke's joint-distribution test (TESTING.md P6) of program MCMC.

Model: f ~ arith at depth ≤ 2 (constants Normal(0, 1)), σ ~ HalfNormal(1),
y_i ~ Normal(f(x_i), σ) at five points of [−1, 1]; programs invalid at the points have
likelihood zero, so the joint is the one conditioned on validity.

- Marginal-conditional: iid (f, σ) from the prior (invalid programs drawn again), then y.
- Successive-conditional: from one such draw, repeat {one sweep of the Gibbs kernel on
  (f, σ) given y; y ~ p(y | f, σ)}. The kernel is the one ``infer`` builds (a fresh
  :class:`~inference.mcmc.gibbs.Gibbs` on the current y each sweep, its default step sizes,
  the tree moves of the default mix: :data:`TREE_MOVES`).

If the kernel leaves p(f, σ | y) invariant, both simulators sample the same joint, so every
test quantity (σ, σ², size, depth, an indicator per root production, the log joint) has the
same mean. With one chain (the CI size): |z| < 4, the chain's MCSE from its ESS
(:func:`tests.stats.sbc.geweke_z`). With several (the full size): independent chains, each
from its own draw of the joint, and the standard error from the spread of their means
(:func:`tests.stats.sbc.geweke_between`), Student-t p-values Bonferroni-corrected over the
quantities at :data:`ALPHA`: a rare indicator (a root production seen in 1% of the sweeps)
comes from a few long excursions per chain, and its ESS-based MCSE was seen to be too small
(docs/validation.md, the run of 2026-12-06). ``plan`` picks how σ moves: the
default plan's Noise block or an RW block (whose Jacobian then enters the ratio).
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any, NamedTuple

import numpy as np
import torch

import ppl
from inference.config import McmcOptions
from inference.mcmc.gibbs import Gibbs
from inference.target import Target
from ppl import dist
from tests.stats.sbc import geweke_between, geweke_z

PRIOR = ppl.ProgramPrior("arith", inputs=["x"], max_depth=2)
X = np.linspace(-1.0, 1.0, 5)
ROOTS = list(range(len(PRIOR.grammar.productions)))
NAMES = ["sigma", "sigma^2", "size", "depth", "log_joint"] + \
    [f"root={PRIOR.grammar.productions[r].alias}" for r in ROOTS]
TREE_MOVES = {"regenerate": 0.5, "insert_delete": 0.25, "relabel": 0.25}
"""The default mix without its library move, whose subtree library is built per data set:
rebuilt every sweep here it would cost 0.1 s a sweep (its exactness is P1's,
``tests/inference/mcmc/test_library.py``)."""
PLANS: dict[str, Any] = {"default": None,
                         "rw": [("ProgramMH", ["f"]), ("RW", ["sigma"])]}


class Size(NamedTuple):
    iid: int
    """Marginal-conditional draws."""
    sweeps: int
    """Successive-conditional sweeps per chain."""
    chains: int
    """Successive-conditional chains (one worker process each when run in parallel)."""
    program_moves: int
    """Structure moves per sweep."""


SIZES = {"tiny": Size(2000, 400, 1, 1), "full": Size(100_000, 4_000, 16, 3)}
ALPHA = 0.01
"""Family-wise level of the full size's test over all quantities (Bonferroni)."""


def model(x: Any, y: Any = None) -> None:
    f = ppl.sample("f", PRIOR)
    sigma = ppl.sample("sigma", dist.HalfNormal(1.0))
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), sigma), obs=y)


def valid_program(rng: np.random.Generator) -> ppl.Program:
    while True:
        f = PRIOR.sample_program(rng)
        with np.errstate(all="ignore"):
            if np.all(np.isfinite(f(X))):
                return f


def simulate_y(rng: np.random.Generator, f: ppl.Program, sigma: float) -> np.ndarray:
    return np.broadcast_to(f(X), X.shape) + sigma * rng.standard_normal(len(X))


def quantities(f: ppl.Program, sigma: float, y: np.ndarray) -> np.ndarray:
    """The test quantities (order of :data:`NAMES`)."""
    lj = PRIOR.log_density(f) + float(dist.HalfNormal(1.0).log_prob(torch.tensor(sigma)))
    lj += float(dist.Normal(torch.as_tensor(np.broadcast_to(f(X), X.shape).astype(float)),
                            sigma).log_prob(torch.as_tensor(y)).sum())
    roots = [float(f.prods[0] == r) for r in ROOTS]
    return np.array([sigma, sigma**2, f.size, f.depth, lj, *roots])


def marginal_conditional(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([7, seed])
    out = []
    for _ in range(n):
        f = valid_program(rng)
        sigma = abs(float(rng.standard_normal()))
        out.append(quantities(f, sigma, simulate_y(rng, f, sigma)))
    return np.array(out)


def successive_conditional(sweeps: int, seed: int, plan: str = "default",
                           program_moves: int = 3) -> np.ndarray:
    """One successive-conditional chain of ``sweeps`` (see the module docstring)."""
    torch.set_num_threads(1)
    rng = np.random.default_rng([11, seed])
    f = valid_program(rng)
    sigma = abs(float(rng.standard_normal()))
    y = simulate_y(rng, f, sigma)
    options = McmcOptions(program_moves=program_moves, blocks=PLANS[plan],
                          structure_weights=TREE_MOVES)
    out = []
    for _ in range(sweeps):
        kernel = Gibbs(Target(model, (X,), {"y": y}), options)
        state = kernel.init(rng, {"f": f, "sigma": torch.tensor(sigma, dtype=torch.float64)})
        state, _ = kernel.step(rng, state)
        f, sigma = state.values["f"], float(state.values["sigma"])
        y = simulate_y(rng, f, sigma)
        out.append(quantities(f, sigma, y))
    return np.array(out)


class Result(NamedTuple):
    z: np.ndarray
    """z per quantity (order of :data:`NAMES`)."""
    seconds_per_sweep: float
    p: np.ndarray | None = None
    """Student-t p-value per quantity, from the spread of independent chains (None with
    one chain)."""


def run(size: Size, plan: str = "default", workers: int = 1, seed: int = 0) -> Result:
    """Geweke's test at ``size``; the chains run on ``workers`` processes."""
    iid = marginal_conditional(size.iid, seed)
    t0 = time.perf_counter()
    args = ([size.sweeps] * size.chains, [seed * 100 + c for c in range(size.chains)],
            [plan] * size.chains, [size.program_moves] * size.chains)
    if workers <= 1:
        chains = [successive_conditional(*a) for a in zip(*args, strict=True)]
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            chains = list(pool.map(successive_conditional, *args))
    seconds = (time.perf_counter() - t0) * min(workers, size.chains) / \
        (size.sweeps * size.chains)
    if size.chains == 1:
        z = geweke_z(iid, np.array(chains))
        return Result(np.where(np.isnan(z), 0.0, z), seconds)
    z, p = geweke_between(iid, np.array(chains))
    return Result(z, seconds, p)


def failing(result: Result, limit: float = 4.0) -> dict[str, float]:
    """The quantities whose |z| reaches ``limit`` (one chain), or whose p-value is below
    :data:`ALPHA` / the number of quantities (several chains); name → z."""
    if result.p is not None:
        cut = ALPHA / len(NAMES)
        return {n: round(float(z), 2) for n, z, p in zip(NAMES, result.z, result.p,
                                                         strict=True) if not p >= cut}
    return {n: round(float(z), 2) for n, z in zip(NAMES, result.z, strict=True)
            if not abs(z) < limit or math.isnan(z)}
