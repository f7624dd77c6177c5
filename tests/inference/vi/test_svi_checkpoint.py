"""Checkpoints and resume of ``method="svi"`` (:mod:`inference.vi.checkpoint`).

- 2N steps with ``checkpoint=`` are the 2N steps without it, and N steps, a checkpoint, a
  fresh process (a real subprocess) and ``resume`` for N more are bitwise the same fit:
  ELBO trace, draws, their log joint and log weight (log p − log q: the guide's
  parameters), on Pyro and on the program path; on NumPyro too (slow: NumPyro's first fit
  in a process compiles for seconds), there with the same ``PYTHONHASHSEED`` in both
  processes, which NumPyro's ELBO value (not its gradient) depends on;
- the loop's own state (the windows' means of the convergence test) is rebuilt from the
  losses: a resumed loop stops where the whole one does;
- a checkpoint of other data is refused naming it (``force=True`` goes on); a missing or
  corrupt file is a CheckpointError; a fit without a state file starts from its seed; an
  unpicklable guide and ``query(method="svi")`` are refused before anything is written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ppl
from inference import infer, query, resume
from inference.checkpoint import CheckpointError, read
from inference.vi.checkpoint import state_path
from inference.vi.fit import train
from tests.inference.vi.svi_checkpoint_models import (
    CASES,
    EVERY,
    FIT,
    SCRIPT,
    X,
    Y,
    line,
    model_of,
    summary,
)

pytestmark = pytest.mark.filterwarnings("ignore::inference.api.RunWarning")  # tiny fits
ROOT = Path(__file__).resolve().parents[3]


def _script(mode: str, paths: dict[str, Path], env: dict[str, str] | None = None
            ) -> dict[str, Any]:
    argv = [a for case, path in paths.items() for a in (case, str(path))]
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode, *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def _check(wholes: dict[str, Any], again: dict[str, Any]) -> None:
    for case, whole in wholes.items():
        assert again[case]["resumed"] == EVERY, case
        assert again[case]["steps"] == whole["steps"] == 2 * EVERY, case
        assert {**again[case], "resumed": None} == whole, case  # bitwise


def test_resume_in_a_fresh_process_is_bitwise_the_whole_fit(tmp_path: Path) -> None:
    """Pyro's SVI (a full-rank guide) and the program path; the fresh process resumes
    both."""
    wholes, paths = {}, {}
    for case in ("pyro", "program"):
        paths[case] = tmp_path / f"{case}.ckpt"
        plain = infer(model_of(case), X, y=Y, **FIT, **CASES[case])
        whole = infer(model_of(case), X, y=Y, checkpoint=str(paths[case]),
                      checkpoint_every=EVERY, **FIT, **CASES[case])
        assert summary(whole) == summary(plain), case  # checkpoints change nothing
        assert read(state_path(paths[case]))["step"] == EVERY, case  # of 2 × EVERY
        wholes[case] = json.loads(json.dumps(summary(whole)))
    _check(wholes, _script("resume", paths))


@pytest.mark.slow
def test_numpyro_resumes_bitwise_in_a_fresh_process(tmp_path: Path) -> None:
    """NumPyro's SVI: the checkpoint cuts a window (two compiled calls for its steps).
    NumPyro 0.22's Trace_ELBO sums the sites' terms in the order of a Python set, so the
    ELBO's last bit follows the process's string-hash seed: both processes get one."""
    paths = {"numpyro": tmp_path / "numpyro.ckpt"}
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    plain, whole = _script("whole", paths, env)["numpyro"]
    assert whole == plain  # checkpoints change nothing
    assert read(state_path(paths["numpyro"]))["step"] == EVERY
    _check({"numpyro": whole}, _script("resume", paths, env))


def test_a_resumed_loop_stops_where_the_whole_one_does() -> None:
    """The convergence test's window means come back from the saved losses."""
    values = 10.0 + 5.0 * np.exp(-np.arange(600) / 30.0)

    def chunk_from(start: int) -> Any:
        at = [start]

        def chunk(k: int) -> np.ndarray:
            at[0] += k
            return values[at[0] - k:at[0]]
        return chunk

    saved: list[np.ndarray] = []
    whole = train(chunk_from(0), 600, 1e-3, None, False, every=70, save=saved.append)
    assert whole.stopped == "converged" and whole.steps > 4 * 70
    losses = saved[3]  # 280 steps: windows of 60, the fifth one cut
    again = train(chunk_from(len(losses)), 600, 1e-3, None, False, done=losses)
    assert (again.steps, again.stopped) == (whole.steps, whole.stopped)
    assert np.array_equal(again.losses, whole.losses)


RUN: dict[str, Any] = {**FIT, "num_steps": 20, "num_chains": 1}


def test_another_run_is_refused_and_bad_files_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "run.ckpt"
    whole = infer(line, X, y=Y, checkpoint=str(path), checkpoint_every=10, **RUN)
    with pytest.raises(CheckpointError, match=r"another run: data \(saved "):
        resume(str(path), line, X, y=Y + 1.0)
    assert resume(str(path), line, X, y=Y + 1.0, force=True).attrs["resumed"] == 10
    state_path(path).unlink()  # died before its first checkpoint: starts from its seed
    fresh = resume(str(path), line, X, y=Y)
    assert fresh.attrs["resumed"] == 0
    assert np.array_equal(fresh.stats["log_weight"], whole.stats["log_weight"])
    state_path(path).write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError, match="cannot be read"):
        resume(str(path), line, X, y=Y)
    path.write_bytes(b"\x80\x05truncated")
    with pytest.raises(CheckpointError, match="cannot be read"):
        resume(str(path), line, X, y=Y)
    with pytest.raises(CheckpointError, match="No checkpoint at"):
        resume(str(tmp_path / "missing"), line, X, y=Y)


def test_what_cannot_be_checkpointed_is_refused_before_the_fit(tmp_path: Path) -> None:
    path = tmp_path / "run.ckpt"
    with pytest.raises(ppl.PPLError, match="guide '<lambda>' cannot be pickled"):
        infer(line, X, y=Y, guide=lambda x, y=None: None, checkpoint=str(path), **RUN)
    with pytest.raises(ppl.PPLError, match=r"query\(method='svi'\) does not checkpoint"):
        query(line, "a", given={"y": Y}, method="svi", model_args=(X,),
              checkpoint=str(path), **{k: v for k, v in RUN.items() if k != "method"})
    assert not path.exists()
