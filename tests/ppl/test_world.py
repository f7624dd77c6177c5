"""Tests of ppl.World: the traced factor graph, its queries, log densities and pictures."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pyro
import pytest
import torch
from pyro import poutine

import ppl
from ppl import dist
from ppl.errors import DataError, ModelError, PPLError, SiteError

ARITH = ppl.ProgramPrior("arith", inputs=["x"], max_depth=4)
G = ARITH.grammar
X = np.linspace(-1.0, 1.0, 10)
Y = 2.0 * X + 1.0


# ---------------------------------------------------------------------- models
def program_model(x: Any, y: Any = None) -> None:
    """DESIGN §3: f, sigma -> y."""
    f = ppl.sample("f", ARITH)
    sigma = ppl.sample("sigma", dist.HalfNormal(1.0))
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), sigma), obs=y)


SCHOOL_SIGMA = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])
SCHOOL_Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])


def schools(sigma: Any, y: Any = None) -> None:
    """Eight schools, non-centred: mu, tau, theta_tilde -> theta (deterministic) -> y."""
    mu = ppl.sample("mu", dist.Normal(0.0, 5.0))
    tau = ppl.sample("tau", dist.HalfCauchy(5.0))
    with ppl.plate("schools", len(sigma)):
        theta_tilde = ppl.sample("theta_tilde", dist.Normal(0.0, 1.0))
        theta = ppl.deterministic("theta", mu + tau * theta_tilde)
        ppl.sample("y", dist.Normal(theta, sigma), obs=y)


def reverse(f: ppl.Program, y: Any = None) -> None:
    """p(x | y, φ): x latent, f a fixed program (an argument, not a site), y observed."""
    x = ppl.sample("x", dist.Normal(0.0, 2.0).expand([3]).to_event(1))
    ppl.sample("y", dist.Normal(f(x), 0.1).to_event(1), obs=y)


def latent_input(y: Any = None) -> None:
    """x latent -> f(x) -> y with f latent too: y's parents are f and x."""
    x = ppl.sample("x", dist.Normal(0.0, 1.0).expand([3]).to_event(1))
    f = ppl.sample("f", ARITH)
    ppl.sample("y", dist.Normal(f(x), 1.0).to_event(1), obs=y)


def two_calls(x: Any, y: Any = None) -> None:
    """One program called twice on different latent inputs; a factor of two sites."""
    f = ppl.sample("f", ARITH)
    a = ppl.sample("a", dist.Normal(0.0, 1.0))
    u = ppl.sample("u", dist.Normal(0.0, 1.0).expand([3]).to_event(1))
    ppl.sample("y1", dist.Normal(f(x + u), 1.0).to_event(1), obs=y)
    ppl.sample("y2", dist.Normal(f(a * x), 1.0).to_event(1), obs=y)


def mixed(y: Any = None) -> None:
    """A discrete site used as an index, a continuous one, and a factor statement."""
    z = ppl.sample("z", dist.Categorical(torch.tensor([0.2, 0.3, 0.5])))
    w = ppl.sample("w", dist.Normal(0.0, 1.0))
    ppl.factor("penalty", -0.5 * w**2 * (1.0 + z))
    locs = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64)
    with ppl.plate("data", 4):
        ppl.sample("y", dist.Normal(locs[z] + w, 1.0), obs=y)


F_REV = G.parse("sin(x)")
WORLDS: dict[str, tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = {
    "program": (program_model, (X,), {"y": Y}),
    "schools": (schools, (SCHOOL_SIGMA,), {"y": SCHOOL_Y}),
    "reverse": (reverse, (F_REV,), {"y": np.array([0.1, -0.2, 0.3])}),
    "latent_input": (latent_input, (), {"y": np.zeros(3)}),
    "two_calls": (two_calls, (np.array([0.5, 1.0, 1.5]),), {"y": np.zeros(3)}),
    "mixed": (mixed, (), {"y": np.array([0.5, -0.3, 1.2, 0.1])}),
}
EXPECTED_PARENTS = {
    "program": {"f": set(), "sigma": set(), "y": {"f", "sigma"}},
    "schools": {"mu": set(), "tau": set(), "theta_tilde": set(),
                "theta": {"mu", "tau", "theta_tilde"}, "y": {"theta"}},
    "reverse": {"x": set(), "y": {"x"}},
    "latent_input": {"x": set(), "f": set(), "y": {"f", "x"}},
    "two_calls": {"f": set(), "a": set(), "u": set(), "y1": {"f", "u"}, "y2": {"f", "a"}},
    "mixed": {"z": set(), "w": set(), "y": {"z", "w"}},
}


@pytest.fixture(scope="module")
def worlds() -> dict[str, ppl.World]:
    return {name: ppl.World(model, *args, **kwargs)
            for name, (model, args, kwargs) in WORLDS.items()}


def pyro_log_joint(name: str, values: dict[str, Any]) -> float:
    """log p(values, data) from a plain Pyro trace of the model: the sum of its sites'
    log-probability sums (in float64: ``Trace.log_prob_sum`` accumulates float32 sites in
    float32)."""
    model, args, kwargs = WORLDS[name]
    args = tuple(torch.as_tensor(a) if isinstance(a, np.ndarray) else a for a in args)
    kwargs = {k: torch.as_tensor(v) for k, v in kwargs.items()}
    with pyro.validation_enabled(False):
        tr = poutine.trace(poutine.condition(model, data=values)).get_trace(*args, **kwargs)
    tr.compute_log_prob()
    return sum(float(site["log_prob_sum"]) for site in tr.nodes.values()
               if site["type"] == "sample" and "log_prob_sum" in site)


# ---------------------------------------------------------------------- structure
@pytest.mark.parametrize("name", list(WORLDS))
def test_parents_are_exactly_the_sites_read(worlds: dict[str, ppl.World], name: str) -> None:
    world = worlds[name]
    assert world.sites == list(EXPECTED_PARENTS[name])
    assert {s: world.parents(s) for s in world.sites} == EXPECTED_PARENTS[name]
    for s in world.sites:
        assert world.children(s) == {c for c in world.sites if s in world.parents(c)}


@pytest.mark.parametrize("name", list(WORLDS))
def test_graph_is_bipartite_with_one_factor_per_site(worlds: dict[str, ppl.World],
                                                     name: str) -> None:
    world = worlds[name]
    g = world.graph
    variables = {n for n, d in g.nodes(data=True) if d["kind"] == "variable"}
    factors = {n for n, d in g.nodes(data=True) if d["kind"] == "factor"}
    assert variables == set(world.sites) and factors == set(world.factors)
    assert nx.is_bipartite(g) and all((u in factors) != (v in factors) for u, v in g.edges)
    for s in world.sites:
        assert set(g.neighbors(f"p({s})")) == {s} | world.parents(s)
        assert g.edges[f"p({s})", s]["role"] == "site"
        assert g.nodes[s]["site_type"] == world.kind(s)
        assert g.nodes[s]["observed"] == world.is_observed(s)
        value = world.value(s)
        assert g.nodes[s]["shape"] == (tuple(value.shape) if torch.is_tensor(value) else ())


def test_program_model(worlds: dict[str, ppl.World]) -> None:
    world = worlds["program"]
    assert world.latent == ["f", "sigma"] and world.observed == ["y"]
    assert [world.kind(s) for s in world.sites] == ["program", "continuous", "continuous"]
    assert isinstance(world.value("f"), ppl.Program)
    assert isinstance(world.distribution("f"), ppl.ProgramPrior)
    assert world.markov_blanket("f") == {"sigma", "y"}
    assert world.markov_blanket("sigma") == {"f", "y"}
    assert world.markov_blanket("y") == {"f", "sigma"}
    assert world.factors_of("f") == ["p(f)", "p(y)"]
    assert world.graph.nodes["y"]["plates"] == ("data",)
    assert world.args[0].dtype == torch.float64 and world.kwargs["y"].dtype == torch.float64


def test_schools_deterministic_is_neither_latent_nor_observed(
        worlds: dict[str, ppl.World]) -> None:
    world = worlds["schools"]
    assert world.latent == ["mu", "tau", "theta_tilde"] and world.observed == ["y"]
    assert world.kind("theta") == "deterministic" and not world.is_observed("theta")
    assert world.children("mu") == {"theta"}
    assert world.ancestors("y") == {"mu", "tau", "theta_tilde", "theta"}
    assert world.descendants("tau") == {"theta", "y"} and world.descendants("y") == set()
    # deterministic sites are looked through: mu's blanket holds theta's co-parents and y
    assert world.markov_blanket("mu") == {"tau", "theta_tilde", "y"}
    assert world.markov_blanket("y") == {"mu", "tau", "theta_tilde"}
    assert world.factors_of("theta_tilde") == ["p(theta_tilde)", "p(theta)", "p(y)"]


def test_factor_statement_is_a_factor_node_alone(worlds: dict[str, ppl.World]) -> None:
    world = worlds["mixed"]
    assert world.kind("z") == "discrete" and world.kind("w") == "continuous"
    assert "penalty" not in world.sites and "penalty" in world.factors
    node = world.graph.nodes["penalty"]
    assert node["kind"] == "factor" and node["site"] is None
    assert set(world.graph.neighbors("penalty")) == {"z", "w"}
    assert world.factors_of("w") == ["p(w)", "penalty", "p(y)"]
    assert world.markov_blanket("w") == {"z", "y"}
    assert world.markov_blanket("z") == {"w", "y"}


def test_reverse_model_has_no_program_site(worlds: dict[str, ppl.World]) -> None:
    world = worlds["reverse"]
    assert world.latent == ["x"] and world.markov_blanket("x") == {"y"}


def test_unfollowable_program_use_is_a_parent_of_later_sites() -> None:
    """Reading f.size leaves the tensors: every later site conservatively depends on f."""
    def model() -> None:
        f = ppl.sample("f", ARITH)
        a = ppl.sample("a", dist.Normal(0.0, 1.0))
        ppl.factor("size", -torch.tensor(float(f.size)))
        ppl.sample("b", dist.Normal(a, 1.0), obs=torch.tensor(0.0))

    world = ppl.World(model)
    assert world.parents("a") == set() and world.parents("b") == {"a", "f"}
    assert world.graph.nodes["size"]["parents"] == ("f",)


def test_an_observed_program_is_an_observed_variable() -> None:
    def model(f: ppl.Program, x: Any) -> None:
        g = ppl.sample("f", ARITH, obs=f)
        s = ppl.sample("s", dist.HalfNormal(1.0))
        ppl.sample("y", dist.Normal(g(x), s).to_event(1), obs=torch.zeros(len(x)))

    world = ppl.World(model, F_REV, X)
    assert world.observed == ["f", "y"] and world.latent == ["s"]
    assert world.kind("f") == "program" and world.parents("y") == {"f", "s"}
    expected = (ARITH.log_density(F_REV) + float(dist.HalfNormal(1.0).log_prob(
        torch.tensor(0.5, dtype=torch.float64))) + float(
        dist.Normal(F_REV(torch.as_tensor(X)), 0.5).log_prob(torch.zeros(len(X))).sum()))
    assert world.log_density({"s": 0.5}) == pytest.approx(expected, abs=1e-9)


def test_traced_values_are_plain_and_the_global_rng_untouched() -> None:
    state = torch.get_rng_state()
    world = ppl.World(program_model, X, y=Y)
    assert torch.equal(state, torch.get_rng_state())
    assert type(world.value("sigma")) is torch.Tensor
    assert type(world.distribution("y").loc) is torch.Tensor
    with ppl.backend.use("numpyro"):  # models written with ppl.dist trace under Pyro
        assert ppl.World(program_model, X, y=Y).sites == world.sites


def test_repr_lists_every_factor(worlds: dict[str, ppl.World]) -> None:
    text = repr(worlds["mixed"])
    assert text.startswith("World(mixed: 3 sites, 4 factors)")
    assert "p(y)     y ~ Normal | z, w" in text and "penalty  factor(z, w)" in text


# ---------------------------------------------------------------------- densities
def test_log_density_of_the_program_model_by_hand(worlds: dict[str, ppl.World]) -> None:
    f, sigma = G.parse("((2.0 * x) + 1.0)"), 0.3
    xt, yt = torch.as_tensor(X), torch.as_tensor(Y)
    expected = (ARITH.log_density(f) + math.log(2.0) + float(
        torch.distributions.Normal(0.0, 1.0).log_prob(torch.tensor(sigma, dtype=torch.float64)))
        + float(torch.distributions.Normal(f(xt), sigma).log_prob(yt).sum()))
    got = worlds["program"].log_density({"f": f, "sigma": sigma})
    assert got == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("name,values", [
    ("program", {"f": G.parse("(x * 2.5)"), "sigma": torch.tensor(0.7)}),
    ("schools", {"mu": torch.tensor(1.5), "tau": torch.tensor(2.0),
                 "theta_tilde": torch.linspace(-1.0, 1.0, 8, dtype=torch.float64)}),
    ("reverse", {"x": torch.tensor([0.1, -0.3, 0.2], dtype=torch.float64)}),
    ("latent_input", {"x": torch.tensor([0.1, -0.3, 0.2], dtype=torch.float64),
                      "f": G.parse("sin(x)")}),
    ("mixed", {"z": torch.tensor(2), "w": torch.tensor(0.4, dtype=torch.float64)}),
], ids=["program", "schools", "reverse", "latent_input", "mixed"])
def test_log_density_equals_a_pyro_trace(worlds: dict[str, ppl.World], name: str,
                                         values: dict[str, Any]) -> None:
    got = worlds[name].log_density(values)
    assert math.isfinite(got)
    assert got == pytest.approx(pyro_log_joint(name, values), abs=1e-9)


def test_log_density_converts_numbers_and_arrays(worlds: dict[str, ppl.World]) -> None:
    world = worlds["schools"]
    as_tensors = {"mu": torch.tensor(1.5, dtype=torch.float64),
                  "tau": torch.tensor(2.0, dtype=torch.float64),
                  "theta_tilde": torch.linspace(-1.0, 1.0, 8, dtype=torch.float64)}
    as_numpy = {"mu": 1.5, "tau": 2, "theta_tilde": np.linspace(-1.0, 1.0, 8)}
    assert world.log_density(as_numpy) == world.log_density(as_tensors)
    assert worlds["mixed"].log_density({"z": 2, "w": 0.4}) == pytest.approx(
        pyro_log_joint("mixed", {"z": torch.tensor(2),
                                 "w": torch.tensor(0.4, dtype=torch.float64)}), abs=1e-9)


def test_invalid_program_has_log_density_minus_inf(worlds: dict[str, ppl.World]) -> None:
    bad = G.parse("log(x)")  # x in [-1, 1]: nan outputs
    assert worlds["program"].log_density({"f": bad, "sigma": 1.0}) == -math.inf


def test_sites_that_depend_on_values_are_refused() -> None:
    def model() -> None:
        z = ppl.sample("z", dist.Bernoulli(1.0))
        if z > 0.5:
            ppl.sample("extra", dist.Normal(0.0, 1.0))

    world = ppl.World(model)
    assert world.log_density({"z": 1.0, "extra": 0.0}) == pytest.approx(
        float(dist.Normal(0.0, 1.0).log_prob(torch.tensor(0.0))), abs=1e-6)
    with pytest.raises(ModelError, match="extra"):
        world.log_density({"z": 0.0, "extra": 0.0})


# ---------------------------------------------------------------------- errors
def test_a_model_that_raises_is_a_model_error() -> None:
    def broken(x: Any) -> None:
        ppl.sample("a", dist.Normal(0.0, 1.0))
        raise ZeroDivisionError("boom in the model")

    with pytest.raises(ModelError, match=r"broken.*ZeroDivisionError: boom in the model"):
        ppl.World(broken, X)
    def silent() -> None:
        raise AssertionError

    with pytest.raises(ModelError, match=r"'.*silent' failed with AssertionError\. Run"):
        ppl.World(silent)
    with pytest.raises(ModelError, match="needs a model function"):
        ppl.World("not a model")  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="program_model"):
        ppl.World(program_model)  # missing argument x


def test_bad_data_is_a_data_error() -> None:
    with pytest.raises(DataError, match="'y' has 1 NaN"):
        ppl.World(program_model, X, y=np.where(X > 0.9, np.nan, Y))
    with pytest.raises(DataError, match=r"'y' has shape \(10, 1\) but its distribution"):
        ppl.World(program_model, X, y=Y.reshape(-1, 1))


def test_an_improper_prior_is_traced() -> None:
    """A site that cannot sample takes a point of its support (ppl.trace.discover)."""
    def flat(y: Any = None) -> None:
        s = ppl.sample("s", dist.ImproperUniform(dist.constraints.positive, (), ()))
        ppl.sample("y", dist.Normal(0.0, s), obs=y)

    world = ppl.World(flat, y=torch.tensor(0.5))
    assert world.latent == ["s"] and float(world.value("s")) > 0
    assert world.parents("y") == {"s"}


@pytest.mark.parametrize("call,match", [
    (lambda w: w.parents("nope"), r"no site 'nope'; its sites are \['z', 'w', 'y'\]"),
    (lambda w: w.markov_blanket("penalty"), "'penalty' is a factor statement"),
    (lambda w: w.log_density({"z": 1}), r"missing: \['w'\]"),
    (lambda w: w.log_density({"z": 1, "w": 0.0, "q": 1.0}),
     r"Not latent sites of 'mixed': \['q'\]\. The latent sites are \['z', 'w'\]"),
    (lambda w: w.log_density({"z": 1, "w": 0.0, "y": 1.0}), r"\['y'\] \(y is observed\)"),
    (lambda w: w.log_density([1.0, 2.0]), "expects a dict"),
    (lambda w: w.log_density({"z": 1, "w": "high"}), "site 'w' must be numeric"),
], ids=["unknown", "statement", "missing", "extra", "observed", "not-a-dict", "not-numeric"])
def test_bad_site_names_are_site_errors(worlds: dict[str, ppl.World], call: Any,
                                        match: str) -> None:
    with pytest.raises(SiteError, match=match):
        call(worlds["mixed"])


def test_program_site_values_must_be_programs(worlds: dict[str, ppl.World]) -> None:
    with pytest.raises(SiteError, match="'f' is a program site"):
        worlds["program"].log_density({"f": 1.0, "sigma": 1.0})
    with pytest.raises(SiteError, match="deterministic"):
        worlds["schools"].log_density({"mu": 0.0, "tau": 1.0, "theta_tilde": np.zeros(8),
                                       "theta": np.zeros(8)})


# ---------------------------------------------------------------------- pictures
def test_render_writes_a_png(worlds: dict[str, ppl.World], tmp_path: Path) -> None:
    path = worlds["two_calls"].render(tmp_path / "world.png")
    data = path.read_bytes()
    assert path == tmp_path / "world.png" and data.startswith(b"\x89PNG") and len(data) > 5000
    svg = worlds["mixed"].render(str(tmp_path / "world.svg"), title="mixed")
    assert "<svg" in svg.read_text()
    with pytest.raises(PPLError, match=r"world\.gif"):
        worlds["mixed"].render(tmp_path / "world.gif")
