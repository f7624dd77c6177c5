"""Training q(φ | x, y) by inference compilation, and the trained :class:`Proposal`.

:func:`train_proposal` finds the model's program site and its prior, builds a
:class:`~inference.amortized.network.ProgramProposal` and minimises
E_{p(x,y,φ)}[−log q(φ | x, y)] with Adam on minibatches simulated on the fly
(:func:`~inference.amortized.simulate.simulate`, the batch of step t seeded by (seed, t),
here or on the workers of an ``executor``: :mod:`inference.amortized.batches`) or drawn
from stored :class:`~inference.amortized.simulate.Simulations`, with a held-out validation
set, early stopping and a time budget (:mod:`inference.amortized.loop`). With
``checkpoint=`` the training state is saved every ``checkpoint_every`` steps
(:mod:`inference.amortized.checkpoint`) and :func:`inference.resume` continues it
(:func:`resume_training`).

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
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from typing import Any

import numpy as np
import torch

from inference.amortized.batches import (
    SimulationTask,
    Simulator,
    batch_of,
    check_executor,
    stored_batches,
)
from inference.amortized.checkpoint import (
    TrainState,
    check_manifest,
    read_state,
    save_state,
    write_manifest,
)
from inference.amortized.loop import Batch, Evaluation, FitState, fit
from inference.amortized.network import Context, ProgramProposal
from inference.amortized.persist import (
    ProposalMismatchError,
    differences,
    key_of,
    key_parts,
    read,
    write,
)
from inference.amortized.simulate import InputSampler, Simulations, discover_model
from inference.checkpoint import CheckpointError
from inference.config import check_bool, check_int
from inference.target import Target
from ppl.errors import PPLError, SiteError
from ppl.prior import ProgramPrior
from ppl.program import Program
from ppl.trace import PROGRAM, ModelTrace, base_distribution

__all__ = ["RESUME_OPTIONS", "TRAINING_OPTIONS", "Proposal", "load_proposal", "program_prior",
           "resume_training", "train_proposal"]

TRAINING_OPTIONS = ("prior_site", "num_steps", "batch_size", "lr", "seed", "max_time",
                    "valid_size", "patience", "eval_every", "hidden", "device", "progress",
                    "checkpoint_every")
"""The options of :func:`train_proposal` a training checkpoint's manifest records."""

RESUME_OPTIONS = ("progress", "executor")
"""The options :func:`resume_training` may change: how the training runs, not what it
computes."""


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
    def train(self, num_steps: int = 1000, *, batch_size: int = 32, lr: float = 3e-3,
              max_time: float | None = None, valid_size: int = 128, patience: int = 10,
              eval_every: int = 20, progress: bool = True,
              simulations: Simulations | None = None,
              executor: Executor | None = None) -> Proposal:
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
        return self._run({"num_steps": num_steps, "batch_size": batch_size, "lr": lr,
                          "max_time": max_time, "valid_size": valid_size,
                          "patience": patience, "eval_every": eval_every,
                          "progress": progress}, simulations, executor)

    def _run(self, opts: Mapping[str, Any], simulations: Simulations | None,
             executor: Executor | None, checkpoint: str | os.PathLike[str] | None = None,
             state: TrainState | None = None) -> Proposal:
        """One training call with ``opts``; with ``checkpoint``, the training state is
        saved every ``opts["checkpoint_every"]`` steps; with ``state``, the call continues
        from it (the network holds its weights)."""
        _check_sources(executor, simulations)
        start = time.perf_counter()
        first = self.steps
        sim = Simulator(SimulationTask(self.model, self.args, self.kwargs, self.inputs,
                                       opts["batch_size"], self.seed), executor)
        optimizer = torch.optim.Adam(self.network.parameters(), lr=opts["lr"])
        adam = self.optimizer_state
        if adam is not None:
            optimizer.load_state_dict(adam)
            for group in optimizer.param_groups:
                group["lr"] = opts["lr"]
        meta = self._meta()

        def save(fit_state: FitState) -> None:
            assert checkpoint is not None and self.valid is not None
            save_state(checkpoint, TrainState(
                (meta, self.network.state_dict(), optimizer.state_dict()), fit_state,
                self.valid))
        try:
            if state is not None:
                self.valid = state.valid
            done = 0 if state is None else state.fit.steps
            next_batch = self._batches(sim, range(first + done, first + opts["num_steps"]),
                                       opts["valid_size"], simulations)
            assert self.valid is not None
            result = fit(self.network, optimizer, next_batch, self.valid, first_step=first,
                         num_steps=opts["num_steps"], max_time=opts["max_time"],
                         patience=opts["patience"], eval_every=opts["eval_every"],
                         progress=opts["progress"], state=None if state is None else state.fit,
                         save=None if checkpoint is None else save,
                         save_every=opts.get("checkpoint_every", 100))
        finally:
            sim.close()
        self.optimizer_state = optimizer.state_dict()
        self.history.extend(result.history)
        self.steps += result.steps
        self.seconds += time.perf_counter() - start + (0.0 if state is None else
                                                       state.fit.seconds)
        return self

    def _batches(self, sim: Simulator, steps: range, valid_size: int,
                 simulations: Simulations | None) -> Callable[[int], Batch]:
        """Set the validation batch (unless it is kept) and return ``next_batch(step)``
        for the global steps ``steps`` this call may take."""
        if simulations is None:
            chunk = sim.steps(steps)  # on an executor, the first chunks start now
            if self.valid is None or len(self.valid.data) != valid_size:
                self.valid = batch_of(self.network, self.site, sim.validation(valid_size),
                                      range(valid_size))

            def next_batch(t: int) -> Batch:
                sims = chunk(t)
                return batch_of(self.network, self.site, sims, range(len(sims)))
            return next_batch
        n = len(simulations) - valid_size
        if n < 1 or self.site not in simulations.programs:
            raise PPLError(f"Stored simulations need more than valid_size={valid_size} draws "
                           f"of program site '{self.site}'; got {len(simulations)} draws of "
                           f"{sorted(simulations.programs)}.")
        self.valid = batch_of(self.network, self.site, simulations, range(n, len(simulations)))
        return stored_batches(batch_of(self.network, self.site, simulations, range(n)),
                              self.seed, sim.task.num)

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
        write(path, self._meta(), self.network.state_dict(), self.optimizer_state)

    def _meta(self) -> dict[str, Any]:
        """The metadata of a proposal file (JSON-able): key, site, seed, steps, seconds,
        the network's shape and seed, and the history."""
        return {"key": self.key, "key_parts": self.key_parts, "site": self.site,
                "seed": self.seed, "steps": self.steps, "seconds": self.seconds,
                "network": {"hidden": self.network.hidden, "seed": self.network.seed},
                "history": [[None if isinstance(v, float) and math.isnan(v) else v
                             for v in e] for e in self.history]}

    def _restore(self, meta: Mapping[str, Any], weights: Mapping[str, Any],
                 optimizer_state: dict[str, Any] | None) -> Proposal:
        """Set the weights, Adam's state, steps, seconds and history of a proposal file
        (:meth:`save`'s metadata, weights and optimiser state); returns self."""
        self.network.load_state_dict(weights)
        self.steps, self.seconds = meta["steps"], meta["seconds"]
        self.history = [Evaluation(int(step), math.nan if train is None else float(train),
                                   float(valid), float(seconds))
                        for step, train, valid, seconds in meta["history"]]
        self.optimizer_state = optimizer_state
        return self

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


def _check_sources(executor: Executor | None, simulations: Simulations | None) -> None:
    """Raise a PPLError unless the draws come from one source: simulated (here or on a
    process-based ``executor``) or ``simulations``."""
    check_executor(executor)
    if executor is not None and simulations is not None:
        raise PPLError("executor= spreads the simulation of minibatches over workers; with "
                       "simulations= there is none to spread. Pass one of them.")


def train_proposal(model: Callable[..., Any], *args: Any, prior_site: str | None = None,
                   num_steps: int = 1000, batch_size: int = 32, lr: float = 3e-3,
                   seed: int = 0, max_time: float | None = None, valid_size: int = 128,
                   patience: int = 10, eval_every: int = 20, hidden: int = 64,
                   device: str = "cpu", progress: bool = True,
                   inputs: InputSampler | None = None,
                   simulations: Simulations | None = None, executor: Executor | None = None,
                   checkpoint: str | os.PathLike[str] | None = None,
                   checkpoint_every: int = 100,
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
        Stop after this many seconds (counted from a resume, for a resumed training).
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
    executor : concurrent.futures.Executor, optional
        Simulate the minibatches on its workers (a ``ProcessPoolExecutor``, a Dask
        client's ``get_executor()``; not threads), up to
        :data:`~inference.amortized.batches.PREFETCH` steps ahead of the training: bitwise
        the proposal of a local run. The workers import the model (and ``inputs``) by name.
    checkpoint, checkpoint_every : str, int
        A file to checkpoint the training to, every ``checkpoint_every`` steps (100);
        :func:`inference.resume` continues it (:mod:`inference.amortized.checkpoint`).

    Returns
    -------
    Proposal

    Raises
    ------
    SiteError
        When the model has no program site, or several and ``prior_site`` is not given.
    SimulationError
        When the model cannot be simulated, or a worker of ``executor`` was lost.

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
    opts = {"prior_site": prior_site, "num_steps": num_steps, "batch_size": batch_size,
            "lr": lr, "seed": seed, "max_time": max_time, "valid_size": valid_size,
            "patience": patience, "eval_every": eval_every, "hidden": hidden,
            "device": device, "progress": progress, "checkpoint_every": checkpoint_every}
    check_int("seed", seed, 0)
    check_int("hidden", hidden, 1)
    check_int("checkpoint_every", checkpoint_every, 1)
    _check_options(num_steps, batch_size, lr, max_time, valid_size, patience, eval_every,
                   progress)
    _check_sources(executor, simulations)
    proposal = _build(model, tuple(args), kwargs, opts, inputs)
    if checkpoint is not None:
        if not isinstance(checkpoint, (str, os.PathLike)):
            raise PPLError(f"checkpoint must be a file path; got {type(checkpoint).__name__}.")
        write_manifest(checkpoint, Target(model, tuple(args), kwargs), opts, inputs,
                       simulations)
    return proposal._run(opts, simulations, executor, checkpoint)


def _build(model: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
           opts: Mapping[str, Any], inputs: InputSampler | None) -> Proposal:
    """An untrained proposal for the model's program site, as ``opts`` asks."""
    found = discover_model(model, args, kwargs)
    site, prior = program_prior(found, opts["prior_site"])
    network = ProgramProposal(prior, hidden=opts["hidden"], seed=opts["seed"],
                              device=opts["device"])
    return Proposal(network, site, key_parts(prior, site, found.sites), model, args, kwargs,
                    inputs, opts["seed"])


def resume_training(path: str | os.PathLike[str], manifest: Mapping[str, Any],
                    model: Callable[..., Any], *args: Any, force: bool = False,
                    model_kwargs: Mapping[str, Any] | None = None, **kwargs: Any) -> Proposal:
    """Continue the training checkpointed to ``path`` (``train_proposal(...,
    checkpoint=path)``, whose manifest is ``manifest``) and return the trained proposal:
    what :func:`inference.resume` does with a training checkpoint.

    The model and its arguments are given again; keywords other than
    :data:`RESUME_OPTIONS` go to the model, and the training options come from the
    checkpoint. A checkpoint of another model, data, program prior or package version is
    refused with a :class:`~inference.checkpoint.CheckpointError` naming what differs,
    unless ``force=True``. Without a state file yet, the training starts again from its
    seed. Without ``max_time`` the result is bitwise the uninterrupted training's; with
    it, the budget counts from the resume.

    Examples
    --------
    >>> import pathlib, tempfile, torch, numpy as np, ppl
    >>> from ppl import dist
    >>> from inference.checkpoint import read
    >>> def model(x, y=None):
    ...     f = ppl.sample("f", ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2))
    ...     ppl.sample("y", dist.Normal(f(x), 0.1).to_event(1), obs=y)
    >>> x, path = np.linspace(0.0, 1.0, 5), pathlib.Path(tempfile.mkdtemp()) / "t.ckpt"
    >>> opts = dict(batch_size=4, valid_size=4, eval_every=2, hidden=8, progress=False)
    >>> whole = train_proposal(model, x, y=x, num_steps=6, checkpoint=path,
    ...                        checkpoint_every=4, **opts)
    >>> again = resume_training(path, read(path), model, x, y=x)  # from step 4 of 6
    >>> all(torch.equal(a, b) for a, b in zip(whole.network.parameters(),
    ...                                       again.network.parameters()))
    True
    """
    options = {k: kwargs.pop(k) for k in RESUME_OPTIONS if k in kwargs}
    fixed = sorted(set(kwargs) & set(TRAINING_OPTIONS + ("inputs", "simulations",
                                                         "checkpoint")))
    if fixed:
        raise PPLError(f"resume continues the training with its own options; {fixed[0]!r} "
                       f"cannot be changed (only {', '.join(RESUME_OPTIONS)}).")
    kwargs = {**kwargs, **(model_kwargs or {})}
    check_manifest(path, manifest, Target(model, tuple(args), kwargs), force)
    opts = {**manifest["options"], **options}
    check_bool("progress", opts["progress"])
    executor = opts.pop("executor", None)
    check_executor(executor)
    state = read_state(path)
    proposal = _build(model, tuple(args), kwargs, opts, manifest["inputs"])
    if state is not None:
        try:
            proposal._restore(*state.proposal)
        except RuntimeError as err:  # another prior, forced: the weights do not fit
            raise CheckpointError(f"The network in the checkpoint {os.fspath(path)!r} does "
                                  f"not fit this model's program prior: {err}") from None
    return proposal._run(opts, manifest["simulations"], executor, path, state)


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
    return Proposal(network, site, parts, model, tuple(args), kwargs, inputs,
                    meta["seed"])._restore(meta, state, optimizer_state)
