"""The search phase of a timed run: a tempered population with restarts, then exact chains.

With ``max_time``, a chain spends the first ``search_share`` of its budget looking for the
posterior's high-probability region instead of sampling: a population of walkers, one per
rung of a likelihood-tempered ladder β_0 = 1 > … > β_{W−1} = ``search_beta_min``, each
taking the kernel's ordinary sweeps, with parallel-tempering swaps between neighbours
after every sweep (:func:`inference.mcmc.tempering.swap`). Every walker remembers the best
state it has visited (log joint at β = 1); a walker that has not improved on it for
``search_patience`` sweeps restarts, alternately from a fresh start (the best of
``init_candidates`` prior draws) and from a state of the elite (the best distinct states
any walker has visited). Restarts and an archive make this phase a search, not a Markov
chain: nothing it visits is kept as a draw. It hands the best state it found to the exact
kernel at β = 1, which then warms up (adapting step sizes) and samples as any chain does,
so the kept draws come from an exact MH chain; the search only chooses where it starts
(MOVES.md, "Initialisation": a start never changes the stationary distribution).

Why: the posterior of a program given precise data is a set of sharp, isolated modes. A
single chain that reaches a good-but-wrong law stays there for longer than any budget (on
B1, 60 s found exactly what 8 s did). Hot walkers cross between modes, swaps carry what
they find down to β = 1, and restarts spend the budget on new regions instead of the
neighbourhood of one mode.

Examples
--------
>>> ELITE
8
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from inference.mcmc.descent import descend
from inference.mcmc.gibbs import Gibbs, GibbsState
from inference.mcmc.tempering import swap

__all__ = ["ELITE", "SearchResult", "program_keys", "search"]

ELITE = 8
"""How many of the best distinct states the search keeps as restart points."""


class SearchResult(NamedTuple):
    """What a search phase found and did."""

    values: dict[str, Any]
    """The best state visited (highest log joint at β = 1)."""
    log_joint: float
    """Its log joint at β = 1."""
    sweeps: int
    """Sweeps of the population (each walker took one step per sweep)."""
    restarts: int
    """Walkers restarted."""
    swap_rate: float
    """Accepted fraction of the swaps proposed (NaN with one walker)."""
    seconds: float
    """Time spent."""
    history: tuple[tuple[float, dict[str, Any]], ...] = ()
    """(seconds since the search began, the best state) each time the best state's
    programs changed: when each law was first the best one."""


def _signature(values: dict[str, Any]) -> str:
    """What makes two states the same point for the elite: every value's text."""
    return "|".join(f"{k}={v!r}" for k, v in sorted(values.items()))


class _Elite:
    """The best distinct states seen, by log joint at β = 1."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: list[tuple[float, str, dict[str, Any]]] = []

    def offer(self, log_joint: float, values: dict[str, Any]) -> None:
        if not math.isfinite(log_joint) or (len(self.items) == self.size
                                            and log_joint <= self.items[-1][0]):
            return
        sig = _signature(values)
        if any(s == sig for _, s, _ in self.items):
            return
        self.items.append((log_joint, sig, values))
        self.items.sort(key=lambda item: -item[0])
        del self.items[self.size:]

    def pick(self, rng: np.random.Generator) -> dict[str, Any]:
        return self.items[int(rng.integers(len(self.items)))][2]


def search(rng: np.random.Generator, kernels: list[Gibbs], states: list[GibbsState],
           seconds: float, patience: int, max_sweeps: int | None = None,
           callback: Callable[[int, list[GibbsState]], None] | None = None,
           descent: bool = False) -> tuple[list[GibbsState], SearchResult]:
    """Run the search phase (module docstring) for ``seconds``.

    Parameters
    ----------
    rng : numpy.random.Generator
    kernels : list of Gibbs
        One kernel per walker, on a ladder that starts at β = 1 and decreases.
    states : list of GibbsState
        Their initial states.
    seconds : float
        The phase's budget.
    patience : int
        Sweeps without improving its best before a walker restarts.
    max_sweeps : int, optional
        Stop after this many sweeps even within the budget (a run that must not depend on
        the machine's speed).
    callback : callable, optional
        Called after every sweep with the sweep's index and the walkers' states (after the
        swaps and restarts), e.g. to watch when a law is first found.
    descent : bool
        After every sweep whose best state holds a law not descended from before, the
        two-edit library descent (:func:`inference.mcmc.descent.descend`) from it; a better
        state it finds joins the elite and becomes the β = 1 walker's state.

    Returns
    -------
    states, result
        The walkers' last states (step sizes adapted) and what the search found.

    Examples
    --------
    >>> import numpy as np, ppl
    >>> from ppl import dist
    >>> from inference.target import Target
    >>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
    >>> def model(x, y=None):
    ...     f = ppl.sample("f", prior)
    ...     with ppl.plate("data", len(x)):
    ...         ppl.sample("y", dist.Normal(f(x), 0.1), obs=y)
    >>> x = np.linspace(-1, 1, 8)
    >>> kernels = [Gibbs(Target(model, (x,), {"y": x * x}, beta=b)) for b in (1.0, 0.1)]
    >>> rng = np.random.default_rng(0)
    >>> states = [k.init(rng) for k in kernels]
    >>> states, found = search(rng, kernels, states, seconds=0.5, patience=20)
    >>> found.values["f"]
    Program('(x * x)')
    """
    start = time.perf_counter()
    elite = _Elite(ELITE)
    best = [k.log_joint_at(s.values, 1.0) for k, s in zip(kernels, states, strict=True)]
    for b, s in zip(best, states, strict=True):
        elite.offer(b, s.values)
    since = [0] * len(states)
    history = [(0.0, elite.items[0][2])] if elite.items else []
    sweeps = restarts = proposed = accepted = 0
    descended: set[tuple[str, ...]] = set()
    while time.perf_counter() - start < seconds and (max_sweeps is None
                                                     or sweeps < max_sweeps):
        for k, kernel in enumerate(kernels):
            states[k], _ = kernel.step(rng, states[k], adapt=True)
        if len(kernels) > 1:
            states, outcome = swap(rng, kernels, states, sweeps % 2)
            tried = outcome[np.isfinite(outcome)]
            proposed += tried.size
            accepted += int(tried.sum())
        sweeps += 1
        for k, state in enumerate(states):
            lj = state.log_joint if k == 0 else kernels[k].log_joint_at(state.values, 1.0)
            elite.offer(lj, state.values)
            if lj > best[k]:
                best[k], since[k] = lj, 0
                continue
            since[k] += 1
            if since[k] < patience:
                continue
            restarts += 1
            fresh = restarts % 2 == 1 or not elite.items
            values = kernels[k].draw_start(rng) if fresh else dict(elite.pick(rng))
            lj_k = kernels[k].log_joint_at(values, kernels[k].target.beta)  # by the view
            states[k] = state._replace(values=values, log_joint=lj_k)
            best[k] = kernels[k].log_joint_at(values, 1.0) if k else lj_k
            since[k] = 0
        if descent:  # a law new at the top: its two-edit neighbours, at β = 1
            better = _descended(kernels[0], elite, descended)
            if better is not None:
                states[0] = states[0]._replace(values=better[0], log_joint=better[1])
                best[0], since[0] = better[1], 0
        if elite.items and program_keys(elite.items[0][2]) != program_keys(history[-1][1]):
            history.append((time.perf_counter() - start, elite.items[0][2]))
        if callback is not None:
            callback(sweeps - 1, states)
    top_lj, _, top = elite.items[0]
    rate = accepted / proposed if proposed else math.nan
    return states, SearchResult(top, top_lj, sweeps, restarts, rate,
                                time.perf_counter() - start, tuple(history))


def _descended(kernel: Gibbs, elite: _Elite, done: set[tuple[str, ...]]
               ) -> tuple[dict[str, Any], float] | None:
    """The descent from the elite's best state (``kernel`` at β = 1) when its law was not
    descended from before: the better state found and its log joint, offered to the
    elite, else None."""
    if not elite.items:
        return None
    top = elite.items[0][2]
    keys = program_keys(top)
    if keys in done:
        return None
    done.add(keys)
    found = descend(kernel, top)
    if found is None:
        return None
    elite.offer(found[1], found[0])
    return dict(found[0]), found[1]


def program_keys(values: dict[str, Any]) -> tuple[str, ...]:
    """The canonical keys of a state's programs (what a law is, constants aside).

    Examples
    --------
    >>> import ppl
    >>> prior = ppl.ProgramPrior("arith", inputs=["x"])
    >>> a, b = prior.parse("(x * 2.0)"), prior.parse("(x * 3.5)")
    >>> program_keys({"f": a, "sigma": 0.1}) == program_keys({"f": b, "sigma": 0.2})
    True
    """
    return tuple(v.key for v in values.values() if hasattr(v, "prods"))
