"""Eight schools by variational inference on Pyro and NumPyro, next to NUTS, in one table.

The non-centered eight schools (posteriordb ``eight_schools_noncentered``), written once with
``ppl`` primitives, is fitted by ``method="svi"`` with the mean-field guide (AutoNormal) on
both backends and with the full-covariance guide (AutoMultivariateNormal) on NumPyro, and
sampled by NumPyro's NUTS as the reference (``--quick``: no full-covariance fit).
``inference.compare`` prints wall time, elpd (LOO) and each fit's agreement with NUTS (the
largest standardized mean difference); the
script then prints what only a variational fit has: the steps it ran, whether its ELBO
converged, and the Pareto k̂ of its importance weights (above 0.7: do not trust the
draws), and plots each fit's ELBO trace next to the posterior means and sds of mu and tau.

The second part fits a **program posterior** by SVI (issue 12): on the finite ``tiny``
grammar (E -> E+E | E*E | sin E | x | 1, depth ≤ 3: 302 programs) and six noisy points,
the grammar guide (context-dependent production logits, score-function gradients) is fitted
and drawn from, plain and reweighted by PSIS (``psis=True``), next to program MCMC and exact
enumeration in one ``compare`` table: its ``tv_program`` column is each row's total
variation distance from the exact posterior, and the script prints the top programs'
probabilities side by side.

Run ``python examples/variational.py``; ``--quick`` fits and draws less (under a minute).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from eight_schools import REFERENCE, SIGMA, Y, eight_schools  # this folder is on sys.path
from matplotlib.figure import Figure

import ppl
from inference import compare
from inference.api import RunWarning
from ppl import dist

FIGURE = "variational.png"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and draws")
    parser.add_argument("--out", type=Path, default=Path("out"),
                        help=f"directory for {FIGURE} (default: ./out)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def plot(table: Any, path: Path) -> None:
    """ELBO traces of the SVI rows, and mean ± sd of mu and tau of every row."""
    posts = table.attrs["posteriors"]
    fig = Figure(figsize=(11, 4), layout="constrained")
    elbo_ax, est_ax = fig.subplots(1, 2)
    for j, (label, post) in enumerate(posts.items()):
        if post.method == "svi":
            trace = np.asarray(post.attrs["elbo_trace"])
            steps = np.arange(1, len(trace) + 1) * post.attrs["elbo_every"]
            elbo_ax.plot(steps, trace, color=f"C{j}", lw=0.8,
                         label=f"{label}, khat {post.attrs['khat']:.2f}")
    elbo_ax.set_xlabel("step")
    elbo_ax.set_ylabel("ELBO estimate")
    elbo_ax.set_ylim(bottom=-60)
    elbo_ax.legend(fontsize="small")
    elbo_ax.set_title("SVI: the ELBO per step")
    for k, (site, (ref_mean, ref_sd)) in enumerate(REFERENCE.items()):
        x = 2 * k + np.linspace(-0.3, 0.3, len(posts) + 1)
        est_ax.errorbar(x[0], ref_mean, yerr=ref_sd, fmt="ks", label="posteriordb" if k == 0
                        else None)
        for j, (label, post) in enumerate(posts.items()):
            draws = np.asarray(post.samples[site], dtype=float)
            est_ax.errorbar(x[j + 1], draws.mean(), yerr=draws.std(), fmt="o",
                            color=f"C{j}", label=label if k == 0 else None)
    est_ax.set_xticks([0, 2], list(REFERENCE))
    est_ax.set_title("posterior mean ± sd")
    est_ax.set_xlim(-1, 4.5)
    est_ax.legend(fontsize="small", loc="upper right")
    fig.savefig(str(path))


TINY = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=3)
X = np.linspace(-1.0, 1.0, 6)
Y_CURVE = X + np.sin(X) + 0.8 * np.random.default_rng(3).standard_normal(6)


def curve(x: Any, y: Any = None) -> None:
    f = ppl.sample("f", TINY)
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), 0.8), obs=y)


def programs(quick: bool, seed: int) -> None:
    """SVI on a program site next to MCMC and enumeration (the 302-program posterior)."""
    n = 500 if quick else 5000
    fit = {"num_steps": 1000 if quick else 2000, "learning_rate": 0.05, "num_particles": 10}
    methods: list[Any] = [("enumerate", {"label": "exact"}),
                          ("mcmc", {"label": "program MCMC"}),
                          ("svi", {**fit, "label": "SVI grammar guide"}),
                          ("svi", {**fit, "psis": True, "label": "SVI + PSIS"})]
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always", RunWarning)
        table = compare(curve, X, y=Y_CURVE, methods=methods, num_samples=n, num_chains=2,
                        chain_method="sequential", seed=seed)
    print("\nA program posterior (tiny grammar, 302 programs) by SVI, MCMC and enumeration:")
    print(table[["wall_time_s", "draws", "top_program", "tv_program"]].round(3).to_string())
    posts = table.attrs["posteriors"]
    grid = np.linspace(-1.3, 1.3, 7)

    def function(program: Any) -> tuple[float, ...]:
        """A program's outputs on a grid: rows of different tables that are the same
        function (``(sin(x) + x)`` and ``(x + sin(x))``) meet here."""
        return tuple(np.round(np.broadcast_to(program(grid), grid.shape), 9))

    tables = {label: post.programs() for label, post in posts.items()}
    print("\nP(program) of the five most probable functions:")
    print(f"  {'program':22s}" + "".join(f"{label:>19s}" for label in posts))
    for program in tables["exact"]["program"][:5]:
        cells = []
        for rows in tables.values():
            hit = rows.loc[[function(p) == function(program) for p in rows["program"]],
                           "probability"]
            cells.append(f"{float(hit.sum()):19.3f}")
        print(f"  {program!s:22s}" + "".join(cells))
    for label, post in posts.items():
        if post.method == "svi":
            print(f"  {label}: Pareto k̂ {post.attrs['khat']:.2f}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    n = 250 if args.quick else 1000
    steps = 1500 if args.quick else 5000
    methods: list[Any] = [("nuts", {"backend": "numpyro", "label": "NUTS (numpyro)"}),
                          ("svi", {"label": "SVI normal (pyro)"}),
                          ("svi", {"backend": "numpyro", "label": "SVI normal (numpyro)"})]
    if not args.quick:
        methods.append(("svi", {"backend": "numpyro", "guide": "mvn",
                                "label": "SVI mvn (numpyro)"}))
    with warnings.catch_warnings(record=True) as caught:  # k̂ > 0.7 is a column below
        warnings.simplefilter("always", RunWarning)
        table = compare(eight_schools, SIGMA, y=Y, methods=methods, num_samples=n,
                        num_warmup=n, num_chains=2, num_steps=steps, seed=args.seed)
    print(table[["wall_time_s", "draws", "elpd_loo", "max_smd"]].round(3).to_string())
    print("\nThe variational fits:")
    for label, post in table.attrs["posteriors"].items():
        if post.method == "svi":
            a = post.attrs
            print(f"  {label:22s} {a['steps']:5d} steps ({a['stopped']}), final ELBO "
                  f"{a['final_elbo']:7.2f}, Pareto k̂ {a['khat']:.2f}"
                  f"{'  <- unreliable' if a['khat'] > 0.7 else ''}")
    for w in caught:
        print(f"  warning: {str(w.message)[:110]}")
    print("\nPosterior mean (sd) against the posteriordb reference:")
    for label, post in table.attrs["posteriors"].items():
        cells = [f"{site} {np.mean(post.samples[site]):5.2f} ({np.std(post.samples[site]):4.2f})"
                 f" [ref {m:.2f} ({s:.2f})]" for site, (m, s) in REFERENCE.items()]
        print(f"  {label:22s} " + "   ".join(cells))
    plot(table, args.out / FIGURE)
    print(f"\nFigure: {args.out / FIGURE}")
    programs(args.quick, args.seed)


if __name__ == "__main__":
    main()
