"""Tests of ppl/prior.py (and ppl/_tables.py): the PCFG prior conditioned on limits.

P1 exact invariants: log π₀(φ) = Σ log w(r) + Σ log q(input) + Σ log p_c(c) − log Z, with Z
recomputed here by an independent recursion; on ``tiny`` (E -> E+E | E*E | sin E | x | 1) the
enumerated probabilities sum to 1 and the support has the right size. P2: exact draws match
the enumeration (G-test p > 0.001), and a locally pruned sampler (the broken twin of
MOVES.md, "The conditioned prior") fails the same test.
"""

from __future__ import annotations

import math
from collections import Counter
from functools import cache
from typing import Any, ClassVar

import jax
import numpy as np
import numpyro
import pyro
import pyro.distributions as pdist
import pytest
import torch
from numpyro import handlers
from scipy import stats
from stats.discrete import empirical, gtest_pvalue, tv_distance, tv_null_quantile

from ppl import ConstantPrior, Grammar, Program, ProgramPrior
from ppl.errors import PPLError, PriorError, SupportError
from ppl.ops import KIND_CONSTANT, KIND_INPUT

N_DRAWS = 20_000
P_MIN = 0.001

Key = tuple[tuple[int, ...], tuple[Any, ...]]


def key_of(p: Program) -> Key:
    return (p.prods, p.values)


# ---------------------------------------------------------------------- independent oracles
def brute_force(g: Grammar, inputs: dict[str, float], max_depth: int | None,
                max_size: int | None) -> dict[Key, float]:
    """Every program within the limits with its *unnormalised* mass, by plain recursion.

    ``inputs`` maps input names to their probabilities. Written without ppl._tables.
    """
    d_cap = max_depth if max_depth is not None else 10**6
    s_cap = max_size if max_size is not None else 10**6

    @cache
    def trees(a: int, d: int, s: int) -> tuple[tuple[tuple[int, ...], tuple[Any, ...],
                                                     float, int], ...]:
        if d == 0 or s == 0:
            return ()
        out = []
        for p in g.productions:
            w = float(g.probs[p.id])
            if p.lhs != a or w == 0:
                continue
            if p.op.kind == KIND_INPUT:
                out += [((p.id,), (name,), w * q, 1) for name, q in inputs.items()]
                continue
            partial = [((p.id,), (None,), w, 1)]
            for c in p.children:
                partial = [(pp + cp, pv + cv, pw * cw, ps + cs)
                           for pp, pv, pw, ps in partial
                           for cp, cv, cw, cs in trees(c, d - 1, s - ps)]
            out += partial
        return tuple(out)

    return {(pp, pv): w for pp, pv, w, _ in trees(g.start, d_cap, s_cap)}


def log_normalizer(g: Grammar, max_depth: int | None, max_size: int | None) -> float:
    """log Z of the limits: masses by (depth budget, exact size), leaves' values integrated."""
    s_cap = max_size if max_size is not None else 200
    d_cap = max_depth if max_depth is not None else s_cap

    @cache
    def mass(a: int, d: int) -> np.ndarray:  # mass[s]: derivations of depth <= d, size s
        out = np.zeros(s_cap + 1)
        if d == 0:
            return out
        for p in g.productions:
            if p.lhs != a:
                continue
            conv = np.zeros(s_cap + 1)
            conv[1] = g.probs[p.id]
            for c in p.children:
                conv = np.convolve(conv, mass(c, d - 1))[: s_cap + 1]
            out += conv
        return out

    if max_size is None and max_depth is not None:
        @cache
        def z(a: int, d: int) -> float:
            return 0.0 if d == 0 else sum(
                g.probs[p.id] * math.prod(z(c, d - 1) for c in p.children)
                for p in g.productions if p.lhs == a)
        return math.log(z(g.start, max_depth))
    return math.log(float(mass(g.start, d_cap).sum()))


def independent_log_density(g: Grammar, p: Program, inputs: dict[str, float],
                            normal: tuple[float, float], log_z: float) -> float:
    total = 0.0
    for r, v in zip(p.prods, p.values, strict=True):
        prod = g.productions[r]
        total += math.log(g.probs[r])
        if prod.op.kind == KIND_INPUT:
            total += math.log(inputs[v])
        elif prod.op.kind == KIND_CONSTANT:
            total += float(stats.norm.logpdf(v, *normal))
    return total - log_z


# ---------------------------------------------------------------------- the broken twin
def min_depth_of_production(g: Grammar, r: int) -> int:
    return 1 + max((g.min_depth[g.nonterminals[c]] for c in g.productions[r].children),
                   default=0)


def locally_pruned_probs(g: Grammar, a: int, budget: int) -> dict[int, float]:
    """BROKEN: keep the productions that fit ``budget``, renormalise by weights alone."""
    allowed = [r for r in g.by_lhs[a] if g.probs[r] > 0 and min_depth_of_production(g, r)
               <= budget]
    total = sum(g.probs[r] for r in allowed)
    return {r: g.probs[r] / total for r in allowed}


def locally_pruned_sample(g: Grammar, inputs: list[str], max_depth: int,
                          rng: np.random.Generator) -> Program:
    """The broken twin of ``ProgramPrior.sample``: never overflows, wrong distribution."""
    prods: list[int] = []
    values: list[Any] = []
    stack = [(g.start, max_depth)]
    while stack:
        a, b = stack.pop()
        choice = locally_pruned_probs(g, a, b)
        rules = list(choice)
        r = rules[rng.choice(len(rules), p=list(choice.values()))]
        prods.append(r)
        values.append(inputs[rng.integers(len(inputs))]
                      if g.productions[r].op.kind == KIND_INPUT else None)
        stack.extend((c, b - 1) for c in reversed(g.productions[r].children))
    return Program(g, prods, values, inputs)


def locally_pruned_prob(p: Program, max_depth: int, n_inputs: int) -> float:
    g = p.grammar
    prob = 1.0
    for r, depth in zip(p.prods, p.node_depths(), strict=True):
        prob *= locally_pruned_probs(g, g.productions[r].lhs, max_depth - int(depth) + 1)[r]
        if g.productions[r].op.kind == KIND_INPUT:
            prob /= n_inputs
    return prob


# ---------------------------------------------------------------------- P1: exact invariants
TINY_SPACES = [
    pytest.param({"max_depth": 3}, 302, id="depth3"),
    pytest.param({"max_depth": 4}, 182_712, id="depth4"),
    pytest.param({"max_size": 5}, None, id="size5"),
    pytest.param({"max_depth": 3, "max_size": 5}, None, id="depth3-size5"),
]


@pytest.fixture(scope="module")
def tiny() -> Grammar:
    return Grammar.load("tiny")


@cache
def enumerated(max_depth: int | None, max_size: int | None) -> dict[Key, float]:
    prior = ProgramPrior(Grammar.load("tiny"), inputs=["x"], max_depth=max_depth,
                         max_size=max_size)
    return {key_of(p): math.exp(lp) for p, lp in prior.enumerate()}


class TestEnumeration:
    def test_tiny_counts_follow_the_recurrence(self) -> None:
        """N(1) = 2, N(d) = 2 + N(d−1) + 2 N(d−1)² for E -> E+E | E*E | sin E | x | 1."""
        n = 2
        for d in range(2, 5):
            n = 2 + n + 2 * n * n
            count = ProgramPrior(Grammar.load("tiny"), inputs=["x"], max_depth=d).support_size()
            assert count == n
        assert n == 182_712

    @pytest.mark.parametrize(("limits", "count"), TINY_SPACES)
    def test_sums_to_one_and_counts_match(self, tiny: Grammar, limits: dict[str, int],
                                          count: int | None) -> None:
        probs = enumerated(limits.get("max_depth"), limits.get("max_size"))
        assert abs(math.fsum(probs.values()) - 1.0) < 1e-12
        prior = ProgramPrior(tiny, inputs=["x"], **limits)
        assert prior.support_size() == len(probs)
        if count is not None:
            assert len(probs) == count

    @pytest.mark.parametrize(("limits", "count"), TINY_SPACES)
    def test_matches_brute_force(self, tiny: Grammar, limits: dict[str, int],
                                 count: int | None) -> None:
        probs = enumerated(limits.get("max_depth"), limits.get("max_size"))
        brute = brute_force(tiny, {"x": 1.0}, limits.get("max_depth"), limits.get("max_size"))
        assert set(brute) == set(probs)
        z = math.fsum(brute.values())
        worst = max(abs(math.log(brute[k] / z) - math.log(probs[k])) for k in probs)
        assert worst < 1e-9

    def test_two_weighted_inputs(self, tiny: Grammar) -> None:
        prior = ProgramPrior(tiny, inputs={"x": 1.0, "y": 3.0}, max_depth=3)
        got = {key_of(p): math.exp(lp) for p, lp in prior.enumerate()}
        brute = brute_force(tiny, {"x": 0.25, "y": 0.75}, 3, None)
        z = math.fsum(brute.values())
        assert set(got) == set(brute) and prior.support_size() == len(got)
        assert max(abs(got[k] - brute[k] / z) for k in got) < 1e-12

    @pytest.mark.parametrize(
        ("grammar", "limits"),
        [("arith", {"max_depth": 3}), ("tiny", {})], ids=["constants", "unlimited"])
    def test_infinite_space_raises(self, grammar: str, limits: dict[str, int]) -> None:
        prior = ProgramPrior(grammar, inputs=["x"], **limits)
        with pytest.raises(SupportError, match="infinite"):
            list(prior.enumerate())
        with pytest.raises(SupportError):
            prior.support_size()


LIMITS = [
    pytest.param({"max_depth": 4}, id="depth4"),
    pytest.param({"max_size": 7}, id="size7"),
    pytest.param({"max_depth": 3, "max_size": 6}, id="depth3-size6"),
    pytest.param({}, id="unlimited"),
]


class TestLogDensity:
    INPUTS: ClassVar[dict[str, float]] = {"x": 1.0, "y": 3.0}
    NORMAL = (0.5, 2.0)

    @pytest.mark.parametrize("limits", LIMITS)
    def test_equals_rule_sum_minus_log_normalizer(self, limits: dict[str, int],
                                                  rng: np.random.Generator) -> None:
        g = Grammar.load("arith")
        prior = ProgramPrior(g, inputs=self.INPUTS, constant_prior=torch.distributions.Normal(
            *self.NORMAL), **limits)
        probs = {k: v / sum(self.INPUTS.values()) for k, v in self.INPUTS.items()}
        # unlimited: Z = 1 because the grammar is consistent (ρ < 1)
        log_z = log_normalizer(g, limits.get("max_depth"), limits.get("max_size")) \
            if limits else 0.0
        assert prior.log_normalizer == pytest.approx(log_z, abs=1e-10)
        for _ in range(200):
            p = prior.sample(rng=rng)
            want = independent_log_density(g, p, probs, self.NORMAL, log_z)
            assert prior.log_density(p) == pytest.approx(want, abs=1e-9)

    def test_log_prob_is_a_float64_torch_scalar(self, rng: np.random.Generator) -> None:
        prior = ProgramPrior("arith", inputs=["x"], max_depth=4)
        p = prior.sample(rng=rng)
        lp = prior.log_prob(p)
        assert isinstance(lp, torch.Tensor) and lp.dtype == torch.float64 and lp.shape == ()
        assert float(lp) == prior.log_density(p)

    def test_outside_the_support(self) -> None:
        prior = ProgramPrior("arith", inputs=["x"], max_depth=3, max_size=5)
        g = prior.grammar
        assert prior.log_density(g.parse("sin(sin(sin(x)))")) == -math.inf  # depth 4
        assert prior.log_density(g.parse("((x + x) + (x + x))")) == -math.inf  # size 7
        assert prior.log_density(g.parse("z")) == -math.inf  # unknown input
        assert prior.log_density(Grammar.load("koza").parse("x")) == -math.inf
        with pytest.raises(PPLError, match="expects a Program"):
            prior.log_density("x")  # type: ignore[arg-type]


# ---------------------------------------------------------------------- P2: exact sampling
SAMPLED_SPACES = [
    pytest.param({"max_depth": 3}, id="depth3"),
    pytest.param({"max_depth": 4}, id="depth4"),
    pytest.param({"max_size": 5}, id="size5"),
    pytest.param({"max_depth": 3, "max_size": 5}, id="depth3-size5"),
]


def draw(prior: ProgramPrior, rng: np.random.Generator, n: int = N_DRAWS) -> Counter[Key]:
    return Counter(key_of(prior.sample(rng=rng)) for _ in range(n))


class TestExactSampler:
    @pytest.mark.parametrize("limits", SAMPLED_SPACES)
    def test_samples_match_enumeration(self, tiny: Grammar, limits: dict[str, int],
                                       rng: np.random.Generator) -> None:
        probs = enumerated(limits.get("max_depth"), limits.get("max_size"))
        prior = ProgramPrior(tiny, inputs=["x"], **limits)
        counts = draw(prior, rng)
        assert gtest_pvalue(counts, probs) > P_MIN
        assert tv_distance(empirical(counts), probs) < tv_null_quantile(probs, N_DRAWS, rng=rng)

    def test_broken_twin_is_far_from_the_prior(self, tiny: Grammar) -> None:
        """The twin's exact law differs from π₀ by TV > 0.2 at depth 3 (P(leaf root) .68 vs .5)."""
        probs = enumerated(3, None)
        twin = {k: locally_pruned_prob(Program(tiny, *k, ["x"]), 3, 1) for k in probs}
        assert math.fsum(twin.values()) == pytest.approx(1.0, abs=1e-12)
        assert tv_distance(twin, probs) > 0.2

    def test_broken_twin_fails_the_gtest(self, tiny: Grammar, rng: np.random.Generator) -> None:
        probs = enumerated(3, None)
        counts = Counter(key_of(locally_pruned_sample(tiny, ["x"], 3, rng))
                         for _ in range(N_DRAWS))
        assert gtest_pvalue(counts, probs) < P_MIN
        assert tv_distance(empirical(counts), probs) > tv_null_quantile(probs, N_DRAWS, rng=rng)

    def test_sample_subtree_matches_conditioned_law(self, tiny: Grammar,
                                                    rng: np.random.Generator) -> None:
        """p_b(· | A) with a budget below the prior's own limit is the depth-b prior."""
        prior = ProgramPrior(tiny, inputs=["x"], max_depth=4)
        counts = Counter(prior.sample_subtree(rng, tiny.start, 3, None)
                         for _ in range(N_DRAWS))
        assert gtest_pvalue(counts, enumerated(3, None)) > P_MIN

    def test_size_distribution_of_constants_grammar(self, rng: np.random.Generator) -> None:
        prior = ProgramPrior("arith", inputs=["x", "y"], max_depth=4)
        dist = prior.size_distribution()
        probs = {s: float(q) for s, q in enumerate(dist) if q > 0}
        sizes = Counter(prior.sample(rng=rng).size for _ in range(N_DRAWS))
        assert gtest_pvalue(sizes, probs) > P_MIN

    @pytest.mark.parametrize("limits", SAMPLED_SPACES)
    def test_size_distribution_matches_enumeration(self, tiny: Grammar,
                                                   limits: dict[str, int]) -> None:
        probs = enumerated(limits.get("max_depth"), limits.get("max_size"))
        by_size: Counter[int] = Counter()
        for (prods, _), q in probs.items():
            by_size[len(prods)] += q
        dist = ProgramPrior(tiny, inputs=["x"], **limits).size_distribution()
        assert dist[0] == 0.0 and dist.sum() == pytest.approx(1.0, abs=1e-12)
        assert len(dist) == max(by_size) + 1
        np.testing.assert_allclose(dist, [by_size[s] for s in range(len(dist))], atol=1e-12)


class TestReproducibility:
    @pytest.mark.parametrize("seed", [0, 7])
    def test_same_seed_same_programs(self, seed: int) -> None:
        prior = ProgramPrior("arith", inputs=["x", "y"], max_depth=5)
        a = [prior.sample(rng=np.random.default_rng(seed)) for _ in range(1)] + \
            list(prior.sample((50,), rng=np.random.default_rng(seed + 1)))
        b = [prior.sample(rng=np.random.default_rng(seed)) for _ in range(1)] + \
            list(prior.sample((50,), rng=np.random.default_rng(seed + 1)))
        assert a == b
        assert prior.sample((5,), rng=seed).tolist() == prior.sample((5,), rng=seed).tolist()

    def test_different_seeds_differ_and_shapes(self) -> None:
        prior = ProgramPrior("arith", inputs=["x"], max_depth=5)
        a = prior.sample((2, 20), rng=np.random.default_rng(1))
        b = prior.sample((2, 20), rng=np.random.default_rng(2))
        assert a.shape == (2, 20) and isinstance(a[0, 0], Program)
        assert a.tolist() != b.tolist()

    def test_torch_global_seed_without_rng(self) -> None:
        prior = ProgramPrior("arith", inputs=["x"], max_depth=5)
        pyro.set_rng_seed(3)
        a = [prior.sample() for _ in range(10)]
        pyro.set_rng_seed(3)
        assert [prior.sample() for _ in range(10)] == a


class TestPyro:
    def test_program_site_in_a_traced_model(self) -> None:
        prior = ProgramPrior("arith", inputs=["x"], max_depth=4)
        x = torch.linspace(0.1, 1.0, 5, dtype=torch.float64)

        def model() -> None:
            f = pyro.sample("f", prior)
            sigma = pyro.sample("sigma", pdist.HalfNormal(torch.tensor(1.0, dtype=torch.float64)))
            mean = torch.nan_to_num(f(x), nan=0.0, posinf=0.0, neginf=0.0)
            with pyro.plate("data", 5):
                pyro.sample("y", pdist.Normal(mean, sigma), obs=torch.zeros(5, dtype=torch.float64))

        pyro.set_rng_seed(0)
        trace = pyro.poutine.trace(model).get_trace()
        f, sigma = trace.nodes["f"]["value"], trace.nodes["sigma"]["value"]
        assert isinstance(f, Program)
        mean = torch.nan_to_num(f(x), nan=0.0, posinf=0.0, neginf=0.0)
        want = (prior.log_density(f)
                + float(pdist.HalfNormal(torch.tensor(1.0, dtype=torch.float64)).log_prob(sigma))
                + float(pdist.Normal(mean, sigma).log_prob(torch.zeros(5)).sum()))
        assert float(trace.log_prob_sum()) == pytest.approx(want, rel=1e-12)
        trace.compute_log_prob()
        assert trace.nodes["f"]["log_prob"].dtype == torch.float64

    def test_conditioned_program_site(self) -> None:
        prior = ProgramPrior("arith", inputs=["x"], max_depth=4)
        p = prior.grammar.parse("(x * 2.0)")
        model = pyro.poutine.condition(lambda: pyro.sample("f", prior), data={"f": p})
        trace = pyro.poutine.trace(model).get_trace()
        assert trace.nodes["f"]["value"] is p
        assert float(trace.log_prob_sum()) == pytest.approx(prior.log_density(p))

    def test_program_site_cannot_be_batched(self) -> None:
        prior = ProgramPrior("arith", inputs=["x"], max_depth=4)
        with pytest.raises(PPLError, match="cannot be batched"):
            prior.expand((3,))


class TestNumPyro:
    def test_key_determines_the_program(self) -> None:
        prior = ProgramPrior("arith", inputs=["x"], max_depth=5)
        dist = prior.to_numpyro()
        key = jax.random.PRNGKey(3)
        a = dist.sample(key)
        assert isinstance(a, Program) and dist.sample(key) == a
        assert dist.sample(jax.random.key(3)) == a  # new-style typed keys too
        others = {dist.sample(jax.random.PRNGKey(k)) for k in range(20)}
        assert len(others) > 5
        assert dist.sample(key, (4,)).shape == (4,)

    def test_log_prob_equals_log_density(self) -> None:
        prior = ProgramPrior("arith", inputs=["x"], max_depth=5)
        dist = prior.to_numpyro()
        for k in range(20):
            p = dist.sample(jax.random.PRNGKey(k))
            got = float(dist.log_prob(p))
            assert got == pytest.approx(prior.log_density(p), rel=1e-6, abs=1e-6)

    def test_site_in_a_numpyro_model(self) -> None:
        dist = ProgramPrior("arith", inputs=["x"], max_depth=5).to_numpyro()

        def model() -> Any:
            return numpyro.sample("f", dist)

        runs = [handlers.trace(handlers.seed(model, 11)).get_trace()["f"]["value"]
                for _ in range(2)]
        assert isinstance(runs[0], Program) and runs[0] == runs[1]


class TestConstantPrior:
    @pytest.mark.parametrize(
        ("spec", "family", "a", "b"),
        [(torch.distributions.Normal(1.0, 2.0), "normal", 1.0, 2.0),
         (torch.distributions.Uniform(-1.0, 3.0), "uniform", -1.0, 3.0),
         (pdist.Normal(0.0, 3.0), "normal", 0.0, 3.0),
         (pdist.Laplace(0.5, 1.0), "laplace", 0.5, 1.0),
         (ConstantPrior("uniform", 0.0, 1.0), "uniform", 0.0, 1.0),
         (None, "normal", 0.0, 1.0)],
        ids=["torch-normal", "torch-uniform", "pyro-normal", "pyro-laplace", "constant-prior",
             "default"])
    def test_accepts(self, spec: Any, family: str, a: float, b: float) -> None:
        prior = ProgramPrior("arith", inputs=["x"], max_depth=3, constant_prior=spec)
        cp = prior.constant_prior
        assert (cp.family, cp.a, cp.b) == (family, a, b)

    def test_uniform_constants_stay_in_bounds(self, rng: np.random.Generator) -> None:
        prior = ProgramPrior("arith", inputs=["x"], max_depth=4,
                             constant_prior=torch.distributions.Uniform(2.0, 3.0))
        consts = np.concatenate([prior.sample(rng=rng).constants for _ in range(500)])
        assert consts.size > 50 and consts.min() >= 2.0 and consts.max() <= 3.0
        assert stats.kstest(consts, stats.uniform(2.0, 1.0).cdf).pvalue > P_MIN

    @pytest.mark.parametrize(
        "spec",
        [torch.distributions.Gamma(1.0, 1.0), pdist.HalfNormal(1.0), "normal", 3.0,
         torch.distributions.Normal(torch.zeros(2), torch.ones(2))],
        ids=["gamma", "half-normal", "string", "float", "vector-normal"])
    def test_rejects(self, spec: Any) -> None:
        with pytest.raises(PriorError, match="constant_prior must be a scalar Normal"):
            ProgramPrior("arith", inputs=["x"], max_depth=3, constant_prior=spec)

    @pytest.mark.parametrize(
        "args", [("normal", 0.0, -1.0), ("uniform", 1.0, 0.0), ("gamma", 1.0, 1.0),
                 ("normal", math.nan, 1.0)],
        ids=["negative-scale", "empty-interval", "unknown-family", "nan-loc"])
    def test_constant_prior_parameters(self, args: tuple[str, float, float]) -> None:
        with pytest.raises(PriorError):
            ConstantPrior(*args)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"max_depth": 0}, "max_depth must be a positive integer"),
     ({"max_depth": 2.0}, "max_depth must be a positive integer"),
     ({"max_size": True}, "max_size must be a positive integer"),
     ({"inputs": "x"}, "list of input names"),
     ({"inputs": []}, "at least one input"),
     ({"inputs": ["x", "x"]}, "repeat"),
     ({"inputs": ["sin"]}, "'sin' cannot be written"),
     ({"inputs": {"x": -1.0}}, "Input weights")],
    ids=["depth-0", "depth-float", "size-bool", "inputs-str", "inputs-empty",
         "inputs-repeat", "inputs-keyword", "inputs-negative-weight"])
def test_prior_argument_errors(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"inputs": ["x"], "max_depth": 3, **kwargs}
    with pytest.raises(PriorError, match=match):
        ProgramPrior("arith", **args)
