"""Eight schools on three engines, compared in one table.

The classic hierarchical model (Rubin 1981; posteriordb ``eight_schools_noncentered``),
written once with ``ppl`` primitives:

    mu ~ Normal(0, 5),  tau ~ HalfCauchy(5),  theta_trans_j ~ Normal(0, 1),
    theta_j = mu + tau · theta_trans_j,  y_j ~ Normal(theta_j, sigma_j).

``inference.compare`` runs the same model text with Pyro's NUTS (``method="nuts"``,
``backend="pyro"``), NumPyro's NUTS (``backend="numpyro"``) and our Metropolis-within-Gibbs
(``method="mcmc"``, whose plan here is one NUTS block on all the continuous sites), and
prints wall time, ESS per second, R-hat, divergences, elpd (LOO) and the agreement of each
run with the first (largest standardized mean difference). The posterior means are checked
against the posteriordb reference (Stan, 10,000 draws).

Run ``python examples/eight_schools.py``; ``--quick`` draws fewer samples.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

import ppl
from inference import compare
from ppl import dist

FIGURE = "eight_schools.png"
Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SIGMA = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])
REFERENCE = {"mu": (4.41, 3.31), "tau": (3.60, 3.20)}
"""posteriordb reference (mean, sd) of eight_schools_noncentered, rounded."""


def eight_schools(sigma: Any, y: Any = None) -> None:
    mu = ppl.sample("mu", dist.Normal(0.0, 5.0))
    tau = ppl.sample("tau", dist.HalfCauchy(5.0))
    with ppl.plate("schools", len(sigma)):
        theta_trans = ppl.sample("theta_trans", dist.Normal(0.0, 1.0))
        theta = ppl.deterministic("theta", mu + tau * theta_trans)
        ppl.sample("y", dist.Normal(theta, sigma), obs=y)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer draws")
    parser.add_argument("--out", type=Path, default=Path("out"),
                        help=f"directory for {FIGURE} (default: ./out)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    n = 100 if args.quick else 1000
    methods: list[Any] = [("nuts", {"backend": "numpyro"}), ("nuts", {"backend": "pyro"}),
                          "mcmc"]
    table = compare(eight_schools, SIGMA, y=Y, methods=methods, num_samples=n, num_warmup=n,
                    num_chains=2 if args.quick else 4, seed=args.seed,
                    plot=args.out / FIGURE)
    columns = ["wall_time_s", "ess_bulk_per_s", "max_rhat", "divergences", "acceptance",
               "elpd_loo", "max_smd"]
    print(table[columns].round(3).to_string())
    print("\nPosterior mean (sd) against the posteriordb reference:")
    for label, post in table.attrs["posteriors"].items():
        cells = []
        for site, (ref_mean, ref_sd) in REFERENCE.items():
            draws = np.asarray(post.samples[site], dtype=float)
            cells.append(f"{site} {draws.mean():5.2f} ({draws.std():4.2f}) "
                         f"[ref {ref_mean:.2f} ({ref_sd:.2f})]")
        print(f"  {label:14s} " + "   ".join(cells))
    print(f"\nFigure: {args.out / FIGURE}")


if __name__ == "__main__":
    main()
