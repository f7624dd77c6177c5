"""The optimisation loop of ``method="svi"``, shared by both backends.

A backend supplies ``chunk(k)``: run ``k`` steps of its own SVI and return the ``k`` loss
values (the negative ELBO estimates). :func:`train` calls it window by window and stops at
the first of: ``num_steps`` steps; convergence, when the relative change of the smoothed
ELBO between two consecutive windows,

    |m_w − m_{w−1}| / max(|m_{w−1}|, 1),   m_w = mean of window w's loss values,

falls below ``tolerance`` (the test of Stan's ADVI, ``tol_rel_obj``, there evaluated every
100 steps too); the time budget ``max_time``. It draws a tqdm bar with the smoothed ELBO
when asked, and refuses a non-finite ELBO (a diverged optimisation).

Examples
--------
>>> import numpy as np
>>> losses = iter(10.0 + 5.0 * np.exp(-np.arange(10_000) / 100.0))
>>> fit = train(lambda k: np.array([next(losses) for _ in range(k)]), num_steps=10_000,
...             tolerance=1e-3, max_time=None, progress=False)
>>> fit.converged, fit.stopped, fit.steps < 10_000
(True, 'converged', True)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from tqdm.auto import tqdm

from ppl.errors import PPLError

__all__ = ["MAX_TRACE", "WINDOW", "Draws", "Fit", "relative_change", "thin", "train",
           "window"]

WINDOW = 100
"""Steps per window of the smoothed ELBO (fewer when ``num_steps < 10 × WINDOW``: a tenth
of the steps, at least 1)."""
MAX_TRACE = 1000
"""At most this many points of the ELBO trace are kept in a result (window means)."""


class Fit(NamedTuple):
    """What an optimisation did."""

    losses: np.ndarray
    """The loss (negative ELBO estimate) of every step run."""
    steps: int
    """Steps run."""
    converged: bool
    """Whether the smoothed ELBO met the tolerance."""
    stopped: str
    """Why the loop ended: "converged", "num_steps" or "max_time"."""
    seconds: float
    """Wall seconds of the loop."""


class Draws(NamedTuple):
    """``n`` draws of a fitted guide, scored: what a backend hands back."""

    samples: dict[str, np.ndarray]
    """Latent site -> (n, *shape) values (constrained)."""
    log_q: np.ndarray
    """(n,) log q(θ) of each draw under the guide."""
    lp: np.ndarray
    """(n,) log p(θ, data) of each draw (the model's log joint, no Jacobian)."""
    log_lik: dict[str, np.ndarray]
    """Observed site -> (n, *obs) pointwise log-likelihood."""
    derived: dict[str, np.ndarray]
    """Deterministic site -> (n, *shape) values."""


def window(num_steps: int) -> int:
    """Steps per window of the smoothed ELBO for a run of ``num_steps``.

    Examples
    --------
    >>> window(3000), window(200), window(5)
    (100, 20, 1)
    """
    return max(1, min(WINDOW, num_steps // 10))


def relative_change(previous: float, current: float) -> float:
    """|current − previous| / max(|previous|, 1): the convergence statistic.

    Examples
    --------
    >>> relative_change(-200.0, -199.0), relative_change(0.5, 0.6)
    (0.005, 0.09999999999999998)
    """
    return abs(current - previous) / max(abs(previous), 1.0)


def train(chunk: Callable[[int], np.ndarray], num_steps: int, tolerance: float,
          max_time: float | None, progress: bool, desc: str = "SVI", *,
          done: np.ndarray | None = None, every: int = 0,
          save: Callable[[np.ndarray], None] | None = None) -> Fit:
    """Run ``chunk`` window by window; see the module docstring for when it stops.

    ``done`` holds the losses of the steps a resumed fit has already run: the loop's whole
    state (the windows' means) is rebuilt from them, and the fit goes on from step
    ``len(done)``. With ``save``, ``save(losses)`` is called after every ``every`` steps
    (the losses of every step so far), unless the loop stops there; a window that a
    checkpoint cuts is run in two calls of ``chunk``, the same steps. ``max_time`` counts
    from this call.

    Raises
    ------
    PPLError
        When a window's loss is not finite (the parameters diverged).

    Examples
    --------
    Three steps, then the last two again from the first one's loss:

    >>> steps = lambda k: np.ones(k)
    >>> whole = train(steps, 3, 0.0, None, False, save=print, every=2)
    [1. 1.]
    >>> train(steps, 3, 0.0, None, False, done=whole.losses[:1]).steps
    3
    """
    size = window(num_steps)
    start = time.perf_counter()
    parts: list[np.ndarray] = [] if done is None else [np.asarray(done, dtype=np.float64)]
    n = sum(len(p) for p in parts)
    if n > num_steps:
        raise PPLError(f"A resumed fit has run {n} steps, more than num_steps={num_steps}.")
    means = [float(parts[0][i:i + size].mean()) for i in range(0, n - size + 1, size)]
    stopped = "num_steps"
    bar = tqdm(total=num_steps, initial=n, desc=desc, disable=not progress, leave=False)
    try:
        while n < num_steps:
            end = min((n // size + 1) * size, num_steps)
            if save is not None and every > 0:
                end = min(end, (n // every + 1) * every)
            losses = np.asarray(chunk(end - n), dtype=np.float64).reshape(-1)
            if not np.isfinite(losses).all():
                bad = n + int(np.argmin(np.isfinite(losses)))
                raise PPLError(f"SVI diverged: the ELBO estimate is {-losses[bad - n]} at "
                               f"step {bad}. Lower learning_rate, or start from init_values.")
            parts.append(losses)
            n = end
            bar.update(len(losses))
            bar.set_postfix(elbo=f"{-float(losses.mean()):.5g}")
            if n % size == 0 or n == num_steps:  # a window ends: the stopping rules
                if n % size == 0:
                    means.append(float(_tail(parts, size).mean()))
                if tolerance > 0 and len(means) >= 2 and \
                        relative_change(means[-2], means[-1]) < tolerance:
                    stopped = "converged"
                    break
                if max_time is not None and time.perf_counter() - start > max_time:
                    stopped = "max_time" if n < num_steps else stopped
                    break
            if save is not None and every > 0 and n % every == 0 and n < num_steps:
                save(np.concatenate(parts))
    finally:
        bar.close()
    return Fit(np.concatenate(parts) if parts else np.zeros(0), n, stopped == "converged",
               stopped, time.perf_counter() - start)


def _tail(parts: list[np.ndarray], size: int) -> np.ndarray:
    """The last ``size`` losses of ``parts`` as one contiguous array."""
    if len(parts[-1]) >= size:
        return parts[-1][-size:]
    return np.concatenate(parts[-size:])[-size:]


def thin(losses: np.ndarray) -> tuple[list[float], int]:
    """The ELBO trace kept in a result: means of blocks of ``every`` steps (1 when there
    are at most :data:`MAX_TRACE` steps), and ``every``.

    Examples
    --------
    >>> thin(np.arange(4.0))
    ([-0.0, -1.0, -2.0, -3.0], 1)
    >>> trace, every = thin(np.ones(3000))
    >>> len(trace), every
    (1000, 3)
    """
    every = max(1, math.ceil(len(losses) / MAX_TRACE))
    n = len(losses) // every * every
    blocks = -losses[:n].reshape(-1, every).mean(axis=1)
    if n < len(losses):
        blocks = np.append(blocks, -losses[n:].mean())
    return [float(v) for v in blocks], every
