"""Pictures of a posterior (inference/plots.py): each figure is drawn on a small exact
posterior, saved as a PNG of ``figsize × dpi`` pixels, and bad input is refused by name."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pytest

import ppl
from inference import Posterior, infer
from inference.plots import (
    PlotError,
    plot_graph,
    plot_predictive,
    plot_programs,
    plot_traces,
    short_text,
)
from ppl import dist
from ppl.render import layout, plate_boxes

PRIOR = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
X = np.linspace(-1.0, 1.0, 8)
Y = X + 1.0 + 0.1 * np.sin(7 * X)


def model(x: Any, y: Any = None) -> None:
    f = ppl.sample("f", PRIOR)
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), 0.2), obs=y)


@pytest.fixture(scope="module")
def post() -> Posterior:
    return infer(model, X, y=Y, method="enumerate", num_chains=2, num_samples=100, seed=0)


@pytest.fixture(scope="module")
def noisy(post: Posterior) -> Posterior:
    """The same draws with a noise scale site, as a Gibbs run with a Noise block has."""
    sigma = np.full(post.samples["f"].shape, 0.2)
    return Posterior(method="mcmc", samples={**post.samples, "sigma": sigma},
                     stats=post.stats, log_lik=post.log_lik, observed=post.observed,
                     priors=post.priors, attrs={"plan": "Gibbs: ProgramMH[f] + Noise[sigma]"})


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels from a PNG's IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path} is no PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


PLOTS = {
    "predictive": lambda p, path: plot_predictive(p, X, Y, path, dpi=50),
    "programs": lambda p, path: plot_programs(p, top=5, path=path, dpi=50),
    "traces": lambda p, path: plot_traces(p, path, dpi=50),
    "graph": lambda p, path: plot_graph(model, path, args=(X,), kwargs={"y": Y}, dpi=50),
}


@pytest.mark.parametrize("name", sorted(PLOTS))
def test_each_plot_is_saved_as_a_png_of_its_size(name: str, noisy: Posterior,
                                                  tmp_path: Path) -> None:
    before = dict(matplotlib.rcParams)
    path = tmp_path / f"{name}.png"
    fig = PLOTS[name](noisy, path)
    assert isinstance(fig, matplotlib.figure.Figure) and path.stat().st_size > 1000
    width, height = fig.get_size_inches() * 50
    assert png_size(path) == (round(width), round(height))
    assert dict(matplotlib.rcParams) == before  # the ArviZ style was only borrowed


def legend(fig: Any) -> list[str]:
    return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def test_predictive_bands_of_y_need_a_noise_scale(post: Posterior, noisy: Posterior) -> None:
    assert legend(plot_predictive(noisy, X, Y))[:2] == ["y 90%", "y 50%"]  # "auto": plan
    assert "y 90%" not in legend(plot_predictive(post, X, Y))  # enumerate: no noise site
    assert "y 90%" in legend(plot_predictive(post, X, Y, noise=0.2))
    assert "y 90%" not in legend(plot_predictive(noisy, X, Y, noise=None))


def test_predictive_mean_follows_the_posterior(post: Posterior) -> None:
    grid = np.array([-1.0, 0.0, 2.0])
    fig = plot_predictive(post, X, Y, grid=grid)
    line = fig.axes[0].get_lines()[0]
    np.testing.assert_allclose(line.get_ydata(), grid + 1.0, atol=0.05)


def test_several_inputs_plot_predicted_against_observed() -> None:
    prior = ppl.ProgramPrior("tiny", inputs=["x", "z"], max_depth=2)

    def two(x: Any, z: Any, y: Any = None) -> None:
        f = ppl.sample("f", prior)
        with ppl.plate("data", len(x)):
            ppl.sample("y", dist.Normal(f(x, z), 0.2), obs=y)

    z = np.cos(3 * X)
    post = infer(two, X, z, y=X + z, method="enumerate", num_chains=1, num_samples=50)
    for x in (np.column_stack([X, z]), {"z": z, "x": X}):
        fig = plot_predictive(post, x, X + z)
        assert fig.axes[0].get_xlabel() == "observed y"
        assert "predicted = observed" in legend(fig)
    with pytest.raises(PlotError, match=r"one column per input of 'f' \(\['x', 'z'\]\)"):
        plot_predictive(post, X, X + z)
    with pytest.raises(PlotError, match=r"no column for the input\(s\) \['z'\]"):
        plot_predictive(post, {"x": X}, X + z)


@pytest.mark.parametrize(("call", "match"), [
    (lambda p: plot_predictive(p, X, Y[:-1]), "x has 8 rows but y has 7 values"),
    (lambda p: plot_predictive(p, X, Y, noise="tau"), "noise='tau' must name a scalar"),
    (lambda p: plot_predictive(p, X, Y, noise=-1.0), "a scale > 0"),
    (lambda p: plot_predictive(p, X, Y, site="g"), "'g' is not a program site"),
    (lambda p: plot_programs(p, site="g"), "'g' is not a program site"),
    (lambda p: plot_graph(42), "a ppl.World or a model function; got int"),
    (lambda p: plot_traces(p, "/nonexistent-folder/t.png"), "Cannot save the figure"),
    (lambda p: plot_programs(p, path="out.gif"), "Cannot save the figure to 'out.gif'"),
], ids=["x-y-lengths", "noise-name", "noise-value", "site", "programs-site", "graph-type",
        "unwritable", "format"])
def test_bad_input_is_refused_by_name(call: Any, match: str, post: Posterior) -> None:
    with pytest.raises(PlotError, match=match):
        call(post)


def test_a_posterior_without_program_sites() -> None:
    mu = np.zeros((2, 10))
    post = Posterior(method="mcmc", samples={"mu": mu}, stats={}, log_lik={}, observed={},
                     priors={})
    with pytest.raises(PlotError, match=r"needs a posterior with a program site; this "
                                        r"one has only \['mu'\]"):
        plot_programs(post)
    with pytest.raises(PlotError, match="plot_predictive needs a posterior with a program"):
        plot_predictive(post, X, Y)
    with pytest.raises(PlotError, match="draws of a program site or the log joint"):
        plot_traces(post)
    lp = Posterior(method="mcmc", samples={"mu": mu}, stats={"lp": mu}, log_lik={},
                   observed={}, priors={})
    assert [ax.get_title() for ax in plot_traces(lp).axes] == ["log joint"] * 2


def test_program_bars_follow_the_program_table(post: Posterior) -> None:
    table = post.programs(top=3, simplify=False)
    bars = plot_programs(post, top=3).axes[0].patches
    np.testing.assert_allclose([b.get_width() for b in bars], table["probability"])


@pytest.mark.parametrize(("text", "width", "expected"), [
    ("(x + 1)", 40, "(x + 1)"),
    ("(0.123456 * x)", 40, "(0.123 * x)"),
    ("exp((1.5e-07 * x))", 40, "exp((1.5e-07 * x))"),
    ("abcdefghijklmnopqrstuvwxyz", 9, "abcd…wxyz"),
], ids=["short", "constant", "exponent", "long"])
def test_short_text(text: str, width: int, expected: str) -> None:
    assert short_text(text, width) == expected


def test_nested_plates_are_boxed_outer_first() -> None:
    def nested(y: Any = None) -> None:
        with ppl.plate("groups", 3):
            mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
            with ppl.plate("items", 4, dim=-2):
                ppl.sample("y", dist.Normal(mu, 1.0), obs=y)

    world = ppl.World(nested, y=np.zeros((4, 3)))
    boxes = plate_boxes(world, layout(world))
    assert [label for label, _ in boxes] == ["groups (N=3)", "items"]
    (x0, y0, x1, y1), (u0, v0, u1, v1) = boxes[0][1], boxes[1][1]
    assert x0 < u0 and y0 < v0 and u1 < x1 and v1 <= y1
