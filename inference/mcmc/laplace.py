"""Data-driven constants: Laplace approximations of a structure's constants (MOVES.md move 5).

For a tree shape S with constants c, the fit finds c*(S), the least-squares constants of
the program's Normal observations (through the incremental likelihood of
:mod:`inference.mcmc.fastlik`), and a Gauss–Newton curvature H(S) there. Any Gaussian that is
a fixed function of the shape and of what the move holds fixed keeps the move exact; a good
one makes it efficient. A
proposal draws c ~ N(c*, (H / inflation²)⁻¹). For the Hastings ratio to be exact, c* and H
must be a deterministic function of S and the other sites: the optimiser starts from a fixed
set of points (never from the current constants), and fits are cached per shape. When H is
not positive definite the fit is ``None`` and callers fall back to the constants' prior, in
both directions alike.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from inference.mcmc.fastlik import ProgramLikelihood
from ppl.program import Program

__all__ = ["ConstantFit", "ConstantFitter", "shape_of"]

STARTS = (1.0, -1.0)
"""Starting points of the optimiser (each constant set to the value)."""
INFLATION = 1.5
"""Proposal standard deviations are the Laplace ones times this factor (heavier coverage)."""
LOG_2PI = math.log(2 * math.pi)
BAD_RESIDUAL = 1e8
"""Residual used where the program is invalid (keeps the optimiser away, deterministically)."""


class ConstantFit(NamedTuple):
    """A Gaussian proposal N(mean, precision⁻¹) for a shape's constants."""

    mean: np.ndarray
    """c*(S)."""
    chol: np.ndarray
    """Lower Cholesky factor L of the proposal precision (L Lᵀ = H / inflation²)."""

    def log_density(self, c: np.ndarray) -> float:
        """log N(c; c*, precision⁻¹) (−inf where it underflows)."""
        with np.errstate(all="ignore"):
            z = self.chol.T @ (c - self.mean)
            value = float(-0.5 * z @ z - 0.5 * len(c) * LOG_2PI
                          + np.log(np.diag(self.chol)).sum())
        return value if np.isfinite(value) else -math.inf

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """c ~ N(c*, precision⁻¹)."""
        z = rng.standard_normal(len(self.mean))
        with np.errstate(all="ignore"):
            return np.asarray(self.mean + np.linalg.solve(self.chol.T, z))


def shape_of(program: Program) -> tuple[Any, ...]:
    """The exact tree shape: productions and input names, constants' values left out."""
    return (program.prods, tuple(v for v in program.values if isinstance(v, str)))


class _LeastSquares(NamedTuple):
    x: np.ndarray
    jac: np.ndarray


class ConstantFitter:
    """Laplace proposals for one program site's constants.

    The optimum c*(S) solves the least-squares problem of the residuals y − loc(c) of the
    Normal factors (Levenberg–Marquardt from fixed starts): it depends only on the shape S
    and the data, so it is cached per (data, shape) across changes of the other sites. The
    proposal precision is then formed from the current scales,

        P = β Σ_f J_fᵀ diag(1/scale_f²) J_f + 1/s² (for a Normal(μ, s) constant prior),

    divided by ``INFLATION²``: a deterministic function of the shape, the data and the other
    sites' current values, as the Hastings ratio needs. Views with other observation
    families get no fit (callers use prior proposals).
    """

    def __init__(self) -> None:
        self.cache: dict[tuple[Any, ...], _LeastSquares | None] = {}

    def fit(self, program: Program, view: ProgramLikelihood) -> ConstantFit | None:
        """The Laplace proposal of ``program``'s shape (None: use the prior instead)."""
        k = len(program.constants)
        if k == 0 or not all(f.logpdf.__name__ == "_normal" for f in view.factors):
            return None
        key = (view.data_key, shape_of(program))
        if key not in self.cache:
            self.cache[key] = self._solve(program, view)
        ls = self.cache[key]
        if ls is None:
            return None
        rows = 0
        precision = np.zeros((k, k))
        with np.errstate(all="ignore"):  # huge curvatures: no fit, not a warning
            for f in view.factors:
                n = int(np.prod(f.shape))
                jac = ls.jac[rows:rows + n]
                rows += n
                w = 1.0 / np.broadcast_to(f.params["scale"], f.shape).reshape(-1) ** 2
                precision += view.beta * (jac.T @ (jac * w[:, None]))
        prior = view.prior.constant_prior
        if prior.family == "normal":
            precision += np.eye(k) / prior.b**2
        if not np.all(np.isfinite(precision)):
            return None
        try:
            chol = np.linalg.cholesky(precision / INFLATION**2)
        except np.linalg.LinAlgError:
            return None
        if not np.all(np.isfinite(chol)) or np.min(np.diag(chol)) < 1e-8:
            return None
        return ConstantFit(ls.x, chol)

    @staticmethod
    def _residuals(program: Program, view: ProgramLikelihood, c: np.ndarray) -> np.ndarray:
        locs = view.locations(program, c)
        r = np.concatenate([(f.y - loc).reshape(-1)
                            for f, loc in zip(view.factors, locs, strict=True)])
        return r if np.all(np.isfinite(r)) else np.full(r.shape, BAD_RESIDUAL)

    def _solve(self, program: Program, view: ProgramLikelihood) -> _LeastSquares | None:
        k = len(program.constants)
        best: tuple[float, np.ndarray, np.ndarray] | None = None
        with np.errstate(all="ignore"):
            for start in STARTS:
                out = levenberg_marquardt(lambda c: self._residuals(program, view, c),
                                          np.full(k, start))
                if out is not None and (best is None or out[0] < best[0]):
                    best = out
        if best is None:
            return None
        return _LeastSquares(best[1], best[2])


def _jacobian(fun: Any, x: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Forward-difference Jacobian of the residuals (deterministic)."""
    jac = np.empty((len(r), len(x)))
    for j in range(len(x)):
        h = 1e-7 * max(1.0, abs(float(x[j])))
        xh = x.copy()
        xh[j] += h
        jac[:, j] = (fun(xh) - r) / h
    return jac


def levenberg_marquardt(fun: Any, x0: np.ndarray, max_iter: int = 40
                        ) -> tuple[float, np.ndarray, np.ndarray] | None:
    """Minimise ½‖fun(x)‖² from ``x0``; return (cost, x, Jacobian at x) or None.

    A plain Levenberg–Marquardt loop (Marquardt's diagonal scaling, λ adapted by factors
    3 and 4), deterministic for a given start. Residuals equal to ``BAD_RESIDUAL`` mark
    invalid points; a start or an optimum there gives None.
    """
    x = np.asarray(x0, dtype=float)
    r = fun(x)
    if np.any(np.abs(r) >= BAD_RESIDUAL):
        return None
    cost = float(r @ r)
    lam = 1e-3
    jac = _jacobian(fun, x, r)
    for _ in range(max_iter):
        g = jac.T @ r
        a = jac.T @ jac
        if not (np.all(np.isfinite(a)) and np.all(np.isfinite(g))):
            return None
        improved = False
        while lam < 1e10:
            try:
                step = np.linalg.solve(a + lam * np.diag(np.diag(a) + 1e-12), -g)
            except np.linalg.LinAlgError:
                lam *= 4
                continue
            r_new = fun(x + step)
            cost_new = float(r_new @ r_new)
            if np.isfinite(cost_new) and cost_new < cost:
                done = cost - cost_new <= 1e-12 * (1 + cost)
                x, r, cost = x + step, r_new, cost_new
                lam = max(lam / 3, 1e-12)
                improved = True
                break
            lam *= 4
        if not improved:
            break
        jac = _jacobian(fun, x, r)
        if done or float(np.max(np.abs(step))) <= 1e-10 * (1 + float(np.max(np.abs(x)))):
            break
    if np.any(np.abs(r) >= BAD_RESIDUAL) or not np.all(np.isfinite(jac)):
        return None
    return cost, x, jac
