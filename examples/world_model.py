"""One world model, three questions: forward, reverse and posterior queries.

The model: inputs x ~ Normal(0, 1.5²) (a site, so they can be given or inferred), a program
φ from the ``tiny`` grammar (E -> E+E | E*E | sin E | x | 1, depth ≤ 3: 302 programs), a
noise scale σ ~ HalfNormal(0.5), and outputs y ~ Normal(φ(x), σ²). The script traces it
into a factor graph (``ppl.World``), saves its picture, and asks:

- **posterior** p(φ, σ | x, y): 15 observed pairs from y = x + sin(x) (plan printed:
  ``Gibbs: ProgramMH[f] + Noise[sigma]``);
- **forward** p(y | x, φ, σ): predictions of the most probable program at new inputs
  (ancestral simulation: nothing observed downstream);
- **reverse** p(x | y, φ, σ): which input produced the output y = 2.0 under that program
  (NUTS through the program).

Run ``python examples/world_model.py``; ``--quick`` draws fewer samples.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display; set before pyplot is imported
import matplotlib.pyplot as plt
import numpy as np

import ppl
from inference import query
from ppl import dist

FIGURES = ("world_model_graph.png", "world_model_queries.png")
PRIOR = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=3)


def model(n: int, x: Any = None, y: Any = None) -> Any:
    with ppl.plate("points", n):
        x = ppl.sample("x", dist.Normal(0.0, 1.5), obs=x)
    f = ppl.sample("f", PRIOR)
    sigma = ppl.sample("sigma", dist.HalfNormal(0.5))
    with ppl.plate("data", n):
        return ppl.sample("y", dist.Normal(f(x), sigma), obs=y)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer draws")
    parser.add_argument("--out", type=Path, default=Path("out"),
                        help="directory for the figures (default: ./out)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    n_draws = 100 if args.quick else 1000
    rng = np.random.default_rng(args.seed)
    x = rng.uniform(-2.0, 2.0, 15)
    y = x + np.sin(x) + 0.1 * rng.standard_normal(15)

    world = ppl.World(model, 15, x=x, y=y)
    print(world)
    print("Markov blanket of f:", sorted(world.markov_blanket("f")))
    graph = world.render(args.out / FIGURES[0], title="p(x, φ, σ, y)")
    print(f"Factor graph: {graph}\n")

    print("1. Posterior p(φ, σ | x, y):")
    post = query(world, method="auto", num_samples=n_draws, num_warmup=n_draws // 2,
                 num_chains=2, seed=args.seed, progress=False)
    table = post.programs("f", top=3)
    for _, row in table.iterrows():
        print(f"   {row['probability']:.3f}  {row['program']}   ({row['simplified']})")
    best = table["program"][0]
    sigma = float(np.median(post.samples["sigma"]))
    print(f"   sigma: median {sigma:.3f}")

    print(f"\n2. Forward p(y | x, φ = {best}, σ = {sigma:.3f}) at new inputs:")
    grid = np.linspace(-2.0, 2.0, 9)
    fwd = query(ppl.World(model, len(grid)), "y", given={"x": grid, "f": best, "sigma": sigma},
                num_samples=n_draws, num_chains=1, seed=args.seed)
    pred = fwd.samples["y"].reshape(-1, len(grid))
    for xi, m, s in zip(grid, pred.mean(0), pred.std(0), strict=True):
        print(f"   x = {xi:+.2f}:  y = {m:+.3f} ± {s:.3f}")

    print(f"\n3. Reverse p(x | y = 2.0, φ = {best}, σ = {sigma:.3f}):")
    rev = query(ppl.World(model, 1), "x", given={"y": [2.0], "f": best, "sigma": sigma},
                method="auto", num_samples=n_draws, num_warmup=n_draws // 2, num_chains=2,
                seed=args.seed, progress=False)
    xs = rev.samples["x"].reshape(-1)
    lo, mid, hi = np.quantile(xs, [0.05, 0.5, 0.95])
    print(f"   x: median {mid:+.3f}, 90% interval [{lo:+.3f}, {hi:+.3f}]")
    save_figure(args.out / FIGURES[1], x, y, grid, pred, xs, best)


def save_figure(path: Path, x: np.ndarray, y: np.ndarray, grid: np.ndarray,
                pred: np.ndarray, xs: np.ndarray, best: ppl.Program) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].plot(x, y, "k.", label="data (x, y)")
    lo, hi = np.quantile(pred, [0.05, 0.95], axis=0)
    axes[0].fill_between(grid, lo, hi, alpha=0.3, label="forward: 90% of p(y | x, φ̂)")
    axes[0].plot(grid, pred.mean(0), label=f"φ̂ = {best}")
    axes[0].axhline(2.0, color="C3", ls=":", label="y = 2.0 (reverse query)")
    axes[0].set_xlabel("x")
    axes[0].set_ylabel("y")
    axes[0].legend(fontsize=7)
    axes[1].hist(xs, bins=40, density=True, color="C3", alpha=0.6)
    axes[1].set_title("reverse: p(x | y = 2.0, φ̂, σ̂)")
    axes[1].set_xlabel("x")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"\nFigure: {path}")


if __name__ == "__main__":
    main()
