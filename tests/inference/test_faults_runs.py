"""Bad inputs and faults, "Data and runs" (TESTING.md), the rows ``test_faults.py`` and
``test_checkpoint.py`` leave out (``docs/validation.md`` has the whole map):

- resuming with a changed grammar (the program prior's weights) is refused naming the
  program site's prior, unless forced;
- a non-finite potential at NUTS init: retried, then an :class:`InitializationError`
  naming the sites (Pyro's ``ValueError`` and NumPyro's ``RuntimeError`` are turned into
  it).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

import ppl
from inference import infer, resume
from inference.checkpoint import CheckpointError
from ppl import dist
from ppl.errors import InitializationError
from tests.inference import checkpoint_models as models

RUN: dict[str, Any] = {"num_samples": 20, "num_warmup": 10, "num_chains": 1, "seed": 7,
                       "chain_method": "sequential", "progress": False,
                       "checkpoint_every": 10}


def test_resume_with_a_changed_grammar_is_refused(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "run.ckpt")
    infer(models.regression, models.X, y=models.Y, **RUN)  # warm the caches
    infer(models.regression, models.X, y=models.Y, checkpoint=path, **RUN)
    heavier = ppl.ProgramPrior(ppl.Grammar.load("arith", weights={"sin": 3.0}),
                               inputs=["x"], max_depth=4)
    monkeypatch.setattr(models, "PRIOR", heavier)  # same model text, another grammar
    with pytest.raises(CheckpointError, match=r"another run: .*program"):
        resume(path, models.regression, models.X, y=models.Y, progress=False)
    post = resume(path, models.regression, models.X, y=models.Y, progress=False, force=True)
    assert post.num_draws == 20


def never(x: Any = None) -> None:
    """A continuous site whose every value has log density −inf."""
    s = ppl.sample("s", dist.Normal(0.0, 1.0))
    ppl.factor("never", 0.0 * s - math.inf)


@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
def test_nuts_init_with_no_finite_potential_names_the_sites(backend: str) -> None:
    with pytest.raises(InitializationError, match=r"sites \['s'\]"):
        infer(never, method="nuts", backend=backend, num_samples=10, num_warmup=10,
              num_chains=1, progress=False)
