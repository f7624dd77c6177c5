"""The command line (issue 14 item 1): ``ppl fit``, ``show``, ``predict``, ``grammars`` run as
real subprocesses on a CSV file of tests/data; bad CSV files and options are rejected with
exit code 2 and a message naming the column or row, and nothing is written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from inference.cli import main

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "decay.csv"  # n = 2 exp(-0.8 t) + noise, 20 rows
PPL = [sys.executable, "-m", "inference.cli"]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PPL, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def test_fit_and_show_as_subprocesses(tmp_path: Path) -> None:
    fit = run("fit", str(DATA), "--target", "n", "--time", "3", "--chains", "2",
              "--samples", "300", "--out", "out/run.nc", cwd=tmp_path)
    assert fit.returncode == 0, fit.stderr[-2000:]
    assert "Top laws" in fit.stdout and "exp(" in fit.stdout and "R-hat: lp" in fit.stdout
    run_file, figure = tmp_path / "out" / "run.nc", tmp_path / "out" / "run.png"
    assert run_file.stat().st_size > 0 and min(png_size(figure)) > 100
    assert (Path(sys.executable).parent / "ppl").exists()  # the installed entry point
    show = run("show", "out/run.nc", "--top", "1", cwd=tmp_path)  # one more subprocess
    assert show.returncode == 0 and "Top laws" in show.stdout, show.stderr[-2000:]


def test_show_predict_grammars(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run.nc"
    assert main(["fit", str(DATA), "--target", "n", "--time", "0", "--chains", "1",
                 "--samples", "150", "--out", str(out)]) == 0  # no budget: the same draws
    top = capsys.readouterr().out.split("Top laws")[1].splitlines()[1]
    assert main(["show", str(out)]) == 0
    assert capsys.readouterr().out.split("Top laws")[1].splitlines()[1] == top  # read back
    (tmp_path / "new.csv").write_text("t\n0\n1\n")
    pred = tmp_path / "pred.csv"
    assert main(["predict", str(out), str(tmp_path / "new.csv"), "--out", str(pred)]) == 0
    table = pd.read_csv(pred)
    assert list(table.columns) == ["t", "mean", "lower", "upper"]
    assert table["mean"][0] == pytest.approx(2.0, abs=0.2)  # the law at t = 0
    assert (table["lower"] < table["mean"]).all() and (table["mean"] < table["upper"]).all()
    assert main(["grammars"]) == 0
    assert "example: ((2.5 * x) + sin(x))" in capsys.readouterr().out


@pytest.mark.parametrize(("text", "options", "message"), [
    ("t,n\n0,1\n1,2\n", ["--target", "y"], "no target column 'y'; the columns are"),
    ("t,n\n0,1\n1,two\n2,3\n", ["--target", "n"], "column 'n' is not numeric: row 2 holds"),
    ("t,n\n0,1\n,2\n2,3\n", ["--target", "n"], r"column 't' has 1 missing .* row\(s\) 2;"),
    ("t,n\n0,1\n1,2\n", ["--target", "n", "--inputs", "s"], "no input column 's'"),
    ("t,n\n0,1\n1,2\n", ["--target", "n", "--noise", "-1"], "--noise must be 'auto' or"),
    ("t,n\n0,1\n1,2\n", ["--target", "n", "--grammar", "nope"], "No bundled grammar"),
    ("T,n\n0,1\n1,2\n", ["--target", "n"], "Input name 'T' cannot be written"),
], ids=["target", "text", "missing", "inputs", "noise", "grammar", "name"])
def test_bad_input_exits_2_naming_it_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, options: list[str],
        message: str) -> None:
    data = tmp_path / "bad.csv"
    data.write_text(text)
    out = tmp_path / "run.nc"
    assert main(["fit", str(data), *options, "--out", str(out), "--time", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ppl fit: error: ")
    assert re.search(message, err), err
    assert not out.exists() and not out.with_suffix(".png").exists()


def test_show_and_predict_refuse_missing_files(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(tmp_path / "none.nc")]) == 2
    assert "No run file" in capsys.readouterr().err
    (tmp_path / "junk.nc").write_text("not netcdf")
    assert main(["show", str(tmp_path / "junk.nc")]) == 2
    assert "not a saved run" in capsys.readouterr().err
