"""Drawing a :class:`~ppl.world.World`'s factor graph with matplotlib (no graphviz).

The layout is layered: a site's depth is the length of the longest chain of parents above
it; each site sits one row below its factor p(site), which sits below the site's parents.
Within a row, sites are ordered by the mean position of their parents (a one-pass barycentre
heuristic, which keeps edge crossings few on the small graphs of models). Each plate is a
rounded box around its sites and their factors, labelled with its name (and its size when a
site of that plate alone has a 1-d value). The figure is drawn on a bare
``matplotlib.figure.Figure`` (the Agg renderer), so no display, no pyplot state and no
backend switch is involved.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyBboxPatch

from ppl.errors import PPLError

if TYPE_CHECKING:
    from ppl.world import World

__all__ = ["draw_world", "layout", "plate_boxes", "render_world"]

FORMATS = (".png", ".svg", ".pdf")
SPACING = 3.6
"""Horizontal distance between neighbouring nodes of a row (data units)."""
STYLE = {  # site_type -> (face colour, edge colour, line style)
    "program": ("#f6b26b", "#b45309", "solid"),
    "continuous": ("white", "black", "solid"),
    "discrete": ("#cfe2f3", "#1f4e79", "solid"),
    "deterministic": ("white", "0.35", "dashed"),
}
OBSERVED_FACE = "#b7b7b7"


def _depths(world: World) -> dict[str, int]:
    depth: dict[str, int] = {}
    for s in world.sites:  # execution order: parents come first
        depth[s] = 1 + max((depth[p] for p in world.parents(s)), default=-1)
    return depth


def _order_row(nodes: list[str], anchors: dict[str, list[float]],
               index: dict[str, int]) -> list[str]:
    def key(n: str) -> tuple[float, int]:
        xs = anchors.get(n, [])
        return (sum(xs) / len(xs) if xs else float(index[n]), index[n])

    return sorted(nodes, key=key)


def layout(world: World) -> dict[str, tuple[float, float]]:
    """Positions (x, y) of every node of ``world.graph``; y = 0 is the top row.

    Examples
    --------
    >>> import torch, ppl
    >>> def chain():  # a -> b (observed)
    ...     ppl.sample("b", ppl.dist.Normal(ppl.sample("a", ppl.dist.Normal(0, 1.0)), 1.0),
    ...                obs=torch.tensor(0.5))
    >>> layout(ppl.World(chain))
    {'a': (0.0, -1.0), 'b': (0.0, -3.0), 'p(a)': (0.0, 0.0), 'p(b)': (0.0, -2.0)}
    """
    depth = _depths(world)
    index = {n: i for i, n in enumerate(world.graph.nodes)}
    pos: dict[str, tuple[float, float]] = {}
    for d in range(max(depth.values(), default=-1) + 1):
        row = [s for s in world.sites if depth[s] == d]
        anchors = {s: [pos[p][0] for p in world.parents(s)] for s in row}
        row = _order_row(row, anchors, index)
        for i, s in enumerate(row):
            pos[s] = ((i - (len(row) - 1) / 2) * SPACING, -(2 * d + 1.0))
    factors = [(n, d) for n, d in world.graph.nodes(data=True) if d["kind"] == "factor"]
    for name, data in factors:
        if data["site"] is not None:  # p(site) just above its site
            x, y = pos[data["site"]]
            pos[name] = (x, y + 1.0)
    for name, data in factors:
        if data["site"] is None:  # a statement: half a row below its parents, clear of others
            parents = data["parents"]
            x = sum(pos[p][0] for p in parents) / len(parents) if parents else 0.0
            y = min((pos[p][1] for p in parents), default=0.0) - 0.5
            while any(abs(px - x) < SPACING / 3 and abs(py - y) < 0.6
                      for px, py in pos.values()):
                x += SPACING / 2
            pos[name] = (x, y)
    return pos


def _variable_text(world: World, site: str) -> str:
    data = world.graph.nodes[site]
    prefix = "φ " if data["site_type"] == "program" else ""
    shape = f"  {list(data['shape'])}" if data["shape"] else ""
    dist = data["distribution"]
    rel = "= deterministic" if dist == "deterministic" else f"~ {dist}"
    return f"{prefix}{site} {rel}{shape}"


def _legend(ax: Any, types: set[str], observed: bool) -> None:
    handles = [Line2D([], [], marker="o", linestyle="none", markersize=10,
                      markerfacecolor=STYLE[t][0], markeredgecolor=STYLE[t][1],
                      label=("latent " if t in ("continuous", "discrete") else "") + t)
               for t in STYLE if t in types]
    if observed:
        handles.append(Line2D([], [], marker="o", linestyle="none", markersize=10,
                              markerfacecolor=OBSERVED_FACE, markeredgecolor="black",
                              label="observed"))
    handles.append(Line2D([], [], marker="s", linestyle="none", markersize=6,
                          markerfacecolor="black", markeredgecolor="black", label="factor"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0),
              ncol=len(handles), frameon=False, fontsize=8, handletextpad=0.3,
              columnspacing=1.2)


def _draw(world: World, ax: Any, pos: dict[str, tuple[float, float]]) -> None:
    for u, v in world.graph.edges:
        (x0, y0), (x1, y1) = pos[u], pos[v]
        ax.plot([x0, x1], [y0, y1], color="0.4", linewidth=1.1, zorder=1)
    for name, data in world.graph.nodes(data=True):
        x, y = pos[name]
        if data["kind"] == "factor":
            ax.scatter([x], [y], marker="s", s=60, color="black", zorder=3)
            ax.text(x - 0.22, y, name, ha="right", va="center", fontsize=7, color="0.3",
                    style="italic", zorder=4)
            continue
        face, edge, line = STYLE[data["site_type"]]
        ax.scatter([x], [y], marker="o", s=900, zorder=3, linewidths=1.6,
                   facecolors=OBSERVED_FACE if data["observed"] else face,
                   edgecolors=edge, linestyles=line)
        if len(name) <= 6:  # longer names only in the label beside the circle
            ax.text(x, y, name, ha="center", va="center", fontsize=10 if len(name) <= 4
                    else 8, zorder=4)
        ax.text(x + 0.42, y, _variable_text(world, name), ha="left", va="center",
                fontsize=8, zorder=4)


def plate_boxes(world: World, pos: dict[str, tuple[float, float]]
                ) -> list[tuple[str, tuple[float, float, float, float]]]:
    """(label, (x0, y0, x1, y1)) of each plate's box in the coordinates of ``pos``, outer
    plates first: around the plate's sites, their labels and their factors p(site), an outer
    plate a margin wider than the plates it holds.

    Examples
    --------
    >>> import numpy as np, ppl
    >>> def model(x, y=None):
    ...     s = ppl.sample("s", ppl.dist.HalfNormal(1.0))
    ...     with ppl.plate("data", len(x)):
    ...         ppl.sample("y", ppl.dist.Normal(0.0, s), obs=y)
    >>> world = ppl.World(model, np.zeros(3), y=np.ones(3))
    >>> [label for label, box in plate_boxes(world, layout(world))]
    ['data (N=3)']
    """
    members: dict[str, list[str]] = {}
    for site in world.sites:
        for plate in world.graph.nodes[site]["plates"]:
            members.setdefault(plate, []).append(site)
    boxes = []
    for plate, sites in members.items():
        inner = {q for s in sites for q in world.graph.nodes[s]["plates"]
                 if q != plate and set(members[q]) < set(sites)}
        pad = 0.2 * len(inner)
        xs = [pos[s][0] for s in sites]
        ys = [pos[s][1] for s in sites] + [pos[f"p({s})"][1] for s in sites
                                           if f"p({s})" in pos]
        sizes = {world.graph.nodes[s]["shape"][0] for s in sites
                 if world.graph.nodes[s]["plates"] == (plate,)
                 and len(world.graph.nodes[s]["shape"]) == 1}
        label = f"{plate} (N={sizes.pop()})" if len(sizes) == 1 else plate
        boxes.append((len(inner), label, (min(xs) - 0.55 - pad, min(ys) - 0.6 - pad,
                                          max(xs) + 0.75 * SPACING + pad,
                                          max(ys) + 0.4 + pad)))
    boxes.sort(key=lambda b: -b[0])
    return [(label, box) for _, label, box in boxes]


def _plates(world: World, ax: Any, pos: dict[str, tuple[float, float]]) -> None:
    for label, (x0, y0, x1, y1) in plate_boxes(world, pos):
        ax.add_patch(FancyBboxPatch((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="0.35",
                                    linewidth=1.2, zorder=0,
                                    boxstyle="round,pad=0,rounding_size=0.25"))
        ax.text(x1 - 0.15, y0 + 0.12, label, ha="right", va="bottom", fontsize=8,
                color="0.25", zorder=4)


def draw_world(world: World, title: str | None = None) -> Figure:
    """The factor graph of ``world`` (variables, factors, plates) on a new matplotlib
    ``Figure`` sized to the graph; :func:`render_world` saves it.

    Examples
    --------
    >>> import numpy as np, ppl
    >>> def model(x, y=None):
    ...     s = ppl.sample("s", ppl.dist.HalfNormal(1.0))
    ...     with ppl.plate("data", len(x)):
    ...         ppl.sample("y", ppl.dist.Normal(0.0, s), obs=y)
    >>> fig = draw_world(ppl.World(model, np.zeros(3), y=np.ones(3)))
    >>> fig.axes[0].get_title(), len(fig.axes[0].patches)
    ('World: model', 1)
    """
    pos = layout(world)
    xs = [p[0] for p in pos.values()] or [0.0]
    ys = [p[1] for p in pos.values()] or [0.0]
    width, height = max(xs) - min(xs) + 2 * SPACING, max(ys) - min(ys) + 1.5
    fig = Figure(figsize=(max(4.0, 0.8 * width), max(2.5, 0.75 * height + 0.8)))
    ax = fig.add_subplot()
    _draw(world, ax, pos)
    _plates(world, ax, pos)
    ax.set_xlim(min(xs) - 0.8 * SPACING / 2, max(xs) + 1.2 * SPACING)
    ax.set_ylim(min(ys) - 1.0, max(ys) + 0.6)
    ax.set_axis_off()
    ax.set_title(title if title is not None else f"World: {world.model_name}", fontsize=10)
    types = {d["site_type"] for _, d in world.graph.nodes(data=True) if d["kind"] != "factor"}
    _legend(ax, types, bool(world.observed))
    return fig


def render_world(world: World, path: Path, title: str | None = None) -> Path:
    """Draw ``world``'s factor graph into ``path`` (.png, .svg or .pdf); return the path.

    Examples
    --------
    >>> import pathlib, tempfile, torch, ppl
    >>> def coin():
    ...     ppl.sample("c", ppl.dist.Bernoulli(0.5), obs=torch.tensor(1.0))
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "coin.svg"
    >>> render_world(ppl.World(coin), path) == path
    True
    """
    if path.suffix.lower() not in FORMATS:
        raise PPLError(f"render writes {', '.join(FORMATS)} files; got {str(path)!r}. "
                       "Pick a path with one of those suffixes.")
    fig = draw_world(world, title)
    try:
        fig.savefig(path, bbox_inches="tight", dpi=150)
    except OSError as err:
        raise PPLError(f"Cannot write the picture to {str(path)!r}: {err}.") from err
    return path
