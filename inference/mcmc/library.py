"""A library of small subtrees, scored against a node's targets: a data-driven proposal.

The library move of program MCMC (:func:`inference.mcmc.blocks.program.library`) replaces
the subtree at a node v by one that fits the node's targets z (the data pushed down
through the rest of the program, :func:`inference.residuals.subtree_targets`). The
candidates are every subtree of v's nonterminal with at most :data:`LIBRARY_SIZE` nodes and
at most one constant, evaluated once on the data. Given z on the m points where it exists
and a noise scale σ, entry T gets the log weight

    log p_s(T) − SSE_T / (2 σ_z²)                              (no constant)
    log p_s(T) + log π_c(ĉ) + log(√(2π) s_T) − SSE_T(ĉ) / (2 σ_z²)   (one constant c)

where p_s is the prior probability of T's structure, SSE the squared distance to z, and for
a tree affine in its constant, T(c) = T₀ + c G, ĉ = ⟨z − T₀, G⟩ / ⟨G, G⟩ is the least-squares
constant and s_T = σ_z / ‖G‖ its standard error (the Laplace approximation of the
constant's marginal, exact when T is affine in c). σ_z² = max(σ², min_T SSE_T / m) widens
the scale when no entry fits z to the noise (targets under a nonlinear ancestor).
Entries deeper or larger than v's budgets, constants not affine, non-finite outputs get
weight 0. A drawn constant is c ~ Normal(ĉ, s_T).

So q_lib(T | z) is an explicit density over trees and constants, computable for any T (0
outside the library), and depends on the program only through z: the library move's
reverse density uses the same table, and its Hastings ratio is exact.

Examples
--------
>>> import numpy as np
>>> from ppl import ProgramPrior
>>> prior = ProgramPrior("arith", inputs=["x"], max_depth=4)
>>> x = np.linspace(0.5, 2.0, 10)
>>> lib = SubtreeLibrary(prior, prior.grammar.start, {"x": x})
>>> table = lib.score(3.0 * x, sigma=0.1, depth_budget=4, size_budget=None)
>>> best = int(np.argmax(table.log_q))
>>> prior.grammar.format(*lib.tree(best, round(table.c_hat[best], 6)))
'(x * 3.0)'
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from inference.mcmc.cache import LRU
from inference.mcmc.exact import PLACEHOLDER, structures
from ppl.ops import KIND_CONSTANT
from ppl.prior import ProgramPrior
from ppl.program import Program

__all__ = ["FIT_CACHE", "LIBRARY_CELLS", "LIBRARY_SIZE", "Scores", "SubtreeLibrary",
           "constant_log_prob", "draw_index"]

LIBRARY_SIZE = 4
"""The largest subtree (in nodes) in a library."""
FIT_CACHE = 256
"""How many target vectors' least-squares fits a library keeps (:meth:`SubtreeLibrary.score`)."""
LIBRARY_CELLS = 2_000_000
"""The most (entries × points) a library holds: its size limit drops below
:data:`LIBRARY_SIZE` until the table fits (many inputs, many points)."""


def constant_log_prob(prior: ProgramPrior, c: np.ndarray) -> np.ndarray:
    """log p_c of each constant in ``c`` (the prior's constant prior, vectorised).

    Examples
    --------
    >>> import numpy as np
    >>> from ppl import ProgramPrior
    >>> prior = ProgramPrior("arith", inputs=["x"])
    >>> bool(np.allclose(constant_log_prob(prior, np.array([0.5, -2.0])),
    ...                  [prior.constant_prior.log_prob(0.5), prior.constant_prior.log_prob(-2.0)]))
    True
    """
    cp = prior.constant_prior
    if cp.family == "normal":
        z = (c - cp.a) / cp.b
        return np.asarray(-0.5 * z * z - math.log(cp.b) - 0.5 * math.log(2 * math.pi))
    if cp.family == "laplace":
        return np.asarray(-np.abs(c - cp.a) / cp.b - math.log(2 * cp.b))
    return np.where((cp.a <= c) & (c <= cp.b), -math.log(cp.b - cp.a), -np.inf)


def _gain(cross: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """The drop in squared error from fitting a constant along G: ⟨r, G⟩² / ⟨G, G⟩ (−inf,
    so that the entry is left out, where G vanishes)."""
    return np.where(norm > 0, cross * cross / np.where(norm > 0, norm, 1.0), -np.inf)


def draw_index(rng: np.random.Generator, cum: np.ndarray) -> int:
    """An index drawn with probability proportional to its increment of the running sums
    ``cum`` (unnormalised).

    Examples
    --------
    >>> import numpy as np
    >>> draw_index(np.random.default_rng(0), np.cumsum([0.0, 1.0, 0.0]))
    1
    """
    return min(int(np.searchsorted(cum, rng.random() * cum[-1], side="right")), len(cum) - 1)


@dataclass
class Scores:
    """One library scored against one target vector: per entry, log q_lib of its
    structure (−inf where excluded), the fitted constant and its standard error (NaN for
    entries without a constant)."""

    log_q: np.ndarray
    c_hat: np.ndarray
    c_sd: np.ndarray
    cumulative: np.ndarray | None = None
    """Running sums of exp(log_q), computed by the first draw (``SubtreeLibrary.sample``,
    ``sample_many``)."""


class SubtreeLibrary:
    """Every subtree of ``nonterminal`` with ≤ ``max_size`` nodes and ≤ 1 constant, with
    its outputs on the inputs ``env``.

    Parameters
    ----------
    prior : ProgramPrior
        The prior of the program site.
    nonterminal : int
        The subtrees' nonterminal.
    env : mapping
        Input name -> float64 array (n,): the data's inputs.
    max_size : int
        Largest subtree in nodes (lowered until entries × points ≤ :data:`LIBRARY_CELLS`).

    Examples
    --------
    >>> import numpy as np
    >>> from ppl import ProgramPrior
    >>> prior = ProgramPrior("tiny", inputs=["x"], max_depth=3)
    >>> lib = SubtreeLibrary(prior, 0, {"x": np.arange(3.0)}, max_size=2)
    >>> len(lib), lib.outputs.shape
    (4, (4, 3))
    """

    def __init__(self, prior: ProgramPrior, nonterminal: int, env: Mapping[str, np.ndarray],
                 max_size: int = LIBRARY_SIZE) -> None:
        self.prior = prior
        g = prior.grammar
        n = len(next(iter(env.values()))) if env else 1
        self.entries: list[tuple[tuple[int, ...], tuple[Any, ...]]] = []
        rows0, rows_g, log_p, depth, size, slot = [], [], [], [], [], []
        trees = structures(prior, nonterminal, None, max_size)
        while max_size > 1 and len(trees) * n > LIBRARY_CELLS:
            max_size -= 1
            trees = structures(prior, nonterminal, None, max_size)
        self.max_size = max_size
        """The size limit used (≤ the one asked for)."""
        for prods, values in trees:
            consts = [i for i, r in enumerate(prods)
                      if g.productions[r].op.kind == KIND_CONSTANT]
            if len(consts) > 1:
                continue
            tree = Program.unchecked(g, prods, values, prior.inputs)
            with np.errstate(all="ignore"):
                if consts:
                    t0, t1, t2 = (np.broadcast_to(np.asarray(tree.evaluate_numpy(
                        env, np.array([c])), dtype=np.float64), (n,)) for c in (0.0, 1.0, 2.0))
                    if not np.allclose(t2 - 2 * t1 + t0, 0.0, rtol=0, atol=1e-9) or \
                            not np.all(np.isfinite(t0 + t1 + t2)):
                        continue
                    grad = t1 - t0
                else:
                    t0 = np.broadcast_to(np.asarray(tree.evaluate_numpy(env, np.zeros(0)),
                                                    dtype=np.float64), (n,))
                    grad = np.zeros(n)
            self.entries.append((prods, values))
            rows0.append(t0)
            rows_g.append(grad)
            log_p.append(prior.subtree_log_prob(prods, values, constants=False))
            depth.append(tree.depth)
            size.append(len(prods))
            slot.append(consts[0] if consts else -1)
        self.outputs = np.array(rows0).reshape(len(self.entries), n)
        """(M, n) outputs (at c = 0 for an entry with a constant)."""
        self.grads = np.array(rows_g).reshape(len(self.entries), n)
        """(M, n) d output / d c (0 for entries without a constant)."""
        self.log_p = np.array(log_p)
        """Log prior probability of each entry's structure (constants integrated out)."""
        self.depth, self.size = np.array(depth), np.array(size)
        self.slot = np.array(slot)
        """Index of the constant leaf in the entry (−1: none)."""
        self.index = {entry: j for j, entry in enumerate(self.entries)}
        self.has_c = self.slot >= 0
        """Whether each entry has a constant."""
        self.constants = bool(self.has_c.any())
        """Whether any entry has one (else scoring skips the constants' least squares)."""
        self.zeros = np.zeros(len(self.entries))
        self._factors: dict[tuple[int | None, int | None], np.ndarray] = {}
        self._fits: dict[bytes, tuple[np.ndarray, np.ndarray, np.ndarray, int]] = {}
        self._clean: tuple[np.ndarray, ...] | None = None
        self.memo = LRU(FIT_CACHE)
        """Tables that moves derive from a target vector and the library (the assemble
        move's choice of free factors), keyed by their caller: like the fits, they change
        only when the rest of the program does."""
        self.outputs_f, self.grads_f = np.asfortranarray(self.outputs), \
            np.asfortranarray(self.grads)

    def __len__(self) -> int:
        return len(self.entries)

    def _fit(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """(SSE, least-squares constant, ‖G‖², points with a target) of every entry at
        targets ``z``: the part of a scoring that does not depend on σ or the budgets, kept
        for the last :data:`FIT_CACHE` target vectors (a node's targets change only when
        the rest of the program does; σ changes every sweep)."""
        key = z.tobytes()
        hit = self._fits.get(key)
        if hit is not None:
            return hit
        keep = np.isfinite(z)
        if keep.all():  # no copies of the table (column-major, as a column selection is)
            zk, f0, g, m = z, self.outputs_f, self.grads_f, max(z.size, 1)
        else:
            zk, f0, g = z[keep], self.outputs[:, keep], self.grads[:, keep]
            m = max(int(keep.sum()), 1)
        has_c = self.has_c
        with np.errstate(all="ignore"):
            if self.constants:
                gg = np.einsum("ij,ij->i", g, g)
                c_hat = np.where(has_c, np.einsum("ij,ij->i", zk - f0, g) / gg, np.nan)
                resid = zk - f0 - np.where(has_c, c_hat, 0.0)[:, None] * g
            else:  # the same numbers without the constants' columns (all zero)
                gg = self.zeros
                c_hat = np.full(len(self), np.nan)
                resid = zk - f0
            sse = np.einsum("ij,ij->i", resid, resid)
        if len(self._fits) >= FIT_CACHE:
            del self._fits[next(iter(self._fits))]
        self._fits[key] = out = (sse, c_hat, gg, m)
        return out

    def score(self, z: np.ndarray, sigma: float, depth_budget: int | None,
              size_budget: int | None) -> Scores:
        """The entries' log q_lib (structures) for targets ``z`` (NaN: no target at that
        point), noise scale ``sigma`` and a node's budgets (module docstring).

        Examples
        --------
        >>> import numpy as np
        >>> from ppl import ProgramPrior
        >>> prior = ProgramPrior("arith", inputs=["x"], max_depth=3)
        >>> lib = SubtreeLibrary(prior, 0, {"x": np.linspace(1, 2, 5)}, max_size=3)
        >>> s = lib.score(np.linspace(1, 2, 5) + 0.5, 0.01, 3, 3)
        >>> round(float(np.exp(s.log_q).sum()), 12)
        1.0
        """
        sse, c_hat, gg, m = self._fit(z)
        has_c = self.has_c
        with np.errstate(all="ignore"):
            ok = np.isfinite(sse) & (~has_c | (gg > 0)) & (self.depth <= (
                depth_budget if depth_budget is not None else 10**9))
            if size_budget is not None:
                ok &= self.size <= size_budget
            if not ok.any():
                return Scores(np.full(len(self), -np.inf), c_hat, np.full(len(self), np.nan))
            var = max(sigma * sigma, float(sse[ok].min()) / m, 1e-300)
            c_sd = np.sqrt(var / gg)
            log_w = self.log_p - sse / (2 * var)
            with_c = ok & has_c
            log_w[with_c] += constant_log_prob(self.prior, c_hat[with_c]) + \
                0.5 * math.log(2 * math.pi) + np.log(c_sd[with_c])
        log_w = np.where(ok & np.isfinite(log_w), log_w, -np.inf)
        top = log_w.max()
        if not np.isfinite(top):
            return Scores(np.full(len(self), -np.inf), c_hat, c_sd)
        log_q = log_w - top - math.log(float(np.exp(log_w - top).sum()))
        return Scores(log_q, c_hat, c_sd)

    def tree(self, j: int, c: float | None = None) -> tuple[tuple[int, ...], tuple[Any, ...]]:
        """Entry ``j`` as (productions, values), its constant set to ``c``.

        Examples
        --------
        >>> import numpy as np
        >>> from ppl import ProgramPrior
        >>> prior = ProgramPrior("arith", inputs=["x"], max_depth=2)
        >>> lib = SubtreeLibrary(prior, 0, {"x": np.arange(3.0)}, max_size=1)
        >>> [prior.grammar.format(*lib.tree(j, 2.5)) for j in range(len(lib))]
        ['x', '2.5']
        """
        prods, values = self.entries[j]
        k = int(self.slot[j])
        if k < 0:
            return prods, values
        return prods, values[:k] + (float(c if c is not None else PLACEHOLDER),) + \
            values[k + 1:]

    def factors(self, depth_budget: int | None, size_budget: int | None) -> np.ndarray:
        """log q_0 of each entry as a free factor: the prior of its structure renormalised
        over the constant-free entries within the budgets whose outputs are finite at
        every point (−inf for the others; all −inf when there is none). Computed once per
        budgets.

        Examples
        --------
        >>> import numpy as np
        >>> from ppl import ProgramPrior
        >>> prior = ProgramPrior("arith", inputs=["x"], max_depth=3)
        >>> lib = SubtreeLibrary(prior, 0, {"x": np.linspace(1, 2, 4)}, max_size=3)
        >>> q0 = lib.factors(2, 3)
        >>> round(float(np.exp(q0).sum()), 12), bool(np.isinf(q0[lib.has_c]).all())
        (1.0, True)
        """
        key = (depth_budget, size_budget)
        out = self._factors.get(key)
        if out is None:
            ok = ~self.has_c & np.isfinite(self.outputs).all(axis=1)
            if depth_budget is not None:
                ok &= self.depth <= depth_budget
            if size_budget is not None:
                ok &= self.size <= size_budget
            out = np.full(len(self), -np.inf)
            if ok.any():
                top = float(self.log_p[ok].max())
                out[ok] = self.log_p[ok] - top - math.log(
                    float(np.exp(self.log_p[ok] - top).sum()))
            self._factors[key] = out
        return out

    def least_errors(self, targets: np.ndarray, weights: np.ndarray,
                     depth_budget: int | None, size_budgets: np.ndarray | None) -> np.ndarray:
        """Per row p of ``targets`` (P, n), the least weighted squared error
        Σᵢ wₚᵢ (zₚᵢ − Tᵢ)² over the entries T within the depth budget and
        ``size_budgets[p]`` nodes whose outputs (and squares) are finite at every point (an
        entry with a constant at its weighted least-squares constant); +inf where none is
        (or the error overflows). Points with
        a non-finite target or weight count with weight 0. One (P, M) table from five
        matrix products: the fits of many candidate targets at the cost of one scoring
        each (the assemble move's guided factor choice).

        Examples
        --------
        >>> import numpy as np
        >>> from ppl import ProgramPrior
        >>> prior = ProgramPrior("arith", inputs=["x"], max_depth=3)
        >>> x = np.linspace(1.0, 2.0, 5)
        >>> lib = SubtreeLibrary(prior, 0, {"x": x}, max_size=3)
        >>> err = lib.least_errors(np.stack([x * x, np.exp(3 * x)]), np.ones((2, 5)), 2, None)
        >>> bool(err[0] < 1e-20), bool(err[1] > 1.0)
        (True, True)
        """
        if self._clean is None:  # entries whose outputs and their products are finite
            with np.errstate(all="ignore"):
                ok = np.isfinite(self.outputs * self.outputs).all(axis=1) & \
                    np.isfinite(self.grads * self.grads).all(axis=1) & \
                    np.isfinite(self.outputs * self.grads).all(axis=1)
            free, const = np.flatnonzero(ok & ~self.has_c), np.flatnonzero(ok & self.has_c)
            o, oc, gc = self.outputs[free], self.outputs[const], self.grads[const]
            self._clean = (free, const, o.T, (o * o).T, oc.T, (oc * oc).T, gc.T,
                           (oc * gc).T, (gc * gc).T)
        free, const, o, oo, oc, ooc, gc, ogc, ggc = self._clean
        best = np.full(len(targets), np.inf)
        with np.errstate(all="ignore"):
            w = np.where(np.isfinite(targets) & np.isfinite(weights), weights, 0.0)
            z = np.where(w > 0, targets, 0.0)
            wz = w * z
            zz = (wz * z).sum(axis=1)[:, None]
            groups = []
            if free.size:
                groups.append((free, zz - 2 * (wz @ o) + w @ oo))
            if const.size:
                groups.append((const, zz - 2 * (wz @ oc) + w @ ooc
                               - _gain(wz @ gc - w @ ogc, w @ ggc)))
            for cols, err in groups:
                ok = np.isfinite(err)
                if depth_budget is not None:
                    ok &= self.depth[cols] <= depth_budget
                if size_budgets is not None:
                    ok &= self.size[cols][None, :] <= np.asarray(size_budgets)[:, None]
                best = np.minimum(best, np.where(ok, np.maximum(err, 0.0), np.inf).min(
                    axis=1, initial=np.inf))
        return np.asarray(best)

    def log_prob(self, scores: Scores, prods: tuple[int, ...], values: tuple[Any, ...]
                 ) -> float:
        """log q_lib(T | z) of a subtree (structure and constant); −inf outside the
        library.

        Examples
        --------
        >>> import numpy as np
        >>> from ppl import ProgramPrior
        >>> prior = ProgramPrior("arith", inputs=["x"], max_depth=2)
        >>> lib = SubtreeLibrary(prior, 0, {"x": np.arange(3.0)}, max_size=1)
        >>> s = lib.score(np.arange(3.0), 0.1, 2, None)
        >>> lib.log_prob(s, *lib.tree(0)) > -1e-6     # x fits z = x: q ≈ 1
        True
        """
        g = self.prior.grammar
        key_values = tuple(PLACEHOLDER if g.productions[r].op.kind == KIND_CONSTANT else v
                           for r, v in zip(prods, values, strict=True))
        j = self.index.get((prods, key_values))
        if j is None:
            return -math.inf
        out = float(scores.log_q[j])
        k = int(self.slot[j])
        if k >= 0 and out > -math.inf:
            c, mu, sd = float(values[k]), float(scores.c_hat[j]), float(scores.c_sd[j])
            out += -0.5 * ((c - mu) / sd) ** 2 - math.log(sd) - 0.5 * math.log(2 * math.pi)
        return out

    @staticmethod
    def _cumulative(scores: Scores) -> np.ndarray:
        """Running sums of exp(log_q), computed once per scoring (every draw reads them)."""
        if scores.cumulative is None:
            scores.cumulative = np.cumsum(np.exp(scores.log_q))
        return scores.cumulative

    def sample_many(self, rng: np.random.Generator, scores: Scores, k: int
                    ) -> tuple[np.ndarray, np.ndarray]:
        """k independent draws of :meth:`sample` as arrays: (entry indices, constants; NaN
        for entries without one).

        Examples
        --------
        >>> import numpy as np
        >>> from ppl import ProgramPrior
        >>> prior = ProgramPrior("arith", inputs=["x"], max_depth=2)
        >>> x = np.linspace(1.0, 2.0, 5)
        >>> lib = SubtreeLibrary(prior, 0, {"x": x}, max_size=3)
        >>> s = lib.score(2.5 * x, 0.01, 2, 3)
        >>> j, c = lib.sample_many(np.random.default_rng(0), s, 3)
        >>> [prior.grammar.format(*lib.tree(i, round(v, 2))) for i, v in zip(j, c)]
        ['(2.5 * x)', '(x * 2.5)', '(x * 2.5)']
        """
        cum = self._cumulative(scores)
        j = np.minimum(np.searchsorted(cum, rng.random(k) * cum[-1], side="right"),
                       len(cum) - 1)
        noise = rng.standard_normal(k)
        with np.errstate(all="ignore"):
            c = np.where(self.has_c[j], scores.c_hat[j] + scores.c_sd[j] * noise, np.nan)
        return j, c

    def entry_outputs(self, j: np.ndarray, c: np.ndarray) -> np.ndarray:
        """(k, n) outputs of entries ``j`` with constants ``c`` (affine in the constant)."""
        return np.asarray(self.outputs[j] + np.where(self.has_c[j], c, 0.0)[:, None]
                          * self.grads[j])

    def entry_log_prob(self, scores: Scores, j: np.ndarray, c: np.ndarray) -> np.ndarray:
        """log q_lib of entries ``j`` with constants ``c`` (:meth:`log_prob`, vectorised)."""
        with np.errstate(all="ignore"):
            u = (c - scores.c_hat[j]) / scores.c_sd[j]
            dens = -0.5 * u * u - np.log(scores.c_sd[j]) - 0.5 * math.log(2 * math.pi)
        return np.asarray(scores.log_q[j] + np.where(self.has_c[j], dens, 0.0))

    def entry_prior(self, j: np.ndarray, c: np.ndarray) -> np.ndarray:
        """log prior of entries ``j`` with constants ``c``: their structure's and their
        constant's (``ProgramPrior.subtree_log_prob``, vectorised)."""
        with np.errstate(all="ignore"):
            dens = constant_log_prob(self.prior, np.where(self.has_c[j], c, 0.0))
        return np.asarray(self.log_p[j] + np.where(self.has_c[j], dens, 0.0))

    def sample(self, rng: np.random.Generator, scores: Scores
               ) -> tuple[tuple[int, ...], tuple[Any, ...]]:
        """T ~ q_lib(· | z): an entry by its weight, its constant from Normal(ĉ, s)."""
        cum = self._cumulative(scores)
        j = draw_index(rng, cum)
        if self.slot[j] < 0:
            return self.tree(j)
        return self.tree(j, float(scores.c_hat[j] + scores.c_sd[j] * rng.standard_normal()))
