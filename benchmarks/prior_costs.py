"""What the program prior and a program cost: the per-call prices every sampler pays.

For the ``arith`` grammar with inputs ``["x"]`` and ``max_depth=6`` this measures, on one
fixed set of sampled programs: draws per second of ``ProgramPrior.sample``,
``ProgramPrior.log_density`` calls per second, ``Program`` evaluations per second on 20
points with numpy and with torch, and ``Program.key`` and ``str(program)`` per second. Each
figure is the median over repeats, each repeat timing enough calls to last ``--min-time``
seconds. It then profiles the numpy evaluation path once with cProfile.

Run::

    python -m benchmarks.prior_costs                             # print only
    python -m benchmarks.prior_costs --write docs/benchmarks.md  # what `make bench` does
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import datetime
import io
import math
import os
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import ppl
from benchmarks._report import replace_sections

N_POINTS = 20
NGUYEN_1 = "(((x * x) * x) + ((x * x) + x))"


@dataclass(frozen=True)
class Case:
    """One measured operation: ``run(prepare())`` performs ``count`` calls; only run is timed."""

    name: str
    count: int
    run: Callable[[Any], object]
    prepare: Callable[[], Any] = lambda: None
    note: str = ""


@dataclass(frozen=True)
class Rate:
    """Calls per second of one case over the repeats."""

    case: Case
    rates: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.rates)

    @property
    def micros(self) -> float:
        return 1e6 / self.median


def time_case(case: Case, repeats: int, min_time: float) -> Rate:
    """Median-ready rates: each repeat times ``loops`` batches, ``loops`` set like timeit's."""

    def one_repeat(loops: int) -> float:
        elapsed = 0.0
        for _ in range(loops):
            data = case.prepare()
            start = time.perf_counter()
            case.run(data)
            elapsed += time.perf_counter() - start
        return loops * case.count / elapsed

    first = one_repeat(1)  # also a warm-up
    loops = max(1, math.ceil(min_time * first / case.count))
    return Rate(case, tuple(one_repeat(loops) for _ in range(repeats)))


def fresh(programs: Sequence[ppl.Program]) -> list[ppl.Program]:
    """Copies without cached heights, compiled code, key or text: a new proposal's state."""
    return [copy.copy(p) for p in programs]


def cases(prior: ppl.ProgramPrior, programs: list[ppl.Program],
          rng: np.random.Generator) -> list[Case]:
    n = len(programs)
    x = np.linspace(-1.0, 1.0, N_POINTS)
    xt = torch.linspace(-1.0, 1.0, N_POINTS, dtype=torch.float64)
    nguyen = prior.grammar.parse(NGUYEN_1)
    for p in programs:  # compile once, so "cached" cases measure the steady state
        p(x)

    def draw(_: object) -> None:
        for _ in range(n):
            prior.sample(rng=rng)

    def many(fn: Callable[[ppl.Program], object]) -> Callable[[list[ppl.Program]], None]:
        def run(ps: list[ppl.Program]) -> None:
            for p in ps:
                fn(p)
        return run

    def fixed() -> list[ppl.Program]:
        return programs

    def make_fresh() -> list[ppl.Program]:
        return fresh(programs)

    def nguyen_batch() -> list[ppl.Program]:
        return [nguyen] * 1000

    return [
        Case("ProgramPrior.sample", n, draw, note="exact conditioned draw, explicit Generator"),
        Case("ProgramPrior.log_density", n, many(prior.log_density), make_fresh,
             "fresh programs (depth computed once per program)"),
        Case("evaluate, numpy, 20 points", n, many(lambda p: p(x)), fixed,
             "compiled code cached on the program"),
        Case("evaluate, numpy, 20 points, fresh", n, many(lambda p: p(x)), make_fresh,
             "includes compiling the preorder code"),
        Case("evaluate, torch, 20 points", n, many(lambda p: p(xt)), fixed,
             "float64 tensors, no autograd"),
        Case("evaluate x³+x²+x (Nguyen-1), numpy, 20 points", 1000, many(lambda p: p(x)),
             nguyen_batch, f"`{NGUYEN_1}`, 11 nodes; DESIGN.md quotes ≈ 5 µs for it plus a "
             "Gaussian log-likelihood in plain numpy"),
        Case("Program.key", n, many(lambda p: p.key), make_fresh, "fresh programs"),
        Case("str(program)", n, many(str), make_fresh, "fresh programs"),
    ]


@dataclass(frozen=True)
class Profile:
    """The cProfile run of the numpy evaluation path."""

    excerpt: str  # pstats lines, top functions by own time
    seconds: float  # wall time under the profiler
    loops: int  # evaluations of each program
    shares: dict[str, float]  # fraction of Program.evaluate's cumulative time per part


def evaluate_shares(stats: pstats.Stats) -> dict[str, float]:
    """Split the cumulative time of ``Program.evaluate`` into its parts."""
    table: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]

    def cum(name: str, file: str = "program.py") -> float:
        return sum(v[3] for (f, _, fn), v in table.items() if f == file and fn == name)

    total = cum("evaluate")
    ops = sum(v[3] for (f, _, _), v in table.items() if f == "ops.py")
    errstate = cum("__enter__", "_ufunc_config.py") + cum("__exit__", "_ufunc_config.py")
    parts = {"binding inputs (`ppl.evaluate.bind`)": cum("bind", "evaluate.py"),
             "broadcasting the result (`ppl.evaluate.broadcast`)": cum("broadcast",
                                                                         "evaluate.py"),
             "the `np.errstate` context": errstate,
             "the operators themselves (`ppl/ops.py`)": ops}
    return {k: v / total for k, v in parts.items()}


def profile_numpy(programs: list[ppl.Program], loops: int, top: int) -> Profile:
    """cProfile of evaluating ``programs`` on 20 points ``loops`` times each."""
    x = np.linspace(-1.0, 1.0, N_POINTS)
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    for _ in range(loops):
        for p in programs:
            p(x)
    profiler.disable()
    seconds = time.perf_counter() - start
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime")
    stats.print_stats(top)
    lines = out.getvalue().splitlines()
    head = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
    excerpt = [line for line in lines if "function calls" in line]
    excerpt += [""] + [line.rstrip() for line in lines[head:] if line.strip()]
    return Profile("\n".join(excerpt), seconds, loops, evaluate_shares(stats))


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor() or "unknown"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cores (nproc)": str(cores), "CPU": model,
            "OS": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(), "numpy": np.__version__,
            "torch": f"{torch.__version__} ({torch.get_num_threads()} threads)",
            "ppl": ppl.__version__,
            "load average (1 min) before the run": f"{os.getloadavg()[0]:.2f}"}


def fmt_rate(r: float) -> str:
    return f"{r:,.0f}" if r >= 100 else f"{r:.3g}"


def table(rates: list[Rate]) -> list[str]:
    rows = ["| operation | calls per second (median) | µs per call | min – max per second "
            "| note |", "|---|---:|---:|---:|---|"]
    for r in rates:
        name = r.case.name.replace("|", "\\|")
        rows.append(f"| {name} | {fmt_rate(r.median)} | "
                    f"{r.micros:.1f} | {fmt_rate(min(r.rates))} – {fmt_rate(max(r.rates))} | "
                    f"{r.case.note} |")
    return rows


def report(args: argparse.Namespace, prior: ppl.ProgramPrior, programs: list[ppl.Program],
           rates: list[Rate], profile: Profile, host: dict[str, str]) -> str:
    by = {r.case.name: r for r in rates}
    sizes = np.array([p.size for p in programs])
    exact = prior.size_distribution()
    exact_mean = float(np.arange(len(exact)) @ exact)
    numpy_rate = by["evaluate, numpy, 20 points"].median
    torch_rate = by["evaluate, torch, 20 points"].median
    cold_rate = by["evaluate, numpy, 20 points, fresh"].median
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = "python -m benchmarks.prior_costs " + " ".join(args.argv)
    lines = [
        "# Benchmarks",
        "",
        "Figures from real runs on the machine below. Benchmarks run by hand (`make bench`), "
        "never in the test suite; absolute times on shared machines drift, so compare ratios "
        "measured side by side in one run. This page is written by the harness: edit "
        "`benchmarks/prior_costs.py`, not this file.",
        "",
        "## Prior and program costs",
        "",
        f"What one sampler step pays for: the `arith` grammar, `inputs=[\"x\"]`, "
        f"`max_depth={prior.max_depth}`, on one fixed set of {len(programs)} programs drawn "
        f"from the prior with seed {args.seed} (mean size {sizes.mean():.2f} nodes, largest "
        f"{sizes.max()}; the exact mean under the prior is {exact_mean:.2f}). Each figure is "
        f"the median over {args.repeats} repeats; each repeat times enough calls to last at "
        f"least {args.min_time} s. \"Fresh\" programs are copies without cached state, as a "
        "new proposal would be.",
        "",
        *table(rates),
        "",
        f"Side by side: torch evaluation runs at {torch_rate / numpy_rate:.2f}× the numpy "
        f"rate on these 20-point inputs, and a fresh program evaluates at "
        f"{cold_rate / numpy_rate:.2f}× the rate of one whose compiled code is cached. "
        f"DESIGN.md's budget of 20,000 proposals per second is 50 µs per proposal; one "
        f"numpy evaluation takes {by['evaluate, numpy, 20 points'].micros:.1f} µs and one "
        f"exact prior draw {by['ProgramPrior.sample'].micros:.1f} µs.",
        "",
        "Command:",
        "",
        "```bash",
        command,
        "```",
        "",
        f"Run on {when}.",
        "",
        "| machine | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in host.items()],
        "",
        "## Where the time goes",
        "",
        f"cProfile of the numpy evaluation path: the {len(programs)} programs above, compiled "
        f"code cached, evaluated {profile.loops} times each on 20 points "
        f"({profile.seconds:.2f} s under the profiler, which inflates per-call overhead). "
        "Of the cumulative time of `Program.evaluate`:",
        "",
        *[f"- {share:.0%}: {part}" for part, share in profile.shares.items()],
        "",
        "On programs this small the interpreter's fixed cost per call, not the arithmetic, "
        "sets the price: batching K programs or K inputs into one call is where speed-ups "
        f"lie (DESIGN.md §5). Top {args.top} functions by own time:",
        "",
        "```text",
        profile.excerpt,
        "```",
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="write the Markdown report to this file")
    parser.add_argument("--programs", type=int, default=200, help="size of the program set")
    parser.add_argument("--repeats", type=int, default=7, help="repeats per figure (>= 5)")
    parser.add_argument("--min-time", type=float, default=0.2,
                        help="seconds each repeat lasts at least")
    parser.add_argument("--seed", type=int, default=0, help="seed of the program set")
    parser.add_argument("--top", type=int, default=12, help="profile lines to keep")
    args = parser.parse_args(argv)
    if args.repeats < 5:
        parser.error("--repeats must be >= 5 (figures are medians over repeats)")
    args.argv = argv
    return args


OWN_HEADINGS = ("## Prior and program costs", "## Where the time goes")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    host = machine()
    torch.set_grad_enabled(False)
    prior = ppl.ProgramPrior(ppl.Grammar.load("arith"), inputs=["x"], max_depth=6)
    rng = np.random.default_rng(args.seed)
    programs = [prior.sample(rng=rng) for _ in range(args.programs)]
    rates = []
    for case in cases(prior, programs, rng):
        rate = time_case(case, args.repeats, args.min_time)
        print(f"{case.name:<55} {fmt_rate(rate.median):>12} /s  {rate.micros:8.1f} µs",
              flush=True)
        rates.append(rate)
    numpy_rate = next(r for r in rates if r.case.name == "evaluate, numpy, 20 points").median
    loops = max(1, round(numpy_rate / len(programs)))  # about one second unprofiled
    profile = profile_numpy(programs, loops, args.top)
    print(f"\n{profile.excerpt}")
    for part, share in profile.shares.items():
        print(f"{share:6.0%}  {part}")
    text = report(args, prior, programs, rates, profile, host)
    if args.write is not None:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        if args.write.exists():  # the page is shared: replace only this harness's sections
            replace_sections(args.write, text[text.index(OWN_HEADINGS[0]):], OWN_HEADINGS)
        else:
            args.write.write_text(text)
        print(f"\nWrote {args.write}")


if __name__ == "__main__":
    main()
