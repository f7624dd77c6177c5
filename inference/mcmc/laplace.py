"""Data-driven constants: Laplace approximations of a structure's constants (MOVES.md move 5).

For a tree shape S with constants c, the fit finds c*(S), the least-squares constants of
the program's Normal observations (through the incremental likelihood of
:mod:`inference.mcmc.fastlik`), and a Gauss–Newton curvature H(S) there. Any Gaussian that is
a fixed function of the shape and of what the move holds fixed keeps the move exact; a good
one makes it efficient. A proposal draws c ~ N(c*, (H / inflation²)⁻¹). For the Hastings
ratio to be exact, c* and H must be a deterministic function of S and the other sites: the
optimiser starts from a fixed set of points (never from the current constants). When H is
not positive definite the fit is ``None`` and callers fall back to the constants' prior, in
both directions alike.

Fits are shared by programs equal up to commutativity: every shape is fitted in its
canonical order (:func:`inference.mcmc.cache.canonical`) and the result is mapped back to
the program's own order of constants, so the fit of a shape is the same whichever of its
commutative variants the chain met first. The least-squares solve depends only on the data
and the canonical shape and is cached per (data, canonical shape); the proposal (mean and
Cholesky factor of the precision) also depends on the other sites' values and is cached per
incremental-likelihood view (``view.memo``).

:meth:`ConstantFitter.evidence` is the collapsed mode's Laplace evidence of a shape, an
approximation::

    log ∫ L(c)^β p(c) dc ≈ β log L(c*) + log p(c*) + (k/2) log 2π − ½ log det H

at the posterior mode c* (maximum of β log L + log p), with H the Gauss–Newton curvature
β Jᵀ diag(1/scale²) J + 1/s² there (exact for a program linear in its constants).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from inference.config import CACHE_SIZE
from inference.mcmc.cache import LRU, MISSING, Canonical, canonical, shape_of
from inference.mcmc.fastlik import ProgramLikelihood
from ppl.errors import PPLError
from ppl.program import Program

__all__ = ["ConstantFit", "ConstantFitter", "Evidence", "levenberg_marquardt", "shape_of"]

STARTS = (1.0, -1.0)
"""Starting points of the optimiser (each constant set to the value), tried in order until
one succeeds (a later start only when the earlier ones met invalid programs)."""
MAX_ITER = 20
"""Levenberg–Marquardt iterations per start (a proposal needs a good mode, not the last
digit: see docs/benchmarks.md, "Where the time goes")."""
FTOL = 1e-6
"""Relative decrease of the cost below which Levenberg–Marquardt stops."""
INFLATION = 1.5
"""Proposal standard deviations are the Laplace ones times this factor (heavier coverage)."""
LOG_2PI = math.log(2 * math.pi)
BAD_RESIDUAL = 1e8
"""Residual used where the program is invalid (keeps the optimiser away, deterministically)."""


class ConstantFit(NamedTuple):
    """A Gaussian N(mean, precision⁻¹) over a shape's constants, stored in canonical order."""

    mean: np.ndarray
    """c*(S) in the canonical order."""
    chol: np.ndarray
    """Lower Cholesky factor L of the precision in the canonical order (L Lᵀ = precision)."""
    perm: np.ndarray
    """Canonical constant j is the program's constant ``perm[j]``."""

    def log_density(self, c: np.ndarray) -> float:
        """log N(c; c*, precision⁻¹) of the program's constants ``c`` (−inf where it
        underflows). A permutation has unit Jacobian, so this is the canonical density at
        ``c[perm]``."""
        with np.errstate(all="ignore"):
            z = self.chol.T @ (c[self.perm] - self.mean)
            value = float(-0.5 * z @ z - 0.5 * len(c) * LOG_2PI
                          + np.log(np.diag(self.chol)).sum())
        return value if np.isfinite(value) else -math.inf

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """c ~ N(c*, precision⁻¹), in the program's order of constants."""
        z = rng.standard_normal(len(self.mean))
        with np.errstate(all="ignore"):
            draw = np.asarray(self.mean + np.linalg.solve(self.chol.T, z))
        out = np.empty_like(draw)
        out[self.perm] = draw
        return out


class Evidence(NamedTuple):
    """The Laplace approximation of a shape's constants' posterior, and its evidence."""

    log_z: float
    """log of the Laplace evidence ∫ L(c)^β p(c) dc (−inf when the fit failed)."""
    posterior: ConstantFit | None
    """N(c*, H⁻¹) at the mode (no inflation); None without constants or when it failed."""


class _LeastSquares(NamedTuple):
    x: np.ndarray
    jac: np.ndarray


class ConstantFitter:
    """Laplace fits of one program site's constants.

    The least-squares optimum c*(S) of the residuals y − loc(c) of the Normal factors
    (Levenberg–Marquardt from fixed starts) depends only on the canonical shape S and the
    data, so it is cached per (data, canonical shape) across changes of the other sites. The
    proposal precision is then formed from the current scales,

        P = β Σ_f J_fᵀ diag(1/scale_f²) J_f + 1/s² (for a Normal(μ, s) constant prior),

    divided by ``INFLATION²``: a deterministic function of the shape, the data and the other
    sites' current values, as the Hastings ratio needs. Views with other observation
    families get no fit (callers use prior proposals).

    Parameters
    ----------
    cache_size : int
        Capacity of each cache (0: recompute everything; the results are the same).
    stats : dict, optional
        ``[hits, misses]`` counters per cache name ("canonical", "solve"), shared with the
        kernel's statistics.

    Examples
    --------
    >>> ConstantFitter(cache_size=0).solves.capacity
    0
    """

    def __init__(self, cache_size: int = CACHE_SIZE,
                 stats: dict[str, list[int]] | None = None) -> None:
        stats = stats if stats is not None else {}
        self.canon = LRU(cache_size, stats.setdefault("canonical", [0, 0]))
        """Exact shape -> its :class:`~inference.mcmc.cache.Canonical` form."""
        self.solves = LRU(cache_size, stats.setdefault("solve", [0, 0]))
        """(data key, canonical shape) -> least-squares optimum and Jacobian (or None)."""

    def canonical(self, program: Program) -> Canonical:
        """The canonical form of ``program``'s shape (cached per exact shape)."""
        key = shape_of(program)
        form = self.canon.get(key)
        if form is MISSING:
            form = canonical(program)
            self.canon.put(key, form)
        assert isinstance(form, Canonical)
        return form

    def least_squares(self, canon: Canonical, view: ProgramLikelihood
                      ) -> _LeastSquares | None:
        """The least-squares optimum of the canonical shape on the view's data (cached)."""
        key = (view.data_key, canon.shape)
        ls = self.solves.get(key)
        if ls is MISSING:
            ls = self._solve(canon.program, view)
            self.solves.put(key, ls)
        return ls  # type: ignore[no-any-return]

    def fit(self, program: Program, view: ProgramLikelihood) -> ConstantFit | None:
        """The Laplace proposal of ``program``'s shape (None: use the prior instead)."""
        if not view.normal or not any(isinstance(v, float) for v in program.values):
            return None
        canon = self.canonical(program)
        key = ("fit", canon.shape)
        got = view.memo.get(key)
        if got is MISSING:
            got = self._proposal(canon, view)
            view.memo.put(key, got)
        return None if got is None else ConstantFit(got[0], got[1], canon.perm)

    def _proposal(self, canon: Canonical, view: ProgramLikelihood
                  ) -> tuple[np.ndarray, np.ndarray] | None:
        ls = self.least_squares(canon, view)
        if ls is None:
            return None
        k = len(ls.x)
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
        chol = _cholesky(precision / INFLATION**2)
        return None if chol is None else (ls.x, chol)

    def evidence(self, program: Program, view: ProgramLikelihood) -> Evidence:
        """The Laplace evidence of ``program``'s shape and the Gaussian N(c*, H⁻¹) of its
        constants (module docstring), cached per view; needs Normal factors and a Normal
        constant prior. Without constants it is exact: log Z = β log L(φ)."""
        if not any(isinstance(v, float) for v in program.values):
            return Evidence(view.beta * view.log_lik(program), None)
        canon = self.canonical(program)
        key = ("evidence", canon.shape)
        got = view.memo.get(key)
        if got is MISSING:
            got = self._evidence(canon, view)
            view.memo.put(key, got)
        log_z, mean, chol = got
        post = None if mean is None else ConstantFit(mean, chol, canon.perm)
        return Evidence(log_z, post)

    def _evidence(self, canon: Canonical, view: ProgramLikelihood
                  ) -> tuple[float, np.ndarray | None, np.ndarray | None]:
        prior = view.prior.constant_prior
        if not view.normal or prior.family != "normal":
            raise PPLError(f"The Laplace evidence of site '{view.site}' needs Normal "
                           f"observations and a Normal constant prior; got constant prior "
                           f"{prior!r}.")
        program = canon.program
        k = int(np.sum([isinstance(v, float) for v in program.values]))
        weights = np.concatenate([np.broadcast_to(1.0 / f.params["scale"], f.shape).reshape(-1)
                                  for f in view.factors]) * math.sqrt(view.beta)

        def residuals(c: np.ndarray) -> np.ndarray:
            data = _residuals_batch(program, view, c)
            out = np.concatenate([data * weights, (c - prior.a) / prior.b], axis=1)
            out[data[:, 0] == BAD_RESIDUAL] = BAD_RESIDUAL  # invalid stays marked
            return out

        ls = self.least_squares(canon, view)
        starts = [ls.x] if ls is not None else [np.full(k, s) for s in STARTS]
        best = _best_fit(residuals, starts)
        if best is None:
            return -math.inf, None, None
        _, mode, jac = best
        chol = _cholesky(jac.T @ jac)
        if chol is None:
            return -math.inf, None, None
        log_lik = float(view.log_lik_batch(program, mode[None, :])[0])
        log_prior = sum(prior.log_prob(float(c)) for c in mode)
        log_z = (view.beta * log_lik + log_prior + 0.5 * k * LOG_2PI
                 - float(np.log(np.diag(chol)).sum()))
        return (log_z if math.isfinite(log_z) else -math.inf), mode, chol

    def _solve(self, program: Program, view: ProgramLikelihood) -> _LeastSquares | None:
        k = int(np.sum([isinstance(v, float) for v in program.values]))
        best = _best_fit(lambda c: _residuals_batch(program, view, c),
                         [np.full(k, start) for start in STARTS])
        return None if best is None else _LeastSquares(best[1], best[2])


def _cholesky(precision: np.ndarray) -> np.ndarray | None:
    """Lower Cholesky factor of a finite, well-conditioned precision, else None."""
    if not np.all(np.isfinite(precision)):
        return None
    try:
        chol = np.linalg.cholesky(precision)
    except np.linalg.LinAlgError:
        return None
    if not np.all(np.isfinite(chol)) or np.min(np.diag(chol)) < 1e-8:
        return None
    return chol


def _residuals_batch(program: Program, view: ProgramLikelihood, c: np.ndarray) -> np.ndarray:
    """Residuals y − loc of the Normal factors at each row of ``c`` (m, k) -> (m, n); a row
    with a non-finite residual is ``BAD_RESIDUAL`` throughout."""
    locs = view.locations_batch(program, c)
    parts = [(f.y - loc).reshape(len(c), -1) for f, loc in zip(view.factors, locs, strict=True)]
    r = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
    bad = ~np.isfinite(r.sum(axis=1))
    if bad.any():
        r[bad] = BAD_RESIDUAL
    return r


def _best_fit(fun: Callable[[np.ndarray], np.ndarray], starts: list[np.ndarray]
              ) -> tuple[float, np.ndarray, np.ndarray] | None:
    """The Levenberg–Marquardt result from the first of ``starts`` that succeeds."""
    with np.errstate(all="ignore"):
        for start in starts:
            out = levenberg_marquardt(fun, start)
            if out is not None:
                return out
    return None


def _with_jacobian(fun: Callable[[np.ndarray], np.ndarray], x: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Residuals at x and their forward-difference Jacobian (steps h_j = 1e-7·max(1, |x_j|)),
    all from one batched call of k + 1 points."""
    h = 1e-7 * np.maximum(1.0, np.abs(x))
    rows = fun(np.vstack([x[None, :], x[None, :] + np.diag(h)]))
    r = rows[0]
    return r, np.asarray(((rows[1:] - r[None, :]) / h[:, None]).T)


def levenberg_marquardt(fun: Callable[[np.ndarray], np.ndarray], x0: np.ndarray,
                        max_iter: int = MAX_ITER
                        ) -> tuple[float, np.ndarray, np.ndarray] | None:
    """Minimise ½‖r(x)‖² from ``x0``; return (cost, x, Jacobian at x) or None.

    ``fun`` maps a batch of points (m, k) to their residuals (m, n). A plain
    Levenberg–Marquardt loop (Marquardt's diagonal scaling, λ adapted by factors 3 and 4),
    deterministic for a given start; each trial point is evaluated together with its
    forward-difference Jacobian in one batched call. Residuals equal to ``BAD_RESIDUAL`` mark
    invalid points; a start or an optimum there gives None.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.linspace(0.0, 1.0, 5)
    >>> out = levenberg_marquardt(lambda c: 2.0 * t - c[:, :1] * t, np.zeros(1))
    >>> round(float(out[1][0]), 6)
    2.0
    """
    x = np.asarray(x0, dtype=float)
    r, jac = _with_jacobian(fun, x)
    if np.any(np.abs(r) >= BAD_RESIDUAL):
        return None
    cost = float(r @ r)
    lam = 1e-3
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
            r_new, jac_new = _with_jacobian(fun, x + step)
            cost_new = float(r_new @ r_new)
            if np.isfinite(cost_new) and cost_new < cost:
                done = cost - cost_new <= FTOL * (1 + cost)
                x, r, jac, cost = x + step, r_new, jac_new, cost_new
                lam = max(lam / 3, 1e-12)
                improved = True
                break
            lam *= 4
        if not improved:
            break
        if done or float(np.max(np.abs(step))) <= 1e-10 * (1 + float(np.max(np.abs(x)))):
            break
    if np.any(np.abs(r) >= BAD_RESIDUAL) or not np.all(np.isfinite(jac)):
        return None
    return cost, x, jac
