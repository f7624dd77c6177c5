"""B2's report (``benchmarks/mcmc_throughput.py``): the section ``## B2. Program MCMC
throughput`` of ``docs/benchmarks.md``, built from the records of
``benchmarks.mcmc_throughput_measure``: tables, the figures in words, and the command and
machine they came from.
"""

from __future__ import annotations

import argparse
import re
import statistics
from dataclasses import dataclass

from benchmarks.mcmc_throughput_measure import (
    PRIOR,
    VARIANTS,
    Baseline,
    EssRun,
    ExampleRun,
    Profile,
    Throughput,
    Variant,
)

HEADING = "## B2. Program MCMC throughput"
GOAL = 20_000
"""Proposals per second per core asked for (BENCHMARKS.md B2, DESIGN.md §5)."""


def fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def median(values: list[float]) -> float:
    return statistics.median(values)


def throughput_table(runs: dict[Variant, list[Throughput]]) -> list[str]:
    base = median([r.rate for r in runs[VARIANTS[-1]]])
    rows = ["| kernel | program proposals/s (median) | min – max | µs per proposal | "
            "structure / constant moves per sweep | structure moves accepted | Laplace solves "
            "per 100 sweeps | mean program size | × Pyro traces |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for variant, rs in runs.items():
        rate = median([r.rate for r in rs])
        per_sweep = median([r.constant / r.sweeps for r in rs])
        rows.append(
            f"| {variant.name} | {fmt(rate)} | {fmt(min(r.rate for r in rs))} – "
            f"{fmt(max(r.rate for r in rs))} | {1e6 / rate:.0f} | "
            f"{rs[0].structure // rs[0].sweeps} / {per_sweep:.1f} | "
            f"{median([r.structure_accepted / r.structure for r in rs]):.1%} | "
            f"{median([100 * r.solves / r.sweeps for r in rs]):.1f} | "
            f"{median([r.mean_size for r in rs]):.1f} | {rate / base:.2f} |")
    return rows


def ess_table(runs: list[EssRun]) -> list[str]:
    """Per seed and median: ESS pooled over the chains, and per chain (summed)."""
    rows = ["| scoring | seed | wall time (s) | ESS of lp: pooled (per chain) | ESS/s of lp | "
            "ESS of f_size: pooled (per chain) | ESS/s of f_size |",
            "|---|---:|---:|---:|---:|---:|---:|"]

    def cells(rs: list[EssRun]) -> str:
        out = [f"{median([r.seconds for r in rs]):.1f}"]
        for pooled, within in (("ess_lp", "chain_ess_lp"), ("ess_size", "chain_ess_size")):
            a, b = ([getattr(r, k) for r in rs] for k in (pooled, within))
            per_s = [[v / r.seconds for v, r in zip(x, rs, strict=True)] for x in (a, b)]
            out += [f"{median(a):.0f} ({median(b):.0f})",
                    f"{median(per_s[0]):.2f} ({median(per_s[1]):.2f})"]
        return " | ".join(out)

    for fast in (True, False):
        rs = [r for r in runs if r.fast is fast]
        name = "fast paths (default)" if fast else "Pyro traces (fast paths refused)"
        rows += [f"| {name} | {r.seed} | {cells([r])} |" for r in rs]
        rows.append(f"| {name} | **median** | {cells(rs)} |")
    return rows


def example_table(runs: list[ExampleRun]) -> tuple[list[str], int | None]:
    """The settings table and the smallest setting whose median P(true law) >= 0.5 with
    the default kernel."""
    rows = ["| kernel | num_warmup = num_samples | wall time (s, median) | P(true law) per "
            "seed | median P(true law) |", "|---|---:|---:|---|---:|"]
    first = None
    kinds = {(True, False): "default, chains in processes",
             (False, False): "no Laplace refits, chains in sequence",
             (True, True): "collapsed (an approximation), chains in processes"}
    for (refit, folded), name in kinds.items():
        for draws in sorted({r.draws for r in runs if (r.refit, r.collapsed) == (refit, folded)}):
            rs = [r for r in runs if r.draws == draws and (r.refit, r.collapsed)
                  == (refit, folded)]
            p = median([r.p_true for r in rs])
            rows.append(f"| {name} | {draws} | {median([r.seconds for r in rs]):.1f} | "
                        f"{', '.join(f'{r.p_true:.3f}' for r in rs)} | {p:.3f} |")
            if refit and not folded and first is None and p >= 0.5:
                first = draws
    return rows, first


def refit_text(runs: list[ExampleRun]) -> list[str]:
    """The default kernel against the one without refits, at equal settings."""
    out = []

    def p_of(draws: int, refit: bool, folded: bool) -> float | None:
        rs = [r.p_true for r in runs if r.draws == draws and r.refit is refit
              and r.collapsed is folded]
        return median(rs) if rs else None

    for draws in sorted({r.draws for r in runs}):
        default, bare, folded = (p_of(draws, True, False), p_of(draws, False, False),
                                 p_of(draws, True, True))
        if default is not None and bare is not None:
            out.append(f"At {draws} + {draws} draws the kernel without Laplace refits puts a "
                       f"median {bare:.3f} on the true law against {default:.3f} with them: "
                       "the refits cost proposals per second (above) and buy the law.")
        if default is not None and folded is not None:
            out.append(f"At {draws} + {draws} draws the collapsed mode puts a median "
                       f"{folded:.3f} on the true law against {default:.3f} for the exact "
                       "kernel (its probabilities are those of the Laplace evidence: an "
                       "approximation).")
    return [" ".join(out)] if out else []


def excerpt_of(output: str) -> str:
    """The lines of the example's output a reader needs (plan, P(true law), R-hat)."""
    keep = ("Gibbs:", "P(true law", "N0 given", "rate given", "sigma:", "R-hat:")
    return "\n".join(line for line in output.splitlines() if line.startswith(keep))


@dataclass(frozen=True)
class Results:
    """Everything measured, for the report."""

    args: argparse.Namespace
    host: dict[str, str]
    commit: str
    when: str
    throughput: dict[Variant, list[Throughput]]
    ess: list[EssRun]
    default_seconds: float
    default_output: str
    examples: list[ExampleRun]
    profiles: tuple[Profile, Profile]  # the default kernel, and without refits
    baseline: Baseline | None = None


def p_true_of(output: str) -> float:
    found = re.search(r"P\(true law[^=]*= ([0-9.]+)", output)
    return float(found.group(1)) if found else float("nan")


def report(res: Results) -> str:
    a = res.args
    ex_rows, first = example_table(res.examples)
    reached = "no setting tried reached a median P(true law) of 0.5"
    if first is not None:
        seconds = median([r.seconds for r in res.examples if r.draws == first and r.refit
                          and not r.collapsed])
        reached = (f"the smallest setting tried whose median P(true law) reaches 0.5 is "
                   f"**{first} warmup + {first} samples per chain: {seconds:.1f} s wall "
                   "time** (median over seeds, process start-up included)")
    lines = [
        HEADING, "",
        "Proposals per second per core of program MCMC on the `arith` grammar (inputs "
        f"`[\"x\"]`, `max_depth={PRIOR.max_depth}`) and the 20-point radioactive-decay data "
        "of `examples/symbolic_regression.py` (y = 2·exp(−0.8x) + noise 0.05, x in [0, 3]), "
        "model `y ~ Normal(f(x), sigma)`, `sigma ~ HalfNormal(1)`; the default plan and move "
        "set (regenerate / insert–delete / relabel with exact Hastings ratios, half of them "
        "refitting constants by Laplace, the library move, a subtree fitted to its "
        "node's targets, and the assemble move, an operator with a free factor and a fitted "
        "child; constant random walk or Laplace independence move after each; one "
        "MALA move per sweep; sigma by the noise block). The kernel runs "
        "directly (`Target`, `Gibbs`, `init`, `step`) in one process with one torch thread "
        "and one BLAS thread (as a chain runs), "
        f"`program_moves={a.program_moves}`: per seed, init, {a.warmup} adaptive sweeps, "
        f"then {a.sweeps} timed sweeps, timed in CPU seconds of this process "
        "(`time.process_time`: other load on the shared machine does not count; with one "
        "torch and one BLAS thread the process runs on one core; OpenBLAS's default thread "
        "per core spun and about halved the figure, 2026-12-07). A program proposal is a "
        "structure move or a constant move (sigma's moves are not counted). The kernels run "
        f"side by side on the same seeds; figures are medians over {a.repeats} seeds.", "",
        "### Proposals per second per core", "",
        *throughput_table(res.throughput), "",
        *throughput_text(res), "",
        *baseline_table(res),
        "Hit rates of the default kernel's caches in the timed stretches (all seeds; "
        "bounded LRU caches of 4,096 entries each, `inference.mcmc.cache`):", "",
        *cache_table(res.throughput), "",
        "### ESS per second", "",
        "`infer(model, x, y=y, num_chains=2, chain_method=\"sequential\", "
        f"num_warmup={a.ess_draws}, num_samples={a.ess_draws})` in this process, wall time "
        "of the call; `arviz.ess` "
        "(bulk) of the log joint `stats[\"lp\"]` and of the program size `f_size`, pooled "
        "over both chains and, in parentheses, each chain on its own (summed over the two); "
        f"medians over {a.repeats} seeds. \"Pyro traces\" patches `Target.check_fast` to "
        "refuse the fast path (so no incremental likelihood and no Laplace refits either). "
        "The pooled ESS counts disagreement between chains: two chains that hold different "
        "trees of the same law, or different local modes, give a pooled ESS near the number "
        "of chains however well each chain mixes within its mode (see \"Diagnosing a "
        "program posterior\" in the inference guide); the per-chain ESS measures the "
        "mixing within a chain (a chain that never changes its size has no ESS and counts "
        "0). These are small numbers that vary widely from seed to seed, hence every seed "
        "is shown.", "",
        *ess_table(res.ess), "",
        "### Time to P(true law) ≥ 0.5 (main example)", "",
        "`python examples/symbolic_regression.py` as `make demo` runs it (4 chains with a "
        "12 s budget each, half of it a search, then an exact chain; chains in processes "
        f"on {res.host['cores (nproc)']} cores) "
        f"took {res.default_seconds:.1f} s of wall time and put "
        f"**P(true law) = {p_true_of(res.default_output):.3f}** on N0·exp(−λt). Its "
        "output, abridged:", "",
        "```text", excerpt_of(res.default_output), "```", "",
        "Shorter runs of the same model, data and chains (`infer(sr.model, t, y=y, "
        "num_chains=4, num_warmup=n, num_samples=n, seed=s)`, seeds "
        f"{', '.join(str(s) for s in range(a.example_seeds))}):", "",
        *ex_rows, "",
        f"So {reached}. A seed whose chains have not all found the law by then pulls its P "
        "down (the per-seed column), which is why the settings are compared by their "
        "median. " + " ".join(refit_text(res.examples)), "",
        "### Where the time goes", "",
        f"cProfile of `kernel.step`, seed {a.seed}, {a.sweeps} sweeps after {a.warmup} "
        f"warmup sweeps, for the default kernel ({res.profiles[0].seconds:.2f} s under the "
        f"profiler, which inflates per-call overhead) and without refits "
        f"({res.profiles[1].seconds:.2f} s). Share of `Gibbs.step`'s cumulative time"
        + (f"; the first column is the default kernel of {res.baseline.tree} (before), "
           "profiled the same way in the same run" if res.baseline else "") + ":", "",
        *profile_table(res.profiles, res.baseline), "",
        *interpretation(res), "",
        f"Top {a.top} functions by own time, default kernel:", "",
        "```text", res.profiles[0].excerpt, "```", "",
        "Command:", "",
        "```bash", "python -m benchmarks.mcmc_throughput " + " ".join(a.argv), "```", "",
        f"Run on {res.when}, code at commit {res.commit}.", "",
        "| machine | |", "|---|---|",
        *[f"| {k} | {v} |" for k, v in res.host.items()], "",
    ]
    return "\n".join(lines)


def throughput_text(res: Results) -> list[str]:
    """The throughput figures in words, with the side-by-side ratios."""
    full, no_refit, no_cache, no_eval, folded, scorer, pyro = (
        median([r.rate for r in res.throughput[v]]) for v in VARIANTS)
    return [
        f"The default kernel makes **{fmt(full)} program proposals per second per core**, "
        f"{full / GOAL:.0%} of the {GOAL:,} asked for (DESIGN.md §5 budgets "
        f"{1e6 / GOAL:.0f} µs a proposal; it takes {1e6 / full:.0f} µs), "
        f"{full / pyro:.1f}× the rate of the same kernel scoring every proposal with a Pyro "
        f"trace. The Laplace refits are what it pays for: without them (`refit=0`) the "
        f"kernel makes {fmt(no_refit)} proposals per second ({no_refit / full:.1f}× as "
        "many), and the table's solve column shows why: every tree shape met for the first "
        "time is fitted by least squares. With every cache off (`cache_size=0`: the same "
        f"chain, state for state) it makes {fmt(no_cache)} ({no_cache / full:.2f}× the "
        "default; the cache table below says which cache pays); with only the log L and "
        f"output caches off, {fmt(no_eval)} ({no_eval / full:.2f}×: those two see few "
        "repeats, as most proposals are new trees and trees with constants never repeat; "
        + ("within 5% of the default, they hardly pay on this model" if no_eval > 0.95 * full
           else "they pay") + "). The collapsed mode makes "
        f"{fmt(folded)} structure proposals per second: it has no constant moves (its "
        "constants are drawn once per sweep from their Laplace posterior) and each new "
        "shape costs a posterior-mode fit per value of sigma, so its rate counts a different "
        "unit of work. The scoring fast path alone, with every proposal running the model "
        f"under the scorer instead of a Pyro trace, is {scorer / pyro:.2f}× as fast as Pyro "
        "traces on exactly the same chain (those two rows take the same random choices and "
        "visit the same states). The other rows visit other programs than the last two and "
        "than each other (refits change the path; see the size column), so those rates "
        "compare kernels, not only scoring; what the proposals buy is measured below by ESS "
        "per second and by the time to the true law.",
    ]


CACHE_LABELS = {
    "lik": "log L of a program, per incremental-likelihood view (Program.key without "
           "constants, the exact tree with them)",
    "outputs": "program outputs, shared by the views of the site",
    "memo": "Laplace proposals (and evidence), per view and canonical shape",
    "canonical": "canonical form of an exact shape",
    "solve": "least-squares solves, per data and canonical shape",
}


def cache_table(runs: dict[Variant, list[Throughput]]) -> list[str]:
    """Hit rates of the default kernel's caches in the timed stretch (summed over seeds)."""
    rows = ["| cache | lookups per sweep | hit rate |", "|---|---:|---:|"]
    rs = runs[VARIANTS[0]]
    for name, label in CACHE_LABELS.items():
        hits = sum(r.cache[name][0] for r in rs)
        total = hits + sum(r.cache[name][1] for r in rs)
        rate = f"{hits / total:.0%}" if total else "–"
        rows.append(f"| {label} | {total / sum(r.sweeps for r in rs):.1f} | {rate} |")
    return rows


def baseline_table(res: Results) -> list[str]:
    if res.baseline is None:
        return []
    b = res.baseline
    now = res.throughput[VARIANTS[0]]
    before, after = median(b.rates), median([r.rate for r in now])
    rows = [f"Before and after, side by side in this run (the default kernel of the source "
            f"tree {b.tree}, run by its own harness in a subprocess on the same seeds, "
            "alternating with this tree's runs):", "",
            "| default kernel | program proposals/s (median) | min – max | Laplace solves "
            "per 100 sweeps |", "|---|---:|---:|---:|",
            f"| before ({b.tree}) | {fmt(before)} | {fmt(min(b.rates))} – "
            f"{fmt(max(b.rates))} | {median(b.solves):.1f} |",
            f"| after (this tree) | {fmt(after)} | {fmt(min(r.rate for r in now))} – "
            f"{fmt(max(r.rate for r in now))} | "
            f"{median([100 * r.solves / r.sweeps for r in now]):.1f} |", "",
            f"So {after / before:.2f}× the proposals per second of the tree before. The two "
            "kernels do not visit the same programs (the fits differ: canonical order, "
            "fewer LM iterations), so part of the difference is the path.", ""]
    return rows


def profile_table(profiles: tuple[Profile, Profile], baseline: Baseline | None = None
                  ) -> list[str]:
    head = "| where | " + ("before: default kernel | " if baseline else "")
    rows = [head + "default kernel | no Laplace refits |",
            "|---|" + ("---:|" if baseline else "") + "---:|---:|"]
    for group, label in (("parts", "update"), ("across", "across the updates")):
        for i, part in enumerate(getattr(profiles[0], group)):
            cells = [f"{getattr(p, group)[part]:.0%}" for p in profiles]
            if baseline is not None:  # the same rows in the same order (labels may differ)
                old = list(getattr(baseline, group).values())
                cells.insert(0, f"{old[i]:.0%}" if i < len(old) else "–")
            rows.append(f"| {label}: {part} | {' | '.join(cells)} |")
    return rows


def interpretation(res: Results) -> list[str]:
    """What the profiles say, with their figures, and what they point to next."""
    full, bare = res.profiles
    solve, fit, evaluate, moves, prior, score = list(full.across)
    solves = median([100 * r.solves / r.sweeps for r in res.throughput[VARIANTS[0]]])
    rate = median([r.rate for r in res.throughput[VARIANTS[1]]])
    ranked = sorted(bare.parts, key=lambda k: -bare.parts[k])[:3]

    def short(label: str) -> str:
        return label.split(" (`")[0]

    parts = list(full.parts)
    sigma = full.parts[parts[5]] + full.parts[parts[6]]
    levers = [
        (full.across[solve], f"fewer solves of shapes that are then rejected "
         f"({full.across[solve]:.0%}): most refit proposals are random subtrees that no "
         "constants would save; a delayed-acceptance first stage (screen the new structure "
         "by a cheap surrogate ratio, fit only the survivors; Christen and Fox 2005) keeps "
         "the move exact and skips most fits"),
        (sigma, f"sigma's update and the view rebuilt after it ({sigma:.0%}): a torch run of "
         "the model, then five probe programs each re-scored by a full model run to verify "
         "the new view; both are closed-form for a Normal likelihood given the program's "
         "cached output, and the probes could be verified once per site instead of once "
         "per view"),
        (full.across[evaluate], f"batch the K proposals of a sweep into one (K, n) "
         f"evaluation (DESIGN.md §5, lever 2; numpy evaluation is "
         f"{full.across[evaluate]:.0%}), which removes the interpreter's fixed cost per "
         "evaluation that dominates on 20 points"),
    ]
    return [
        "Default kernel: a structure move scored by the incremental likelihood is cheap (one "
        "numpy evaluation of the proposed program, its prior density, the move's own "
        "bookkeeping); the Laplace machinery around it is not. Least-squares fits of tree "
        f"shapes not met before take {full.across[solve]:.0%} of the time ({solves:.0f} "
        "solves per 100 sweeps in the timed stretch; each runs up to 20 Levenberg–Marquardt "
        "iterations from one start, a second start only when the first meets invalid "
        "programs, every trial point evaluated together with its forward-difference "
        "Jacobian in one batched numpy call of k + 1 rows). Turning a cached fit into a "
        f"proposal density costs {full.across[fit]:.0%} (the proposal is memoised per view: "
        "rebuilt only after sigma moved). Numpy program evaluation takes "
        f"{full.across[evaluate]:.0%} in all, {full.in_solves:.0%} of it inside the solves; "
        f"the moves' own code {full.across[moves]:.0%}, prior densities "
        f"{full.across[prior]:.0%}, torch runs of the model under the scorer (sigma's moves "
        f"and the verification of rebuilt views) {full.across[score]:.0%}.", "",
        f"Without refits ({fmt(rate)} proposals/s, {1e6 / rate:.0f} µs each) the largest "
        f"updates are {', '.join(f'{short(k)} ({bare.parts[k]:.0%})' for k in ranked)}; "
        f"numpy evaluation takes {bare.across[evaluate]:.0%}, torch runs of the model "
        f"{bare.across[score]:.0%}, prior densities {bare.across[prior]:.0%} and the moves' "
        f"code {bare.across[moves]:.0%}; the largest cost left is "
        f"{short(max(bare.across, key=lambda k: bare.across[k]))}.", "",
        "What this points to next, in order of the time at stake: " + "; ".join(
            f"({i}) {text}" for i, (_, text) in enumerate(sorted(levers, reverse=True), 1))
        + f". {GOAL:,} proposals per second (50 µs each) needs all of them and a compiled "
        "evaluator.",
    ]
