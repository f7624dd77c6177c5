"""Checkpoints of amortized training (inference/amortized/checkpoint.py; the basename
test_checkpoint.py is taken by tests/inference/test_checkpoint.py).

- N steps, a checkpoint, a fresh process and N more steps are bitwise the 2N steps of an
  uninterrupted training (every weight, Adam's state, the loss history), and a checkpoint
  changes nothing of the training it saves;
- a training that had written no state yet starts again from its seed; one on stored
  simulations resumes bitwise too;
- a checkpoint of another model, data or program prior is refused naming what differs,
  unless ``force=True``; an option cannot change on resume; a missing or corrupt file is a
  CheckpointError; an ``inputs=`` that cannot be saved is refused before training.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import ppl
from inference import resume
from inference.amortized import Proposal, simulate, train_proposal
from inference.amortized.checkpoint import read_state, state_path
from inference.checkpoint import CheckpointError, save
from ppl import dist
from tests.inference.checkpoint_models import X, Y, regression

ROOT = Path(__file__).resolve().parents[3]
TRAIN: dict[str, Any] = {"num_steps": 12, "batch_size": 8, "valid_size": 8, "hidden": 8,
                         "lr": 0.02, "eval_every": 4, "patience": 100, "seed": 3,
                         "progress": False}

RESUME = """
import json, sys
import torch
from inference import resume
from tests.inference import checkpoint_models as m
q = resume(sys.argv[1], m.regression, m.X, y=m.Y, progress=False)
print(json.dumps(
    {"weights": {k: v.numpy().tobytes().hex() for k, v in q.network.state_dict().items()},
     "adam": [s["exp_avg_sq"].numpy().tobytes().hex()
              for s in q.optimizer_state["state"].values()],
     "history": [[e.step, float(e.train_loss).hex(), e.valid_loss.hex()] for e in q.history],
     "steps": q.steps}))
"""


def same_weights(a: Proposal, b: Proposal) -> bool:
    sa, sb = a.network.state_dict(), b.network.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def losses(q: Proposal) -> list[tuple[int, str, str]]:
    return [(e.step, float(e.train_loss).hex(), e.valid_loss.hex()) for e in q.history]


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> tuple[Proposal, Path]:
    """12 steps with a checkpoint at step 6 (and none at 12: the last one is kept)."""
    path = tmp_path_factory.mktemp("train") / "train.ckpt"
    q = train_proposal(regression, X, y=Y, checkpoint=str(path), checkpoint_every=6, **TRAIN)
    return q, path


def test_resume_in_a_fresh_process_is_bitwise_the_whole_training(
        whole: tuple[Proposal, Path]) -> None:
    q, path = whole
    state = read_state(path)
    assert state is not None and state.fit.steps == 6  # of 12
    assert same_weights(q, train_proposal(regression, X, y=Y, **TRAIN))  # checkpoint off
    done = subprocess.run([sys.executable, "-c", RESUME, str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["steps"] == q.steps == 12
    assert got["weights"] == {k: v.numpy().tobytes().hex()
                              for k, v in q.network.state_dict().items()}
    assert q.optimizer_state is not None
    assert got["adam"] == [s["exp_avg_sq"].numpy().tobytes().hex()
                           for s in q.optimizer_state["state"].values()]
    assert [tuple(e) for e in got["history"]] == losses(q)


def test_a_training_without_a_state_starts_again_from_its_seed(
        whole: tuple[Proposal, Path], tmp_path: Path) -> None:
    q, path = whole
    copy = tmp_path / "copy.ckpt"
    copy.write_bytes(path.read_bytes())  # the manifest alone
    again = resume(str(copy), regression, X, y=Y)
    assert isinstance(again, Proposal) and same_weights(q, again) and losses(again) == losses(q)


def test_training_on_stored_simulations_resumes_bitwise(tmp_path: Path) -> None:
    sims = simulate(regression, X, y=Y, num_simulations=40, seed=1)
    path = tmp_path / "stored.ckpt"
    q = train_proposal(regression, X, y=Y, simulations=sims, checkpoint=str(path),
                       checkpoint_every=5, **TRAIN)
    again = resume(str(path), regression, X, y=Y)
    assert isinstance(again, Proposal) and same_weights(q, again) and losses(again) == losses(q)


def deeper(x: Any, y: Any = None) -> None:
    """:func:`regression` with a deeper program prior."""
    f = ppl.sample("f", ppl.ProgramPrior("arith", inputs=["x"], max_depth=5))
    sigma = ppl.sample("sigma", dist.HalfNormal(1.0))
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), sigma), obs=y)


def test_another_training_is_refused_naming_what_differs(
        whole: tuple[Proposal, Path]) -> None:
    q, path = whole
    with pytest.raises(CheckpointError, match=r"another training: data \(saved "):
        resume(str(path), regression, X, y=Y + 1.0)
    with pytest.raises(CheckpointError, match=r"model \(saved .*programs \(saved "):
        resume(str(path), deeper, X, y=Y)
    with pytest.raises(CheckpointError, match="does not fit this model's program prior"):
        resume(str(path), deeper, X, y=Y, force=True)  # the weights cannot fit
    forced = resume(str(path), regression, X, y=Y + 1.0, force=True)
    assert isinstance(forced, Proposal) and forced.steps == q.steps
    with pytest.raises(ppl.PPLError, match="'lr' cannot be changed"):
        resume(str(path), regression, X, y=Y, lr=0.1)


def test_missing_or_corrupt_files_are_refused(whole: tuple[Proposal, Path],
                                              tmp_path: Path) -> None:
    _, path = whole
    with pytest.raises(CheckpointError, match="No checkpoint at"):
        resume(str(tmp_path / "missing.ckpt"), regression, X, y=Y)
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="cannot be read"):
        resume(str(bad), regression, X, y=Y)
    bad.write_bytes(path.read_bytes())
    state_path(bad).write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError, match="cannot be read"):
        resume(str(bad), regression, X, y=Y)
    save(state_path(bad), {"format": 1, "kind": "mcmc"})
    with pytest.raises(CheckpointError, match="not the state of a training checkpoint"):
        resume(str(bad), regression, X, y=Y)


def test_what_cannot_be_checkpointed_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.ckpt"
    with pytest.raises(ppl.PPLError, match="inputs= with the checkpoint, so it must pickle"):
        train_proposal(regression, X, y=Y, inputs=lambda rng: ((X,), {}),
                       checkpoint=str(path), **TRAIN)
    with pytest.raises(ppl.PPLError, match="checkpoint_every must be an integer >= 1"):
        train_proposal(regression, X, y=Y, checkpoint=str(path), checkpoint_every=0, **TRAIN)
    with pytest.raises(ppl.PPLError, match="checkpoint must be a file path"):
        train_proposal(regression, X, y=Y, checkpoint=3, **TRAIN)  # type: ignore[arg-type]
    assert not state_path(path).exists() and np.isfinite(Y).all()
