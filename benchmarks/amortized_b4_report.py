"""B4's report (``benchmarks/amortized_b4.py``): the Markdown section of
``docs/benchmarks.md`` built from the JSON records of a run.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks._report import replace_sections
from benchmarks.nguyen_protocol import LOAD

HEADING = "## B4. Amortization pays (amortized_b4.py)"
SPEEDUP_GOAL = 5.0
"""Median time to recovery without the proposal over with it (training amortized)."""
LATENCY_GOAL = 0.050
"""Seconds of one 1,000-particle amortized query on one core."""
MACHINE_KEYS = ("cores (nproc)", "CPU", "OS", "python", "ppl", "numpy", "torch")


def censored_median(times: Sequence[float | None], budget: float) -> tuple[float, bool]:
    """The median of times censored at ``budget`` (None or a time past it: not recovered
    within the budget), and whether it is only a lower bound.

    The median is exact while the middle value(s) are observed; with n even and only the
    upper middle censored it is at least the mean of the lower middle and the budget; with
    a censored middle (more than half censored) it is "> budget".

    Examples
    --------
    >>> censored_median([1.0, 2.0, None], 10.0)
    (2.0, False)
    >>> censored_median([1.0, None, None], 10.0)
    (10.0, True)
    >>> censored_median([1.0, 4.0, None, 12.0], 10.0)
    (7.0, True)
    """
    values = sorted(math.inf if t is None or t > budget else t for t in times)
    n = len(values)
    if n == 0:
        return math.nan, False
    low, high = values[(n - 1) // 2], values[n // 2]
    if high < math.inf:
        return (low + high) / 2, False
    if low < math.inf:
        return (low + budget) / 2, True
    return budget, True


def speedup(without: tuple[float, bool], with_: tuple[float, bool]
            ) -> tuple[str, bool | None]:
    """The ratio of two censored medians as text (">" or "<" when one side is a bound) and
    whether it meets SPEEDUP_GOAL (None: the bounds cannot tell).

    Examples
    --------
    >>> speedup((10.0, False), (1.0, False))
    ('10.0×', True)
    >>> speedup((20.0, True), (2.0, False))
    ('> 10.0×', True)
    >>> speedup((4.0, False), (20.0, True))
    ('< 0.20×', False)
    """
    (a, a_bound), (b, b_bound) = without, with_
    r = a / b if b > 0 else math.inf
    text = f"{r:.2f}×" if r < 1 else f"{r:.1f}×"
    if not a_bound and not b_bound:
        return text, r >= SPEEDUP_GOAL
    if a_bound and not b_bound:
        return f"> {text}", True if r >= SPEEDUP_GOAL else None
    if b_bound and not a_bound:
        return f"< {text}", False if r < SPEEDUP_GOAL else None
    return "undetermined (both medians censored)", None


def _verdict(met: bool | None) -> str:
    return {True: "**met**", False: "**not met**", None: "**undetermined**"}[met]


def _fmt(median: tuple[float, bool], shift: float = 0.0) -> str:
    value, bound = median
    return f"{'> ' if bound else ''}{value + shift:.2f} s"


def _stopped(proposal: dict[str, Any]) -> str:
    """How training ended, as the report says it."""
    if not proposal["trained_now"]:
        return f"read from `{proposal['path']}`, trained by an earlier run"
    budget = f"budget {proposal['train_time_budget']:g} s"
    if proposal["stopped"] == "early stop":
        return (f"stopped early: no better validation loss in {proposal['patience']} "
                f"evaluations, every {proposal['eval_every']} steps; {budget}")
    return budget


def _num(value: Any) -> float:
    """A JSON number (non-finite ones are stored as strings)."""
    return float(value)


def summary(out: dict[str, Any]) -> dict[str, Any]:
    """The figures of the report, from a run's JSON."""
    meta = out["meta"]
    ok = [r for r in out["records"] if r.get("error") is None]
    n, budget = len(ok), float(meta["budget"])
    per_task = float(meta["proposal"]["seconds"]) / max(n, 1)
    arms: dict[str, dict[str, Any]] = {}
    for arm in ("mcmc", "mcmc_proposal"):
        times = [r[arm]["first_hit_seconds"] for r in ok]
        arms[arm] = {
            "median": censored_median(times, budget),
            "recovered": sum(t is not None and t <= budget for t in times),
            "p_true_mean": statistics.fmean(r[arm]["p_true"] for r in ok) if ok else math.nan,
            "top_true": sum(r[arm]["top_is_true"] for r in ok),
            "draws": statistics.median(r[arm]["num_draws"] for r in ok) if ok else 0}
    without = arms["mcmc"]["median"]
    with_ = arms["mcmc_proposal"]["median"]
    ratio, met = speedup(without, (with_[0] + per_task, with_[1]))
    raw_ratio, _ = speedup(without, with_)
    faster = sum(_faster(r, budget) for r in ok)
    amortized = [r["amortized"] for r in ok]
    latencies = [a["latency_seconds"] for a in amortized]
    return {"n": n, "crashed": len(out["records"]) - n, "budget": budget,
            "train_per_task": per_task, "arms": arms, "ratio": ratio, "speedup_met": met,
            "raw_ratio": raw_ratio,
            "faster": faster,
            "is_top_true": sum(a["top_is_true"] for a in amortized),
            "is_p_true_mean": statistics.fmean(a["p_true"] for a in amortized)
            if amortized else math.nan,
            "latency": statistics.median(latencies) if latencies else math.nan,
            "context": statistics.median(a["context_seconds"] for a in amortized)
            if amortized else math.nan,
            "sampling": statistics.median(a["sampling_seconds"] for a in amortized)
            if amortized else math.nan,
            "ess": statistics.median(_num(a["ess"]) for a in amortized)
            if amortized else math.nan,
            "khat_high": sum(_num(a["khat"]) > 0.7 for a in amortized)}


def _faster(record: dict[str, Any], budget: float) -> bool:
    """Whether the chain with the proposal recovered the task strictly sooner."""
    def time_of(arm: str) -> float:
        t = record[arm]["first_hit_seconds"]
        return math.inf if t is None or t > budget else float(t)

    with_, without = time_of("mcmc_proposal"), time_of("mcmc")
    return with_ < without


def report(out: dict[str, Any]) -> str:
    """The Markdown section (from HEADING to the end) of one run."""
    meta, s = out["meta"], summary(out)
    q, n, budget = meta["proposal"], s["n"], s["budget"]
    a, b = s["arms"]["mcmc"], s["arms"]["mcmc_proposal"]
    latency_met = s["latency"] < LATENCY_GOAL
    crashed = (f" ({s['crashed']} more crashed and are left out: see the JSON records)"
               if s["crashed"] else "")
    lines = [
        HEADING, "",
        f"Protocol B4 of BENCHMARKS.md on {n} held-out tasks{crashed}, one core each. The "
        "harness is `benchmarks/amortized_b4.py`; this section is written by it (`--write`) "
        "from the JSON records of the run (`--report-from`).", "",
        "| | MCMC without proposal | MCMC with proposal |", "|---|---:|---:|",
        f"| median time to recovery | {_fmt(a['median'])} | {_fmt(b['median'])} |",
        f"| the same, training amortized (+ {s['train_per_task']:.2f} s per task) | "
        f"{_fmt(a['median'])} | {_fmt(b['median'], s['train_per_task'])} |",
        f"| recovered within {budget:g} s | {a['recovered']}/{n} | {b['recovered']}/{n} |",
        f"| mean P(true structure) at the end | {a['p_true_mean']:.3f} | "
        f"{b['p_true_mean']:.3f} |",
        f"| most probable structure is the true one | {a['top_true']}/{n} | "
        f"{b['top_true']}/{n} |",
        f"| kept draws per chain (median) | {a['draws']:,.0f} | {b['draws']:,.0f} |", "",
        f"- Time to recovery, training amortized: **{s['ratio']}** faster with the "
        f"proposal; goal ≥ {SPEEDUP_GOAL:g}×: {_verdict(s['speedup_met'])}. Training not "
        f"counted: {s['raw_ratio']}. The chain with the proposal recovered the task sooner "
        f"in {s['faster']} of {n} tasks.",
        f"- Latency of one 1,000-particle amortized query: **{1e3 * s['latency']:.1f} ms** "
        f"(median over tasks); goal < {1e3 * LATENCY_GOAL:g} ms: {_verdict(latency_met)}. "
        f"Of it, the network's context of the data: {1e3 * s['context']:.2f} ms; 1,000 "
        f"draws from the network: {1e3 * s['sampling']:.1f} ms (timed on their own); the "
        "rest is the mixture's log q of each particle, the prior density, the likelihoods, "
        "the weights and the resampling.",
        f"- Amortized importance sampling alone: the most probable structure is the true "
        f"one in **{s['is_top_true']}/{n}** tasks; mean P(true structure) "
        f"{s['is_p_true_mean']:.3f}; median ESS {s['ess']:.1f} of 1,000 particles; Pareto "
        f"k̂ > 0.7 in {s['khat_high']}/{n} tasks.",
        f"- Training (once, one core): {q['steps']:,} steps of {q['batch_size']} simulated "
        f"draws in {q['seconds']:.0f} s ({_stopped(q)}), hidden {q['hidden']}; validation "
        f"−log q(f | x, y) {q['valid_loss_first']:.2f} → {q['valid_loss_best']:.2f} nats "
        f"on {q['valid_size']} held-out simulations.", "",
        f"Command (run on {meta['date']}, code {meta.get('code', 'not recorded')}, load "
        f"average {meta['machine'].get(LOAD, '?')} before it, {meta['jobs']} tasks at a "
        f"time, {meta.get('wall_seconds', math.nan) / 60:.1f} min in all):", "",
        "```bash", meta["command"], "```", "",
        "| machine | |", "|---|---|",
        *[f"| {k} | {meta['machine'][k]} |" for k in MACHINE_KEYS if k in meta["machine"]],
        "", *_what_is_measured(meta), ""]
    return "\n".join(lines)


def _what_is_measured(meta: dict[str, Any]) -> list[str]:
    st = meta["settings"]
    low, high = st["sigma_range"]
    return [
        "What is measured:",
        "",
        f"- **Model and tasks**: `f ~ {st['prior']}`, `y_i ~ Normal(f(x_i), sigma)` with "
        f"sigma known (an argument of the model, so the program is its only latent site). "
        f"A task: a program drawn from the prior from a seed stream disjoint from the "
        f"training draws, kept when its size is ≥ 3 and its outputs on the design are "
        f"finite, with a range ≥ 0.5 and |f| ≤ 50 (the filter of `examples/amortized.py`), "
        f"and without a subtree of two or more nodes that is constant on the design (`x/x`, "
        f"`x - x`, `cos(c)`: a structure no data can identify); "
        f"{st['n_points']} points x ~ U{list(st['x_range'])}, sorted; sigma = "
        f"{st['noise']:g} × the standard deviation of the clean outputs; "
        f"y = f(x) + sigma·N(0, 1).",
        f"- **Training**: `train_proposal` once, on simulations whose design is drawn like "
        f"a task's, with sigma log-uniform on [{low:g}, {high:g}]; it stops at its time "
        f"budget or when the validation loss stops improving. Its wall time, divided by the "
        f"number of tasks, is added to each time of the chain with the proposal.",
        f"- **Time to recovery**: one chain per task and arm (`infer(method=\"mcmc\", "
        f"num_chains=1, num_warmup={st['num_warmup']}, max_time={meta['budget']:g})`, the "
        f"arm with the proposal adding `proposal=q`: its neural independence and edit "
        f"moves; both arms from the same seed, so the same initial state). The time at "
        f"which the chain first holds the true structure: equal `Program.key` (equal up to "
        f"commutative reordering and constant values; the key of `Posterior.programs`). "
        f"Draws carry no time stamp, so a kept draw's time is read off a linear clock: a "
        f"one-sweep run with the same seed times the set-up (model tracing, the initial "
        f"state), and the timed run's sweeps share the rest of its wall time evenly. The "
        f"{st['num_warmup']} warmup sweeps are not recorded, and a draw is recorded after "
        f"each sweep of 10 structure moves, so a visit within them is seen at the next "
        f"recorded draw. A task not recovered within the budget is censored: a median "
        f"with more than half censored is reported as \"> budget\" (a lower bound), and a "
        f"ratio with a censored side as a bound. Another tree of the same function family "
        f"(e.g. c·x for the true x / c) is not a recovery.",
        "- **P(true structure) at the end**: the fraction of the chain's kept draws with "
        "the true structure: how much of a short single chain sat on it, not a converged "
        "posterior probability.",
        f"- **Amortized IS**: `infer(method=\"amortized\", proposal=q, "
        f"num_particles={st['num_particles']}, num_chains=1, "
        f"num_samples={st['is_draws']})` (the network mixed with 5% prior); the "
        f"structures' probabilities are their shares of the {st['is_draws']} draws "
        f"resampled by weight (the posterior does not keep the particles' weights), and "
        f"top-1 asks whether the most probable one is the true structure.",
        f"- **Latency**: the wall time of that whole `infer` call, one torch thread, median "
        f"of {st['latency_repeats']} calls per task, then the median over tasks.",
    ]


def write_section(path: Path, section: str) -> None:
    """Replace this harness's section of ``path``, or append it."""
    replace_sections(path, section, (HEADING,))
