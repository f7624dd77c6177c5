"""Amortized neural proposals: learn q(φ | x, y) from simulations of the model.

The pieces (DESIGN.md §5, "Amortized"):

- :func:`simulate` draws (x, y, φ, θ) by ancestral simulation of a model
  (:class:`Simulations`; :func:`data_view` is the network's view (x (n, d), y (n,)) of a
  draw);
- :class:`ProgramProposal` is the network q_θ(φ | x, y): a DeepSets encoder of the data
  and a decoder over productions in preorder, masked by the prior's own truncation tables
  so that every proposed program lies in the prior's support, with an exact log q;
- :func:`train_proposal` trains it by inference compilation (minimising
  E[−log q(φ | x, y)] over simulations) and returns a :class:`Proposal`, which saves
  (:meth:`Proposal.save`) and loads (:func:`load_proposal`) with a key of the grammar, the
  prior's limits and inputs and the model's sites, and measures data-set similarity
  (:meth:`Proposal.similarity`); its simulations can run on the workers of an
  ``executor`` (:mod:`~inference.amortized.batches`, bitwise the local run), and with
  ``checkpoint=`` the training is saved every ``checkpoint_every`` steps and
  :func:`inference.resume` continues it (:mod:`~inference.amortized.checkpoint`).

Examples
--------
>>> import numpy as np
>>> import ppl
>>> from inference.amortized import ProgramProposal
>>> prior = ppl.ProgramPrior("arith", inputs=["x"], max_depth=3)
>>> q = ProgramProposal(prior, hidden=16, seed=0)
>>> x = np.linspace(0.1, 2.0, 8)
>>> ctx = q.context(x, np.log(x))
>>> phi, log_q = q.sample(np.random.default_rng(1), ctx)
>>> phi.depth <= 3 and prior.log_density(phi) > -np.inf and q.log_prob(phi, ctx) == log_q
True
"""

from inference.amortized.network import Context, ProgramProposal
from inference.amortized.persist import ProposalFileError, ProposalMismatchError
from inference.amortized.simulate import SimulationError, Simulations, data_view, simulate
from inference.amortized.support import SupportLimitError
from inference.amortized.train import Proposal, load_proposal, train_proposal

__all__ = [
    "Context",
    "ProgramProposal",
    "Proposal",
    "ProposalFileError",
    "ProposalMismatchError",
    "SimulationError",
    "Simulations",
    "SupportLimitError",
    "data_view",
    "load_proposal",
    "simulate",
    "train_proposal",
]
