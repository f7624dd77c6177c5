"""Smoke tests of the benchmark harnesses (B1 benchmarks/nguyen.py with its ours+q method,
B4 benchmarks/amortized_b4.py): short runs of our engine.

Each checks that a run produces complete records; it asserts nothing about recovery or
timings (those are benchmark figures, not test outcomes).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import nguyen
from benchmarks import nguyen_protocol as protocol

FIELDS = {"method", "problem", "seed", "budget", "noise", "n_points", "best_program",
          "best_sympy", "nrmse", "recovered", "recovered_by", "sympy_equal", "wall_time",
          "num_draws", "best_log_joint", "top_program", "top_probability", "p_true",
          "cut_short", "error", "job_seconds", "job_cpu_seconds"}


def test_nguyen_1_smoke(tmp_path: Path) -> None:
    out = tmp_path / "nguyen.json"
    run = nguyen.main(["--problems", "Nguyen-1", "--seeds", "1", "--first-seed", "2",
                       "--budget", "3", "--methods", "ours", "--out", str(out)])
    assert run is not None
    saved = json.loads(out.read_text())
    assert saved["meta"]["command"].startswith("python -m benchmarks.nguyen")
    (record,) = saved["records"]
    assert record["error"] is None
    assert not FIELDS - set(record), f"missing fields: {FIELDS - set(record)}"
    assert (record["method"], record["problem"], record["seed"]) == ("ours", "Nguyen-1", 2)
    assert isinstance(record["recovered"], bool)
    assert 0.0 <= record["p_true"] <= 1.0
    assert 0.0 <= record["top_probability"] <= 1.0
    assert record["num_draws"] >= 1
    section = nguyen.report([saved])
    assert section.startswith(nguyen.HEADING)
    assert "| Nguyen-1 |" in section


def test_nguyen_1_ours_q_smoke(tmp_path: Path) -> None:
    """ours+q on Nguyen-1 with a tiny proposal (3 s, 8 wide): trained once, saved under
    --proposal-dir, loaded by the run; the record is complete and the report has the
    method's columns and its training cost."""
    from benchmarks.nguyen_proposal import obtain, pair_of

    out, qdir = tmp_path / "nguyen.json", tmp_path / "q"
    nguyen.main(["--problems", "Nguyen-1", "--seeds", "1", "--budget", "3",
                 "--methods", "ours+q", "--proposal-time", "3", "--proposal-hidden", "8",
                 "--proposal-dir", str(qdir), "--jobs", "1", "--out", str(out)])
    saved = json.loads(out.read_text())
    (record,) = saved["records"]
    assert record["error"] is None, record["error"]
    fields = FIELDS | {"proposal_file", "proposal_train_seconds"}
    assert not fields - set(record), f"missing fields: {fields - set(record)}"
    assert record["method"] == "ours+q" and record["num_draws"] >= 1
    (info,) = saved["meta"]["proposals"]
    assert info["trained_now"] and info["hidden"] == 8
    assert info["design"]["ranges"] == [[-1.0, 1.0], [0.0, 2.0], [0.0, 4.0]]
    assert record["proposal_file"] == info["file"] == str(qdir / "koza-1in-h8.pt")
    assert record["proposal_train_seconds"] == pytest.approx(info["seconds"])
    assert not obtain(pair_of("Nguyen-1"), str(qdir), 8, 3.0)["trained_now"]
    section = nguyen.report([saved])
    assert "ours+q: recovered" in section and "ours+q: P(true)" in section
    assert "| Nguyen-1 |" in section and "Training cost:" in section
    assert "koza, 1 input(s): U[-1, 1] or U[0, 2] or U[0, 4]" in section


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


B4_MCMC_FIELDS = {"first_hit_seconds", "first_hit_draw", "num_draws", "sweeps", "seconds",
                  "chain_seconds", "setup_seconds", "sweep_seconds", "top_program",
                  "top_probability", "top_is_true", "p_true", "p_true_draws",
                  "distinct_structures"}
B4_IS_FIELDS = {"top_program", "top_probability", "top_is_true", "p_true", "latency_seconds",
                "seconds", "context_seconds", "sampling_seconds", "ess", "khat",
                "log_evidence", "fast", "warnings"}


def test_amortized_b4_smoke(tmp_path: Path) -> None:
    """B4 (benchmarks/amortized_b4.py) on 2 tasks with a tiny proposal: every record is
    complete, the proposal file is reused, and the section renders from the saved JSON."""
    from benchmarks import amortized_b4 as b4

    out, page, q = tmp_path / "b4.json", tmp_path / "benchmarks.md", tmp_path / "q.pt"
    b4.main(["--tasks", "2", "--time", "2", "--train-time", "3", "--hidden", "8",
             "--jobs", "1", "--proposal", str(q), "--out", str(out), "--write", str(page)])
    saved = json.loads(out.read_text())
    assert saved["meta"]["proposal"]["trained_now"] and q.exists()
    assert [r["task"] for r in saved["records"]] == [0, 1]
    for record in saved["records"]:
        assert record["error"] is None
        for arm in ("mcmc", "mcmc_proposal"):
            assert not B4_MCMC_FIELDS - set(record[arm]), arm
            assert record[arm]["num_draws"] >= 1 and 0.0 <= record[arm]["p_true"] <= 1.0
        assert not B4_IS_FIELDS - set(record["amortized"])
    text = page.read_text()
    assert text.startswith(b4.HEADING) and text.count(b4.HEADING) == 1
    assert "python -m benchmarks.amortized_b4 --tasks 2 --time 2" in text
    assert b4.report(saved) in text
    assert not b4.obtain_proposal(q, hidden=8, train_time=3, seed=0)["trained_now"]


@pytest.mark.parametrize(("times", "expected"), [
    ([1.0, 2.0, 3.0], (2.0, False)),
    ([1.0, 3.0, None, None], (6.5, True)),
    ([1.0, None, 11.0], (10.0, True)),
    ([None, None], (10.0, True)),
], ids=["observed", "upper-middle-censored", "past-budget-is-censored", "all-censored"])
def test_b4_censored_median(times: list[float | None], expected: tuple[float, bool]) -> None:
    from benchmarks.amortized_b4_report import censored_median

    assert censored_median(times, budget=10.0) == expected


def test_svi_speed_smoke(tmp_path: Path) -> None:
    """Issue 12's SVI-vs-NUTS harness on eight schools: one short SVI schedule and one short
    NUTS run on Pyro, the report rows; and the regression model's shapes."""
    from benchmarks import svi_speed as s
    from benchmarks.posteriordb import eight_schools_noncentered, reference

    ref = reference("eight_schools_noncentered")
    sigma, y = ref.args
    svi = s.svi_run(eight_schools_noncentered, (sigma,), {"y": y}, ref.summary, "pyro", (20, 40))
    assert [r["steps"] for r in svi["tried"]] == [20, 40] or svi["tried"][-1]["close"]
    assert svi["max_z"] >= 0 and svi["khat"] > 0 and isinstance(svi["reached"], bool)
    nuts = s.nuts_run(eight_schools_noncentered, (sigma,), {"y": y}, ref.summary, "pyro",
                      (10,))
    assert nuts["draws"] == 10 and not nuts["reached"] and nuts["min_ess"] < s.ESS_GOAL
    rows = [{"model": "eight schools", "method": m, "backend": b, **r}
            for m, b, r in (("svi", "pyro", svi), ("nuts", "pyro", nuts))]
    meta = {"command": "python -m benchmarks.svi_speed", "date": "today", "code": "x",
            "machine": {}}
    page = tmp_path / "b.md"
    s.replace_sections(page, s.report({"meta": meta, "rows": rows}), (s.HEADING,))
    text = page.read_text()
    assert text.startswith(s.HEADING) and "| eight schools | svi | pyro |" in text
    onehot, x, yr = s.regression_data(60, groups=4)
    post, _ = s.timed(s.hier_regression, (onehot, x), {"y": yr}, method="svi",
                      num_steps=30, num_samples=50, num_chains=1)
    assert post.samples["a"].shape == (1, 50, 4)
