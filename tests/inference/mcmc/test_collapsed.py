"""The collapsed mode (inference.mcmc.blocks.collapsed): Laplace evidence, exact stationarity of
the structure moves against the collapsed target (P1), a run against the enumerated
collapsed target (P2), and its preconditions.

Grammar: e -> (e + e) | (e * e) | x | CONST, constants ~ Normal(0, 1), known noise. At depth
≤ 3 it has 202 structures (10 at depth ≤ 2); each structure's collapsed target is
log p(S) + log Z̃(S) with Z̃ the Laplace evidence of its constants.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate

import ppl
from inference import infer
from inference.arviz import az
from inference.config import McmcOptions
from inference.mcmc import moves
from inference.mcmc.blocks import collapsed
from inference.mcmc.cache import shape_of
from inference.mcmc.exact import structures, transition_matrix
from inference.mcmc.gibbs import Gibbs
from inference.mcmc.moves import MOVES, Proposal
from inference.target import Target
from ppl import dist
from ppl.errors import PPLError
from ppl.program import Program
from tests.stats.discrete import gtest_pvalue

GRAMMAR = ppl.Grammar.from_string('''
?start: e
e: "(" e "+" e ")"  -> add
 | "(" e "*" e ")"  -> mul
 | NAME             -> var    // @weight 2
 | NUMBER           -> const  // @weight 2
NAME: /[a-z]+/
NUMBER: /[+-]?(\\d+(\\.\\d*)?|\\.\\d+)([eE][+-]?\\d+)?/
%ignore " "
''')
SIGMA = 0.5
X = np.linspace(-1.0, 1.0, 6)
Y = 0.8 * X + 0.5 + SIGMA * np.random.default_rng(5).standard_normal(6)
TOL = 1e-12


def make_model(prior):
    def model(x, y=None):
        f = ppl.sample("f", prior)
        with ppl.plate("data", len(x)):
            ppl.sample("y", dist.Normal(f(x), SIGMA), obs=y)
    return model


PRIOR2 = ppl.ProgramPrior(GRAMMAR, inputs=["x"], max_depth=2)
MODEL2 = make_model(PRIOR2)


def _kernel(prior, x=X, y=Y, model=None):
    """A collapsed kernel after init, its program block, view and fitter."""
    kernel = Gibbs(Target(model or make_model(prior), (x,), {"y": y}),
                   McmcOptions(program_moves=1, collapsed=True))
    state = kernel.init(np.random.default_rng(0))
    site = kernel.target.latents["f"]
    return (kernel, kernel.workspace.view(kernel.target, site, state.values),
            kernel.workspace.fitter("f"))


def _programs(prior):
    return [Program.unchecked(prior.grammar, p, v, prior.inputs) for p, v in structures(prior)]


# ---------------------------------------------------------------- the Laplace evidence
def _quadrature(program, x, y, sigma):
    """log ∫ N(y; f_c(x), σ²) N(c; 0, 1) dc for a one-constant program."""
    def integrand(c):
        loc = program.with_constants([c])(x)
        return math.exp(np.sum(-0.5 * ((y - loc) / sigma) ** 2) - 0.5 * c * c)
    value, _ = integrate.quad(integrand, -12.0, 12.0, epsabs=0.0, epsrel=1e-12, limit=400)
    n = len(x)
    return math.log(value) - n * math.log(sigma) - 0.5 * (n + 1) * math.log(2 * math.pi)


def test_evidence_is_exact_for_a_linear_gaussian_program():
    """c·x with Normal noise and a Normal prior: the Laplace evidence is the exact
    integral; the only error left is the optimiser's (far below 1e-6 nats)."""
    _, view, fitter = _kernel(PRIOR2)
    program = GRAMMAR.parse("(x * 1.0)")
    exact = _quadrature(program, X, Y, SIGMA)
    assert abs(fitter.evidence(program, view).log_z - exact) < 1e-6


def test_evidence_of_a_nonlinear_program_is_close():
    """exp(c·x) on 20 points: the posterior of c is nearly Gaussian, and the Laplace error
    is O(1/n); 0.05 nats is far above it and far below the broken twin's error below."""
    prior = ppl.ProgramPrior("arith", inputs=["x"], max_depth=3)
    x = np.linspace(0.0, 1.0, 20)
    y = np.exp(-0.7 * x) + SIGMA * np.random.default_rng(2).standard_normal(20)
    _, view, fitter = _kernel(prior, x, y)
    program = prior.grammar.parse("exp((x * 1.0))")
    ev = fitter.evidence(program, view)
    exact = _quadrature(program, x, y, SIGMA)
    assert abs(ev.log_z - exact) < 0.05
    no_log_det = ev.log_z + float(np.log(np.diag(ev.posterior.chol)).sum())
    assert abs(no_log_det - exact) > 1.0  # broken twin: the −½ log det H term dropped


def test_constants_are_drawn_from_the_exact_posterior_when_linear():
    """For c·x the draw N(c*, H⁻¹) is the exact conditional posterior of c."""
    _, view, fitter = _kernel(PRIOR2)
    ev = fitter.evidence(GRAMMAR.parse("(x * 1.0)"), view)
    precision = np.sum(X**2) / SIGMA**2 + 1.0
    mean = np.sum(X * Y) / SIGMA**2 / precision
    assert ev.posterior.mean[0] == pytest.approx(mean, abs=1e-7)
    assert ev.posterior.chol[0, 0] ** 2 == pytest.approx(precision, rel=1e-6)


# ---------------------------------------------------------------- P1: exact stationarity
def _structural(name):
    def move(chooser, prior, phi):
        return MOVES[name](chooser, prior, phi, structural=True)
    return move


@pytest.fixture(scope="module")
def depth3():
    prior = ppl.ProgramPrior(GRAMMAR, inputs=["x"], max_depth=3)
    _, view, fitter = _kernel(prior)
    programs = _programs(prior)
    targets = {p: collapsed.score(fitter, view, p)[0] for p in programs}
    lt = np.array([targets[p] for p in programs])
    pi = np.exp(lt - lt.max())
    return prior, programs, targets.__getitem__, pi / pi.sum()


def _errors(t, pi):
    flow = pi[:, None] * t
    return (float(np.abs(t.sum(1) - 1).max()), float(np.abs(pi @ t - pi).max()),
            float(np.abs(flow - flow.T).max()))


@pytest.mark.parametrize("name", list(MOVES))
def test_structure_moves_are_exactly_stationary_for_the_collapsed_target(name, depth3):
    prior, programs, log_target, pi = depth3
    assert len(programs) == 202 and np.all(np.isfinite(np.log(pi)))
    t = transition_matrix(_structural(name), prior, programs, log_target, structural=True)
    rows, invariance, balance = _errors(t, pi)
    assert rows < TOL and invariance < TOL and balance < TOL


def test_constant_densities_in_the_ratio_break_stationarity(depth3):
    """Broken twin: structure moves that keep the constants' prior densities in q."""
    prior, programs, log_target, pi = depth3

    def broken(chooser, prior, phi):
        return MOVES["regenerate"](chooser, prior, phi, structural=False)

    t = transition_matrix(broken, prior, programs, log_target, check_density=False,
                          structural=True)
    _, invariance, balance = _errors(t, pi)
    assert invariance > 1e-4 and balance > 1e-4


# ---------------------------------------------------------------- P2: a run
@pytest.fixture(scope="module")
def depth2_target():
    _, view, fitter = _kernel(PRIOR2)
    scores = {shape_of(p): collapsed.score(fitter, view, p)[0] for p in _programs(PRIOR2)}
    top = max(scores.values())
    z = sum(math.exp(v - top) for v in scores.values())
    return {s: math.exp(v - top) / z for s, v in scores.items()}


def _run(seed=0):
    return infer(MODEL2, X, y=Y, method="mcmc", collapsed=True, num_samples=3000,
                 num_warmup=100, num_chains=2, seed=seed, chain_method="sequential",
                 progress=False, program_moves=2)


def _pvalue(post, probs):
    draws = post.samples["f"]
    counts: dict = {}
    for p in draws.reshape(-1):
        counts[shape_of(p)] = counts.get(shape_of(p), 0) + 1
    top = sorted(probs, key=probs.get, reverse=True)[:3]
    stats = [np.vectorize(lambda p: float(p.size))(draws)]
    stats += [np.vectorize(lambda p, s=s: float(shape_of(p) == s))(draws) for s in top]
    ess = float(min(az.ess(v) for v in stats))
    return gtest_pvalue(counts, probs, ess=ess), ess


def test_collapsed_run_matches_the_enumerated_collapsed_target(depth2_target):
    assert 0.05 < 1 - max(depth2_target.values()) < 0.7  # several structures carry mass
    post = _run()
    p_value, ess = _pvalue(post, depth2_target)
    assert ess > 300 and p_value > 0.001
    assert post.attrs["plan"] == "Gibbs: ProgramMH[f] (collapsed: Laplace)"
    assert "approximation" in post.attrs and "Laplace" in post.attrs["approximation"]
    for p in post.samples["f"].reshape(-1)[::50]:  # every draw carries finite constants
        assert np.all(np.isfinite(p.constants))


def test_collapsed_run_without_node_ratio_fails(depth2_target, monkeypatch):
    """Broken twin: regeneration with its N(φ)/N(φ') factor dropped."""
    def broken(chooser, prior, phi, structural=False):
        prop = moves.regenerate(chooser, prior, phi, structural)
        return Proposal(prop.program, prop.log_q_fwd,
                        prop.log_q_rev + 3.0 * (math.log(prop.program.size)
                                                - math.log(phi.size)))

    monkeypatch.setitem(moves.MOVES, "regenerate", broken)
    p_value, _ = _pvalue(_run(), depth2_target)
    assert p_value < 0.001


# ---------------------------------------------------------------- preconditions
def test_collapsed_with_a_latent_noise_scale_runs():
    def model(x, y=None):
        f = ppl.sample("f", PRIOR2)
        sigma = ppl.sample("sigma", dist.HalfNormal(1.0))
        with ppl.plate("data", len(x)):
            ppl.sample("y", dist.Normal(f(x), sigma), obs=y)

    post = infer(model, X, y=Y, method="mcmc", collapsed=True, num_samples=50,
                 num_warmup=20, num_chains=1, progress=False)
    assert post.attrs["plan"] == "Gibbs: ProgramMH[f] (collapsed: Laplace) + Noise[sigma]"
    assert np.all(np.isfinite(post.stats["lp"]))


def _student(x, y=None):
    f = ppl.sample("f", PRIOR2)
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.StudentT(4.0, f(x), SIGMA), obs=y)


def _laplace_constants(x, y=None):
    f = ppl.sample("f", ppl.ProgramPrior(GRAMMAR, inputs=["x"], max_depth=2,
                                         constant_prior=dist.Laplace(0.0, 1.0)))
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), SIGMA), obs=y)


@pytest.mark.parametrize("model,options,match", [
    (_student, {}, "site 'f'.*Normal"),
    (_laplace_constants, {}, "Normal constant prior on program site 'f'"),
    (MODEL2, {"num_rungs": 2}, "num_rungs=1"),
    (MODEL2, {"method": "importance"}, "method='mcmc'"),
    (MODEL2, {"collapsed": "yes"}, "True or False"),
], ids=["student-t", "laplace-constant-prior", "tempering", "importance", "not-a-bool"])
def test_collapsed_preconditions_are_errors(model, options, match):
    options = {"collapsed": True, "method": "mcmc", **options}
    with pytest.raises(PPLError, match=match):
        infer(model, X, y=Y, num_samples=5, num_chains=1, progress=False, **options)
