"""Issue 12's measure: time to an SVI fit within 2 reference sds, against NUTS to ESS 400.

Two models, each written once with ``ppl`` primitives and run on both backends:

- **eight schools** (posteriordb ``eight_schools_noncentered``; reference: Stan, 10,000
  draws, every parameter: ``theta[1..8]``, ``theta_trans[1..8]``, ``mu``, ``tau``);
- **a hierarchical regression** with :data:`GROUPS` groups and :data:`N` observations
  (simulated with a fixed seed; reference: NumPyro's NUTS, 4 chains × 5,000 draws after
  2,000 warmup, computed once and cached in ``--out``).

For each (method, backend) the harness runs ``infer`` with a doubling schedule: SVI with
:data:`SVI_STEPS` optimisation steps (AutoNormal, ``Trace_ELBO``, 1,000 guide draws, the
convergence test off so every run takes its steps), NUTS with 2 chains of ``w`` warmup and
``w`` kept draws for ``w`` in :data:`NUTS_DRAWS`, one after the other on one core. The
figure is the wall time of the first run of the schedule that meets its goal:

- SVI: every reference parameter's mean within 2 reference sds (the issue's criterion);
  the table also gives the largest |mean − reference| / sd and the range of sd / reference
  sd of that run (a mean-field guide's sds are too small where the posterior is
  correlated);
- NUTS: the smallest bulk ESS over the parameters ≥ 400.

Each run is one ``infer`` call timed from the outside (wall clock; the NumPyro runs
include their compilation). Run::

    python -m benchmarks.svi_speed --out out/svi_speed --write docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

import ppl
from benchmarks._report import replace_sections
from benchmarks.nguyen import code_version, machine
from benchmarks.posteriordb import draws_of, eight_schools_noncentered, reference
from inference import infer
from inference.arviz import az
from ppl import dist

HEADING = "## SVI against NUTS: time to a fit (issue 12)"
GROUPS = 20
N = 1000
SVI_STEPS = (125, 250, 500, 1000, 2000, 4000, 8000)
NUTS_DRAWS = (100, 200, 400, 800, 1600, 3200)
ESS_GOAL = 400
SDS = 2.0
"""The issue's goal for SVI: every reference mean within this many reference sds."""
CLOSE_Z = 0.25
CLOSE_SD = (0.75, 1.33)
"""A close fit, one a user could read the posterior from: every mean within CLOSE_Z
reference sds and every sd within CLOSE_SD of the reference sd."""


def hier_regression(onehot: Any, x: Any, y: Any = None) -> None:
    """y_i ~ Normal(a[g_i] + b·x_i, sigma), a = mu_a + tau_a · a_raw (non-centred)."""
    mu_a = ppl.sample("mu_a", dist.Normal(0.0, 5.0))
    tau_a = ppl.sample("tau_a", dist.HalfNormal(2.0))
    b = ppl.sample("b", dist.Normal(0.0, 2.0))
    sigma = ppl.sample("sigma", dist.HalfNormal(2.0))
    with ppl.plate("groups", onehot.shape[1]):
        a_raw = ppl.sample("a_raw", dist.Normal(0.0, 1.0))
    a = ppl.deterministic("a", mu_a + tau_a * a_raw)
    loc = (onehot * a[..., None, :]).sum(-1) + b * x
    with ppl.plate("data", onehot.shape[0]):
        ppl.sample("y", dist.Normal(loc, sigma), obs=y)


def regression_data(n: int = N, groups: int = GROUPS, seed: int = 0
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(one-hot groups (n, groups), x (n,), y (n,)) with mu_a 1, tau_a 0.7, b −0.5, σ 1."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, n)
    a = 1.0 + 0.7 * rng.standard_normal(groups)
    x = rng.standard_normal(n)
    y = a[g] - 0.5 * x + rng.standard_normal(n)
    return np.eye(groups)[g], x, y


def _summary(samples: dict[str, np.ndarray], names: list[str]) -> dict[str, dict[str, float]]:
    return {p: {"mean": float(draws_of(samples, p).mean()),
                "sd": float(draws_of(samples, p).std())} for p in names}


def regression_reference(out: Path, n: int) -> dict[str, dict[str, float]]:
    """The regression's reference summary (NumPyro NUTS, long), cached in ``out``."""
    path = out / f"hier_regression_reference_{n}.json"
    if path.exists():
        cached: dict[str, dict[str, float]] = json.loads(path.read_text())
        return cached
    onehot, x, y = regression_data(n)
    post = infer(hier_regression, onehot, x, y=y, method="nuts", backend="numpyro",
                 num_samples=5000, num_warmup=2000, num_chains=4, seed=123,
                 chain_method="sequential", progress=False)
    names = ["mu_a", "tau_a", "b", "sigma"] + [f"a[{j + 1}]" for j in range(onehot.shape[1])]
    summary = _summary(post.samples, names)
    path.write_text(json.dumps(summary, indent=1))
    return summary


def problems(out: Path, n: int) -> dict[str, tuple[Any, tuple[Any, ...], dict[str, Any],
                                                    dict[str, dict[str, float]]]]:
    """name -> (model, args, kwargs, reference summary)."""
    ref = reference("eight_schools_noncentered")
    sigma, y8 = ref.args
    onehot, x, y = regression_data(n)
    return {"eight schools": (eight_schools_noncentered, (sigma,), {"y": y8}, ref.summary),
            f"hierarchical regression ({n} obs, {GROUPS} groups)":
                (hier_regression, (onehot, x), {"y": y}, regression_reference(out, n))}


def timed(model: Any, args: tuple[Any, ...], kwargs: dict[str, Any], **options: Any
           ) -> tuple[Any, float]:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # k̂ and convergence warnings are read from attrs
        post = infer(model, *args, **kwargs, progress=False, seed=0,
                     chain_method="sequential", **options)
    return post, time.perf_counter() - start


def svi_run(model: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
            ref: dict[str, dict[str, float]], backend: str, schedule: tuple[int, ...],
            max_seconds: float = math.inf) -> dict[str, Any]:
    """The SVI schedule until the fit is close (:data:`CLOSE_Z`, :data:`CLOSE_SD`), or a
    run took more than ``max_seconds``; the first run with every mean within :data:`SDS`
    reference sds is the figure, and the first close one is reported too."""
    tried = []
    for steps in schedule:
        post, wall = timed(model, args, kwargs, method="svi", backend=backend,
                            num_steps=steps, tolerance=0.0, num_samples=1000, num_chains=1)
        z = [abs(float(draws_of(post.samples, p).mean()) - r["mean"]) / r["sd"]
             for p, r in ref.items()]
        ratio = [float(draws_of(post.samples, p).std()) / r["sd"] for p, r in ref.items()]
        row = {"steps": steps, "seconds": wall, "max_z": max(z), "sd_ratio_min": min(ratio),
               "sd_ratio_max": max(ratio), "khat": float(post.attrs["khat"])}
        row["close"] = max(z) <= CLOSE_Z and CLOSE_SD[0] <= min(ratio) <= max(ratio) <= \
            CLOSE_SD[1]
        tried.append(row)
        if row["close"] or wall > max_seconds:
            break
    first = next((r for r in tried if r["max_z"] <= SDS), None)
    close = next((r for r in tried if r["close"]), None)
    return {"reached": first is not None, **(first or tried[-1]),
            "close_seconds": None if close is None else close["seconds"],
            "close_steps": None if close is None else close["steps"], "tried": tried}


def nuts_run(model: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
             ref: dict[str, dict[str, float]], backend: str, schedule: tuple[int, ...],
             max_seconds: float = math.inf) -> dict[str, Any]:
    """The NUTS schedule until the smallest bulk ESS is at least :data:`ESS_GOAL`, or a run
    took more than ``max_seconds``."""
    tried = []
    for draws in schedule:
        post, wall = timed(model, args, kwargs, method="nuts", backend=backend,
                            num_samples=draws, num_warmup=draws, num_chains=2)
        ess = min(float(az.ess(draws_of(post.samples, p), method="bulk")) for p in ref)
        z = [abs(float(draws_of(post.samples, p).mean()) - r["mean"]) / r["sd"]
             for p, r in ref.items()]
        row = {"draws": draws, "seconds": wall, "min_ess": ess, "max_z": max(z)}
        tried.append(row)
        if ess >= ESS_GOAL:
            return {"reached": True, **row, "tried": tried}
        if wall > max_seconds:
            break
    return {"reached": False, **tried[-1], "tried": tried}


def run(args: argparse.Namespace) -> dict[str, Any]:
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"command": "python -m benchmarks.svi_speed " + " ".join(args.argv),
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(), "code": code_version()}
    path = args.out / "svi_speed.json"
    old = json.loads(path.read_text()) if args.only and path.exists() else None
    rows = []
    for m, (name, (model, margs, kwargs, ref)) in enumerate(problems(args.out, args.n).items()):
        for backend in ("pyro", "numpyro"):
            for method in ("svi", "nuts"):
                if args.only and f"{m}:{method}:{backend}" not in args.only:
                    if old is not None:  # the row of the earlier run, as it was
                        rows += [r for r in old["rows"] if (r["model"], r["method"],
                                                            r["backend"]) == (name, method,
                                                                              backend)]
                    continue
                t0 = time.perf_counter()
                result = (svi_run(model, margs, kwargs, ref, backend, args.svi_steps,
                                  args.max_run_seconds)
                          if method == "svi" else
                          nuts_run(model, margs, kwargs, ref, backend, args.nuts_draws,
                                   args.max_run_seconds))
                rows.append({"model": name, "method": method, "backend": backend, **result,
                             "schedule_seconds": time.perf_counter() - t0})
                print(json.dumps({k: v for k, v in rows[-1].items() if k != "tried"}),
                      flush=True)
    if old is not None:  # both commands, each row from the run that made it
        meta["command"] = old["meta"]["command"] + "\n" + meta["command"]
        meta["date"] = old["meta"]["date"] + " and " + meta["date"]
    out = {"meta": meta, "rows": rows}
    path.write_text(json.dumps(out, indent=1))
    return out


def _fmt(row: dict[str, Any]) -> str:
    reached = (f"{row['seconds']:.1f} s" if row["reached"] else
               f"not reached ({row['seconds']:.1f} s)")
    if row["method"] == "svi":
        close = ("not reached" if row["close_seconds"] is None else
                 f"{row['close_seconds']:.1f} s ({row['close_steps']} steps)")
        reached += f"; close: {close}"
        how = (f"{row['steps']} steps; max \\|Δmean\\|/sd {row['max_z']:.2f}; sd/ref sd "
               f"{row['sd_ratio_min']:.2f}–{row['sd_ratio_max']:.2f}; k̂ {row['khat']:.2f}")
    else:
        how = (f"2 × ({row['draws']} + {row['draws']}); min bulk ESS {row['min_ess']:.0f}; "
               f"max \\|Δmean\\|/sd {row['max_z']:.2f}")
    return f"| {row['model']} | {row['method']} | {row['backend']} | {reached} | {how} |"


def report(result: dict[str, Any]) -> str:
    meta = result["meta"]
    lines = [HEADING, "",
             "Issue 12's measure (`benchmarks/svi_speed.py`): the wall time of the first run of "
             "a doubling schedule that reaches the goal, one `infer` call at a time on one "
             f"core. SVI (AutoNormal, Trace_ELBO): every reference mean within {SDS:g} "
             f"reference sds. NUTS (2 chains, warmup = kept draws): smallest bulk ESS ≥ "
             f"{ESS_GOAL}. \"close\": SVI's first run with every mean within {CLOSE_Z:g} "
             f"reference sds and every sd within {CLOSE_SD[0]:g}–{CLOSE_SD[1]:g} × the "
             "reference sd (what a user could read the posterior from). Eight schools: the "
             "posteriordb reference (Stan); the regression: "
             "NumPyro's NUTS, 4 × 5,000 draws, cached.", "",
             "| model | method | backend | time to goal | the run that reached it |",
             "|---|---|---|---|---|"]
    lines += [_fmt(r) for r in result["rows"]]
    lines += ["", f"Command (run on {meta['date']}, code {meta['code']}, load average "
              f"{meta['machine'].get('load average (1 min) before the run', '?')} before it):",
              "", "```bash", meta["command"], "```", ""]
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/svi_speed"),
                        help="folder for the JSON record and the cached reference")
    parser.add_argument("--n", type=int, default=N, help=f"regression observations ({N})")
    parser.add_argument("--svi-steps", type=int, nargs="+", default=list(SVI_STEPS))
    parser.add_argument("--nuts-draws", type=int, nargs="+", default=list(NUTS_DRAWS))
    parser.add_argument("--only", nargs="+", metavar="M:METHOD:BACKEND",
                        help="run only these rows (model index 0 or 1, svi or nuts, pyro or "
                        "numpyro), keeping the other rows of an earlier svi_speed.json")
    parser.add_argument("--max-run-seconds", type=float, default=300.0,
                        help="stop a schedule after a run that took longer (300)")
    parser.add_argument("--write", type=Path, help="write the report section into this file")
    parser.add_argument("--report-from", type=Path, help="do not run: report this JSON")
    args = parser.parse_args(argv)
    if args.n < 2 or min(args.svi_steps) < 1 or min(args.nuts_draws) < 1:
        parser.error("--n must be >= 2, steps and draws >= 1")
    args.argv = argv
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import sys

    args = parse_args(sys.argv[1:] if argv is None else argv)
    result = (json.loads(args.report_from.read_text()) if args.report_from else run(args))
    section = report(result)
    if args.write is not None:
        replace_sections(args.write, section, (HEADING,))
        print(f"Wrote {args.write} ({HEADING[3:]})")
    else:
        print(section)
    return result


if __name__ == "__main__":
    main()
