"""P4 (TESTING.md): posteriordb references through ``infer(..., method="nuts")``.

eight_schools_noncentered and kilpisjarvi, one model text each (``benchmarks/posteriordb.py``,
written with ``ppl`` primitives), run unchanged on Pyro and on NumPyro. For every parameter
(theta[1..8] are eight schools' transformed parameters, a ``ppl.deterministic`` site):

- |Δmean| / sqrt(MCSE² + MCSE_ref²) < 4;
- the sd: in the full-size (``slow``) runs its ratio to the reference lies in [0.9, 1.1]; in
  the CI runs, which are too short for that bar to be honest for tau (a heavy right tail),
  |sd − sd_ref| < 4 · sqrt(MCSE_sd² + MCSE_sd,ref²) instead (MCSE_sd from ArviZ; the
  reference's from its ESS, (sd / MCSE_mean)²).

The centered eight schools must emit the divergence ``RunWarning`` on both backends
(negative control), and the same check must reject a broken twin (the draws pulled 20%
toward their mean: a posterior too narrow). kilpisjarvi (x ≈ 4000, alpha and beta
correlated at −0.99999) runs with ``dense_mass=True``; see docs/decisions.md. Pyro's
kilpisjarvi needs ~140 leapfrog steps per transition at several milliseconds each, so it is
in the slow tier only.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from benchmarks.posteriordb import (
    MODELS,
    Reference,
    draws_of,
    eight_schools_centered,
    reference,
)
from inference import Posterior, infer
from inference.api import RunWarning
from inference.arviz import az

BACKENDS = ["pyro", "numpyro"]
QUIET: dict[str, Any] = {"method": "nuts", "progress": False, "chain_method": "sequential",
                         "seed": 1}
# (num_chains, num_warmup, num_samples) of the CI runs
CI_SIZE = {("eight_schools_noncentered", "pyro"): (1, 250, 350),
           ("eight_schools_noncentered", "numpyro"): (2, 500, 1000),
           ("kilpisjarvi", "numpyro"): (2, 1000, 1000)}
OPTIONS = {"eight_schools_noncentered": {}, "kilpisjarvi": {"dense_mass": True}}
# (num_warmup, num_samples) of the negative control, one chain
CENTERED_SIZE = {"pyro": (200, 300), "numpyro": (500, 500)}
# Even the non-centered model diverges now and then at target_accept_prob=0.8 (NumPyro's
# CI run: 1 of 2000 transitions); the tests bound the rate instead.
ALLOW_DIVERGENCES = pytest.mark.filterwarnings(
    r"ignore:\d+ divergent transitions after warmup:inference.api.RunWarning")


def run(name: str, backend: str, size: tuple[int, int, int], model: Any = None,
        **kw: Any) -> Posterior:
    chains, warmup, samples = size
    ref = reference(name)
    return infer(model or MODELS[name], *ref.args, backend=backend, num_chains=chains,
                 num_warmup=warmup, num_samples=samples, **QUIET, **OPTIONS[name], **kw)


def failures(post: Posterior, ref: Reference, sd_bar: str) -> list[str]:
    """Every parameter that misses the P4 bars, with its figures."""
    out = []
    for parameter, r in ref.summary.items():
        draws = draws_of(post.samples, parameter)
        mean, sd = float(draws.mean()), float(draws.std())
        mcse, mcse_sd = float(az.mcse(draws, method="mean")), float(az.mcse(draws, method="sd"))
        z = (mean - r["mean"]) / math.hypot(mcse, r["mcse_mean"])
        ess_ref = (r["sd"] / r["mcse_mean"]) ** 2
        z_sd = (sd - r["sd"]) / math.hypot(mcse_sd, r["sd"] / math.sqrt(2 * ess_ref))
        ratio = sd / r["sd"]
        bad_sd = not 0.9 <= ratio <= 1.1 if sd_bar == "ratio" else abs(z_sd) >= 4
        if abs(z) >= 4 or bad_sd:
            out.append(f"{parameter}: mean {mean:.4g} vs {r['mean']:.4g} (z {z:.2f}), sd "
                       f"{sd:.4g} vs {r['sd']:.4g} (ratio {ratio:.3f}, z {z_sd:.2f})")
    return out


@pytest.fixture(scope="module")
def ci_runs() -> dict[tuple[str, str], Posterior]:
    return {}


def ci_run(cache: dict[tuple[str, str], Posterior], name: str, backend: str) -> Posterior:
    if (name, backend) not in cache:
        cache[name, backend] = run(name, backend, CI_SIZE[name, backend])
    return cache[name, backend]


def shrunken(post: Posterior, factor: float) -> Posterior:
    """A broken twin: every draw pulled toward its site's mean (too narrow a posterior)."""
    samples = {k: v.mean(axis=(0, 1)) + factor * (v - v.mean(axis=(0, 1)))
               for k, v in post.samples.items()}
    return Posterior(method="nuts", samples=samples, stats=post.stats, log_lik=post.log_lik,
                     observed=post.observed, priors={})


@ALLOW_DIVERGENCES
@pytest.mark.parametrize("backend", BACKENDS)
def test_eight_schools_noncentered(ci_runs: dict[tuple[str, str], Posterior],
                                   backend: str) -> None:
    post = ci_run(ci_runs, "eight_schools_noncentered", backend)
    assert post.attrs["num_divergent"] <= 0.01 * post.stats["diverging"].size
    ref = reference("eight_schools_noncentered")
    assert not failures(post, ref, "mcse")
    assert failures(shrunken(post, 0.8), ref, "mcse")  # the broken twin is rejected


@ALLOW_DIVERGENCES
def test_kilpisjarvi_numpyro(ci_runs: dict[tuple[str, str], Posterior]) -> None:
    post = ci_run(ci_runs, "kilpisjarvi", "numpyro")
    assert not failures(post, reference("kilpisjarvi"), "mcse")
    assert failures(shrunken(post, 0.8), reference("kilpisjarvi"), "mcse")


@ALLOW_DIVERGENCES
def test_same_model_text_on_both_backends(ci_runs: dict[tuple[str, str], Posterior]) -> None:
    """One function, unchanged, gives the same sites, plan and shapes on either backend."""
    runs = [ci_run(ci_runs, "eight_schools_noncentered", b) for b in BACKENDS]
    assert [p.attrs["backend"] for p in runs] == BACKENDS
    assert runs[0].attrs["plan"] == runs[1].attrs["plan"] == "NUTS[mu, tau, theta_trans]"
    for p in runs:
        assert sorted(p.samples) == ["mu", "tau", "theta", "theta_trans"]
        assert p.samples["theta"].shape[2:] == (8,)
        assert p.log_lik["y"].shape[2:] == (8,)


@pytest.mark.parametrize("backend", BACKENDS)
def test_centered_eight_schools_diverges(backend: str) -> None:
    """Negative control: the centered parameterization's funnel makes NUTS diverge."""
    ref = reference("eight_schools_noncentered")
    with pytest.warns(RunWarning, match=r"\d+ divergent transitions after warmup"):
        warmup, samples = CENTERED_SIZE[backend]
        # target_accept_prob=0.6: a coarser step makes the funnel's divergences certain
        # in a short chain (at 0.8, Pyro's seeds gave 0 to 11; at 0.6, 8 to 110)
        post = infer(eight_schools_centered, *ref.args, backend=backend, num_chains=1,
                     num_warmup=warmup, num_samples=samples, target_accept_prob=0.6, **QUIET)
    assert post.attrs["num_divergent"] == int(post.stats["diverging"].sum()) > 0


@pytest.mark.slow
@pytest.mark.timeout(3600)  # Pyro's kilpisjarvi: about half an hour
@ALLOW_DIVERGENCES
@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("backend", BACKENDS)
def test_full_size(name: str, backend: str) -> None:
    """The TESTING.md bars as written: 4 chains × (1000 warmup + 1000 draws) (Pyro's
    kilpisjarvi: 2 chains, for time: about half an hour on 2 cores)."""
    size = (2, 1000, 1000) if (name, backend) == ("kilpisjarvi", "pyro") else (4, 1000, 1000)
    post = run(name, backend, size)
    assert post.attrs["num_divergent"] <= 0.01 * post.stats["diverging"].size
    assert not failures(post, reference(name), "ratio")
