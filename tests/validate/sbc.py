"""Simulation-based calibration (TESTING.md P5) of ``infer`` for mcmc, importance, svi and
amortized, on the ``arith`` prior with Gaussian noise.

Model: f ~ arith (+ − × ÷ sin cos exp log, x, Normal(0, 1) constants) at depth ≤ 3,
y_i ~ Normal(f(x_i), σ = 1) at six points x in [−1, 1]. A data set is simulated from the
model (a program invalid at the points, e.g. log of a negative, is drawn again: the model's
prior is the one conditioned on validity, which is what every method targets); the method
then returns L posterior draws, and the rank of the truth among them is recorded for each
test quantity of P5: size, depth, root production, log prior, log likelihood of the data,
and the program's output at three fixed inputs (no continuous latent besides the program's
constants, which the outputs see). Pass: every quantity's χ² p > 0.01 / K.

:data:`SIZES` holds the sizes: ``full`` is the validate tier's (1000 × 999, 20 bins),
``smoke`` TESTING's CI smoke (200 × 100, 10 bins), ``tiny`` what the CI tier can afford
(the harness and its broken twin). Each method's settings (:data:`METHODS`) say how its L
draws come about and are sized to fit the 3-hour budget of ``make validate``
(``docs/validation.md``).
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any, NamedTuple

import numpy as np
import torch

import ppl
from inference import infer
from inference.amortized import load_proposal, train_proposal
from ppl import dist
from tests.stats.sbc import rank_of_truth, rank_pvalues

PRIOR = ppl.ProgramPrior("arith", inputs=["x"], max_depth=3)
X = np.linspace(-1.0, 1.0, 6)
NOISE = 1.0
PROBES = np.array([-0.5, 0.3, 0.9])
QUANTITIES = ["size", "depth", "root", "log_prior", "log_lik", "f(-0.5)", "f(0.3)",
              "f(0.9)"]


class Size(NamedTuple):
    datasets: int
    draws: int
    bins: int


SIZES = {"tiny": Size(40, 19, 4), "smoke": Size(200, 99, 10), "full": Size(1000, 999, 20)}
"""P5's sizes (draws L such that bins divide L + 1)."""

METHODS: dict[str, dict[str, Any]] = {
    "mcmc": {"method": "mcmc", "thin": 1, "num_warmup": 100, "chain_method": "sequential"},
    "importance": {"method": "importance", "particles_per_draw": 4},
    "svi": {"method": "svi", "psis": True, "num_steps": 200, "num_particles": 4},
    "amortized": {"method": "amortized", "particles_per_draw": 4},
}
"""Run options per method (``particles_per_draw``: num_particles = that × L)."""


def model(x: Any, y: Any = None, noise: Any = NOISE) -> None:
    f = ppl.sample("f", PRIOR)
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), noise), obs=y)


def simulate(rng: np.random.Generator) -> tuple[ppl.Program, np.ndarray]:
    """A program valid at X (and the probes) from the prior, and its data."""
    while True:
        truth = PRIOR.sample_program(rng)
        with np.errstate(all="ignore"):
            ok = np.all(np.isfinite(truth(X))) and np.all(np.isfinite(truth(PROBES)))
        if ok:
            y = np.broadcast_to(truth(X), X.shape) + NOISE * rng.standard_normal(len(X))
            return truth, y


def quantities(phi: ppl.Program, y: np.ndarray) -> np.ndarray:
    """P5's test quantities of program ``phi`` given data ``y`` (see the module docstring);
    a value that is not finite (a draw invalid at a probe) becomes +inf (ranked above)."""
    with np.errstate(all="ignore"):
        out = np.broadcast_to(np.asarray(phi(PROBES), dtype=float), PROBES.shape)
        mean = torch.as_tensor(np.broadcast_to(phi(X), X.shape).astype(float))
    lik = float(dist.Normal(mean, NOISE).log_prob(torch.as_tensor(y)).sum())
    q = np.array([phi.size, phi.depth, phi.prods[0], PRIOR.log_density(phi), lik, *out])
    return np.where(np.isfinite(q), q, np.inf)


def posterior(method: str, y: np.ndarray, draws: int, seed: int, noise: float = NOISE,
              proposal: Any = None) -> list[ppl.Program]:
    """``draws`` posterior draws of the program given ``y`` by ``method``; the sampler's
    model uses ``noise`` (≠ NOISE: the broken twin, a likelihood of the wrong width)."""
    opts = dict(METHODS[method])
    per = opts.pop("particles_per_draw", None)
    if per is not None:
        opts["num_particles"] = per * draws
    if proposal is not None:
        opts["proposal"] = proposal
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # low-ESS and k̂ RunWarnings are part of the story
        post = infer(model, X, y=y, noise=noise, num_samples=draws, num_chains=1, seed=seed,
                     progress=False, **opts)
    return list(post.samples["f"].reshape(-1))


def ranks_for(method: str, size: Size, seeds: list[int], noise: float = NOISE,
              proposal_path: str | None = None) -> tuple[np.ndarray, list[float]]:
    """Ranks (len(seeds), K) of the data sets of ``seeds``, and the wall time of each
    one's posterior. A data set's seed fixes its truth, data, sampler seed and ties."""
    torch.set_num_threads(1)
    proposal = load_proposal(proposal_path, model, X, y=np.zeros(len(X))) \
        if proposal_path else None
    out, times = [], []
    for s in seeds:
        rng = np.random.default_rng([20240607, s])
        truth, y = simulate(rng)
        t0 = time.perf_counter()
        draws = posterior(method, y, size.draws, s, noise, proposal)
        times.append(time.perf_counter() - t0)
        q = np.array([quantities(p, y) for p in draws])
        out.append(rank_of_truth(quantities(truth, y), q, rng))
    return np.array(out), times


def train(seed: int = 0, num_steps: int = 300) -> Any:
    """The amortized method's proposal: trained on the model's own simulations."""
    return train_proposal(model, X, y=np.zeros(len(X)), num_steps=num_steps, batch_size=32,
                          hidden=32, seed=seed, progress=False)


class Result(NamedTuple):
    pvalues: np.ndarray
    """χ² p-value per quantity (order of :data:`QUANTITIES`)."""
    ranks: np.ndarray
    """(datasets, K) ranks."""
    seconds_per_dataset: float
    """Mean wall time of one posterior (per worker)."""


def run(method: str, size: Size, workers: int = 1, noise: float = NOISE,
        train_steps: int = 300,
        on_chunk: Callable[[int], None] | None = None) -> Result:
    """SBC of ``method`` at ``size``, the data sets split over ``workers`` processes."""
    path = None
    tmp = tempfile.TemporaryDirectory() if method == "amortized" else None
    try:
        if tmp is not None:
            path = os.path.join(tmp.name, "q.pt")
            train(num_steps=train_steps).save(path)
        seeds = list(range(size.datasets))
        if workers <= 1:
            ranks, times = ranks_for(method, size, seeds, noise, path)
        else:
            chunks = [seeds[i::workers] for i in range(workers)]
            with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
                parts = list(pool.map(ranks_for, [method] * workers, [size] * workers, chunks,
                                      [noise] * workers, [path] * workers))
            order = np.argsort(np.concatenate(chunks))
            ranks = np.concatenate([p[0] for p in parts])[order]
            times = [t for p in parts for t in p[1]]
    finally:
        if tmp is not None:
            tmp.cleanup()
    return Result(rank_pvalues(ranks, size.draws, size.bins), ranks, float(np.mean(times)))
