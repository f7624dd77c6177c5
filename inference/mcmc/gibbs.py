"""Metropolis-within-Gibbs over every latent site of a model (pure ``init``/``step``).

One ``step`` is a sweep over the plan's blocks, each update π-invariant on its own, so the
fixed cycle is π-invariant (MOVES.md, "Gibbs composition"):

- a program site gets one structure move drawn from ``structure_weights`` (regenerate,
  insert/delete, relabel; :mod:`inference.mcmc.blocks.program`), then, if the program has constants,
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
:mod:`inference.mcmc.blocks.collapsed` (an approximation: structures scored by Laplace
evidence). Evaluations, log-likelihoods, canonical forms and constant fits are memoised in
bounded LRU caches (:mod:`inference.mcmc.cache`) held by the kernel's one explicit
:class:`~inference.mcmc.blocks.base.Workspace`; they hold deterministic values only, so the
chain is the same with ``cache_size=0``.

This module only composes the blocks of :mod:`inference.mcmc.blocks`: the plan's kinds map
to block steps in :data:`BLOCK_STEPS`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from inference.config import BACKENDS, AmortizedOptions, McmcOptions, NutsOptions
from inference.mcmc.blocks import collapsed, continuous, discrete, noise, nuts, program
from inference.mcmc.blocks.base import BlockInfo, Context, GibbsState, MoveChoice, Workspace
from inference.mcmc.moves import MOVES
from inference.mcmc.nuts_block import NumpyroNutsBlock, NutsBlock
from inference.mcmc.plan import make_plan
from inference.target import SiteInfo, Target
from ppl.errors import InitializationError, PPLError
from ppl.trace import CONTINUOUS, PROGRAM

__all__ = ["BLOCK_STEPS", "FAST_CHECKS", "INIT_TRIES", "Gibbs", "GibbsInfo", "GibbsState"]

INIT_TRIES = 100
"""Invalid initial draws in a row before InitializationError."""
FAST_CHECKS = 5
"""Valid initial states on which the scoring fast path must match the Pyro trace."""

BlockStep = Callable[[np.random.Generator, Context, GibbsState, SiteInfo, bool],
                     tuple[GibbsState, BlockInfo]]
BLOCK_STEPS: dict[str, BlockStep] = {"ProgramMH": program.step, "RW": continuous.step,
                                     "DiscreteMH": discrete.step}
"""Plan kind → the step of its per-site blocks (NUTS blocks update their sites jointly;
``collapsed=True`` replaces ProgramMH by :func:`inference.mcmc.blocks.collapsed.step`)."""


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
    """Metropolis-within-Gibbs kernel over a :class:`~inference.target.Target`: ``init``
    and ``step`` compose the blocks of the plan.

    Parameters
    ----------
    target : Target
    options : McmcOptions, optional
        The kernel's options (:class:`~inference.config.McmcOptions`: structure moves per
        sweep, their weights, initial candidates, the plan ``blocks``, ``refit``,
        ``cache_size``, ``collapsed``); every default lives there.
    nuts : NutsOptions, optional
        Options of the plan's NUTS blocks.
    amortized : AmortizedOptions, optional
        A trained proposal: its program site gets the "neural" and "neural_edit" structure
        moves (:func:`inference.mcmc.blocks.program.neural`,
        :func:`~inference.mcmc.blocks.program.neural_edit`), weights ``neural_weight`` and
        ``edit_weight`` unless ``structure_weights`` is given.
    backend : {"pyro", "numpyro"}
        Whose NUTS runs the NUTS blocks: Pyro's (:class:`~inference.mcmc.nuts_block.NutsBlock`)
        or NumPyro's (:class:`~inference.mcmc.nuts_block.NumpyroNutsBlock`).

    Attributes
    ----------
    workspace : Workspace
        The kernel's one mutable object: caches and incremental-likelihood views
        (``workspace.stats`` counts cache hits and misses).

    Examples
    --------
    >>> import numpy as np, ppl
    >>> from ppl import dist
    >>> from inference.config import McmcOptions
    >>> from inference.target import Target
    >>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
    >>> def model(x, y=None):
    ...     f = ppl.sample("f", prior)
    ...     with ppl.plate("data", len(x)):
    ...         ppl.sample("y", dist.Normal(f(x), 0.5), obs=y)
    >>> x = np.linspace(-1, 1, 5)
    >>> kernel = Gibbs(Target(model, (x,), {"y": x}), McmcOptions(program_moves=2))
    >>> kernel.describe()
    'Gibbs: ProgramMH[f]'
    >>> rng = np.random.default_rng(0)
    >>> state = kernel.init(rng)
    >>> state, info = kernel.step(rng, state)
    >>> bool(np.isfinite(state.log_joint)), info.move in program.STRUCTURE_MOVES
    (True, True)
    """

    def __init__(self, target: Target, options: McmcOptions | None = None,
                 nuts: NutsOptions | None = None, backend: str = "pyro",
                 amortized: AmortizedOptions | None = None) -> None:
        options = McmcOptions() if options is None else options
        nuts = NutsOptions() if nuts is None else nuts
        amortized = AmortizedOptions() if amortized is None else amortized
        if backend not in BACKENDS:
            raise PPLError(f"backend must be one of {BACKENDS}; got {backend!r}.")
        weights = options.move_weights
        if options.collapsed and options.structure_weights is None:
            weights = {k: w for k, w in weights.items() if k in MOVES}  # no library move
        if amortized.proposal is not None and options.structure_weights is None:
            weights["neural"] = amortized.neural_weight
            weights["neural_edit"] = amortized.edit_weight
        program.check_structure_weights(
            weights, MOVES if options.collapsed else program.STRUCTURE_MOVES)
        self.target = target
        self.options = options
        self.backend = backend
        self.sites = list(target.latents.values())
        if options.blocks is not None:
            make_plan(target.latents, options.blocks)  # a plan by hand is checked first
        self.noise = self._noise(target, options.blocks)
        """Noise site → the observed Normal sites whose scale it is (its residuals)."""
        self.plan = make_plan(target.latents, options.blocks, self.noise)
        block = NutsBlock if backend == "pyro" else NumpyroNutsBlock
        self.workspace = Workspace(options.cache_size, self.noise)
        self.context = Context(target, options, nuts, self.workspace,
                               tuple(block(target, sites, nuts)
                                     for kind, sites in self.plan if kind == "NUTS"),
                               MoveChoice.of(weights), amortized)

    @staticmethod
    def _noise(target: Target, blocks: Any) -> dict[str, list[str]]:
        """The Noise blocks' sites and their likelihoods: by default every continuous site
        that is the scale of an observed Normal site (read at the target's example
        values); with a plan by hand, its Noise blocks' sites, which must be such scales."""
        if blocks is None:
            wanted = [s for s in target.latents.values() if s.kind == CONTINUOUS]
        else:
            by_hand = [n for kind, names in blocks if kind == "Noise"
                       for n in ([names] if isinstance(names, str) else names)]
            wanted = [target.latents[n] for n in by_hand
                      if n in target.latents and target.latents[n].kind == CONTINUOUS]
        found = {s.name: noise.noise_sites(target, target.example, s) for s in wanted}
        if blocks is not None:
            for name, sites in found.items():
                if not sites:
                    raise PPLError(f"Block Noise cannot update {name!r}: it must be a scalar "
                                   "positive site that is the scale of an observed Normal "
                                   "site (Normal(loc, sigma) or Normal(loc, sigma + c)); use "
                                   "NUTS or RW for it.")
        return {name: sites for name, sites in found.items() if sites}

    def log_parts(self, values: Mapping[str, Any], build: bool = True
                  ) -> tuple[float, float]:
        """(Σ latent log densities, untempered log likelihood) at ``values``, from the first
        program site's incremental likelihood when it has one (numpy, no model run: every
        term outside that site's Markov blanket is in the view's rest), else from a scoring
        run (:meth:`inference.target.Target.log_parts`). What tempering swaps and the search
        phase's cold log joint read. With ``build=False``, a view that would take a model
        run to build is not built (the scoring run is cheaper)."""
        site = next((s for s in self.sites if s.kind == PROGRAM), None)
        if site is not None and not self.collapsed:
            view = self.workspace.view(self.target, site, values, build)
            if view is not None:
                return view.parts(values[site.name])
        return self.target.log_parts(values)

    def log_joint_at(self, values: Mapping[str, Any], beta: float, build: bool = True
                     ) -> float:
        """log prior + ``beta`` · log likelihood at ``values`` (:meth:`log_parts`)."""
        latent, lik = self.log_parts(values, build)
        if latent == -math.inf or lik == -math.inf:
            return -math.inf
        return latent + lik if beta == 1.0 else latent + beta * lik

    @property
    def collapsed(self) -> bool:
        """Whether program sites run the collapsed mode (an approximation)."""
        return self.options.collapsed

    def describe(self) -> str:
        """The plan in one line, e.g. ``Gibbs: ProgramMH[f] + NUTS[sigma]``."""
        parts = [f"{kind}[{', '.join(s.name for s in sites)}]"
                 + (f" ({collapsed.APPROXIMATION})"
                    if self.collapsed and kind == "ProgramMH" else "")
                 for kind, sites in self.plan]
        suffix = (" (NumPyro's NUTS)" if self.context.nuts_blocks and self.backend == "numpyro"
                  else "")
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
        for b in self.sites:
            step[b.name] = 0.5 if b.kind == CONTINUOUS else 1.0
            if b.kind == PROGRAM:
                step[f"{b.name}.rw"] = 0.5
                step[f"{b.name}.mala"] = 0.1
        values = self.draw_start(rng, init_values, check=True)
        best = GibbsState(values, self.target.log_joint(values), step, 0)
        if self.collapsed:
            self.workspace.require_views(self.target, best.values)
        kernels = tuple(block.init(best.values, num_warmup, int(rng.integers(2**63)))
                        for block in self.context.nuts_blocks)
        return best._replace(nuts=kernels)

    def restart(self, rng: np.random.Generator, state: GibbsState, values: dict[str, Any],
                num_warmup: int) -> GibbsState:
        """``state`` moved to ``values`` with its NUTS blocks set up again to adapt during
        the next ``num_warmup`` steps (step sizes kept): how an exact chain starts from
        what the search phase found."""
        kernels = tuple(block.init(values, num_warmup, int(rng.integers(2**63)))
                        for block in self.context.nuts_blocks)
        if self.collapsed:
            self.workspace.require_views(self.target, values)
        return state._replace(values=values, log_joint=self.target.log_joint(values),
                              nuts=kernels)

    def draw_start(self, rng: np.random.Generator,
                   init_values: Mapping[str, Any] | None = None, check: bool = False
                   ) -> dict[str, Any]:
        """The values of :meth:`init`'s start: the best (highest log joint) of
        ``init_candidates`` valid draws, ``init_values`` held; with ``check``, the target's
        scoring fast path is verified on the first valid draws. Also a fresh restart of the
        search phase (:mod:`inference.mcmc.search`)."""
        best: dict[str, Any] | None = None
        best_lj = -math.inf
        fails = 0
        found: list[dict[str, Any]] = []
        while len(found) < self.options.init_candidates and fails < INIT_TRIES:
            values = {b.name: continuous.draw_initial(rng, b) for b in self.sites}
            values.update(dict(init_values or {}))
            # a restart scores its candidates by the views when that needs no model run
            lj = self.target.log_joint(values) if check else \
                self.log_joint_at(values, self.target.beta, build=False)
            if not math.isfinite(lj):
                fails += 1
                continue
            fails = 0
            found.append(values)
            if check and len(found) == FAST_CHECKS:
                self.target.check_fast(found)
            if best is None or lj > best_lj:
                best, best_lj = values, lj
            if init_values is not None and len(init_values) == len(self.sites):
                break
        if check and found and len(found) < FAST_CHECKS:
            self.target.check_fast(found)
        if best is None:
            names = ", ".join(b.name for b in self.sites)
            raise InitializationError(
                f"No valid initial state in {INIT_TRIES} tries (every draw gave log density "
                f"-inf or nan) for sites: {names}. Check that the data can be explained at "
                "all, or pass init_values.")
        return best

    # ------------------------------------------------------------------ step
    def step(self, rng: np.random.Generator, state: GibbsState, adapt: bool = False
             ) -> tuple[GibbsState, GibbsInfo]:
        """One sweep over the plan's blocks; returns the new state and what happened."""
        state = state._replace(step_size=dict(state.step_size), iteration=state.iteration + 1)
        infos: list[BlockInfo] = []
        nuts_index = 0
        for kind, sites in self.plan:
            if kind == "NUTS":
                state, info = nuts.step(rng, self.context, state, nuts_index, adapt)
                nuts_index += 1
                infos.append(info)
                continue
            if kind == "Noise":
                for site in sites:
                    state, info = noise.step(rng, self.context, state, site,
                                             self.noise[site.name])
                    infos.append(info)
                continue
            block = collapsed.step if kind == "ProgramMH" and self.collapsed \
                else BLOCK_STEPS[kind]
            for site in sites:
                state, info = block(rng, self.context, state, site, adapt)
                infos.append(info)
        alphas = [a for info in infos for a in info.alphas]
        first = next((info for info in infos if info.move), BlockInfo(()))
        rate = float(np.mean(alphas)) if alphas else 1.0
        return state, GibbsInfo(rate, first.move, first.accepted,
                                sum(info.invalid for info in infos),
                                any(info.diverging for info in infos))
