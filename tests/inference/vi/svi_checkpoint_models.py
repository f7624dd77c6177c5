"""Models of the SVI checkpoint tests, importable by the fresh process that resumes a fit."""

from __future__ import annotations

from typing import Any

import numpy as np

import ppl
from ppl import dist

PRIOR = ppl.ProgramPrior("arith", inputs=["x"], max_depth=3)
X = np.linspace(-1.0, 1.0, 8)
Y = 1.5 * X**2 + 0.05 * np.random.default_rng(1).standard_normal(8)
FIT: dict[str, Any] = {"method": "svi", "num_steps": 34, "num_samples": 10, "num_chains": 2,
                       "seed": 5, "progress": False, "tolerance": 1e-9}
"""Every case: 34 steps in windows of 3, so the checkpoint at step 17 cuts a window."""
EVERY = 17
CASES: dict[str, dict[str, Any]] = {
    "pyro": {"backend": "pyro", "guide": "mvn"},
    "numpyro": {"backend": "numpyro"},
    "program": {"num_particles": 3}}
"""Case -> its options (with :data:`FIT`); the model is :func:`program` for "program",
else :func:`line`."""
SCRIPT = """
import json, sys, warnings
from inference import infer, resume
from tests.inference.vi import svi_checkpoint_models as m
warnings.simplefilter("ignore")
out = {}
for case, path in zip(sys.argv[2::2], sys.argv[3::2]):
    model, options = m.model_of(case), {**m.FIT, **m.CASES[case]}
    if sys.argv[1] == "whole":
        out[case] = [m.summary(infer(model, m.X, y=m.Y, **options)), m.summary(infer(
            model, m.X, y=m.Y, checkpoint=path, checkpoint_every=m.EVERY, **options))]
    else:
        out[case] = m.summary(resume(path, model, m.X, y=m.Y))
print(json.dumps(out))
"""
"""``python -c SCRIPT whole|resume case path ...``: the fits of each case without and with a
checkpoint, or their resumes, as JSON (:func:`summary`)."""


def line(x: Any, y: Any = None) -> None:
    """Continuous sites only: a slope, an offset and a noise scale."""
    a = ppl.sample("a", dist.Normal(0.0, 2.0))
    b = ppl.sample("b", dist.Normal(0.0, 2.0))
    sigma = ppl.sample("sigma", dist.HalfNormal(1.0))
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(a * x + b, sigma), obs=y)


def program(x: Any, y: Any = None) -> None:
    """A program site (with constants) and a noise scale: the program path."""
    f = ppl.sample("f", PRIOR)
    sigma = ppl.sample("sigma", dist.HalfNormal(1.0))
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), sigma), obs=y)


def model_of(case: str) -> Any:
    """The model of ``case``."""
    return program if case == "program" else line


def summary(post: Any) -> dict[str, Any]:
    """What must match to the bit, as JSON (floats round-trip exactly)."""
    samples = {k: ([str(p) for p in v.reshape(-1)] if v.dtype == object
                   else v.reshape(-1).tolist()) for k, v in sorted(post.samples.items())}
    return {"samples": samples, "elbo": post.attrs["elbo_trace"], "steps": post.attrs["steps"],
            "lp": post.stats["lp"].reshape(-1).tolist(),
            "log_weight": post.stats["log_weight"].reshape(-1).tolist(),
            "resumed": post.attrs.get("resumed")}
