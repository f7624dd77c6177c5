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

    def locations(self, program: Program, constants: np.ndarray | None = None
                  ) -> list[np.ndarray]:
        """The ``loc`` of every factor for ``program`` (optionally with other constants)."""
        outputs: dict[int, Any] = {}
        locs = []
        for f in self.factors:
            if f.call not in outputs:
                outputs[f.call] = program.evaluate_numpy(self.envs[f.call], constants)
            locs.append(np.broadcast_to(outputs[f.call], f.shape))
        return locs

    def log_lik(self, program: Program) -> float:
        """log L(φ) = Σ over the program's observed factors, −inf if invalid."""
        total = 0.0
        with np.errstate(all="ignore"):
            for f, loc in zip(self.factors, self.locations(program), strict=True):
                total += float(np.sum(f.logpdf(f.y, loc, f.params)))
        return total if math.isfinite(total) else -math.inf

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
            grads = torch.autograd.grad(torch.stack(others).sum(), outputs, allow_unused=True)
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
        total = float(run.total(target.beta).detach())
        view.rest = total - view.prior.log_density(program) - target.beta * current
        return view
