"""Smoke test of the B1 harness (benchmarks/nguyen.py): one short run of our engine.

It checks that a run produces a complete record; it asserts nothing about recovery or
timings (those are benchmark figures, not test outcomes).
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import nguyen
from benchmarks import nguyen_protocol as protocol

FIELDS = {"method", "problem", "seed", "budget", "noise", "n_points", "best_program",
          "best_sympy", "nrmse", "recovered", "recovered_by", "sympy_equal", "wall_time",
          "num_draws", "best_log_joint", "top_program", "top_probability", "p_true",
          "cut_short", "error", "job_seconds", "job_cpu_seconds"}


def test_nguyen_1_smoke(tmp_path: Path) -> None:
    out = tmp_path / "nguyen.json"
    run = nguyen.main(["--problems", "Nguyen-1", "--seeds", "1", "--budget", "3",
                       "--methods", "ours", "--out", str(out)])
    assert run is not None
    saved = json.loads(out.read_text())
    assert saved["meta"]["command"].startswith("python -m benchmarks.nguyen")
    (record,) = saved["records"]
    assert record["error"] is None
    assert not FIELDS - set(record), f"missing fields: {FIELDS - set(record)}"
    assert (record["method"], record["problem"], record["seed"]) == ("ours", "Nguyen-1", 0)
    assert isinstance(record["recovered"], bool)
    assert 0.0 <= record["p_true"] <= 1.0
    assert 0.0 <= record["top_probability"] <= 1.0
    assert record["num_draws"] >= 1
    section = nguyen.report([saved])
    assert section.startswith(nguyen.HEADING)
    assert "| Nguyen-1 |" in section


def test_reference_programs_fit_and_pass_the_check() -> None:
    """Every target is expressible in our grammar within MAX_DEPTH and its reference
    program passes the recovery check (numerically, no sympy)."""
    import ppl

    for problem in protocol.PROBLEMS.values():
        program = ppl.Grammar.load(problem.grammar).parse(problem.reference)
        assert program.depth <= protocol.MAX_DEPTH, problem.name
        X, truth = protocol.fresh_points(problem, 0)
        env = {n: X[:, i] for i, n in enumerate(problem.inputs)}
        assert protocol.nrmse(program(**env), truth) < protocol.EXACT_NRMSE, problem.name


def test_write_section_keeps_the_rest_of_the_page(tmp_path: Path) -> None:
    page = tmp_path / "benchmarks.md"
    page.write_text("# Benchmarks\n\n## Other\n\ntext\n")
    nguyen.write_section(page, nguyen.HEADING + "\n\nfirst\n")
    nguyen.write_section(page, nguyen.HEADING + "\n\nsecond\n")
    text = page.read_text()
    assert text.startswith("# Benchmarks\n\n## Other\n\ntext\n")
    assert text.count(nguyen.HEADING) == 1 and "second" in text and "first" not in text


def test_nuts_overhead_report_and_ratio() -> None:
    """B3's table (benchmarks/nuts_overhead.py) from made-up timings: the ratio is raw
    seconds over ours (equal ESS), and the goal line reads the worst case."""
    from benchmarks import nuts_overhead as b3

    size = b3.Size(2, 10, 10)
    cases = [b3.Case("eight_schools_noncentered", "pyro", size, [2.0, 4.0], [3.0, 3.0], 50.0,
                     True),
             b3.Case("kilpisjarvi", "numpyro", size, [1.0], [0.5], 20.0, True)]
    assert cases[0].ratio == 1.0 and cases[1].ratio == 0.5
    section = b3.report(cases, ["--repeats", "2"], {"cores (nproc)": "2"}, "now")
    assert section.startswith(b3.HEADING)
    assert "| kilpisjarvi | numpyro | 2 × (10 + 10) | 20 |" in section
    assert "Goal not met in this run: the lowest ratio is 0.50 (kilpisjarvi, numpyro)" in section
    assert "python -m benchmarks.nuts_overhead --repeats 2" in section
