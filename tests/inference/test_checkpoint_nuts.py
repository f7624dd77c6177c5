"""Checkpoints of ``method="nuts"`` on both backends (issue 13 item 1).

- with ``checkpoint=`` the draws and statistics are bitwise those of the run without it
  (Pyro: the loop of ``MCMC`` written out; NumPyro: warmup, then segments continued from
  ``last_state``);
- a fresh process resumes from the last checkpoint, in the middle of the sampling, and
  ends bitwise where the uninterrupted run ended;
- a checkpoint of other data is refused naming it.

NumPyro's case compiles its sampler five times (37 s): it runs in ``make validate``; CI
runs Pyro's and NumPyro's refusal.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inference import infer, resume
from inference.checkpoint import CheckpointError, chain_path, read
from tests.inference.checkpoint_models import Y, location

ROOT = Path(__file__).resolve().parents[2]
RUN: dict[str, Any] = {"method": "nuts", "num_samples": 20, "num_warmup": 40,
                       "num_chains": 2, "thin": 2, "seed": 5, "progress": False}
# Pyro: saved at transition 50 of 80; NumPyro: after 30 of 40 sampling transitions
EVERY = {"pyro": 50, "numpyro": 30}

RESUME = """
import json, sys, warnings
from inference import resume
from tests.inference import checkpoint_models as m
warnings.simplefilter("ignore")
post = resume(sys.argv[1], m.location, y=m.Y)
print(json.dumps({k: post.samples[k].tolist() for k in ("m", "s")}
                 | {k: post.stats[k].tolist() for k in ("lp", "step_size", "n_steps")}))
"""


@pytest.mark.parametrize("backend", [
    "pyro", pytest.param("numpyro", marks=pytest.mark.slow)])  # 37 s: 5 XLA compilations
def test_checkpointed_nuts_resumes_bitwise_in_a_fresh_process(tmp_path: Path,
                                                              backend: str) -> None:
    path = tmp_path / "run.ckpt"
    plain = infer(location, y=Y, backend=backend, **RUN)
    whole = infer(location, y=Y, backend=backend, checkpoint=str(path),
                  checkpoint_every=EVERY[backend], **RUN)
    for k in plain.samples:
        assert np.array_equal(plain.samples[k], whole.samples[k]), k
    for k in plain.stats:
        assert np.array_equal(plain.stats[k], whole.stats[k]), k
    snap = read(chain_path(path, 0))
    assert snap.get("step", snap.get("done")) in (50, 30)  # mid-sampling, not the end
    done = subprocess.run([sys.executable, "-c", RESUME, str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    again = json.loads(done.stdout.strip().splitlines()[-1])
    for k in ("m", "s"):
        assert again[k] == whole.samples[k].tolist(), k  # bitwise
    for k in ("lp", "step_size", "n_steps"):
        assert again[k] == whole.stats[k].tolist(), k
    with pytest.raises(CheckpointError, match=r"another run: data \(saved "):
        resume(str(path), location, y=Y + 1.0)


def test_numpyro_checkpoint_of_other_data_is_refused(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The manifest is written before NumPyro samples, and a resume checks it before."""
    import inference._nuts_numpyro as impl

    def no_sampling(*args: Any) -> None:
        raise RuntimeError("sampling reached")

    monkeypatch.setattr(impl, "run", no_sampling)
    path = tmp_path / "run.ckpt"
    with pytest.raises(RuntimeError, match="sampling reached"):
        infer(location, y=Y, backend="numpyro", checkpoint=str(path), **RUN)
    assert read(path)["config"].backend == "numpyro"
    with pytest.raises(CheckpointError, match=r"another run: data \(saved "):
        resume(str(path), location, y=Y + 1.0)
    with pytest.raises(RuntimeError, match="sampling reached"):  # same data: it goes on
        resume(str(path), location, y=Y)
