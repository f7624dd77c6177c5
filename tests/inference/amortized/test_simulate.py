"""Tests of inference/amortized/simulate.py: ancestral simulation and the data view.

(iii) invalid draws (NaN/inf outputs) are counted and drawn again, never kept; a model whose
every draw is invalid is refused after MAX_TRIES; draws are a deterministic function of the
seed; bad arguments are PPLErrors naming what does not fit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import ppl
from inference.amortized import SimulationError, data_view, simulate
from inference.amortized.simulate import MAX_TRIES
from ppl import dist
from ppl.errors import DataError, PPLError

X = np.linspace(-2.0, 2.0, 9)  # holds 0 and negative numbers: log and 1/x are invalid
RISKY = ppl.ProgramPrior(ppl.Grammar.load("arith", weights={"log": 3.0, "div": 2.0}),
                         inputs=["x"], max_depth=2)


def risky_model(x: Any, y: Any = None) -> None:
    f = ppl.sample("f", RISKY)
    sigma = ppl.sample("sigma", dist.HalfNormal(1.0))
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), sigma), obs=y)


def nan_model(x: Any, y: Any = None) -> None:
    f = ppl.sample("f", RISKY)
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x) * float("nan"), 1.0), obs=y)


def test_invalid_draws_are_counted_and_drawn_again() -> None:
    sims = simulate(risky_model, X, y=np.zeros(9), num_simulations=200, seed=1)
    assert len(sims) == 200 and sims.num_invalid > 0
    assert all(np.all(np.isfinite(y)) for y in sims.observed["y"])
    assert sims.seconds > 0 and sorted(sims.latents) == ["sigma"]
    # a draw is only kept if valid: programs invalid on X appear with no data
    for f, y in zip(sims.programs["f"], sims.observed["y"], strict=True):
        with np.errstate(all="ignore"):
            assert np.all(np.isfinite(f(X))), f
        assert y.shape == (9,)


def test_only_invalid_draws_are_refused() -> None:
    with pytest.raises(SimulationError, match=f"{MAX_TRIES} draws in a row"):
        simulate(nan_model, X, y=np.zeros(9), num_simulations=1, seed=0)


def test_same_seed_same_draws() -> None:
    a = simulate(risky_model, X, y=np.zeros(9), num_simulations=50, seed=4)
    b = simulate(risky_model, X, y=np.zeros(9), num_simulations=50, seed=4)
    c = simulate(risky_model, X, y=np.zeros(9), num_simulations=50, seed=5)
    assert a.programs == b.programs and a.num_invalid == b.num_invalid
    assert all(np.array_equal(u, v) for u, v in zip(a.observed["y"], b.observed["y"],
                                                    strict=True))
    assert all(np.array_equal(u, v) for u, v in zip(a.latents["sigma"], b.latents["sigma"],
                                                    strict=True))
    assert [str(f) for f in a.programs["f"]] != [str(f) for f in c.programs["f"]]


def test_global_random_state_neither_used_nor_changed() -> None:
    torch.manual_seed(0)
    before = torch.get_rng_state()
    a = simulate(risky_model, X, y=np.zeros(9), num_simulations=5, seed=2)
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(99)
    b = simulate(risky_model, X, y=np.zeros(9), num_simulations=5, seed=2)
    assert a.programs == b.programs


def test_sampled_designs() -> None:
    def design(rng: np.random.Generator) -> tuple[tuple[Any, ...], dict[str, Any]]:
        n = int(rng.integers(3, 7))
        return (np.sort(rng.uniform(0.5, 2.0, n)),), {"y": np.zeros(n)}

    sims = simulate(risky_model, num_simulations=20, seed=3, inputs=design)
    again = simulate(risky_model, num_simulations=20, seed=3, inputs=design)
    sizes = {len(a[0]) for a in sims.args}
    assert len(sizes) > 1 and sims.programs == again.programs
    for i in range(len(sims)):
        x, y = sims.data(i, RISKY)
        assert x.shape == (len(sims.args[i][0]), 1) and y.shape == (x.shape[0],)
        assert np.array_equal(x[:, 0], sims.args[i][0])
    assert len(sims.subset([1, 3])) == 2


@pytest.mark.parametrize(("call", "match"), [
    (lambda: simulate(risky_model, X, y=np.zeros(9), num_simulations=0, seed=0),
     "num_simulations"),
    (lambda: simulate(risky_model, X, y=np.zeros(9), num_simulations=2, seed=-1), "seed"),
    (lambda: simulate(risky_model, X, num_simulations=2, seed=0), "observes no site"),
    (lambda: simulate(risky_model, num_simulations=2, seed=0, inputs="x"), "callable"),
    (lambda: simulate(risky_model, num_simulations=2, seed=0, inputs=lambda rng: X),
     r"\(args, kwargs\)"),
    (lambda: simulate(risky_model, X, y=np.zeros(4), num_simulations=2, seed=0), "shape"),
], ids=["num", "seed", "no-data", "inputs-type", "inputs-return", "data-shape"])
def test_bad_arguments_are_refused(call: Any, match: str) -> None:
    with pytest.raises(PPLError, match=match):
        call()


def test_data_view_convention_and_errors() -> None:
    prior = ppl.ProgramPrior("arith", inputs=["x", "z"], max_depth=3)
    x, y = data_view((torch.arange(3.0), np.ones(3)), {}, {"y": np.arange(3.0)}, prior)
    assert x.tolist() == [[0.0, 1.0], [1.0, 1.0], [2.0, 1.0]] and y.tolist() == [0, 1, 2]
    x, _ = data_view((np.arange(3.0),), {"z": 5.0}, {"y": np.zeros(3), "w": 1.0}, prior)
    assert x[:, 1].tolist() == [5.0, 5.0, 5.0]
    with pytest.raises(DataError, match=r"input 'z'.*no model argument"):
        data_view((np.arange(3.0),), {}, {"y": np.zeros(3)}, prior)
    with pytest.raises(DataError, match=r"Positional argument 1.*must hold 3 finite"):
        data_view((np.arange(3.0), np.arange(4.0)), {}, {"y": np.zeros(3)}, prior)
    with pytest.raises(DataError, match="numeric"):
        data_view(("abc", np.arange(3.0)), {}, {"y": np.zeros(3)}, prior)
    with pytest.raises(DataError, match="observed site"):
        data_view((np.arange(3.0), np.arange(3.0)), {}, {}, prior)
    with pytest.raises(DataError, match="'y' must hold"):
        data_view((np.arange(3.0), np.arange(3.0)), {}, {"y": [1.0, np.nan, 0.0]}, prior)
