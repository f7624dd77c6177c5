"""``plot_compare``: a figure of a :func:`inference.compare` table (speed, convergence and
agreement with the reference, one bar per entry)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ppl.errors import PPLError

__all__ = ["plot_compare"]


def plot_compare(table: pd.DataFrame, path: str | Path | None = None) -> Figure:
    """A figure of a :func:`compare` table: ESS per second (bulk and tail, log scale),
    the largest R-hat (a line at 1.01), and agreement with the reference (program TV and
    the largest absolute SMD), one bar per entry.

    The figure is a plain ``matplotlib.figure.Figure`` (no pyplot state, no GUI); it is
    saved to ``path`` when one is given (the format follows the suffix).

    Examples
    --------
    >>> import pandas as pd
    >>> from inference import plot_compare
    >>> table = pd.DataFrame({"ess_bulk_per_s": [900.0, 40.0], "ess_tail_per_s": [800.0, 30.0],
    ...                       "max_rhat": [float("nan"), 1.02], "tv_program": [0.0, 0.05],
    ...                       "max_smd": [float("nan"), float("nan")]},
    ...                      index=["enumerate", "mcmc"])
    >>> fig = plot_compare(table)
    >>> [ax.get_title() for ax in fig.axes]
    ['ESS per second', 'max R-hat', 'agreement with the reference']
    """
    needed = ["ess_bulk_per_s", "ess_tail_per_s", "max_rhat", "tv_program", "max_smd"]
    missing = [c for c in needed if c not in getattr(table, "columns", ())]
    if missing:
        raise PPLError(f"plot_compare needs a table from compare(); missing columns "
                       f"{missing}.")
    labels = [str(i) for i in table.index]
    y = np.arange(len(labels))
    fig = Figure(figsize=(12, 1.2 + 0.5 * len(labels)), layout="constrained")
    ess_ax, rhat_ax, agree_ax = fig.subplots(1, 3, sharey=True)
    if _bars(ess_ax, y, table, {"ess_bulk_per_s": "bulk", "ess_tail_per_s": "tail"},
             positive=True):
        ess_ax.set_xscale("log")
    ess_ax.set_title("ESS per second")
    _bars(rhat_ax, y, table, {"max_rhat": "max R-hat"})
    rhat = pd.to_numeric(table["max_rhat"], errors="coerce").to_numpy(dtype=float)
    top = float(np.nanmax(rhat)) if np.isfinite(rhat).any() else 1.0
    rhat_ax.axvline(1.01, color="0.3", linestyle="--", linewidth=1, label="1.01")
    rhat_ax.set_xlim(1.0, max(1.05, 1.0 + 1.1 * (top - 1.0)))
    rhat_ax.set_title("max R-hat")
    _bars(agree_ax, y, table, {"tv_program": "program TV", "max_smd": "max |SMD|"})
    agree_ax.set_title("agreement with the reference")
    ess_ax.set_yticks(y, labels)
    ess_ax.invert_yaxis()
    for ax in (ess_ax, rhat_ax, agree_ax):
        ax.legend(loc="lower right", fontsize="small")
    if path is not None:
        fig.savefig(str(path))
    return fig


def _bars(ax: Any, y: np.ndarray, table: pd.DataFrame, columns: dict[str, str],
          positive: bool = False) -> bool:
    """Grouped horizontal bars; values that cannot be drawn (NaN, or ≤ 0 on a log axis
    when ``positive``) are written as "n/a". True when any bar was drawn."""
    height = 0.8 / len(columns)
    drawn = False
    for k, (column, name) in enumerate(columns.items()):
        values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)
        pos = y - 0.4 + height * (k + 0.5)
        shown = np.isfinite(values) & ((values > 0) if positive else True)
        ax.barh(pos[shown], values[shown], height=height, label=name)
        drawn = drawn or bool(shown.any())
        for p in pos[~shown]:
            ax.text(0.02, p, "n/a", transform=ax.get_yaxis_transform(), va="center",
                    fontsize="small", color="0.4")
    return drawn
