"""ppl.regression: the standard model, its noise floor, and its errors.

The floor's purpose (docs/decisions.md, "A noise floor for noiseless data"): on noiseless
data, two trees of one function differ by float64 round-off only; with the floor their log
densities agree to 1e-9 at any sigma, without it (floor=0) a small sigma magnifies the
round-off into a difference the posterior would act on.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ppl

PRIOR = ppl.ProgramPrior("arith", inputs=["x"], max_depth=4)
X = np.linspace(0.1, 2.0, 20)
Y = np.exp(X) * X / 3.0


def _log_density(floor: float, text: str, sigma: float) -> float:
    model = ppl.regression(PRIOR, scale=float(np.std(Y)), floor=floor)
    world = ppl.World(model, X, y=Y)
    return world.log_density({"f": PRIOR.parse(text),
                              "sigma": torch.tensor(sigma, dtype=torch.float64)})


def test_equivalent_trees_agree_with_the_floor_and_not_without():
    a, b = "((exp(x) * x) / 3.0)", "(exp(x) * (x / 3.0))"
    out_a = PRIOR.parse(a)(X)
    out_b = PRIOR.parse(b)(X)
    assert np.array_equal(out_a, out_b) is False  # round-off apart
    assert np.allclose(out_a, out_b, rtol=1e-15, atol=0)
    prior_gap = float(PRIOR.log_prob(PRIOR.parse(a)) - PRIOR.log_prob(PRIOR.parse(b)))
    with_floor = _log_density(ppl.models.NOISE_FLOOR, a, 1e-12) - _log_density(
        ppl.models.NOISE_FLOOR, b, 1e-12)
    assert abs(with_floor - prior_gap) < 1e-9
    without = _log_density(0.0, a, 1e-16) - _log_density(0.0, b, 1e-16)
    assert abs(without - prior_gap) > 1.0


def test_the_model_runs_under_infer_with_the_noise_block():
    from inference import infer

    post = infer(ppl.regression(PRIOR, scale=float(np.std(Y))), X, y=Y, num_samples=20,
                 num_warmup=20, num_chains=1, progress=False)
    assert post.attrs["plan"] == "Gibbs: ProgramMH[f] + Noise[sigma]"
    assert post.samples["sigma"].shape == (1, 20)


@pytest.mark.parametrize("kwargs, message", [
    ({"scale": 0.0}, "scale must be a positive"),
    ({"scale": float("nan")}, "scale must be a positive"),
    ({"scale": 1.0, "floor": -1.0}, "floor must be"),
    ({"scale": True}, "scale must be a positive"),
], ids=["zero-scale", "nan-scale", "negative-floor", "bool-scale"])
def test_bad_settings_are_model_errors(kwargs, message):
    with pytest.raises(ppl.ModelError, match=message):
        ppl.regression(PRIOR, **kwargs)


def test_bad_calls_name_what_is_wrong():
    with pytest.raises(ppl.ModelError, match=r"prior must be a ppl\.ProgramPrior"):
        ppl.regression("arith")  # type: ignore[arg-type]
    model = ppl.regression(PRIOR)
    with pytest.raises(ppl.PPLError, match="unknown keyword 'obs'"):
        ppl.World(model, X, obs=Y)
    with pytest.raises(ppl.PPLError, match="2 input column"):
        ppl.World(model, X, X, y=Y)
