"""B1's method ``ours+q`` (``benchmarks/nguyen.py``): the proposals q(f | x, y) it uses,
trained once per (grammar, inputs) on a broad prior, saved, and loaded for each run.

What a proposal is trained on (never on the benchmark's target laws):

- **the model of** ``run_ours`` (``ours_model`` in ``benchmarks/nguyen_methods.py``):
  ``f ~ ProgramPrior(grammar, inputs, max_depth=MAX_DEPTH)``, ``sigma ~ HalfNormal(scale)``,
  ``obs ~ Normal(f(x), sigma + SIGMA_FLOOR·scale)`` at 20 points, with a **fixed
  scale = 1** (:data:`TRAIN_SCALE`). A run's scale is std(y) of its data, which a proposal
  cannot know in advance; the network only sees (x, y), and the scale is no part of the
  proposal's key (grammar, weights, limits, inputs, constant prior, site names, kinds and
  observed flags), so the proposal loads for every run's model of its grammar and inputs.
- **programs from the grammar's own prior** (the model's), not from the benchmark's laws;
- **a broad design**: each simulated data set's 20 inputs are drawn like a problem's: one
  of the sampling ranges used by the problems of that grammar and number of inputs is
  picked uniformly (:func:`design_ranges`, over every problem of ``PROBLEMS``, not only
  those of a run, so the file does not depend on ``--problems``), then
  ``x ~ U[low, high]^d``. So the design's support is the union of the problems' ranges and
  each problem's own design is one component of it. (For koza with one input, a single
  U[-1, 4] would almost never give a data set where log(x) is defined at all 20 points, and
  invalid draws are redrawn: programs with log(x), which Nguyen-7 and -8 need, would hardly
  be seen in training.)

Training: ``train_proposal`` on one core for ``--proposal-time`` seconds, ``hidden`` wide
(64 by default), seed :data:`SEED`, the batch and early-stopping settings below. The file is
``<proposal-dir>/<grammar>-<d>in-h<hidden>.pt``; when it exists it is loaded, not trained
again (whatever ``--proposal-time`` says: delete it to retrain).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.nguyen_methods import ours_model
from benchmarks.nguyen_protocol import N_POINTS, PROBLEMS

TRAIN_SCALE = 1.0
"""The model's noise scale (``sigma ~ HalfNormal(TRAIN_SCALE)``) in training."""
SEED = 0
"""Seed of the proposal's initial weights and training draws."""
BATCH_SIZE, VALID_SIZE, PATIENCE, EVAL_EVERY = 32, 256, 50, 20
"""Training: draws per step, validation draws, evaluations without improvement before an
early stop, steps between evaluations (as B4's)."""

Pair = tuple[str, tuple[str, ...]]
"""(grammar, input names): what one proposal is for."""


def pair_of(name: str) -> Pair:
    """The (grammar, inputs) of problem ``name``."""
    problem = PROBLEMS[name]
    return problem.grammar, problem.inputs


def design_ranges(pair: Pair) -> tuple[tuple[float, float], ...]:
    """The distinct sampling ranges (low, high) of the problems of ``pair``, sorted."""
    return tuple(sorted({(float(p.low), float(p.high)) for p in PROBLEMS.values()
                         if (p.grammar, p.inputs) == pair}))


@dataclass(frozen=True)
class Design:
    """The ``inputs=`` sampler of training: a range of :attr:`ranges` picked uniformly,
    then ``N_POINTS`` points ``U[low, high]^d``; returns ``(columns, {})``."""

    ranges: tuple[tuple[float, float], ...]
    d: int

    def __call__(self, rng: np.random.Generator) -> tuple[tuple[np.ndarray, ...], dict[str, Any]]:
        low, high = self.ranges[int(rng.integers(len(self.ranges)))]
        X = rng.uniform(low, high, (N_POINTS, self.d))
        return tuple(X[:, i].copy() for i in range(self.d)), {}


def proposal_path(directory: Path, pair: Pair, hidden: int) -> Path:
    """``<directory>/<grammar>-<d>in-h<hidden>.pt``."""
    grammar, inputs = pair
    return Path(directory) / f"{grammar}-{len(inputs)}in-h{hidden}.pt"


def _reference(pair: Pair) -> tuple[Any, list[np.ndarray], np.ndarray]:
    """The training model (scale 1) and arguments of the right shape to train or load it
    with (any values: the design sampler and the simulations replace them)."""
    grammar, inputs = pair
    low, high = design_ranges(pair)[0]
    columns = [np.linspace(low, high, N_POINTS) for _ in inputs]
    return ours_model(grammar, inputs, TRAIN_SCALE), columns, np.zeros(N_POINTS)


def obtain(pair: Pair, directory: str, hidden: int, train_time: float) -> dict[str, Any]:
    """Load the proposal of ``pair`` from ``directory``, or train it on one core and save
    it there; return what the report needs of it (file, training seconds and steps,
    validation losses, design). Never call it twice at once for the same pair."""
    import torch

    from inference.amortized import load_proposal, train_proposal

    path = proposal_path(Path(directory), pair, hidden)
    model, columns, y = _reference(pair)
    trained_now = not path.exists()
    start = time.perf_counter()
    if trained_now:
        torch.set_num_threads(1)
        q = train_proposal(model, *columns, obs=y, inputs=Design(design_ranges(pair),
                                                                  len(pair[1])),
                           hidden=hidden, max_time=train_time, num_steps=10**7, seed=SEED,
                           progress=False, batch_size=BATCH_SIZE, valid_size=VALID_SIZE,
                           patience=PATIENCE, eval_every=EVAL_EVERY)
        path.parent.mkdir(parents=True, exist_ok=True)
        q.save(path)
    else:
        q = load_proposal(path, model, *columns, obs=y)
    return {"grammar": pair[0], "inputs": list(pair[1]), "file": str(path),
            "trained_now": trained_now, "seconds": q.seconds, "steps": q.steps,
            "hidden": q.network.hidden, "seed": q.seed,
            "train_time_budget": train_time if trained_now else None,
            "obtain_seconds": time.perf_counter() - start,
            "valid_loss_first": q.history[0].valid_loss if q.history else None,
            "valid_loss_best": min((e.valid_loss for e in q.history), default=None),
            "design": {"ranges": [list(r) for r in design_ranges(pair)],
                       "points": N_POINTS, "scale": TRAIN_SCALE},
            "batch_size": BATCH_SIZE, "valid_size": VALID_SIZE, "patience": PATIENCE,
            "eval_every": EVAL_EVERY}


def load(path: str, model: Any, columns: Sequence[np.ndarray], y: np.ndarray
         ) -> tuple[Any, dict[str, Any]]:
    """The proposal at ``path`` loaded for a run's own model and data (``load_proposal``
    refuses it when its key differs from the model's), and the record's proposal fields."""
    from inference.amortized import load_proposal

    start = time.perf_counter()
    q = load_proposal(path, model, *columns, obs=y)
    return q, {"proposal_file": str(path), "proposal_train_seconds": float(q.seconds),
               "proposal_steps": int(q.steps), "proposal_hidden": int(q.network.hidden),
               "proposal_load_seconds": time.perf_counter() - start}
