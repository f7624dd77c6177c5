"""B3 (BENCHMARKS.md): what ``infer(..., method="nuts")`` costs over the raw libraries.

For eight_schools_noncentered and kilpisjarvi (``benchmarks/posteriordb.py``) and each
backend b in {pyro, numpyro}: ESS-bulk per second of ``infer(model, ..., method="nuts",
backend=b)`` divided by that of the same model written in b's own API and run by b's
``NUTS``/``MCMC`` directly, with the same chains, warmup, draws, seed, initialization and
float64, side by side in one process (ours, raw, raw, ours, ... alternating; medians over
``--repeats``). The raw runs are set up to reproduce our draws exactly (Pyro: the same
per-chain seeds spawned from the master seed; NumPyro: the same key and chain method), and
the harness checks that they do, so the two ESS figures are equal and the ratio is the ratio
of wall times: the front end's overhead (site discovery, data checks, statistics, the log
joint and pointwise log-likelihood of every draw, the Posterior). ESS-bulk is ``arviz.ess``'s,
the minimum over every scalar of the sampled sites.

Run::

    python -m benchmarks.nuts_overhead                             # print only
    python -m benchmarks.nuts_overhead --write docs/benchmarks.md  # what `make bench` does
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks._report import replace_sections
from benchmarks.posteriordb import MODELS, RAW, reference
from benchmarks.prior_costs import machine
from inference import infer
from inference.arviz import az

HEADING = "## B3. Continuous models: our front end against the raw libraries"
GOAL = 0.9
SITES = {"eight_schools_noncentered": ("mu", "tau", "theta_trans"),
         "kilpisjarvi": ("alpha", "beta", "sigma")}
OPTIONS = {"eight_schools_noncentered": {"dense_mass": False},
           "kilpisjarvi": {"dense_mass": True}}


@dataclass(frozen=True)
class Size:
    chains: int
    warmup: int
    draws: int


@dataclass
class Case:
    """One (model, backend) pair: wall seconds of every repeat on each side."""

    model: str
    backend: str
    size: Size
    ours: list[float]
    raw: list[float]
    ess: float
    identical: bool

    @property
    def ratio(self) -> float:
        """ESS-bulk/s of ours over raw's (median seconds; the ESS are equal)."""
        return statistics.median(self.raw) / statistics.median(self.ours)


def min_ess(samples: dict[str, np.ndarray], sites: tuple[str, ...]) -> float:
    """Minimum ESS-bulk over every scalar of ``sites`` ((chain, draw, ...) arrays)."""
    out = []
    for site in sites:
        arr = samples[site]
        flat = arr.reshape(arr.shape[:2] + (-1,))
        out += [float(az.ess(flat[..., i], method="bulk")) for i in range(flat.shape[2])]
    return min(out)


def run_ours(name: str, backend: str, size: Size, seed: int) -> tuple[float, dict[str, Any]]:
    args = reference(name).args
    start = time.perf_counter()
    post = infer(MODELS[name], *args, method="nuts", backend=backend, num_chains=size.chains,
                 num_warmup=size.warmup, num_samples=size.draws, seed=seed, progress=False,
                 chain_method="sequential", **OPTIONS[name])
    return time.perf_counter() - start, post.samples


def run_raw_pyro(name: str, size: Size, seed: int) -> tuple[float, dict[str, Any]]:
    """Pyro's NUTS/MCMC on the Pyro-API model, one MCMC run per chain in sequence."""
    from pyro.infer import MCMC, NUTS
    from pyro.infer.autoguide.initialization import init_to_uniform

    from ppl.trace import discovery_value

    def init(site: dict[str, Any]) -> Any:  # what a Pyro user writes for an improper prior
        try:
            return init_to_uniform(site)
        except NotImplementedError:
            return discovery_value(site)

    model: Callable[..., Any] = RAW["pyro", name]
    start = time.perf_counter()
    data = tuple(torch.as_tensor(a) if isinstance(a, np.ndarray) else a
                 for a in reference(name).args)
    seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(
        size.chains)]
    chains = []
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        for s in seeds:
            with torch.random.fork_rng():
                torch.manual_seed(s)
                kernel = NUTS(model, full_mass=OPTIONS[name]["dense_mass"], init_strategy=init,
                              max_plate_nesting=1)
                mcmc = MCMC(kernel, num_samples=size.draws, warmup_steps=size.warmup,
                            disable_progbar=True)
                mcmc.run(*data)
            chains.append({k: v.numpy() for k, v in mcmc.get_samples().items()})
    finally:
        torch.set_default_dtype(previous)
    samples = {k: np.stack([c[k] for c in chains]) for k in chains[0]}
    return time.perf_counter() - start, samples


def run_raw_numpyro(name: str, size: Size, seed: int) -> tuple[float, dict[str, Any]]:
    """NumPyro's NUTS/MCMC on the NumPyro-API model, chains in sequence, float64."""
    import jax
    import jax.numpy as jnp
    from numpyro.infer import MCMC, NUTS

    model: Callable[..., Any] = RAW["numpyro", name]
    start = time.perf_counter()
    with jax.enable_x64(True):
        data = tuple(jnp.asarray(a) if isinstance(a, np.ndarray) else a
                     for a in reference(name).args)
        mcmc = MCMC(NUTS(model, dense_mass=OPTIONS[name]["dense_mass"]),
                    num_warmup=size.warmup, num_samples=size.draws, num_chains=size.chains,
                    chain_method="sequential", progress_bar=False)
        mcmc.run(jax.random.PRNGKey(seed), *data)
        samples = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    return time.perf_counter() - start, samples


def measure(name: str, backend: str, size: Size, repeats: int, seed: int) -> Case:
    raw = run_raw_pyro if backend == "pyro" else run_raw_numpyro
    ours_s: list[float] = []
    raw_s: list[float] = []
    identical = True
    ess = float("nan")
    sides: dict[str, Callable[[], tuple[float, dict[str, Any]]]] = {
        "ours": lambda: run_ours(name, backend, size, seed),
        "raw": lambda: raw(name, size, seed)}
    for r in range(repeats):
        draws: dict[str, dict[str, Any]] = {}
        for side in ("ours", "raw") if r % 2 == 0 else ("raw", "ours"):
            seconds, draws[side] = sides[side]()
            (ours_s if side == "ours" else raw_s).append(seconds)
        mine, theirs = draws["ours"], draws["raw"]
        identical &= all(np.array_equal(mine[k], theirs[k]) for k in SITES[name])
        ess = min_ess(mine, SITES[name])
        print(f"{name:<26} {backend:<8} repeat {r}: ours {ours_s[-1]:6.2f} s, raw "
              f"{raw_s[-1]:6.2f} s, min ESS-bulk {ess:7.1f}, identical draws {identical}",
              flush=True)
    return Case(name, backend, size, ours_s, raw_s, ess, identical)


def report(cases: list[Case], argv: list[str], host: dict[str, str], when: str) -> str:
    rows = ["| model | backend | chains × (warmup + draws) | min ESS-bulk | wall s, ours | "
            "wall s, raw | ESS-bulk/s, ours | ESS-bulk/s, raw | ratio | identical draws | "
            "each repeat, s: ours; raw |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for c in cases:
        ours, raw = statistics.median(c.ours), statistics.median(c.raw)
        rows.append(f"| {c.model} | {c.backend} | {c.size.chains} × ({c.size.warmup} + "
                    f"{c.size.draws}) | {c.ess:.0f} | {ours:.2f} | {raw:.2f} | "
                    f"{c.ess / ours:.1f} | {c.ess / raw:.1f} | **{c.ratio:.2f}** | "
                    f"{'yes' if c.identical else 'NO'} | "
                    f"{', '.join(f'{x:.2f}' for x in c.ours)}; "
                    f"{', '.join(f'{x:.2f}' for x in c.raw)} |")
    worst = min(cases, key=lambda c: c.ratio)
    met = all(c.ratio >= GOAL for c in cases)
    lines = [
        HEADING, "",
        "ESS-bulk per second of `infer(model, ..., method=\"nuts\", backend=b)` over that of "
        "the same model written in b's own API and run by b's `NUTS`/`MCMC` directly: same "
        "chains, warmup, draws, seed, initialization (uniform in (−2, 2) unconstrained) and "
        "float64 (torch's default dtype set to float64 around the raw Pyro runs, "
        "`jax.enable_x64` around the raw NumPyro runs), chains in sequence on both sides, "
        "kilpisjarvi with a dense mass matrix. Both sides run in one process, alternating, "
        "and the raw runs reproduce our draws exactly (last column), so the ESS is the same "
        "and the ratio is raw wall time over ours (medians over the repeats). Our wall time "
        "is the whole `infer` call: site discovery and data checks, the sampler, ArviZ "
        "statistics, the log joint and pointwise log-likelihood of every draw (one "
        "vectorized model run on Pyro; traced into the sampler's loop on NumPyro), and "
        "the `Posterior`. Goal: ratio ≥ "
        f"{GOAL}.", "",
        *rows, "",
        f"Goal {'met' if met else 'not met'} in this run: the lowest ratio is "
        f"{worst.ratio:.2f} ({worst.model}, {worst.backend}). Medians over the repeats "
        "discount the first call of a case in a process, which pays XLA's first-use "
        "compilation of operations both sides share (last column; repeats alternate which "
        "side runs first). Sizes are small because Pyro is slow on these models "
        "(kilpisjarvi needs ~100–150 leapfrog steps per transition even with a dense mass "
        "matrix, a few milliseconds each in Pyro); identical draws make the ratio exact at "
        "any size.", "",
        *PROFILE, "",
        "Command:", "",
        "```bash", "python -m benchmarks.nuts_overhead " + " ".join(argv), "```", "",
        f"Run on {when}.", "",
        "| machine | |", "|---|---|",
        *[f"| {k} | {v} |" for k, v in host.items()], "",
    ]
    return "\n".join(lines)


PROFILE = (
    "Where the NumPyro overhead went (profiled 2026-11-30 with cProfile and phase timers, "
    "2 × (500 + 500), same loaded 2-core machine). Before: our overhead was a fixed cost per "
    "call outside `MCMC.run`: (1) the site-discovery trace ran the model eagerly, and XLA "
    "compiles each operation on its first use in a process: 1.85 s (eight schools) and "
    "1.55 s (kilpisjarvi) on a process's first call, ~0.01 s once warm; (2) the log joint, "
    "pointwise log-likelihood and deterministic sites of every draw came from a separately "
    "jitted `jax.vmap` of `log_density`: 0.12–0.19 s warm (tracing 0.03–0.14 s, XLA "
    "compilation 0.08–0.15 s), 0.3–0.45 s under load, 0.24–0.38 s on a first call. After: "
    "(1) discovery stages the model with `jax.make_jaxpr` (nothing executes, nothing "
    "compiles; falls back to the eager run when the observed data are not concrete or the "
    "model cannot be staged, which also reports errors as before): 0.09 s and 0.02 s on a "
    "first call; (2) the scores are NumPyro's `postprocess_fn`, traced into the sampler's "
    "own compiled loop after the kernel's constraining (so the draws stay NumPyro's to the "
    "bit), with the one eager call NumPyro makes to size its buffers answered by "
    "`jax.eval_shape`: no second compilation (0.03 s on a first call, against 0.47 s for an "
    "eager postprocess). Scoring each transition inside the loop, warmup included, cost "
    "nothing measurable even on a 20 000-observation regression (2 × (500 + 500): 6.3–6.8 s "
    "CPU fused against 6.6–9.5 s separate). What is left: warm, our call now spends "
    "≤ 0.01 s outside "
    "`MCMC.run` (phase timers, both models); any remaining gap is inside `MCMC.run`, where "
    "ours differs from the raw run only by the statistics collected (`extra_fields`), the "
    "scores traced into the loop and the `ppl` dispatch while tracing, too small to separate "
    "from the load noise here: the sampler's own compilation dominates both sides "
    "(kilpisjarvi: ~7.8 s of XLA compilation in a ~10 s `MCMC.run`, by cProfile), and single "
    "runs of one case vary by ±20 % on this shared machine (ratios of 0.85–1.06 for eight "
    "schools in back-to-back pairs). Pyro is unchanged (its overhead, two discovery runs "
    "and the check of the "
    "vectorized evaluation, was already within the goal).",
)

SIZES = {("eight_schools_noncentered", "pyro"): Size(2, 200, 200),
         ("eight_schools_noncentered", "numpyro"): Size(2, 500, 500),
         ("kilpisjarvi", "pyro"): Size(1, 25, 25),
         ("kilpisjarvi", "numpyro"): Size(2, 500, 500)}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="replace the B3 section of this file")
    parser.add_argument("--repeats", type=int, default=2, help="runs per side and case")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    host = machine()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # divergence warnings belong to the runs, not here
        run_ours("eight_schools_noncentered", "numpyro", Size(1, 5, 5), 0)  # jax start-up
        cases = [measure(name, backend, SIZES[name, backend], args.repeats, args.seed)
                 for name in MODELS for backend in ("pyro", "numpyro")]
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = report(cases, argv, host, when)
    print("\n" + section)
    if args.write is not None:
        replace_sections(args.write, section, (HEADING,))
        print(f"Wrote the B3 section of {args.write}")


if __name__ == "__main__":
    main()
