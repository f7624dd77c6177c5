"""The scoring fast paths equal full recomputation (TESTING.md P1: to 1e-9).

- ``ppl.scoring.Scorer`` against the Pyro trace's log joint;
- the incremental program likelihood (``inference.mcmc.fastlik``) against re-scoring the
  whole model, for many random programs (valid and invalid);
- models outside the pattern (the output transformed, read by another factor, or a
  parameter depending on it) get no incremental view instead of a wrong one.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import ppl
from inference.config import McmcOptions
from inference.mcmc.fastlik import ProgramLikelihood
from inference.mcmc.gibbs import Gibbs
from inference.target import Target
from ppl import dist

PRIOR = ppl.ProgramPrior("arith", inputs=["x"], max_depth=4)
X = np.linspace(-1.0, 1.0, 12)
Y = 1.5 * X**2 + 0.1 * np.random.default_rng(0).standard_normal(12)


def normal_model(x, y=None):
    f = ppl.sample("f", PRIOR)
    sigma = ppl.sample("sigma", dist.HalfNormal(1.0))
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), sigma), obs=y)


def student_model(x, y=None):
    f = ppl.sample("f", PRIOR)
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.StudentT(4.0, f(x), 0.3), obs=y)


def two_calls_model(x, y=None):
    f = ppl.sample("f", PRIOR)
    with ppl.plate("a", len(x)):
        ppl.sample("y", dist.Laplace(f(x), 0.3), obs=y)
    ppl.sample("z", dist.Normal(f(x[:1]), 1.0), obs=torch.zeros(1, dtype=torch.float64))


def transformed_model(x, y=None):
    f = ppl.sample("f", PRIOR)
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(torch.tanh(f(x)), 0.3), obs=y)


def shared_output_model(x, y=None):
    f = ppl.sample("f", PRIOR)
    out = f(x)
    ppl.factor("penalty", -0.1 * (out**2).sum())
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(out, 0.3), obs=y)


def scale_from_output_model(x, y=None):
    f = ppl.sample("f", PRIOR)
    out = f(x)
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(out, 0.1 + out.abs()), obs=y)


def _target(model, args=(X,), kwargs=None):
    target = Target(model, args, {"y": Y} if kwargs is None else kwargs)
    gibbs = Gibbs(target, McmcOptions(init_candidates=5, program_moves=1))
    state = gibbs.init(np.random.default_rng(1))
    return target, state


def _programs(n=300, seed=2):
    rng = np.random.default_rng(seed)
    return [PRIOR.sample_program(rng) for _ in range(n)]


@pytest.mark.parametrize("model", [normal_model, student_model, two_calls_model,
                                   transformed_model, shared_output_model,
                                   scale_from_output_model],
                         ids=lambda m: m.__name__)
def test_scorer_equals_pyro_trace(model):
    target, state = _target(model)
    assert target.fast
    for p in _programs(50):
        values = dict(state.values, f=p)
        fast = target.log_joint(values)
        slow = target._trace_log_joint(values)
        slow = -math.inf if math.isnan(slow) else slow
        assert fast == pytest.approx(slow, rel=1e-9, abs=1e-9) or fast == slow


@pytest.mark.parametrize("model", [normal_model, student_model, two_calls_model],
                         ids=lambda m: m.__name__)
def test_incremental_equals_recomputation(model):
    target, state = _target(model)
    view = ProgramLikelihood.build(target, state.values, "f", _programs(5, seed=9))
    assert view is not None
    n_invalid = 0
    for p in _programs():
        full = target.log_joint(dict(state.values, f=p))
        fast = view.log_joint(p)
        if full == -math.inf:
            n_invalid += 1
            assert fast == -math.inf
        else:
            assert fast == pytest.approx(full, rel=1e-9, abs=1e-9)
    assert 0 < n_invalid < 300  # both valid and invalid programs were checked


@pytest.mark.parametrize("model", [transformed_model, shared_output_model,
                                   scale_from_output_model], ids=lambda m: m.__name__)
def test_models_outside_the_pattern_get_no_view(model):
    target, state = _target(model)
    assert ProgramLikelihood.build(target, state.values, "f", _programs(5)) is None


def test_scorer_declines_subsampled_plates():
    def model(x, y=None):
        f = ppl.sample("f", PRIOR)
        with ppl.plate("data", len(x), subsample_size=4) as idx:
            ppl.sample("y", dist.Normal(f(x[idx]), 0.3), obs=y[idx])

    target = Target(model, (X,), {"y": Y})
    Gibbs(target, McmcOptions(init_candidates=3, program_moves=1)).init(np.random.default_rng(0))
    assert not target.fast


def test_a_huge_current_log_likelihood_does_not_leak_into_scores():
    """At a state whose program fits terribly (log L ≈ −1e25), the view must still score
    ordinary programs to 1e-9: its constant part is summed from the other sites' terms, not
    left over from subtracting a huge log L (whose rounding is far above 1e-9)."""
    target, state = _target(normal_model)
    values = dict(state.values, f=PRIOR.grammar.parse("exp((exp(x) * 9.0))"),
                  sigma=torch.tensor(0.01, dtype=torch.float64))
    assert target.log_joint(values) < -1e20
    view = ProgramLikelihood.build(target, values, "f", _programs(5, seed=9))
    assert view is not None
    for p in _programs(50, seed=4):
        full = target.log_joint(dict(values, f=p))
        assert view.log_joint(p) == pytest.approx(full, rel=1e-9, abs=1e-9) or full == -math.inf


def test_float32_data_get_the_incremental_view():
    """torch's default float32 tensors (``torch.linspace``) are promoted to float64 as numpy
    arrays are: the model runs in float64 and its program moves are scored in numpy (before,
    the view's float64 log L missed the float32 run's by 1e-6 and no view was built)."""
    x, y = torch.linspace(-1.0, 1.0, 12), torch.as_tensor(Y, dtype=torch.float32)
    target, state = _target(normal_model, (x,), {"y": y})
    assert target.args[0].dtype == torch.float64 and target.kwargs["y"].dtype == torch.float64
    assert ProgramLikelihood.build(target, state.values, "f", _programs(5)) is not None
