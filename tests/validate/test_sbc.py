"""P5 (TESTING.md): simulation-based calibration of mcmc, importance, svi and amortized
(:mod:`tests.validate.sbc`).

CI: the harness must reject a deliberately broken sampler (importance sampling under a
likelihood three times too narrow: a posterior too narrow) at a small size; the amortized
smoke at TESTING's CI size is ``tests/inference/amortized/test_sbc.py``. Validate: the full
size (1000 data sets × 999 draws, 20 bins) for every method, figures written for
``docs/validation.md``.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.validate import record, sbc

METHODS = list(sbc.METHODS)


def test_sbc_rejects_a_posterior_too_narrow() -> None:
    size = sbc.SIZES["tiny"]
    result = sbc.run("importance", size, noise=sbc.NOISE / 3)
    assert result.pvalues.min() < 0.01 / len(result.pvalues), result.pvalues


def test_sbc_accepts_the_same_sampler_with_the_right_likelihood() -> None:
    size = sbc.SIZES["tiny"]
    result = sbc.run("importance", size)
    assert result.pvalues.min() > 0.01 / len(result.pvalues), result.pvalues


def check(method: str, size_name: str) -> None:
    """SBC of ``method`` at ``sbc.SIZES[size_name]`` on two worker processes."""
    t0 = time.perf_counter()
    size = sbc.SIZES[size_name]
    result = sbc.run(method, size, workers=2)
    k = len(result.pvalues)
    ok = bool(result.pvalues.min() > 0.01 / k)
    if size_name == "full":
        settings = {key: v for key, v in sbc.METHODS[method].items() if key != "method"}
        figures = {"datasets x draws, bins": f"{size.datasets} x {size.draws}, {size.bins}",
                   "settings": str(settings), "threshold 0.01/K": 0.01 / k,
                   "seconds per data set (one worker)": result.seconds_per_dataset,
                   **{f"p {q}": float(p) for q, p in zip(sbc.QUANTITIES, result.pvalues,
                                                         strict=True)},
                   "rank histogram of log_lik": np.bincount(
                       np.minimum(result.ranks[:, 4] * size.bins // (size.draws + 1),
                                  size.bins - 1), minlength=size.bins).tolist()}
        record.write(f"P5 SBC, {method}", figures, time.perf_counter() - t0, ok)
    assert ok, dict(zip(sbc.QUANTITIES, result.pvalues.round(5), strict=True))


@pytest.mark.slow
@pytest.mark.timeout(7200)
@pytest.mark.parametrize("method", METHODS)
def test_sbc_full(method: str) -> None:
    check(method, "full")
