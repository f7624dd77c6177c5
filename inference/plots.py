"""Pictures of a :class:`~inference.Posterior`: the posterior predictive band over the data,
the program probabilities, trace plots of program size and log joint, and the factor graph.

Every function returns a plain ``matplotlib.figure.Figure`` (drawn by Agg: no pyplot state,
no display) styled with ArviZ's ``arviz-darkgrid`` style for the duration of the call only
(global rcParams are left as they were), and saves it to ``path`` when one is given, at
``dpi`` dots per inch (.png, .svg or .pdf): a PNG is ``figsize × dpi`` pixels, rounded.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import style
from matplotlib.figure import Figure

from inference.results import (
    Posterior,  # imports ArviZ (inference._arviz), which registers its styles
)
from ppl.errors import PPLError
from ppl.program import Program
from ppl.render import FORMATS, draw_world
from ppl.world import World

__all__ = ["PlotError", "plot_graph", "plot_predictive", "plot_programs", "plot_traces",
           "short_text"]

STYLE = "arviz-darkgrid"
"""The ArviZ matplotlib style of every figure (registered by ``import arviz``)."""
SIZES = {"axes.labelsize": 10.0, "axes.titlesize": 11.0, "xtick.labelsize": 9.0,
         "ytick.labelsize": 9.0, "legend.fontsize": 8.0}
"""Font sizes for figures a few inches wide (ArviZ's are for notebooks)."""
COLORS: list[str] = style.library[STYLE]["axes.prop_cycle"].by_key()["color"]
"""ArviZ's colour cycle, as fixed colours: a figure saved later looks the same."""


class PlotError(PPLError):
    """An input a plot cannot draw: names the argument, what was expected and what came.

    Examples
    --------
    >>> from inference.plots import PlotError, plot_graph
    >>> try:
    ...     plot_graph(42)
    ... except PlotError as err:
    ...     print(err)
    plot_graph needs a ppl.World or a model function; got int.
    """


@contextmanager
def _styled() -> Iterator[None]:
    with style.context([STYLE, SIZES]):
        yield


def _save(fig: Figure, path: str | Path | None, dpi: float) -> Figure:
    """Save to ``path`` (when given) at ``dpi``: a bitmap of round(figsize × dpi) pixels
    (Agg truncates, so the size is nudged a hundredth of a pixel up first)."""
    if path is not None:
        if Path(path).suffix.lower() not in FORMATS:
            raise PlotError(f"Cannot save the figure to {str(path)!r}: the suffix must be "
                            f"one of {', '.join(FORMATS)}.")
        width, height = fig.get_size_inches() * dpi
        fig.set_size_inches((round(width) + 0.01) / dpi, (round(height) + 0.01) / dpi)
        try:
            fig.savefig(str(path), dpi=dpi)
        except (OSError, ValueError) as err:
            raise PlotError(f"Cannot save the figure to {str(path)!r}: {err}. Pick a "
                            "writable path ending in .png, .svg or .pdf.") from err
    return fig


def short_text(program: Program | str, width: int = 40, digits: int = 3) -> str:
    """The text of ``program`` for a label: constants to ``digits`` significant digits,
    then, when still longer than ``width`` characters, its start and end around "…".

    Examples
    --------
    >>> from inference.plots import short_text
    >>> short_text("(exp((-0.8245414334817995 * t)) * 2.0132161828824997)")
    '(exp((-0.825 * t)) * 2.01)'
    >>> short_text("((x + 1) * (x + 2)) + ((x + 3) * (x + 4))", width=20)
    '((x + 1) …* (x + 4))'
    """
    text = re.sub(r"\d+\.\d+(?:e[+-]?\d+)?",
                  lambda m: f"{float(m.group()):.{digits}g}", str(program))
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


# ---------------------------------------------------------------------- predictive
def _columns(post: Posterior, site: str, x: Any) -> list[np.ndarray]:
    """The inputs of ``site``'s programs as 1-d columns, in the prior's input order."""
    names = list(post.priors[site].inputs)
    if isinstance(x, Mapping):
        missing = [n for n in names if n not in x]
        if missing:
            raise PlotError(f"x has no column for the input(s) {missing} of '{site}'; its "
                            f"programs take {names}.")
        cols = [np.asarray(x[n], dtype=float).reshape(-1) for n in names]
    else:
        arr = np.asarray(x, dtype=float)
        arr = arr.reshape(-1, 1) if arr.ndim == 1 else arr
        if arr.ndim != 2 or arr.shape[1] != len(names):
            raise PlotError(f"x must have one column per input of '{site}' ({names}); got "
                            f"shape {np.shape(x)}. Pass an array (n, {len(names)}) or a "
                            "dict of columns.")
        cols = list(arr.T)
    if len({len(c) for c in cols}) > 1:
        raise PlotError(f"The columns of x have different lengths: "
                        f"{dict(zip(names, [len(c) for c in cols], strict=True))}.")
    return cols


def _noise(post: Posterior, noise: str | float | None) -> np.ndarray | float | None:
    """Noise scale per flat draw (or a fixed one, or None): see :func:`plot_predictive`."""
    if noise == "auto":
        names = re.findall(r"Noise\[([^\]]+)\]", str(post.attrs.get("plan", "")))
        return _noise(post, names[0]) if len(names) == 1 else None
    if noise is None:
        return None
    if isinstance(noise, str):
        arr = post.samples.get(noise)
        if arr is None or arr.shape != (post.num_chains, post.num_draws):
            raise PlotError(f"noise={noise!r} must name a scalar latent site of the "
                            f"posterior; its sites: {list(post.samples)}.")
        return np.asarray(arr, dtype=float).reshape(-1)
    if not float(noise) > 0:
        raise PlotError(f"noise must be a site name, a scale > 0 or None; got {noise!r}.")
    return float(noise)


def _draws(post: Posterior, site: str, cols: list[np.ndarray], noise: Any, num_draws: int,
           seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """f at ``cols`` for an evenly thinned set of draws (NaN where invalid), and y = f +
    noise · N(0, 1) when there is a noise scale."""
    flat = post.samples[site].reshape(-1)
    picks = np.unique(np.linspace(0, len(flat) - 1, min(num_draws, len(flat))).astype(int))
    n, cache = len(cols[0]), {}
    f = np.empty((len(picks), n))
    for row, i in enumerate(picks):
        text = str(flat[i])
        if text not in cache:
            value = np.asarray(flat[i](*cols), dtype=float)
            cache[text] = np.where(np.isfinite(value), np.broadcast_to(value, (n,)), np.nan)
        f[row] = cache[text]
    if noise is None:
        return f, None
    scale = noise[picks, None] if isinstance(noise, np.ndarray) else noise
    rng = np.random.default_rng(seed)
    return f, f + scale * rng.standard_normal(f.shape)


def _points(cols: list[np.ndarray], grid: Any) -> list[np.ndarray]:
    """Where f is drawn: with one input ``grid`` (default 200 points over the range of x),
    with several the rows of x."""
    if len(cols) > 1:
        return cols
    if grid is None:
        return [np.linspace(cols[0].min(), cols[0].max(), 200)]
    return [np.asarray(grid, dtype=float).reshape(-1)]


Bands = dict[str, np.ndarray]
"""The pointwise summaries of :func:`_bands`: ``mean``, ``q05``, ``q25``, ``q75``, ``q95``."""


def _bands(draws: np.ndarray) -> Bands:
    with warnings.catch_warnings():  # a point where no draw is valid stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        q = np.nanquantile(draws, [0.05, 0.25, 0.75, 0.95], axis=0)
        return {"mean": np.nanmean(draws, axis=0), "q05": q[0], "q25": q[1], "q75": q[2],
                "q95": q[3]}


def plot_predictive(post: Posterior, x: Any, y: Any, path: str | Path | None = None, *,
                    site: str | None = None, noise: str | float | None = "auto",
                    grid: Any = None, num_draws: int = 500, seed: int = 0,
                    figsize: tuple[float, float] = (7.0, 4.5), dpi: float = 100,
                    title: str | None = None) -> Figure:
    """The posterior predictive of the program site ``site`` over the data (x, y).

    With one input: the data points, the posterior mean of f(x) on ``grid`` (default 200
    points over the range of x) and the central 50% and 90% bands of f and, when there is
    a noise scale, of y = f(x) + σ ε, ε ~ N(0, 1). With several inputs (x of shape (n, k)
    or a dict of columns, in the prior's input order): the posterior mean of f(x_i)
    against the observed y_i with the same intervals, and the line y = x.

    The draws are an evenly thinned set of at most ``num_draws`` posterior draws; a draw
    whose program is invalid at a point is left out there. ``noise`` is the name of the
    latent site holding σ, a fixed σ, or None (f only); ``"auto"`` takes the site of the
    run's ``Noise`` block (``post.attrs["plan"]``), when there is one.

    Raises
    ------
    PlotError
        When the posterior has no program site ``site``, x and y differ in length, x has
        not one column per input, or ``noise`` is not a scalar site or positive number.

    Examples
    --------
    >>> import numpy as np, ppl
    >>> from ppl import dist
    >>> from inference import infer
    >>> from inference.plots import plot_predictive
    >>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
    >>> def model(x, y=None):
    ...     f = ppl.sample("f", prior)
    ...     with ppl.plate("data", len(x)):
    ...         ppl.sample("y", dist.Normal(f(x), 0.5), obs=y)
    >>> x = np.linspace(-1, 1, 8)
    >>> post = infer(model, x, y=x + 1.0, method="enumerate", num_samples=50)
    >>> fig = plot_predictive(post, x, x + 1.0, noise=0.5)
    >>> [t.get_text() for t in fig.axes[0].get_legend().get_texts()][:3]
    ['y 90%', 'y 50%', 'f 90%']
    """
    site = _site(post, site, "plot_predictive")
    cols = _columns(post, site, x)
    y = np.asarray(y, dtype=float).reshape(-1)
    if len(cols[0]) != len(y):
        raise PlotError(f"x has {len(cols[0])} rows but y has {len(y)} values: give one y "
                        "per row of x.")
    names = list(post.priors[site].inputs)
    points = _points(cols, grid)
    f, ynew = _draws(post, site, points, _noise(post, noise), num_draws, seed)
    fb, yb = _bands(f), None if ynew is None else _bands(ynew)
    with _styled():
        fig = Figure(figsize=figsize, dpi=dpi)
        ax = fig.add_subplot()
        if len(cols) == 1:
            _band_plot(ax, points[0], fb, yb)
            ax.scatter(cols[0], y, s=16, color="k", zorder=4, label="data")
            ax.set_xlabel(names[0])
            ax.set_ylabel(_observed_name(post))
        else:
            _versus_plot(ax, y, fb, yb)
            ax.set_xlabel(f"observed {_observed_name(post)}")
            ax.set_ylabel(f"predicted {site}({', '.join(names)})")
        ax.legend(loc="best")
        ax.set_title(title if title is not None else f"Posterior predictive of {site}")
        return _save(fig, path, dpi)


def _observed_name(post: Posterior) -> str:
    return next(iter(post.observed)) if len(post.observed) == 1 else "y"


def _band_plot(ax: Any, xs: np.ndarray, fb: Bands, yb: Bands | None) -> None:
    """Bands of f (and of y) over one input, from the bands at the points ``xs``."""
    order = np.argsort(xs)
    xs = xs[order]
    if yb is not None:
        b = {k: v[order] for k, v in yb.items()}
        ax.fill_between(xs, b["q05"], b["q95"], color=COLORS[1], alpha=0.18, lw=0, label="y 90%")
        ax.fill_between(xs, b["q25"], b["q75"], color=COLORS[1], alpha=0.3, lw=0, label="y 50%")
    b = {k: v[order] for k, v in fb.items()}
    ax.fill_between(xs, b["q05"], b["q95"], color=COLORS[0], alpha=0.25, lw=0, label="f 90%")
    ax.fill_between(xs, b["q25"], b["q75"], color=COLORS[0], alpha=0.45, lw=0, label="f 50%")
    ax.plot(xs, b["mean"], color=COLORS[0], lw=2, label="posterior mean of f")


def _versus_plot(ax: Any, y: np.ndarray, fb: Bands, yb: Bands | None) -> None:
    """Intervals of f (and of y) against the observed ``y``, from the bands at its rows."""
    if yb is not None:
        ax.vlines(y, yb["q05"], yb["q95"], color=COLORS[1], alpha=0.5, lw=1, label="y 90%")
    ax.vlines(y, fb["q05"], fb["q95"], color=COLORS[0], alpha=0.6, lw=1.5, label="f 90%")
    ax.vlines(y, fb["q25"], fb["q75"], color=COLORS[0], lw=3, label="f 50%")
    ax.scatter(y, fb["mean"], s=16, color=COLORS[0], zorder=4, label="posterior mean of f")
    lo, hi = float(np.nanmin(y)), float(np.nanmax(y))
    ax.plot([lo, hi], [lo, hi], color="k", ls="--", lw=1, label="predicted = observed")


# ---------------------------------------------------------------------- programs
def _site(post: Posterior, site: str | None, who: str) -> str:
    if not post.priors:
        raise PlotError(f"{who} needs a posterior with a program site; this one has only "
                        f"{list(post.samples) or 'no latent sites'}.")
    if site is None and len(post.priors) > 1:
        raise PlotError(f"{who}: name the program site with site=, one of "
                        f"{list(post.priors)}.")
    if site is not None and site not in post.priors:
        raise PlotError(f"{who}: '{site}' is not a program site of this posterior; program "
                        f"sites: {list(post.priors)}.")
    return site if site is not None else next(iter(post.priors))


def plot_programs(post: Posterior, top: int = 10, path: str | Path | None = None, *,
                  site: str | None = None, width: int = 40, dpi: float = 100,
                  figsize: tuple[float, float] | None = None) -> Figure:
    """Horizontal bars of the ``top`` most probable laws of ``site``, as
    :meth:`~inference.Posterior.programs` groups them (trees computing the same function
    are one row), labelled with :func:`short_text` of each row's program and its
    probability (exact after ``method="enumerate"``, else the fraction of draws).

    Raises
    ------
    PlotError
        When the posterior has no program site (or ``site`` is not one).

    Examples
    --------
    >>> import numpy as np, ppl
    >>> from ppl import dist
    >>> from inference import infer
    >>> from inference.plots import plot_programs
    >>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
    >>> def model(x, y=None):
    ...     f = ppl.sample("f", prior)
    ...     with ppl.plate("data", len(x)):
    ...         ppl.sample("y", dist.Normal(f(x), 0.5), obs=y)
    >>> x = np.linspace(-1, 1, 8)
    >>> post = infer(model, x, y=x + 1.0, method="enumerate", num_samples=50)
    >>> fig = plot_programs(post, top=2)
    >>> [t.get_text() for t in fig.axes[0].get_yticklabels()]
    ['(1 + x)', '1']
    """
    site = _site(post, site, "plot_programs")
    table = post.programs(site, top=top, simplify=False)
    labels = [short_text(p, width) for p in table["program"]]
    probs = table["probability"].to_numpy(dtype=float)
    with _styled():
        fig = Figure(figsize=figsize or (7.0, 1.2 + 0.35 * len(labels)), dpi=dpi)
        ax = fig.add_subplot()
        rows = np.arange(len(labels))
        ax.barh(rows, probs, color=COLORS[0], height=0.7)
        for r, (p, trees) in enumerate(zip(probs, table["trees"], strict=True)):
            note = f"{p:.3f}" + (f"  ({trees} trees)" if trees > 1 else "")
            ax.text(p, r, " " + note, va="center", ha="left", fontsize=8)
        ax.set_yticks(rows, labels, fontfamily="monospace", fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, min(1.0, 1.3 * float(probs.max(initial=0.1))) + 0.05)
        ax.set_xlabel(f"posterior probability ({post.method})")
        ax.set_title(f"Most probable programs of {site}")
        return _save(fig, path, dpi)


# ---------------------------------------------------------------------- traces
def plot_traces(post: Posterior, path: str | Path | None = None, *, dpi: float = 100,
                figsize: tuple[float, float] | None = None) -> Figure:
    """ArviZ-style trace plots, one row per quantity and one colour per chain: the program
    size (number of nodes) of each draw of every program site, and the log joint ``lp``
    (``post.stats["lp"]``); the distribution per chain on the left, the trace on the right.

    Raises
    ------
    PlotError
        When the posterior has neither a program site nor ``lp`` (or no draws).

    Examples
    --------
    >>> import numpy as np, ppl
    >>> from ppl import dist
    >>> from inference import infer
    >>> from inference.plots import plot_traces
    >>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
    >>> def model(x, y=None):
    ...     f = ppl.sample("f", prior)
    ...     with ppl.plate("data", len(x)):
    ...         ppl.sample("y", dist.Normal(f(x), 0.5), obs=y)
    >>> x = np.linspace(-1, 1, 8)
    >>> post = infer(model, x, y=x + 1.0, method="enumerate", num_samples=50)
    >>> [ax.get_title() for ax in plot_traces(post).axes]
    ['f size', 'f size', 'log joint', 'log joint']
    """
    rows: dict[str, np.ndarray] = {
        f"{site} size": np.vectorize(lambda p: p.size, otypes=[float])(post.samples[site])
        for site in post.priors if site in post.samples}
    if "lp" in post.stats:
        rows["log joint"] = np.asarray(post.stats["lp"], dtype=float)
    if not rows or post.num_draws == 0:
        raise PlotError("plot_traces needs draws of a program site or the log joint 'lp'; "
                        f"this posterior has sites {list(post.samples)} and stats "
                        f"{list(post.stats)}.")
    with _styled():
        fig = Figure(figsize=figsize or (9.0, 1.2 + 2.0 * len(rows)), dpi=dpi)
        axes = fig.subplots(len(rows), 2, squeeze=False, width_ratios=[1, 2])
        for (name, values), (left, right) in zip(rows.items(), axes, strict=True):
            finite = values[np.isfinite(values)]
            lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
            integer = name.endswith(" size")
            bins = np.arange(lo - 0.5, hi + 1.5) if integer else np.linspace(lo, hi + 1e-9, 30)
            for c, chain in enumerate(values):
                color = COLORS[c % len(COLORS)]
                left.hist(chain[np.isfinite(chain)], bins=bins, histtype="step", density=True,
                          lw=1.5, color=color)
                right.plot(chain, lw=0.8, alpha=0.8, color=color, label=f"chain {c}")
            left.set_title(name)
            right.set_title(name)
            right.set_xlabel("draw")
        axes[0][1].legend(loc="upper right", ncol=min(4, post.num_chains))
        return _save(fig, path, dpi)


# ---------------------------------------------------------------------- graph
def plot_graph(model: World | Callable[..., Any], path: str | Path | None = None, *,
               args: tuple[Any, ...] = (), kwargs: Mapping[str, Any] | None = None,
               title: str | None = None, dpi: float = 100) -> Figure:
    """The factor graph of a :class:`~ppl.World`, or of ``World(model, *args, **kwargs)``:
    variables, factors and plates, as :meth:`ppl.World.render` draws them.

    Raises
    ------
    PlotError
        When ``model`` is neither a World nor callable.

    Examples
    --------
    >>> import numpy as np, ppl
    >>> from ppl import dist
    >>> from inference.plots import plot_graph
    >>> def model(x, y=None):
    ...     s = ppl.sample("s", dist.HalfNormal(1.0))
    ...     with ppl.plate("data", len(x)):
    ...         ppl.sample("y", dist.Normal(x, s), obs=y)
    >>> fig = plot_graph(model, args=(np.zeros(3),), kwargs={"y": np.ones(3)})
    >>> fig.axes[0].get_title(), [t.get_text() for t in fig.axes[0].texts][-1]
    ('World: model', 'data (N=3)')
    """
    if not isinstance(model, World):
        if not callable(model):
            raise PlotError(f"plot_graph needs a ppl.World or a model function; got "
                            f"{type(model).__name__}.")
        model = World(model, *args, **dict(kwargs or {}))
    with _styled():
        fig = draw_world(model, title)
        fig.set_dpi(dpi)
        return _save(fig, path, dpi)
