"""Tests of inference/compare.py: ``compare`` runs one ``infer`` per entry and tabulates.

Agreement columns are checked against their own nulls (TESTING.md, P2 and P3): the program
TV of MCMC against the enumerated posterior must lie below the 99th percentile of the TV of
as many iid exact draws as the run's effective sample size, and the max |SMD| of two MCMC
runs below 4 Monte Carlo standard errors. Broken twins: a deliberately wrong exact table
(tempered or sharpened) and a shifted posterior, which the same checks must flag. The
diagnostic columns are recomputed independently with ArviZ; entries of a method that does
not exist yet ("nuts" with a backend) are simulated by a stand-in ``infer``.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from scipy.special import logsumexp
from stats.discrete import empirical, tv_distance, tv_null_quantile

import ppl
from inference import Posterior, api, compare, infer, plot_compare
from inference.arviz import az
from inference.compare import COLUMNS, CompareError, _loo, max_smd, program_tv
from ppl import dist
from ppl.errors import PPLError

TINY = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=3)
TINY_SIGMA = 0.3
TINY_X = np.linspace(0.0, 1.0, 6)
TINY_Y = np.sin(TINY_X) + 1 + TINY_SIGMA * np.random.default_rng(1).normal(size=6)
NN_Y = 0.5 + np.random.default_rng(2).normal(size=10)
SEQ: dict[str, Any] = {"chain_method": "sequential"}


def tiny_model(x: Any, y: Any = None) -> None:
    f = ppl.sample("f", TINY)
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), TINY_SIGMA), obs=y)


def normal_normal(y: Any = None) -> None:
    mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
    with ppl.plate("data", 10):
        ppl.sample("y", dist.Normal(mu, 1.0), obs=y)


SMALL = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)  # 12 programs


def two_programs(x: Any, y: Any = None) -> None:
    f = ppl.sample("f", SMALL)
    g = ppl.sample("g", SMALL)
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x) * g(x), TINY_SIGMA), obs=y)


@pytest.fixture(scope="module")
def tiny_table() -> pd.DataFrame:
    return compare(tiny_model, TINY_X, y=TINY_Y,
                   methods=["enumerate", "mcmc", ("importance", {"num_particles": 2000})],
                   num_samples=500, num_chains=2, **SEQ)


@pytest.fixture(scope="module")
def nn_table() -> pd.DataFrame:
    # a random-walk block: these tests read compare's columns, not NUTS (which took 30 s)
    return compare(normal_normal, y=NN_Y,
                   methods=["mcmc", ("mcmc", {"seed": 1}),
                            ("auto", {"num_chains": 1, "label": "one chain"})],
                   num_samples=500, num_chains=4, blocks=[("RW", ["mu"])], **SEQ)


def exact_probs(post: Posterior) -> dict[str, float]:
    return post.exact["f"].groupby("key")["probability"].sum().to_dict()  # type: ignore


def agrees(tv: float, reference: dict[str, float], n_eff: float) -> bool:
    """TV of a run against an exact table, within the 99% quantile of its iid null."""
    null = tv_null_quantile(reference, max(1, math.floor(n_eff)),
                            rng=np.random.default_rng(0))
    return tv <= null


def wrong_table(post: Posterior, power: float) -> Posterior:
    """A broken twin: the exact posterior raised to ``power`` and renormalised."""
    twin = copy.copy(post)
    table = post.exact["f"].copy()
    log_p = power * np.log(table["probability"].to_numpy())
    table["probability"] = np.exp(log_p - np.logaddexp.reduce(log_p))
    twin.exact = {"f": table}
    return twin


# ---------------------------------------------------------------------------- the table
def test_columns_and_rows(tiny_table: pd.DataFrame) -> None:
    assert list(tiny_table.columns) == COLUMNS
    assert list(tiny_table.index) == ["enumerate", "mcmc", "importance[num_particles=2000]"]
    assert list(tiny_table["method"]) == ["enumerate", "mcmc", "importance"]
    assert (tiny_table["backend"] == "pyro").all()
    assert (tiny_table["draws"] == 1000).all()
    assert (tiny_table["wall_time_s"] > 0).all()
    assert (tiny_table["divergences"] == 0).all()
    assert tiny_table.attrs["reference"] == "enumerate"
    runs = tiny_table.attrs["posteriors"]
    assert list(runs) == list(tiny_table.index)
    assert [p.method for p in runs.values()] == ["enumerate", "mcmc", "importance"]
    # the reference agrees with itself exactly
    assert tiny_table.loc["enumerate", "tv_program"] == 0.0
    # no continuous sites: no SMD
    assert tiny_table["max_smd"].isna().all()


def test_copies_share_the_posteriors(tiny_table: pd.DataFrame) -> None:
    copied = tiny_table.round(2)
    assert copied.attrs["posteriors"] is tiny_table.attrs["posteriors"]


def test_mcmc_agrees_with_enumeration(tiny_table: pd.DataFrame) -> None:
    runs = tiny_table.attrs["posteriors"]
    row = tiny_table.loc["mcmc"]
    reference = exact_probs(runs["enumerate"])
    # the column is the TV of the draws' key frequencies against the exact table
    counts = Counter(p.key for p in runs["mcmc"].samples["f"].flat)
    assert row["tv_program"] == pytest.approx(tv_distance(empirical(counts), reference),
                                              abs=1e-12)
    assert agrees(row["tv_program"], reference, row["ess_bulk"])


@pytest.mark.parametrize("power", [0.8, 1.25], ids=["tempered", "sharpened"])
def test_broken_twin_wrong_table_is_flagged(tiny_table: pd.DataFrame, power: float) -> None:
    runs = tiny_table.attrs["posteriors"]
    twin = wrong_table(runs["enumerate"], power)
    tv = program_tv(runs["mcmc"], twin)
    assert not agrees(tv, exact_probs(twin), tiny_table.loc["mcmc", "ess_bulk"])


def test_importance_agrees_with_enumeration(tiny_table: pd.DataFrame) -> None:
    label = "importance[num_particles=2000]"
    post = tiny_table.attrs["posteriors"][label]
    # resampled draws: the weights' ESS, plus the multinomial noise of resampling
    n_eff = 1 / (1 / post.attrs["ess"] + 1 / 1000)
    assert tiny_table.loc[label, "ess_bulk"] <= post.attrs["ess"]
    reference = exact_probs(tiny_table.attrs["posteriors"]["enumerate"])
    assert agrees(tiny_table.loc[label, "tv_program"], reference, n_eff)


def test_top_program(tiny_table: pd.DataFrame) -> None:
    runs = tiny_table.attrs["posteriors"]
    reference = exact_probs(runs["enumerate"])
    best = max(reference, key=reference.__getitem__)
    for label, post in runs.items():
        text = tiny_table.loc[label, "top_program"]
        assert TINY.grammar.parse(text).key == best, label
        table = post.programs("f", top=1, simplify=False, group="key")
        assert tiny_table.loc[label, "top_probability"] == table["probability"][0]
    assert tiny_table.loc["enumerate", "top_probability"] == pytest.approx(reference[best])


def test_diagnostics_recomputed(tiny_table: pd.DataFrame) -> None:
    """ESS, R-hat, acceptance and LOO of the mcmc row, recomputed with ArviZ."""
    post = tiny_table.attrs["posteriors"]["mcmc"]
    row = tiny_table.loc["mcmc"]
    idata = post.to_arviz()
    names = ["f_size", "f_depth", "f_log_prior"]
    quantities = [idata.posterior[n].values.astype(float) for n in names] + [post.stats["lp"]]
    assert row["ess_bulk"] == pytest.approx(min(az.ess(q) for q in quantities))
    assert row["ess_tail"] == pytest.approx(min(az.ess(q, method="tail") for q in quantities))
    assert row["max_rhat"] == pytest.approx(max(az.rhat(q) for q in quantities))
    assert row["ess_bulk_per_s"] == pytest.approx(row["ess_bulk"] / row["wall_time_s"])
    assert row["acceptance"] == pytest.approx(post.stats["acceptance_rate"].mean())
    assert row["loo_method"] == "psis"
    with pytest.warns(UserWarning, match="Pareto"):
        loo = az.loo(idata, reff=row["ess_bulk"] / 1000)
    assert row["elpd_loo"] == pytest.approx(float(loo["elpd_loo"]))
    assert row["elpd_loo_se"] == pytest.approx(float(loo["se"]))
    assert tiny_table.loc["enumerate", "acceptance"] != tiny_table.loc["enumerate",
                                                                       "acceptance"]  # NaN


def test_loo_falls_back_to_importance_sampling() -> None:
    """Draws that repeat five values: ArviZ's PSIS gives NaN for some points (reff 0.2);
    the row then holds the plain importance-sampling LOO."""
    rng = np.random.default_rng(0)
    values = rng.normal(-1.0, 0.5, size=(5, 10))  # 5 distinct states, 10 data points
    picks = rng.choice(5, size=(2, 500), p=[0.7, 0.1, 0.1, 0.05, 0.05])
    pointwise = values[picks]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        psis = az.loo(az.from_dict(log_likelihood={"y": pointwise}), pointwise=True, reff=0.2)
    assert np.isnan(psis["loo_i"].values).any()  # the premise: PSIS fails here
    post = Posterior(method="mcmc", samples={}, stats={"lp": np.zeros((2, 500))},
                     log_lik={"y": pointwise}, observed={"y": np.zeros(10)}, priors={})
    elpd, se, _, method = _loo(post, ess=200.0)
    loo_i = np.log(1000) - logsumexp(-pointwise.reshape(1000, 10), axis=0)
    assert method == "is"
    assert elpd == pytest.approx(loo_i.sum(), rel=1e-12)
    assert se == pytest.approx(math.sqrt(10 * loo_i.var()), rel=1e-12)


def test_several_program_sites() -> None:
    table = compare(two_programs, TINY_X, y=TINY_X + TINY_X**2,
                    methods=["enumerate", ("importance", {"num_particles": 500})],
                    num_samples=100, num_chains=2)
    per_site = [f"{c}[{s}]" for s in "fg" for c in ("top_program", "top_probability",
                                                    "tv_program")]
    assert set(per_site) <= set(table.columns)
    assert "top_program" not in table.columns
    runs = table.attrs["posteriors"]
    for site in "fg":
        assert table.loc["importance[num_particles=500]", f"tv_program[{site}]"] == \
            program_tv(runs["importance[num_particles=500]"], runs["enumerate"], site)
    row = table.loc["importance[num_particles=500]"]
    assert row["tv_program"] == max(row["tv_program[f]"], row["tv_program[g]"])
    # f·g = x(1 + x): the exact marginal of each site puts its mass on x and 1 + x
    tops = {TINY.grammar.parse(table.loc["enumerate", f"top_program[{s}]"]).key for s in "fg"}
    assert tops <= {TINY.grammar.parse(t).key for t in ("x", "(x + 1)", "(1 + x)")}


def test_max_smd_of_a_vector_site() -> None:
    """Elementwise over a vector site; sites of another shape, or only on one side, skipped."""
    rng = np.random.default_rng(0)

    def post(theta: np.ndarray, **other: np.ndarray) -> Posterior:
        return Posterior(method="mcmc", samples={"theta": theta, **other},
                         stats={"lp": np.zeros(theta.shape[:2])}, log_lik={}, observed={},
                         priors={})

    base = rng.normal(size=(2, 400, 3))
    shifted = base.copy()
    shifted[..., 1] += 0.5
    a = post(base, other=rng.normal(size=(2, 400)))
    b = post(shifted, other=rng.normal(size=(2, 400, 2)) + 10.0)
    sd = np.sqrt((base[..., 1].var(ddof=1) + shifted[..., 1].var(ddof=1)) / 2)
    assert max_smd(b, a) == pytest.approx(0.5 / sd)
    assert math.isnan(max_smd(post(base[..., :2]), post(base)))


# ---------------------------------------------------------------------------- continuous
def test_two_seeds_agree(nn_table: pd.DataFrame) -> None:
    a, b = nn_table.loc["mcmc"], nn_table.loc["mcmc[seed=1]"]
    assert nn_table.loc["mcmc", "max_smd"] == 0.0
    assert b["max_smd"] < 4 * math.sqrt(1 / a["ess_bulk"] + 1 / b["ess_bulk"])
    assert nn_table["top_program"].isna().all() and nn_table["tv_program"].isna().all()
    assert nn_table["max_rhat"].iloc[:2].lt(1.05).all()


def test_broken_twin_shifted_posterior_is_flagged(nn_table: pd.DataFrame) -> None:
    runs = nn_table.attrs["posteriors"]
    a, b = nn_table.loc["mcmc"], nn_table.loc["mcmc[seed=1]"]
    twin = copy.copy(runs["mcmc[seed=1]"])
    mu = runs["mcmc[seed=1]"].samples["mu"]
    twin.samples = {"mu": mu + 0.5 * mu.std()}
    assert max_smd(twin, runs["mcmc"]) > 4 * math.sqrt(1 / a["ess_bulk"] + 1 / b["ess_bulk"])


def test_one_chain_has_no_rhat(nn_table: pd.DataFrame) -> None:
    row = nn_table.loc["one chain"]
    assert row["method"] == "auto"
    assert math.isnan(row["max_rhat"])
    assert row["draws"] == 500 and row["ess_bulk"] > 0
    assert np.isfinite(row[["elpd_loo", "elpd_loo_se", "max_smd"]].astype(float)).all()


def test_options_reach_infer() -> None:
    """Per-entry options override the common ones; the run equals a direct infer call."""
    common = {"num_samples": 30, "num_chains": 2, **SEQ}
    table = compare(normal_normal, y=NN_Y, methods=[("mcmc", {"seed": 3}), "mcmc"],
                    reference="mcmc", **common)
    assert table.attrs["reference"] == "mcmc"
    assert table.loc["mcmc", "max_smd"] == 0.0
    direct = infer(normal_normal, y=NN_Y, method="mcmc", seed=3, progress=False, **common)
    runs = table.attrs["posteriors"]
    assert runs["mcmc[seed=3]"].samples["mu"].tobytes() == direct.samples["mu"].tobytes()
    assert runs["mcmc"].samples["mu"].tobytes() != direct.samples["mu"].tobytes()


def test_a_future_nuts_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """An entry with a backend option works unchanged once infer accepts it."""
    calls: list[dict[str, Any]] = []

    def fake_infer(model: Any, *args: Any, method: str = "mcmc", backend: str = "pyro",
                   num_samples: int = 1000, num_warmup: int | None = None,
                   num_chains: int = 4, seed: int = 0, progress: bool = True,
                   model_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> Posterior:
        calls.append({"method": method, "backend": backend,
                      "kwargs": {**kwargs, **(model_kwargs or {})}})
        rng = np.random.default_rng(seed)
        shape = (num_chains, num_samples)
        return Posterior(method=method, samples={"mu": rng.normal(size=shape)},
                         stats={"lp": rng.normal(size=shape),
                                "diverging": np.broadcast_to(np.arange(num_samples) % 100 == 0,
                                                             shape),
                                "acceptance_rate": np.full(shape, 0.8)},
                         log_lik={"y": rng.normal(-1, 0.1, size=(*shape, 10))},
                         observed={"y": NN_Y}, priors={})

    monkeypatch.setattr(api, "infer", fake_infer)
    table = compare(normal_normal, y=NN_Y, methods=["mcmc", ("nuts", {"backend": "numpyro"})],
                    num_samples=200, num_chains=2)
    assert list(table.index) == ["mcmc", "nuts[numpyro]"]
    assert list(table["backend"]) == ["pyro", "numpyro"]
    assert table.loc["nuts[numpyro]", "divergences"] == 4
    assert table.loc["nuts[numpyro]", "acceptance"] == pytest.approx(0.8)
    assert calls[1] == {"method": "nuts", "backend": "numpyro", "kwargs": {"y": NN_Y}}


# ---------------------------------------------------------------------------- errors
BAD = [
    ("string", {"methods": "mcmc"}, "methods must be a non-empty list"),
    ("empty", {"methods": []}, "methods must be a non-empty list"),
    ("unknown method", {"methods": ["mcmc", "hmc"]}, r"methods\[1\]: unknown method 'hmc'"),
    ("unknown option", {"methods": [("mcmc", {"num_sample": 5})]},
     r"methods\[0\] \('mcmc'\): unknown option 'num_sample'"),
    ("method option", {"methods": [("mcmc", {"method": "enumerate"})]},
     "unknown option 'method'"),
    ("short tuple", {"methods": [("mcmc",)]}, r"methods\[0\] must be a method name"),
    ("options not a dict", {"methods": [("mcmc", "fast")]}, r"methods\[0\] must be a method"),
    ("not a name", {"methods": [3]}, r"methods\[0\] must be a method name"),
    ("bad label", {"methods": [("mcmc", {"label": ""})]}, "label must be a non-empty string"),
    ("duplicate", {"methods": ["mcmc", "enumerate", "mcmc"]}, "label 'mcmc'"),
    ("duplicate label", {"methods": ["mcmc", ("enumerate", {"label": "mcmc"})]},
     "label 'mcmc'"),
    ("unknown reference", {"methods": ["mcmc"], "reference": "nuts"},
     "reference must be the label or position"),
    ("reference out of range", {"methods": ["mcmc"], "reference": 2},
     "reference must be the label or position"),
    ("bool reference", {"methods": ["mcmc"], "reference": True}, "got True"),
    ("method kwarg", {"methods": ["mcmc"], "method": "mcmc"}, "not method="),
    ("shared checkpoint", {"methods": ["mcmc"], "checkpoint": "run.ckpt"},
     "in one entry's options"),
]


@pytest.mark.parametrize(("kwargs", "match"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_rejected_before_any_run(monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, Any],
                                 match: str) -> None:
    def no_run(*args: Any, **kw: Any) -> Posterior:
        raise AssertionError("a run started before the entries were validated")

    monkeypatch.setattr(api, "infer", no_run)
    with pytest.raises(PPLError, match=match):
        compare(normal_normal, y=NN_Y, **kwargs)


def test_a_failing_run_names_its_entry() -> None:
    with pytest.raises(CompareError, match=r"entry 'enumerate' failed: PPLError: .*'mu'") as e:
        compare(normal_normal, y=NN_Y, methods=["mcmc", "enumerate", "importance"],
                num_samples=20, num_chains=1, **SEQ)
    assert e.value.label == "enumerate"
    assert list(e.value.posteriors) == ["mcmc"]
    assert isinstance(e.value.__cause__, PPLError)


def test_a_bad_common_value_names_the_first_entry() -> None:
    with pytest.raises(CompareError, match=r"entry 'mcmc' failed: .*thin must be"):
        compare(normal_normal, y=NN_Y, methods=["mcmc"], thin=0)


# ---------------------------------------------------------------------------- plot
def test_plot_is_written(nn_table: pd.DataFrame, tiny_table: pd.DataFrame,
                         tmp_path: Path) -> None:
    for name, table in (("nn", nn_table), ("tiny", tiny_table)):
        path = tmp_path / f"{name}.png"
        fig = plot_compare(table, path)
        assert isinstance(fig, Figure)
        assert [ax.get_title() for ax in fig.axes] == [
            "ESS per second", "max R-hat", "agreement with the reference"]
        assert path.stat().st_size > 1000


def test_compare_plot_argument(tmp_path: Path) -> None:
    path = tmp_path / "cmp.svg"
    compare(normal_normal, y=NN_Y, methods=["mcmc"], num_samples=20, num_chains=1,
            plot=path, **SEQ)
    assert path.read_text().lstrip().startswith("<?xml")


def test_plot_rejects_other_tables() -> None:
    with pytest.raises(PPLError, match=r"missing columns \['ess_bulk_per_s'"):
        plot_compare(pd.DataFrame({"a": [1]}))
