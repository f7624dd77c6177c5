"""P9 mutation tests: each mutation of TESTING.md, applied to the library in a fresh pytest
process, must make at least one of its catching tests fail.

A mutation is a function that patches module attributes (the library code is not edited);
``python -m pytest -p tests.validate.mutations`` with ``PPL_MUTATION=<name>`` in the
environment applies it when pytest starts, before any test module is imported, so the
tests see the mutant wherever they look the patched names up. :func:`catches` runs one
test node so, and says whether it failed; :data:`CATCHERS` is the mutation → test map that
``docs/validation.md`` reproduces.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.distributions import biject_to

REPO = Path(__file__).resolve().parents[2]
ENV = "PPL_MUTATION"


def drop_hastings() -> None:
    """Regeneration's acceptance ratio without log q(φ | φ') − log q(φ' | φ)."""
    from inference.mcmc import moves

    real = moves.regenerate

    def mutant(chooser: Any, prior: Any, phi: Any, structural: bool = False) -> Any:
        prop = real(chooser, prior, phi, structural)
        return None if prop is None else moves.Proposal(prop.program, prop.log_q_fwd,
                                                        prop.log_q_fwd)

    moves.regenerate = mutant  # type: ignore[assignment]
    moves.MOVES["regenerate"] = mutant


def node_count_off_by_one() -> None:
    """Regeneration picks its node with probability 1/(N + 1) in both densities."""
    from inference.mcmc import moves

    real = moves.regenerate

    def mutant(chooser: Any, prior: Any, phi: Any, structural: bool = False) -> Any:
        prop = real(chooser, prior, phi, structural)
        if prop is None:
            return None
        n, n2 = phi.size, prop.program.size
        return moves.Proposal(prop.program,
                              prop.log_q_fwd + math.log(n) - math.log(n + 1),
                              prop.log_q_rev + math.log(n2) - math.log(n2 + 1))

    moves.regenerate = mutant  # type: ignore[assignment]
    moves.MOVES["regenerate"] = mutant


def wrong_jacobian() -> None:
    """The RW block's log-Jacobian dropped for sites on (0, ∞) (e.g. a noise scale)."""
    from inference.mcmc.blocks import base, continuous

    real = continuous.random_walk

    def mutant(rng: Any, ctx: Any, state: Any, site: Any, adapting: bool) -> Any:
        support = site.fn.support
        if getattr(support, "lower_bound", None) != 0.0 or hasattr(support, "upper_bound"):
            return real(rng, ctx, state, site, adapting)  # only sites on (0, ∞) / [0, ∞)
        t = biject_to(support)
        u = t.inv(state.values[site.name])
        u2 = u + state.step_size[site.name] * torch.as_tensor(
            rng.standard_normal(tuple(u.shape)), dtype=u.dtype)
        new, info = base.accept(rng, ctx.target, state, site.name, t(u2), 0.0)
        return new, info

    continuous.random_walk = mutant  # type: ignore[assignment]


def shared_stream() -> None:
    """Every chain gets chain 0's random stream."""
    from inference import api
    from inference.mcmc import driver

    real = driver.make_specs

    def mutant(*args: Any, **kwargs: Any) -> Any:
        specs = real(*args, **kwargs)
        return [s._replace(seed=specs[0].seed) for s in specs]

    driver.make_specs = mutant  # type: ignore[assignment]
    api.make_specs = mutant  # type: ignore[attr-defined]


MUTATIONS: dict[str, Callable[[], None]] = {
    "drop-hastings": drop_hastings,
    "node-count-off-by-one": node_count_off_by_one,
    "wrong-jacobian-positive": wrong_jacobian,
    "shared-rng-stream": shared_stream,
}

CATCHERS: dict[str, list[str]] = {
    "drop-hastings": [
        "tests/inference/mcmc/test_moves_exact.py::test_move_is_exactly_stationary"
        "[regenerate-depth3]",
        "tests/inference/mcmc/test_posterior_enumeration.py::test_mcmc_matches_enumeration"
        "[regenerate]",
    ],
    "node-count-off-by-one": [
        "tests/inference/mcmc/test_moves_exact.py::test_move_is_exactly_stationary"
        "[regenerate-depth3]",
        "tests/inference/mcmc/test_moves_exact.py::test_move_is_exactly_stationary"
        "[regenerate-size5]",
    ],
    "wrong-jacobian-positive": [
        "tests/validate/test_geweke.py::test_geweke_small[rw]",
    ],
    "shared-rng-stream": [
        "tests/inference/test_reproducibility.py::test_chains_use_distinct_streams",
    ],
}
"""Mutation -> the tests that must catch it (at least one failing)."""


def catches(mutation: str | None, node: str, timeout: float = 900.0) -> bool:
    """Whether test ``node`` fails with ``mutation`` applied (None: unmutated)."""
    env = dict(os.environ)
    env.pop(ENV, None)
    if mutation is not None:
        env[ENV] = mutation
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "tests.validate.mutations",
           node]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"pytest could not run {node} under {mutation}: exit "
                           f"{done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done.returncode == 1


def pytest_configure(config: Any) -> None:
    """Apply ``$PPL_MUTATION`` (a pytest plugin hook: ``-p tests.validate.mutations``)."""
    name = os.environ.get(ENV)
    if name:
        MUTATIONS[name]()
