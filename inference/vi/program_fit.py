"""``method="svi"`` on models with program sites: score-function gradients of the ELBO.

The guide is q(φ, c, θ) = Π_sites q(φ) q(c | structure(φ)) · Π_continuous q(θ)
(:mod:`inference.vi.programs`). Each step draws K particles (``num_particles``, default
:data:`PARTICLES`) and scores each by the engine's own target (:class:`~inference.target.
Target`: the model's log joint, its fast path when verified), giving

    f_k = log p(φ_k, c_k, θ_k, data) − log q(φ_k, c_k, θ_k).

The gradient of the ELBO E_q[f] is estimated by

    ĝ = (1/K) Σ_k [ (f_k − b_k) ∇ log q(φ_k)  +  ∇_reparam f_k ],   b_k = (1/(K−1)) Σ_{j≠k} f_j,

the score-function (REINFORCE) term for the discrete tree choices, with the leave-one-out
mean of the other particles as baseline (unbiased: b_k does not depend on φ_k), plus the
reparameterised gradient for the constants and the continuous sites (their draws are
loc + scale · ε). :func:`surrogate` is the scalar whose gradient is ĝ. The optimiser is
Pyro's ``ClippedAdam`` with the continuous path's decaying step size; the loop (windows,
convergence, ``max_time``, the tqdm bar) is :func:`inference.vi.fit.train`.

An invalid particle (log p = −inf or nan: an undefined program) makes the ELBO −inf, and
every tree has mass under q; it counts as :data:`INVALID_PENALTY` nats below the worst
valid particle of its step, which moves q away from it; ``attrs["invalid"]`` counts them.

Examples
--------
>>> import torch
>>> f = torch.tensor([1.0, 2.0, 3.0])
>>> log_q = torch.zeros(3, requires_grad=True)
>>> surrogate(f, log_q).backward()
>>> log_q.grad          # (f_k − mean of the others) / K: −1.5, 0, 1.5 over 3
tensor([-0.5000,  0.0000,  0.5000])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping
from typing import Any, NamedTuple

import numpy as np
import torch
from pyro.optim.clipped_adam import ClippedAdam

from inference.checkpoint import CheckpointError
from inference.config import CACHE_SIZE, RunConfig
from inference.mcmc.blocks.base import Workspace
from inference.mcmc.laplace import ConstantFitter
from inference.target import Target
from inference.vi.checkpoint import Checkpoints
from inference.vi.fit import Draws, Fit, train
from inference.vi.programs import ConstantGuides, Draft, ProgramGuide, SiteGuide, check_prior
from ppl.errors import PPLError
from ppl.evaluate import BoundProgram
from ppl.trace import CONTINUOUS, PROGRAM, seeded

__all__ = ["CLIP_NORM", "INIT_DRAWS", "INIT_PSEUDO_COUNT", "INVALID_PENALTY", "PARTICLES",
           "Fitted", "Guides", "Particle", "Stepper", "check_options", "fit_guides", "run",
           "surrogate"]

PARTICLES = 10
"""Particles per step when ``num_particles`` is not given (the baseline needs ≥ 2)."""
INIT_DRAWS = 1000
"""Draws of a trained proposal that start the program guide (``proposal=``)."""
INIT_PSEUDO_COUNT = 50.0
"""Weight of the untrained guide (the prior) against those draws, in draws: every context
keeps the prior's choices in the mix, so no tree loses its mass."""
INVALID_PENALTY = 10.0
"""An invalid particle's f: this many nats below the worst valid one of its step."""
CLIP_NORM = 10.0
"""ClippedAdam's bound on each gradient element."""


def surrogate(f: torch.Tensor, log_q_programs: torch.Tensor) -> torch.Tensor:
    """The scalar whose gradient is the estimator ĝ of the module docstring: ``f`` (K,)
    carries the reparameterised graph (its log q of the trees detached), ``log_q_programs``
    (K,) the graph of log q(φ_k) in the production logits."""
    fd = f.detach()
    baseline = (fd.sum() - fd) / (len(fd) - 1)
    return ((fd - baseline) * log_q_programs).mean() + f.mean()


def check_options(target: Target, cfg: RunConfig) -> None:
    """Refuse what the program path cannot do, naming the site or the option."""
    programs = [n for n, s in target.latents.items() if s.kind == PROGRAM]
    for name in programs:
        check_prior(name, target.latents[name].fn)
    opts = cfg.svi
    listed = ", ".join(repr(n) for n in programs)
    if opts.guide != "normal":
        raise PPLError(f"With program site {listed}, method='svi' fits its own guide (a "
                       "grammar guide for the program, a mean-field Normal for each "
                       f"continuous site); guide={opts.guide_name!r} is not available. Leave "
                       "guide at 'normal'.")
    if opts.elbo != "trace":
        raise PPLError(f"With program site {listed}, method='svi' estimates the ELBO by "
                       f"score-function gradients; elbo={opts.elbo!r} is not available. Leave "
                       "elbo at 'trace'.")
    if opts.num_particles == 1:
        raise PPLError(f"With program site {listed}, method='svi' needs num_particles >= 2 "
                       "(the baseline of each particle is the mean of the others); got 1. "
                       f"Default: {PARTICLES}.")
    bad = sorted(set(cfg.init_values or {}) & set(programs))
    if bad:
        raise PPLError(f"init_values gives program site {bad[0]!r}: the program guide starts "
                       "at the prior (init_values sets continuous sites only).")


class Guides:
    """Every guide of a model: a :class:`ProgramGuide` and :class:`ConstantGuides` per
    program site, a :class:`SiteGuide` per continuous site, and the optimiser over all of
    them (constant guides join it when first created)."""

    def __init__(self, target: Target, cfg: RunConfig) -> None:
        init = dict(cfg.init_values or {})
        self.programs: dict[str, ProgramGuide] = {}
        self.constants: dict[str, ConstantGuides] = {}
        self.continuous: dict[str, SiteGuide] = {}
        for name, site in target.latents.items():
            if site.kind == PROGRAM:
                self.programs[name] = ProgramGuide(site.fn)
                self.constants[name] = ConstantGuides(site.fn, on_new=self._add)
            elif site.kind == CONTINUOUS:
                self.continuous[name] = SiteGuide(site.fn, site.shape, init.get(name))
        self.initialised = self._from_proposal(target, cfg)
        """How the program guides started: "prior", or the proposal's draws used."""
        params = [p for g in self.programs.values() for p in g.parameters()]
        params += [p for g in self.continuous.values() for p in g.parameters()]
        opts = cfg.svi
        self.optim = ClippedAdam(params, lr=opts.learning_rate, clip_norm=CLIP_NORM,
                                 lrd=opts.lr_decay ** (1.0 / opts.num_steps))

    def _from_proposal(self, target: Target, cfg: RunConfig) -> str:
        """With ``proposal=`` (a trained amortized proposal), start its site's guide at
        :data:`INIT_DRAWS` draws of the proposal on the model's data (mixed with the prior
        as every use of a network is: ``prior_weight``), smoothed by
        :data:`INIT_PSEUDO_COUNT` toward the prior."""
        opts = cfg.amortized
        if opts.proposal is None:
            return "prior"
        from inference.amortized.mixture import MixedProposal
        from inference.api import check_proposal  # api imports this package

        site = check_proposal(opts.proposal, target)
        mixed = MixedProposal.for_model(opts.proposal, target.args, target.kwargs,
                                        {**target.observed, **target.given_obs},
                                        opts.prior_weight)
        rng = np.random.default_rng(cfg.seed)
        draws = [mixed.sample(rng)[0] for _ in range(INIT_DRAWS)]
        used = self.programs[site.name].init_from(draws, INIT_PSEUDO_COUNT)
        return f"proposal ({used} draws)"

    def _add(self, params: list[torch.Tensor]) -> None:
        self.optim.add_param_group({"params": params,
                                    "lr": self.optim.param_groups[0]["lr"]})

    def fit_constants(self, target: Target, state: Mapping[str, Any]) -> None:
        """Initialise each new structure's constant guide at the Laplace fit of its
        constants (N(c*, H⁻¹): the mean and marginal sds), on the incremental likelihood
        of the model at ``state`` (the other sites' values), when the model has one."""
        workspace = Workspace(CACHE_SIZE)
        fitter = ConstantFitter()
        for name, book in self.constants.items():
            view = workspace.view(target, target.latents[name], state)
            if view is None:
                continue

            def init(program: Any, view: Any = view) -> tuple[np.ndarray, np.ndarray] | None:
                got = fitter.fit(program, view)
                if got is None:
                    return None
                cov = np.linalg.inv(got.chol @ got.chol.T)
                loc, scale = np.empty(len(got.mean)), np.empty(len(got.mean))
                loc[got.perm] = got.mean
                scale[got.perm] = np.sqrt(np.diag(cov))
                ok = np.all(np.isfinite(loc)) and np.all(np.isfinite(scale) & (scale > 0))
                return (loc, scale) if ok else None

            book.init_fn = init

    def state_dict(self) -> dict[str, Any]:
        """Every guide's parameters (copies) and the optimiser's state: the program guides'
        logits, each structure's constant guide in the order the optimiser took them on,
        the continuous sites' guides.

        Examples
        --------
        >>> import ppl
        >>> def model():
        ...     ppl.sample("f", ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2))
        >>> cfg = RunConfig.build(method="svi")
        >>> guides = Guides(Target(model, (), {}), cfg)
        >>> again = Guides(Target(model, (), {}), cfg)
        >>> with torch.no_grad():
        ...     _ = guides.programs["f"].logits.add_(1.0)
        >>> again.load_state_dict(guides.state_dict())
        >>> bool(torch.equal(again.programs["f"].logits, guides.programs["f"].logits))
        True
        """
        constants = []
        for name, key in self._structures():
            loc, log_scale = self.constants[name].params[key]
            constants.append((name, key, loc.detach().clone(), log_scale.detach().clone()))
        return {"programs": {n: [p.detach().clone() for p in g.parameters()]
                             for n, g in self.programs.items()},
                "continuous": {n: [p.detach().clone() for p in g.parameters()]
                               for n, g in self.continuous.items()},
                "constants": constants, "optim": self.optim.state_dict()}

    def _structures(self) -> list[tuple[str, Hashable]]:
        """(site, structure key) of each constant guide, in the optimiser's order."""
        owner = {id(loc): (name, key) for name, book in self.constants.items()
                 for key, (loc, _) in book.params.items()}
        return [owner[id(group["params"][0])] for group in self.optim.param_groups[1:]]

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Load :meth:`state_dict` over guides built anew for the same model and options
        (the structures they already hold must be the first ones saved, in order); a
        :class:`~inference.checkpoint.CheckpointError` names what does not match."""
        for kind, guides in (("programs", self.programs), ("continuous", self.continuous)):
            saved = state[kind]
            if set(saved) != set(guides) or any(
                    p.shape != v.shape for n, g in guides.items()
                    for p, v in zip(g.parameters(), saved[n], strict=True)):
                raise CheckpointError(f"The checkpoint's {kind} guides {sorted(saved)} do "
                                      f"not match this fit's {sorted(guides)}.")
        held = [(name, key) for name, key, *_ in state["constants"]]
        now = self._structures()
        if now != held[:len(now)]:
            raise CheckpointError(f"The checkpoint's structures {held[:len(now)]} are not "
                                  f"those this fit starts with {now}.")
        with torch.no_grad():
            for kind, guides in (("programs", self.programs),
                                 ("continuous", self.continuous)):
                for n, g in guides.items():
                    for p, v in zip(g.parameters(), state[kind][n], strict=True):
                        p.copy_(v)
            for name, key, loc, log_scale in state["constants"]:
                got = self.constants[name].params.get(key)
                if got is None:
                    self.constants[name].add(key, loc, log_scale)
                else:
                    got[0].copy_(loc)
                    got[1].copy_(log_scale)
        self.optim.load_state_dict(state["optim"])

    @property
    def cacheable(self) -> bool:
        """Whether log p depends on the trees only (no continuous site): then a tree
        without constants has one log p, which is cached."""
        return not self.continuous


class Particle(NamedTuple):
    """One draw of every guide."""

    drafts: dict[str, Draft]
    """Program site -> its tree's choices."""
    values: dict[str, Any]
    """Latent site -> the value the model sees (a BoundProgram when it has constants)."""
    programs: dict[str, Any]
    """Program site -> the Program (constants included)."""
    log_q_rest: torch.Tensor
    """log q of the constants and continuous sites (reparameterised graph)."""
    prior_fix: torch.Tensor
    """Σ log p_c(c) − its detached value: the constants' prior gradient, which the
    ProgramPrior's float log_prob does not carry."""
    key: Hashable | None
    """The trees' structures when log p depends on them only (cacheable), else None."""


def _particle(guides: Guides, drafts: Mapping[str, Draft], rng: np.random.Generator
              ) -> Particle:
    values: dict[str, Any] = {}
    programs: dict[str, Any] = {}
    log_q: Any = torch.zeros((), dtype=torch.float64)
    fix: Any = torch.zeros((), dtype=torch.float64)
    for name, d in drafts.items():
        guide = guides.programs[name]
        if d.slots:
            book = guides.constants[name]
            c, lq = book.rsample(d, rng)
            program = guide.program(d, c.detach().numpy())
            values[name] = BoundProgram(program, c) if c.requires_grad else program
            prior = book.prior_log_prob(c)
            fix = fix + prior - prior.detach()
            log_q = log_q + lq
        else:
            program = guide.program(d, [])
            values[name] = program
        programs[name] = program
    for name, g in guides.continuous.items():
        values[name], lq = g.rsample(rng)
        log_q = log_q + lq
    key = None
    if guides.cacheable and not any(d.slots for d in drafts.values()):
        key = tuple(d.key for d in drafts.values())
    return Particle(dict(drafts), values, programs, log_q, fix, key)


def _sample(guides: Guides, rng: np.random.Generator, k: int
            ) -> tuple[list[Particle], torch.Tensor]:
    """k particles and (k,) Σ_sites log q(φ) (graph in the logits)."""
    per_site = {name: g.sample(rng, k) for name, g in guides.programs.items()}
    parts = [_particle(guides, {n: ds[i] for n, ds in per_site.items()}, rng)
             for i in range(k)]
    log_q = sum((guides.programs[n].structure_log_prob(ds) for n, ds in per_site.items()),
                torch.zeros(k, dtype=torch.float64))
    return parts, log_q


class Stepper:
    """One optimisation step after another (the ``chunk`` of :func:`train`)."""

    def __init__(self, target: Target, guides: Guides, rng: np.random.Generator,
                 k: int) -> None:
        self.target, self.guides, self.rng, self.k = target, guides, rng, k
        self.cache: dict[Hashable, float] = {}
        self.invalid = 0
        self.skipped = 0

    def log_joint(self, p: Particle) -> Any:
        """log p(particle, data): a cached float, or a tensor with the reparameterised
        graph."""
        if p.key is not None:
            lp = self.cache.get(p.key)
            if lp is None:
                lp = self.cache[p.key] = self.target.log_joint(p.values)
            return lp
        return self.target.log_joint_tensor(p.values) + p.prior_fix

    def step(self) -> float:
        """One step; returns the loss −mean_k f_k (invalid particles floored)."""
        parts, log_q_prog = _sample(self.guides, self.rng, self.k)
        lq = log_q_prog.detach()
        terms: list[Any] = []
        ok = np.zeros(self.k, dtype=bool)
        for i, p in enumerate(parts):
            lp = self.log_joint(p)
            ok[i] = math.isfinite(float(torch.as_tensor(lp).detach()))
            terms.append(lp - p.log_q_rest - lq[i] if ok[i] else None)
        if not ok.any():
            raise PPLError(f"Every one of {self.k} particles of a step is invalid (log p = "
                           "-inf): the guide puts its mass on undefined programs. Check the "
                           "model on prior draws, or use method='mcmc'.")
        self.invalid += int((~ok).sum())
        floor = min(float(torch.as_tensor(t).detach()) for t in terms if t is not None) \
            - INVALID_PENALTY
        f = torch.stack([torch.as_tensor(t, dtype=torch.float64) if t is not None else
                         torch.tensor(floor, dtype=torch.float64) for t in terms])
        self.guides.optim.zero_grad(set_to_none=True)
        loss = -surrogate(f, log_q_prog)
        if loss.requires_grad:
            loss.backward()  # type: ignore[no-untyped-call]
        grads = [q.grad for g in self.guides.optim.param_groups for q in g["params"]
                 if q.grad is not None]
        if all(bool(torch.isfinite(g).all()) for g in grads):
            self.guides.optim.step()
        else:
            self.skipped += 1
        return -float(f.detach().mean())

    def chunk(self, n: int) -> np.ndarray:
        """``n`` steps; their losses."""
        return np.array([self.step() for _ in range(n)])


def _seeds(seed: int) -> tuple[np.random.Generator, np.random.Generator, int]:
    """Independent streams of the optimisation, of the draws, and a torch seed."""
    a, b, c = np.random.SeedSequence(seed).spawn(3)
    return (np.random.default_rng(a), np.random.default_rng(b),
            int(c.generate_state(1)[0]))


class Fitted(NamedTuple):
    """A fitted guide and how the fit went."""

    guides: Guides
    """The trained guides."""
    fit: Fit
    """The optimisation's record (losses, steps, why it stopped)."""
    stepper: Stepper
    """The steps' state: the log p cache, invalid particles and skipped steps."""
    label: str
    """The plan, e.g. ``SVI[grammar: f; normal: s]``."""


def fit_guides(target: Target, cfg: RunConfig, checkpoints: Checkpoints | None = None
               ) -> Fitted:
    """Fit the guides of ``target``'s latent sites by ``cfg.svi`` (float64 torch, as
    inside :func:`inference.vi._pyro.context`); the same ``cfg.seed`` gives the same
    guide. ``checkpoints`` saves the fit's state, or holds the state a resumed fit
    continues from (:mod:`inference.vi.checkpoint`).

    Examples
    --------
    >>> import numpy as np
    >>> import ppl
    >>> from ppl import dist
    >>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
    >>> def model(x, y=None):
    ...     f = ppl.sample("f", prior)
    ...     with ppl.plate("data", len(x)):
    ...         ppl.sample("y", dist.Normal(f(x), 0.5), obs=y)
    >>> x = np.linspace(-1, 1, 8)
    >>> target = Target(model, (x,), {"y": x + 1.0})
    >>> out = fit_guides(target, RunConfig.build(method="svi", num_steps=300, progress=False))
    >>> guide = out.guides.programs["f"]
    >>> p = guide.log_prob(prior.parse("(x + 1)"))
    >>> bool(p > prior.log_density(prior.parse("(x + 1)")))   # more likely than a priori
    True
    """
    check_options(target, cfg)
    train_rng, _, torch_seed = _seeds(cfg.seed)
    k = cfg.svi.num_particles or PARTICLES
    with seeded(torch_seed):
        guides = Guides(target, cfg)
        probe, _ = _sample(guides, np.random.default_rng(cfg.seed), 3)
        states = [{n: _detached(v) for n, v in p.values.items()} for p in probe]
        if target.check_fast(states):
            guides.fit_constants(target, states[0])
        stepper = Stepper(target, guides, train_rng, k)
        checkpoints = checkpoints or Checkpoints(cfg)
        saved = checkpoints.load("program")
        if saved is not None:
            _restore(guides, stepper, saved)
        label = "SVI[" + "; ".join(
            [f"grammar: {n}" for n in guides.programs] +
            ([f"normal: {', '.join(guides.continuous)}"] if guides.continuous else [])) + "]"
        fit = train(stepper.chunk, cfg.svi.num_steps, cfg.svi.tolerance, cfg.max_time,
                    cfg.show_progress, desc=label, done=checkpoints.losses,
                    every=checkpoints.every,
                    save=checkpoints.saver("program", lambda: _snapshot(guides, stepper)))
    return Fitted(guides, fit, stepper, label)


def _snapshot(guides: Guides, stepper: Stepper) -> dict[str, Any]:
    """The fit's state: the guides and their optimiser, the particles' generator, torch's
    generator, the log p cache and the counters."""
    return {"guides": guides.state_dict(), "rng": stepper.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(), "cache": stepper.cache,
            "invalid": stepper.invalid, "skipped": stepper.skipped}


def _restore(guides: Guides, stepper: Stepper, saved: Mapping[str, Any]) -> None:
    guides.load_state_dict(saved["guides"])
    stepper.rng.bit_generator.state = saved["rng"]
    torch.set_rng_state(saved["torch_rng"])
    stepper.cache = dict(saved["cache"])
    stepper.invalid, stepper.skipped = saved["invalid"], saved["skipped"]


def run(model: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any],
        cfg: RunConfig, n: int, checkpoints: Checkpoints | None = None
        ) -> tuple[Fit, Draws, dict[str, Any]]:
    """Fit the guides of a model with program sites (checkpointed by ``checkpoints``) and
    draw ``n`` scored draws; also the attrs this path adds (the plan, the guide, the
    program priors)."""
    target = Target(model, args, kwargs, seed=cfg.seed)
    out = fit_guides(target, cfg, checkpoints)
    _, draw_rng, _ = _seeds(cfg.seed)
    with torch.no_grad():
        draws = _draws(target, out.guides, draw_rng, n, out.stepper.cache)
    extra = {"plan": out.label, "guide": "grammar", "guide_init": out.guides.initialised,
             "num_particles": out.stepper.k,
             "invalid": out.stepper.invalid, "skipped_steps": out.stepper.skipped,
             "structures": {name: len(b) for name, b in out.guides.constants.items()},
             "priors": {name: g.prior for name, g in out.guides.programs.items()}}
    return out.fit, draws, extra


def _detached(value: Any) -> Any:
    if isinstance(value, BoundProgram):
        return value.program
    return value.detach() if isinstance(value, torch.Tensor) else value


def _draws(target: Target, guides: Guides, rng: np.random.Generator, n: int,
           cache: dict[Hashable, float]) -> Draws:
    """``n`` draws of the fitted guides: values, log q, log p and the pointwise
    log-likelihood (cached per tree when log p depends on the tree only)."""
    parts, log_q_prog = _sample(guides, rng, n)
    log_q = log_q_prog.numpy() + np.array([float(p.log_q_rest) for p in parts])
    lp = np.empty(n)
    pointwise: dict[Hashable, dict[str, np.ndarray]] = {}
    log_lik: dict[str, list[np.ndarray]] = {name: [] for name in target.observed}
    for i, p in enumerate(parts):
        values = {**{k: _detached(v) for k, v in p.values.items()}, **p.programs}
        if p.key is not None and p.key in cache:
            lp[i] = cache[p.key]
        else:
            lp[i] = target.log_joint(values)
        point = pointwise.get(p.key) if p.key is not None else None
        if point is None:
            point = target.pointwise(values)
            if p.key is not None:
                pointwise[p.key] = point
        for name in log_lik:
            log_lik[name].append(point[name])
    samples: dict[str, np.ndarray] = {}
    for name in guides.programs:
        arr = np.empty(n, dtype=object)
        for i, p in enumerate(parts):
            arr[i] = p.programs[name]
        samples[name] = arr
    for name in guides.continuous:
        samples[name] = np.stack([np.asarray(p.values[name].detach().numpy(), dtype=np.float64)
                                  for p in parts])
    lp[~np.isfinite(lp)] = -math.inf
    return Draws(samples, log_q, lp, {k: np.stack(v) for k, v in log_lik.items()}, {})
