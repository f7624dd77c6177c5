"""Guides of ``method="svi"`` for models with program sites (DESIGN.md §5, "Variational").

:class:`ProgramGuide` is a distribution over exactly the trees of a site's
:class:`~ppl.ProgramPrior` (same grammar, same ``max_depth``): a grammar whose production
choice at a node depends on its **context** ``(parent production, child position, depth
budget)``. With ``A`` the node's nonterminal and ``b`` its depth budget (``max_depth`` at the
root, one less per level), it picks production ``r`` with probability

    q(r | ctx) = softmax_r(θ_ctx + m_ctx),  m_ctx(r) = 0 if w(r) Π_{B ∈ children(r)} Z_{b−1}(B) > 0
                                                       else −inf,

the mask ``m`` being the prior's own (:mod:`ppl._tables`: a production is possible when
its children can complete within ``b − 1`` levels), so the guide's support is the prior's.
An input leaf picks its name by learnable logits per (context, production). So

    log q(φ) = Σ_nodes log q(r_u | ctx_u) + Σ_input leaves log q(name_u | ctx_u, r_u)
               + log q(c | structure(φ))

exactly. The logits start at ``θ_ctx(r) = log w(r) Π_B Z_{b−1}(B)``: the prior's own choice
probabilities under a depth budget, so an untrained guide *is* the prior (its structure
part; constants start at the prior's moments).

:class:`ConstantGuides` holds a Normal guide per constant slot of each structure (a
structure is the tree with its constants blanked out), created when the structure is first
drawn; :class:`SiteGuide` is the mean-field Normal guide of one continuous site, in its
unconstrained space like Pyro's ``AutoNormal``.

Examples
--------
>>> import numpy as np
>>> import ppl
>>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=3)
>>> guide = ProgramGuide(prior)
>>> f = prior.parse("(x + sin(1))")
>>> round(guide.log_prob(f), 10) == round(prior.log_density(f), 10)   # untrained: the prior
True
>>> draft = guide.sample(np.random.default_rng(0), 1)[0]
>>> prior.log_density(guide.program(draft, [])) > -np.inf
True
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.distributions import Laplace, Uniform, biject_to, constraints
from torch.distributions import Normal as _Normal

from ppl.errors import PPLError
from ppl.ops import KIND_CONSTANT, KIND_INPUT
from ppl.prior import ProgramPrior
from ppl.program import Program

__all__ = ["INIT_SCALE", "ConstantGuides", "Draft", "ProgramGuide", "SiteGuide",
           "check_prior"]

Normal: Any = _Normal  # untyped in torch
_interval: Any = constraints.interval

INIT_SCALE = 0.1
"""Initial scale of a continuous site's Normal guide (Pyro's ``AutoNormal`` default)."""


def check_prior(site: str, prior: ProgramPrior) -> None:
    """Refuse a program prior the guide cannot match: it needs a ``max_depth`` and no
    ``max_size`` (a size limit conditions every choice on the sizes of the siblings yet to
    come, which a context of parent, position and depth does not see).

    Examples
    --------
    >>> import ppl
    >>> check_prior("f", ppl.ProgramPrior("tiny", inputs=["x"], max_depth=3))
    >>> check_prior("f", ppl.ProgramPrior("tiny", inputs=["x"], max_depth=3, max_size=5))
    Traceback (most recent call last):
    ...
    ppl.errors.PPLError: method='svi' cannot fit program site 'f': its prior has max_size=5, and
    the program guide matches a prior limited by max_depth only. Drop max_size (max_depth
    bounds the trees), or use method='mcmc'.
    """
    if prior.max_size is not None:
        raise PPLError(f"method='svi' cannot fit program site {site!r}: its prior has "
                       f"max_size={prior.max_size}, and the program guide matches a prior "
                       "limited by max_depth only. Drop max_size (max_depth bounds the trees), "
                       "or use method='mcmc'.")
    if prior.max_depth is None:
        raise PPLError(f"method='svi' cannot fit program site {site!r}: its prior has no "
                       "max_depth, and the program guide conditions on the depth budget. Set "
                       "max_depth on the ProgramPrior, or use method='mcmc'.")


class Draft(NamedTuple):
    """A tree drawn from a :class:`ProgramGuide` (constants not yet drawn), with the
    choices that made it."""

    prods: tuple[int, ...]
    """Productions in preorder."""
    values: tuple[Any, ...]
    """Leaf values in preorder: input names, None elsewhere (constants included)."""
    rows: tuple[int, ...]
    """Context row of each node's production choice."""
    input_rows: tuple[int, ...]
    """Context row of each input leaf's name choice."""
    input_picks: tuple[int, ...]
    """Index (in the prior's inputs) of each input leaf's name."""
    slots: tuple[int, ...]
    """Preorder positions of the constant leaves."""

    @property
    def key(self) -> Hashable:
        """The structure: productions and input names (constants blanked)."""
        return (self.prods, self.values)


class ProgramGuide:
    """q(φ) over the trees of ``prior``, with context-dependent production logits (module
    docstring). ``logits`` and ``input_logits`` are the learnable torch parameters.

    Parameters
    ----------
    prior : ProgramPrior
        The site's prior, limited by ``max_depth`` only (:func:`check_prior`).
    """

    def __init__(self, prior: ProgramPrior) -> None:
        check_prior("program", prior)
        assert prior.max_depth is not None
        self.prior = prior
        g = prior.grammar
        tables = prior.tables
        self._children = [p.children for p in g.productions]
        self._kind = [p.op.kind for p in g.productions]
        z = tables.Z
        self._allowed = [[[r for r in tables.prods_of[a] if g.probs[r] > 0 and
                           all(z[b - 1, c] > 0 for c in self._children[r])]
                          for a in range(len(g.nonterminals))]
                         for b in range(prior.max_depth + 1)]
        contexts: list[tuple[int, int, int, int]] = [(-1, 0, prior.max_depth, -1)]
        nonterminal = [g.start]
        for b in range(prior.max_depth - 1, 0, -1):
            for r, kids in enumerate(self._children):
                if not kids or g.probs[r] == 0 or any(z[b, c] == 0 for c in kids):
                    continue
                for pos, c in enumerate(kids):
                    lefts = self._allowed[b][kids[pos - 1]] if pos else [-1]
                    contexts += [(r, pos, b, left) for left in lefts]
                    nonterminal += [c] * len(lefts)
        self.contexts = tuple(contexts)
        """(parent production (−1 at the root), child position, depth budget, left
        sibling's production (−1 for a first child)) of each row of ``logits``."""
        self._row = {c: i for i, c in enumerate(contexts)}
        n_prods = len(g.productions)
        mass = np.zeros((len(contexts), n_prods))
        for i, (a, (_, _, b, _)) in enumerate(zip(nonterminal, contexts, strict=True)):
            for r in tables.prods_of[a]:
                mass[i, r] = g.probs[r] * math.prod(z[b - 1, c] for c in self._children[r])
        with np.errstate(divide="ignore"):
            log_mass = np.log(mass)
        self.mask = torch.as_tensor(np.where(mass > 0, 0.0, -math.inf))
        """0 where the prior allows a production in a context, −inf elsewhere."""
        self.logits = torch.tensor(np.where(mass > 0, log_mass, 0.0), requires_grad=True)
        """θ: (contexts, productions) learnable logits, initialised to the prior's."""
        pairs = [(i, r) for i in range(len(contexts)) for r in range(n_prods)
                 if mass[i, r] > 0 and self._kind[r] == KIND_INPUT]
        self._input_row = {p: j for j, p in enumerate(pairs)}
        probs = np.asarray(prior.input_probs, dtype=np.float64)
        with np.errstate(divide="ignore"):
            log_in = np.log(probs)
        self.input_mask = torch.as_tensor(np.where(probs > 0, 0.0, -math.inf))
        """0 for inputs of positive prior probability, −inf for the others."""
        self.input_logits = torch.tensor(
            np.tile(np.where(probs > 0, log_in, 0.0), (len(pairs), 1)).reshape(
                len(pairs), len(probs)), requires_grad=True)
        """(input leaf contexts, inputs) learnable logits of an input leaf's name."""

    def parameters(self) -> list[torch.Tensor]:
        """The learnable tensors."""
        return [self.logits, self.input_logits]

    def init_from(self, programs: Sequence[Program], pseudo_count: float) -> int:
        """Set the logits to the choices made by ``programs`` (e.g. draws of a trained
        amortized proposal on the data), smoothed toward the current guide: in each
        context, q(r) ∝ pseudo_count · q_now(r) + (the times r was chosen there), so the
        support stays the prior's. Programs outside the support are skipped; returns how
        many were used.

        Examples
        --------
        >>> import ppl
        >>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=3)
        >>> guide = ProgramGuide(prior)
        >>> guide.init_from([prior.parse("sin(x)")] * 9, pseudo_count=1.0)
        9
        >>> p = math.exp(guide.log_prob(prior.parse("sin(x)")))
        >>> 0.8 < p < 1.0 and guide.log_prob(prior.parse("(x + 1)")) > -math.inf
        True
        """
        if not pseudo_count > 0:
            raise PPLError(f"pseudo_count must be > 0 (it keeps the prior's support); got "
                           f"{pseudo_count!r}.")
        drafts = [d for d in (self.draft(p) for p in programs) if d is not None]
        with torch.no_grad():
            counts = torch.zeros_like(self.logits)
            in_counts = torch.zeros_like(self.input_logits)
            for d in drafts:
                for row, r in zip(d.rows, d.prods, strict=True):
                    counts[row, r] += 1.0
                for row, k in zip(d.input_rows, d.input_picks, strict=True):
                    in_counts[row, k] += 1.0
            for logits, mask, n in ((self.logits, self.mask, counts),
                                    (self.input_logits, self.input_mask, in_counts)):
                now = torch.softmax(logits + mask, dim=-1)
                mass = pseudo_count * now + n
                logits.copy_(torch.where(mass > 0, torch.log(mass), torch.zeros_like(mass)))
        return len(drafts)

    # ------------------------------------------------------------------ sampling
    def _cumulative(self) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            p = torch.softmax(self.logits + self.mask, dim=-1).numpy()
            q = torch.softmax(self.input_logits + self.input_mask, dim=-1).numpy()
        return np.cumsum(p, axis=1), np.cumsum(q, axis=1)

    def sample(self, rng: np.random.Generator, n: int) -> list[Draft]:
        """``n`` independent trees from q (their constants are drawn by
        :class:`ConstantGuides`)."""
        cum, in_cum = self._cumulative()
        return [self._one(rng, cum, in_cum) for _ in range(n)]

    def _one(self, rng: np.random.Generator, cum: np.ndarray, in_cum: np.ndarray) -> Draft:
        prods: list[int] = []
        values: list[Any] = []
        rows: list[int] = []
        in_rows: list[int] = []
        picks: list[int] = []
        slots: list[int] = []
        walk = _Frontier(self)
        row = walk.pop()
        while row is not None:
            r = int(np.searchsorted(cum[row], rng.random() * cum[row, -1], side="right"))
            kind = self._kind[r]
            if kind == KIND_INPUT:
                j = self._input_row[(row, r)]
                k = int(np.searchsorted(in_cum[j], rng.random() * in_cum[j, -1], side="right"))
                in_rows.append(j)
                picks.append(k)
                values.append(self.prior.inputs[k])
            else:
                if kind == KIND_CONSTANT:
                    slots.append(len(prods))
                values.append(None)
            prods.append(r)
            rows.append(row)
            walk.chose(r)
            row = walk.pop()
        return Draft(tuple(prods), tuple(values), tuple(rows), tuple(in_rows), tuple(picks),
                     tuple(slots))

    def program(self, draft: Draft, constants: Sequence[float] | np.ndarray) -> Program:
        """The Program of ``draft`` with ``constants`` in its constant slots (preorder)."""
        values = list(draft.values)
        for i, c in zip(draft.slots, constants, strict=True):
            values[i] = float(c)
        return Program.unchecked(self.prior.grammar, draft.prods, tuple(values),
                                 self.prior.inputs)

    # ------------------------------------------------------------------ densities
    def draft(self, program: Program) -> Draft | None:
        """The choices that make ``program`` (None when it is outside the support)."""
        if program.grammar.fingerprint != self.prior.grammar.fingerprint:
            return None
        rows: list[int] = []
        in_rows: list[int] = []
        picks: list[int] = []
        slots: list[int] = []
        values: list[Any] = []
        walk = _Frontier(self)
        mask = self.mask.numpy()
        for r, v in zip(program.prods, program.values, strict=True):
            row = walk.pop()
            if row is None or mask[row, r] != 0.0:
                return None
            if self._kind[r] == KIND_INPUT:
                if v not in self.prior.inputs:
                    return None
                k = self.prior.inputs.index(v)
                if self.input_mask[k] != 0.0:
                    return None
                in_rows.append(self._input_row[(row, r)])
                picks.append(k)
            elif self._kind[r] == KIND_CONSTANT:
                slots.append(len(rows))
            values.append(v if self._kind[r] == KIND_INPUT else None)
            rows.append(row)
            walk.chose(r)
        return Draft(tuple(program.prods), tuple(values), tuple(rows), tuple(in_rows),
                     tuple(picks), tuple(slots))

    def structure_log_prob(self, drafts: Sequence[Draft]) -> torch.Tensor:
        """(n,) log q(structure) of each draft (its node and input-name choices), a torch
        tensor differentiable in ``logits`` and ``input_logits``."""
        n = len(drafts)
        rows = torch.tensor([i for d in drafts for i in d.rows])
        prods = torch.tensor([r for d in drafts for r in d.prods])
        seg = torch.tensor([k for k, d in enumerate(drafts) for _ in d.rows])
        lsm = torch.log_softmax(self.logits[rows] + self.mask[rows], dim=-1)
        out = torch.zeros(n, dtype=lsm.dtype).index_add(0, seg, lsm.gather(1, prods[:, None])[:, 0])
        in_rows = [j for d in drafts for j in d.input_rows]
        if in_rows:
            picks = torch.tensor([k for d in drafts for k in d.input_picks])
            iseg = torch.tensor([k for k, d in enumerate(drafts) for _ in d.input_rows])
            ilsm = torch.log_softmax(self.input_logits[in_rows] + self.input_mask, dim=-1)
            out = out.index_add(0, iseg, ilsm.gather(1, picks[:, None])[:, 0])
        return out

    def log_prob(self, program: Program, constants: ConstantGuides | None = None) -> float:
        """log q(φ): the structure's choices plus, when it has constants, log q(c |
        structure) under ``constants`` (default: the untrained constant guide).

        Examples
        --------
        >>> import ppl
        >>> prior = ppl.ProgramPrior("arith", inputs=["x"], max_depth=2)
        >>> guide = ProgramGuide(prior)
        >>> f = prior.parse("(x * 2.0)")
        >>> round(guide.log_prob(f), 6) == round(prior.log_density(f), 6)
        True
        >>> guide.log_prob(prior.parse("sin(sin(x))"))          # depth 3 > max_depth
        -inf
        """
        draft = self.draft(program)
        if draft is None:
            return -math.inf
        with torch.no_grad():
            total = float(self.structure_log_prob([draft])[0])
            if draft.slots:
                book = constants if constants is not None else ConstantGuides(self.prior)
                total += float(book.log_prob(draft, torch.as_tensor(program.constants)))
        return total


class _Frontier:
    """The pending nodes of a preorder walk over a tree of a :class:`ProgramGuide`: each
    is (parent production, child position, depth budget, the productions chosen so far for
    the parent's children), so a node's context row is known when it is reached."""

    def __init__(self, guide: ProgramGuide) -> None:
        self.rows = guide._row
        self.children = guide._children
        assert guide.prior.max_depth is not None
        self.stack: list[tuple[int, int, int, list[int] | None]] = [
            (-1, 0, guide.prior.max_depth, None)]
        self.current: tuple[list[int] | None, int, int] = (None, 0, 0)

    def pop(self) -> int | None:
        """The context row of the next node in preorder (None when the tree is complete)."""
        if not self.stack:
            return None
        parent, pos, b, siblings = self.stack.pop()
        self.current = (siblings, pos, b)
        left = siblings[pos - 1] if siblings is not None and pos else -1
        return self.rows[(parent, pos, b, left)]

    def chose(self, production: int) -> None:
        """Record the production of the node last popped; its children become pending."""
        siblings, pos, b = self.current
        if siblings is not None:
            siblings[pos] = production
        kids = self.children[production]
        mine = [-1] * len(kids)
        for p in range(len(kids) - 1, -1, -1):
            self.stack.append((production, p, b - 1, mine))


class ConstantGuides:
    """A Normal guide per constant slot of each structure, in the unconstrained space of
    the prior's constants (identity for Normal and Laplace priors, an interval bijection
    for a Uniform one), created at the prior's moments when a structure is first drawn.

    ``on_new(params)`` is called with the two new tensors (loc, log scale) of each new
    structure, so an optimiser can take them on. ``init(program)``, when given, returns
    (loc, scale) arrays for a new structure (``program`` has its constants at 0), or None
    for the prior's moments: the program path passes the data-driven Laplace fit of the
    structure's constants (:mod:`inference.mcmc.laplace`), so a structure is not judged
    on constants drawn from the prior before its guide has learnt any.

    Examples
    --------
    >>> import numpy as np
    >>> import ppl
    >>> prior = ppl.ProgramPrior("arith", inputs=["x"], max_depth=2)
    >>> book = ConstantGuides(prior)
    >>> draft = ProgramGuide(prior).draft(prior.parse("(x * 2.0)"))
    >>> c, log_q = book.rsample(draft, np.random.default_rng(0))
    >>> c.shape, len(book)
    (torch.Size([1]), 1)
    """

    def __init__(self, prior: ProgramPrior, on_new: Any = None, init: Any = None) -> None:
        cp = prior.constant_prior
        self.prior = prior
        self.init_fn = init if cp.family != "uniform" else None
        self.family = cp.family
        if cp.family == "uniform":
            self.transform: Any = biject_to(_interval(cp.a, cp.b))
            self.prior_fn: Any = Uniform(torch.tensor(cp.a, dtype=torch.float64),
                                   torch.tensor(cp.b, dtype=torch.float64))
            self.init = (0.0, 1.0)
        else:
            self.transform = biject_to(constraints.real)
            fn = Normal if cp.family == "normal" else Laplace
            self.prior_fn = fn(torch.tensor(cp.a, dtype=torch.float64),
                             torch.tensor(cp.b, dtype=torch.float64))
            self.init = (cp.a, cp.b * (math.sqrt(2.0) if cp.family == "laplace" else 1.0))
        self.on_new = on_new
        self.params: dict[Hashable, tuple[torch.Tensor, torch.Tensor]] = {}
        """Structure key -> (loc, log scale) of its constants' guide."""

    def __len__(self) -> int:
        return len(self.params)

    def _get(self, draft: Draft, create: bool) -> tuple[torch.Tensor, torch.Tensor]:
        got = self.params.get(draft.key)
        if got is not None:
            return got
        k = len(draft.slots)
        loc = torch.full((k,), float(self.init[0]), dtype=torch.float64)
        log_scale = torch.full((k,), math.log(self.init[1]), dtype=torch.float64)
        fitted = None if self.init_fn is None else self.init_fn(
            Program.unchecked(self.prior.grammar, draft.prods,
                              tuple(0.0 if i in draft.slots else v
                                    for i, v in enumerate(draft.values)), self.prior.inputs))
        if fitted is not None:
            loc = torch.as_tensor(np.asarray(fitted[0], dtype=np.float64))
            log_scale = torch.as_tensor(np.log(np.asarray(fitted[1], dtype=np.float64)))
        if not create:
            return loc, log_scale
        return self.add(draft.key, loc, log_scale)

    def add(self, key: Hashable, loc: torch.Tensor, log_scale: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor]:
        """Hold (loc, log scale) as structure ``key``'s constant guide (learnable copies,
        handed to ``on_new``): how a new structure joins, and how a resumed fit brings
        back a checkpointed one.

        Examples
        --------
        >>> import ppl
        >>> book = ConstantGuides(ppl.ProgramPrior("arith", inputs=["x"], max_depth=2))
        >>> loc, log_scale = book.add("k", torch.zeros(2), torch.zeros(2))
        >>> len(book), loc.requires_grad
        (1, True)
        """
        got = (loc.detach().clone().requires_grad_(True),
               log_scale.detach().clone().requires_grad_(True))
        self.params[key] = got
        if self.on_new is not None:
            self.on_new(list(got))
        return got

    def rsample(self, draft: Draft, rng: np.random.Generator
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(constants, log q(constants | structure)), reparameterised: differentiable in
        the structure's loc and log scale (created if new)."""
        loc, log_scale = self._get(draft, create=True)
        z = loc + log_scale.exp() * torch.as_tensor(rng.standard_normal(len(draft.slots)))
        c = self.transform(z)
        log_q = Normal(loc, log_scale.exp()).log_prob(z).sum() - \
            self.transform.log_abs_det_jacobian(z, c).sum()
        return c, log_q

    def log_prob(self, draft: Draft, c: torch.Tensor) -> torch.Tensor:
        """log q(c | structure) (the untrained guide for a structure never drawn)."""
        loc, log_scale = self._get(draft, create=False)
        z = self.transform.inv(c)
        out: torch.Tensor = Normal(loc, log_scale.exp()).log_prob(z).sum() - \
            self.transform.log_abs_det_jacobian(z, c).sum()
        return out

    def prior_log_prob(self, c: torch.Tensor) -> torch.Tensor:
        """Σ log p_c(c) under the prior's constant density, differentiable in c."""
        out: torch.Tensor = self.prior_fn.log_prob(c).sum()
        return out


class SiteGuide:
    """Mean-field Normal guide of one continuous site in its unconstrained space
    (``biject_to(support)``), as Pyro's ``AutoNormal``: loc at ``init`` (default the
    unconstrained 0), scale :data:`INIT_SCALE`.

    Examples
    --------
    >>> import numpy as np
    >>> from ppl import dist
    >>> g = SiteGuide(dist.HalfNormal(1.0), ())
    >>> value, log_q = g.rsample(np.random.default_rng(0))
    >>> bool(value > 0), value.shape
    (True, torch.Size([]))
    """

    def __init__(self, fn: Any, shape: tuple[int, ...], init: Any = None) -> None:
        self.transform: Any = biject_to(fn.support)
        loc = torch.zeros(shape, dtype=torch.float64)
        if init is not None:
            loc = self.transform.inv(torch.as_tensor(np.asarray(init, dtype=np.float64))
                                     ).expand(shape).clone()
        self.loc = loc.requires_grad_(True)
        self.log_scale = torch.full(shape, math.log(INIT_SCALE), dtype=torch.float64,
                                    requires_grad=True)
        self.shape = shape

    def parameters(self) -> list[torch.Tensor]:
        """The learnable tensors."""
        return [self.loc, self.log_scale]

    def rsample(self, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(value, log q(value)): a reparameterised draw in the site's support and its
        density there (the bijection's Jacobian included)."""
        eps = torch.as_tensor(rng.standard_normal(self.shape)).reshape(self.shape)
        z = self.loc + self.log_scale.exp() * eps
        value = self.transform(z)
        log_q = Normal(self.loc, self.log_scale.exp()).log_prob(z).sum() - \
            self.transform.log_abs_det_jacobian(z, value).sum()
        return value, log_q
