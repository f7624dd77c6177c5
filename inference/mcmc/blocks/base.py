"""What every Gibbs block shares: the chain state, the records a move and a block return,
the MH acceptance step, step-size adaptation, and the one explicit object that holds the
kernel's caches and incremental-likelihood views.

A block is a pure function ``step(rng, ctx, state, sites, adapt) -> (GibbsState,
BlockInfo)`` (BlackJAX style: explicit generator, state in, state out). What it may read
besides the state is in :class:`Context`: the target, the kernel's options and its
:class:`Workspace`, whose every entry is a deterministic function of its key (a memo), so a
chain is the same with caching off.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from inference.config import (
    DEFAULT_STRUCTURE_WEIGHTS,
    AmortizedOptions,
    McmcOptions,
    NutsOptions,
)
from inference.mcmc.cache import LRU
from inference.mcmc.fastlik import ProgramLikelihood
from inference.mcmc.laplace import ConstantFitter
from inference.mcmc.library import SubtreeLibrary
from inference.target import SiteInfo, Target
from ppl.errors import PPLError
from ppl.program import Program
from ppl.trace import PROGRAM

__all__ = ["CACHE_NAMES", "INVALID", "PROBE_SEED", "REJECTED", "BlockInfo", "Context",
           "GibbsState", "MoveChoice", "MoveInfo", "Workspace", "accept", "adapt", "pick_move",
           "swap_subtree"]

PROBE_SEED = 20261122
"""Seed of the fixed probe programs that verify an incremental likelihood when it is built."""
CACHE_NAMES = ("lik", "outputs", "memo", "canonical", "solve")
"""The kernel's caches: log L per view, program outputs per site, fits and evidence per
view, canonical forms and least-squares solves per site."""


class GibbsState(NamedTuple):
    """The state of a Metropolis-within-Gibbs chain."""

    values: dict[str, Any]
    """Current value of every latent site (Programs, tensors)."""
    log_joint: float
    """log p(values, data)."""
    step_size: dict[str, float]
    """Adaptive proposal scales: "<site>" (random walk), "<site>.rw", "<site>.mala"."""
    iteration: int
    """Number of steps taken (drives the adaptation schedule)."""
    nuts: tuple[Any, ...] = ()
    """Per NUTS block, Pyro's kernel object: its step size, mass matrix and adaptation
    schedule (mutated by each transition; the randomness comes from ``step``'s rng)."""


class MoveInfo(NamedTuple):
    """What one MH update did."""

    alpha: float
    """Its acceptance probability (0 for an invalid proposal)."""
    accepted: bool
    """Whether it was accepted."""
    invalid: int
    """1 when the proposal was invalid (log joint −inf or nan, non-finite density), else 0."""


REJECTED = MoveInfo(0.0, False, 0)
"""A move that proposed nothing (e.g. no place to apply a structure move)."""
INVALID = MoveInfo(0.0, False, 1)
"""A move whose proposal was invalid."""


class BlockInfo(NamedTuple):
    """What one block did in a sweep."""

    alphas: tuple[float, ...]
    """Acceptance probabilities of its updates."""
    invalid: int = 0
    """Invalid proposals among them."""
    move: str = ""
    """The first structure move tried ("" for blocks without structure moves)."""
    accepted: bool = False
    """Whether that structure move was accepted."""
    diverging: bool = False
    """Whether a NUTS trajectory diverged."""


class Workspace:
    """The kernel's caches and incremental-likelihood views: the one mutable object of a
    Gibbs kernel, owned by it and passed to every block in :class:`Context`.

    Every entry is a deterministic function of its key (a view of a program site given the
    other sites' values, a Laplace fit of a tree shape, a program's outputs), so results do
    not depend on what is cached. ``stats`` counts [hits, misses] per cache of
    :data:`CACHE_NAMES`; ``cache_size=0`` turns caching off.

    Examples
    --------
    >>> ws = Workspace(cache_size=0)
    >>> sorted(ws.stats) == sorted(CACHE_NAMES)
    True
    """

    def __init__(self, cache_size: int, noise: Mapping[str, list[str]] | None = None
                 ) -> None:
        self.cache_size = cache_size
        self.noise = dict(noise or {})
        """The Noise blocks' sites and the observed sites whose scale each is: a view links
        one of them when the model allows (:class:`inference.mcmc.fastlik.NoiseLink`)."""
        self.stats: dict[str, list[int]] = {name: [0, 0] for name in CACHE_NAMES}
        self.views: dict[str, list[tuple[tuple[tuple[str, Any], ...],
                                         ProgramLikelihood | None]]] = {}
        """Per program site: the last two (other sites' values, view) pairs, newest first (a
        rejected noise move returns to the view before it, caches intact)."""
        self.offered: dict[str, tuple[ProgramLikelihood, Any, ProgramLikelihood]] = {}
        """Per program site: (base view, noise value, the base view at that value), a view
        already derived by an accepted joint move (:meth:`offer`)."""
        self.outputs: dict[str, LRU] = {}
        """Per program site: outputs of programs on the data."""
        self.fitters: dict[str, ConstantFitter] = {}
        """Per program site: Laplace fits (results depend only on their key)."""
        self.probes: dict[str, list[Program]] = {}
        """Per program site: the fixed probe programs that verify a new view."""
        self.probe_turn: dict[str, int] = {}
        """Per program site: which probe the next rebuild checks."""
        self.proposals: dict[str, Any] = {}
        """Per program site: the neural proposal conditioned on the data (built once)."""
        self.libraries: dict[tuple[str, int, str], SubtreeLibrary] = {}
        """Per (program site, nonterminal, hash of the inputs): the subtree library."""

    def library(self, site: SiteInfo, nonterminal: int, view: ProgramLikelihood
                ) -> SubtreeLibrary:
        """The subtree library of ``nonterminal`` on the inputs of ``view`` (built once)."""
        key = (site.name, nonterminal, view.input_key)
        lib = self.libraries.get(key)
        if lib is None:
            lib = self.libraries[key] = SubtreeLibrary(site.fn, nonterminal, view.envs[0])
        return lib

    def fitter(self, site: str) -> ConstantFitter:
        """The Laplace fitter of program site ``site``."""
        if site not in self.fitters:
            self.fitters[site] = ConstantFitter(self.cache_size, self.stats)
        return self.fitters[site]

    def view(self, target: Target, site: SiteInfo, values: Mapping[str, Any],
             build: bool = True) -> ProgramLikelihood | None:
        """The incremental likelihood of program site ``site`` given the other sites'
        ``values`` (rebuilt only when one of them changed, by identity; derived without a
        model run when only a linked noise scale changed); None when the model does not
        allow one, or, with ``build=False``, when it would take a model run."""
        others = tuple((k, v) for k, v in values.items() if k != site.name)
        entries = self.views.get(site.name, [])
        for i, (seen, view) in enumerate(entries):
            if _same_values(seen, others):
                if i:
                    entries.insert(0, entries.pop(i))
                return view
        view = None
        newest = entries[0][1] if entries else None
        if newest is not None and newest.noise is not None and _same_values(
                entries[0][0], others, but=newest.noise.site):
            value = values[newest.noise.site]
            offered = self.offered.pop(site.name, None)
            if offered is not None and offered[0] is newest and offered[1] is value:
                view = offered[2]  # derived by the joint move that set the value
            else:
                view = newest.with_noise(value)  # no model run
        elif not build:
            return None
        elif target.fast:
            view = ProgramLikelihood.build(target, dict(values), site.name,
                                           self.probe_programs(site), self.noise)
        if view is not None:
            view.lik = LRU(self.cache_size, self.stats["lik"])
            view.memo = LRU(self.cache_size, self.stats["memo"])
            if site.name not in self.outputs:
                self.outputs[site.name] = LRU(self.cache_size, self.stats["outputs"])
            view.outputs = self.outputs[site.name]
        self.views[site.name] = [(others, view), *entries[:1]]
        return view

    def offer(self, site: str, base: ProgramLikelihood, value: Any,
              view: ProgramLikelihood) -> None:
        """Hand :meth:`view` the view ``base.with_noise(value)`` already derived (by an
        accepted joint move, whose ``value`` is now the state's noise scale), so the next
        call adopts it instead of deriving it again (the same numbers)."""
        self.offered[site] = (base, value, view)

    def probe_programs(self, site: SiteInfo) -> list[Program]:
        """The probes a new view must agree on: all five the first time a view of ``site``
        is built, then one per rebuild in rotation (the other sites' values change the
        view's numbers, not the model's structure, and a rebuild also re-checks the current
        program), so a continuous block that moves every sweep does not pay five full
        model runs per sweep."""
        if site.name not in self.probes:
            gen = np.random.default_rng(PROBE_SEED)
            self.probes[site.name] = [site.fn.sample_program(gen) for _ in range(5)]
            self.probe_turn[site.name] = 0
            return self.probes[site.name]
        turn = self.probe_turn[site.name] = (self.probe_turn[site.name] + 1) % 5
        return [self.probes[site.name][turn]]

    def require_views(self, target: Target, values: Mapping[str, Any]) -> None:
        """The collapsed mode's precondition: every program site has an incremental
        likelihood with Normal observations at ``values``."""
        for site in target.latents.values():
            if site.kind != PROGRAM:
                continue
            view = self.view(target, site, values)
            if view is None or not view.normal:
                raise PPLError(
                    f"collapsed=True needs program site '{site.name}' to be observed only "
                    f"through Normal(loc={site.name}(inputs), scale) likelihoods whose scale "
                    f"does not depend on '{site.name}' (the incremental likelihood); this "
                    f"model does not fit that pattern. Use collapsed=False.")
            prior = site.fn.constant_prior
            if prior.family != "normal":
                raise PPLError(f"collapsed=True needs a Normal constant prior on program "
                               f"site '{site.name}'; got {prior!r}.")


def _same_values(a: tuple[tuple[str, Any], ...], b: tuple[tuple[str, Any], ...],
                 but: str | None = None) -> bool:
    """Whether two (name, value) tuples hold the same names and value objects (by
    identity), except at name ``but``."""
    return len(a) == len(b) and all(
        k == j and (v is w or k == but) for (k, v), (j, w) in zip(a, b, strict=True))


class MoveChoice(NamedTuple):
    """The structure moves' names and their cumulative weights, computed once per kernel."""

    names: tuple[str, ...]
    """Move names, in the order of the weights."""
    cumulative: list[float]
    """Cumulative (unnormalised) weights."""

    @classmethod
    def of(cls, weights: Mapping[str, float]) -> MoveChoice:
        """The choice among ``weights`` (unnormalised probabilities by name)."""
        return cls(tuple(weights), np.cumsum([weights[k] for k in weights]).tolist())


DEFAULT_MOVES = MoveChoice.of(DEFAULT_STRUCTURE_WEIGHTS)
"""The choice among the default structure moves."""


class Context(NamedTuple):
    """What a block reads besides the state."""

    target: Target
    """The model's log density (tempered by ``target.beta``)."""
    options: McmcOptions
    """The kernel's options."""
    nuts_options: NutsOptions
    """Options of the NUTS blocks."""
    workspace: Workspace
    """Caches and incremental-likelihood views."""
    nuts_blocks: tuple[Any, ...] = ()
    """The NUTS blocks' samplers, in plan order (their kernels live in the state)."""
    moves: MoveChoice = DEFAULT_MOVES
    """The structure moves and their weights."""
    amortized: AmortizedOptions = AmortizedOptions()
    """A trained proposal for the neural move, and its prior weight."""


def accept(rng: np.random.Generator, target: Target, state: GibbsState, site: str,
           value: Any, log_q_ratio: float, scored: float | None = None
           ) -> tuple[GibbsState, MoveInfo]:
    """The MH step for a proposal ``value`` of ``site``: accept with probability
    min(1, p(x') / p(x) · q(x | x') / q(x' | x)), where ``log_q_ratio`` is
    log q(x | x') − log q(x' | x) and ``scored`` is log p(x') when already known."""
    values = dict(state.values)
    values[site] = value
    lj = scored if scored is not None else target.log_joint(values)
    if not math.isfinite(lj):
        return state, INVALID
    log_alpha = lj - state.log_joint + log_q_ratio
    alpha = 1.0 if log_alpha >= 0 else math.exp(log_alpha)
    if rng.random() < alpha:
        return state._replace(values=values, log_joint=lj), MoveInfo(alpha, True, 0)
    return state, MoveInfo(alpha, False, 0)


def swap_subtree(rng: np.random.Generator, target: Target, state: GibbsState, site: str,
                 v: int, new: tuple[tuple[int, ...], tuple[Any, ...]],
                 log_q: Callable[[tuple[int, ...], tuple[Any, ...]], float],
                 view: ProgramLikelihood | None,
                 node_ratio: Callable[[int], float] | None = None
                 ) -> tuple[GibbsState, MoveInfo]:
    """The MH step of a subtree move: node ``v`` (picked uniformly) of the program at
    ``site`` gets the subtree ``new`` = (productions, values), drawn from ``log_q``, a
    proposal that depends on the program only outside v's subtree (so the reverse move
    redraws the old subtree from the same density). Accepted with
    min(1, p(φ') N(φ) q(T_v) / (p(φ) N(φ') q(T'))); scored by ``view`` when given.
    ``node_ratio`` maps the new program's size to log P(v | φ') − log P(v | φ) for a pick
    that is not uniform (the default, None, is the uniform pick's log N(φ) − log N(φ'))."""
    phi: Program = state.values[site]
    end = int(phi.ends()[v])
    phi2 = phi.replace(v, *new)
    if node_ratio is None:
        ratio = (-math.log(phi2.size) + log_q(phi.prods[v:end], phi.values[v:end])
                 + math.log(phi.size) - log_q(*new))
    else:
        ratio = node_ratio(phi2.size) + log_q(phi.prods[v:end], phi.values[v:end]) \
            - log_q(*new)
    if not math.isfinite(ratio):
        return state, INVALID
    scored = view.log_joint(phi2) if view is not None else None
    return accept(rng, target, state, site, phi2, ratio, scored)


def adapt(step: dict[str, float], key: str, alpha: float, target: float, t: int) -> None:
    """Robbins–Monro on log step size toward acceptance ``target`` (warmup only)."""
    gamma = (t + 10.0) ** -0.6
    step[key] = float(np.clip(step[key] * math.exp(gamma * (alpha - target)), 1e-6, 1e3))


def pick_move(rng: np.random.Generator, moves: MoveChoice) -> str:
    """A structure move's name drawn with probabilities ∝ its weight (one uniform draw)."""
    cum = moves.cumulative  # bisect_right: np.searchsorted's index on a list
    return moves.names[bisect.bisect_right(cum, rng.random() * cum[-1])]
