"""The kernel's caches (inference.mcmc.cache): cached values equal recomputation, the
canonical form maps constants correctly, and caching never changes the chain."""

from __future__ import annotations

import numpy as np
import pytest

import ppl
from inference.config import McmcOptions
from inference.mcmc.cache import LRU, MISSING, canonical, shape_of
from inference.mcmc.fastlik import ProgramLikelihood
from inference.mcmc.gibbs import Gibbs
from inference.mcmc.laplace import ConstantFitter
from inference.target import Target
from ppl import dist

PRIOR = ppl.ProgramPrior("arith", inputs=["x"], max_depth=5)
X = np.linspace(0.1, 3.0, 20)
Y = 2.0 * np.exp(-0.8 * X) + 0.05 * np.random.default_rng(0).standard_normal(20)


def model(x, y=None):
    f = ppl.sample("f", PRIOR)
    sigma = ppl.sample("sigma", dist.HalfNormal(1.0))
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), sigma), obs=y)


def _kernel(cache_size=4096, seed=0):
    kernel = Gibbs(Target(model, (X,), {"y": Y}),
                   McmcOptions(program_moves=10, cache_size=cache_size))
    rng = np.random.default_rng(seed)
    return kernel, kernel.init(rng), rng


def _variants(program, rng):
    """The program with the operands of random commutative nodes swapped (same function)."""
    g = program.grammar
    prods, values = list(program.prods), list(program.values)
    ends = program.ends()
    for i in reversed(range(len(prods))):
        p = g.productions[prods[i]]
        if p.op.commutative and rng.random() < 0.7:
            a, b = i + 1, int(ends[i + 1])
            c = int(ends[b])
            prods[a:c] = prods[b:c] + prods[a:b]
            values[a:c] = values[b:c] + values[a:b]
            program = ppl.Program(g, prods, values, program.inputs)
            ends = program.ends()
    return program


def test_lru_evicts_the_least_recently_used():
    cache = LRU(2)
    cache.put("a", 1)
    cache.put("b", None)
    assert cache.get("a") == 1  # "b" is now the least recently used
    cache.put("c", 3)
    assert cache.get("b") is MISSING and cache.get("c") == 3 and cache.get("a") == 1
    assert cache.stats == [3, 1] and len(cache) == 2
    off = LRU(0)
    off.put("a", 1)
    assert off.get("a") is MISSING and len(off) == 0


def test_canonical_form_maps_constants_to_the_same_function():
    rng = np.random.default_rng(1)
    checked = 0
    for _ in range(3000):
        phi = PRIOR.sample_program(rng)
        variant = _variants(phi, rng)
        a, b = canonical(phi), canonical(variant)
        assert a.shape == b.shape  # commutative variants share one canonical shape
        assert variant.key == phi.key
        assert sorted(a.perm.tolist()) == list(range(len(phi.constants)))
        assert canonical(a.program).shape == a.shape  # idempotent
        with np.errstate(all="ignore"):
            assert np.array_equal(a.program(X), phi(X), equal_nan=True)
            assert np.array_equal(b.program(X), variant(X), equal_nan=True)
            assert np.array_equal(a.program.constants, phi.constants[a.perm])
        checked += len(phi.constants) > 1 and not np.array_equal(a.perm, b.perm)
    assert checked > 30  # constants really moved in many of the cases


def test_a_shared_fit_is_each_variant_own_optimum():
    """(c1·x) + c2 and c2 + (x·c1) share one fit; mapped back, its mean is each program's
    own least-squares optimum (slope 2, intercept 3), not the other's order."""
    _, state, _ = _kernel()
    y = 2.0 * X + 3.0
    target = Target(model, (X,), {"y": y})
    target.check_fast([dict(state.values)])
    g = PRIOR.grammar
    probes = [g.parse("(x * 1.0)")]
    view = ProgramLikelihood.build(target, dict(state.values), "f", probes)
    fitter = ConstantFitter()
    for text, want in (("((x * 1.0) + 1.0)", [2.0, 3.0]), ("(1.0 + (1.0 * x))", [3.0, 2.0])):
        fit = fitter.fit(g.parse(text), view)
        mean = np.empty(2)
        mean[fit.perm] = fit.mean
        np.testing.assert_allclose(mean, want, atol=1e-6)
    assert fitter.solves.stats == [1, 1]  # the second program reused the first one's solve


def test_cached_values_equal_recomputation():
    kernel, state, rng = _kernel()
    for _ in range(30):
        state, _ = kernel.step(rng, state)
    b = kernel.target.latents["f"]
    view = kernel.workspace.view(kernel.target, b, state.values)
    fresh = Gibbs(Target(model, (X,), {"y": Y}), McmcOptions(program_moves=1, cache_size=0))
    fresh.target.check_fast([dict(state.values)])
    plain = fresh.workspace.view(fresh.target, b, state.values)
    fitter, plain_fitter = kernel.workspace.fitter("f"), fresh.workspace.fitter("f")
    gen = np.random.default_rng(3)
    programs = [PRIOR.sample_program(gen) for _ in range(200)]
    programs += [_variants(p, gen) for p in programs]
    for phi in programs + programs:  # the second pass hits the caches
        assert abs(view.log_lik(phi) - plain.log_lik(phi)) <= 1e-12 or \
            view.log_lik(phi) == plain.log_lik(phi)
        cached, recomputed = fitter.fit(phi, view), plain_fitter.fit(phi, plain)
        assert (cached is None) == (recomputed is None)
        if cached is not None:
            c = phi.constants
            assert abs(cached.log_density(c) - recomputed.log_density(c)) <= 1e-12
            np.testing.assert_array_equal(cached.mean, recomputed.mean)
    stats = kernel.workspace.stats
    assert all(stats[name][0] > 0 for name in ("lik", "memo", "canonical", "solve"))
    assert all(hits == 0 for hits, _ in fresh.workspace.stats.values())


def _chain(cache_size, sweeps=40):
    kernel, state, rng = _kernel(cache_size, seed=5)
    out = []
    for i in range(sweeps):
        state, info = kernel.step(rng, state, adapt=i < 20)
        out.append((state.values["f"], float(state.values["sigma"]), state.log_joint,
                    info.move, info.accepted))
    return out, kernel.workspace.stats


def test_the_cache_never_changes_the_chain():
    cached, stats = _chain(4096)
    uncached, off = _chain(0)
    assert cached == uncached  # programs (trees and constants), sigma, log joints, moves
    assert stats["solve"][0] > 0 and stats["memo"][0] > 0
    assert all(hits == 0 for hits, _ in off.values())
    small, _ = _chain(3)  # constant eviction: recomputed values are the same
    assert small == cached


def test_a_cache_keyed_without_the_constants_changes_the_chain(monkeypatch):
    """Broken twin: log L cached under the canonical key alone (constants ignored)."""
    monkeypatch.setattr(ProgramLikelihood, "eval_key", staticmethod(lambda p: p.key))
    assert _chain(4096)[0] != _chain(0)[0]


@pytest.mark.parametrize("bad", [-1, 2.5, "big"])
def test_cache_size_must_be_a_nonnegative_integer(bad):
    with pytest.raises(ppl.errors.PPLError, match="cache_size"):
        Gibbs(Target(model, (X,), {"y": Y}), McmcOptions(cache_size=bad))


def test_shape_ignores_constant_values():
    g = PRIOR.grammar
    assert shape_of(g.parse("(x + 1.0)")) == shape_of(g.parse("(x + -3.0)"))
    assert shape_of(g.parse("(x + 1.0)")) != shape_of(g.parse("(1.0 + x)"))
