"""Bad inputs and faults, "Data and runs" (TESTING.md), for ``inference.infer``.

Each row that applies to the current engine is a test here: NaN / inf / empty / mis-shaped
observed data are rejected before sampling with a :class:`ppl.DataError` naming the site;
a model no initial state can explain gives :class:`ppl.InitializationError` naming the
sites; models without latent sites, or without continuous ones, run; one chain works and
reports R-hat as unavailable; a crashed chain is reported and the other chains' draws are
kept; bad arguments are a :class:`ppl.PPLError` naming the argument.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from scipy import stats

import ppl
from inference import Posterior, api, infer
from inference.api import RunWarning
from inference.arviz import az
from inference.mcmc import driver
from ppl import dist
from ppl.errors import DataError, InitializationError, PPLError

FAST: dict[str, Any] = {"num_samples": 30, "num_chains": 2, "seed": 0,
                        "chain_method": "sequential", "progress": False, "program_moves": 1}

X = np.linspace(-1.0, 1.0, 10)
Y = X**2 + 0.1 * np.random.default_rng(0).normal(size=10)

ARITH = ppl.ProgramPrior("arith", inputs=["x"], max_depth=4)
TINY = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=3)


def program_model(x: Any, y: Any = None) -> None:
    """The flagship model: a program and a noise scale."""
    f = ppl.sample("f", ARITH)
    sigma = ppl.sample("sigma", dist.HalfNormal(1.0))
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), sigma), obs=y)


def event_model(x: Any, y: Any = None) -> None:
    """The same likelihood written with ``to_event`` instead of a plate."""
    f = ppl.sample("f", ARITH)
    sigma = ppl.sample("sigma", dist.HalfNormal(1.0))
    ppl.sample("y", dist.Normal(f(x), sigma).to_event(1), obs=y)


def scalar_model(y: Any = None) -> None:
    mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
    ppl.sample("y", dist.Normal(mu, 1.0), obs=y)


def program_only_model(x: Any, y: Any = None) -> None:
    """A program site and no continuous latents (tiny has no constants)."""
    f = ppl.sample("f", TINY)
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), 0.3), obs=y)


def no_latent_model(x: Any, y: Any = None) -> None:
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(x, 1.0), obs=y)


def impossible_model(x: Any, y: Any = None) -> None:
    """y within ±0.01 of f(x): no program of tiny (depth ≤ 3, x in [−1, 1]) reaches 1000."""
    f = ppl.sample("f", TINY)
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Uniform(f(x) - 0.01, f(x) + 0.01), obs=y)


def minus_inf_factor_model(x: Any) -> None:
    ppl.sample("f", TINY)
    ppl.factor("never", torch.tensor(-math.inf, dtype=torch.float64))


def factor_model() -> None:
    """A standard normal written as a flat site plus a factor."""
    s = ppl.sample("s", dist.Normal(0.0, 1.0))
    ppl.factor("penalty", -(s**2))


def with_nan(y: np.ndarray, value: float) -> np.ndarray:
    y = y.copy()
    y[3] = value
    return y


# ---------------------------------------------------------------------------- observed data
# (model, args, observed y, strings the DataError message must contain)
BAD_DATA = [
    pytest.param(program_model, (X,), with_nan(Y, np.nan), ["'y'", "NaN"], id="nan"),
    pytest.param(program_model, (X,), with_nan(Y, np.inf), ["'y'", "infinite"], id="inf"),
    pytest.param(program_model, (X,), with_nan(Y, -np.inf), ["'y'", "infinite"],
                 id="minus-inf"),
    pytest.param(program_model, (X,), [math.nan, *Y[1:]], ["'y'", "NaN"], id="nan-in-list"),
    pytest.param(scalar_model, (), torch.tensor(math.nan), ["'y'", "NaN"],
                 id="nan-scalar-tensor"),
    pytest.param(event_model, (np.array([]),), np.array([]), ["'y'", "empty"],
                 id="empty-event"),
    pytest.param(program_model, (np.array([]),), np.array([]), ["'y'", "empty"],
                 id="empty-plate"),
    pytest.param(program_model, (X,), Y.reshape(-1, 1), ["'y'", "(10, 1)", "(10,)"],
                 id="column-vector"),
    pytest.param(program_model, (X,), Y[:5], ["'y'", "(5,)", "(10,)"], id="wrong-length"),
]


@pytest.mark.parametrize("method", ["mcmc", "enumerate", "importance"])
@pytest.mark.parametrize(("model", "args", "y", "needles"), BAD_DATA)
def test_bad_observed_data_is_rejected(model: Callable[..., Any], args: tuple[Any, ...],
                                       y: Any, needles: list[str], method: str,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Rejected before sampling (no chain runs), with the site named."""
    monkeypatch.setattr(api, "run_chains", _no_sampling)
    with pytest.raises(DataError) as err:
        infer(model, *args, y=y, method=method, **FAST)
    for needle in needles:
        assert needle in str(err.value)


def _no_sampling(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("sampling started on bad input")


def test_good_data_of_every_accepted_type_runs() -> None:
    """The checks do not reject good data given as a list, a tensor, or integers."""
    for y in (list(Y), torch.as_tensor(Y), np.round(Y * 10).astype(np.int64)):
        post = infer(program_model, X, y=y, **FAST)
        assert post.log_lik["y"].shape == (2, 30, 10)


# ---------------------------------------------------------------------------- initialisation
def test_no_valid_start_names_the_sites() -> None:
    """Every start invalid: the error, whatever its class, names the site."""
    with pytest.raises(PPLError, match=r"sites: f\b"):
        infer(impossible_model, X, y=np.full(10, 1000.0), **FAST)


@pytest.mark.parametrize(("model", "kwargs"), [
    pytest.param(impossible_model, {"y": np.full(10, 1000.0)}, id="data-no-program-explains"),
    pytest.param(minus_inf_factor_model, {}, id="factor-minus-inf"),
])
def test_no_valid_start_raises_initialization_error(model: Callable[..., Any],
                                                    kwargs: dict[str, Any]) -> None:
    with pytest.raises(InitializationError, match=r"sites: f\b"):
        infer(model, X, **kwargs, **FAST)


def test_factor_site_is_not_data() -> None:
    """``ppl.factor`` adds to the log density; it is not observed data."""
    post = infer(factor_model, **{**FAST, "num_samples": 200})
    assert post.samples["s"].shape == (2, 200)
    assert post.log_lik == {}
    # N(0, 1) times exp(−s²) is N(0, 1/3): sd 0.58, where an ignored factor leaves sd 1
    assert abs(post.samples["s"].std() - math.sqrt(1 / 3)) < 0.15


# ---------------------------------------------------------------------------- degenerate models
def test_model_without_latent_sites_runs() -> None:
    post = infer(no_latent_model, X, y=Y, **FAST)
    assert post.samples == {}
    assert post.log_lik["y"].shape == (2, 30, 10)
    expected = stats.norm(X, 1.0).logpdf(Y)
    np.testing.assert_allclose(post.log_lik["y"], np.broadcast_to(expected, (2, 30, 10)))
    np.testing.assert_allclose(post.stats["lp"], expected.sum())


def test_model_without_latent_sites_summarises() -> None:
    post = infer(no_latent_model, X, y=Y, **FAST)
    assert len(post.summary()) == 0


def test_model_without_continuous_latents_runs() -> None:
    post = infer(program_only_model, X, y=Y, **FAST)
    assert list(post.samples) == ["f"]
    assert "RW" not in post.attrs["plan"]
    table = post.programs("f", top=None, simplify=False)
    assert table["count"].sum() == 2 * 30
    assert {"f_size", "f_depth", "f_log_prior"} <= set(post.summary().index)


# ---------------------------------------------------------------------------- one chain
@pytest.fixture(scope="module")
def one_chain() -> Posterior:
    return infer(program_model, X, y=Y, **{**FAST, "num_chains": 1, "num_samples": 50})


def test_one_chain_works(one_chain: Posterior) -> None:
    assert one_chain.num_chains == 1
    assert one_chain.num_draws == 50
    assert one_chain.samples["sigma"].shape == (1, 50)


@pytest.mark.parametrize("how", ["Posterior.summary", "az.summary"])
def test_one_chain_reports_rhat_unavailable(one_chain: Posterior, how: str) -> None:
    table = (one_chain.summary() if how == "Posterior.summary"
             else az.summary(one_chain.to_arviz(), var_names=["sigma"]))
    assert "sigma" in table.index
    assert table["r_hat"].isna().all()
    assert np.isfinite(table.loc["sigma", "mean"])


# ---------------------------------------------------------------------------- crashed chains
class CrashAfter:
    """A model that raises RuntimeError at its ``calls``-th execution (counts them)."""

    def __init__(self, model: Callable[..., Any], calls: float) -> None:
        self.model, self.calls, self.count = model, calls, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.count += 1
        if self.count >= self.calls:
            raise RuntimeError("chain fell over")
        return self.model(*args, **kwargs)


def crash_chains(monkeypatch: pytest.MonkeyPatch, chains: set[int], calls: float
                 ) -> list[tuple[CrashAfter, driver.ChainResult]]:
    """Run the model of the given chains through ``CrashAfter(model, calls)``; returns the
    list each such chain's wrapper and result are appended to."""
    real = driver.run_chain
    seen: list[tuple[CrashAfter, driver.ChainResult]] = []

    def run_chain(spec: driver.ChainSpec) -> driver.ChainResult:
        if spec.chain not in chains:
            return real(spec)
        model = CrashAfter(spec.model, calls)
        result = real(spec._replace(model=model))
        seen.append((model, result))
        return result

    monkeypatch.setattr(driver, "run_chain", run_chain)
    return seen


CRASH_RUN: dict[str, Any] = {**FAST, "num_chains": 4, "seed": 5}


def test_crashed_chain_is_reported_and_the_others_kept(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as m:  # a clean run, counting chain 1's model executions
        counted = crash_chains(m, {1}, calls=math.inf)
        clean = infer(program_model, X, y=Y, **CRASH_RUN)
    ((counter, _),) = counted
    # crash chain 1 near its end, while it records draws
    seen = crash_chains(monkeypatch, {1}, calls=counter.count - counter.count // 10)
    with pytest.warns(RunWarning, match=r"(?s)1 of 4 chains crashed.*\[1\].*chain fell over"):
        post = infer(program_model, X, y=Y, **CRASH_RUN)
    ((_, bad),) = seen
    assert bad.error is not None and "RuntimeError: chain fell over" in bad.error
    assert 0 < len(bad.stats["lp"]) < 30, "the crash should come mid-sampling"
    assert post.num_chains == 3
    assert post.num_draws == 30
    keep = [0, 2, 3]
    assert post.attrs["chains"] == keep
    assert post.samples["sigma"].tobytes() == clean.samples["sigma"][keep].tobytes()
    assert (post.samples["f"] == clean.samples["f"][keep]).all()
    assert post.stats["lp"].tobytes() == clean.stats["lp"][keep].tobytes()
    assert post.log_lik["y"].tobytes() == clean.log_lik["y"][keep].tobytes()


def test_every_chain_crashed_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    crash_chains(monkeypatch, {0, 1, 2, 3}, calls=150)
    with pytest.raises(PPLError, match=r"(?s)Every chain crashed.*chain fell over"):
        infer(program_model, X, y=Y, **CRASH_RUN)


# ---------------------------------------------------------------------------- bad arguments
# (keyword arguments of infer, text the PPLError must contain)
BAD_ARGUMENTS = [
    pytest.param({"method": "bogus"}, "method", id="unknown-method"),
    pytest.param({"method": "MCMC"}, "method", id="method-wrong-case"),
    pytest.param({"num_samples": 0}, "num_samples", id="num_samples-zero"),
    pytest.param({"num_samples": -10}, "num_samples", id="num_samples-negative"),
    pytest.param({"num_samples": 10.0}, "num_samples", id="num_samples-float"),
    pytest.param({"num_samples": "10"}, "num_samples", id="num_samples-str"),
    pytest.param({"num_samples": None}, "num_samples", id="num_samples-none"),
    pytest.param({"num_samples": True}, "num_samples", id="num_samples-bool"),
    pytest.param({"num_chains": 0}, "num_chains", id="num_chains-zero"),
    pytest.param({"thin": 0}, "thin", id="thin-zero"),
    pytest.param({"num_warmup": -5}, "num_warmup", id="num_warmup-negative"),
    pytest.param({"num_warmup": 1.5}, "num_warmup", id="num_warmup-float"),
    pytest.param({"seed": -1}, "seed", id="seed-negative"),
    pytest.param({"chain_method": "threads"}, "chain_method", id="chain_method-unknown"),
    pytest.param({"structure_weights": {"bogus": 1.0}}, "structure_weights",
                 id="structure_weights-unknown-move"),
    pytest.param({"structure_weights": {"regenerate": 0.0}}, "structure_weights",
                 id="structure_weights-all-zero"),
    pytest.param({"init_candidates": 0}, "init_candidates", id="init_candidates-zero"),
    pytest.param({"method": "importance", "num_particles": -3}, "num_particles",
                 id="num_particles-negative"),
    pytest.param({"method": "importance", "num_particles": 0}, "num_particles",
                 id="num_particles-zero"),
]


@pytest.mark.parametrize(("bad", "needle"), BAD_ARGUMENTS)
def test_bad_argument_is_rejected(bad: dict[str, Any], needle: str,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "run_chains", _no_sampling)
    with pytest.raises(PPLError, match=needle):
        infer(program_only_model, X, y=Y, **{**FAST, **bad})


def tiny_sigma_model(x: Any, y: Any = None) -> None:
    f = ppl.sample("f", TINY)
    sigma = ppl.sample("sigma", dist.HalfNormal(1.0))
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), sigma), obs=y)


@pytest.mark.parametrize(("model", "needle"), [
    pytest.param(tiny_sigma_model, "'sigma' is continuous", id="continuous-site"),
    pytest.param(program_model, "infinite", id="program-with-constants"),
])
def test_enumerate_rejects_an_infinite_space(model: Callable[..., Any], needle: str) -> None:
    with pytest.raises(PPLError, match=needle):
        infer(model, X, y=Y, **{**FAST, "method": "enumerate"})


BAD_INIT = [({"g": 1.0}, "init_values names 'g', which is not a latent site"),
            ({"sigma": -1.0}, r"init_values\['sigma'\] = -1.0 is outside the support"),
            ({"sigma": np.ones(3)}, r"init_values\['sigma'\] has shape \(3,\)"),
            ({"sigma": math.nan}, r"init_values\['sigma'\] is empty or has NaN"),
            ({"sigma": "big"}, r"init_values\['sigma'\] must be a number"),
            ({"f": "x +"}, r"init_values\['f'\] does not parse as a program of its site's prior"),
            ({"f": 3.0}, r"init_values\['f'\] must be a ppl.Program or its text")]


@pytest.mark.parametrize(("init", "needle"), BAD_INIT,
                         ids=["unknown", "support", "shape", "nan", "type", "parse",
                              "program-type"])
def test_bad_init_values_are_rejected_naming_the_site(init: dict[str, Any], needle: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """mcmc checks init_values before any chain starts (they used to crash every chain)."""
    monkeypatch.setattr(driver, "run_chains", _no_sampling)
    with pytest.raises(PPLError, match=needle):
        infer(program_model, X, y=Y, init_values=init, **FAST)


def test_init_values_take_program_text_and_hold_the_start() -> None:
    """A program given as text starts every chain there (the start is checked by the
    kernel's init, before any sweep)."""
    from inference.config import RunConfig
    from inference.mcmc.gibbs import Gibbs
    from inference.target import Target

    target = Target(program_model, (X,), {"y": Y})
    init = target.check_init({"f": "(x * x)", "sigma": 0.1})
    cfg = RunConfig.build(init_values=init)
    state = Gibbs(target, cfg.mcmc, cfg.nuts, cfg.backend).init(np.random.default_rng(0),
                                                                 cfg.init_values, 0)
    assert str(state.values["f"]) == "(x * x)" and float(state.values["sigma"]) == 0.1
    post = infer(program_model, X, y=Y, init_values={"f": "(x * x)", "sigma": 0.1}, **FAST)
    assert post.num_draws == 30
