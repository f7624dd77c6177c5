"""Metropolis-within-Gibbs over every latent site of a model (pure ``init``/``step``).

One ``step`` is a sweep over the plan's blocks, each update π-invariant on its own, so the
fixed cycle is π-invariant (MOVES.md, "Gibbs composition"):

- a program site gets one structure move drawn from ``structure_weights`` (regenerate,
  insert/delete, relabel; :mod:`inference.mcmc.moves`), then, if the program has constants,
  one constant move: a random walk on one constant (symmetric) or MALA on all of them
  (gradient through torch autograd, Gaussian proposal densities in the ratio), alternately;
- continuous sites get one NUTS transition of Pyro's NUTS on all of them jointly, the other
  sites held fixed (:mod:`inference.mcmc.nuts_block`), or, in a ``RW`` block, a random walk
  per site in unconstrained space (Jacobian in the ratio);
- a discrete site gets a uniform proposal over its support for one element.

The blocks (the plan) default to ``ProgramMH`` per program site, one ``NUTS`` block for all
continuous sites and ``DiscreteMH`` per discrete site, and can be set by hand
(:func:`inference.mcmc.plan.make_plan`). Step sizes adapt (Robbins–Monro on the log scale;
NUTS by its dual averaging and mass-matrix windows) only during warmup, so the sampling
phase is an exact MH chain.

With ``collapsed=True`` a program site's block is instead the collapsed mode of
:mod:`inference.mcmc.collapsed` (an approximation: structures scored by Laplace evidence).
Evaluations, log-likelihoods, canonical forms and constant fits are memoised in bounded LRU
caches (:mod:`inference.mcmc.cache`); they hold deterministic values only, so the chain is
the same with ``cache_size=0``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.distributions import biject_to

from inference.mcmc import collapsed as collapsed_mode
from inference.mcmc.cache import LRU
from inference.mcmc.fastlik import ProgramLikelihood
from inference.mcmc.laplace import CACHE_SIZE, ConstantFitter
from inference.mcmc.moves import MOVES, RandomChooser
from inference.mcmc.nuts_block import NumpyroNutsBlock, NutsBlock
from inference.mcmc.plan import make_plan
from inference.target import CONTINUOUS, DISCRETE, PROGRAM, Target
from ppl.errors import InitializationError, PPLError
from ppl.program import BoundProgram, Program

__all__ = ["CACHE_NAMES", "DEFAULT_STRUCTURE_WEIGHTS", "Gibbs", "GibbsInfo", "GibbsState"]

DEFAULT_STRUCTURE_WEIGHTS: dict[str, float] = {"regenerate": 0.5, "insert_delete": 0.25,
                                               "relabel": 0.25}
INIT_TRIES = 100
PROBE_SEED = 20261122
"""Seed of the fixed probe programs that verify an incremental likelihood when it is built."""
FAST_CHECKS = 5
"""Valid initial states on which the scoring fast path must match the Pyro trace."""
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


class GibbsInfo(NamedTuple):
    """What one sweep did."""

    acceptance_rate: float
    """Mean acceptance probability over the sweep's updates."""
    move: str
    """Structure move tried on the first program site ("" without program sites)."""
    accepted: bool
    """Whether that structure move was accepted."""
    n_invalid: int
    """Proposals whose log joint was −inf or nan (invalid programs) in this sweep."""
    diverging: bool = False
    """Whether a NUTS block's trajectory diverged in this sweep (after warmup)."""


class Gibbs:
    """Metropolis-within-Gibbs kernel over a :class:`~inference.target.Target`.

    Parameters
    ----------
    target : Target
    structure_weights : mapping, optional
        Probabilities of the structure moves (normalised); default
        ``DEFAULT_STRUCTURE_WEIGHTS``.
    init_candidates : int
        The initial state is the best of this many valid random draws.
    program_moves : int
        Structure moves (each followed by a constant move when the program has constants)
        per program site per sweep; one MALA move on the constants ends the block. With the
        incremental likelihood (:mod:`inference.mcmc.fastlik`) these cost a program
        evaluation each, not a model run.
    refit : float
        With the incremental likelihood, the probability that a structure move redraws all
        constants from their Laplace fit (MOVES.md move 5), and that a constant move is a
        Laplace independence move instead of a random walk.
    blocks : sequence of (kernel, sites) pairs, optional
        The plan (see :func:`make_plan`); default: ProgramMH per program site, NUTS on all
        continuous sites, DiscreteMH per discrete site.
    nuts_options : mapping, optional
        ``target_accept_prob``, ``max_tree_depth``, ``dense_mass`` of the NUTS blocks.
    backend : {"pyro", "numpyro"}
        Whose NUTS runs the NUTS blocks: Pyro's (:class:`~inference.mcmc.nuts_block.NutsBlock`)
        or NumPyro's (:class:`~inference.mcmc.nuts_block.NumpyroNutsBlock`).
    cache_size : int
        Capacity of each LRU cache (``CACHE_NAMES``); 0 turns caching off without changing
        the chain. Hits and misses are counted in ``cache_stats``.
    collapsed : bool
        Program sites run the collapsed mode (:mod:`inference.mcmc.collapsed`): an
        approximation that needs the incremental likelihood with Normal observations.
    """

    def __init__(self, target: Target, structure_weights: Mapping[str, float] | None = None,
                 init_candidates: int = 100, program_moves: int = 1, refit: float = 0.5,
                 blocks: Sequence[tuple[str, Any]] | None = None,
                 nuts_options: Mapping[str, Any] | None = None, backend: str = "pyro",
                 cache_size: int = CACHE_SIZE, collapsed: bool = False) -> None:
        self.target = target
        if backend not in ("pyro", "numpyro"):
            raise PPLError(f"backend must be 'pyro' or 'numpyro'; got {backend!r}.")
        self.backend = backend
        if not isinstance(cache_size, int) or cache_size < 0:
            raise PPLError(f"cache_size must be an integer >= 0; got {cache_size!r}.")
        self.cache_size = cache_size
        self.cache_stats: dict[str, list[int]] = {name: [0, 0] for name in CACHE_NAMES}
        """[hits, misses] per cache."""
        self._outputs: dict[str, LRU] = {}
        self.collapsed = bool(collapsed)
        if not 0.0 <= refit <= 1.0:
            raise PPLError(f"refit must be a probability in [0, 1]; got {refit!r}.")
        self.refit = refit
        self._fitters: dict[str, ConstantFitter] = {}
        """Laplace fits per program site (a cache: results depend only on their key)."""
        if not isinstance(program_moves, int) or program_moves < 1:
            raise PPLError(f"program_moves must be a positive integer; got {program_moves!r}.")
        self.program_moves = program_moves
        self._views: dict[str, tuple[tuple[Any, ...], ProgramLikelihood | None]] = {}
        self._probes: dict[str, list[Program]] = {}
        self._probe_turn: dict[str, int] = {}
        if not isinstance(init_candidates, int) or init_candidates < 1:
            raise PPLError(f"init_candidates must be a positive integer; got "
                           f"{init_candidates!r}.")
        self.init_candidates = init_candidates
        weights = dict(structure_weights or DEFAULT_STRUCTURE_WEIGHTS)
        unknown = set(weights) - set(MOVES)
        if unknown or not weights or any(not (w >= 0) for w in weights.values()) \
                or sum(weights.values()) <= 0:
            raise PPLError(f"structure_weights must map moves {sorted(MOVES)} to weights >= 0 "
                           f"(not all zero); got {weights}.")
        self.move_names = list(weights)
        self.move_cum = np.cumsum([weights[k] for k in self.move_names])
        self.blocks = list(target.latents.values())
        self.plan = make_plan(target.latents, blocks)
        block = NutsBlock if backend == "pyro" else NumpyroNutsBlock
        self._nuts = [block(target, sites, **dict(nuts_options or {}))
                      for kind, sites in self.plan if kind == "NUTS"]

    def describe(self) -> str:
        """The plan in one line, e.g. ``Gibbs: ProgramMH[f] + NUTS[sigma]``."""
        parts = [f"{kind}[{', '.join(s.name for s in sites)}]"
                 + (f" ({collapsed_mode.APPROXIMATION})"
                    if self.collapsed and kind == "ProgramMH" else "")
                 for kind, sites in self.plan]
        suffix = " (NumPyro's NUTS)" if self._nuts and self.backend == "numpyro" else ""
        return "Gibbs: " + (" + ".join(parts) if parts else "(no latent sites)") + suffix

    # ------------------------------------------------------------------ init
    def init(self, rng: np.random.Generator, init_values: Mapping[str, Any] | None = None,
             num_warmup: int = 0) -> GibbsState:
        """A valid initial state: the best (highest log joint) of ``init_candidates`` valid
        draws (programs from their priors, continuous sites uniform in (−2, 2) on the
        unconstrained scale, discrete sites uniform). Draws that are invalid are retried up
        to 100 times in a row before InitializationError. The choice of start never affects
        the chain's stationary distribution, only how soon it reaches the posterior. NUTS
        blocks are set up to adapt during the first ``num_warmup`` steps."""
        step = {}
        for b in self.blocks:
            step[b.name] = 0.5 if b.kind == CONTINUOUS else 1.0
            if b.kind == PROGRAM:
                step[f"{b.name}.rw"] = 0.5
                step[f"{b.name}.mala"] = 0.1
        best: GibbsState | None = None
        fails = 0
        found: list[dict[str, Any]] = []
        while len(found) < self.init_candidates and fails < INIT_TRIES:
            values = {b.name: self._draw_init(rng, b) for b in self.blocks}
            values.update(dict(init_values or {}))
            lj = self.target.log_joint(values)
            if not math.isfinite(lj):
                fails += 1
                continue
            fails = 0
            found.append(values)
            if len(found) == FAST_CHECKS:
                self.target.check_fast(found)
            if best is None or lj > best.log_joint:
                best = GibbsState(values, lj, step, 0)
            if init_values is not None and len(init_values) == len(self.blocks):
                break
        if found and len(found) < FAST_CHECKS:
            self.target.check_fast(found)
        if best is not None:
            best = best._replace(log_joint=self.target.log_joint(best.values))
            if self.collapsed:
                self._require_views(best)
            nuts = tuple(block.init(best.values, num_warmup, int(rng.integers(2**63)))
                         for block in self._nuts)
            return best._replace(nuts=nuts)
        names = ", ".join(b.name for b in self.blocks)
        raise InitializationError(
            f"No valid initial state in {INIT_TRIES} tries (every draw gave log density "
            f"-inf or nan) for sites: {names}. Check that the data can be explained at all, "
            "or pass init_values.")

    @staticmethod
    def _draw_init(rng: np.random.Generator, b: Any) -> Any:
        if b.kind == PROGRAM:
            return b.fn.sample_program(rng)
        if b.kind == DISCRETE:
            support = b.fn.enumerate_support(expand=True)
            idx = rng.integers(support.shape[0], size=b.shape or None)
            flat = support.reshape(support.shape[0], -1)
            pick = torch.as_tensor(np.asarray(idx).reshape(-1))
            return flat[pick, torch.arange(flat.shape[1])].reshape(b.shape)
        t = biject_to(b.fn.support)
        u = torch.as_tensor(rng.uniform(-2, 2, size=_unconstrained_shape(t, b.shape)))
        return t(u)

    # ------------------------------------------------------------------ step
    def step(self, rng: np.random.Generator, state: GibbsState, adapt: bool = False
             ) -> tuple[GibbsState, GibbsInfo]:
        """One sweep over all blocks; returns the new state and what happened."""
        state = state._replace(step_size=dict(state.step_size), iteration=state.iteration + 1)
        alphas: list[float] = []
        invalid = 0
        first_move, first_accepted = "", False
        diverging = False
        nuts_index = 0
        for kind, sites in self.plan:
            if kind == "NUTS":
                state, alpha, div = self._nuts_step(rng, state, nuts_index)
                nuts_index += 1
                alphas.append(alpha)
                diverging |= div
                continue
            for b in sites:
                if kind == "ProgramMH":
                    block = self._collapsed_block if self.collapsed else self._program_block
                    state, block_alphas, bad, move = block(rng, state, b, adapt)
                    alphas.extend(block_alphas)
                    invalid += bad
                    if not first_move and move is not None:
                        first_move, first_accepted = move
                    continue
                if kind == "RW":
                    state, alpha, _, bad = self._continuous(rng, state, b, adapt)
                else:
                    state, alpha, _, bad = self._discrete(rng, state, b)
                alphas.append(alpha)
                invalid += bad
        rate = float(np.mean(alphas)) if alphas else 1.0
        return state, GibbsInfo(rate, first_move, first_accepted, invalid, diverging)

    def _nuts_step(self, rng: np.random.Generator, state: GibbsState, index: int
                   ) -> tuple[GibbsState, float, bool]:
        """One NUTS transition of block ``index``; the log joint is rescored after it."""
        values, info = self._nuts[index].step(rng, state.nuts[index], state.values)
        lj = self.target.log_joint(values)
        if not math.isfinite(lj):  # NUTS never moves to an invalid state; keep the old one
            return state, 0.0, info.diverging
        return state._replace(values=values, log_joint=lj), info.accept_prob, info.diverging

    def _program_block(self, rng: np.random.Generator, state: GibbsState, b: Any, adapt: bool
                       ) -> tuple[GibbsState, list[float], int, tuple[str, bool] | None]:
        """``program_moves`` structure moves (each followed by a constant move when the
        program has constants) and one closing MALA move on the constants."""
        alphas: list[float] = []
        invalid = 0
        first: tuple[str, bool] | None = None
        view = self.view(b, state)
        for _ in range(self.program_moves):
            name = self.move_names[int(np.searchsorted(
                self.move_cum, rng.random() * self.move_cum[-1], side="right"))]
            if view is not None and rng.random() < self.refit:
                state, alpha, acc, bad = self._refit_structure(rng, state, b, name, view)
            else:
                state, alpha, acc, bad = self._structure(rng, state, b, name, view)
            alphas.append(alpha)
            invalid += bad
            if first is None:
                first = (name, acc)
            if len(state.values[b.name].constants):
                if view is not None and rng.random() < self.refit:
                    state, alpha, _, bad = self._laplace_constants(rng, state, b, view)
                else:
                    state, alpha, _, bad = self._constant_rw(rng, state, b, adapt, view)
                alphas.append(alpha)
                invalid += bad
        if len(state.values[b.name].constants):
            state, alpha, _, bad = self._mala(rng, state, b, adapt, view)
            alphas.append(alpha)
            invalid += bad
        return state, alphas, invalid, first

    def _accept(self, rng: np.random.Generator, state: GibbsState, site: str, value: Any,
                log_q_ratio: float, scored: float | None = None
                ) -> tuple[GibbsState, float, bool, int]:
        values = dict(state.values)
        values[site] = value
        lj = scored if scored is not None else self.target.log_joint(values)
        if not math.isfinite(lj):
            return state, 0.0, False, 1
        log_alpha = lj - state.log_joint + log_q_ratio
        alpha = 1.0 if log_alpha >= 0 else math.exp(log_alpha)
        if rng.random() < alpha:
            return state._replace(values=values, log_joint=lj), alpha, True, 0
        return state, alpha, False, 0

    def view(self, b: Any, state: GibbsState) -> ProgramLikelihood | None:
        """The incremental likelihood of program site ``b`` (a ``SiteInfo`` of ``blocks``)
        given the other sites' values in ``state``, rebuilt only when one of them changed;
        None when the model has none (the fast path is off or the pattern does not apply)."""
        others = tuple(v for k, v in state.values.items() if k != b.name)
        cached = self._views.get(b.name)
        if cached is not None and len(cached[0]) == len(others) and all(
                x is y for x, y in zip(cached[0], others, strict=True)):
            return cached[1]
        view = None
        if self.target.fast:
            view = ProgramLikelihood.build(self.target, state.values, b.name,
                                           self._probe_programs(b))
        if view is not None:
            view.lik = LRU(self.cache_size, self.cache_stats["lik"])
            view.memo = LRU(self.cache_size, self.cache_stats["memo"])
            if b.name not in self._outputs:
                self._outputs[b.name] = LRU(self.cache_size, self.cache_stats["outputs"])
            view.outputs = self._outputs[b.name]
        self._views[b.name] = (others, view)
        return view

    def _require_views(self, state: GibbsState) -> None:
        """The collapsed mode's precondition: every program site has an incremental
        likelihood with Normal observations at ``state``."""
        for b in self.blocks:
            if b.kind != PROGRAM:
                continue
            view = self.view(b, state)
            if view is None or not view.normal:
                raise PPLError(
                    f"collapsed=True needs program site '{b.name}' to be observed only "
                    f"through Normal(loc={b.name}(inputs), scale) likelihoods whose scale "
                    f"does not depend on '{b.name}' (the incremental likelihood); this model "
                    f"does not fit that pattern. Use collapsed=False.")
            prior = b.fn.constant_prior
            if prior.family != "normal":
                raise PPLError(f"collapsed=True needs a Normal constant prior on program "
                               f"site '{b.name}'; got {prior!r}.")

    def _collapsed_block(self, rng: np.random.Generator, state: GibbsState, b: Any,
                         adapt: bool = False
                         ) -> tuple[GibbsState, list[float], int, tuple[str, bool] | None]:
        """``program_moves`` collapsed structure moves, then the constants redrawn from
        N(c*, H⁻¹) given the structure and the other sites (:mod:`inference.mcmc.collapsed`).
        """
        view = self.view(b, state)
        if view is None or not view.normal:
            # init checked the model fits the pattern; a view that fails its verification at
            # this state (round-off on an extreme program) skips the block this sweep only:
            # the next move of another site rebuilds it
            return state, [0.0], 1, ("", False)
        fitter = self._fitter(b)
        alphas: list[float] = []
        invalid = 0
        first: tuple[str, bool] | None = None
        for _ in range(self.program_moves):
            name = self.move_names[int(np.searchsorted(
                self.move_cum, rng.random() * self.move_cum[-1], side="right"))]
            out = collapsed_mode.structure_move(rng, fitter, view, state.values[b.name], name)
            alphas.append(out.alpha)
            invalid += out.invalid
            if out.program is not None:
                state = state._replace(values=dict(state.values, **{b.name: out.program}),
                                       log_joint=view.log_joint(out.program))
            first = first or (name, out.program is not None)
        phi = state.values[b.name]
        _, ev = collapsed_mode.score(fitter, view, phi)
        if ev.posterior is not None:
            phi2 = collapsed_mode.draw_constants(rng, view, phi, ev)
            if phi2 is not None:
                state = state._replace(values=dict(state.values, **{b.name: phi2}),
                                       log_joint=view.log_joint(phi2))
        return state, alphas, invalid, first or ("", False)

    def _probe_programs(self, b: Any) -> list[Program]:
        """The probes a new view must agree on: all five the first time a view of ``b`` is
        built, then one per rebuild in rotation (the other sites' values change the view's
        numbers, not the model's structure, and a rebuild also re-checks the current
        program), so a continuous block that moves every sweep does not pay five full
        model runs per sweep."""
        if b.name not in self._probes:
            gen = np.random.default_rng(PROBE_SEED)
            self._probes[b.name] = [b.fn.sample_program(gen) for _ in range(5)]
            self._probe_turn[b.name] = 0
            return self._probes[b.name]
        turn = self._probe_turn[b.name] = (self._probe_turn[b.name] + 1) % 5
        return [self._probes[b.name][turn]]

    def _structure(self, rng: np.random.Generator, state: GibbsState, b: Any, name: str,
                   view: ProgramLikelihood | None = None
                   ) -> tuple[GibbsState, float, bool, int]:
        prop = MOVES[name](RandomChooser(rng), b.fn, state.values[b.name])
        if prop is None:
            return state, 0.0, False, 0
        scored = view.log_joint(prop.program) if view is not None else None
        return self._accept(rng, state, b.name, prop.program, prop.log_q_rev - prop.log_q_fwd,
                            scored)

    def _fitter(self, b: Any) -> ConstantFitter:
        if b.name not in self._fitters:
            self._fitters[b.name] = ConstantFitter(self.cache_size, self.cache_stats)
        return self._fitters[b.name]

    def _draw_constants(self, rng: np.random.Generator, view: ProgramLikelihood, b: Any,
                        phi: Program) -> tuple[Program | None, float]:
        """All constants of φ's shape redrawn from its Laplace fit (or the prior), with
        the log density of the draw."""
        k = len(phi.constants)
        if k == 0:
            return phi, 0.0
        fit = self._fitter(b).fit(phi, view)
        if fit is None:
            c = np.array([b.fn.constant_prior.sample(rng) for _ in range(k)])
            return phi.with_constants(c), self._prior_log_q(b, c)
        c = fit.sample(rng)
        log_q = fit.log_density(c)
        if not (np.all(np.isfinite(c)) and math.isfinite(log_q)):
            return None, 0.0  # rejected: the forward density must be finite
        return phi.with_constants(c), log_q

    def _constants_log_q(self, view: ProgramLikelihood, b: Any, phi: Program) -> float:
        """log density of φ's own constants under the proposal of its shape."""
        c = phi.constants
        if not len(c):
            return 0.0
        fit = self._fitter(b).fit(phi, view)
        return self._prior_log_q(b, c) if fit is None else fit.log_density(c)

    @staticmethod
    def _prior_log_q(b: Any, c: np.ndarray) -> float:
        return float(sum(b.fn.constant_prior.log_prob(float(x)) for x in c))

    def _refit_structure(self, rng: np.random.Generator, state: GibbsState, b: Any, name: str,
                         view: ProgramLikelihood) -> tuple[GibbsState, float, bool, int]:
        """MOVES.md move 5: a structure move (constants integrated out of its densities),
        then every constant of the new shape drawn from its Laplace fit."""
        phi: Program = state.values[b.name]
        prop = MOVES[name](RandomChooser(rng), b.fn, phi, structural=True)
        if prop is None:
            return state, 0.0, False, 0
        phi2, log_q_c2 = self._draw_constants(rng, view, b, prop.program)
        if phi2 is None:
            return state, 0.0, False, 1
        ratio = (prop.log_q_rev + self._constants_log_q(view, b, phi)
                 - prop.log_q_fwd - log_q_c2)
        return self._accept(rng, state, b.name, phi2, ratio, view.log_joint(phi2))

    def _laplace_constants(self, rng: np.random.Generator, state: GibbsState, b: Any,
                           view: ProgramLikelihood) -> tuple[GibbsState, float, bool, int]:
        """Independence move: all constants of the current shape from its Laplace fit."""
        phi: Program = state.values[b.name]
        phi2, log_q_c2 = self._draw_constants(rng, view, b, phi)
        if phi2 is None:
            return state, 0.0, False, 1
        ratio = self._constants_log_q(view, b, phi) - log_q_c2
        return self._accept(rng, state, b.name, phi2, ratio, view.log_joint(phi2))

    def _constant_rw(self, rng: np.random.Generator, state: GibbsState, b: Any, adapt: bool,
                     view: ProgramLikelihood | None = None
                     ) -> tuple[GibbsState, float, bool, int]:
        phi: Program = state.values[b.name]
        c = phi.constants
        key = f"{b.name}.rw"
        c[int(rng.integers(len(c)))] += state.step_size[key] * rng.standard_normal()
        phi2 = phi.with_constants(c)
        scored = view.log_joint(phi2) if view is not None else None
        out = self._accept(rng, state, b.name, phi2, 0.0, scored)
        if adapt:
            _adapt(out[0].step_size, key, out[1], 0.44, state.iteration)
        return out

    def _mala(self, rng: np.random.Generator, state: GibbsState, b: Any, adapt: bool,
              view: ProgramLikelihood | None = None) -> tuple[GibbsState, float, bool, int]:
        phi: Program = state.values[b.name]
        key = f"{b.name}.mala"
        eps = state.step_size[key]
        c = phi.constants
        _, g = self._grad(state, b, phi, c, view)
        if not np.all(np.isfinite(g)):
            return state, 0.0, False, 1
        with np.errstate(over="ignore", invalid="ignore"):
            mean = c + 0.5 * eps**2 * g
            c2 = mean + eps * rng.standard_normal(len(c))
        phi2 = phi.with_constants(c2) if np.all(np.isfinite(c2)) else None
        if phi2 is None:
            return state, 0.0, False, 1
        lj2, g2 = self._grad(state, b, phi2, c2, view)
        with np.errstate(over="ignore", invalid="ignore"):
            log_q_fwd = -np.sum((c2 - mean) ** 2) / (2 * eps**2)
            log_q_rev = -np.sum((c - c2 - 0.5 * eps**2 * g2) ** 2) / (2 * eps**2)
        ratio = float(log_q_rev - log_q_fwd)
        if not (math.isfinite(lj2) and math.isfinite(ratio)):
            out = state, 0.0, False, 1
        else:
            out = self._accept(rng, state, b.name, phi2, ratio, scored=lj2)
        if adapt:
            _adapt(out[0].step_size, key, out[1], 0.57, state.iteration)
        return out

    def _grad(self, state: GibbsState, b: Any, phi: Program, c: np.ndarray,
              view: ProgramLikelihood | None = None) -> tuple[float, np.ndarray]:
        """log joint at constants c and its gradient d/dc (constant prior analytically).

        With the incremental view the likelihood's gradient is a central difference,
        β (log L(c + h e_j) − log L(c − h e_j)) / 2h with h_j = 1e-6·max(1, |c_j|), all 2k
        points in one batched evaluation; without it, torch autograd through the model. Both
        are deterministic functions of c, which is all MALA's Hastings ratio needs."""
        if view is not None:
            h = 1e-6 * np.maximum(1.0, np.abs(c))
            k = len(c)
            ll = view.log_lik_batch(phi, np.concatenate([c + np.diag(h), c - np.diag(h)]))
            with np.errstate(all="ignore"):
                g = view.beta * (ll[:k] - ll[k:]) / (2 * h)
            g = np.where(np.isfinite(ll[:k]) & np.isfinite(ll[k:]), g, np.nan)
            return view.log_joint(phi), g + b.fn.constant_prior.grad_log_prob(c)
        leaf = torch.tensor(c, dtype=torch.float64, requires_grad=True)
        lj, g = self.target.log_joint_grad(state.values, b.name, BoundProgram(phi, leaf), leaf)
        return lj, g + b.fn.constant_prior.grad_log_prob(c)

    def _continuous(self, rng: np.random.Generator, state: GibbsState, b: Any, adapt: bool
                    ) -> tuple[GibbsState, float, bool, int]:
        t = biject_to(b.fn.support)
        v = state.values[b.name]
        u = t.inv(v)
        u2 = u + state.step_size[b.name] * torch.as_tensor(rng.standard_normal(tuple(u.shape)),
                                                            dtype=u.dtype)
        v2 = t(u2)
        ratio = float(t.log_abs_det_jacobian(u2, v2).sum() - t.log_abs_det_jacobian(u, v).sum())
        out = self._accept(rng, state, b.name, v2, ratio)
        if adapt:
            target_rate = 0.44 if u.numel() == 1 else 0.234
            _adapt(out[0].step_size, b.name, out[1], target_rate, state.iteration)
        return out

    def _discrete(self, rng: np.random.Generator, state: GibbsState, b: Any
                  ) -> tuple[GibbsState, float, bool, int]:
        support = b.fn.enumerate_support(expand=False).reshape(-1)
        v = state.values[b.name]
        flat = v.reshape(-1).clone()
        i = int(rng.integers(flat.numel())) if flat.numel() else 0
        flat[i] = support[int(rng.integers(support.numel()))]
        return self._accept(rng, state, b.name, flat.reshape(v.shape), 0.0)


def _unconstrained_shape(t: Any, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(t.inverse_shape(torch.Size(shape))) if hasattr(t, "inverse_shape") else shape


def _adapt(step: dict[str, float], key: str, alpha: float, target: float, t: int) -> None:
    """Robbins–Monro on log step size toward acceptance ``target`` (warmup only)."""
    gamma = (t + 10.0) ** -0.6
    step[key] = float(np.clip(step[key] * math.exp(gamma * (alpha - target)), 1e-6, 1e3))
