"""The one home of every run option: its default, its meaning and its validation.

A run is described by one :class:`RunConfig`: the options every method shares (method,
backend, draws, chains, seed, ...) plus one small record per method family:
:class:`McmcOptions` (the Gibbs kernel of ``"mcmc"``/``"auto"``), :class:`NutsOptions`
(``"nuts"`` and the Gibbs plan's NUTS blocks), :class:`ImportanceOptions`,
:class:`AmortizedOptions` and :class:`SviOptions` (``"svi"``). ``infer``,
``query`` and ``compare`` take the same flat keyword options and build the record with
:meth:`RunConfig.build`; the driver, the kernels and the NUTS bridges read the record, so
no option is copied by hand between layers. "Where is the default of X?": here.

Examples
--------
>>> cfg = RunConfig.build(method="mcmc", num_chains=2, program_moves=3)
>>> cfg.num_chains, cfg.mcmc.program_moves, cfg.nuts.target_accept_prob
(2, 3, 0.8)
>>> cfg.warmup  # num_warmup defaults to num_samples
1000
>>> RunConfig.build(seed=-1)
Traceback (most recent call last):
...
ppl.errors.PPLError: seed must be an integer >= 0; got -1.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ppl.backend import BACKENDS
from ppl.errors import PPLError

__all__ = ["BACKENDS", "CACHE_SIZE", "CHECKPOINT_METHODS", "DEFAULT_STRUCTURE_WEIGHTS",
           "ELBOS", "ESTIMATOR_CHAINS", "GUIDES", "METHODS",
           "AmortizedOptions", "ImportanceOptions", "McmcOptions", "NutsOptions", "RunConfig",
           "SviOptions", "check_bool", "check_int", "option_names"]

METHODS = ("auto", "mcmc", "enumerate", "importance", "nuts", "amortized", "svi")
"""Every value of ``method``."""

CHECKPOINT_METHODS = ("mcmc", "auto", "nuts", "svi")
"""The methods whose runs ``checkpoint=`` saves and :func:`inference.resume` continues."""

DEFAULT_STRUCTURE_WEIGHTS: Mapping[str, float] = {"regenerate": 0.3, "insert_delete": 0.1,
                                                  "relabel": 0.2, "library": 0.2,
                                                  "assemble": 0.2}
"""Probabilities of the structure moves when ``structure_weights`` is not given (the
assemble move joined on 2026-12-07: docs/decisions.md, "The assemble move")."""

CACHE_SIZE = 4096
"""Default capacity of each LRU cache of the Gibbs kernel and of the Laplace fits."""

ESTIMATOR_CHAINS = 2
"""Chains of :class:`inference.SymbolicRegressor` by default (fewer than ``infer``'s 4: its
chains run one after another, each for its ``max_time``)."""

GUIDES = ("normal", "mvn", "lowrank", "delta")
"""Guide names of ``method="svi"``: the backends' ``AutoNormal``,
``AutoMultivariateNormal``, ``AutoLowRankMultivariateNormal`` and ``AutoDelta``."""

ELBOS = ("trace", "meanfield")
"""ELBO names of ``method="svi"``: ``Trace_ELBO`` and ``TraceMeanField_ELBO``."""


def check_int(name: str, value: Any, low: int, none_ok: bool = False) -> None:
    """Raise a PPLError unless ``value`` is an integer >= ``low`` (or None if allowed)."""
    if value is None and none_ok:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise PPLError(f"{name} must be an integer >= {low}; got {value!r}.")


def check_bool(name: str, value: Any) -> None:
    """Raise a PPLError unless ``value`` is True or False."""
    if not isinstance(value, bool):
        raise PPLError(f"{name} must be True or False; got {value!r}.")


@dataclass(frozen=True)
class NutsOptions:
    """NUTS options: of ``method="nuts"`` and of the Gibbs plan's NUTS blocks.

    Examples
    --------
    >>> NutsOptions(dense_mass=True).max_tree_depth
    10
    """

    target_accept_prob: float = 0.8
    """Step-size adaptation target (Stan's ``adapt_delta``), in (0, 1)."""
    max_tree_depth: int = 10
    """At most 2**max_tree_depth − 1 leapfrog steps per transition."""
    dense_mass: bool = False
    """Adapt a dense (full covariance) mass matrix instead of a diagonal one."""

    def __post_init__(self) -> None:
        p = self.target_accept_prob
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p < 1:
            raise PPLError(f"target_accept_prob must be a probability in (0, 1); got {p!r}.")
        d = self.max_tree_depth
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or not 1 <= d <= 30:
            raise PPLError(f"max_tree_depth must be an integer in [1, 30]; got {d!r}.")
        check_bool("dense_mass", self.dense_mass)


@dataclass(frozen=True)
class McmcOptions:
    """Options of the Metropolis-within-Gibbs kernel (``method="mcmc"`` or ``"auto"``).

    Examples
    --------
    >>> McmcOptions().program_moves
    10
    >>> McmcOptions(program_moves=0)
    Traceback (most recent call last):
    ...
    ppl.errors.PPLError: program_moves must be an integer >= 1; got 0.
    """

    program_moves: int = 10
    """Structure moves per program site per sweep (each scored incrementally when the
    model allows it: a program evaluation, not a model run)."""
    structure_weights: Mapping[str, float] | None = None
    """Probabilities of the structure moves (normalised); None:
    :data:`DEFAULT_STRUCTURE_WEIGHTS`."""
    init_candidates: int = 100
    """Each chain starts at the best of this many valid random initial states."""
    num_rungs: int = 1
    """Parallel tempering rungs on the likelihood (1: no tempering)."""
    beta_min: float = 0.05
    """The hottest rung's β on the geometric ladder β_k = beta_min^(k/(K−1))."""
    search_share: float = 0.5
    """With ``max_time`` and a program site: the share of the budget spent in the search
    phase (:mod:`inference.mcmc.search`: a tempered population with restarts, nothing
    kept) before the exact chain at β = 1 starts from the best state found; 0 turns it
    off."""
    search_rungs: int = 4
    """Walkers of the search phase, on the ladder β_k = search_beta_min^(k/(W−1))."""
    search_beta_min: float = 0.001
    """The hottest walker's β in the search phase."""
    search_patience: int = 50
    """Sweeps a search walker may go without improving its best before it restarts."""
    search_joint_noise: float = 0.5
    """``joint_noise`` of the search phase's walkers (the exact chain keeps
    ``joint_noise``): there a walker that commits early to a wrong law is what restarts
    are for."""
    search_descent: bool = True
    """The search tries the two-edit library descent from each law that becomes its best
    state (:func:`inference.mcmc.descent.descend`), and the β = 1 walker moves to what
    it finds: near-laws two coupled edits from the law (drop an offset and add a rate),
    which no single move leaves uphill, are left that way."""
    search_pool: bool = True
    """With several chains: the chains' searches share their best states before the exact
    phases start; a chain whose best log joint is δ below the best chain's keeps its own
    start with probability e^(−δ), else starts from that chain's (a start never changes
    the stationary distribution; :func:`inference.mcmc.driver.pool_start`)."""
    blocks: Sequence[tuple[str, Any]] | None = None
    """The Gibbs plan by hand, e.g. ``[("ProgramMH", "f"), ("RW", ["sigma"])]``."""
    collapsed: bool = False
    """Score structures by Laplace evidence (an approximation, named as such)."""
    refit: float = 0.5
    """Probability that a structure move redraws the constants from their Laplace fit,
    and that a constant move is a Laplace independence move instead of a random walk."""
    cache_size: int = CACHE_SIZE
    """Capacity of each LRU cache of the kernel; 0 turns caching off (same chain)."""
    library_wrap: float = 0.0
    """Share of the library move's proposal given to wrapped entries g(U): a unary
    operator with an inverse around a library entry U fitted to g⁻¹ of the node's targets
    (exp(c·log x) in one move; :mod:`inference.mcmc.blocks.semantic`); 0: none (the
    default: docs/decisions.md, "Wrapped library entries")."""
    library_affine: float = 0.0
    """Share of the library move's proposal given to affine entries c₁ + c₂ · U: a
    constant-free library entry U with an offset and a scale, both fitted by least squares
    to the node's targets (:mod:`inference.mcmc.affine`); 0: none."""
    library_root: float = 0.0
    """Share of the library and assemble moves' node picks given to the root (the rest
    uniform over the nodes): whole programs proposed from the data, the node's pick in the
    Hastings ratio; 0: uniform (single-try moves; ``library_tries`` picks uniformly)."""
    library_tries: int = 1
    """Tries of the library move: K subtrees drawn at once, scored as one batch, one kept
    by multiple-try Metropolis (:mod:`inference.mcmc.blocks.tries`); 1: the single-try
    move."""
    joint_noise: float = 0.0
    """Probability that a structure move also redraws a learned noise scale from the new
    program's residuals (:mod:`inference.mcmc.blocks.joint`; plain tree, library and grow
    moves, where the program's likelihood is linked to the scale); 0: never (the default:
    docs/decisions.md, "Two exact moves for the search")."""

    @property
    def move_weights(self) -> dict[str, float]:
        """``structure_weights``, or the defaults when not given."""
        return dict(self.structure_weights or DEFAULT_STRUCTURE_WEIGHTS)

    def __post_init__(self) -> None:
        check_int("program_moves", self.program_moves, 1)
        check_int("init_candidates", self.init_candidates, 1)
        check_int("num_rungs", self.num_rungs, 1)
        check_int("cache_size", self.cache_size, 0)
        check_int("search_rungs", self.search_rungs, 1)
        check_int("search_patience", self.search_patience, 1)
        check_int("library_tries", self.library_tries, 1)
        share, b_min = self.search_share, self.search_beta_min
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share < 1:
            raise PPLError(f"search_share must be in [0, 1); got {share!r}.")
        if isinstance(b_min, bool) or not isinstance(b_min, (int, float)) or not 0 < b_min < 1:
            raise PPLError(f"search_beta_min must be in (0, 1); got {b_min!r}.")
        check_bool("collapsed", self.collapsed)
        check_bool("search_pool", self.search_pool)
        check_bool("search_descent", self.search_descent)
        b = self.beta_min
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not 0 < b < 1:
            raise PPLError(f"beta_min must be in (0, 1); got {b!r}.")
        for name in ("refit", "joint_noise", "search_joint_noise"):
            r = getattr(self, name)
            if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 <= r <= 1:
                raise PPLError(f"{name} must be a probability in [0, 1]; got {r!r}.")
        for name in ("library_wrap", "library_affine"):
            w = getattr(self, name)
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 <= w <= 0.9:
                raise PPLError(f"{name} must be a share in [0, 0.9] (the prior keeps 0.1 of "
                               f"the library move's proposal); got {w!r}.")
        r = self.library_root
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 <= r < 1:
            raise PPLError(f"library_root must be a share in [0, 1); got {r!r}.")
        if self.library_wrap + self.library_affine > 0.9:
            raise PPLError(f"library_wrap + library_affine must be at most 0.9 (the prior "
                           f"keeps 0.1 of the library move's proposal); got "
                           f"{self.library_wrap!r} + {self.library_affine!r}.")
        if self.collapsed and self.num_rungs != 1:
            raise PPLError(f"collapsed=True is a mode with num_rungs=1; got num_rungs="
                           f"{self.num_rungs!r}.")


@dataclass(frozen=True)
class ImportanceOptions:
    """Options of ``method="importance"``.

    Examples
    --------
    >>> ImportanceOptions(num_particles=500).num_particles
    500
    """

    num_particles: int | None = None
    """Particles drawn from the prior; None: 10 × num_samples × num_chains."""

    def __post_init__(self) -> None:
        check_int("num_particles", self.num_particles, 1, none_ok=True)


@dataclass(frozen=True)
class AmortizedOptions:
    """A trained proposal and how it is used: ``method="amortized"`` (importance sampling
    from it) and, with ``method="mcmc"``, the neural independence move of its program site.

    Examples
    --------
    >>> AmortizedOptions().prior_weight, AmortizedOptions().neural_weight
    (0.05, 0.2)
    >>> AmortizedOptions().edit_weight
    0.2
    """

    proposal: Any = None
    """An :class:`inference.amortized.Proposal` (trained or not), or None."""
    prior_weight: float = 0.05
    """The prior's share w of the proposal q_mix = (1 − w) q_θ + w π₀ (at least 0.05)."""
    neural_weight: float = 0.2
    """With ``method="mcmc"`` and a proposal, the weight of the "neural" structure move
    added to the default structure weights (ignored when ``structure_weights`` is given)."""
    edit_weight: float = 0.2
    """Likewise, the weight of the "neural_edit" structure move (a subtree redrawn by the
    network)."""

    def __post_init__(self) -> None:
        w = self.prior_weight
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0.05 <= w <= 1:
            raise PPLError(f"prior_weight must be in [0.05, 1] (the prior's share keeps the "
                           f"proposal of full support); got {w!r}.")
        for name in ("neural_weight", "edit_weight"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
                raise PPLError(f"{name} must be a number >= 0; got {v!r}.")
        if self.proposal is not None and not all(
                hasattr(self.proposal, a) for a in ("site", "prior", "sample", "log_prob")):
            raise PPLError(f"proposal must be an inference.amortized.Proposal (from "
                           f"train_proposal or load_proposal); got "
                           f"{type(self.proposal).__name__}.")


@dataclass(frozen=True)
class SviOptions:
    """Options of ``method="svi"``: stochastic variational inference with the backend's own
    SVI, autoguides, ELBOs and clipped Adam (:mod:`inference.vi`).

    Examples
    --------
    >>> SviOptions().guide, SviOptions().elbo, SviOptions().num_steps
    ('normal', 'trace', 3000)
    >>> SviOptions(guide="gaussian")
    Traceback (most recent call last):
    ...
    ppl.errors.PPLError: Unknown guide 'gaussian'; expected one of ('normal', 'mvn',
    'lowrank', 'delta') or a callable guide(*args, **kwargs) written with ppl.sample and
    ppl.param.
    """

    guide: Any = "normal"
    """One of :data:`GUIDES`, or a guide callable taking the model's arguments."""
    elbo: str = "trace"
    """One of :data:`ELBOS`."""
    num_steps: int = 3000
    """Optimisation steps at most (fewer when the ELBO converges or ``max_time`` ends)."""
    learning_rate: float = 0.02
    """Adam's initial step size."""
    lr_decay: float = 0.1
    """The step size decays exponentially to ``learning_rate × lr_decay`` at
    ``num_steps``."""
    num_particles: int | None = None
    """Particles of the ELBO estimate per step; None: 1. (The same flat option is
    ``method="importance"``'s particle count.)"""
    tolerance: float = 1e-3
    """Stop when the relative change of the smoothed ELBO (the mean over a window of steps)
    between two windows falls below this; 0: run every step."""
    psis: bool = False
    """Resample the guide's draws by their Pareto-smoothed importance weights."""

    def __post_init__(self) -> None:
        g = self.guide
        if isinstance(g, str):
            if g not in GUIDES:
                raise PPLError(f"Unknown guide {g!r}; expected one of {GUIDES} or a callable "
                               "guide(*args, **kwargs) written with ppl.sample and ppl.param.")
        elif not callable(g):
            raise PPLError(f"guide must be one of {GUIDES} or a callable guide(*args, "
                           f"**kwargs); got {type(g).__name__} {g!r}.")
        if self.elbo not in ELBOS:
            raise PPLError(f"Unknown elbo {self.elbo!r}; expected one of {ELBOS}.")
        check_int("num_steps", self.num_steps, 1)
        check_int("num_particles", self.num_particles, 1, none_ok=True)
        for name, low, high in (("learning_rate", 0.0, math.inf), ("lr_decay", 0.0, 1.0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not low < v <= high:
                raise PPLError(f"{name} must be a number in ({low}, {high}]; got {v!r}.")
        t = self.tolerance
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t < 1:
            raise PPLError(f"tolerance must be a number in [0, 1); got {t!r}.")
        check_bool("psis", self.psis)
        if self.elbo == "meanfield" and g in ("mvn", "lowrank"):
            raise PPLError(f"elbo='meanfield' assumes a guide that factorises over the "
                           f"model's sites, and guide={g!r} couples them; use elbo='trace'.")
        if self.psis and g == "delta":
            raise PPLError("psis=True reweights draws of the guide, and guide='delta' (a "
                           "point estimate) has one point; use guide='normal' or 'mvn'.")

    @property
    def guide_name(self) -> str:
        """The guide's name: one of :data:`GUIDES`, or the callable's ``__name__``.

        Examples
        --------
        >>> def my_guide(y=None):
        ...     pass
        >>> SviOptions().guide_name, SviOptions(guide=my_guide).guide_name
        ('normal', 'my_guide')
        """
        g = self.guide
        return g if isinstance(g, str) else str(getattr(g, "__name__", type(g).__name__))


_RECORDS: dict[str, type] = {"mcmc": McmcOptions, "nuts": NutsOptions,
                             "importance": ImportanceOptions, "amortized": AmortizedOptions,
                             "svi": SviOptions}


@dataclass(frozen=True)
class RunConfig:
    """Every option of one run. Build it with :meth:`build` from flat keyword options.

    Examples
    --------
    >>> cfg = RunConfig.build(method="nuts", dense_mass=True, num_chains=1)
    >>> cfg.method, cfg.nuts.dense_mass, cfg.backend
    ('nuts', True, 'pyro')
    """

    method: str = "mcmc"
    """One of :data:`METHODS`."""
    backend: str = "pyro"
    """Whose NUTS runs ("pyro" or "numpyro"): the whole model under ``"nuts"``, the NUTS
    blocks under ``"mcmc"``/``"auto"``; whose SVI under ``"svi"``."""
    num_samples: int = 1000
    """Draws kept per chain."""
    num_warmup: int | None = None
    """Adaptive sweeps before the draws; None: :attr:`warmup` decides."""
    num_chains: int = 4
    """Independent chains."""
    thin: int = 1
    """Sweeps per kept draw."""
    seed: int = 0
    """Master seed: the same seed gives bitwise-identical draws."""
    progress: bool = True
    """tqdm bars per chain (only on a terminal, never with ``CI`` set)."""
    chain_method: str = "parallel"
    """Chains in processes ("parallel") or one after another ("sequential")."""
    executor: Executor | None = None
    """A process-based executor for the chains (overrides ``chain_method``)."""
    init_values: Mapping[str, Any] | None = None
    """Initial values of some or all latent sites."""
    max_time: float | None = None
    """Seconds per chain (``"svi"``: of the optimisation); a run stops cleanly at the
    budget (with a warning)."""
    checkpoint: str | None = None
    """A file to checkpoint the run to (:mod:`inference.checkpoint`; SVI:
    :mod:`inference.vi.checkpoint`; the methods of :data:`CHECKPOINT_METHODS`); None:
    none."""
    checkpoint_every: int = 100
    """Between two checkpoints: sweeps of a chain (``"mcmc"``), NUTS transitions
    (``"nuts"``; on NumPyro the warmup is one segment), optimisation steps (``"svi"``)."""
    mcmc: McmcOptions = field(default_factory=McmcOptions)
    """The Gibbs kernel's options."""
    nuts: NutsOptions = field(default_factory=NutsOptions)
    """NUTS options."""
    importance: ImportanceOptions = field(default_factory=ImportanceOptions)
    """Importance sampling's options."""
    amortized: AmortizedOptions = field(default_factory=AmortizedOptions)
    """A trained proposal and how it is used."""
    svi: SviOptions = field(default_factory=SviOptions)
    """SVI's options."""

    SHARED: ClassVar[tuple[str, ...]] = (
        "method", "backend", "num_samples", "num_warmup", "num_chains", "thin", "seed",
        "progress", "chain_method", "executor", "init_values", "max_time", "checkpoint",
        "checkpoint_every")

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise PPLError(f"Unknown method {self.method!r}; expected one of {METHODS}.")
        if self.backend not in BACKENDS or (self.backend != "pyro"
                                            and self.method in ("enumerate", "importance")):
            raise PPLError(f"backend must be one of {BACKENDS} ('numpyro' with method='nuts', "
                           f"'svi', 'mcmc' or 'auto'); got backend={self.backend!r} with "
                           f"method={self.method!r}.")
        check_int("num_samples", self.num_samples, 1)
        check_int("num_warmup", self.num_warmup, 0, none_ok=True)
        check_int("num_chains", self.num_chains, 1)
        check_int("thin", self.thin, 1)
        check_int("seed", self.seed, 0)
        if self.chain_method not in ("parallel", "sequential"):
            raise PPLError(f"chain_method must be 'parallel' or 'sequential'; got "
                           f"{self.chain_method!r}.")
        t = self.max_time
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float))
                              or not t > 0):
            raise PPLError(f"max_time must be a positive number of seconds; got {t!r}.")
        check_int("checkpoint_every", self.checkpoint_every, 1)
        if self.checkpoint is not None:
            if not isinstance(self.checkpoint, (str, os.PathLike)):
                raise PPLError(f"checkpoint must be a file path; got "
                               f"{type(self.checkpoint).__name__}.")
            if self.method not in CHECKPOINT_METHODS:
                raise PPLError(f"checkpoint= is a feature of method "
                               f"{' / '.join(map(repr, CHECKPOINT_METHODS))}; not yet of "
                               f"method={self.method!r}.")
            if self.mcmc.collapsed:
                raise PPLError("checkpoint= does not work with collapsed=True yet.")
        if self.init_values is not None and not isinstance(self.init_values, Mapping):
            raise PPLError(f"init_values must map site names to values; got "
                           f"{type(self.init_values).__name__}.")
        if self.mcmc.collapsed and self.method not in ("mcmc", "auto"):
            raise PPLError(f"collapsed=True is a mode of method='mcmc' with num_rungs=1; got "
                           f"method={self.method!r}.")
        if self.method == "nuts" and (self.max_time is not None or self.mcmc.num_rungs != 1):
            raise PPLError("method='nuts' supports neither max_time nor num_rungs > 1.")
        if self.method == "amortized" and self.amortized.proposal is None:
            raise PPLError("method='amortized' needs proposal=, a trained proposal "
                           "(inference.amortized.train_proposal or load_proposal).")
        if self.amortized.proposal is not None and self.method not in (
                "amortized", "mcmc", "auto", "svi"):
            raise PPLError(f"proposal= is used by method='amortized', 'mcmc', 'auto' or "
                           f"'svi'; got method={self.method!r}.")
        if self.mcmc.collapsed and self.amortized.proposal is not None:
            raise PPLError("collapsed=True has no neural move: pass either collapsed=True or "
                           "proposal=, not both.")
        if self.method == "amortized" and self.backend != "pyro":
            raise PPLError("method='amortized' runs on backend='pyro'.")

    @property
    def show_progress(self) -> bool:
        """Whether to draw progress bars: asked for, on a terminal, and never under CI."""
        return bool(self.progress) and sys.stderr.isatty() and not os.environ.get("CI")

    @property
    def warmup(self) -> int:
        """The warmup sweeps: ``num_warmup``, by default ``num_samples``, at most 200 with a
        time budget (so that a large num_samples, meaning "until the budget", does not
        spend the budget on warmup)."""
        if self.num_warmup is not None:
            return int(self.num_warmup)
        return self.num_samples if self.max_time is None else min(self.num_samples, 200)

    @classmethod
    def build(cls, caller: str = "infer", **options: Any) -> RunConfig:
        """A validated RunConfig from flat keyword options (the names of
        :func:`option_names`); an unknown name is a PPLError naming it."""
        unknown = sorted(set(options) - set(option_names()))
        if unknown:
            raise PPLError(f"Unknown {caller} option {unknown[0]!r}; options are "
                           f"{sorted(option_names())}.")
        shared = {k: v for k, v in options.items() if k in cls.SHARED}
        records = {name: rec(**{k: v for k, v in options.items()
                                if k in _fields(rec)})
                   for name, rec in _RECORDS.items()}
        return cls(**shared, **records)

    def options(self) -> dict[str, Any]:
        """The flat keyword options that :meth:`build` turns back into this record."""
        out = {k: getattr(self, k) for k in self.SHARED}
        for name, rec in _RECORDS.items():
            record = getattr(self, name)
            out.update({f: getattr(record, f) for f in _fields(rec)})
        return out

    def replace(self, **options: Any) -> RunConfig:
        """This record with some flat options changed (validated again)."""
        return RunConfig.build(**{**self.options(), **options})


def _fields(record: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(record))


def option_names() -> tuple[str, ...]:
    """Every flat keyword option of ``infer``, ``query`` and ``compare``.

    Examples
    --------
    >>> "program_moves" in option_names() and "seed" in option_names()
    True
    """
    names = list(RunConfig.SHARED)
    for rec in _RECORDS.values():
        names += _fields(rec)
    return tuple(dict.fromkeys(names))  # num_particles: importance's and SVI's
