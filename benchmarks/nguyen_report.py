"""B1's report (``benchmarks/nguyen.py``): the Markdown section of ``docs/benchmarks.md``
built from the JSON records of one or more runs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import sympy

from benchmarks._report import replace_sections
from benchmarks.nguyen_protocol import (
    LOAD,
    MAX_DEPTH,
    METHODS,
    NUM_WARMUP,
    PROBLEMS,
    SIGMA_FLOOR,
    SYMPY_TIMEOUT,
    target_expr,
)

HEADING = "## B1. Program induction: the Nguyen suite"


def _fmt_time(values: list[float]) -> str:
    return f"{np.median(values):.1f}" if values else "–"


def _cpu(record: dict[str, Any]) -> float:
    """CPU seconds of the method's run (older records: of the whole job, scoring included)."""
    return float(record.get("cpu_seconds", record.get("job_cpu_seconds", math.nan)))


def _times(recs: list[dict[str, Any]]) -> str:
    return f"{_fmt_time([r['wall_time'] for r in recs])} / {_fmt_time([_cpu(r) for r in recs])}"


def table(records: list[dict[str, Any]], methods: list[str], problems: list[str]
          ) -> list[str]:
    """Recovery per problem (k/S), median run time, and for ours the mean P(true)."""
    head = "| problem | target |"
    rule = "|---|---|"
    for m in methods:
        head += f" {m}: recovered | {m}: wall / CPU s |"
        rule += "---:|---:|"
        if m == "ours":
            head += " ours: P(true) mean [min–max] | ours: draws |"
            rule += "---:|---:|"
    rows = [head, rule]
    totals = {m: [0, 0] for m in methods}
    for p in problems:
        row = f"| {p} | ${sympy.latex(target_expr(PROBLEMS[p]))}$ |"
        for m in methods:
            recs = [r for r in records if r["method"] == m and r["problem"] == p]
            k = sum(bool(r.get("recovered")) for r in recs)
            totals[m][0] += k
            totals[m][1] += len(recs)
            errors = sum(r.get("error") is not None for r in recs)
            mark = f" ({errors} crashed)" if errors else ""
            row += f" {k}/{len(recs)}{mark} | {_times(recs)} |"
            if m == "ours":
                ps = [r["p_true"] for r in recs if "p_true" in r]
                draws = [r["num_draws"] for r in recs if "num_draws" in r]
                row += (f" {np.mean(ps):.2f} [{min(ps):.2f}–{max(ps):.2f}] |" if ps else " – |")
                row += f" {int(np.median(draws)):,} |" if draws else " – |"
        rows.append(row)
    avg = "| **average** | |"
    for m in methods:
        k, n = totals[m]
        rate = f"{100 * k / n:.0f}%" if n else "–"
        recs = [r for r in records if r["method"] == m]
        avg += f" **{rate}** ({k}/{n}) | {_times(recs)} |"
        if m == "ours":
            ps = [r["p_true"] for r in recs if "p_true" in r]
            avg += f" {np.mean(ps):.2f} | |" if ps else " – | |"
    rows.append(avg)
    return rows


def split_rates(records: list[dict[str, Any]], methods: list[str]) -> list[str]:
    lines = []
    for m in methods:
        parts = []
        for label, pred in (("Nguyen-*", lambda p: p.startswith("Nguyen")),
                            ("Constant-*", lambda p: p.startswith("Constant"))):
            recs = [r for r in records if r["method"] == m and pred(r["problem"])]
            if recs:
                k = sum(bool(r.get("recovered")) for r in recs)
                parts.append(f"{label} {k}/{len(recs)} ({100 * k / len(recs):.0f}%)")
        lines.append(f"- {m}: " + ", ".join(parts))
    return lines


def effort(records: list[dict[str, Any]], methods: list[str]) -> list[str]:
    """Median number of programs each method proposed or evaluated per run."""
    lines = []
    for m in methods:
        recs = [r for r in records if r["method"] == m and r.get("error") is None]
        if m == "ours":
            sweeps = [r["num_draws"] + r.get("num_warmup", 0) for r in recs]
            lines.append(f"- ours: {np.median(sweeps):,.0f} sweeps per run (median), each 10 "
                         f"program proposals: about {10 * np.median(sweeps):,.0f} programs")
        elif m == "pyoperon":
            ev = [r["evaluations"] for r in recs if "evaluations" in r]
            gens = [r["generations"] for r in recs if "generations" in r]
            if ev:
                lines.append(f"- pyoperon: {np.median(ev):,.0f} evaluations per run (median), "
                             f"{np.median(gens):,.0f} generations")
        elif m == "gplearn":
            gens = [r["generations"] for r in recs if "generations" in r]
            if gens:
                lines.append(f"- gplearn: {np.median(gens):,.0f} generations of 1000 per run "
                             f"(median): about {1000 * np.median(gens):,.0f} programs")
    return lines


def report(runs: list[dict[str, Any]], notes: str = "") -> str:
    """The Markdown section (from HEADING to the end) for one or more runs."""
    lines = [HEADING, "",
             "Protocol B1 of BENCHMARKS.md, measured side by side in one run per table. Each "
             "run: 20 points drawn with a fixed seed per (problem, seed index), one core, "
             "the same wall-clock budget for every method; a crashed run counts as not "
             "recovered. The harness is `benchmarks/nguyen.py`; this section is written by "
             "it (`--write`), from the JSON records of the runs (`--report-from`).", ""]
    for run in runs:
        meta, records = run["meta"], run["records"]
        methods = [m for m in METHODS if any(r["method"] == m for r in records)]
        problems = [p for p in PROBLEMS if any(r["problem"] == p for r in records)]
        eps = meta["noise"]
        kind = "noiseless" if eps == 0 else f"noisy, ε = {eps} (y += ε·std(y)·N(0, 1))"
        lines += [f"### {kind}: {meta['seeds']} seeds, {meta['budget']:g} s per run", "",
                  *table(records, methods, problems), "", "By family:", "",
                  *split_rates(records, methods), "",
                  "Search effort in the budget:", "", *effort(records, methods), "",
                  *(["CPU seconds of this run are those of the whole job (the method and "
                     "the scoring after it), an upper bound of the method's own."]
                    + [""] if any("cpu_seconds" not in r for r in records) else []),
                  f"Command (run on {meta['date']}, code {meta.get('code', 'not recorded')}, "
                  f"load average {meta['machine'].get(LOAD, '?')} before it, "
                  f"{meta['jobs']} runs at a time, "
                  f"{meta.get('wall_seconds', float('nan')) / 60:.1f} min in all):", "",
                  "```bash", meta["command"], "```", ""]
    host = runs[0]["meta"]["machine"]
    lines += ["| machine | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in host.items() if k != LOAD]
    lines += ["", *_what_is_measured(), ""]
    if notes:
        lines += [notes.rstrip(), ""]
    return "\n".join(lines)


def _what_is_measured() -> list[str]:
    return [
        "What the columns are:",
        "",
        "- **recovered**: runs whose reported best model recovers the target, out of the "
        "seeds run. The check is the same for every method and is made against the true, "
        "noiseless function on 1000 fresh points from the data's input distribution, in "
        "float64. Nguyen-*: NRMSE < 1e-10 (primary) or `sympy.simplify(model - target) == 0` "
        f"(secondary, tried when the primary fails, {SYMPY_TIMEOUT:g} s timeout). The same "
        "check scores the noisy runs: an NRMSE below 1e-10 against the true function is an "
        "exact identity, so this is symbolic recovery, not a fit to the noise. Constant-* "
        "(exact equality of fitted constants is impossible): NRMSE < 1e-3 on fresh noiseless "
        "points **and** the same structure as the target: both simplified and expanded by "
        "sympy, constants below 1e-6 dropped, every remaining non-integer number replaced by "
        "one symbol c, then compared for equality (so 3.39x³+2.12x²+1.78x and "
        "c·x³+c·x²+c·x match, Horner forms included).",
        "- **run time**: median wall time of one run, including the method's set-up; it is "
        "not a time to first recovery. Our engine cannot stop at a recovery, so it always "
        "uses the full budget (plus set-up: tracing the model, the prior tables, the "
        "initial state); pyoperon stops at its `max_time` (whole seconds); gplearn stops "
        "when the next generation would pass the budget, or at its own stopping criterion "
        "(a training error of exactly 0). Median time to first recovery (BENCHMARKS.md) "
        "is therefore **not measured** here.",
        "- **ours: P(true)**: the fraction of the run's kept draws (one chain, after "
        f"{NUM_WARMUP} warmup sweeps) that recover the target by the same check; a short "
        "single chain, so it measures how much of the run was spent on the true program "
        "(it is 0 when the chain never found it), not a converged posterior probability. "
        "**draws**: median number of kept draws (one sweep = 10 program moves plus a "
        "noise-scale move).",
        "- **Our model**: `f ~ ProgramPrior(koza` for Nguyen-*, `arith` for Constant-*, "
        f"`max_depth={MAX_DEPTH})` (every target is expressible within it: the harness "
        "carries each as a program), `y ~ Normal(f(x), s0 + sigma)` with `sigma ~ "
        f"HalfNormal(std(y))` and a fixed floor `s0 = {SIGMA_FLOOR:g}·std(y)`. The floor is "
        "there for noiseless data: with a learnable sigma and no floor, an exact fit makes "
        "the posterior of sigma pile up at 0 (density ∝ sigma^-20 with 20 points), so "
        "round-off differences of 1e-16 between equivalent trees would decide between them; "
        "with it, exact programs all fit equally well and the prior decides. Constants "
        "(arith): prior Normal(0, 1), Laplace refits (MOVES.md move 5). "
        "`infer(method=\"mcmc\", num_chains=1, chain_method=\"sequential\", "
        f"max_time=budget, num_warmup={NUM_WARMUP}, num_samples=10**7)`; the RunWarning "
        "that max_time cut the run short is expected and recorded. Reported best program: "
        "the kept draw with the highest log joint.",
        "- **pyoperon**: Nguyen-* through its lower-level bindings (BENCHMARKS.md fairness "
        "notes): Koza primitives, variable weights fixed at 1 (coefficient initialiser at "
        "1, no coefficient mutation, no local optimisation), MSE without linear scaling, "
        "otherwise the wrapper's defaults (population 1000, tournament 5, max length 50, "
        "max depth 10), `max_time` = budget, one thread. Constant-* through its "
        "scikit-learn wrapper as is (constants, r2 with scale and offset). Its best model "
        "is printed with 17 digits and scored in float64 (it computes in float32).",
        "- **gplearn**: `SymbolicRegressor` defaults (population 1000, tournament 20, "
        "parsimony 0.001, MAE) with the Koza set: add, sub, mul, div, sin, cos, log (its "
        "protected versions) and a protected exp from `make_function` (exp(a) for a < 100, "
        "else 0); `const_range=None` on Nguyen-*, (−5, 5) on Constant-*; one generation per "
        "`fit` with `warm_start`. Its numeric check uses gplearn's own float64 execution "
        "(protections included); its sympy form drops the protections except log|a|.",
    ]


def write_section(path: Path, section: str) -> None:
    """Replace this harness's section of ``path``, or append it."""
    replace_sections(path, section, (HEADING,))
