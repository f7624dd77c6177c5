"""Why the search misses a law: the log joint along a path of partial programs.

On a hard training law's noiseless data (``benchmarks/train_laws.py``: 20 points on
[-1, 1], seed 0, the model ``ppl.regression`` of the ``arith`` prior at depth 6), each
program's log joint maximised over the noise scale σ (a grid from 1e-6 to 2): a chain at a
simple law moves to a partial one only if its log joint is not far lower, so a path of
partial programs whose log joints fall (a valley) is one no chain of local moves takes::

    python -m benchmarks.law_valley

The figures are quoted in docs/decisions.md ("float32 data, and the library move with
several tries").
"""

from __future__ import annotations

import math

import numpy as np
import torch

import ppl
from benchmarks.train_laws import HARD_LAWS
from inference.target import Target

__all__ = ["PATHS", "main"]

PATHS = {
    "x4-x2+x": ["(x + 0.1)", "(x - (x * x))", "((x - (x * x)) + 0.2)", "((x * x) * (x * x))",
                "(((x * x) * (x * x)) + x)", "((((x * x) * (x * x)) - (x * x)) + x)"],
    "x5-x3": ["(x * -0.17)", "((x * x) * (x * -0.5))", "(((x * x) * x) * ((x * x) - 1.0))"],
}
"""Per law, programs from a simple one to the law, through partial ones."""


def main() -> None:
    prior = ppl.ProgramPrior("arith", inputs=["x"], max_depth=6)
    for law, programs in PATHS.items():
        x = np.sort(np.random.default_rng(0).uniform(-1.0, 1.0, 20))
        y = HARD_LAWS[law](x)
        sd = float(np.std(y))
        target = Target(ppl.regression(prior, scale=sd), (x,), {"y": y})
        noise = [n for n in target.latents if n != "f"]
        for text in programs:
            phi = prior.parse(text)
            best, at = -math.inf, math.nan
            for s in np.geomspace(1e-6, 2.0, 400):
                values = {"f": phi, **{n: torch.tensor(s, dtype=torch.float64) for n in noise}}
                lj = target.log_joint(values)
                if lj > best:
                    best, at = lj, float(s)
            out = np.broadcast_to(phi.evaluate(x), x.shape)
            nrmse = float(np.sqrt(np.mean((out - y) ** 2)) / sd)
            print(f"{law:8s} {text:42s} size {phi.size:2d}  NRMSE {nrmse:5.3f}  "
                  f"max log joint over sigma {best:8.2f} (sigma {at:.2g})")


if __name__ == "__main__":
    main()
