"""Models of the checkpoint tests, importable by the fresh process that resumes a run."""

from __future__ import annotations

from typing import Any

import numpy as np

import ppl
from ppl import dist

PRIOR = ppl.ProgramPrior("arith", inputs=["x"], max_depth=4)
X = np.linspace(-1.0, 1.0, 12)
Y = 1.5 * X**2 + 0.05 * np.random.default_rng(1).standard_normal(12)


def regression(x: Any, y: Any = None) -> None:
    """A program, its constants and a noise scale (the Noise block's plan)."""
    f = ppl.sample("f", PRIOR)
    sigma = ppl.sample("sigma", dist.HalfNormal(1.0))
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), sigma), obs=y)


def hierarchical(x: Any, y: Any = None) -> None:
    """A program and a continuous site under NUTS (a NUTS block's kernel in the state)."""
    f = ppl.sample("f", PRIOR)
    shift = ppl.sample("shift", dist.Normal(0.0, 1.0))
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x) + shift, 0.1), obs=y)


def location(y: Any = None) -> None:
    """Continuous sites only (``method="nuts"``): a location and a scale."""
    m = ppl.sample("m", dist.Normal(0.0, 5.0))
    s = ppl.sample("s", dist.HalfNormal(2.0))
    with ppl.plate("data", len(y)):
        ppl.sample("y", dist.Normal(m, s), obs=y)
