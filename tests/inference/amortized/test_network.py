"""Tests of inference/amortized/network.py and support.py: q_θ(φ | x, y) is a proposal.

(i) every decoded program (10,000 per network, untrained and briefly trained) is a valid
Program within the prior's limits with positive prior density, and teacher forcing gives
the sampler's log q to 1e-9; (ii) on the tiny grammar, Σ_φ q(φ) over the prior's whole
support is 1 to 1e-9 (untrained, perturbed, with a size limit), and the broken twin (masks
that ignore the size budget) leaks mass outside it; the masks agree with the prior's
truncation tables; subtrees decode within their budgets with the same exactness.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

import ppl
from inference.amortized import ProgramProposal, SupportLimitError, train_proposal
from inference.amortized.network import points_of
from inference.amortized.support import Support
from ppl import dist
from ppl.errors import DataError, PriorError, ProgramError

X = np.linspace(-1.5, 1.5, 8)
TINY = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=3)
ARITH = ppl.ProgramPrior("arith", inputs=["x", "z"], max_depth=4, max_size=9)


def tiny_model(x: Any, y: Any = None) -> None:
    f = ppl.sample("f", TINY)
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), 0.1), obs=y)


def arith_model(x: Any, z: Any, y: Any = None) -> None:
    f = ppl.sample("f", ARITH)
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x, z), 0.2), obs=y)


def perturbed(q: ProgramProposal, seed: int, scale: float = 0.5) -> ProgramProposal:
    """The network with every weight moved at random (non-trivial logits everywhere)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in q.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return q


def trained(name: str) -> ProgramProposal:
    if name == "tiny":
        return train_proposal(tiny_model, X, y=np.zeros(8), num_steps=15, batch_size=16,
                              lr=0.02, valid_size=16, hidden=16, seed=3,
                              progress=False).network
    return train_proposal(arith_model, X, X**2, y=np.zeros(8), num_steps=15, batch_size=16,
                          lr=0.02, valid_size=16, hidden=16, seed=3, progress=False).network


XZ = np.c_[X, X**2]
CASES = {
    "tiny-untrained": lambda: (ProgramProposal(TINY, hidden=16, seed=0), X, np.sin(X)),
    "tiny-trained": lambda: (trained("tiny"), X, np.sin(X)),
    "arith-untrained": lambda: (ProgramProposal(ARITH, hidden=16, seed=0), XZ, X * 2.5),
    "arith-trained": lambda: (trained("arith"), XZ, X * 2.5),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_decoded_programs_are_valid_and_exact(case: str) -> None:
    """(i): 10,000 draws, each a valid program of the prior with log q by teacher forcing."""
    q, x, y = CASES[case]()
    prior = q.prior
    ctx = q.context(x, y)
    rng = np.random.default_rng(7)
    worst, constants = 0.0, 0
    for _ in range(10_000):
        phi, log_q = q.sample(rng, ctx)
        checked = ppl.Program(prior.grammar, phi.prods, phi.values, phi.inputs)
        assert checked.inputs == prior.inputs
        assert checked.depth <= prior.max_depth
        assert prior.max_size is None or checked.size <= prior.max_size
        assert prior.log_density(checked) > -math.inf
        assert math.isfinite(log_q)
        worst = max(worst, abs(q.log_prob(checked, ctx) - log_q))
        constants += len(checked.constants)
    assert worst < 1e-9
    if case.startswith("arith"):
        assert constants > 1000  # the constant head was exercised


def test_untrained_network_is_the_prior_under_a_depth_limit() -> None:
    """Zero residual: q's choices are the prior's exact sampler's, so log q = log π₀."""
    q = ProgramProposal(TINY, hidden=16, seed=1)
    ctx = q.context(X, np.cos(X))
    gaps = [abs(q.log_prob(phi, ctx) - lp) for phi, lp in TINY.enumerate()]
    assert len(gaps) == 302 and max(gaps) < 1e-12


@pytest.mark.parametrize(("limits", "count"), [({"max_depth": 3}, 302),
                                               ({"max_depth": 3, "max_size": 5}, 110),
                                               ({"max_size": 4}, None)],
                         ids=["depth", "depth-size", "size"])
@pytest.mark.parametrize("scale", [0.0, 0.5], ids=["untrained", "perturbed"])
def test_proposal_is_normalised_over_the_support(limits: dict[str, int], count: int | None,
                                                 scale: float) -> None:
    """(ii): Σ_φ exp(log q(φ)) over prior.enumerate() is 1 to 1e-9."""
    prior = ppl.ProgramPrior("tiny", inputs=["x"], **limits)
    q = perturbed(ProgramProposal(prior, hidden=16, seed=2), seed=5, scale=scale)
    ctx = q.context(X, X**2)
    programs = [phi for phi, _ in prior.enumerate()]
    assert count is None or len(programs) == count
    total = math.fsum(math.exp(q.log_prob(phi, ctx)) for phi in programs)
    assert abs(total - 1.0) < 1e-9


def test_broken_twin_masks_without_the_size_budget_leak_mass() -> None:
    """Masks that only follow depth put mass on programs beyond max_size: the sum drops."""
    prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=3, max_size=5)
    q = perturbed(ProgramProposal(prior, hidden=16, seed=2), seed=5)
    honest = q.support.allowed
    q.support.allowed = lambda a, b, slack: honest(a, b, math.inf)  # type: ignore[method-assign]
    ctx = q.context(X, X**2)
    total = math.fsum(math.exp(q.log_prob(phi, ctx)) for phi, _ in prior.enumerate())
    assert total < 1.0 - 1e-3


@pytest.mark.parametrize("limits", [{"max_depth": 4}, {"max_depth": 4, "max_size": 7},
                                    {"max_size": 6}], ids=["depth", "depth-size", "size"])
def test_masks_agree_with_the_prior_tables(limits: dict[str, int]) -> None:
    """A derivation fits budget b exactly when the prior's truncation mass is positive, and
    the decoder's prior bias is finite exactly where the masks allow a choice."""
    prior = ppl.ProgramPrior("arith", inputs=["x"], **limits)
    sup = Support(prior)
    cap = sup.size_cap
    for a in range(sup.num_nonterminals):
        for b in range(sup.top + 1):
            assert sup.fits(a, b, cap) == (prior.tables.log_mass(a, b) > -math.inf)
            for pos in range(sup.num_positions):
                if sup.position_nonterminal[pos] != a:
                    continue
                allowed = sup.allowed(a, b, cap)
                finite = np.isfinite(sup.bias[sup.row(pos, b)])
                assert set(allowed) <= set(np.flatnonzero(finite))


def test_subtrees_decode_within_their_budgets() -> None:
    """sample_subtree / subtree_log_prob: budgets kept, log q exact, normalised."""
    prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=4, max_size=9)
    q = perturbed(ProgramProposal(prior, hidden=16, seed=4), seed=6)
    ctx = q.context(X, np.sin(X))
    rng = np.random.default_rng(1)
    a = prior.grammar.start
    add = next(p.id for p in prior.grammar.productions if p.alias == "add")
    for parent in (None, (add, 1)):
        for _ in range(500):
            prods, values, log_q = q.sample_subtree(rng, ctx, a, 2, 3, parent=parent)
            tree = ppl.Program(prior.grammar, prods, values, prior.inputs)
            assert tree.depth <= 2 and tree.size <= 3
            assert abs(q.subtree_log_prob(ctx, prods, values, a, 2, 3, parent=parent)
                       - log_q) < 1e-12
        total = math.fsum(math.exp(q.subtree_log_prob(ctx, t[0], t[1], a, 2, 3, parent=parent))
                          for t in prior.tables.enumerate({"x": 0.0}, a, 2, 3))
        assert abs(total - 1.0) < 1e-9
    big = prior.parse("sin(sin(x))")
    assert q.subtree_log_prob(ctx, big.prods, big.values, a, 2, None) == -math.inf
    with pytest.raises(PriorError, match="No derivation"):
        q.sample_subtree(rng, ctx, a, 0, None)
    with pytest.raises(ProgramError, match="not a child slot"):
        q.sample_subtree(rng, ctx, a, 2, None, parent=(add, 2))
    with pytest.raises(ProgramError, match="ends before"):
        q.subtree_log_prob(ctx, (add,), (None,), a, 2, None)


def test_log_prob_is_minus_inf_outside_the_support() -> None:
    q = ProgramProposal(ppl.ProgramPrior(ppl.Grammar.load("tiny", weights={"sin": 0}),
                                         inputs=["x"], max_depth=3), hidden=8)
    ctx = q.context(X, X)
    g = q.prior.grammar
    assert q.log_prob(g.parse("(x + 1)"), ctx) > -math.inf
    assert q.log_prob(g.parse("sin(x)"), ctx) == -math.inf  # weight 0
    assert q.log_prob(g.parse("(z + 1)"), ctx) == -math.inf  # unknown input
    assert q.log_prob(g.parse("(((x + 1) + 1) + 1)"), ctx) == -math.inf  # too deep
    assert q.log_prob(ppl.Grammar.load("koza").parse("x"), ctx) == -math.inf


@pytest.mark.parametrize("constant_prior", [None, ppl.ConstantPrior("uniform", -2.0, 3.0),
                                            ppl.ConstantPrior("laplace", 1.0, 0.5)],
                         ids=["normal", "uniform", "laplace"])
def test_training_density_equals_the_sampler_density(constant_prior: Any) -> None:
    """batch_log_prob (torch, the training loss) equals the numpy log q to 1e-9."""
    prior = ppl.ProgramPrior("arith", inputs=["x", "z"], max_depth=4, max_size=9,
                             constant_prior=constant_prior)
    q = perturbed(ProgramProposal(prior, hidden=16, seed=8), seed=9)
    rng = np.random.default_rng(2)
    data = [np.c_[X, X + k, np.cos(X * k)] for k in range(3)]
    ctxs = [q.context(d[:, :2], d[:, 2]) for d in data]
    draws = [(k % 3, *q.sample(rng, ctxs[k % 3])) for k in range(60)]
    forced = q.batch_log_prob([data[k] for k, _, _ in draws], [phi for _, phi, _ in draws])
    assert np.max(np.abs(forced.detach().numpy() - [lq for _, _, lq in draws])) < 1e-9
    if constant_prior is not None and constant_prior.family == "uniform":
        values = [c for _, phi, _ in draws for c in phi.constants]
        assert values and all(-2.0 < c < 3.0 for c in values)


def test_same_seed_same_network_and_bad_inputs() -> None:
    a, b = ProgramProposal(TINY, hidden=8, seed=4), ProgramProposal(TINY, hidden=8, seed=4)
    assert all(torch.equal(u, v) for u, v in zip(a.state_dict().values(),
                                                  b.state_dict().values(), strict=True))
    with pytest.raises(SupportLimitError, match="max_depth"):
        ProgramProposal(ppl.ProgramPrior("arith", inputs=["x"]))
    with pytest.raises(DataError, match=r"shape \(n, 1\)"):
        a.context(np.zeros((3, 2)), np.zeros(3))
    with pytest.raises(DataError, match="NaN"):
        points_of(X, X * np.nan, 1)
    with pytest.raises(PriorError, match="outside the support"):
        a.batch_log_prob([points_of(X, X, 1)], [ppl.Grammar.load("koza").parse("x")])
