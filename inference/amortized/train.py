"""Training q(φ | x, y) by inference compilation, and the trained :class:`Proposal`.

:func:`train_proposal` finds the model's program site and its prior, builds a
:class:`~inference.amortized.network.ProgramProposal` and minimises
E_{p(x,y,φ)}[−log q(φ | x, y)] with Adam on minibatches simulated on the fly
(:func:`~inference.amortized.simulate.simulate`, the batch of step t seeded by (seed, t))
or drawn from stored :class:`~inference.amortized.simulate.Simulations`, with a held-out
validation set, early stopping and a time budget (:mod:`inference.amortized.loop`).

Options: the training options are this function's parameters, not a record of
``inference/config.py``: that module is the one home of the options of ``infer``,
``query`` and ``compare`` runs, and none of them trains a proposal yet. When a method of
``infer`` uses a proposal, its run options go there (an ``AmortizedOptions`` record).

The result is a :class:`Proposal`: the network, the prior, the program site and the key
(:mod:`inference.amortized.persist`); ``proposal.train`` continues training,
``proposal.save`` writes it, :func:`load_proposal` reads it back for a model and refuses a
model whose key differs, naming what differs.

Examples
--------
>>> import numpy as np
>>> import ppl
>>> from ppl import dist
>>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
>>> def model(x, y=None):
...     f = ppl.sample("f", prior)
...     with ppl.plate("data", len(x)):
...         ppl.sample("y", dist.Normal(f(x), 0.1), obs=y)
>>> x = np.linspace(-1, 1, 6)
>>> q = train_proposal(model, x, y=np.zeros(6), num_steps=20, batch_size=16, lr=0.01,
...                    valid_size=32, hidden=8, seed=0, progress=False)
>>> q.steps, q.site, q.history[-1].valid_loss < q.history[0].valid_loss
(20, 'f', True)
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from inference.amortized.loop import Batch, Evaluation, fit
from inference.amortized.network import Context, ProgramProposal, points_of
from inference.amortized.persist import (
    ProposalMismatchError,
    differences,
    key_of,
    key_parts,
    read,
    write,
)
from inference.amortized.simulate import InputSampler, Simulations, discover_model, simulate
from inference.config import check_bool, check_int
from ppl.errors import PPLError, SiteError
from ppl.prior import ProgramPrior
from ppl.program import Program
from ppl.trace import PROGRAM, ModelTrace, base_distribution

__all__ = ["Proposal", "load_proposal", "program_prior", "train_proposal"]


def program_prior(found: ModelTrace, prior_site: str | None) -> tuple[str, ProgramPrior]:
    """The program site a proposal is for, and its prior.

    Raises
    ------
    SiteError
        When the model has no latent program site, ``prior_site`` is not one, or there are
        several and ``prior_site`` is not given.

    Examples
    --------
    >>> import ppl
    >>> from ppl.trace import discover
    >>> def model():
    ...     ppl.sample("f", ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2))
    >>> program_prior(discover(model), None)
    ('f', ProgramPrior(tiny.lark, inputs=['x'], max_depth=2, max_size=None))
    """
    sites = [n for n, s in found.sites.items() if s.kind == PROGRAM and s.latent]
    if prior_site is None and len(sites) == 1:
        prior_site = sites[0]
    if prior_site not in sites:
        raise SiteError(f"A proposal needs one latent program site; the model has {sites}, "
                        f"prior_site={prior_site!r}. Hint: pass prior_site= one of them.")
    fn = base_distribution(found.sites[prior_site].fn)
    prior = fn if isinstance(fn, ProgramPrior) else getattr(fn, "prior", None)
    if not isinstance(prior, ProgramPrior):
        raise SiteError(f"Program site '{prior_site}' has no ProgramPrior; got "
                        f"{type(fn).__name__}.")
    return prior_site, prior


def _step_seed(seed: int, stream: int, step: int) -> int:
    """An independent seed for minibatch ``step`` of ``stream`` (0 train, 1 validation)."""
    return int(np.random.SeedSequence([seed, stream, step]).generate_state(1)[0])


class Proposal:
    """A trained proposal q(φ | x, y) for program site ``site`` of a model.

    Build it with :func:`train_proposal` or :func:`load_proposal`.

    Examples
    --------
    >>> import numpy as np
    >>> import ppl
    >>> from ppl import dist
    >>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
    >>> def model(x, y=None):
    ...     f = ppl.sample("f", prior)
    ...     with ppl.plate("data", len(x)):
    ...         ppl.sample("y", dist.Normal(f(x), 0.1), obs=y)
    >>> x = np.linspace(-1, 1, 6)
    >>> q = train_proposal(model, x, y=np.zeros(6), num_steps=0, hidden=8, progress=False)
    >>> ctx = q.context(x, np.sin(x))
    >>> phi, log_q = q.sample(np.random.default_rng(0), ctx)
    >>> q.log_prob(phi, ctx) == log_q, round(q.similarity((x, x), (x, x)), 12)
    (True, 1.0)
    """

    def __init__(self, network: ProgramProposal, site: str, parts: dict[str, Any],
                 model: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
                 inputs: InputSampler | None, seed: int) -> None:
        self.network = network
        """The network q_θ."""
        self.prior: ProgramPrior = network.prior
        """The prior of the program site."""
        self.site = site
        """The program site the proposal is for."""
        self.key_parts = parts
        """What the proposal is valid for (:func:`~inference.amortized.persist.key_parts`)."""
        self.key = key_of(parts)
        """Hash of :attr:`key_parts`."""
        self.seed = seed
        """Seed of the training draws (the batch of global step t uses (seed, t))."""
        self.steps = 0
        """Optimisation steps taken over every training call."""
        self.seconds = 0.0
        """Wall time of training (simulation included)."""
        self.history: list[Evaluation] = []
        """Every validation of every training call."""
        self.model, self.args, self.kwargs, self.inputs = model, args, kwargs, inputs
        self.optimizer_state: dict[str, Any] | None = None
        """Adam's state after the last training call (None before any)."""
        self.valid: Batch | None = None
        """The validation draws (kept across training calls)."""

    # ------------------------------------------------------------------ using q
    def context(self, x: Any, y: Any) -> Context:
        """The network's context of data set (x, y) (``ProgramProposal.context``)."""
        return self.network.context(x, y)

    def sample(self, rng: np.random.Generator, ctx: Context) -> tuple[Program, float]:
        """φ ~ q(· | D) and its log q (``ProgramProposal.sample``)."""
        return self.network.sample(rng, ctx)

    def log_prob(self, program: Program, ctx: Context) -> float:
        """log q(φ | D) (``ProgramProposal.log_prob``)."""
        return self.network.log_prob(program, ctx)

    def similarity(self, data_a: tuple[Any, Any], data_b: tuple[Any, Any]) -> float:
        """Cosine similarity of the encoder's embeddings of two data sets, each (x, y):
        e_a · e_b / (‖e_a‖ ‖e_b‖), in [−1, 1] (1 for the same data)."""
        a, b = self.network.embed(*data_a), self.network.embed(*data_b)
        norm = float(np.linalg.norm(a) * np.linalg.norm(b))
        return float(a @ b) / norm if norm > 0 else 0.0

    # ------------------------------------------------------------------ training
    def _batch(self, sims: Simulations, indices: Sequence[int]) -> Batch:
        """The draws ``indices`` of ``sims`` as a training batch."""
        d = len(self.prior.inputs)
        data = [points_of(*sims.data(i, self.prior), d) for i in indices]
        programs = [sims.programs[self.site][i] for i in indices]
        return Batch(data, self.network.walks(programs))

    def _simulate(self, num: int, seed: int) -> Simulations:
        """``num`` draws of the model (:func:`simulate`) with ``seed``."""
        return simulate(self.model, *self.args, num_simulations=num, seed=seed,
                        inputs=self.inputs, model_kwargs=self.kwargs)

    def train(self, num_steps: int = 1000, *, batch_size: int = 32, lr: float = 3e-3,
              max_time: float | None = None, valid_size: int = 128, patience: int = 10,
              eval_every: int = 20, progress: bool = True,
              simulations: Simulations | None = None) -> Proposal:
        """Continue training (see :func:`train_proposal` for the options); returns self.

        Minibatch t (global count) is simulated with seed (seed, t), so training N steps
        and then M more gives the draws of one run of N + M steps. The validation set is
        drawn once (seed (seed, validation)) and kept, unless ``simulations`` is given:
        then its last ``valid_size`` draws validate and minibatches are drawn from the rest.

        Examples
        --------
        >>> import numpy as np
        >>> import ppl
        >>> from ppl import dist
        >>> def model(x, y=None):
        ...     f = ppl.sample("f", ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2))
        ...     ppl.sample("y", dist.Normal(f(x), 0.1).to_event(1), obs=y)
        >>> x = np.linspace(0.0, 1.0, 5)
        >>> q = train_proposal(model, x, y=x, num_steps=2, batch_size=4, valid_size=4,
        ...                    hidden=8, progress=False)
        >>> q.train(3, batch_size=4, valid_size=4, progress=False).steps
        5
        """
        _check_options(num_steps, batch_size, lr, max_time, valid_size, patience, eval_every,
                      progress)
        start = time.perf_counter()
        next_batch = self._batches(batch_size, valid_size, simulations)
        assert self.valid is not None
        optimizer = torch.optim.Adam(self.network.parameters(), lr=lr)
        if self.optimizer_state is not None:
            optimizer.load_state_dict(self.optimizer_state)
            for group in optimizer.param_groups:
                group["lr"] = lr
        result = fit(self.network, optimizer, next_batch, self.valid, first_step=self.steps,
                     num_steps=num_steps, max_time=max_time, patience=patience,
                     eval_every=eval_every, progress=progress)
        self.optimizer_state = optimizer.state_dict()
        self.history.extend(result.history)
        self.steps += result.steps
        self.seconds += time.perf_counter() - start
        return self

    def _batches(self, batch_size: int, valid_size: int,
                simulations: Simulations | None) -> Callable[[int], Batch]:
        """Set the validation batch and return ``next_batch(step)``."""
        if simulations is None:
            if self.valid is None or len(self.valid.data) != valid_size:
                sims = self._simulate(valid_size, _step_seed(self.seed, 1, 0))
                self.valid = self._batch(sims, range(valid_size))
            return lambda t: self._batch(self._simulate(batch_size, _step_seed(self.seed, 0, t)),
                                        range(batch_size))
        n = len(simulations) - valid_size
        if n < 1 or self.site not in simulations.programs:
            raise PPLError(f"Stored simulations need more than valid_size={valid_size} draws "
                           f"of program site '{self.site}'; got {len(simulations)} draws of "
                           f"{sorted(simulations.programs)}.")
        self.valid = self._batch(simulations, range(n, len(simulations)))
        pool = self._batch(simulations, range(n))

        def next_batch(t: int) -> Batch:
            pick = np.random.default_rng(_step_seed(self.seed, 0, t)).choice(n, batch_size)
            return Batch([pool.data[i] for i in pick], [pool.walks[i] for i in pick])
        return next_batch

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the proposal (weights, Adam state, key and history) to ``path``
        atomically; :func:`load_proposal` reads it back.

        Examples
        --------
        >>> import os, tempfile
        >>> import numpy as np
        >>> import ppl
        >>> from ppl import dist
        >>> def model(x, y=None):
        ...     f = ppl.sample("f", ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2))
        ...     ppl.sample("y", dist.Normal(f(x), 0.1).to_event(1), obs=y)
        >>> x = np.linspace(0.0, 1.0, 5)
        >>> q = train_proposal(model, x, y=x, num_steps=0, hidden=8, valid_size=4,
        ...                    progress=False)
        >>> folder = tempfile.mkdtemp()
        >>> q.save(os.path.join(folder, "q.pt"))
        >>> os.listdir(folder)
        ['q.pt']
        """
        meta = {"key": self.key, "key_parts": self.key_parts, "site": self.site,
                "seed": self.seed, "steps": self.steps, "seconds": self.seconds,
                "network": {"hidden": self.network.hidden, "seed": self.network.seed},
                "history": [[None if isinstance(v, float) and math.isnan(v) else v
                             for v in e] for e in self.history]}
        write(path, meta, self.network.state_dict(), self.optimizer_state)

    def __repr__(self) -> str:
        return (f"Proposal(site={self.site!r}, prior={self.prior!r}, steps={self.steps}, "
                f"key={self.key[:12]})")


def _check_options(num_steps: int, batch_size: int, lr: float, max_time: float | None,
                  valid_size: int, patience: int, eval_every: int, progress: bool) -> None:
    """Raise a PPLError naming the first invalid training option."""
    check_int("num_steps", num_steps, 0)
    check_int("batch_size", batch_size, 1)
    check_int("valid_size", valid_size, 1)
    check_int("patience", patience, 1)
    check_int("eval_every", eval_every, 1)
    check_bool("progress", progress)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < math.inf:
        raise PPLError(f"lr must be a finite number > 0; got {lr!r}.")
    if max_time is not None and (isinstance(max_time, bool) or not isinstance(
            max_time, (int, float)) or not max_time > 0):
        raise PPLError(f"max_time must be a number of seconds > 0 or None; got {max_time!r}.")


def train_proposal(model: Callable[..., Any], *args: Any, prior_site: str | None = None,
                   num_steps: int = 1000, batch_size: int = 32, lr: float = 3e-3,
                   seed: int = 0, max_time: float | None = None, valid_size: int = 128,
                   patience: int = 10, eval_every: int = 20, hidden: int = 64,
                   device: str = "cpu", progress: bool = True,
                   inputs: InputSampler | None = None,
                   simulations: Simulations | None = None,
                   model_kwargs: Mapping[str, Any] | None = None, **kwargs: Any) -> Proposal:
    """Train q(φ | x, y) for a model's program site: minimise E_{p(x,y,φ)}[−log q(φ | x, y)].

    Parameters
    ----------
    model : callable
        The model; its observed sites are the data y (pass them, e.g. ``y=y``: any values
        of the right shape). Inputs: the model's first d positional arguments are the
        prior's inputs (:func:`~inference.amortized.simulate.data_view`).
    *args, **kwargs
        The model's arguments (``model_kwargs`` for names that clash with these options).
    prior_site : str, optional
        The program site (default: the only one).
    num_steps, batch_size, lr : int, int, float
        Adam steps, draws per minibatch, learning rate.
    seed : int
        Seed of the initial weights and of every draw: the same seed gives bitwise the
        same proposal (unless ``max_time`` stops it).
    max_time : float, optional
        Stop after this many seconds.
    valid_size, patience, eval_every : int
        Validation draws; evaluations without improvement before stopping; steps between
        evaluations. The weights of the best validation loss are kept.
    hidden : int
        Width of the network's MLPs (16 to 64 is plenty for small grammars).
    device : str
        Torch device of the network.
    progress : bool
        A tqdm bar (only on a terminal, never with ``CI`` set).
    inputs : callable, optional
        ``inputs(rng) -> (args, kwargs)``, a sampler of designs (default: fixed ``args``).
    simulations : Simulations, optional
        Train on these stored draws instead of simulating on the fly.

    Returns
    -------
    Proposal

    Raises
    ------
    SiteError
        When the model has no program site, or several and ``prior_site`` is not given.

    Examples
    --------
    >>> import numpy as np
    >>> import ppl
    >>> from ppl import dist
    >>> def model(x, y=None):
    ...     f = ppl.sample("f", ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2))
    ...     ppl.sample("y", dist.Normal(f(x), 0.1).to_event(1), obs=y)
    >>> x = np.linspace(0.0, 1.0, 5)
    >>> q = train_proposal(model, x, y=x, num_steps=5, batch_size=4, valid_size=4,
    ...                    hidden=8, progress=False)
    >>> q.steps, len(q.history) >= 2
    (5, True)
    """
    kwargs = {**kwargs, **(model_kwargs or {})}
    check_int("seed", seed, 0)
    check_int("hidden", hidden, 1)
    _check_options(num_steps, batch_size, lr, max_time, valid_size, patience, eval_every,
                  progress)
    found = discover_model(model, args, kwargs)
    site, prior = program_prior(found, prior_site)
    network = ProgramProposal(prior, hidden=hidden, seed=seed, device=device)
    proposal = Proposal(network, site, key_parts(prior, site, found.sites), model,
                        tuple(args), kwargs, inputs, seed)
    return proposal.train(num_steps, batch_size=batch_size, lr=lr, max_time=max_time,
                          valid_size=valid_size, patience=patience, eval_every=eval_every,
                          progress=progress, simulations=simulations)


def load_proposal(path: str | os.PathLike[str], model: Callable[..., Any], *args: Any,
                  device: str = "cpu", inputs: InputSampler | None = None,
                  model_kwargs: Mapping[str, Any] | None = None, **kwargs: Any) -> Proposal:
    """Read a proposal saved by :meth:`Proposal.save` for ``model(*args, **kwargs)``.

    Raises
    ------
    ProposalMismatchError
        When the model's key differs from the saved one: the message names each part
        that differs (grammar, weights, limits, inputs, constant prior, sites).
    ProposalFileError
        When the file is missing or not a proposal file.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import ppl
    >>> from ppl import dist
    >>> def model(x, y=None):
    ...     f = ppl.sample("f", ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2))
    ...     ppl.sample("y", dist.Normal(f(x), 0.1).to_event(1), obs=y)
    >>> x = np.linspace(-1, 1, 4)
    >>> q = train_proposal(model, x, y=x, num_steps=0, hidden=8, progress=False)
    >>> path = os.path.join(tempfile.mkdtemp(), "q.pt")
    >>> q.save(path)
    >>> load_proposal(path, model, x, y=x).key == q.key
    True
    """
    kwargs = {**kwargs, **(model_kwargs or {})}
    meta, state, optimizer_state = read(path)
    found = discover_model(model, args, kwargs)
    site = meta["site"]
    try:
        _, prior = program_prior(found, site)
    except SiteError as err:
        raise ProposalMismatchError(f"The proposal in {str(path)!r} is for program site "
                                    f"'{site}', which this model does not have ({err}). "
                                    "Hint: load it for the model it was trained on.") from None
    parts = key_parts(prior, site, found.sites)
    diffs = differences(meta["key_parts"], parts)
    if diffs:
        raise ProposalMismatchError(
            f"The proposal in {str(path)!r} does not fit this model: " + "; ".join(diffs) +
            ". Expected the grammar, weights, limits, inputs, constant prior and sites it was "
            "trained for. Hint: train a new proposal with train_proposal.")
    network = ProgramProposal(prior, hidden=meta["network"]["hidden"],
                              seed=meta["network"]["seed"], device=device)
    network.load_state_dict(state)
    proposal = Proposal(network, site, parts, model, tuple(args), kwargs, inputs,
                        meta["seed"])
    proposal.steps, proposal.seconds = meta["steps"], meta["seconds"]
    proposal.history = [Evaluation(int(step), math.nan if train is None else float(train),
                                   float(valid), float(seconds))
                        for step, train, valid, seconds in meta["history"]]
    proposal.optimizer_state = optimizer_state
    return proposal
