"""The uses of a proposal (issue 10, item 4 (a) and (b)), with an UNTRAINED network: no
move's exactness may depend on training (TESTING.md P1, P2, P7).

- the neural independence move of program MCMC leaves the posterior exactly invariant on
  the 302-program grammar (its transition matrix from the move's own acceptance
  probabilities), and dropping the proposal's density from the ratio breaks it;
- MCMC with only that move matches the enumerated posterior;
- ``method="amortized"`` (importance sampling from the proposal mixed with the prior)
  matches enumeration, reports ESS, k̂ and the log evidence, and k̂ flags a bad proposal.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

import ppl
from inference import infer
from inference.amortized import ProposalMismatchError, train_proposal
from inference.amortized.mixture import MixedProposal
from inference.api import RunWarning
from inference.arviz import az
from inference.config import AmortizedOptions, McmcOptions, NutsOptions
from inference.importance import importance_posterior
from inference.mcmc.blocks import program
from inference.mcmc.blocks.base import Context, GibbsState, Workspace
from inference.mcmc.moves import budgets
from inference.target import SiteInfo, Target
from ppl import dist
from ppl.errors import PPLError
from ppl.trace import PROGRAM
from tests.stats.discrete import empirical, gtest_pvalue, tv_distance, tv_null_quantile

PRIOR = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=3)
PROGRAMS = [p for p, _ in PRIOR.enumerate()]
X = np.linspace(-1.0, 1.0, 6)
Y = X + np.sin(X) + 0.8 * np.random.default_rng(3).standard_normal(6)


def model(x, y=None):
    f = ppl.sample("f", PRIOR)
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), 0.8), obs=y)


@pytest.fixture(scope="module")
def untrained():
    return train_proposal(model, X, y=Y, num_steps=0, hidden=8, seed=0, progress=False)


@pytest.fixture(scope="module")
def exact():
    post = infer(model, X, y=Y, method="enumerate", num_samples=10, num_chains=1)
    table = post.exact["f"]
    return dict(zip(table["program"], table["probability"], strict=True))


# ---------------------------------------------------------------------------- P1
class TableTarget:
    """log p(φ, data) from a table (prior × a random likelihood)."""

    def __init__(self, table: dict[Any, float]) -> None:
        self.table = table

    def log_joint(self, values: dict[str, Any]) -> float:
        return self.table[values["f"]]


class Forced:
    """A MixedProposal whose next draw is set by the test (densities from a table)."""

    def __init__(self, log_q: dict[Any, float]) -> None:
        self.log_q, self.next = log_q, None

    def sample(self, rng: np.random.Generator) -> tuple[Any, float]:
        return self.next, self.log_q[self.next]

    def log_prob(self, phi: Any) -> float:
        return self.log_q[phi]


def transition_matrix(move: Any, untrained: Any, log_target: dict[Any, float],
                      log_q: dict[Any, float]) -> np.ndarray:
    """P[i, j] = q_mix(φ_j) α(φ_i, φ_j) for j ≠ i, with α read from the move itself."""
    forced = Forced(log_q)
    ws = Workspace(0)
    ws.proposals["f"] = forced
    ctx = Context(TableTarget(log_target), McmcOptions(), NutsOptions(), ws,
                  amortized=AmortizedOptions(proposal=untrained))
    site = SiteInfo("f", PROGRAM, PRIOR, ())
    rng = np.random.default_rng(0)
    n = len(PROGRAMS)
    p = np.zeros((n, n))
    for i, phi in enumerate(PROGRAMS):
        state = GibbsState({"f": phi}, log_target[phi], {}, 0)
        for j, psi in enumerate(PROGRAMS):
            if j != i:
                forced.next = psi
                _, info = move(rng, ctx, state, site, None)
                p[i, j] = math.exp(log_q[psi]) * info.alpha
        p[i, i] = 1.0 - p[i].sum()
    return p


def _without_hastings(rng, ctx, state, site, view):
    """The neural move with log q(φ) − log q(φ') left out of the ratio (a wrong kernel)."""
    mixed = ctx.workspace.proposals[site.name]
    phi2, _ = mixed.sample(rng)
    return program.accept(rng, ctx.target, state, site.name, phi2, 0.0)


def test_neural_move_is_exactly_stationary(untrained) -> None:
    rng = np.random.default_rng(7)
    mixed = MixedProposal(untrained, X[:, None], Y, prior_weight=0.3)
    log_q = {phi: mixed.log_prob(phi) for phi in PROGRAMS}
    assert math.isclose(sum(math.exp(v) for v in log_q.values()), 1.0, abs_tol=1e-9)
    log_target = {phi: PRIOR.log_density(phi) + 3.0 * rng.standard_normal()
                  for phi in PROGRAMS}
    pi = np.exp(np.array([log_target[phi] for phi in PROGRAMS]))
    pi /= pi.sum()
    p = transition_matrix(program.neural, untrained, log_target, log_q)
    assert np.all(p >= -1e-15)
    assert np.abs(pi @ p - pi).max() < 1e-12
    broken = transition_matrix(_without_hastings, untrained, log_target, log_q)
    assert np.abs(pi @ broken - pi).max() > 1e-4


# ---------------------------------------------------------------------------- P2
def _check(post: Any, exact: dict[Any, float]) -> tuple[float, float, float]:
    """G-test p-value (ESS-scaled for a chain), TV and its null quantile at that ESS."""
    draws = post.samples["f"]
    counts: dict[Any, int] = {}
    for p in draws.reshape(-1):
        counts[p] = counts.get(p, 0) + 1
    n = draws.size
    if post.method == "mcmc":
        top = max(exact, key=exact.get)
        sizes = np.vectorize(lambda p: p.size)(draws).astype(float)
        indicator = np.vectorize(lambda p: p == top)(draws).astype(float)
        n = int(min(az.ess(sizes), az.ess(indicator), n))
    p_value = gtest_pvalue(counts, exact, top_k=25, ess=n)
    tv = tv_distance(empirical(counts), exact)
    null = tv_null_quantile(exact, n, q=0.99, rng=np.random.default_rng(0))
    return p_value, tv, null


def test_mcmc_with_only_the_neural_move_matches_enumeration(untrained, exact) -> None:
    post = infer(model, X, y=Y, method="mcmc", num_samples=1500, num_warmup=100,
                 num_chains=2, seed=1, chain_method="sequential", progress=False,
                 program_moves=3, proposal=untrained, prior_weight=0.3,
                 structure_weights={"neural": 1.0})
    p_value, _, _ = _check(post, exact)
    assert p_value > 0.001


def test_neural_mcmc_without_the_hastings_term_fails(untrained, exact,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Broken twin: q_mix's densities left out of the ratio (the chain then targets
    p(φ | y) · q(φ), too much prior)."""
    monkeypatch.setattr(MixedProposal, "log_prob", lambda self, phi: 0.0)
    post = infer(model, X, y=Y, method="mcmc", num_samples=1500, num_warmup=100,
                 num_chains=2, seed=1, chain_method="sequential", progress=False,
                 program_moves=3, proposal=untrained, prior_weight=0.3,
                 structure_weights={"neural": 1.0})
    p_value, _, _ = _check(post, exact)
    assert p_value < 0.001


def test_the_neural_move_joins_the_default_moves(untrained) -> None:
    post = infer(model, X, y=Y, method="mcmc", num_samples=20, num_warmup=5, num_chains=1,
                 seed=0, progress=False, proposal=untrained, neural_weight=1.0)
    moves = set(post.stats["move"].reshape(-1))
    assert "neural" in moves and moves <= set(program.STRUCTURE_MOVES)


# ---------------------------------------------------------------------------- (a), P7
def test_amortized_importance_matches_enumeration(untrained, exact) -> None:
    post = infer(model, X, y=Y, method="amortized", proposal=untrained, prior_weight=0.3,
                 num_particles=4000, num_samples=1000, num_chains=2, seed=2)
    assert post.method == "amortized"
    assert {"ess", "khat", "log_evidence", "num_particles", "seconds"} <= set(post.attrs)
    assert post.attrs["num_particles"] == 4000
    _, tv, _ = _check(post, exact)
    # draws resampled from a weighted sample: the two errors add, as for iid draws of
    # 1 / (1/ESS + 1/draws) (weighting, then multinomial resampling)
    n_eff = int(1.0 / (1.0 / post.attrs["ess"] + 1.0 / post.samples["f"].size))
    null = tv_null_quantile(exact, n_eff, q=0.999, rng=np.random.default_rng(1))
    assert tv < null
    enum = infer(model, X, y=Y, method="enumerate", num_samples=10, num_chains=1)
    assert abs(post.attrs["log_evidence"] - enum.attrs["log_evidence"]) < 0.1
    idata = post.to_arviz()
    assert "f" in idata.posterior


def test_fast_weights_equal_the_traced_ones(untrained, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    """The incremental scoring of particles gives the weights the Pyro traces give."""
    from inference import importance

    def run():
        mixed = MixedProposal(untrained, X[:, None], Y, prior_weight=0.3)
        return importance_posterior(Target(model, (X,), {"y": Y}), 300, 50, 1,
                                    np.random.default_rng(4), 0, {"f": mixed})

    fast = run()
    monkeypatch.setattr(importance, "_fast", lambda target, drawn: None)
    slow = run()
    assert fast["fast"] and not slow["fast"]
    np.testing.assert_allclose(fast["stats"]["log_weight"], slow["stats"]["log_weight"],
                               rtol=1e-9)
    assert fast["log_evidence"] == pytest.approx(slow["log_evidence"], rel=1e-9)
    np.testing.assert_allclose(fast["log_lik"]["y"], slow["log_lik"]["y"], rtol=1e-9)


class Peaked:
    """A deliberately bad proposal: almost all mass on one program that is not the law."""

    def __init__(self) -> None:
        self.phi = PRIOR.parse("1")

    def sample(self, rng: np.random.Generator) -> tuple[Any, float]:
        phi = self.phi if rng.random() < 0.999 else PRIOR.sample_program(rng)
        return phi, self.log_prob(phi)

    def log_prob(self, phi: Any) -> float:
        rest = 0.001 * math.exp(PRIOR.log_density(phi))
        return math.log((0.999 if phi == self.phi else 0.0) + rest)


def test_khat_flags_a_bad_proposal() -> None:
    target = Target(model, (X,), {"y": Y})
    out = importance_posterior(target, 2000, 100, 1, np.random.default_rng(0), 0,
                               {"f": Peaked()})
    assert out["khat"] > 0.7


def test_amortized_refuses_what_it_cannot_run(untrained) -> None:
    with pytest.raises(PPLError, match="needs proposal="):
        infer(model, X, y=Y, method="amortized")
    with pytest.raises(PPLError, match="prior_weight must be in"):
        infer(model, X, y=Y, method="amortized", proposal=untrained, prior_weight=0.01)
    with pytest.raises(PPLError, match="proposal must be"):
        infer(model, X, y=Y, method="amortized", proposal="net.pt")
    with pytest.raises(PPLError, match="proposal= is used by"):
        infer(model, X, y=Y, method="enumerate", proposal=untrained)


@pytest.mark.parametrize("method", ["mcmc", "amortized"])
def test_a_proposal_for_another_prior_is_refused(untrained, method: str) -> None:
    """Every method that uses a proposal checks it against the site's prior."""
    deeper = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=4)
    renamed = ppl.ProgramPrior("tiny", inputs=["t"], max_depth=3)

    def other(x, y=None, prior=deeper):
        f = ppl.sample("f", prior)
        with ppl.plate("data", len(x)):
            ppl.sample("y", dist.Normal(f(x), 0.8), obs=y)

    for prior, part in ((deeper, "limits"), (renamed, "inputs")):
        with pytest.raises(ProposalMismatchError, match=f"another prior: {part}"):
            infer(other, X, y=Y, prior=prior, method=method, proposal=untrained,
                  num_samples=10, num_warmup=5, num_chains=1, progress=False)


def test_an_untrained_proposal_warns_when_its_weights_degenerate(untrained) -> None:
    sharp = np.sin(X) * 3 + X  # a law outside the depth-3 space: weights degenerate
    with pytest.warns(RunWarning):
        infer(model, X, y=sharp * 10, method="amortized", proposal=untrained,
              num_particles=200, num_samples=50, num_chains=1)


# ---------------------------------------------------------------------------- (c) edits
class Script:
    """A stand-in Generator whose draws the test sets: a node index, then uniforms."""

    def __init__(self, node: int) -> None:
        self.node, self.uniforms = node, [0.99, 0.5]  # the network's branch, then accept

    def integers(self, n: int) -> int:
        return self.node

    def random(self) -> float:
        return self.uniforms.pop(0)


def edit_matrix(move: Any, untrained: Any, log_target: dict[Any, float], w: float,
                monkeypatch: pytest.MonkeyPatch,
                context_of: Any = program.edit_context) -> np.ndarray:
    """P[i, j] = Σ_v Σ_T' (1/N) q_e(T') α(φ_i → φ_j) with α read from the move itself
    (``context_of(mixed, φ, v)``: the decoder's context and position at node v)."""
    from inference.mcmc.exact import structures

    mixed = MixedProposal(untrained, X[:, None], Y, prior_weight=w)
    net = untrained.network
    forced: list[Any] = [None]
    monkeypatch.setattr(type(net), "sample_subtree",
                        lambda self, rng, ctx, a, b, s, parent=None: (*forced[0], 0.0))
    ws = Workspace(0)
    ws.proposals["f"] = mixed
    ctx = Context(TableTarget(log_target), McmcOptions(), NutsOptions(), ws,
                  amortized=AmortizedOptions(proposal=untrained, prior_weight=w))
    site = SiteInfo("f", PROGRAM, PRIOR, ())
    index = {phi: i for i, phi in enumerate(PROGRAMS)}
    p = np.zeros((len(PROGRAMS), len(PROGRAMS)))
    for i, phi in enumerate(PROGRAMS):
        state = GibbsState({"f": phi}, log_target[phi], {}, 0)
        for v in range(phi.size):
            a = PRIOR.grammar.productions[phi.prods[v]].lhs
            b, s = budgets(PRIOR, phi, v)
            data, slot = context_of(mixed, phi, v)
            log_mass = PRIOR.tables.log_mass(a, b, s)
            for prods, values in structures(PRIOR, a, b, s):
                q_e = (1 - w) * math.exp(net.subtree_log_prob(data, prods, values,
                                                              a, b, s, slot)) \
                    + w * math.exp(PRIOR.subtree_log_prob(prods, values) - log_mass)
                forced[0] = (prods, values)
                _, info = move(Script(v), ctx, state, site, None)
                phi2 = phi.replace(v, prods, values)
                j = index[phi2]
                if j != i:
                    p[i, j] += q_e * info.alpha / phi.size
        p[i, i] = 1.0 - p[i].sum()
    return p


def test_neural_edit_move_is_exactly_stationary(untrained, monkeypatch) -> None:
    rng = np.random.default_rng(8)
    log_target = {phi: PRIOR.log_density(phi) + 3.0 * rng.standard_normal()
                  for phi in PROGRAMS}
    pi = np.exp(np.array([log_target[phi] for phi in PROGRAMS]))
    pi /= pi.sum()
    p = edit_matrix(program.neural_edit, untrained, log_target, 0.3, monkeypatch)
    assert np.all(p >= -1e-12)
    assert np.abs(pi @ p - pi).max() < 1e-12


@pytest.fixture(scope="module")
def scrambled():
    """A network with random output weights: q differs from the prior and depends on the
    data it is given, so the edit's context (the node's targets) matters."""
    q = train_proposal(model, X, y=Y, num_steps=0, hidden=8, seed=1, progress=False)
    gen = torch.Generator().manual_seed(4)
    with torch.no_grad():
        out = q.network.out
        out.weight.copy_(0.8 * torch.randn(out.weight.shape, generator=gen,
                                           dtype=torch.float64))
    return q


def test_edit_contexts_differ_by_node(scrambled) -> None:
    """The decoder sees the rest of the program: two nodes' targets give different q."""
    mixed = MixedProposal(scrambled, X[:, None], Y, prior_weight=0.3)
    phi = PRIOR.parse("(x + sin(x))")
    (c1, slot1), (c2, slot2) = (program.edit_context(mixed, phi, v) for v in (1, 2))
    assert slot1 is None and slot2 is None
    t = PRIOR.parse("x")
    net = scrambled.network
    a = PRIOR.grammar.productions[t.prods[0]].lhs
    assert abs(net.subtree_log_prob(c1, t.prods, t.values, a, 2, None)
               - net.subtree_log_prob(c2, t.prods, t.values, a, 2, None)) > 1e-6


def test_residual_edit_move_is_exactly_stationary(scrambled, monkeypatch) -> None:
    """P1 with a network whose output depends on its context: the targets' context sees
    only the rest of the program, so the transition matrix leaves π invariant."""
    rng = np.random.default_rng(9)
    log_target = {phi: PRIOR.log_density(phi) + 3.0 * rng.standard_normal()
                  for phi in PROGRAMS}
    pi = np.exp(np.array([log_target[phi] for phi in PROGRAMS]))
    pi /= pi.sum()
    p = edit_matrix(program.neural_edit, scrambled, log_target, 0.3, monkeypatch)
    assert np.all(p >= -1e-12)
    assert np.abs(pi @ p - pi).max() < 1e-12


def test_an_edit_context_that_sees_the_subtree_breaks_stationarity(scrambled, monkeypatch
                                                                   ) -> None:
    """Broken twin: a context built from the subtree being replaced (its own outputs)
    differs between the move and its reverse, and π is no longer invariant."""
    seen: dict[Any, Any] = {}

    def peeking(mixed, phi, v):
        end = int(phi.ends()[v])
        key = (phi.prods[v:end], phi.values[v:end])
        if key not in seen:
            sub = ppl.Program(PRIOR.grammar, *key, PRIOR.inputs)
            out = np.broadcast_to(np.asarray(sub(X), dtype=float), X.shape)
            seen[key] = mixed.proposal.context(X[:, None], out)
        return seen[key], None

    monkeypatch.setattr(program, "edit_context", peeking)
    rng = np.random.default_rng(9)
    log_target = {phi: PRIOR.log_density(phi) + 3.0 * rng.standard_normal()
                  for phi in PROGRAMS}
    pi = np.exp(np.array([log_target[phi] for phi in PROGRAMS]))
    pi /= pi.sum()
    p = edit_matrix(program.neural_edit, scrambled, log_target, 0.3, monkeypatch,
                    context_of=program.edit_context)
    assert np.abs(pi @ p - pi).max() > 1e-8   # the exact move's is < 1e-12


def test_mcmc_with_only_the_edit_move_matches_enumeration(untrained, exact) -> None:
    post = infer(model, X, y=Y, method="mcmc", num_samples=1500, num_warmup=100,
                 num_chains=2, seed=3, chain_method="sequential", progress=False,
                 program_moves=3, proposal=untrained, prior_weight=0.3,
                 structure_weights={"neural_edit": 1.0})
    p_value, _, _ = _check(post, exact)
    assert p_value > 0.001


def test_edit_mcmc_without_the_node_ratio_fails(untrained, exact,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Broken twin: the proposal densities and N(φ)/N(φ') left out of the edit's ratio."""
    def wrong(rng, ctx, state, site, view):
        mixed = program.conditioned_proposal(ctx, site)
        phi = state.values[site.name]
        v = int(rng.integers(phi.size))
        a = PRIOR.grammar.productions[phi.prods[v]].lhs
        b, s = budgets(PRIOR, phi, v)
        rng.random()
        prods, values, _ = mixed.proposal.network.sample_subtree(
            rng, mixed.context, a, b, s, program.parent_slot(phi, v))
        return program.accept(rng, ctx.target, state, site.name,
                              phi.replace(v, prods, values), 0.0)

    monkeypatch.setitem(program.STRUCTURE_MOVES, "neural_edit", wrong)
    post = infer(model, X, y=Y, method="mcmc", num_samples=1500, num_warmup=100,
                 num_chains=2, seed=3, chain_method="sequential", progress=False,
                 program_moves=3, proposal=untrained, prior_weight=0.3,
                 structure_weights={"neural_edit": 1.0})
    p_value, _, _ = _check(post, exact)
    assert p_value < 0.001


def test_trained_neural_moves_match_enumeration(exact) -> None:
    """A trained network (not the prior any more) in both neural moves: still exact."""
    trained = train_proposal(model, X, y=Y, num_steps=60, batch_size=32, hidden=16, seed=0,
                             progress=False)
    ctx = trained.context(X[:, None], Y)
    phi = PRIOR.parse("(x + sin(x))")
    assert abs(trained.log_prob(phi, ctx) - PRIOR.log_density(phi)) > 1e-3  # q ≠ prior now
    post = infer(model, X, y=Y, method="mcmc", num_samples=1500, num_warmup=100,
                 num_chains=2, seed=5, chain_method="sequential", progress=False,
                 program_moves=3, proposal=trained,
                 structure_weights={"neural": 0.5, "neural_edit": 0.5})
    p_value, _, _ = _check(post, exact)
    assert p_value > 0.001
