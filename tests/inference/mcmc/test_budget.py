"""max_time stops chains cleanly with a warning; tempering arguments are validated."""

from __future__ import annotations

import time

import numpy as np
import pytest

import ppl
from inference import infer
from inference.api import RunWarning
from inference.mcmc.tempering import geometric_ladder
from ppl import dist

PRIOR = ppl.ProgramPrior("arith", inputs=["x"], max_depth=4)
X = np.linspace(-1.0, 1.0, 10)
Y = X**2


def model(x, y=None):
    f = ppl.sample("f", PRIOR)
    sigma = ppl.sample("sigma", dist.HalfNormal(1.0))
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), sigma), obs=y)


def test_max_time_cuts_short_with_a_warning():
    with pytest.warns(RunWarning, match="max_time"):
        post = infer(model, X, y=Y, num_samples=10**6, num_warmup=5, num_chains=2,
                     chain_method="sequential", progress=False, max_time=1.0)
    n = post.num_draws
    assert 0 < n < 10**6
    assert post.samples["f"].shape == (2, n)
    assert post.samples["sigma"].shape == (2, n)
    assert post.log_lik["y"].shape == (2, n, 10)


def test_max_time_too_short_for_warmup_is_an_error():
    """Without the search phase, num_warmup sweeps are kept to: no draws is an error."""
    with pytest.warns(RunWarning), pytest.raises(ppl.PPLError, match="No draws"):
        infer(model, X, y=Y, num_samples=10, num_warmup=10**6, num_chains=1,
              chain_method="sequential", progress=False, max_time=0.5, search_share=0)


def test_after_a_search_warmup_yields_to_the_budget():
    """After the search, warmup ends at num_warmup sweeps or half the time left."""
    with pytest.warns(RunWarning, match="max_time"):
        post = infer(model, X, y=Y, num_samples=10**6, num_warmup=10**6, num_chains=1,
                     chain_method="sequential", progress=False, max_time=2.0)
    assert post.num_draws > 0


def test_a_search_that_overruns_the_budget_keeps_one_draw(monkeypatch):
    """A search that ends after the whole budget (a loaded machine: its last sweeps took
    longer than planned) still hands its best state on: one exact sweep from it is kept."""
    from inference.mcmc import driver

    def slow_search(*args, **kwargs):
        found = real(*args, **kwargs)
        time.sleep(1.0)  # the budget is 0.5 s
        return found

    real = driver._search
    monkeypatch.setattr(driver, "_search", slow_search)
    with pytest.warns(RunWarning, match="max_time"):
        post = infer(model, X, y=Y, num_samples=10**6, num_chains=2, chain_method="sequential",
                     progress=False, max_time=0.5, search_patience=3)
    assert post.num_draws == 1
    assert post.samples["f"].shape == (2, 1) and np.isfinite(post.stats["lp"]).all()
    assert len(post.attrs["search"]) == 2  # each chain ran its search (however short)


@pytest.mark.parametrize("kwargs", [{"max_time": 0}, {"max_time": -1}, {"max_time": "1"},
                                    {"num_rungs": 0}, {"beta_min": 1.5},
                                    {"beta_min": 0.0}, {"search_share": 1.0},
                                    {"search_share": -0.1}, {"search_beta_min": 0.0},
                                    {"search_rungs": 0}, {"search_patience": 0}], ids=str)
def test_bad_budget_or_ladder_is_rejected(kwargs):
    with pytest.raises(ppl.PPLError):
        infer(model, X, y=Y, num_samples=5, num_chains=1, chain_method="sequential",
              progress=False, **kwargs)


def test_geometric_ladder():
    betas = geometric_ladder(4, 0.001)
    assert betas[0] == 1.0 and betas[-1] == pytest.approx(0.001)
    assert np.allclose(betas[1:] / betas[:-1], 0.1)
    assert geometric_ladder(1, 0.5).tolist() == [1.0]


def test_default_warmup_leaves_the_budget_for_draws():
    """num_samples=10**6 with max_time means "until the budget": warmup is capped at 200."""
    with pytest.warns(RunWarning, match="max_time"):
        post = infer(model, X, y=Y, num_samples=10**6, num_chains=1,
                     chain_method="sequential", progress=False, max_time=5.0,
                     blocks=[("ProgramMH", "f"), ("RW", "sigma")])
    assert post.num_draws > 0


def test_search_phase_only_with_a_budget():
    """max_time turns the search phase on (its record in attrs); search_share=0 and runs
    without a budget have none."""
    # few start candidates: the walkers' set-up must not eat the phase on a loaded machine
    with pytest.warns(RunWarning, match="max_time"):
        post = infer(model, X, y=Y, num_samples=10**6, num_warmup=5, num_chains=1,
                     progress=False, max_time=4.0, search_patience=3, init_candidates=5)
    (record,) = post.attrs["search"]
    assert record["sweeps"] > 0 and record["restarts"] > 0
    assert 0.0 <= record["swap_rate"] <= 1.0
    assert 0 < record["seconds"] < 4.0
    assert np.isfinite(record["log_joint"])
    times = [t for t, _ in record["history"]]
    assert times and times == sorted(times) and 0 <= times[0] <= times[-1] < 4.0
    assert all(PRIOR.parse(best["f"]).key for _, best in record["history"])
    with pytest.warns(RunWarning, match="max_time"):
        post = infer(model, X, y=Y, num_samples=10**6, num_warmup=5, num_chains=1,
                     progress=False, max_time=1.0, search_share=0)
    assert "search" not in post.attrs
    post = infer(model, X, y=Y, num_samples=5, num_warmup=5, num_chains=1, progress=False)
    assert "search" not in post.attrs


def test_the_search_uses_its_own_joint_noise_and_the_chain_its(monkeypatch):
    """The search's walkers (its β = 1 walker included) move with ``search_joint_noise``;
    the exact chain after it with ``joint_noise`` again."""
    from inference.mcmc.blocks import joint, program

    seen: list[tuple[float, bool]] = []
    real = joint.joint_move

    def spy(rng, ctx, view):
        seen.append((ctx.options.joint_noise, ctx.target.beta == 1.0))
        return real(rng, ctx, view)

    monkeypatch.setattr(program, "joint_move", spy)
    with pytest.warns(RunWarning, match="max_time"):
        post = infer(model, X, y=Y, num_samples=10**6, num_warmup=5, num_chains=1,
                     chain_method="sequential", progress=False, max_time=3.0,
                     init_candidates=5, search_joint_noise=1.0, joint_noise=0.0)
    assert post.num_draws > 0
    cold = [j for j, at_one in seen if at_one]
    assert (1.0, False) in seen                    # a hot walker
    assert cold[0] == 1.0 and cold[-1] == 0.0      # the β = 1 walker, then the chain
    assert cold == sorted(cold, reverse=True)      # back to its own options once


def test_pool_start_keeps_its_own_with_probability_e_to_minus_delta():
    """The chain e^(-δ) less dense than the best keeps its own start with probability
    e^(-δ) (within 4 standard errors of 4,000 draws); the best chain always keeps its own;
    a chain whose search found nothing finite always moves."""
    from inference.mcmc.driver import pool_start

    rng = np.random.default_rng(3)
    a, b = PRIOR.parse("(x * x)"), PRIOR.parse("(x + x)")
    pool = [(10.0, {"f": a}), (10.0 - np.log(4.0), {"f": b}), (-np.inf, {})]
    kept = np.array([pool_start(rng, 1, pool) == 1 for _ in range(4000)])
    assert abs(kept.mean() - 0.25) < 4 * np.sqrt(0.25 * 0.75 / 4000)
    assert all(pool_start(rng, 1, pool) in (0, 1) for _ in range(100))
    assert all(pool_start(rng, 0, pool) == 0 for _ in range(100))
    assert all(pool_start(rng, 2, pool) == 0 for _ in range(100))
    same = [pool[0], (10.0 - 30.0, {"f": a})]  # the same law, constants aside: kept
    assert all(pool_start(rng, 1, same) == 1 for _ in range(100))


def test_a_chain_whose_search_lagged_starts_from_the_best_chains_state(monkeypatch):
    """Chains' searches are pooled: a chain whose search's best is (a line, and) e^50
    less dense than another chain's starts its exact phase there
    (attrs["search"][k]["start"]); with search_pool=False it keeps its own."""
    from inference.mcmc import driver

    def lagging(rng, spec, kernel, state, deadline, start):
        last, values, found = real(rng, spec, kernel, state, deadline, start)
        if spec.chain == 1:  # as if this chain's search had found only a line
            values = {**state.values, "f": PRIOR.parse("x")}
            found = {**found, "log_joint": kernel.target.log_joint(values) - 50.0}
        return last, values, found

    real = driver._search
    monkeypatch.setattr(driver, "_search", lagging)
    run = {"num_samples": 10**6, "num_chains": 2, "chain_method": "sequential",
           "progress": False, "max_time": 1.0, "search_patience": 3}
    with pytest.warns(RunWarning, match="max_time"):
        post = infer(model, X, y=Y, **run)
    assert post.attrs["search"][1]["start"] == 0
    assert post.attrs["search"][0]["start"] == 0
    with pytest.warns(RunWarning, match="max_time"):
        alone = infer(model, X, y=Y, search_pool=False, **run)
    assert all("start" not in s for s in alone.attrs["search"])
