"""Reverse query: which inputs explain an observed output of a known program?

The program is known, φ(x) = x·x − 0.5·x, and one noisy output y = 1.2 was observed; the
input x has a Normal(0, 1.5²) prior. The posterior p(x | y, φ) has two modes, one on each
side of the parabola's vertex (x ≈ −0.87 and x ≈ 1.37), with different weights. The script:

1. traces the world and asks ``query(world, "x", given={"f": ..., "y": 1.2})``: NUTS through
   the program (torch autograd), 4 chains;
2. shows what NUTS does with two modes: each chain stays near where it started, so the
   pooled mode weights are the chains' starting luck, and R-hat says so;
3. asks the same query with ``method="importance"`` (draws from the prior of x, weighted by the
   likelihood: fine in one dimension), which weighs the modes correctly;
4. checks both against the exact posterior on a grid and saves a figure.

Run ``python examples/reverse_query.py``; ``--quick`` draws fewer samples.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display; set before pyplot is imported
import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

import ppl
from inference import query
from inference.arviz import az
from ppl import dist

FIGURE = "reverse_query.png"
PROGRAM = "((x * x) - (0.5 * x))"
Y_OBS, NOISE, PRIOR_SD = 1.2, 0.25, 1.5
PRIOR = ppl.ProgramPrior("arith", inputs=["x"], max_depth=4)


def model(y: Any = None) -> Any:
    x = ppl.sample("x", dist.Normal(0.0, PRIOR_SD))
    f = ppl.sample("f", PRIOR)
    return ppl.sample("y", dist.Normal(f(x), NOISE), obs=y)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer draws")
    parser.add_argument("--out", type=Path, default=Path("out"),
                        help=f"directory for {FIGURE} (default: ./out)")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


def exact_posterior(grid: np.ndarray) -> np.ndarray:
    """p(x | y, φ) on ``grid`` (normalised numerically)."""
    phi = grid * grid - 0.5 * grid
    dens = stats.norm.pdf(grid, 0.0, PRIOR_SD) * stats.norm.pdf(Y_OBS, phi, NOISE)
    return dens / np.trapezoid(dens, grid)


def right_mode_weight(x: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Posterior mass right of the vertex x = 0.25."""
    w = np.ones_like(x) if weights is None else weights
    return float(np.sum(w * (x > 0.25)) / np.sum(w))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    n = 200 if args.quick else 1500
    world = ppl.World(model)
    print(world)
    given = {"f": PROGRAM, "y": Y_OBS}
    # init_candidates=1: each chain starts at one random draw (by default a chain starts at
    # the best of 100, which puts every chain in the higher mode)
    nuts = query(world, "x", given=given, method="auto", num_samples=n, num_warmup=n // 2,
                 num_chains=4, seed=args.seed, progress=False, init_candidates=1)
    x_nuts = nuts.samples["x"]
    grid = np.linspace(-4, 4, 4001)
    exact = exact_posterior(grid)
    exact_right = float(np.trapezoid(exact * (grid > 0.25), grid))
    print(f"\nExact: P(x > 0.25 | y) = {exact_right:.3f} (the right mode)")
    print("NUTS, 4 chains: share of each chain's draws in the right mode:",
          [round(right_mode_weight(c), 2) for c in x_nuts])
    rhat = float(az.rhat(x_nuts))
    verdict = ("> 1.01: the chains disagree, do not trust the pooled weights" if rhat > 1.01
               else "<= 1.01, yet with two modes an agreeing R-hat can still hide one")
    print(f"  pooled: {right_mode_weight(x_nuts.reshape(-1)):.3f};  R-hat of x: {rhat:.2f} "
          f"({verdict})")
    imp = query(world, "x", given=given, method="importance", num_samples=n, num_chains=4,
                num_particles=20 * n, seed=args.seed, progress=False)
    x_imp = imp.samples["x"].reshape(-1)
    print(f"Importance sampling from the prior ({20 * n} particles, ESS "
          f"{imp.attrs['ess']:.0f}): P(right mode) = {right_mode_weight(x_imp):.3f}")
    for label, draws in (("left", x_imp[x_imp <= 0.25]), ("right", x_imp[x_imp > 0.25])):
        print(f"  {label} mode: mean {draws.mean():+.3f}, sd {draws.std():.3f}")
    save_figure(args.out / FIGURE, grid, exact, x_nuts, x_imp)


def save_figure(path: Path, grid: np.ndarray, exact: np.ndarray, x_nuts: np.ndarray,
                x_imp: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    bins = np.linspace(-2.5, 2.5, 61)
    for c, chain in enumerate(x_nuts):
        axes[0].hist(chain, bins=bins, density=True, histtype="step", label=f"chain {c}")
    axes[0].set_title("NUTS: each chain finds one mode")
    axes[1].hist(x_imp, bins=bins, density=True, alpha=0.5, label="importance")
    axes[1].set_title("Importance sampling: both modes, weighted")
    for ax in axes:
        ax.plot(grid, exact, "k", lw=1, label="exact")
        ax.set_xlim(-2.5, 2.5)
        ax.set_xlabel("x")
        ax.legend(fontsize=7)
    axes[0].set_ylabel(f"p(x | y = {Y_OBS}, φ = x² − 0.5x)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"\nFigure: {path}")


if __name__ == "__main__":
    main()
