"""A trained proposal conditioned on one data set and mixed with the prior:

    q_mix(φ) = (1 − w) q_θ(φ | x, y) + w π₀(φ),    w ≥ 0.05,

the proposal every exact use of a network goes through (amortized importance sampling and
the neural independence move of program MCMC). Mixing with the prior keeps the importance
weights bounded by 1/w times the likelihood ratio wherever q_θ misses mass (DESIGN.md §5),
and gives an untrained network a proposal of full support. Both densities are over the
same base measure as the prior's (the product of counting measure on trees and Lebesgue
measure on constants), so q_mix's log density can enter a Hastings ratio or a weight.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from inference.amortized.network import Context
from inference.amortized.simulate import data_view
from inference.amortized.train import Proposal
from inference.residuals import subtree_targets
from ppl.errors import PPLError
from ppl.program import Program

__all__ = ["EDIT_CACHE", "MIN_PRIOR_WEIGHT", "MixedProposal"]

MIN_PRIOR_WEIGHT = 0.05
"""The smallest weight of the prior in the mixture (DESIGN.md §5)."""
EDIT_CACHE = 256
"""How many edit contexts (one per distinct targets z) a mixture keeps, least recently
used dropped first: a chain that stays at one program edits the same nodes again."""


class MixedProposal:
    """q_mix(φ) = (1 − w) q_θ(φ | x, y) + w π₀(φ) of ``proposal`` on the data set (x, y).

    Parameters
    ----------
    proposal : Proposal
        A trained (or untrained) proposal of one program site.
    x, y : array
        The data set: inputs (n, d) in the prior's input order, outputs (n,).
    prior_weight : float
        w, in [0.05, 1].

    Examples
    --------
    >>> import numpy as np, ppl
    >>> from ppl import dist
    >>> from inference.amortized import train_proposal
    >>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
    >>> def model(x, y=None):
    ...     f = ppl.sample("f", prior)
    ...     with ppl.plate("data", len(x)):
    ...         ppl.sample("y", dist.Normal(f(x), 0.1), obs=y)
    >>> x = np.linspace(-1, 1, 6)
    >>> q = train_proposal(model, x, y=np.zeros(6), num_steps=0, hidden=8, progress=False)
    >>> mixed = MixedProposal(q, x[:, None], np.sin(x), prior_weight=0.5)
    >>> phi, log_q = mixed.sample(np.random.default_rng(0))
    >>> bool(np.isclose(mixed.log_prob(phi), log_q))
    True
    >>> total = sum(np.exp(mixed.log_prob(p)) for p, _ in prior.enumerate())
    >>> round(float(total), 9)
    1.0
    """

    def __init__(self, proposal: Proposal, x: Any, y: Any,
                 prior_weight: float = MIN_PRIOR_WEIGHT) -> None:
        w = prior_weight
        if isinstance(w, bool) or not isinstance(w, (int, float)) or \
                not MIN_PRIOR_WEIGHT <= w <= 1:
            raise PPLError(f"prior_weight must be in [{MIN_PRIOR_WEIGHT}, 1] (the prior's "
                           f"share of the proposal keeps it of full support); got {w!r}.")
        self.proposal = proposal
        self.prior = proposal.prior
        self.prior_weight = float(w)
        self.context = proposal.context(x, y)
        self.y = np.asarray(y, dtype=np.float64).reshape(-1)
        xx = np.asarray(x, dtype=np.float64).reshape(self.y.size, -1)
        self.env = {name: xx[:, j] for j, name in enumerate(self.prior.inputs)}
        """The data's inputs by name (for :meth:`edit_context`)."""
        self._edit_contexts: dict[bytes, Context] = {}
        self.log_w = math.log(self.prior_weight)
        self.log_1mw = math.log1p(-self.prior_weight) if self.prior_weight < 1 else -math.inf

    @classmethod
    def for_model(cls, proposal: Proposal, args: Any, kwargs: Mapping[str, Any],
                  observed: Mapping[str, Any], prior_weight: float = MIN_PRIOR_WEIGHT
                  ) -> MixedProposal:
        """The mixture on a model's own data: (x, y) by
        :func:`~inference.amortized.simulate.data_view` of its arguments and observed
        sites."""
        x, y = data_view(args, kwargs, observed, proposal.prior)
        return cls(proposal, x, y, prior_weight)

    def log_prob(self, program: Program) -> float:
        """log q_mix(φ) = logaddexp(log(1 − w) + log q_θ(φ | x, y), log w + log π₀(φ))."""
        log_prior = self.prior.log_density(program)
        if self.log_1mw == -math.inf:
            return float(self.log_w + log_prior)
        log_q = self.proposal.log_prob(program, self.context)
        return float(np.logaddexp(self.log_1mw + log_q, self.log_w + log_prior))

    def edit_context(self, program: Program, node: int) -> Context | None:
        """q_θ's context for regenerating ``node``'s subtree of ``program``: the data set
        (x, z) with z the targets of the node
        (:func:`~inference.residuals.subtree_targets`: what the subtree should
        output given the rest of the program), over the points where z exists; None when
        fewer than half of the points (or fewer than 2) have a target. Depends on the
        program only outside the node's subtree.

        Examples
        --------
        >>> import numpy as np, ppl
        >>> from ppl import dist
        >>> from inference.amortized import train_proposal
        >>> prior = ppl.ProgramPrior("arith", inputs=["x"], max_depth=3)
        >>> def model(x, y=None):
        ...     f = ppl.sample("f", prior)
        ...     ppl.sample("y", dist.Normal(f(x), 0.1).to_event(1), obs=y)
        >>> x = np.linspace(0.1, 1, 6)
        >>> q = train_proposal(model, x, y=x, num_steps=0, hidden=8, progress=False)
        >>> mixed = MixedProposal(q, x[:, None], x + 7.0)
        >>> mixed.edit_context(prior.parse("(x + 1.0)"), 2) is not None     # z = y - x
        True
        >>> mixed.edit_context(prior.parse("sin((x + 1.0))"), 1) is None    # arcsin(y > 1)
        True
        """
        if node == 0:
            return self.context
        z = subtree_targets(program, node, self.env, self.y)
        if z is None:
            return None
        keep = np.isfinite(z)
        count = int(keep.sum())
        if count < 2 or 2 * count < z.size:
            return None
        key = z.tobytes()
        got = self._edit_contexts.get(key)
        if got is None:
            x = np.stack([c[keep] for c in self.env.values()], axis=1) if self.env else None
            got = self.proposal.context(x, z[keep])
            if len(self._edit_contexts) >= EDIT_CACHE:
                self._edit_contexts.pop(next(iter(self._edit_contexts)))
        else:
            del self._edit_contexts[key]
        self._edit_contexts[key] = got
        return got

    def sample(self, rng: np.random.Generator) -> tuple[Program, float]:
        """φ ~ q_mix (the prior with probability w, else the network) and log q_mix(φ)."""
        if rng.random() < self.prior_weight:
            program = self.prior.sample_program(rng)
            return program, self.log_prob(program)
        program, log_q = self.proposal.sample(rng, self.context)
        if self.log_1mw == -math.inf:
            return program, self.log_prob(program)
        log_prior = self.prior.log_density(program)
        return program, float(np.logaddexp(self.log_1mw + log_q, self.log_w + log_prior))
