"""``query``: forward, reverse and posterior queries on one world model (DESIGN §3).

- forward p(y | x, φ): exact iid simulation, checked against the known predictive within
  4 MCSE;
- reverse p(x | y, φ) through a given program: y = 2x + 1 + N(0, 0.5²) with x ~ N(0, 1) has
  the analytic posterior N(μ, s²), matched within 4 MCSE (mean and sd); a broken twin (the
  squared posterior) fails the same check;
- posterior p(φ | x, y): the same draws as ``infer`` with the same seed;
- the plan: "auto" prints ``Gibbs: ProgramMH[f] + Noise[sigma]``; faults are PPLErrors.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

import ppl
from inference import infer, query
from inference.arviz import az
from inference.target import Target
from ppl import dist

X = np.linspace(-1.0, 1.0, 6)
TINY = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=3)
ARITH = ppl.ProgramPrior("arith", inputs=["x"], max_depth=4)


def curve(x: Any, y: Any = None) -> None:
    f = ppl.sample("f", TINY)
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), 0.1), obs=y)


def noisy_curve(x: Any, y: Any = None) -> None:
    f = ppl.sample("f", TINY)
    sigma = ppl.sample("sigma", dist.HalfNormal(1.0))
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), sigma), obs=y)


def inverse(y: Any = None) -> None:
    x = ppl.sample("x", dist.Normal(0.0, 1.0))
    f = ppl.sample("f", ARITH)
    ppl.sample("y", dist.Normal(f(x), 0.5), obs=y)


def z_scores(draws: np.ndarray, mean: float, sd: float) -> tuple[float, float]:
    """(mean − truth) / MCSE and (sd − truth) / MCSE_sd of (chain, draw) draws."""
    m, s = float(draws.mean()), float(draws.std(ddof=1))
    return ((m - mean) / float(az.mcse(draws, method="mean")),
            (s - sd) / float(az.mcse(draws, method="sd")))


def test_forward_query_simulates_the_predictive(capsys: pytest.CaptureFixture[str]) -> None:
    world = ppl.World(curve, X)
    post = query(world, "y", given={"f": "sin(x)"}, num_samples=2000, num_chains=1, seed=3)
    assert capsys.readouterr().out.strip() == "forward: ancestral simulation of [y] given [f]"
    y = post.samples["y"]
    assert y.shape == (1, 2000, len(X))
    se = 0.1 / math.sqrt(2000)
    assert np.all(np.abs(y.mean(axis=(0, 1)) - np.sin(X)) < 4 * se)
    assert np.all(np.abs(y.std(axis=(0, 1), ddof=1) - 0.1) < 4 * 0.1 / math.sqrt(2 * 1999))
    assert post.method == "forward" and post.attrs["query"].startswith("forward")


def test_forward_query_of_a_program_is_its_prior() -> None:
    post = query(curve, "f", model_args=(X,), num_samples=500, num_chains=2, seed=0)
    assert post.samples["f"].shape == (2, 500)
    assert all(isinstance(p, ppl.Program) for p in post.samples["f"].reshape(-1))


REVERSE_Y = 2.2
PRECISION = 1.0 + 2.0**2 / 0.5**2
REVERSE_MEAN = 2.0 * (REVERSE_Y - 1.0) / 0.5**2 / PRECISION
REVERSE_SD = 1 / math.sqrt(PRECISION)


def _reverse(seed: int = 0, backend: str = "pyro") -> Any:
    return query(inverse, "x", given={"f": "((2.0 * x) + 1.0)", "y": REVERSE_Y},
                 method="mcmc", num_samples=800, num_warmup=300, num_chains=4, seed=seed,
                 chain_method="sequential", progress=False, backend=backend)


@pytest.mark.parametrize("backend", ["pyro", pytest.param("numpyro", marks=pytest.mark.slow)])
def test_reverse_query_matches_the_analytic_posterior(backend: str) -> None:
    """(NumPyro's NUTS block: 27 s, in ``make validate``; its SVI query runs in CI.)"""
    post = _reverse(backend=backend)
    suffix = " (NumPyro's NUTS)" if backend == "numpyro" else ""
    assert post.attrs["plan"] == "Gibbs: NUTS[x]" + suffix
    assert list(post.samples) == ["x"]
    mean_z, sd_z = z_scores(post.samples["x"], REVERSE_MEAN, REVERSE_SD)
    assert abs(mean_z) < 4 and abs(sd_z) < 4, (mean_z, sd_z)
    assert float(az.rhat(post.samples["x"])) <= 1.01
    assert list(post.log_lik) == ["y"]  # y was given: an observation


def linear_inverse(y: Any = None) -> None:
    x = ppl.sample("x", dist.Normal(0.0, 1.0))
    ppl.sample("y", dist.Normal(2.0 * x + 1.0, 0.5), obs=y)


@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
def test_reverse_query_by_svi(backend: str) -> None:
    """The same reverse query fitted by SVI (the given sites observed): through the given
    program on Pyro, through the same law written in the model on NumPyro. The Gaussian
    posterior is in AutoNormal's family, so the fit's mean and sd are the exact ones up to
    the optimiser (a tenth of the sd) and the draws' Monte Carlo error."""
    model, given = ((inverse, {"f": "((2.0 * x) + 1.0)", "y": REVERSE_Y}) if backend == "pyro"
                    else (linear_inverse, {"y": REVERSE_Y}))
    post = query(model, "x", given=given, method="svi", num_steps=1500, num_samples=1000,
                 num_chains=2, seed=0, progress=False, backend=backend)
    assert post.method == "svi" and list(post.samples) == ["x"]
    assert "svi: the given sites are observed" in post.attrs["query"]
    x = post.samples["x"]
    n = x.size
    assert abs(float(x.mean()) - REVERSE_MEAN) < 0.1 * REVERSE_SD + 4 * REVERSE_SD / n**0.5
    assert abs(float(x.std()) / REVERSE_SD - 1) < 0.1 + 4 / (2 * n) ** 0.5
    assert post.attrs["khat"] < 0.5


def test_svi_query_on_numpyro_refuses_a_given_program() -> None:
    with pytest.raises(ppl.PPLError, match=r"given program of site 'f'.*backend='pyro'"):
        query(inverse, "x", given={"f": "((2.0 * x) + 1.0)", "y": REVERSE_Y}, method="svi",
              backend="numpyro", progress=False)


def test_reverse_query_broken_twin(monkeypatch: pytest.MonkeyPatch) -> None:
    """Targeting p(x | y)² (sd / √2) must fail the sd check."""
    original = Target.log_joint_tensor

    def squared(self: Target, values: Any) -> torch.Tensor:
        return 2 * original(self, values)

    monkeypatch.setattr(Target, "log_joint_tensor", squared)
    _, sd_z = z_scores(_reverse().samples["x"], REVERSE_MEAN, REVERSE_SD)
    assert abs(sd_z) > 4, sd_z


def test_posterior_query_is_infer() -> None:
    y = np.sin(X) + 1
    via_query = query(ppl.World(curve, X), given={"y": y}, method="mcmc", num_samples=50,
                      num_chains=1, seed=4, progress=False)
    via_infer = infer(curve, X, y=y, num_samples=50, num_chains=1, seed=4, progress=False)
    assert list(via_query.samples["f"].reshape(-1)) == list(via_infer.samples["f"].reshape(-1))
    assert via_query.attrs["query"] == "inference of [f] given [y]"


def test_auto_prints_its_plan(capsys: pytest.CaptureFixture[str]) -> None:
    y = np.sin(X) + 0.1
    post = query(noisy_curve, given={"y": y}, model_args=(X,), num_samples=10,
                 num_warmup=10, num_chains=1, progress=False)
    assert capsys.readouterr().out.strip() == "Gibbs: ProgramMH[f] + Noise[sigma]"
    assert set(post.samples) == {"f", "sigma"}


def test_blocks_by_hand() -> None:
    y = np.sin(X) + 0.1
    post = infer(noisy_curve, X, y=y, num_samples=10, num_warmup=10, num_chains=1,
                 progress=False, blocks=[("RW", "sigma"), ("ProgramMH", ["f"])])
    assert post.attrs["plan"] == "Gibbs: RW[sigma] + ProgramMH[f]"


@pytest.mark.parametrize(("blocks", "message"), [
    ([("NUTS", ["f", "sigma"])], "cannot update program site 'f'"),
    ([("ProgramMH", "f")], r"without a kernel"),
    ([("ProgramMH", "f"), ("NUTS", "sigma"), ("RW", "sigma")], "in two blocks"),
    ([("HMC", "sigma"), ("ProgramMH", "f")], "Unknown block kernel 'HMC'"),
    ([("NUTS", "tau"), ("ProgramMH", "f")], "'tau', which is not a latent site"),
    (["NUTS"], "a \\(kernel, sites\\) pair"),
], ids=["program-in-nuts", "uncovered", "twice", "unknown-kernel", "unknown-site", "shape"])
def test_bad_blocks_are_refused(blocks: Any, message: str) -> None:
    with pytest.raises(ppl.PPLError, match=message):
        infer(noisy_curve, X, y=np.sin(X), num_samples=5, num_chains=1, blocks=blocks)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"targets": "g"}, "Target 'g' is not a site"),
    ({"given": {"z": 1.0}}, "Given site 'z' is not a site"),
    ({"targets": "f", "given": {"f": "x"}}, "both a target and given"),
    ({"given": {"f": "x +"}}, "does not parse"),
    ({"given": {"f": 3.0}}, "program-valued"),
    ({"given": {"y": np.zeros(3)}}, "has shape \\(3,\\)"),
    ({"given": {"y": np.full(6, np.nan)}}, "NaN"),
    ({"targets": []}, "targets is empty"),
    ({"method": "magic"}, "query takes method"),
    ({"num_rungz": 2}, "Unknown query option"),
], ids=["target", "given", "both", "parse", "program-type", "shape", "nan", "empty",
        "method", "option"])
def test_query_faults(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ppl.PPLError, match=message):
        query(ppl.World(curve, X), **kwargs)


def test_observed_target_is_refused() -> None:
    with pytest.raises(ppl.PPLError, match="observed data in this world"):
        query(ppl.World(curve, X, y=np.sin(X)), "y")
