"""Learn to infer: train a neural proposal once on simulated worlds, then answer new data
sets in milliseconds, with an exact answer.

A program f is drawn from the ``arith`` prior (depth ≤ 4, at most 7 nodes) and observed at
20 points with noise 0.1. ``train_proposal`` simulates (x, y, f) triples from this model and
trains q(f | x, y) (a set encoder over the points, a grammar-constrained decoder over
productions). Then, on new laws never seen in training, it compares:

- ``method="amortized"``: importance sampling from q mixed with the prior (1,000
  particles), weights exact, ESS and Pareto k̂ reported;
- ``method="mcmc"`` from scratch, and ``method="mcmc"`` with the neural independence move
  (q in the Hastings ratio: the chain stays exact however q was trained);

and prints one table: seconds, P(true structure) (the posterior mass of trees equal to the
true law's up to commutativity and constant values), ESS. It also shows the encoder's
similarity between data sets. A figure of the comparison goes to ``--out``.

Run ``python examples/amortized.py`` (a few minutes on 2 cores) or with ``--quick``.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

import ppl
from inference import infer
from inference.amortized import train_proposal
from inference.api import RunWarning
from inference.arviz import az
from ppl import dist

PRIOR = ppl.ProgramPrior("arith", inputs=["x"], max_depth=4, max_size=7)
NOISE = 0.1
X = np.linspace(-2.0, 2.0, 20)


def model(x, y=None):
    """y ~ Normal(f(x), 0.1), f ~ arith prior (depth ≤ 4, ≤ 7 nodes)."""
    f = ppl.sample("f", PRIOR)
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), NOISE), obs=y)


def tasks(n: int, seed: int) -> list[tuple[ppl.Program, np.ndarray]]:
    """``n`` held-out laws from the prior (not constant, finite on X) and their data."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        law = PRIOR.sample_program(rng)
        clean = np.asarray(law(X), dtype=float) * np.ones_like(X)
        if law.size < 3 or not np.all(np.isfinite(clean)) or np.ptp(clean) < 0.5 \
                or np.abs(clean).max() > 50:
            continue
        out.append((law, clean + NOISE * rng.standard_normal(len(X))))
    return out


def p_true(post, law: ppl.Program) -> float:
    table = post.programs("f", top=None, simplify=False, group="key")
    return float(table.loc[[p.key == law.key for p in table["program"]], "probability"].sum())


def run(label: str, law: ppl.Program, y: np.ndarray, **options) -> dict:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RunWarning)
        post = infer(model, X, y=y, progress=False, **options)
    seconds = time.perf_counter() - start
    ess = post.attrs.get("ess")  # importance sampling's; for chains, ArviZ's bulk ESS of lp
    if ess is None:
        ess = float(az.ess(post.stats["lp"]))
    return {"method": label, "seconds": seconds, "p_true": p_true(post, law), "ess": ess}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run (< 1 minute)")
    parser.add_argument("--out", type=Path, default=Path("out"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    steps, n_tasks, draws = (150, 2, 100) if args.quick else (3000, 6, 500)

    start = time.perf_counter()
    proposal = train_proposal(model, X, y=np.zeros(len(X)), num_steps=steps, batch_size=32,
                              hidden=32, seed=args.seed, progress=False, max_time=240)
    print(f"Trained q(f | x, y): {proposal.steps} steps in {time.perf_counter() - start:.1f} s "
          f"(validation loss {proposal.history[-1].valid_loss:.2f} nats)\n")

    rows = []
    for k, (law, y) in enumerate(tasks(n_tasks, seed=1000 + args.seed)):
        print(f"task {k}: true law {law}")
        common = {"seed": args.seed}
        for row in (
                run("amortized IS", law, y, method="amortized", proposal=proposal,
                    num_particles=1000, num_samples=500, num_chains=1, **common),
                run("MCMC", law, y, method="mcmc", num_samples=draws, num_warmup=draws,
                    num_chains=2, chain_method="sequential", **common),
                run("MCMC + neural move", law, y, method="mcmc", num_samples=draws,
                    num_warmup=draws, num_chains=2, chain_method="sequential",
                    proposal=proposal, **common)):
            row["task"] = k
            rows.append(row)
            print(f"   {row['method']:<20} {row['seconds']:6.2f} s   P(true structure) "
                  f"{row['p_true']:.3f}   ESS {row['ess']:.0f}")
    print("\nMedian over tasks:")
    for method in dict.fromkeys(r["method"] for r in rows):
        sub = [r for r in rows if r["method"] == method]
        print(f"   {method:<20} {np.median([r['seconds'] for r in sub]):6.2f} s   "
              f"P(true structure) {np.median([r['p_true'] for r in sub]):.3f}")

    law_a, law_b = tasks(2, seed=77)
    rng = np.random.default_rng(5)
    again = np.asarray(law_a[0](X)) * np.ones_like(X) + NOISE * rng.standard_normal(len(X))
    same = proposal.similarity((X, law_a[1]), (X, again))
    other = proposal.similarity((X, law_a[1]), (X, law_b[1]))
    print(f"\nSimilarity of data sets: same law {same:.3f}, different laws {other:.3f}")
    save_figure(args.out / "amortized.png", rows)
    print(f"Figure: {args.out / 'amortized.png'}")


def save_figure(path: Path, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for i, method in enumerate(methods):
        sub = [r for r in rows if r["method"] == method]
        axes[0].scatter([i] * len(sub), [r["seconds"] for r in sub])
        axes[1].scatter([i] * len(sub), [r["p_true"] for r in sub])
    for ax, label in zip(axes, ["seconds per data set", "P(true structure)"], strict=True):
        ax.set_xticks(range(len(methods)), methods, rotation=15)
        ax.set_ylabel(label)
    axes[0].set_yscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
