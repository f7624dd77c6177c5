"""q_θ(φ | x, y): a set encoder and a grammar-constrained decoder over productions.

The proposal writes a program in preorder. At a node with nonterminal A, depth budget b and
position (root of A, or child slot k of parent production r) it picks a production from

    q(r | state, D) = softmax over the allowed r of [bias(r | A, b) + 15 tanh(o_r / 15)],

where the allowed set and the prior's choice log-probabilities ``bias`` come from
:class:`~inference.amortized.support.Support` (the prior's truncation tables), and o is the
output of an MLP over [e(D), embeddings of the position, of A and of b] (e(D): the
:class:`~inference.amortized.encoder.SetEncoder` embedding of the data). An input leaf then
picks a name by a categorical (prior log-probabilities plus a bounded residual, over the
inputs of positive prior probability), and a constant leaf draws its value from a Normal
whose mean and log-sd are outputs of the same MLP for that production
(:class:`~inference.amortized.constants.ConstantHead`: on the logit scale of the interval,
with its Jacobian, when the constant prior is uniform). So

    log q(φ | D) = Σ_nodes log q(r_u | state_u, D) + Σ_inputs log q(name) + Σ_constants log q(c)

exactly, and the decoder's output layer starts at zero: an untrained network proposes the
prior's own choices (exactly the prior when only ``max_depth`` is set and constants have a
Normal prior). The residuals are bounded (|o| < 15 after the tanh), so a trained network
keeps every allowed choice at positive probability: q has the prior's full support.

Numbers: float64 throughout. A :class:`Context` holds the decoder's outputs for every state
of one data set as numpy tables, so :meth:`ProgramProposal.sample` and
:meth:`ProgramProposal.log_prob` are loops over table lookups, and they add the same terms
in the same order: their log q agree bitwise. Training uses
:meth:`ProgramProposal.batch_log_prob`, the same quantity as a differentiable torch tensor.

Examples
--------
>>> import numpy as np
>>> import ppl
>>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=3)
>>> q = ProgramProposal(prior, hidden=16, seed=0)
>>> x = np.linspace(-1, 1, 5)
>>> ctx = q.context(x, np.sin(x))
>>> phi, log_q = q.sample(np.random.default_rng(0), ctx)
>>> abs(q.log_prob(phi, ctx) - log_q) < 1e-12, abs(prior.log_density(phi) - log_q) < 1e-9
(True, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from inference.amortized.constants import ConstantHead
from inference.amortized.encoder import SetEncoder
from inference.amortized.support import Step, Support
from ppl.errors import DataError, PriorError
from ppl.ops import KIND_CONSTANT, KIND_INPUT
from ppl.prior import ProgramPrior
from ppl.program import Program
from ppl.trace import seeded

__all__ = ["Context", "ProgramProposal", "points_of"]

RESIDUAL = 15.0
"""Bound of the network's residual logits (choices stay within e^{±30} of the prior's)."""
Choice = tuple[tuple[int, ...], np.ndarray, np.ndarray]


def points_of(x: Any, y: Any, inputs: int) -> np.ndarray:
    """The points [x_1..x_d, y] of a data set as an (n, d + 1) float64 array.

    ``x`` is (n, d), or (n,) when d = 1 (anything when d = 0); ``y`` has n values.

    Raises
    ------
    DataError
        When the shapes do not fit or a value is not finite.

    Examples
    --------
    >>> points_of([0.0, 1.0], [2.0, 3.0], inputs=1).tolist()
    [[0.0, 2.0], [1.0, 3.0]]
    """
    yy = np.asarray(y, dtype=np.float64).reshape(-1)
    n = yy.size
    xx = np.asarray(x, dtype=np.float64) if inputs else np.zeros((n, 0))
    if inputs == 1 and xx.ndim == 1:
        xx = xx[:, None]
    if n == 0 or xx.shape != (n, inputs):
        raise DataError(f"A data set for the proposal needs x of shape (n, {inputs}) and y of "
                        f"n values; got x {xx.shape} and y of {n} values. Hint: build them "
                        "with inference.amortized.data_view.")
    pts = np.concatenate([xx, yy[:, None]], axis=1)
    if not np.all(np.isfinite(pts)):
        raise DataError(f"A data set for the proposal has {int(np.sum(~np.isfinite(pts)))} "
                        "NaN or infinite value(s); expected finite x and y.")
    return pts


@dataclass
class Context:
    """What q(· | D) needs of one data set D: its embedding and the decoder's tables.

    Tables are indexed by the decoder state's row (``Support.row``).

    Examples
    --------
    >>> import numpy as np
    >>> import ppl
    >>> q = ProgramProposal(ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2), hidden=8)
    >>> ctx = q.context(np.arange(3.0), np.arange(3.0))
    >>> ctx.embedding.shape, ctx.input_logits.shape
    ((8,), (18, 1))
    """

    embedding: np.ndarray
    """e(D), the set encoder's embedding (its cosine gives data-set similarity)."""
    logits: np.ndarray
    """(rows, P) production logits (prior bias + residual)."""
    input_logits: np.ndarray
    """(rows, d) input-leaf logits (prior log-probability + residual)."""
    const_loc: np.ndarray
    """(rows, P) mean of each constant production's Normal."""
    const_log_scale: np.ndarray
    """(rows, P) log-sd of each constant production's Normal."""
    choices: dict[Any, Choice] = field(default_factory=dict)
    """Cache: (row, allowed productions) or ("input", row) -> (ids, log-probs, cumsum)."""


def _log_softmax(values: np.ndarray) -> np.ndarray:
    """log softmax of a 1-d float64 array."""
    m = float(values.max())
    return np.asarray(values - m - math.log(float(np.exp(values - m).sum())))


class ProgramProposal(nn.Module):
    """q_θ(φ | x, y): a proposal of programs of ``prior`` given a data set.

    Parameters
    ----------
    prior : ProgramPrior
        The prior whose programs are proposed (it needs ``max_depth`` or ``max_size``).
    hidden : int
        Width of every MLP (keep it small: 16 to 64).
    seed : int
        Seed of the initial weights (the caller's torch RNG state is untouched).
    device : str
        Torch device of the weights.

    Examples
    --------
    >>> import ppl
    >>> q = ProgramProposal(ppl.ProgramPrior("arith", inputs=["x"], max_depth=3), hidden=8)
    >>> q.support.num_productions, q.hidden
    (10, 8)
    """

    bias: torch.Tensor
    input_bias: torch.Tensor
    row_position: torch.Tensor
    row_budget: torch.Tensor
    row_nonterminal: torch.Tensor

    def __init__(self, prior: ProgramPrior, hidden: int = 64, seed: int = 0,
                 device: str = "cpu") -> None:
        super().__init__()
        self.prior = prior
        self.support = Support(prior)
        self.hidden, self.seed = int(hidden), int(seed)
        sup, d = self.support, len(prior.inputs)
        p = sup.num_productions
        embed, small = hidden, max(4, hidden // 4)
        with seeded(self.seed):
            self.encoder = SetEncoder(d, hidden, embed)
            self.position = nn.Embedding(sup.num_positions, small)
            self.nonterminal = nn.Embedding(sup.num_nonterminals, small)
            self.depth = nn.Embedding(sup.top + 1, small)
            self.body = nn.Sequential(nn.Linear(embed + 3 * small, hidden), nn.Tanh(),
                                      nn.Linear(hidden, hidden), nn.Tanh())
            self.out = nn.Linear(hidden, 3 * p + d)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        bias = np.where(np.isfinite(sup.bias), sup.bias, 0.0)
        in_bias = np.where(np.isfinite(sup.input_bias), sup.input_bias, 0.0)
        self.register_buffer("bias", torch.as_tensor(bias, dtype=torch.float64))
        self.register_buffer("input_bias", torch.as_tensor(in_bias, dtype=torch.float64))
        self.register_buffer("row_position", torch.as_tensor(sup.row_position))
        self.register_buffer("row_budget", torch.as_tensor(sup.row_budget))
        self.register_buffer("row_nonterminal", torch.as_tensor(
            [sup.position_nonterminal[i] for i in sup.row_position]))
        self.double().to(device)
        self.constants = ConstantHead(prior.constant_prior)
        """q of a constant leaf given the head's outputs."""

    @property
    def device(self) -> torch.device:
        """The device of the weights.

        Examples
        --------
        >>> import ppl
        >>> ProgramProposal(ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2),
        ...                 hidden=8).device
        device(type='cpu')
        """
        return self.bias.device

    # ------------------------------------------------------------------ network
    def _rows_out(self, embedding: torch.Tensor, rows: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Heads of the decoder at states ``rows`` given embeddings (T, E) -> production
        logits (T, P), input logits (T, d), constant mean and log-sd (T, P)."""
        feats = torch.cat([embedding, self.position(self.row_position[rows]),
                           self.nonterminal(self.row_nonterminal[rows]),
                           self.depth(self.row_budget[rows])], dim=-1)
        out = self.out(self.body(feats))
        p, d = self.support.num_productions, len(self.prior.inputs)
        squash = RESIDUAL * torch.tanh(out / RESIDUAL)
        logits = self.bias[rows] + squash[:, :p]
        input_logits = self.input_bias + squash[:, p:p + d]
        loc, log_scale = self.constants.params(out[:, p + d:2 * p + d], out[:, 2 * p + d:])
        return logits, input_logits, loc, log_scale

    # ------------------------------------------------------------------ contexts
    def _points_tensor(self, data: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """A padded batch (B, n_max, d + 1) and its mask (B, n_max) from point arrays."""
        n_max = max(len(pts) for pts in data)
        k = len(self.prior.inputs) + 1
        batch = np.zeros((len(data), n_max, k))
        mask = np.zeros((len(data), n_max))
        for i, pts in enumerate(data):
            batch[i, :len(pts)] = pts
            mask[i, :len(pts)] = 1.0
        return (torch.as_tensor(batch, device=self.device),
                torch.as_tensor(mask, device=self.device))

    def context(self, x: Any, y: Any) -> Context:
        """The :class:`Context` of data set (x, y): x of shape (n, d) (or (n,) for one
        input), in the prior's input order; y of n values. Computed without gradients.

        Examples
        --------
        >>> import numpy as np
        >>> import ppl
        >>> q = ProgramProposal(ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2), hidden=8)
        >>> q.context(np.arange(3.0), np.arange(3.0)).logits.shape == (q.support.num_rows, 5)
        True
        """
        pts = points_of(x, y, len(self.prior.inputs))
        points, mask = self._points_tensor([pts])
        rows = torch.arange(self.support.num_rows, device=self.device)
        with torch.no_grad():
            emb = self.encoder(points, mask)[0]
            heads = self._rows_out(emb.expand(len(rows), -1), rows)
        logits, input_logits, loc, log_scale = (h.cpu().numpy() for h in heads)
        return Context(emb.cpu().numpy(), logits, input_logits, loc, log_scale)

    def embed(self, x: Any, y: Any) -> np.ndarray:
        """e(D) of data set (x, y) (see :meth:`context`).

        Examples
        --------
        >>> import numpy as np
        >>> import ppl
        >>> q = ProgramProposal(ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2), hidden=8)
        >>> q.embed(np.arange(3.0), np.ones(3)).shape
        (8,)
        """
        pts = points_of(x, y, len(self.prior.inputs))
        points, mask = self._points_tensor([pts])
        with torch.no_grad():
            return np.asarray(self.encoder(points, mask)[0].cpu().numpy())

    # ------------------------------------------------------------------ choices
    def _choice(self, ctx: Context, row: int, allowed: tuple[int, ...]) -> Choice:
        """(allowed productions, their log q, cumulative q) at state ``row``."""
        key = (row, allowed)
        got = ctx.choices.get(key)
        if got is None:
            logp = _log_softmax(ctx.logits[row, list(allowed)])
            got = ctx.choices[key] = (allowed, logp, np.cumsum(np.exp(logp)))
        return got

    def _input_choice(self, ctx: Context, row: int) -> Choice:
        """(allowed inputs, their log q, cumulative q) of an input leaf at state ``row``."""
        key = ("input", row)
        got = ctx.choices.get(key)
        if got is None:
            ids = self.support.inputs_allowed
            logp = _log_softmax(ctx.input_logits[row, list(ids)])
            got = ctx.choices[key] = (ids, logp, np.cumsum(np.exp(logp)))
        return got

    def _value_log_q(self, ctx: Context, row: int, r: int, value: Any) -> float:
        """log q of a node's value given its production (0 for a node without one)."""
        kind = self.support.kinds[r]
        if kind == KIND_INPUT:
            ids, logp, _ = self._input_choice(ctx, row)
            i = self.support.input_index.get(value, -1) if isinstance(value, str) else -1
            return float(logp[ids.index(i)]) if i in ids else -math.inf
        if kind == KIND_CONSTANT:
            if not isinstance(value, (float, int, np.floating)) or not math.isfinite(value):
                return -math.inf
            return self.constants.log_q(float(value), float(ctx.const_loc[row, r]),
                                       float(ctx.const_log_scale[row, r]))
        return 0.0 if value is None else -math.inf

    def _sample_value(self, rng: np.random.Generator, ctx: Context, row: int, r: int
                     ) -> Any:
        """A node's value drawn from q given its production (None for most nodes)."""
        kind = self.support.kinds[r]
        if kind == KIND_INPUT:
            ids, _, cum = self._input_choice(ctx, row)
            j = int(np.searchsorted(cum, rng.random() * cum[-1], side="right"))
            return self.prior.inputs[ids[j]]
        if kind == KIND_CONSTANT:
            return self.constants.sample(rng, float(ctx.const_loc[row, r]),
                                        float(ctx.const_log_scale[row, r]))
        return None

    # ------------------------------------------------------------------ sampling
    def sample(self, rng: np.random.Generator, ctx: Context) -> tuple[Program, float]:
        """φ ~ q(· | D) and its exact log q(φ | D) (productions, inputs and constants).

        The program has the prior's inputs order, lies within the prior's limits and has
        positive prior probability.

        Examples
        --------
        >>> import numpy as np
        >>> import ppl
        >>> q = ProgramProposal(ppl.ProgramPrior("arith", inputs=["x"], max_depth=3,
        ...                                      max_size=5), hidden=8)
        >>> ctx = q.context(np.arange(4.0), np.arange(4.0) ** 2)
        >>> phi, log_q = q.sample(np.random.default_rng(3), ctx)
        >>> phi.size <= 5 and phi.depth <= 3 and q.log_prob(phi, ctx) == log_q
        True
        """
        prods, values, log_q = self.sample_subtree(rng, ctx, self.prior.grammar.start,
                                                   None, None)
        return Program.unchecked(self.prior.grammar, prods, values, self.prior.inputs), log_q

    def sample_subtree(self, rng: np.random.Generator, ctx: Context, nonterminal: int,
                       depth_budget: int | None, size_budget: int | None,
                       parent: tuple[int, int] | None = None
                       ) -> tuple[tuple[int, ...], tuple[Any, ...], float]:
        """T ~ q(· | D, A, b, s): a subtree of ``nonterminal`` with depth ≤ ``depth_budget``
        and size ≤ ``size_budget`` (None: the prior's limit), and its exact log q.

        ``parent = (production, slot)`` decodes the subtree as that child slot (the
        position the decoder conditions on); default: the root of ``nonterminal``.

        Raises
        ------
        PriorError
            When no derivation of ``nonterminal`` fits the budgets.

        Examples
        --------
        >>> import numpy as np
        >>> import ppl
        >>> q = ProgramProposal(ppl.ProgramPrior("tiny", inputs=["x"], max_depth=4), hidden=8)
        >>> ctx = q.context(np.arange(4.0), np.arange(4.0))
        >>> prods, values, log_q = q.sample_subtree(np.random.default_rng(0), ctx, 0, 2, 2)
        >>> len(prods) <= 2, q.subtree_log_prob(ctx, prods, values, 0, 2, 2) == log_q
        (True, True)
        """
        sup = self.support
        b, cap = sup.start(nonterminal, depth_budget, size_budget)
        if not sup.fits(nonterminal, b, cap):
            raise PriorError(f"No derivation of '{self.prior.grammar.nonterminals[nonterminal]}'"
                             f" fits depth {depth_budget} and size {size_budget}; expected "
                             "budgets at least its minimum depth and size.")
        stack = [(nonterminal, b, sup.position(nonterminal, parent))]
        min_size, top1 = sup.min_size, sup.top + 1
        pending, used, log_q = min_size[b][nonterminal], 0, 0.0
        prods: list[int] = []
        values: list[Any] = []
        while stack:
            a, b, pos = stack.pop()
            pending -= min_size[b][a]
            row = pos * top1 + b
            ids, logp, cum = self._choice(ctx, row, sup.allowed(a, b, cap - used - pending))
            j = int(np.searchsorted(cum, rng.random() * cum[-1], side="right"))
            r = ids[j]
            value = self._sample_value(rng, ctx, row, r)
            log_q += float(logp[j]) + self._value_log_q(ctx, row, r, value)
            prods.append(r)
            values.append(value)
            used += 1
            kids, base = sup.children[r], sup.position_offset[r]
            for k in range(len(kids) - 1, -1, -1):
                stack.append((kids[k], b - 1, base + k))
                pending += min_size[b - 1][kids[k]]
        return tuple(prods), tuple(values), log_q

    # ------------------------------------------------------------------ densities
    def log_prob(self, program: Program, ctx: Context) -> float:
        """log q(φ | D) by teacher forcing: −inf for a program outside the masks' support
        (beyond the prior's limits, a zero-weight production, an unknown input, another
        grammar).

        Examples
        --------
        >>> import numpy as np
        >>> import ppl
        >>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
        >>> q = ProgramProposal(prior, hidden=8)
        >>> ctx = q.context(np.arange(4.0), np.arange(4.0))
        >>> phi = prior.parse("sin(x)")
        >>> abs(q.log_prob(phi, ctx) - prior.log_density(phi)) < 1e-12  # untrained: q = prior
        True
        >>> q.log_prob(prior.parse("sin(sin(x))"), ctx)  # deeper than max_depth
        -inf
        """
        if program.grammar.fingerprint != self.prior.grammar.fingerprint:
            return -math.inf
        return self.subtree_log_prob(ctx, program.prods, program.values,
                                     self.prior.grammar.start, None, None)

    def subtree_log_prob(self, ctx: Context, prods: tuple[int, ...], values: tuple[Any, ...],
                         nonterminal: int, depth_budget: int | None, size_budget: int | None,
                         parent: tuple[int, int] | None = None) -> float:
        """log q(T | D, A, b, s) of a subtree in preorder: the density of
        :meth:`sample_subtree` with the same arguments (−inf outside its support).

        Examples
        --------
        >>> import numpy as np
        >>> import ppl
        >>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=4)
        >>> q = ProgramProposal(prior, hidden=8)
        >>> ctx = q.context(np.arange(4.0), np.arange(4.0))
        >>> t = prior.parse("(x + 1)")
        >>> q.subtree_log_prob(ctx, t.prods, t.values, 0, 2, None) > -np.inf
        True
        >>> q.subtree_log_prob(ctx, t.prods, t.values, 0, 2, 2)  # 3 nodes > size 2
        -inf
        """
        sup = self.support
        b, cap = sup.start(nonterminal, depth_budget, size_budget)
        steps = sup.walk(prods, values, nonterminal, b, cap, sup.position(nonterminal, parent))
        if steps is None:
            return -math.inf
        log_q = 0.0
        for step in steps:
            ids, logp, _ = self._choice(ctx, step.row, step.allowed)
            log_q += float(logp[ids.index(step.production)]) + self._value_log_q(
                ctx, step.row, step.production, step.value)
        return log_q

    def batch_log_prob(self, data: list[np.ndarray], programs: list[Program]) -> torch.Tensor:
        """log q(φ_i | D_i) of each pair, as a differentiable float64 tensor (B,).

        ``data[i]`` holds the points of D_i (:func:`points_of`). Every program must be in
        the support (programs drawn from the prior are).

        Raises
        ------
        PriorError
            When a program lies outside the support (another prior's program).

        Examples
        --------
        >>> import numpy as np
        >>> import ppl
        >>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
        >>> q = ProgramProposal(prior, hidden=8)
        >>> x = np.arange(4.0)
        >>> phi = prior.parse("sin(x)")
        >>> lq = q.batch_log_prob([points_of(x, np.sin(x), 1)], [phi])
        >>> abs(float(lq[0].detach()) - q.log_prob(phi, q.context(x, np.sin(x)))) < 1e-12
        True
        """
        return self.forced_log_q(data, self.walks(programs))

    def walks(self, programs: list[Program]) -> list[list[Step]]:
        """The teacher-forcing steps of each program (:meth:`Support.walk` from the start).

        Raises
        ------
        PriorError
            When a program lies outside the support (another prior's program).

        Examples
        --------
        >>> import ppl
        >>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
        >>> [len(w) for w in ProgramProposal(prior, hidden=8).walks([prior.parse("sin(x)")])]
        [2]
        """
        out: list[list[Step]] = []
        sup = self.support
        for phi in programs:
            steps = None if phi.grammar.fingerprint != self.prior.grammar.fingerprint else \
                sup.walk(phi.prods, phi.values, self.prior.grammar.start, sup.top, sup.size_cap)
            if steps is None or not all(sup.value_ok(s.production, s.value) for s in steps):
                raise PriorError(f"The program {phi} lies outside the support of "
                                 f"{self.prior!r}; expected programs of that prior.")
            out.append(steps)
        return out

    def forced_log_q(self, data: list[np.ndarray], walks: list[list[Step]]) -> torch.Tensor:
        """Σ of teacher-forced log q over each walk's steps, differentiable (B,): the
        log q(φ_i | D_i) of :meth:`batch_log_prob` from precomputed walks.

        Examples
        --------
        >>> import numpy as np
        >>> import ppl
        >>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
        >>> q = ProgramProposal(prior, hidden=8)
        >>> x = np.arange(4.0)
        >>> lq = q.forced_log_q([points_of(x, x, 1)], q.walks([prior.parse("x")]))
        >>> lq.requires_grad, round(float(lq[0].detach()), 6) == round(prior.log_density(
        ...     prior.parse("x")), 6)
        (True, True)
        """
        sup, dev = self.support, self.device
        flat = [(i, s) for i, steps in enumerate(walks) for s in steps]
        t, p, d = len(flat), sup.num_productions, len(self.prior.inputs)
        owner = torch.tensor([i for i, _ in flat], device=dev)
        rows = torch.tensor([s.row for _, s in flat], device=dev)
        target = torch.tensor([s.production for _, s in flat], device=dev).unsqueeze(1)
        allowed = np.zeros((t, p), dtype=bool)
        inp = np.full(t, -1)
        const = np.full(t, np.nan)
        for j, (_, s) in enumerate(flat):
            allowed[j, list(s.allowed)] = True
            if sup.kinds[s.production] == KIND_INPUT:
                inp[j] = sup.input_index[s.value]
            elif sup.kinds[s.production] == KIND_CONSTANT:
                const[j] = s.value
        points, mask = self._points_tensor(data)
        emb = self.encoder(points, mask)
        logits, input_logits, loc, log_scale = self._rows_out(emb[owner], rows)
        allowed_t = torch.as_tensor(allowed, device=dev)
        total = torch.log_softmax(logits.masked_fill(~allowed_t, -math.inf), -1) \
            .gather(1, target).squeeze(1)
        if d:
            in_mask = torch.isfinite(torch.as_tensor(sup.input_bias, device=dev))
            in_lp = torch.log_softmax(input_logits.masked_fill(~in_mask, -math.inf), -1)
            pick = torch.as_tensor(np.maximum(inp, 0), device=dev).unsqueeze(1)
            total = total + torch.where(torch.as_tensor(inp >= 0, device=dev),
                                        in_lp.gather(1, pick).squeeze(1), 0.0)
        is_const = torch.as_tensor(np.isfinite(const), device=dev)
        if bool(is_const.any()):
            c = torch.as_tensor(np.where(np.isfinite(const), const, self.constants.fill),
                                device=dev)
            c_lp = self.constants.log_q_torch(c, loc.gather(1, target).squeeze(1),
                                             log_scale.gather(1, target).squeeze(1))
            total = total + torch.where(is_const, c_lp, 0.0)
        out = torch.zeros(len(walks), dtype=torch.float64, device=dev)
        return out.index_add(0, owner, total)
