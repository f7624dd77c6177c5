"""Incremental scoring of program moves: only the factors in the program's Markov blanket.

A program move changes the program's prior term and the observed factors that read the
program's output; every other factor is constant while the other sites are held fixed
(MOVES.md: L(φ) is "the likelihood factors in φ's Markov blanket"). :class:`ProgramLikelihood`
is built from one recorded run (:meth:`inference.target.Target.record`):

- each call of the program site is recorded with its inputs and output;
- an observed site qualifies when its distribution is a supported family (Normal, Laplace,
  StudentT) whose ``loc`` *is* a call's output (same storage: ``Normal(f(x), sigma)``), and
  its other parameters do not depend on that output;
- no other factor may depend on any call's output (checked with autograd provenance).

Then log L(φ') = Σ_sites log D(y; loc = φ'(inputs), other parameters) is computed in numpy
for a proposed program, and the log joint of a move is ``rest + log π₀(φ') + log L(φ')``
with ``rest`` fixed. The view is verified when built: its value at the current program must
equal the recorded log-likelihood, and the incremental log joint of every probe program must
equal a full re-scoring (at least one probe valid on the data), all to 1e-9 (TESTING.md
P1); otherwise it is not used.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch
from scipy.special import gammaln

from inference.mcmc.cache import LRU, MISSING
from inference.target import Target
from ppl.prior import ProgramPrior
from ppl.program import Program

__all__ = ["ProgramLikelihood"]

LOG_2PI = math.log(2 * math.pi)


def _normal(y: np.ndarray, loc: np.ndarray, p: dict[str, np.ndarray]) -> np.ndarray:
    z = (y - loc) / p["scale"]
    return np.asarray(-0.5 * z * z - np.log(p["scale"]) - 0.5 * LOG_2PI)


def _laplace(y: np.ndarray, loc: np.ndarray, p: dict[str, np.ndarray]) -> np.ndarray:
    return np.asarray(-np.abs(y - loc) / p["scale"] - np.log(2 * p["scale"]))


def _student_t(y: np.ndarray, loc: np.ndarray, p: dict[str, np.ndarray]) -> np.ndarray:
    df, scale = p["df"], p["scale"]
    z = (y - loc) / scale
    return np.asarray(gammaln((df + 1) / 2) - gammaln(df / 2) - 0.5 * np.log(df * math.pi)
                      - np.log(scale) - (df + 1) / 2 * np.log1p(z * z / df))


FAMILIES: dict[str, tuple[Callable[..., np.ndarray], tuple[str, ...]]] = {
    "Normal": (_normal, ("scale",)),
    "Laplace": (_laplace, ("scale",)),
    "StudentT": (_student_t, ("df", "scale")),
}
"""Supported observation families: log density in numpy and the non-loc parameters."""


class _Factor(NamedTuple):
    call: int
    logpdf: Callable[..., np.ndarray]
    y: np.ndarray
    params: dict[str, np.ndarray]
    shape: tuple[int, ...]


def _numpy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return value


def _data_key(calls: list[tuple[Any, Any]], factors: list[_Factor]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for args, kwargs in calls:
        for a in list(args) + [kwargs[k] for k in sorted(kwargs)]:
            arr = np.ascontiguousarray(np.asarray(a, dtype=float))
            h.update(str(arr.shape).encode())
            h.update(arr.tobytes())
    for f in factors:
        h.update(str((f.call, f.shape, f.logpdf.__name__)).encode())
        h.update(np.ascontiguousarray(f.y).tobytes())
    return h.hexdigest()


def _input_key(envs: list[dict[str, np.ndarray]]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for env in envs:
        for name in sorted(env):
            arr = np.ascontiguousarray(env[name])
            h.update(f"{name}{arr.shape}{arr.dtype}".encode())
            h.update(arr.tobytes())
    return h.hexdigest()


def _is_view_of(param: Any, out: Any) -> bool:
    return (isinstance(param, torch.Tensor) and isinstance(out, torch.Tensor)
            and param.dtype == out.dtype and param.untyped_storage().data_ptr()
            == out.untyped_storage().data_ptr() and param.storage_offset()
            == out.storage_offset())


class ProgramLikelihood:
    """log L(φ) of one program site with every other site fixed (numpy, incremental)."""

    def __init__(self, site: str, prior: ProgramPrior, calls: list[tuple[Any, Any]],
                 factors: list[_Factor], rest: float, beta: float = 1.0) -> None:
        self.data_key = _data_key(calls, factors)
        """Hash of the observations and the program's inputs (not of other parameters)."""
        self.site = site
        self.prior = prior
        self.calls = calls
        self.envs = [self._env(prior.inputs, args, kwargs) for args, kwargs in calls]
        """Each call's inputs bound by name, as float64 arrays."""
        self.factors = factors
        self.rest = rest
        """log joint minus log π₀(φ) minus beta · log L(φ): constant while other sites are
        fixed."""
        self.beta = beta
        """Likelihood temperature of the target this view scores for."""
        self.input_key = _input_key(self.envs)
        """Hash of the program's inputs: outputs cached under it are valid in any view with
        the same inputs."""
        self.normal = all(f.logpdf is _normal for f in factors)
        """Whether every factor is Normal (least-squares fits and Laplace evidence apply)."""
        self.lik = LRU(0)
        """log L per program (:meth:`eval_key`); the kernel sets its capacity."""
        self.outputs: LRU | None = None
        """Program outputs shared by the views of one site, keyed by (input_key,
        eval_key); set by the kernel."""
        self.memo = LRU(0)
        """Anything else derived from a program and this view (constant fits, evidence),
        keyed by the caller; the kernel sets its capacity."""

    def locations(self, program: Program, constants: np.ndarray | None = None
                  ) -> list[np.ndarray]:
        """The ``loc`` of every factor for ``program`` (optionally with other constants)."""
        outputs: dict[int, Any] = {}
        locs = []
        for f in self.factors:
            if f.call not in outputs:
                outputs[f.call] = program.evaluate_numpy(self.envs[f.call], constants)
            out = outputs[f.call]
            locs.append(out if np.shape(out) == f.shape else np.broadcast_to(out, f.shape))
        return locs

    def locations_batch(self, program: Program, constants: np.ndarray) -> list[np.ndarray]:
        """The ``loc`` of every factor for ``m`` settings of the constants at once:
        ``constants`` has shape (m, k); factor f's array has shape (m, *f.shape). One run of
        the interpreter serves all m rows (each constant is an (m, 1, ...) column)."""
        m, k = constants.shape
        ndim = max(len(f.shape) for f in self.factors)
        cols = np.ascontiguousarray(constants.T).reshape((k, m) + (1,) * ndim)
        outputs: dict[int, Any] = {}
        locs = []
        for f in self.factors:
            if f.call not in outputs:
                outputs[f.call] = program.evaluate_numpy(self.envs[f.call], cols)
            out, shape = outputs[f.call], (m,) + f.shape
            locs.append(out if np.shape(out) == shape else np.broadcast_to(out, shape))
        return locs

    def log_lik_batch(self, program: Program, constants: np.ndarray) -> np.ndarray:
        """log L of ``program`` at each row of ``constants`` (m, k); −inf where invalid."""
        total = np.zeros(len(constants))
        with np.errstate(all="ignore"):
            for f, loc in zip(self.factors, self.locations_batch(program, constants),
                              strict=True):
                lp = f.logpdf(f.y, loc, f.params)
                total += lp.reshape(len(constants), -1).sum(axis=1)
        return np.where(np.isfinite(total), total, -np.inf)

    @staticmethod
    def eval_key(program: Program) -> Any:
        """What a program's log L is cached under: its canonical key when it has no
        constants (programs equal up to commutativity compute the same values, bit for bit),
        else the exact tree (productions and values, constants included)."""
        if any(isinstance(v, float) for v in program.values):
            return (program.prods, program.values)
        return program.key

    def log_lik(self, program: Program) -> float:
        """log L(φ) = Σ over the program's observed factors, −inf if invalid (cached per
        :meth:`eval_key`; a cached value is the recomputed one, bit for bit)."""
        key = self.eval_key(program)
        total = self.lik.get(key)
        if total is not MISSING:
            return float(total)
        locs = MISSING if self.outputs is None else self.outputs.get((self.input_key, key))
        if locs is MISSING:
            locs = self.locations(program)
            if self.outputs is not None:
                self.outputs.put((self.input_key, key), locs)
        total = 0.0
        with np.errstate(all="ignore"):
            for f, loc in zip(self.factors, locs, strict=True):
                total += float(np.sum(f.logpdf(f.y, loc, f.params)))
        total = total if math.isfinite(total) else -math.inf
        self.lik.put(key, total)
        return total

    @staticmethod
    def _env(names: tuple[str, ...], args: tuple[Any, ...], kwargs: dict[str, Any]
             ) -> dict[str, np.ndarray]:
        env = dict(zip(names, args, strict=False))
        env.update(kwargs)
        out = {}
        for k, v in env.items():
            a = np.asarray(v)
            out[k] = a if a.dtype == np.bool_ else a.astype(np.float64)
        return out

    def log_joint(self, program: Program) -> float:
        """The model's log joint with the site set to ``program`` (others unchanged)."""
        prior = self.prior.log_density(program)
        if prior == -math.inf:
            return -math.inf
        return self.rest + prior + self.beta * self.log_lik(program)

    @classmethod
    def build(cls, target: Target, values: dict[str, Any], site: str,
              probes: list[Program]) -> ProgramLikelihood | None:
        """The view at ``values``, or None when the model does not fit the pattern or the
        view fails its checks: on *every* probe program the incremental log joint must equal
        a full re-scoring, and the current program or at least one probe must be valid on
        the data (an invalid program agrees trivially at −inf)."""
        if not target.fast:
            return None
        try:
            view = cls._build(target, values, site)
        except (TypeError, ValueError, RuntimeError, AttributeError):
            return None
        if view is None:
            return None
        finite = math.isfinite(view.log_lik(values[site]))  # checked against the recording
        for probe in probes:
            full, fast = target.log_joint(dict(values, **{site: probe})), view.log_joint(probe)
            if not (math.isclose(full, fast, rel_tol=1e-9, abs_tol=1e-9) or full == fast):
                return None
            finite = finite or math.isfinite(full)
        return view if finite else None

    @classmethod
    def _build(cls, target: Target, values: dict[str, Any], site: str
               ) -> ProgramLikelihood | None:
        run = target.record(values)
        calls = [c for c in run.calls if c.site == site]
        if not calls:
            return None
        outputs = [c.output for c in calls]
        factors: list[_Factor] = []
        matched: set[str] = set()
        for name, (fn, value, _, observed) in run.sites.items():
            if not observed:
                continue
            family = FAMILIES.get(type(fn).__name__)
            hit = next((i for i, out in enumerate(outputs)
                        if family and _is_view_of(getattr(fn, "loc", None), out)), None)
            if hit is None or family is None:
                continue
            params = {k: getattr(fn, k) for k in family[1]}
            if any(isinstance(v, torch.Tensor) and v.requires_grad for v in params.values()):
                return None  # another parameter depends on the program's output
            factors.append(_Factor(hit, family[0], np.asarray(_numpy(value), dtype=float),
                                   {k: np.asarray(_numpy(v), dtype=float)
                                    for k, v in params.items()},
                                   tuple(fn.loc.shape)))
            matched.add(name)
        if not factors:
            return None
        others = [lp.sum() for name, (_, _, lp, _) in run.sites.items()
                  if name not in matched and isinstance(lp, torch.Tensor) and lp.requires_grad]
        if others:
            grads = torch.autograd.grad(torch.stack(others).sum(), outputs, allow_unused=True,
                                        retain_graph=True)  # the run may be read again
            if any(g is not None for g in grads):
                return None  # some other factor reads the program's output
        np_calls = [(tuple(_numpy(a) for a in c.args),
                     {k: _numpy(v) for k, v in c.kwargs.items()}) for c in calls]
        recorded = float(sum(float(run.sites[n][2].detach().sum()) for n in matched))
        program: Program = values[site]
        view = cls(site, target.latents[site].fn, np_calls, factors, 0.0, target.beta)
        current = view.log_lik(program)
        if not math.isclose(current, recorded, rel_tol=1e-9, abs_tol=1e-9):
            return None
        # rest is summed from the other sites' own terms, not taken as total − log π₀ −
        # β log L: that difference would carry the rounding of a huge log L (a very bad
        # current program) into every proposal's score
        rest = 0.0
        for name, (fn, _, lp, observed) in run.sites.items():
            if name != site and name not in matched:
                weight = target.beta if (observed or fn is None) else 1.0
                rest += weight * float(lp.detach().sum())
        view.rest = rest
        return view
