"""Checkpoints and resume (DESIGN §7, TESTING P8, issue 13 item 1).

- N sweeps, a checkpoint, a fresh process and N more sweeps are bitwise the 2N sweeps of
  an uninterrupted run (the default plan with a program, its constants and a noise scale;
  a NUTS block on Pyro and on NumPyro; two tempering rungs);
- a checkpoint of another model, data or program prior is refused naming what differs,
  unless ``force=True``; a run's options cannot be changed on resume;
- ``kill -9`` during a write leaves the previous checkpoint intact (a real subprocess);
- a depth-5000 program checkpoints and reads back.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ppl
from inference import infer, resume
from inference.checkpoint import CheckpointError, chain_path, read, save
from ppl.ops import KIND_INPUT
from ppl.program import Program
from tests.inference.checkpoint_models import X, Y, hierarchical, regression

ROOT = Path(__file__).resolve().parents[2]
RUN: dict[str, Any] = {"num_samples": 60, "num_warmup": 40, "num_chains": 2, "seed": 7,
                       "chain_method": "sequential", "progress": False,
                       "checkpoint_every": 50}

RESUME = """
import json, sys
from inference import resume
from tests.inference import checkpoint_models as m
out = []
for path, model in zip(sys.argv[1::2], sys.argv[2::2]):
    post = resume(path, getattr(m, model), m.X, y=m.Y, progress=False)
    out.append({"f": [str(p) for p in post.samples["f"].reshape(-1)],
                "lp": post.stats["lp"].reshape(-1).tolist(),
                "resumed": post.attrs["resumed"]})
print(json.dumps(out))
"""
CASES: dict[str, tuple[Any, dict[str, Any]]] = {
    "program+noise": (regression, {}), "program+nuts": (hierarchical, {}),
    "program+nuts (numpyro)": (hierarchical, {"backend": "numpyro"}),
    "tempering": (regression, {"num_rungs": 2})}


def test_resume_in_a_fresh_process_is_bitwise_the_whole_run(tmp_path: Path) -> None:
    """Each case runs 2 × 100 sweeps with a checkpoint at sweep 50; one fresh process
    resumes every case from its checkpoint; draws and log joints match to the bit."""
    wholes, argv = {}, []
    for name, (fn, options) in CASES.items():
        path = tmp_path / f"{name}.ckpt"
        wholes[name] = infer(fn, X, y=Y, checkpoint=str(path), **RUN, **options)
        assert read(chain_path(path, 0), [None, None])["sweep"] == 50  # of 100
        argv += [str(path), fn.__name__]
    done = subprocess.run([sys.executable, "-c", RESUME, *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    again = json.loads(done.stdout.strip().splitlines()[-1])
    for (name, whole), got in zip(wholes.items(), again, strict=True):
        assert got["resumed"] == [True, True], name
        assert got["f"] == [str(p) for p in whole.samples["f"].reshape(-1)], name
        assert got["lp"] == whole.stats["lp"].reshape(-1).tolist(), name  # bitwise


def test_a_chain_without_a_file_starts_again_from_its_seed(tmp_path: Path) -> None:
    path = tmp_path / "run.ckpt"
    whole = infer(regression, X, y=Y, checkpoint=str(path), **RUN)
    os.remove(chain_path(path, 1))
    again = resume(str(path), regression, X, y=Y, progress=False)
    assert again.attrs["resumed"] == [True, False]
    assert np.array_equal(again.stats["lp"], whole.stats["lp"])


def test_another_run_is_refused_naming_what_differs(tmp_path: Path) -> None:
    path = tmp_path / "run.ckpt"
    infer(regression, X, y=Y, checkpoint=str(path), **RUN)
    with pytest.raises(CheckpointError, match=r"another run: data \(saved "):
        resume(str(path), regression, X, y=Y + 1.0, progress=False)
    with pytest.raises(CheckpointError, match=r"model \(saved "):
        resume(str(path), hierarchical, X, y=Y, progress=False)
    post = resume(str(path), regression, X, y=Y + 1.0, progress=False, force=True)
    assert post.num_draws == 60
    with pytest.raises(ppl.PPLError, match="'num_samples' cannot be changed"):
        resume(str(path), regression, X, y=Y, num_samples=10)
    save(tmp_path / "other", {"format": 0})
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        resume(str(tmp_path / "other"), regression, X, y=Y)
    with pytest.raises(CheckpointError, match="No checkpoint at"):
        resume(str(tmp_path / "missing"), regression, X, y=Y)


@pytest.mark.parametrize(("options", "message"), [
    ({"method": "importance"}, "checkpoint= is a feature of method 'mcmc'"),
    ({"checkpoint_every": 0}, "checkpoint_every"),
], ids=["importance", "every"])
def test_what_cannot_be_checkpointed_is_refused(tmp_path: Path, options: dict[str, Any],
                                                message: str) -> None:
    with pytest.raises(ppl.PPLError, match=message):
        infer(hierarchical, X, y=Y, checkpoint=str(tmp_path / "c"),
              **{**RUN, **options})


WRITER = """
import sys
import numpy as np
from inference.checkpoint import save
for i in range(10**6):
    save(sys.argv[1], {"i": i, "data": np.full(200_000, float(i))})
    print(i, flush=True)
"""


def test_kill_9_during_a_write_leaves_the_previous_checkpoint_intact(tmp_path: Path) -> None:
    path = tmp_path / "run.ckpt"
    for trial in range(2):
        with subprocess.Popen([sys.executable, "-c", WRITER, str(path)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True) as proc:
            assert proc.stdout is not None
            for _ in range(3 + 2 * trial):  # a few complete writes, then kill mid-stream
                proc.stdout.readline()
            time.sleep(0.01 * trial)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        assert proc.returncode == -signal.SIGKILL
        got = read(path)
        assert np.all(got["data"] == float(got["i"]))  # one whole payload, never a part


def test_a_depth_5000_program_checkpoints(tmp_path: Path) -> None:
    prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=3)
    g = prior.grammar
    sin = next(i for i, p in enumerate(g.productions) if p.op.name == "sin")
    x = next(i for i, p in enumerate(g.productions) if p.op.kind == KIND_INPUT)
    deep = Program.unchecked(g, (sin,) * 5000 + (x,), (None,) * 5000 + ("x",), ["x"])
    save(tmp_path / "deep", {"f": deep})
    back = read(tmp_path / "deep")["f"]
    assert back == deep and back.depth == 5001
