"""A grammar as a prior over programs: sample, score, parse, evaluate.

Loads the bundled ``arith`` grammar (the Koza function set with real constants), builds the
program prior conditioned on depth <= 6, and shows what a user of it sees: sampled programs
with their exact log-probabilities, the grammar's consistency figures, one program parsed
from text and evaluated, and a histogram of program sizes, sampled against exact.

Run ``python examples/grammar_prior.py`` (what ``make demo`` does); ``--quick`` draws fewer
programs, ``--out DIR`` says where the figure goes, ``--seed`` fixes the draws.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display; set before pyplot is imported
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

import ppl

FIGURE = "grammar_prior_sizes.png"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="draw 2,000 programs for the histogram instead of 20,000")
    parser.add_argument("--out", type=Path, default=Path("out"),
                        help=f"directory for {FIGURE} (default: ./out)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the numpy Generator")
    return parser.parse_args(argv)


def show_samples(prior: ppl.ProgramPrior, rng: np.random.Generator, n: int = 10) -> None:
    print(f"{n} programs drawn from {prior}:")
    print(f"  {'log π₀(φ)':>10}  {'size':>4}  program")
    for _ in range(n):
        f = prior.sample(rng=rng)
        print(f"  {prior.log_density(f):10.3f}  {f.size:4d}  {f}")


def show_grammar(prior: ppl.ProgramPrior, exact: np.ndarray) -> None:
    grammar = prior.grammar
    sizes = np.arange(len(exact))
    print(f"\nGrammar {grammar.name}: spectral radius of the mean matrix ρ = "
          f"{grammar.spectral_radius:.4f} (< 1: consistent)")
    print(f"  expected size without limits: {grammar.expected_size():.3f} nodes")
    print(f"  expected size given depth <= {prior.max_depth}: {float(sizes @ exact):.3f} nodes")


def show_parsed(grammar: ppl.Grammar) -> None:
    f = grammar.parse("((2.5 * x) + sin(x))")
    x = np.linspace(-1.0, 1.0, 5)
    print(f"\nParsed {f}  (sympy: {f.to_sympy()}; size {f.size}, depth {f.depth})")
    print(f"  x    = {np.array2string(x, precision=3)}")
    print(f"  f(x) = {np.array2string(f(x), precision=3)}")


def size_histogram(prior: ppl.ProgramPrior, rng: np.random.Generator, n: int,
                   exact: np.ndarray, path: Path) -> None:
    start = time.perf_counter()
    drawn = np.array([prior.sample(rng=rng).size for _ in range(n)])
    seconds = time.perf_counter() - start
    sampled = np.bincount(drawn, minlength=len(exact)) / n
    sizes = np.arange(len(exact))
    mean, sd = float(sizes @ exact), float(np.sqrt((sizes - sizes @ exact) ** 2 @ exact))
    z = (drawn.mean() - mean) / (sd / np.sqrt(n))
    print(f"\n{n:,} draws in {seconds:.2f} s: mean size {drawn.mean():.3f} vs exact "
          f"{mean:.3f} (z = {z:+.2f}); total variation to exact "
          f"{0.5 * np.abs(sampled - exact).sum():.4f}")

    floor = 0.3 / n  # below this an exact probability is invisible in n draws
    shown = sizes[(exact >= floor) | (sampled > 0)]
    spread = 2 * np.sqrt(exact * (1 - exact) / n)
    fig, ax = plt.subplots(figsize=(7.5, 4.2), layout="constrained")
    ax.bar(sizes, sampled, width=0.8, color="tab:blue", alpha=0.6,
           label=f"sampled ({n:,} draws)")
    ax.errorbar(shown, exact[shown], yerr=spread[shown], fmt="o", color="black",
                markersize=3.5, capsize=2, elinewidth=1,
                label="exact, prior.size_distribution() (± 2 s.e. of n draws)")
    ax.set_yscale("log")
    ax.set_ylim(floor, 1.0)
    ax.set_xlim(0, shown.max() + 1)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("program size N(φ) (nodes)")
    ax.set_ylabel("probability")
    ax.set_title(f"Program sizes under {prior.grammar.name}, max_depth={prior.max_depth}")
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"Saved {path}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    grammar = ppl.Grammar.load("arith")
    prior = ppl.ProgramPrior(grammar, inputs=["x"], max_depth=6)
    exact = prior.size_distribution()
    show_samples(prior, rng)
    show_grammar(prior, exact)
    show_parsed(grammar)
    size_histogram(prior, rng, 2_000 if args.quick else 20_000, exact, args.out / FIGURE)


if __name__ == "__main__":
    main()
