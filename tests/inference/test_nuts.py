"""Tests of inference/nuts.py and its two backends (inference/_nuts_pyro.py,
inference/_nuts_numpyro.py) on a conjugate model small enough to run in a second.

What ``infer(..., method="nuts")`` returns (draws, deterministic sites, ArviZ statistics,
the log joint and pointwise log-likelihood recomputed with scipy), reproducibility, the
caller's RNG state, Pyro's draws unchanged by the recording kernel, ArviZ/LOO/NetCDF on the
result, and every refusal. The posteriors themselves are checked in test_posteriordb.py (P4).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pyro.infer import MCMC, NUTS
from scipy import stats

import ppl
from inference import Posterior, infer, load
from inference._nuts_pyro import RecordingNUTS
from inference.arviz import az
from ppl import dist
from ppl.errors import DataError, PPLError

BACKENDS = ["pyro", "numpyro"]
Y = np.array([0.3, 1.1, 2.2])
PRIOR_SD = 10.0
FAST: dict[str, Any] = {"method": "nuts", "num_chains": 2, "num_warmup": 100,
                        "num_samples": 100, "seed": 3, "progress": False,
                        "chain_method": "sequential"}
STATS = {"lp", "acceptance_rate", "diverging", "step_size", "tree_depth", "n_steps", "energy"}
ARVIZ_PANDAS_DEPRECATION = pytest.mark.filterwarnings(
    "ignore:The inplace keyword in DataFrame:pandas.errors.Pandas4Warning")


def normal_model(y: Any = None) -> None:
    mu = ppl.sample("mu", dist.Normal(0.0, PRIOR_SD))
    ppl.deterministic("double", 2.0 * mu)
    with ppl.plate("data", 3):
        ppl.sample("y", dist.Normal(mu, 1.0), obs=y)


def program_model(x: Any, y: Any = None) -> None:
    f = ppl.sample("f", ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2))
    s = ppl.sample("s", dist.HalfNormal(1.0))
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), s), obs=y)


def discrete_model(y: Any = None) -> None:
    k = ppl.sample("k", dist.Bernoulli(0.5))
    with ppl.plate("data", 3):
        ppl.sample("y", dist.Normal(k * 1.0, 1.0), obs=y)


@pytest.fixture(scope="module", params=BACKENDS)
def post(request: pytest.FixtureRequest) -> Posterior:
    return infer(normal_model, y=Y, backend=request.param, **FAST)


def test_draws_stats_and_attrs(post: Posterior) -> None:
    assert post.method == "nuts"
    assert sorted(post.samples) == ["double", "mu"]
    assert post.samples["mu"].shape == (2, 100)
    np.testing.assert_allclose(post.samples["double"], 2 * post.samples["mu"], rtol=1e-12)
    assert set(post.stats) == STATS
    for name, arr in post.stats.items():
        assert arr.shape == (2, 100), name
    assert post.stats["diverging"].dtype == bool
    assert np.all(post.stats["n_steps"] >= 1)
    assert np.all((post.stats["acceptance_rate"] >= 0) & (post.stats["acceptance_rate"] <= 1))
    np.testing.assert_array_equal(post.stats["tree_depth"],
                                  np.floor(np.log2(post.stats["n_steps"])) + 1)
    assert np.all(post.stats["step_size"] > 0) and np.all(np.isfinite(post.stats["energy"]))
    assert post.attrs["plan"] == "NUTS[mu]"
    assert post.attrs["num_divergent"] == 0
    np.testing.assert_array_equal(post.observed["y"], Y)


def test_lp_and_pointwise_log_likelihood_are_exact(post: Posterior) -> None:
    mu = post.samples["mu"][..., None]
    pointwise = stats.norm(mu, 1.0).logpdf(Y)
    np.testing.assert_allclose(post.log_lik["y"], pointwise, rtol=1e-10, atol=1e-10)
    lp = stats.norm(0, PRIOR_SD).logpdf(post.samples["mu"]) + pointwise.sum(-1)
    np.testing.assert_allclose(post.stats["lp"], lp, rtol=1e-10, atol=1e-10)


def test_posterior_mean_within_mcse(post: Posterior) -> None:
    """Conjugate answer: a sanity check (P4 does the real statistics)."""
    precision = 1 / PRIOR_SD**2 + len(Y)
    mean = Y.sum() / precision
    draws = post.samples["mu"]
    assert abs(draws.mean() - mean) < 4 * float(az.mcse(draws, method="mean"))


@ARVIZ_PANDAS_DEPRECATION
def test_summary_arviz_loo_save_load(post: Posterior, tmp_path: Path) -> None:
    table = post.summary()
    assert list(table.index) == ["mu", "double"]
    idata = post.to_arviz(posterior_predictive=True)
    assert set(STATS) <= set(idata.sample_stats.data_vars)
    assert idata.posterior_predictive["y"].shape == (2, 100, 3)
    assert idata.posterior.attrs["ppl_method"] == "nuts"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Pareto k̂ on 3 points
        loo = az.loo(idata)
    assert int(loo.n_data_points) == 3 and np.isfinite(loo.elpd_loo)
    post.save(str(tmp_path / "run.nc"))
    back = load(str(tmp_path / "run.nc"))
    assert back.method == "nuts" and back.attrs["plan"] == "NUTS[mu]"
    np.testing.assert_array_equal(back.samples["mu"], post.samples["mu"])
    np.testing.assert_array_equal(back.stats["diverging"], post.stats["diverging"])


def test_same_seed_same_draws_distinct_chains(post: Posterior) -> None:
    again = infer(normal_model, y=Y, backend=post.attrs["backend"], **FAST)
    for site in post.samples:
        np.testing.assert_array_equal(again.samples[site], post.samples[site])
    for name in post.stats:
        np.testing.assert_array_equal(again.stats[name], post.stats[name])
    assert not np.array_equal(post.samples["mu"][0], post.samples["mu"][1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_thin_keeps_every_kth_transition(backend: str) -> None:
    base = {**FAST, "num_chains": 1, "num_samples": 40}
    full = infer(normal_model, y=Y, backend=backend, **{**base, "num_samples": 80})
    thinned = infer(normal_model, y=Y, backend=backend, thin=2, **base)
    np.testing.assert_array_equal(thinned.samples["mu"], full.samples["mu"][:, 1::2])
    np.testing.assert_array_equal(thinned.stats["n_steps"], full.stats["n_steps"][:, 1::2])


def test_pyro_leaves_the_global_torch_rng_alone() -> None:
    state = torch.get_rng_state()
    infer(normal_model, y=Y, **{**FAST, "num_chains": 1, "num_samples": 20})
    assert torch.equal(torch.get_rng_state(), state)


def test_recording_kernel_draws_are_pyros() -> None:
    """The recording subclass changes no draw of ``pyro.infer.NUTS``."""
    y = torch.as_tensor(Y)
    draws = []
    for kernel_class in (NUTS, RecordingNUTS):
        with torch.random.fork_rng():
            torch.manual_seed(11)
            mcmc = MCMC(kernel_class(normal_model), num_samples=30, warmup_steps=30,
                        disable_progbar=True)
            mcmc.run(y=y)
        draws.append(mcmc.get_samples()["mu"])
    assert torch.equal(draws[0], draws[1])


@pytest.mark.parametrize("backend", ["pyro"])  # NumPyro: init_to_value, same code path
def test_init_values(backend: str) -> None:
    post = infer(normal_model, y=Y, backend=backend, init_values={"mu": 1.0},
                 **{**FAST, "num_chains": 1, "num_samples": 20, "num_warmup": 50})
    assert post.samples["mu"].shape == (1, 20)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("model", "site"), [(program_model, "'f' (program)"),
                                             (discrete_model, "'k' (discrete)")],
                         ids=["program", "discrete"])
def test_refuses_non_continuous_sites(backend: str, model: Any, site: str) -> None:
    args = (np.linspace(0, 1, 3),) if model is program_model else ()
    with pytest.raises(PPLError, match="method='mcmc'") as err:
        infer(model, *args, y=Y, backend=backend, **FAST)
    assert site in str(err.value)


@pytest.mark.parametrize(("options", "message"), [
    ({"backend": "stan"}, "'stan'"),
    ({"backend": "numpyro", "method": "enumerate"}, "method='enumerate'"),
    ({"target_accept_prob": 1.5}, "target_accept_prob"),
    ({"max_tree_depth": 0}, "max_tree_depth"),
    ({"dense_mass": "yes"}, "dense_mass"),
    ({"max_time": 5.0}, "max_time"),
    ({"init_values": {"nu": 0.0}}, "'nu'"),
], ids=["backend", "backend-method", "accept", "depth", "dense", "max_time", "init"])
def test_bad_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(PPLError, match=message):
        infer(normal_model, y=Y, **{**FAST, **options})


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_data_names_the_site(backend: str) -> None:
    with pytest.raises(DataError, match="'y'"):
        infer(normal_model, y=np.array([0.0, np.nan, 1.0]), backend=backend, **FAST)
    with pytest.raises(DataError, match="'y'"):
        infer(normal_model, y=np.zeros(4), backend=backend, **FAST)


def improper_nested_model(y: Any = None) -> None:
    s = ppl.sample("s", dist.ImproperUniform(dist.constraints.positive, (), ()))
    with ppl.plate("groups", 2, dim=-2), ppl.plate("data", 3, dim=-1):
        ppl.sample("y", dist.Normal(0.0, s), obs=y)


def derived_obs_model(y: Any = None) -> None:
    mu = ppl.sample("mu", dist.Normal(0.0, PRIOR_SD))
    with ppl.plate("data", 3):
        ppl.sample("y", dist.Normal(mu, 1.0), obs=y * 1.0)


def value_branching_model(y: Any = None) -> None:
    mu = ppl.sample("mu", dist.Normal(0.0, PRIOR_SD))
    scale = 1.0 if float(mu) > 0 else 2.0  # needs a concrete value: cannot be staged
    with ppl.plate("data", 3):
        ppl.sample("y", dist.Normal(mu, scale), obs=y)


@pytest.mark.parametrize(("model", "y", "staged"), [
    (normal_model, Y, True), (improper_nested_model, np.ones((2, 3)), True),
    (derived_obs_model, Y, False), (value_branching_model, Y, False)],
    ids=["normal", "improper-nested", "derived-obs", "value-branching"])
def test_numpyro_discovery_staged_or_eager_finds_the_same_sites(model: Any, y: Any,
                                                                staged: bool) -> None:
    """NumPyro's discovery stages the model (no operation runs) when it can, and runs it
    eagerly otherwise; either way the sites are those of an eager trace."""
    import jax

    from inference import _nuts_numpyro as impl

    with impl.context():
        args = {"y": impl.to_jax(y)}
        if staged:
            tr = impl._abstract_trace(model, (), args, 0)
            assert any(isinstance(s["value"], jax.core.Tracer) for s in tr.values())
        else:
            with pytest.raises(impl._Concrete):
                impl._abstract_trace(model, (), args, 0)
        sites = impl.discover(model, (), {"y": y}, 0)
        eager = impl._site_trace(model, (), args, 0)
    latents = [n for n, s in eager.items() if s["type"] == "sample" and not s["is_observed"]]
    assert list(sites.latents) == latents
    assert set(sites.latents.values()) == {"continuous"}
    np.testing.assert_array_equal(sites.observed["y"], y)
    assert sites.max_plate_nesting == (2 if model is improper_nested_model else 1)


def test_numpyro_vectorized_chains_score_every_draw() -> None:
    """With chains vectorized, NumPyro vmaps the scoring postprocess: still exact."""
    post = infer(normal_model, y=Y, backend="numpyro", **{**FAST, "chain_method": "parallel"})
    assert post.attrs["chain_method"] == "vectorized"
    test_lp_and_pointwise_log_likelihood_are_exact(post)
    np.testing.assert_allclose(post.samples["double"], 2 * post.samples["mu"], rtol=1e-12)
