"""Drawing a :class:`~ppl.world.World`'s factor graph with matplotlib (no graphviz).

The layout is layered: a site's depth is the length of the longest chain of parents above
it; each site sits one row below its factor p(site), which sits below the site's parents.
Within a row, sites are ordered by the mean position of their parents (a one-pass barycentre
heuristic, which keeps edge crossings few on the small graphs of models). The figure is
drawn on a bare ``matplotlib.figure.Figure`` (the Agg renderer), so no display, no pyplot
state and no backend switch is involved.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ppl.errors import PPLError

if TYPE_CHECKING:
    from ppl.world import World

__all__ = ["layout", "render_world"]

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
    """Positions (x, y) of every node of ``world.graph``; y = 0 is the top row."""
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


def render_world(world: World, path: Path, title: str | None = None) -> Path:
    """Draw ``world``'s factor graph into ``path`` (.png, .svg or .pdf); return the path."""
    if path.suffix.lower() not in FORMATS:
        raise PPLError(f"render writes {', '.join(FORMATS)} files; got {str(path)!r}. "
                       "Pick a path with one of those suffixes.")
    pos = layout(world)
    xs = [p[0] for p in pos.values()] or [0.0]
    ys = [p[1] for p in pos.values()] or [0.0]
    width, height = max(xs) - min(xs) + 2 * SPACING, max(ys) - min(ys) + 1.5
    fig = Figure(figsize=(max(4.0, 0.8 * width), max(2.5, 0.75 * height + 0.8)))
    ax = fig.add_subplot()
    _draw(world, ax, pos)
    ax.set_xlim(min(xs) - 0.8 * SPACING / 2, max(xs) + 1.2 * SPACING)
    ax.set_ylim(min(ys) - 1.0, max(ys) + 0.6)
    ax.set_axis_off()
    ax.set_title(title if title is not None else f"World: {world.model_name}", fontsize=10)
    types = {d["site_type"] for _, d in world.graph.nodes(data=True) if d["kind"] != "factor"}
    _legend(ax, types, bool(world.observed))
    try:
        fig.savefig(path, bbox_inches="tight", dpi=150)
    except OSError as err:
        raise PPLError(f"Cannot write the picture to {str(path)!r}: {err}.") from err
    return path
