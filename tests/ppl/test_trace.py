"""Tests of ppl/trace.py: the seeded quiet run, model traces, site kinds and data checks.

The module is the one place that runs a model under ``poutine.trace`` and the one place of
the seeded quiet run; the last tests read the sources of ``ppl/`` and ``inference/`` as text
to keep it so.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pyro.poutine.util import is_validation_enabled

import ppl
from ppl import dist
from ppl.errors import DataError, PPLError
from ppl.trace import (
    CONTINUOUS,
    DETERMINISTIC,
    DISCRETE,
    FACTOR,
    PROGRAM,
    Site,
    check_arguments,
    check_observed,
    classify,
    data_errors,
    discover,
    discovery_value,
    log_joint,
    max_plate_nesting,
    seeded,
    sites_of,
    trace_model,
)

REPO = Path(__file__).resolve().parents[2]
TINY = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
X = torch.linspace(0.0, 1.0, 4, dtype=torch.float64)


def every_kind(x: Any, y: Any = None) -> None:
    """One site of every kind: program, continuous, discrete (finite and infinite),
    deterministic, observed, and a factor statement."""
    f = ppl.sample("f", TINY)
    sigma = ppl.sample("sigma", dist.HalfNormal(1.0))
    ppl.sample("k", dist.Categorical(torch.tensor([0.5, 0.5])))
    ppl.sample("n", dist.Poisson(3.0))
    with ppl.plate("data", len(x)):
        mean = ppl.deterministic("mean", f(x))
        ppl.sample("y", dist.Normal(mean, sigma), obs=y)
    ppl.factor("penalty", -sigma)


def normal_model(y: Any = None) -> None:
    mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
    with ppl.plate("data", 3):
        ppl.sample("y", dist.Normal(mu, 1.0), obs=y)


# ---------------------------------------------------------------------- seeded quiet run
def test_seeded_run_leaves_the_global_rng_untouched() -> None:
    before = torch.get_rng_state()
    with seeded(5):
        inside = torch.rand(3)
    assert torch.equal(torch.get_rng_state(), before)
    assert not torch.equal(torch.rand(3), inside)  # the global stream went on from `before`


def test_seeded_run_is_reproducible_and_depends_on_the_seed() -> None:
    draws = []
    for seed in (5, 5, 6):
        with seeded(seed):
            draws.append(torch.randn(4))
    assert torch.equal(draws[0], draws[1])
    assert not torch.equal(draws[0], draws[2])


def test_seeded_run_is_quiet_and_restores_on_error() -> None:
    before = torch.get_rng_state()
    assert is_validation_enabled()
    with pytest.raises(RuntimeError, match="inside"), seeded(1):
        assert not is_validation_enabled()
        torch.rand(2)
        raise RuntimeError("inside")
    assert is_validation_enabled()
    assert torch.equal(torch.get_rng_state(), before)


# ---------------------------------------------------------------------- trace_model
def test_trace_model_conditions_and_scores() -> None:
    values = {"mu": torch.tensor(0.5, dtype=torch.float64)}
    y = torch.zeros(3, dtype=torch.float64)
    tr = trace_model(normal_model, kwargs={"y": y}, data=values, log_prob=True)
    expected = dist.Normal(0.0, 1.0).log_prob(values["mu"]) + \
        dist.Normal(values["mu"], 1.0).log_prob(y).sum()
    assert float(tr.nodes["mu"]["value"]) == 0.5
    assert tr.nodes["mu"]["is_observed"]
    assert log_joint(tr) == pytest.approx(float(expected), abs=1e-12)


def test_trace_model_takes_latent_values_from_init() -> None:
    tr = trace_model(normal_model, init=lambda site: torch.tensor(2.0))
    assert float(tr.nodes["mu"]["value"]) == 2.0
    assert not tr.nodes["mu"]["is_observed"]


def test_trace_model_runs_pyro_quietly_even_inside_the_numpyro_backend() -> None:
    with ppl.backend.use("numpyro"):
        tr = trace_model(normal_model)
    assert {"mu", "y"} <= set(tr.nodes)
    assert is_validation_enabled() and ppl.backend.active() == "pyro"


def test_discovery_value_of_an_improper_site_is_in_its_support() -> None:
    flat = dist.ImproperUniform(dist.constraints.positive, (), (3,))
    with seeded(0):
        value = discovery_value({"fn": flat})
    assert value.shape == (3,) and bool((value > 0).all())


# ---------------------------------------------------------------------- classification
@pytest.fixture(scope="module")
def kinds() -> dict[str, Site]:
    return discover(every_kind, (X,), {"y": torch.zeros(4, dtype=torch.float64)}).sites


@pytest.mark.parametrize(("name", "kind", "observed", "latent"), [
    ("f", PROGRAM, False, True),
    ("sigma", CONTINUOUS, False, True),
    ("k", DISCRETE, False, True),
    ("n", DISCRETE, False, True),  # a discrete support, even if infinite
    ("mean", DETERMINISTIC, False, False),
    ("y", CONTINUOUS, True, False),
    ("penalty", FACTOR, False, False),
], ids=["program", "continuous", "discrete-finite", "discrete-infinite", "deterministic",
        "observed", "factor"])
def test_sites_are_classified(kinds: dict[str, Site], name: str, kind: str, observed: bool,
                              latent: bool) -> None:
    site = kinds[name]
    assert (site.kind, site.observed, site.latent) == (kind, observed, latent)


def test_sites_keep_execution_order_shapes_and_plates(kinds: dict[str, Site]) -> None:
    assert list(kinds) == ["f", "sigma", "k", "n", "mean", "y", "penalty"]
    assert kinds["f"].shape == () and kinds["y"].shape == (4,)
    assert kinds["y"].plates == ("data",) and kinds["sigma"].plates == ()


def test_a_site_whose_value_is_a_program_is_a_program_site() -> None:
    message = {"type": "sample", "fn": dist.Normal(0.0, 1.0), "is_observed": False,
               "value": TINY.grammar.parse("x"), "infer": {}}
    assert classify(message) == PROGRAM


def test_numpyro_traces_are_read_the_same_way() -> None:
    from numpyro import handlers

    def model(y: Any = None) -> None:
        f = ppl.sample("f", TINY)
        s = ppl.sample("s", dist.HalfNormal(1.0))
        with ppl.plate("data", 2):
            ppl.deterministic("m", f(np.zeros(2)))
            ppl.sample("y", dist.Normal(0.0, s), obs=y)
        ppl.factor("bonus", 1.0)

    with ppl.backend.use("numpyro"):
        tr = handlers.trace(handlers.seed(model, 0)).get_trace(y=np.zeros(2))
    sites = sites_of(tr)
    assert {n: s.kind for n, s in sites.items()} == {
        "f": PROGRAM, "s": CONTINUOUS, "m": DETERMINISTIC, "y": CONTINUOUS, "bonus": FACTOR}
    assert [n for n, s in sites.items() if s.observed] == ["y"]
    assert max_plate_nesting(tr) == 1


# ---------------------------------------------------------------------- discovery
def test_discovery_is_seeded_and_leaves_the_global_rng_untouched() -> None:
    before = torch.get_rng_state()
    first = discover(normal_model, seed=3).sites["mu"].value
    again = discover(normal_model, seed=3).sites["mu"].value
    other = discover(normal_model, seed=4).sites["mu"].value
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert torch.equal(torch.get_rng_state(), before)


def test_discovery_conditions_on_data_and_leaves_out_fixed_sites() -> None:
    found = discover(every_kind, (X,), data={"y": torch.ones(4, dtype=torch.float64)},
                     fixed={"f": TINY.grammar.parse("x"), "sigma": torch.tensor(1.0)})
    assert "f" not in found.sites and "sigma" not in found.sites
    assert found.observed == ["y"] and found.latent == ["k", "n"]
    assert torch.equal(found.sites["y"].value, torch.ones(4, dtype=torch.float64))
    assert found.max_plate_nesting == 1


def test_discovery_of_an_improper_prior() -> None:
    def model(y: Any = None) -> None:
        s = ppl.sample("s", dist.ImproperUniform(dist.constraints.positive, (), ()))
        with ppl.plate("groups", 2, dim=-2), ppl.plate("data", 3, dim=-1):
            ppl.sample("y", dist.Normal(0.0, s), obs=y)

    found = discover(model, kwargs={"y": torch.ones(2, 3)})
    assert found.latent == ["s"] and float(found.sites["s"].value) > 0
    assert found.max_plate_nesting == 2


# ---------------------------------------------------------------------- data checks
@pytest.mark.parametrize(("y", "needle"), [
    (torch.tensor([0.0, float("nan"), 1.0]), r"'y' has 1 NaN or infinite value\(s\)"),
    (torch.tensor([0.0, float("inf"), -float("inf")]), r"'y' has 2 NaN or infinite"),
    (torch.zeros(0), "'y' is empty"),
    (torch.zeros(3, 1), r"'y' has shape \(3, 1\) but its distribution has shape \(3,\)"),
    (torch.zeros(2), r"'y' has shape \(2,\)"),
], ids=["nan", "inf", "empty", "column", "short"])
def test_bad_observed_data_is_a_data_error_naming_the_site(y: torch.Tensor, needle: str
                                                          ) -> None:
    with pytest.raises(DataError, match=needle):
        discover(normal_model, kwargs={"y": y})


def test_good_observed_data_passes() -> None:
    for y in (torch.zeros(3), torch.zeros(3, dtype=torch.int64), np.zeros(3)):
        site = Site("y", CONTINUOUS, True, (3,), ("data",), dist.Normal(torch.zeros(3), 1.0), y)
        check_observed(site)


def test_program_values_are_not_data_to_check() -> None:
    program = TINY.grammar.parse("x")
    check_observed(Site("f", PROGRAM, True, (), (), TINY, program))


def test_bad_arguments_are_data_errors() -> None:
    with pytest.raises(DataError, match="Model argument 0 is empty"):
        check_arguments((np.array([]),), {})
    with pytest.raises(DataError, match=r"Model 'x' has 1 NaN"):
        check_arguments((), {"x": [1.0, float("nan")]})
    check_arguments(("text", 3), {"x": np.arange(3)})


def test_data_errors_turns_a_failing_run_into_a_data_error() -> None:
    with pytest.raises(DataError, match="Running the model on its data failed: bad shape"), \
            data_errors():
        raise ValueError("bad shape")
    with pytest.raises(PPLError, match="already a ppl error"), data_errors():
        raise PPLError("already a ppl error")
    with pytest.raises(KeyError), data_errors():
        raise KeyError("not a data error")


# ---------------------------------------------------------------------- one home
CALL = re.compile(r"poutine\.trace\(")
FORK = re.compile(r"fork_rng\(")


def modules_matching(pattern: re.Pattern[str], root: Path) -> list[str]:
    """The modules under ``root``/ppl and ``root``/inference whose text matches."""
    return sorted(str(p.relative_to(root)) for package in ("ppl", "inference")
                  for p in (root / package).rglob("*.py") if pattern.search(p.read_text()))


@pytest.mark.parametrize(("pattern", "what"), [(CALL, "poutine.trace("), (FORK, "fork_rng(")],
                         ids=["poutine-trace", "fork-rng"])
def test_one_module_traces_models_and_forks_the_rng(pattern: re.Pattern[str], what: str
                                                    ) -> None:
    assert modules_matching(pattern, REPO) == ["ppl/trace.py"], (
        f"{what} belongs in ppl/trace.py only: use ppl.trace.trace_model / ppl.trace.seeded")


def test_the_one_home_check_sees_a_stray_call(tmp_path: Path) -> None:
    """The broken twin: a second module that calls poutine.trace is reported."""
    for path, text in [("ppl/trace.py", "poutine.trace(model)\n"),
                       ("inference/stray.py", "tr = pyro.poutine.trace(m).get_trace()\n"),
                       ("inference/fine.py", "from ppl.trace import trace_model\n")]:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    assert modules_matching(CALL, tmp_path) == ["inference/stray.py", "ppl/trace.py"]
