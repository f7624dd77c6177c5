"""Bad inputs and faults, "Programs" (TESTING.md), the rows not covered elsewhere
(``docs/validation.md`` has the whole fault → test map):

- invalid programs during a run: log-likelihood −inf, counted in ``stats["n_invalid"]``,
  never accepted, and the run continues to its last draw;
- NaN gradients through masked branches: the amortized network's training density
  (``batch_log_prob``) masks constant and input terms of nodes that have none; its
  gradients are finite because the inputs are sanitized before the op (its broken twin
  puts a NaN in the untaken branch, as ``torch.where`` after the op would see it).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

import ppl
from inference import infer
from inference.amortized import ProgramProposal
from ppl import dist

X = np.array([-1.0, 0.0, 0.5, 1.0])
ARITH = ppl.ProgramPrior("arith", inputs=["x"], max_depth=3)


def arith_model(x: Any, y: Any = None) -> None:
    f = ppl.sample("f", ARITH)
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), 0.5), obs=y)


def test_invalid_programs_are_counted_and_the_run_continues() -> None:
    """x = 0 and x = −1 make log x, x/x, 1/x ... invalid: many proposals are."""
    post = infer(arith_model, X, y=np.array([0.1, 0.3, -0.2, 0.4]), num_samples=100,
                 num_warmup=20, num_chains=1, seed=0, chain_method="sequential",
                 progress=False, program_moves=5)
    assert post.num_draws == 100
    assert post.stats["n_invalid"].sum() > 0
    assert np.all(np.isfinite(post.stats["lp"]))
    assert all(np.all(np.isfinite(np.broadcast_to(p(X), X.shape)))
               for p in post.samples["f"].reshape(-1))


# -------------------------------------------------------------------- masked branches
PRIOR = ppl.ProgramPrior("arith", inputs=["x", "z"], max_depth=3)
XZ = np.c_[np.linspace(-1, 1, 6), np.linspace(0, 2, 6)]


def gradients(q: ProgramProposal) -> list[torch.Tensor]:
    rng = np.random.default_rng(0)
    data = np.c_[XZ, np.sin(XZ[:, 0])]
    ctx = q.context(data[:, :2], data[:, 2])
    programs = [q.sample(rng, ctx)[0] for _ in range(40)]
    programs += [PRIOR.parse("(x + 1.5)"), PRIOR.parse("sin(z)"), PRIOR.parse("0.25")]
    q.zero_grad()
    q.batch_log_prob([data] * len(programs), programs).sum().backward()
    return [p.grad for p in q.parameters() if p.grad is not None]


def test_gradients_through_masked_branches_are_finite() -> None:
    grads = gradients(ProgramProposal(PRIOR, hidden=8, seed=0))
    assert grads and all(bool(torch.isfinite(g).all()) for g in grads)


def test_broken_twin_nan_in_the_untaken_branch_poisons_the_gradient() -> None:
    q = ProgramProposal(PRIOR, hidden=8, seed=0)
    q.constants.fill = math.nan  # a non-constant node's placeholder, not sanitized
    grads = gradients(q)
    assert any(not bool(torch.isfinite(g).all()) for g in grads)
