"""Tests of inference/results.py and inference/_arviz.py on real results (DESIGN §6).

An ``method="mcmc"`` run of a program + noise model is converted to ArviZ and checked
against quantities recomputed independently (program statistics, pointwise
log-likelihoods, the log joint); ``az.summary``, ``az.plot_trace``, ``az.loo``,
``az.compare`` and NetCDF must work on it; save/load must restore the same Programs; the
program table, prediction and posterior predictive are checked for shape and consistency.
``method="enumerate"`` must report the exact posterior table; ``method="importance"`` its
ESS and k̂.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import logsumexp

import ppl
from inference import Posterior, infer, load
from inference.arviz import az
from ppl import dist
from ppl.errors import PPLError

matplotlib.use("Agg")

# One structure move per sweep: these tests are about the result objects, not mixing.
FAST: dict[str, Any] = {"method": "mcmc", "num_chains": 2, "num_samples": 200, "seed": 0,
                        "chain_method": "sequential", "progress": False, "program_moves": 1}

X = np.linspace(-1.0, 1.0, 12)
Y = X**2 + X + 0.2 * np.random.default_rng(0).normal(size=12)

ARITH = ppl.ProgramPrior("arith", inputs=["x"], max_depth=4)
KOZA = ppl.ProgramPrior("koza", inputs=["x"], max_depth=4)
TINY = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=3)
TINY_SIGMA = 0.3
TINY_X = np.linspace(0.0, 1.0, 6)
TINY_Y = np.sin(TINY_X) + 1 + TINY_SIGMA * np.random.default_rng(1).normal(size=6)

TABLE_COLUMNS = ["program", "probability", "count", "log_joint", "constants", "trees",
                 "simplified"]
NAN_PADDING_WARNING = "Your data appears to have a single value or no finite values"

# ArviZ 0.23 calls APIs that matplotlib 3.11 and pandas 3.1 deprecate; not ours to fix.
ARVIZ_MPL_DEPRECATION = pytest.mark.filterwarnings(
    "ignore:Passing a dict or None as alias_mapping:matplotlib.MatplotlibDeprecationWarning")
ARVIZ_PANDAS_DEPRECATION = pytest.mark.filterwarnings(
    "ignore:The inplace keyword in DataFrame:pandas.errors.Pandas4Warning")
# A high Pareto k̂ is a diagnostic of the posterior and data, not a failure of the interface.
PARETO_K_WARNING = pytest.mark.filterwarnings(
    "ignore:Estimated shape parameter of Pareto distribution:UserWarning")


def arith_model(x: Any, y: Any = None) -> None:
    f = ppl.sample("f", ARITH)
    sigma = ppl.sample("sigma", dist.HalfNormal(1.0))
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), sigma), obs=y)


def koza_model(x: Any, y: Any = None) -> None:
    f = ppl.sample("f", KOZA)
    sigma = ppl.sample("sigma", dist.HalfNormal(1.0))
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), sigma), obs=y)


def tiny_model(x: Any, y: Any = None) -> None:
    f = ppl.sample("f", TINY)
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), TINY_SIGMA), obs=y)


@pytest.fixture(scope="module")
def post() -> Posterior:
    return infer(arith_model, X, y=Y, **FAST)


@pytest.fixture(scope="module")
def idata(post: Posterior) -> Any:
    return post.to_arviz()


@pytest.fixture(scope="module")
def koza_post() -> Posterior:
    return infer(koza_model, X, y=Y, **FAST)


@pytest.fixture(scope="module")
def exact_post() -> Posterior:
    return infer(tiny_model, TINY_X, y=TINY_Y, method="enumerate", num_samples=500,
                 num_chains=2, seed=0)


@pytest.fixture(scope="module")
def importance_post() -> Posterior:
    return infer(tiny_model, TINY_X, y=TINY_Y, method="importance", num_samples=200,
                 num_chains=2, seed=0)


def flat_programs(post: Posterior, site: str = "f") -> list[ppl.Program]:
    return list(post.samples[site].reshape(-1))


# ---------------------------------------------------------------------------- InferenceData
def test_groups_and_variables(post: Posterior, idata: Any) -> None:
    assert {"posterior", "sample_stats", "log_likelihood", "observed_data"} <= set(
        idata.groups())
    assert set(idata.posterior.data_vars) == {"f", "f_size", "f_depth", "f_n_constants",
                                              "f_constants", "f_log_prior", "sigma"}
    for name in ("f", "f_size", "f_depth", "f_n_constants", "f_log_prior", "sigma"):
        assert idata.posterior[name].shape == (2, 200), name
    assert {"lp", "acceptance_rate"} <= set(idata.sample_stats.data_vars)
    assert idata.log_likelihood["y"].shape == (2, 200, 12)
    np.testing.assert_array_equal(idata.observed_data["y"].values, Y)


def test_program_statistics_match_the_programs(post: Posterior, idata: Any) -> None:
    programs = post.samples["f"]
    p = idata.posterior
    for c, d in np.ndindex(programs.shape):
        phi = programs[c, d]
        k = len(phi.constants)
        assert p["f_size"].values[c, d] == phi.size
        assert p["f_depth"].values[c, d] == phi.depth
        assert p["f_n_constants"].values[c, d] == k
        np.testing.assert_array_equal(p["f_constants"].values[c, d, :k], phi.constants)
        assert np.isnan(p["f_constants"].values[c, d, k:]).all()
        assert p["f_log_prior"].values[c, d] == pytest.approx(ARITH.log_density(phi),
                                                              abs=1e-12)
    # equal tree shapes (constants aside) share one id, different shapes do not
    shapes: dict[int, tuple[Any, ...]] = {}
    for i, phi in zip(p["f"].values.reshape(-1), programs.reshape(-1), strict=True):
        shape = (str(phi.with_constants(np.zeros(len(phi.constants)))),)
        assert shapes.setdefault(int(i), shape) == shape
    assert len(set(shapes.values())) == len(shapes)


def test_log_likelihood_and_lp_are_recomputed_exactly(post: Posterior) -> None:
    """Pointwise log-likelihood and lp agree with scipy on every draw."""
    for c, d in np.ndindex(post.samples["f"].shape):
        phi, sigma = post.samples["f"][c, d], float(post.samples["sigma"][c, d])
        pointwise = stats.norm(phi(X), sigma).logpdf(Y)
        np.testing.assert_allclose(post.log_lik["y"][c, d], pointwise, rtol=1e-10, atol=1e-10)
        lp = ARITH.log_density(phi) + stats.halfnorm(scale=1.0).logpdf(sigma) + pointwise.sum()
        assert post.stats["lp"][c, d] == pytest.approx(lp, rel=1e-10, abs=1e-10)


# ---------------------------------------------------------------------------- ArviZ
def test_az_summary(idata: Any) -> None:
    with warnings.catch_warnings():  # R-hat of a statistic constant in every chain is 0/0
        warnings.simplefilter("ignore", RuntimeWarning)
        table = az.summary(idata)
    assert {"sigma", "f_size", "f_depth", "f_n_constants", "f_log_prior"} <= set(table.index)
    row = table.loc["sigma"]
    assert np.isfinite(row[["mean", "sd", "ess_bulk", "r_hat"]].astype(float)).all()
    assert 0 < row["mean"] < 1


def test_posterior_summary(post: Posterior) -> None:
    table = post.summary()
    assert {"sigma", "f_size", "f_depth", "f_log_prior"} <= set(table.index)
    assert not any(name.startswith("f_constants") for name in table.index)


def test_posterior_summary_reports_number_of_constants(post: Posterior) -> None:
    assert "f_n_constants" in post.summary().index


@ARVIZ_MPL_DEPRECATION
@pytest.mark.filterwarnings(f"ignore:{NAN_PADDING_WARNING}:UserWarning")
def test_az_plot_trace(idata: Any) -> None:
    try:
        axes = az.plot_trace(idata)
        assert axes.shape[1] == 2
        assert axes.shape[0] >= len(idata.posterior.data_vars)
    finally:
        plt.close("all")


def hand_made(texts: list[list[str]]) -> Posterior:
    """A Posterior of arith_model with the given programs, (chain, draw) = shape of texts."""
    programs = np.empty((len(texts), len(texts[0])), dtype=object)
    for c, d in np.ndindex(programs.shape):
        programs[c, d] = ARITH.grammar.parse(texts[c][d])
    shape = programs.shape
    return Posterior(method="mcmc", samples={"f": programs, "sigma": np.full(shape, 0.2)},
                     stats={"lp": np.zeros(shape)}, log_lik={"y": np.zeros((*shape, 12))},
                     observed={"y": Y}, priors={"f": ARITH}, model=arith_model, args=(X,),
                     kwargs={"y": Y})


@pytest.mark.xfail(strict=True, raises=UserWarning, reason=(
    "BUG (minor): when a chain never visits a program with k constants, az.plot_trace "
    "warns 'Your data appears to have a single value or no finite values' for the NaN "
    "padding in f_constants[k-1] (inference/_arviz.py encode_programs); numeric variables "
    "alone plot cleanly"))
@ARVIZ_MPL_DEPRECATION
def test_az_plot_trace_without_warnings() -> None:
    post = hand_made([["(x + 0.5)", "(x + 0.7)", "(x * 1.5)", "(x + 0.6)"],
                      ["(x * x)", "(x + x)", "(x * x)", "((x * x) + x)"]])
    try:
        az.plot_trace(post.to_arviz())
    finally:
        plt.close("all")


@ARVIZ_MPL_DEPRECATION
# A chain that stays on one program (here: the true law) has constant program statistics,
# which ArviZ's KDE reports; any other warning still fails the test.
@pytest.mark.filterwarnings("ignore:Your data appears to have a single value:UserWarning")
def test_az_plot_trace_numeric_sites_without_warnings(idata: Any) -> None:
    try:
        az.plot_trace(idata, var_names=["sigma", "f_size", "f_log_prior"])
    finally:
        plt.close("all")


@PARETO_K_WARNING
def test_az_loo(idata: Any) -> None:
    loo = az.loo(idata, pointwise=True)
    assert loo["n_data_points"] == 12
    assert loo["n_samples"] == 400
    assert np.isfinite(loo["elpd_loo"])
    assert loo["loo_i"].shape == (12,)


@ARVIZ_PANDAS_DEPRECATION
@PARETO_K_WARNING
def test_az_compare(idata: Any, koza_post: Posterior) -> None:
    table = az.compare({"arith": idata, "koza": koza_post.to_arviz()})
    assert set(table.index) == {"arith", "koza"}
    assert sorted(table["rank"]) == [0, 1]
    assert table["weight"].sum() == pytest.approx(1.0)
    assert np.isfinite(table["elpd_loo"]).all()


def test_netcdf_round_trip(idata: Any, tmp_path: Path) -> None:
    path = tmp_path / "run.nc"
    idata.to_netcdf(str(path))
    back = az.from_netcdf(str(path))
    assert set(back.groups()) == set(idata.groups())
    for group in idata.groups():
        for name, var in getattr(idata, group).data_vars.items():
            np.testing.assert_array_equal(getattr(back, group)[name].values, var.values,
                                          err_msg=f"{group}.{name}")
    assert dict(back.attrs) == dict(idata.attrs)




def assert_same_posterior(a: Posterior, b: Posterior) -> None:
    assert set(a.samples) == set(b.samples)
    for p, q in zip(flat_programs(a), flat_programs(b), strict=True):
        assert p == q
        assert p.key == q.key
        assert str(p) == str(q)
    assert a.samples["sigma"].tobytes() == b.samples["sigma"].tobytes()
    assert a.stats["lp"].tobytes() == b.stats["lp"].tobytes()
    assert list(a.stats["move"].reshape(-1)) == list(b.stats["move"].reshape(-1))
    assert a.log_lik["y"].tobytes() == b.log_lik["y"].tobytes()
    pd.testing.assert_frame_equal(a.programs(simplify=False), b.programs(simplify=False))


def test_save_load_round_trip(post: Posterior, tmp_path: Path) -> None:
    path = tmp_path / "run.nc"
    post.save(str(path))
    back = load(str(path))
    assert back.method == "mcmc"
    assert_same_posterior(post, back)
    assert back.priors["f"].grammar.fingerprint == ARITH.grammar.fingerprint


def test_from_arviz_round_trip(post: Posterior, idata: Any) -> None:
    assert_same_posterior(post, Posterior.from_arviz(idata))


def test_save_load_keeps_exact_probabilities(exact_post: Posterior, tmp_path: Path) -> None:
    path = tmp_path / "exact.nc"
    exact_post.save(str(path))
    back = load(str(path))
    pd.testing.assert_frame_equal(back.programs(simplify=False),
                                  exact_post.programs(simplify=False))
    assert back.attrs["log_evidence"] == exact_post.attrs["log_evidence"]


def test_from_arviz_rejects_foreign_data() -> None:
    foreign = az.from_dict(posterior={"a": np.zeros((2, 5))})
    with pytest.raises(PPLError, match="not written by ppl"):
        Posterior.from_arviz(foreign)


# ---------------------------------------------------------------------------- programs()
def test_programs_table(post: Posterior) -> None:
    table = post.programs("f")
    assert list(table.columns) == TABLE_COLUMNS
    assert 1 <= len(table) <= 10
    assert table["probability"].is_monotonic_decreasing
    assert table["probability"].sum() <= 1 + 1e-12
    assert (table["probability"] > 0).all()
    assert table.equals(post.programs())  # the only program site is the default


def test_programs_full_table_accounts_for_every_draw(post: Posterior) -> None:
    table = post.programs("f", top=None, simplify=False, group="key")
    assert list(table.columns) == [c for c in TABLE_COLUMNS if c != "simplified"]
    draws = flat_programs(post)
    assert table["count"].sum() == len(draws)
    assert table["probability"].sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(table["probability"], table["count"] / len(draws))
    # one row per canonical key; log_joint is the mean lp over that key's draws
    lp = post.stats["lp"].reshape(-1)
    by_key: dict[str, list[float]] = defaultdict(list)
    for phi, value in zip(draws, lp, strict=True):
        by_key[phi.key].append(value)
    keys = [p.key for p in table["program"]]
    assert len(set(keys)) == len(keys) == len(by_key)
    for key, row in zip(keys, table.itertuples(), strict=True):
        assert row.count == len(by_key[key])
        assert row.log_joint == pytest.approx(np.mean(by_key[key]), rel=1e-12)


def test_programs_rejects_a_non_program_site(post: Posterior) -> None:
    with pytest.raises(PPLError, match="'sigma' is not a program site"):
        post.programs("sigma")


# ---------------------------------------------------------------------------- prediction
# Points of the data grid: every posterior program is valid there (its likelihood was finite).
X_NEW = X[[1, 5, 10]]


@pytest.mark.parametrize("how", ["positional", "keyword"])
def test_predict(post: Posterior, how: str) -> None:
    table = (post.predict(X_NEW, num_draws=200) if how == "positional"
             else post.predict(x=X_NEW, num_draws=200))
    assert len(table) == len(X_NEW)
    assert {"site", "mean", "sd", "lower", "upper"} <= set(table.columns)
    assert (table["site"] == "y").all()
    assert (table["lower"] <= table["mean"]).all()
    assert (table["mean"] <= table["upper"]).all()
    assert (table["sd"] > 0).all()
    # the 90% interval covers the noise-free truth x² + x
    truth = X_NEW**2 + X_NEW
    assert ((table["lower"] < truth) & (truth < table["upper"])).all()


def test_predict_is_reproducible(post: Posterior) -> None:
    a = post.predict(X_NEW, num_draws=100, seed=3)
    pd.testing.assert_frame_equal(a, post.predict(X_NEW, num_draws=100, seed=3))
    assert not a.equals(post.predict(X_NEW, num_draws=100, seed=4))


def test_predict_where_some_programs_are_invalid() -> None:
    post = hand_made([["(x + (x * x))", "(x * (x + (x / x)))", "(x + (x * x))",
                       "((x * x) + x)"]])
    table = post.predict(np.array([0.0, 0.5]), num_draws=4)
    assert np.isfinite(table[["mean", "sd", "lower", "upper"]].to_numpy()).all()
    assert (table["lower"] <= table["mean"]).all() and (table["mean"] <= table["upper"]).all()


def test_posterior_predictive_group(post: Posterior) -> None:
    idata = post.to_arviz(posterior_predictive=True)
    assert "posterior_predictive" in idata.groups()
    pp = idata.posterior_predictive["y"].values
    assert pp.shape == (2, 200, 12)
    assert np.isfinite(pp).all()
    # replicated data scatter around the data, not around zero
    assert abs(pp.mean(axis=(0, 1)) - Y).mean() < 0.3


# ---------------------------------------------------------------------------- enumerate
def exact_table() -> tuple[dict[str, float], float]:
    """The posterior of tiny_model computed here: key -> probability, and log p(y)."""
    keys, log_joint = [], []
    for phi, log_prior in TINY.enumerate():
        keys.append(phi.key)
        log_joint.append(log_prior + stats.norm(phi(TINY_X), TINY_SIGMA).logpdf(TINY_Y).sum())
    log_z = float(logsumexp(log_joint))
    probs: dict[str, float] = defaultdict(float)
    for key, lj in zip(keys, log_joint, strict=True):
        probs[key] += math.exp(lj - log_z)
    assert len(keys) == 302
    return dict(probs), log_z


def test_enumerate_programs_are_exact(exact_post: Posterior) -> None:
    probs, log_z = exact_table()
    table = exact_post.programs("f", top=None, simplify=False, group="key")
    keys = [p.key for p in table["program"]]
    for key, p in zip(keys, table["probability"], strict=True):
        assert p == pytest.approx(probs[key], abs=1e-12)
    assert table["probability"].sum() <= 1 + 1e-12
    assert keys[0] == max(probs, key=probs.__getitem__)
    assert exact_post.attrs["log_evidence"] == pytest.approx(log_z, abs=1e-9)
    assert exact_post.exact["f"]["probability"].sum() == pytest.approx(1.0, abs=1e-12)


def test_enumerate_draws_come_from_the_table(exact_post: Posterior) -> None:
    assert exact_post.samples["f"].shape == (2, 500)
    probs, _ = exact_table()
    assert all(probs[phi.key] > 0 for phi in flat_programs(exact_post))


# ---------------------------------------------------------------------------- importance
def test_importance_reports_ess_and_khat(importance_post: Posterior) -> None:
    attrs = importance_post.attrs
    assert attrs["num_particles"] == 10 * 200 * 2
    assert 1.0 <= attrs["ess"] <= attrs["num_particles"]
    assert math.isfinite(attrs["khat"])
    assert importance_post.samples["f"].shape == (2, 200)
    table = importance_post.programs("f", top=None, simplify=False)
    assert table["count"].sum() == 400


@pytest.mark.parametrize("which", ["enumerate", "importance"])
def test_az_summary_without_constants(which: str, exact_post: Posterior,
                                      importance_post: Posterior) -> None:
    result = exact_post if which == "enumerate" else importance_post
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        az.summary(result.to_arviz())


# ---------------------------------------------------------------------------- same function
def test_programs_merge_trees_that_compute_the_same_function() -> None:
    """(x + x), (x * (1 + 1)), ((x * 1) + x), ... are one law: one row, probabilities summed;
    group="key" keeps one row per tree."""
    prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=3)

    def model(x, y=None):
        f = ppl.sample("f", prior)
        with ppl.plate("data", len(x)):
            ppl.sample("y", dist.Normal(f(x), 0.3), obs=y)

    x = np.linspace(-1.0, 1.0, 8)
    post = infer(model, x, y=2 * x, method="enumerate", num_samples=500, num_chains=1)
    by_key = post.programs("f", top=None, simplify=False, group="key")
    by_function = post.programs("f", top=None, simplify=False)
    assert set(by_key["trees"]) == {1}
    assert by_function["probability"].sum() == pytest.approx(by_key["probability"].sum(),
                                                             abs=1e-12)
    assert by_function["trees"].sum() == len(by_key)
    probe = np.array([-1.7, -0.3, 0.45, 1.9, 3.1])
    twice = [bool(np.allclose(np.broadcast_to(p(probe), probe.shape), 2 * probe))
             for p in by_key["program"]]
    top = by_function.iloc[0]
    assert np.allclose(top["program"](probe), 2 * probe)
    assert top["trees"] == sum(twice) >= 3
    assert top["probability"] == pytest.approx(by_key["probability"][twice].sum(), abs=1e-12)
    assert len(by_function) < len(by_key)
    with pytest.raises(PPLError, match="group must be"):
        post.programs("f", group="law")
