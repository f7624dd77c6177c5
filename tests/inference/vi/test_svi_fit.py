"""The optimisation loop of ``method="svi"`` (inference/vi/fit.py) on scripted losses."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest

from inference.vi.fit import MAX_TRACE, thin, train, window
from ppl.errors import PPLError


def scripted(values: Iterator[float]) -> Callable[[int], np.ndarray]:
    return lambda k: np.array([next(values) for _ in range(k)])


def decaying(scale: float = 5.0, noise: float = 0.0) -> Iterator[float]:
    rng = np.random.default_rng(0)
    t = 0
    while True:
        yield 10.0 + scale * np.exp(-t / 100.0) + noise * rng.normal()
        t += 1


def test_stops_when_the_smoothed_elbo_settles() -> None:
    fit = train(scripted(decaying()), num_steps=10_000, tolerance=1e-3, max_time=None,
                progress=False)
    assert fit.converged and fit.stopped == "converged"
    assert fit.steps % window(10_000) == 0 and len(fit.losses) == fit.steps
    # window means (100 steps) m_w = 10 + 3.18 e^{-w} move by 2.01 e^{-(w-1)}: below
    # 1e-3 × 10 first from window 6 to window 7 (0-based), which ends at step 800
    assert fit.steps == 800


def test_tolerance_zero_runs_every_step_and_noise_is_not_convergence() -> None:
    fit = train(scripted(decaying()), num_steps=1234, tolerance=0.0, max_time=None,
                progress=False)
    assert fit.steps == 1234 and not fit.converged and fit.stopped == "num_steps"
    # noise of sd 1 on a level of 10: window means move by ~0.14, above 1e-3 × 10
    noisy = train(scripted(decaying(scale=0.0, noise=1.0)), num_steps=2000, tolerance=1e-3,
                  max_time=None, progress=False)
    assert noisy.steps > 500


def test_max_time_stops_cleanly() -> None:
    fit = train(scripted(decaying()), num_steps=10**9, tolerance=0.0, max_time=0.05,
                progress=False)
    assert fit.stopped == "max_time" and not fit.converged and 0 < fit.steps < 10**9


def test_a_non_finite_elbo_is_an_error_naming_the_step() -> None:
    values = iter([1.0] * 37 + [np.nan] + [1.0] * 100)
    with pytest.raises(PPLError, match="SVI diverged: the ELBO estimate is nan at step 37"):
        train(scripted(values), num_steps=100, tolerance=0.0, max_time=None, progress=False)


def test_the_progress_bar_runs(capsys: pytest.CaptureFixture[str]) -> None:
    fit = train(scripted(decaying()), num_steps=50, tolerance=0.0, max_time=None,
                progress=True)
    assert fit.steps == 50
    assert "elbo=" in capsys.readouterr().err


def test_thin_keeps_block_means() -> None:
    losses = np.arange(2500.0)
    trace, every = thin(losses)
    assert every == 3 and len(trace) == 834 <= MAX_TRACE
    assert trace[0] == -1.0 and trace[-1] == -2499.0  # the last, partial block
