"""The optimisation loop of inference compilation: minimise E_{p(x,y,φ)}[−log q(φ | x, y)].

Each step draws a minibatch of simulated (x, y, φ) (:class:`Batch`, from a function of the
global step number, so the draws are a deterministic function of the seed), takes one Adam
step on the mean −log q, and every ``eval_every`` steps computes the mean −log q on a
held-out validation batch. The weights with the lowest validation loss are kept; training
stops after ``num_steps``, after ``patience`` evaluations without improvement, or once
``max_time`` seconds have passed (a wall-clock stop is the one thing a seed does not fix).

Between two steps the loop's whole state is a :class:`FitState` (with the network's weights
and the optimiser's state): ``fit(..., save=f, save_every=K)`` hands it to ``f`` every K
global steps, and ``fit(..., state=s)`` continues from it, bitwise as if never stopped
(:mod:`inference.amortized.checkpoint`). The loop draws no random numbers itself: the
minibatch of step t is a function of t alone.

Examples
--------
>>> import numpy as np
>>> import ppl
>>> import torch
>>> from inference.amortized.network import ProgramProposal
>>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
>>> q = ProgramProposal(prior, hidden=8)
>>> x = np.linspace(-1, 1, 5)
>>> def draw(step):
...     rng = np.random.default_rng(step)
...     progs = [prior.sample_program(rng) for _ in range(8)]
...     data = [np.c_[x, f(x) + 0.1 * rng.standard_normal(5)] for f in progs]
...     return Batch(data, q.walks(progs))
>>> opt = torch.optim.Adam(q.parameters(), lr=0.01)
>>> out = fit(q, opt, draw, draw(10**6), first_step=0, num_steps=20, eval_every=10)
>>> out.steps, len(out.history), out.stopped
(20, 3, 'steps')
"""

from __future__ import annotations

import copy
import math
import os
import sys
import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from tqdm.auto import tqdm

from inference.amortized.network import ProgramProposal
from inference.amortized.support import Step

__all__ = ["Batch", "Evaluation", "FitResult", "FitState", "fit", "show_progress",
           "validation_loss"]


class Batch(NamedTuple):
    """Simulated draws as the network trains on them.

    Examples
    --------
    >>> Batch(data=[], walks=[]).data
    []
    """

    data: list[np.ndarray]
    """Points [x_1..x_d, y] of each draw (``points_of``)."""
    walks: list[list[Step]]
    """Teacher-forcing steps of each draw's program (``ProgramProposal.walks``)."""


class Evaluation(NamedTuple):
    """One validation of a training run.

    Examples
    --------
    >>> Evaluation(step=20, train_loss=1.5, valid_loss=1.4, seconds=0.3).valid_loss
    1.4
    """

    step: int
    """Global step count when evaluated (over every training call)."""
    train_loss: float
    """Mean minibatch −log q since the previous evaluation (nan before any step)."""
    valid_loss: float
    """Mean −log q on the validation draws."""
    seconds: float
    """Wall time since this training call began."""


class FitResult(NamedTuple):
    """What :func:`fit` did.

    Examples
    --------
    >>> FitResult(steps=5, history=[], best_valid=1.0, stopped="patience").stopped
    'patience'
    """

    steps: int
    """Optimisation steps taken."""
    history: list[Evaluation]
    """Every validation, the one before the first step included."""
    best_valid: float
    """The lowest validation loss (whose weights the network now holds)."""
    stopped: str
    """Why it stopped: ``"steps"``, ``"patience"`` or ``"max_time"``."""


class FitState(NamedTuple):
    """Where :func:`fit` is between two steps (besides the weights and the optimiser).

    Examples
    --------
    >>> FitState(steps=0, seconds=0.0, best_valid=2.0, best_weights={}, bad=0, losses=[],
    ...          history=[]).best_valid
    2.0
    """

    steps: int
    """Steps taken in this training call."""
    seconds: float
    """Wall time of this training call so far."""
    best_valid: float
    """The lowest validation loss so far."""
    best_weights: dict[str, torch.Tensor]
    """The network's weights at that loss (a copy)."""
    bad: int
    """Evaluations since the best one (patience counts them)."""
    losses: list[float]
    """Minibatch losses since the last evaluation."""
    history: list[Evaluation]
    """The evaluations of this call so far."""


def show_progress(progress: bool) -> bool:
    """Whether a tqdm bar is shown: asked for, on a terminal, and ``CI`` not set.

    Examples
    --------
    >>> show_progress(False)
    False
    """
    return bool(progress) and sys.stderr.isatty() and not os.environ.get("CI")


def validation_loss(network: ProgramProposal, batch: Batch) -> float:
    """Mean −log q(φ | x, y) over a batch, without gradients.

    Examples
    --------
    >>> import numpy as np
    >>> import ppl
    >>> from inference.amortized.network import points_of
    >>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
    >>> q = ProgramProposal(prior, hidden=8)
    >>> phi = prior.parse("x")
    >>> batch = Batch([points_of([0.0, 1.0], [0.0, 1.0], 1)], q.walks([phi]))
    >>> round(validation_loss(q, batch), 6) == round(-prior.log_density(phi), 6)
    True
    """
    with torch.no_grad():
        return float(-network.forced_log_q(batch.data, batch.walks).mean())


def fit(network: ProgramProposal, optimizer: torch.optim.Optimizer,
        next_batch: Callable[[int], Batch], valid: Batch, *, first_step: int,
        num_steps: int, max_time: float | None = None, patience: int = 10,
        eval_every: int = 20, progress: bool = False, state: FitState | None = None,
        save: Callable[[FitState], None] | None = None, save_every: int = 100) -> FitResult:
    """Train ``network`` in place for up to ``num_steps`` steps (see the module docstring).

    Parameters
    ----------
    network : ProgramProposal
        The network; at return it holds the weights of the best validation loss.
    optimizer : torch.optim.Optimizer
        The optimiser of its parameters (its state carries over between calls).
    next_batch : callable
        ``next_batch(step)``: the minibatch of global step ``step``.
    valid : Batch
        Held-out draws.
    first_step : int
        The global step number of the first step of this call (steps done before).
    num_steps, max_time, patience, eval_every, progress
        Stopping rules (``max_time`` counts from this call's start, a resumed one's
        included), validation period and the tqdm bar (:func:`show_progress`).
    state : FitState, optional
        Continue this call from ``state`` (with ``network`` and ``optimizer`` holding the
        weights and optimiser state of that moment) instead of starting it.
    save, save_every : callable, int
        ``save(state)`` before every global step that is a positive multiple of
        ``save_every`` (but not the first step of this call or of a resumed one).

    Returns
    -------
    FitResult

    Examples
    --------
    See the module docstring.
    """
    began = time.perf_counter()
    if state is None:
        best = validation_loss(network, valid)
        state = FitState(0, 0.0, best, copy.deepcopy(network.state_dict()), 0, [],
                         [Evaluation(first_step, math.nan, best, 0.0)])
    t, resumed_at = state.steps, state.steps
    best, best_state, bad = state.best_valid, state.best_weights, state.bad
    losses, history = list(state.losses), list(state.history)
    stopped = "steps"
    bar = tqdm(total=num_steps, initial=t, desc="train q(φ|x,y)",
               disable=not show_progress(progress))
    try:
        while t < num_steps:
            if save is not None and t > resumed_at and (first_step + t) % save_every == 0:
                save(FitState(t, state.seconds + time.perf_counter() - began, best,
                              best_state, bad, list(losses), list(history)))
            batch = next_batch(first_step + t)
            optimizer.zero_grad()
            loss = -network.forced_log_q(batch.data, batch.walks).mean()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            losses.append(float(loss.detach()))
            t += 1
            bar.update(1)
            out_of_time = max_time is not None and time.perf_counter() - began > max_time
            if t % eval_every and t < num_steps and not out_of_time:
                continue
            v = validation_loss(network, valid)
            history.append(Evaluation(first_step + t, float(np.mean(losses)), v,
                                      state.seconds + time.perf_counter() - began))
            losses = []
            bar.set_postfix(valid=f"{v:.3f}")
            if v < best:
                best, bad = v, 0
                best_state = copy.deepcopy(network.state_dict())
            else:
                bad += 1
            if out_of_time:
                stopped = "max_time"
                break
            if bad >= patience:
                stopped = "patience"
                break
    finally:
        bar.close()
    network.load_state_dict(best_state)
    return FitResult(t, history, best, stopped)
