"""P1: exact invariants of every program move (TESTING.md, MOVES.md).

On finite program spaces (≤ 302 programs) the full MH transition matrix of each move is built
by running the move's own code down every choice path (inference.mcmc.exact), targeting
π(φ) ∝ π₀(φ) · L(φ) with a random likelihood L. Each move must leave π invariant and satisfy
detailed balance to 1e-12, and every path's reported log q(φ' | φ) must equal the log
probability of the choices it made. Broken twins (a dropped Hastings factor) must fail.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from inference.config import DEFAULT_STRUCTURE_WEIGHTS
from inference.mcmc.exact import proposal_paths, transition_matrix
from inference.mcmc.moves import MOVES, Proposal, insert_delete, regenerate, relabel
from ppl import Grammar, ProgramPrior

TOL = 1e-12

CONFIGS = {
    "depth3": dict(inputs=["x"], max_depth=3),
    "size5": dict(inputs=["x"], max_size=5),
    "depth3-size6": dict(inputs=["x"], max_depth=3, max_size=6),
    "two-inputs-weighted": dict(inputs={"x": 0.7, "y": 0.3}, max_depth=2),
}


def _setup(config: str, seed: int = 1):
    prior = ProgramPrior(Grammar.load("tiny"), **CONFIGS[config])
    enumerated = list(prior.enumerate())
    programs = [p for p, _ in enumerated]
    log_prior = np.array([lp for _, lp in enumerated])
    log_lik = np.random.default_rng(seed).normal(0.0, 2.0, len(programs))
    index = {p: i for i, p in enumerate(programs)}

    def log_target(p):
        return prior.log_density(p) + log_lik[index[p]]

    pi = np.exp(log_prior + log_lik)
    return prior, programs, log_target, pi / pi.sum()


def _errors(t: np.ndarray, pi: np.ndarray) -> tuple[float, float, float]:
    flow = pi[:, None] * t
    return (float(np.abs(t.sum(1) - 1).max()), float(np.abs(pi @ t - pi).max()),
            float(np.abs(flow - flow.T).max()))


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("move", list(MOVES))
def test_move_is_exactly_stationary(move: str, config: str) -> None:
    prior, programs, log_target, pi = _setup(config)
    t = transition_matrix(MOVES[move], prior, programs, log_target)
    rows, invariance, balance = _errors(t, pi)
    assert rows < TOL
    assert invariance < TOL
    assert balance < TOL


@pytest.mark.parametrize("config", ["depth3", "two-inputs-weighted"])
def test_default_mixture_is_exactly_stationary(config: str) -> None:
    prior, programs, log_target, pi = _setup(config, seed=7)
    # the tree moves of the default mix (the library move's matrix: test_library.py)
    weights = {m: w for m, w in DEFAULT_STRUCTURE_WEIGHTS.items() if m in MOVES}
    total = sum(weights.values())
    t = sum(w / total * transition_matrix(MOVES[m], prior, programs, log_target)
            for m, w in weights.items())
    _, invariance, balance = _errors(t, pi)
    assert invariance < TOL and balance < TOL


def test_the_prior_is_the_target_without_likelihood() -> None:
    """With L ≡ 1 every move must leave the conditioned prior itself invariant."""
    prior = ProgramPrior(Grammar.load("tiny"), inputs=["x"], max_depth=3)
    programs, log_prior = zip(*prior.enumerate(), strict=True)
    pi = np.exp(np.array(log_prior))
    for move in MOVES.values():
        t = transition_matrix(move, prior, list(programs), prior.log_density)
        assert np.abs(pi @ t - pi).max() < TOL


def test_regenerate_reaches_every_program() -> None:
    """Regeneration alone is irreducible: T^k has no zero entry for some k."""
    prior, programs, log_target, _ = _setup("size5")
    t = transition_matrix(regenerate, prior, programs, log_target) > 0
    reach = t.copy()
    for _ in range(6):
        reach = reach | ((reach.astype(int) @ t.astype(int)) > 0)
    assert reach.all()


def test_reverse_path_exists_for_every_proposal() -> None:
    """Forward then reverse: every accepted φ -> φ' has a path φ' -> φ of the reported
    reverse density (the round trip reproduces the tree)."""
    prior, programs, _, _ = _setup("depth3")
    for move in MOVES.values():
        for phi in programs[::17]:
            for _, prop in proposal_paths(move, prior, phi):
                if prop is None:
                    continue
                back = [q for _, q in proposal_paths(move, prior, prop.program)
                        if q is not None and q.program == phi]
                assert any(abs(q.log_q_fwd - prop.log_q_rev) < 1e-9 for q in back)


# ---------------------------------------------------------------- broken twins
def _drop_node_count(chooser, prior, phi):
    """Regeneration without its N(φ)/N(φ') factor (MOVES.md: error ≈ 3e-2)."""
    prop = regenerate(chooser, prior, phi)
    if prop is None:
        return None
    return Proposal(prop.program, prop.log_q_fwd,
                    prop.log_q_rev + math.log(prop.program.size) - math.log(phi.size))


def _drop_truncation_mass(chooser, prior, phi):
    """Insert/delete treating the siblings' proposal as unnormalised (Z dropped)."""
    prop = insert_delete(chooser, prior, phi)
    if prop is None:
        return None
    shift = prop.program.size - phi.size
    return Proposal(prop.program, prop.log_q_fwd, prop.log_q_rev + 0.3 * shift)


def _drop_leaf_value(chooser, prior, phi):
    """Relabel ignoring the density of a newly drawn input name."""
    prop = relabel(chooser, prior, phi)
    if prop is None:
        return None
    diff = sum(1 for a, b in zip(phi.values, prop.program.values, strict=True)
               if a != b and isinstance(b, str))
    return Proposal(prop.program, prop.log_q_fwd + diff * math.log(0.3), prop.log_q_rev)


@pytest.mark.parametrize("broken,config", [
    (_drop_node_count, "depth3"),
    (_drop_truncation_mass, "depth3"),
    (_drop_leaf_value, "two-inputs-weighted"),
], ids=["regenerate-no-N-ratio", "insert-delete-no-Z", "relabel-no-value-density"])
def test_broken_twin_is_caught(broken, config: str) -> None:
    prior, programs, log_target, pi = _setup(config)
    t = transition_matrix(broken, prior, programs, log_target, check_density=False)
    _, invariance, balance = _errors(t, pi)
    assert invariance > 1e-4
    assert balance > 1e-4
