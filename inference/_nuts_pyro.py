"""``method="nuts"`` on Pyro: ``pyro.infer.NUTS`` and ``MCMC``, one chain per ``MCMC`` run.

Pyro's NUTS keeps per-transition quantities in local variables; :class:`RecordingNUTS`
reads them at the seams Pyro's own code calls (the momentum refresh and each leapfrog
step), so the sampler itself is Pyro's, untouched, and the draws are exactly those of
``pyro.infer.NUTS`` with the same seed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context
from typing import Any, NamedTuple

import numpy as np
import pyro
import torch
from pyro.infer import MCMC, NUTS
from pyro.infer.autoguide.initialization import init_to_uniform, init_to_value
from pyro.poutine.util import site_is_subsample

from inference.checkpoint import FORMAT, chain_path, read, save
from inference.config import RunConfig
from inference.mcmc.driver import local_workers
from inference.nuts import BackendRun, Sites, per_draw, tree_depth
from inference.target import Target
from inference.threads import one_thread
from ppl.errors import InitializationError, PPLError
from ppl.trace import discovery_value, seeded, trace_model

__all__ = ["RecordingNUTS", "context", "discover", "run"]

_MCMC: Any = MCMC  # untyped in Pyro
PARALLEL_ITERATIONS = 4000
"""Chains × (warmup + kept iterations) from which Pyro's NUTS chains run in local worker
processes (``chain_method="parallel"``, the default; the default run, 4 × (1000 + 1000),
does): below it, starting the processes (a Python with torch and Pyro each, about 6 s on
2 cores) can cost more than the run saves, for the cheapest models (3–4 ms per iteration)
up to about 3,400 iterations (docs/decisions.md, "Pyro NUTS chains in processes by
default")."""
STATS = ("acceptance_rate", "diverging", "energy", "n_steps", "step_size")


class RecordingNUTS(NUTS):  # type: ignore[misc]
    """``pyro.infer.NUTS`` that records, for every transition after warmup, the ArviZ
    statistics: ``acceptance_rate`` (mean Metropolis acceptance probability over the
    trajectory's leapfrog steps, Pyro's own ``accept_prob``), ``diverging``, ``n_steps``
    (leapfrog steps), ``step_size`` and ``energy`` (the Hamiltonian after the momentum
    refresh, H(z_{t−1}, r_t): the selected point's energy up to integration error)."""

    def __init__(self, model: Callable[..., Any], **kwargs: Any) -> None:
        parent: Any = super()
        parent.__init__(model, **kwargs)
        self.record: dict[str, list[float]] = {k: [] for k in STATS}
        self._steps = 0
        self._accept = 0.0
        self._diverged = False
        self._energy = math.nan

    def sample(self, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self._steps, self._accept, self._diverged, self._energy = 0, 0.0, False, math.nan
        parent: Any = super()
        z: dict[str, torch.Tensor] = parent.sample(params)
        me: Any = self
        if me._t > me._warmup_steps:
            steps = max(self._steps, 1)
            for key, value in (("acceptance_rate", self._accept / steps),
                               ("diverging", self._diverged), ("energy", self._energy),
                               ("n_steps", self._steps), ("step_size", self.step_size)):
                self.record[key].append(float(value))
        return z

    def _sample_r(self, name: str) -> Any:
        parent: Any = super()
        me: Any = self
        r, r_unscaled = parent._sample_r(name)
        _, potential_energy, _ = me._fetch_from_cache()
        if potential_energy is not None:
            self._energy = float(me._kinetic_energy(r_unscaled) + potential_energy)
        return r, r_unscaled

    def _build_basetree(self, *args: Any, **kwargs: Any) -> Any:
        parent: Any = super()
        tree = parent._build_basetree(*args, **kwargs)
        self._steps += 1
        self._accept += float(tree.sum_accept_probs)
        self._diverged = self._diverged or bool(tree.diverging)
        return tree


@contextlib.contextmanager
def context() -> Iterator[None]:
    """float64 as torch's default dtype for the enclosed code (restored after), so that a
    distribution built from Python floats (``dist.Normal(0.0, 5.0)``) gives float64 draws
    and densities, as the float64 data do and as on NumPyro."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _init_value(site: Mapping[str, Any]) -> Any:
    """Pyro's ``init_to_uniform``; for a distribution that cannot sample (improper), a
    uniform point in (−2, 2) of its unconstrained space, found without sampling."""
    try:
        return init_to_uniform(dict(site))
    except NotImplementedError:
        return discovery_value(site)


def discover(model: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any],
             seed: int) -> Sites:
    """The model's sites by :class:`~inference.target.Target` (numpy arrays become
    float64 tensors; data are checked), with the plate depth of its discovery run."""
    target = Target(model, args, kwargs, seed=seed)
    observed = {k: np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v)
                for k, v in target.observed.items()}
    return Sites({n: s.kind for n, s in target.latents.items()}, observed, target.args,
                 target.kwargs, target.max_plate_nesting)


class _Chain(NamedTuple):
    """One chain's job (picklable, so it can run in a spawned process)."""

    model: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    seed: int
    max_plate_nesting: int
    config: RunConfig
    chain: int = 0
    resuming: bool = False


class _ChainOut(NamedTuple):
    samples: dict[str, np.ndarray]
    stats: dict[str, np.ndarray]
    seconds: float


def _run_chain(job: _Chain) -> _ChainOut:
    """One chain of Pyro's NUTS in a seeded quiet run (:func:`ppl.trace.seeded`: the
    caller's torch state is untouched; ``MCMC`` turns Pyro's validation off anyway), on
    one torch thread and one BLAS thread wherever it runs, so a seed gives the same draws
    in this process and in a worker."""
    with one_thread():
        return _one_chain(job)


def _one_chain(job: _Chain) -> _ChainOut:
    cfg = job.config
    init = _init_value if cfg.init_values is None else init_to_value(
        values={k: torch.as_tensor(v, dtype=torch.float64) for k, v in cfg.init_values.items()},
        fallback=_init_value)
    start = time.perf_counter()
    with seeded(job.seed), context():  # context() again: in a spawned process
        kernel = RecordingNUTS(job.model, target_accept_prob=cfg.nuts.target_accept_prob,
                               max_tree_depth=cfg.nuts.max_tree_depth,
                               full_mass=cfg.nuts.dense_mass,
                               init_strategy=init,
                               max_plate_nesting=job.max_plate_nesting)
        if cfg.checkpoint is None:
            mcmc = _MCMC(kernel, num_samples=cfg.num_samples * cfg.thin,
                         warmup_steps=cfg.warmup, disable_progbar=not cfg.show_progress)
            mcmc.run(*job.args, **job.kwargs)
            draws = mcmc.get_samples()
        else:
            kernel, draws = _checkpointed_chain(job, kernel)
    seconds = time.perf_counter() - start
    keep = slice(cfg.thin - 1, None, cfg.thin)
    samples = {k: v.detach().cpu().numpy().astype(np.float64)[keep]
               for k, v in draws.items()}
    stats = {k: np.asarray(v)[keep] for k, v in kernel.record.items()}
    return _ChainOut(samples, stats, seconds)


def _checkpointed_chain(job: _Chain, kernel: RecordingNUTS
                        ) -> tuple[RecordingNUTS, dict[str, torch.Tensor]]:
    """The loop of Pyro's ``MCMC`` (``setup``, ``warmup`` + ``num_samples`` calls of
    ``kernel.sample``, draws mapped to the constrained space by ``kernel.transforms``),
    written out so that every ``checkpoint_every`` transitions the chain's whole state
    (the kernel with its adaptation, the current point, the torch generator, the draws so
    far) goes to its checkpoint file, and a resumed chain continues from it bitwise. Runs
    inside the chain's seeded context."""
    cfg = job.config
    assert cfg.checkpoint is not None
    path = chain_path(cfg.checkpoint, job.chain)
    total = cfg.warmup + cfg.num_samples * cfg.thin
    if job.resuming and path.exists():
        snap = read(path)
        kernel, params, first, kept = snap["kernel"], snap["params"], snap["step"], snap["draws"]
        torch.set_rng_state(snap["rng"])
    else:
        me: Any = kernel  # Pyro's kernel methods are untyped
        me.setup(cfg.warmup, *job.args, **job.kwargs)
        params, first, kept = kernel.initial_params, 0, []
    with pyro.validation_enabled(False):  # as MCMC runs its kernels
        for i in range(first, total):
            if i > first and i % cfg.checkpoint_every == 0:
                save(path, {"format": FORMAT, "kernel": kernel, "params": params, "step": i,
                            "draws": kept, "rng": torch.get_rng_state()})
            params = kernel.sample(params)
            if i >= cfg.warmup:
                kept.append({k: v.detach().clone() for k, v in params.items()})
    untyped: Any = kernel
    untyped.cleanup()
    draws = {k: kernel.transforms[k].inv(torch.stack([d[k] for d in kept]))
             if k in kernel.transforms else torch.stack([d[k] for d in kept])
             for k in kept[0]}
    return kernel, draws


def _run_chains(jobs: list[_Chain], cfg: RunConfig) -> tuple[list[_ChainOut], str]:
    """Chains on ``cfg.executor`` when one is given; else in local worker processes
    (:func:`inference.mcmc.driver.local_workers`: ``chain_method="parallel"``, a model a
    worker can import, a guarded script) when the run has at least
    :data:`PARALLEL_ITERATIONS`; else in sequence in this process."""
    if cfg.executor is None:
        big = len(jobs) * (cfg.warmup + cfg.num_samples * cfg.thin) >= PARALLEL_ITERATIONS
        workers = local_workers(jobs, cfg.chain_method, stacklevel=5) if big else 1
        if workers > 1:
            with ProcessPoolExecutor(max_workers=workers,
                                     mp_context=get_context("spawn")) as ex:
                return list(ex.map(_run_chain, jobs)), "parallel"
        return [_run_chain(j) for j in jobs], "sequential"
    if isinstance(cfg.executor, ThreadPoolExecutor):
        raise PPLError("Chains cannot run in threads: they would share Pyro's handler stack. "
                       "Pass a process-based executor or leave executor=None.")
    return [f.result() for f in [cfg.executor.submit(_run_chain, j) for j in jobs]], "executor"


def run(model: Callable[..., Any], sites: Sites, cfg: RunConfig, resuming: bool = False
        ) -> BackendRun:
    """``num_chains`` chains of Pyro's NUTS; per-chain seeds spawned from ``cfg.seed``;
    with ``resuming``, each chain continues from its checkpoint file, if it wrote one."""
    seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(cfg.seed).spawn(
        cfg.num_chains)]
    job_cfg = dataclasses.replace(cfg, executor=None)  # the job travels to the executor: not itself
    jobs = [_Chain(model, sites.args, dict(sites.kwargs), s, sites.max_plate_nesting, job_cfg,
                   c, resuming) for c, s in enumerate(seeds)]
    try:
        outs, how = _run_chains(jobs, cfg)
    except ValueError as err:
        if "valid initial params" not in str(err):
            raise
        raise InitializationError(
            f"NUTS found no starting point with a finite log density for the sites "
            f"{list(sites.latents)} (Pyro tried 100 from init_to_uniform): check their "
            "priors and the model's factors, or give init_values.") from None
    samples = {k: np.stack([o.samples[k] for o in outs]) for k in outs[0].samples}
    stats = {k: np.stack([o.stats[k] for o in outs]) for k in STATS}
    stats["diverging"] = stats["diverging"].astype(bool)
    stats["n_steps"] = stats["n_steps"].astype(np.int64)
    stats["tree_depth"] = tree_depth(stats["n_steps"])
    lp, log_lik, derived = evaluate(model, sites, samples)
    stats["lp"] = lp
    samples.update(derived)
    return BackendRun(samples, stats, log_lik, [o.seconds for o in outs], how)


# ---------------------------------------------------------------------- evaluation
class _NotVectorizable(Exception):
    """The model does not broadcast over a leading batch of draws."""


def _draw_trace(model: Callable[..., Any], sites: Sites, values: Mapping[str, Any]) -> Any:
    return trace_model(model, sites.args, sites.kwargs, data=values, log_prob=True)


def _parts(tr: Any, observed: Mapping[str, Any], n: int | None = None
           ) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(log joint, pointwise log-likelihood, deterministic values) of a trace; with ``n``,
    of a trace vectorized over ``n`` draws (leading dimension), else of one draw."""
    lead = (n,) if n is not None else ()
    lp = np.zeros(lead)
    det: dict[str, np.ndarray] = {}
    for name, site in tr.nodes.items():
        if site["type"] != "sample" or site_is_subsample(site):
            continue
        if site["infer"].get("_deterministic"):
            det[name] = site["value"].detach().cpu().numpy()
            continue
        term = site["log_prob"].detach().cpu().numpy().astype(np.float64)
        lp = lp + (term.reshape(n, -1).sum(1) if n is not None else term.sum())
    pointwise = {k: tr.nodes[k]["log_prob"].detach().cpu().numpy().astype(np.float64)
                 for k in observed}
    return lp, pointwise, det


def _vectorized(model: Callable[..., Any], sites: Sites, flat: dict[str, np.ndarray],
                first: Any) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every draw in one model run: an outer plate over draws left of every batch dim."""
    n = len(next(iter(flat.values())))
    nodes = [s for s in first.nodes.values()
             if s["type"] == "sample" and not site_is_subsample(s)]
    depth = max([len(s["fn"].batch_shape) for s in nodes] +
                [-f.dim for s in nodes for f in s["cond_indep_stack"] if f.dim is not None]
                + [0])
    data = {}
    for name, arr in flat.items():
        event = len(first.nodes[name]["fn"].event_shape)
        batch = arr.ndim - 1 - event
        data[name] = torch.as_tensor(arr.reshape((n,) + (1,) * (depth - batch) + arr.shape[1:]))
    try:
        with pyro.plate("_ppl_draws", n, dim=-(depth + 1)):
            tr = _draw_trace(model, sites, data)
        lp, pw, det = _parts(tr, sites.observed, n)
        shapes = {k: first.nodes[k]["log_prob"].shape for k in sites.observed}
        pw = {k: per_draw(v, n, tuple(shapes[k])) for k, v in pw.items()}
        det = {k: per_draw(v, n, tuple(first.nodes[k]["value"].shape)) for k, v in det.items()}
    except (ValueError, RuntimeError, TypeError, IndexError, PPLError) as err:
        # PPLError: a program site (a query's given program) cannot take the draws' plate;
        # a real fault of the model resurfaces in the separate runs that follow
        raise _NotVectorizable(str(err)) from err
    return lp, pw, det


def evaluate(model: Callable[..., Any], sites: Sites, samples: dict[str, np.ndarray]
             ) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per draw: the log joint log p(θ, data) (constrained values, no Jacobian), the
    pointwise log-likelihood of every observed site, and every deterministic site.

    All draws are scored in one vectorized model run when the model broadcasts over a
    leading batch of draws, checked against separate runs of the first and last draws
    (1e-9); otherwise one model run per draw."""
    chains, draws = next(iter(samples.values())).shape[:2]
    n = chains * draws
    flat = {k: v.reshape((n,) + v.shape[2:]) for k, v in samples.items()}
    first = _draw_trace(model, sites, {k: torch.as_tensor(v[0]) for k, v in flat.items()})
    last = _draw_trace(model, sites, {k: torch.as_tensor(v[-1]) for k, v in flat.items()})
    one = {0: _parts(first, sites.observed), n - 1: _parts(last, sites.observed)}
    try:
        lp, pw, det = _vectorized(model, sites, flat, first)
        for i, (lp_i, pw_i, det_i) in one.items():
            np.testing.assert_allclose(lp[i], lp_i, rtol=1e-9, atol=1e-9)
            for k in pw_i:
                np.testing.assert_allclose(pw[k][i], pw_i[k], rtol=1e-9, atol=1e-9)
            for k in det_i:
                np.testing.assert_allclose(det[k][i], det_i[k], rtol=1e-9, atol=1e-9)
    except (_NotVectorizable, AssertionError, KeyError):
        rows = [_parts(_draw_trace(model, sites, {k: torch.as_tensor(v[i])
                                                  for k, v in flat.items()}), sites.observed)
                for i in range(n)]
        lp = np.array([float(r[0]) for r in rows])
        pw = {k: np.stack([r[1][k] for r in rows]) for k in sites.observed}
        det = {k: np.stack([r[2][k] for r in rows]) for k in rows[0][2]}
    shape = (chains, draws)
    return (lp.reshape(shape), {k: v.reshape(shape + v.shape[1:]) for k, v in pw.items()},
            {k: v.reshape(shape + v.shape[1:]) for k, v in det.items()})

