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
    OURS,
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
    """Recovery per problem (k/S), median run time, and for ours (and ours+q) the mean
    P(true) and the median number of draws."""
    head = "| problem | target |"
    rule = "|---|---|"
    for m in methods:
        head += f" {m}: recovered | {m}: wall / CPU s |"
        rule += "---:|---:|"
        if m in OURS:
            head += f" {m}: P(true) mean [min–max] | {m}: draws |"
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
            if m in OURS:
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
        if m in OURS:
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


def _first_recovery(m: str, recs: list[dict[str, Any]]) -> list[str]:
    """The median time until the method's best program first recovered the target (ours:
    the search's best; the peers: the best after each generation), over the runs that
    recorded one."""
    first = [r["first_recovery_seconds"] for r in recs
             if r.get("first_recovery_seconds") is not None]
    if not first:
        return []
    what = "the search's best program" if m in OURS else "the best program of a generation"
    return [f"- {m}: time to first recovery ({what} first recovers the target): median "
            f"{np.median(first):.1f} s, range {min(first):.1f}–{max(first):.1f} s, over the "
            f"{len(first)} runs where it did"]


def effort(records: list[dict[str, Any]], methods: list[str]) -> list[str]:
    """Median number of programs each method proposed or evaluated per run, and its time
    to first recovery where its records have one."""
    lines = []
    for m in methods:
        recs = [r for r in records if r["method"] == m and r.get("error") is None]
        lines += _first_recovery(m, recs)
        if m in OURS:
            sweeps = [r["num_draws"] + r.get("num_warmup", 0) for r in recs]
            if sweeps:
                lines.append(f"- {m}: {np.median(sweeps):,.0f} sweeps per run (median), each "
                             f"10 program proposals: about {10 * np.median(sweeps):,.0f} "
                             "programs" + _acceptance(recs))
            searched = [r["search"] for r in recs if r.get("search")]
            if searched:
                lines.append(
                    f"- {m}: a search phase of {np.median([x['seconds'] for x in searched]):.1f}"
                    f" s per run (median): {np.median([x['sweeps'] for x in searched]):,.0f} "
                    "population sweeps (each walker one sweep), "
                    f"{np.median([x['restarts'] for x in searched]):,.0f} restarts, swaps "
                    f"accepted {np.nanmedian([x['swap_rate'] for x in searched]):.0%}")
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


def _acceptance(recs: list[dict[str, Any]]) -> str:
    """Acceptance of each move kind over the runs' move samples (the first structure move
    of every kept sweep), as ``"; accepted: regenerate 28%, ..."`` ("" without samples)."""
    count: dict[str, float] = {}
    hits: dict[str, float] = {}
    for r in recs:
        for name, m in r.get("move_sample", {}).items():
            count[name] = count.get(name, 0) + m["count"]
            hits[name] = hits.get(name, 0) + m["count"] * m["accepted"]
    if not count:
        return ""
    return "; moves accepted (first move of each sweep): " + ", ".join(
        f"{n} {100 * hits[n] / count[n]:.0f}%" for n in sorted(count) if count[n])


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
                  f"{meta.get('wall_seconds', float('nan')) / 60:.1f} min in all"
                  + (f", of which {meta['proposal_wall_seconds'] / 60:.1f} min obtaining the "
                     "ours+q proposals" if meta.get("proposals") else "") + "):", "",
                  "```bash", meta["command"], "```", ""]
    host = runs[0]["meta"]["machine"]
    lines += ["| machine | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in host.items() if k != LOAD]
    lines += ["", *_what_is_measured(), *_ours_q(runs), ""]
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


def training_cost(runs: list[dict[str, Any]]) -> list[tuple[str, float, int | None]]:
    """(file, training seconds, steps) of each distinct proposal the ``ours+q`` runs used:
    from the runs' ``meta["proposals"]``, else from the records (a crashed run's record
    may lack them)."""
    found: dict[str, tuple[float, int | None]] = {}
    for run in runs:
        for r in run["records"]:
            if r["method"] == "ours+q" and r.get("proposal_train_seconds") is not None:
                found[r["proposal_file"]] = (float(r["proposal_train_seconds"]),
                                             r.get("proposal_steps"))
        for p in run["meta"].get("proposals", []):
            found[p["file"]] = (float(p["seconds"]), p.get("steps"))
    return [(f, s, n) for f, (s, n) in sorted(found.items())]


def _ours_q(runs: list[dict[str, Any]]) -> list[str]:
    """The bullet of ``ours+q`` (only when a run has it): what it is and its training cost."""
    if not any(r["method"] == "ours+q" for run in runs for r in run["records"]):
        return []
    cost = training_cost(runs)
    total = sum(s for _, s, _ in cost)
    files = "; ".join(f"`{Path(f).name}` {s:.0f} s" + (f" ({n:,} steps)" if n else "")
                      for f, s, n in cost) or "none recorded"
    designs = {(p["grammar"], len(p["inputs"])): p["design"]["ranges"]
               for run in runs for p in run["meta"].get("proposals", [])}
    ranges = "" if not designs else " (" + "; ".join(
        f"{g}, {d} input(s): " + " or ".join(f"U[{lo:g}, {hi:g}]" for lo, hi in r)
        for (g, d), r in designs.items()) + ")"
    return [
        "- **ours+q**: our engine exactly as **ours** (same model, data, budget, draws kept, "
        "reported best program and check; its P(true) and draws read as ours') plus "
        "`proposal=q` in the `infer` call, which adds the neural structure moves (an "
        "independence move from q mixed with the prior and a "
        "subtree redrawn by q; exact Metropolis–Hastings, so the chain targets the same "
        "posterior). q is trained once per grammar and number of inputs (at most 4 for "
        "the whole suite) by `train_proposal` on the same model with a fixed noise scale "
        "`sigma ~ HalfNormal(1)` (a run's std(y) is not known in advance; the network sees "
        "only x and y), programs drawn from the grammar's own prior (never the benchmark's "
        "laws), and 20 inputs per simulated data set drawn from U[low, high]^d, the range "
        "picked uniformly among the problems' ranges for that grammar and number of "
        f"inputs{ranges}; one core, seeded, `benchmarks/nguyen_proposal.py`. **Training "
        f"cost: {total:.0f} s in all** ({files}), paid once before the runs and **not "
        "counted in any run's budget or run time**; proposals found on disk are reused, "
        "and their seconds are those of their original training.",
    ]


def write_section(path: Path, section: str) -> None:
    """Replace this harness's section of ``path``, or append it."""
    replace_sections(path, section, (HEADING,))
