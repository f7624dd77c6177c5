"""Where the draws of training come from: simulated here, on an executor, or stored.

The simulations of a training run are cut into **chunks**, each simulated with its own seed
(:func:`chunk_seed`): chunk t is the minibatch of global step t, seed (seed, 0, t), and the
validation set is one chunk of ``valid_size`` draws, seed (seed, 1, 0). A chunk's draws are
a function of (seed, its index) alone, so they are the same whether the chunks are simulated
one after another in this process, in any order on the workers of an executor, or after a
resume (the stream's whole state is the next step's index). :class:`Simulator` does both:
without an executor it simulates a chunk when the loop asks for it; with one it keeps up to
:data:`PREFETCH` chunks ahead of the loop in flight on the workers.

From stored :class:`~inference.amortized.simulate.Simulations` (:func:`stored_batches`),
minibatch t is drawn from the pool with a generator seeded by (seed, 0, t).

Examples
--------
>>> import numpy as np
>>> import ppl
>>> from ppl import dist
>>> def model(x, y=None):
...     f = ppl.sample("f", ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2))
...     ppl.sample("y", dist.Normal(f(x), 0.1).to_event(1), obs=y)
>>> x = np.linspace(0.0, 1.0, 4)
>>> sim = Simulator(SimulationTask(model, (x,), {"y": x}, None, 3, 0))
>>> step = sim.steps(range(5))
>>> [str(f) for f in step(2).programs["f"]] == [str(f) for f in step(2).programs["f"]]
True
>>> sim.close()
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, NamedTuple

import numpy as np

from inference.amortized.loop import Batch
from inference.amortized.network import ProgramProposal, points_of
from inference.amortized.simulate import InputSampler, SimulationError, Simulations, simulate
from inference.threads import one_thread
from ppl.errors import PPLError

__all__ = ["PREFETCH", "SimulationTask", "Simulator", "batch_of", "check_executor",
           "chunk_seed", "run_task", "stored_batches"]

PREFETCH = 16
"""Chunks (minibatches) in flight on an executor ahead of the training loop."""

TRAIN, VALIDATION = 0, 1
"""The two streams of chunk seeds: minibatches and the validation set."""


def chunk_seed(seed: int, stream: int, index: int) -> int:
    """The seed of chunk ``index`` of ``stream`` (0: minibatch of step ``index``,
    1: validation): an independent seed spawned from (seed, stream, index).

    Examples
    --------
    >>> chunk_seed(0, 0, 3) == chunk_seed(0, 0, 3) != chunk_seed(0, 0, 4)
    True
    """
    return int(np.random.SeedSequence([seed, stream, index]).generate_state(1)[0])


class SimulationTask(NamedTuple):
    """What a worker needs to simulate a chunk (picklable when the model and ``inputs``
    are functions defined at the top level of a module).

    Examples
    --------
    >>> SimulationTask(print, (), {}, None, 32, 7)._replace(seed=8).seed
    8
    """

    model: Callable[..., Any]
    """The model."""
    args: tuple[Any, ...]
    """Its positional arguments."""
    kwargs: dict[str, Any]
    """Its keyword arguments."""
    inputs: InputSampler | None
    """The design sampler, or None for the fixed arguments."""
    num: int
    """Draws in the chunk."""
    seed: int
    """The chunk's seed (:func:`chunk_seed`)."""


def run_task(task: SimulationTask) -> Simulations:
    """Simulate one chunk (:func:`~inference.amortized.simulate.simulate`) on one torch
    thread, as a chain does (:func:`inference.mcmc.driver.run_chain`).

    Examples
    --------
    >>> import ppl
    >>> from ppl import dist
    >>> def model(x, y=None):
    ...     f = ppl.sample("f", ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2))
    ...     ppl.sample("y", dist.Normal(f(x), 1.0).to_event(1), obs=y)
    >>> len(run_task(SimulationTask(model, ([0.0, 1.0],), {"y": [0.0, 0.0]}, None, 3, 1)))
    3
    """
    with one_thread():
        return simulate(task.model, *task.args, num_simulations=task.num, seed=task.seed,
                        inputs=task.inputs, model_kwargs=task.kwargs)


def check_executor(executor: Any) -> None:
    """Raise a PPLError unless ``executor`` is None or a process-based executor (anything
    with ``submit``, except a ``ThreadPoolExecutor``).

    Examples
    --------
    >>> check_executor(ThreadPoolExecutor(1))
    Traceback (most recent call last):
    ...
    ppl.errors.PPLError: Simulations cannot run in threads: they would share Pyro's handler
    stack. Pass a process-based executor (ProcessPoolExecutor, a Dask client's
    get_executor()) or none.
    """
    if executor is None:
        return
    if isinstance(executor, ThreadPoolExecutor):
        raise PPLError("Simulations cannot run in threads: they would share Pyro's handler "
                       "stack. Pass a process-based executor (ProcessPoolExecutor, a Dask "
                       "client's get_executor()) or none.")
    if not callable(getattr(executor, "submit", None)):
        raise PPLError(f"executor must be a concurrent.futures-style executor with submit() "
                       f"(a ProcessPoolExecutor, a Dask client's get_executor()); got "
                       f"{type(executor).__name__}.")


class Simulator:
    """The chunks of one training call, simulated here or on ``executor``.

    ``task`` gives the model, its arguments, the design sampler and the training seed (its
    ``num`` and ``seed`` are replaced per chunk). Without an executor each chunk is
    simulated when asked for; with one, :meth:`steps` keeps up to :data:`PREFETCH` chunks
    ahead in flight and :meth:`close` cancels those not used. A chunk whose worker was lost
    (the executor raises) is a :class:`~inference.amortized.simulate.SimulationError`
    naming it; a PPLError of the model itself comes back as raised.

    Examples
    --------
    See the module docstring.
    """

    def __init__(self, task: SimulationTask, executor: Executor | None = None) -> None:
        check_executor(executor)
        self.task = task
        """The model, its arguments, the design sampler, the batch size and the seed."""
        self.executor = executor
        """Where the chunks run (None: here, when asked for)."""
        self.pending: dict[int, Future[Simulations]] = {}
        """Step -> the future of its chunk, for the chunks in flight."""

    def validation(self, num: int) -> Simulations:
        """The validation chunk: ``num`` draws with seed (seed, 1, 0).

        Examples
        --------
        >>> import ppl
        >>> from ppl import dist
        >>> def model(x, y=None):
        ...     f = ppl.sample("f", ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2))
        ...     ppl.sample("y", dist.Normal(f(x), 1.0).to_event(1), obs=y)
        >>> task = SimulationTask(model, ([0.0, 1.0],), {"y": [0.0, 0.0]}, None, 3, 0)
        >>> len(Simulator(task).validation(5))
        5
        """
        task = self.task._replace(num=num, seed=chunk_seed(self.task.seed, VALIDATION, 0))
        if self.executor is None:
            return run_task(task)
        return self.result(self.executor.submit(run_task, task), "the validation set")

    def steps(self, steps: range) -> Callable[[int], Simulations]:
        """``chunk(t)``: the draws of the minibatch of global step t, one of ``steps``
        (the steps this call may take; on an executor the first :data:`PREFETCH` of them
        are submitted at once, and each call keeps the next ones in flight).

        Examples
        --------
        See the module docstring.
        """
        def submit(first: int) -> None:
            assert self.executor is not None
            for t in range(first, min(first + PREFETCH, steps.stop)):
                if t not in self.pending:
                    self.pending[t] = self.executor.submit(run_task, self.task._replace(
                        seed=chunk_seed(self.task.seed, TRAIN, t)))

        def chunk(t: int) -> Simulations:
            if self.executor is None:
                return run_task(self.task._replace(seed=chunk_seed(self.task.seed, TRAIN, t)))
            submit(t)
            return self.result(self.pending.pop(t), f"training step {t}")
        if self.executor is not None:
            submit(steps.start)
        return chunk

    def result(self, future: Future[Simulations], what: str) -> Simulations:
        """The draws of a chunk's future; a SimulationError when the executor failed.

        Examples
        --------
        >>> from concurrent.futures import Future
        >>> lost = Future()
        >>> lost.set_exception(RuntimeError("worker died"))
        >>> sim = Simulator(SimulationTask(print, (), {}, None, 1, 0))
        >>> sim.result(lost, "step 3")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        inference.amortized.simulate.SimulationError: The simulations of step 3 were lost on
        the executor: RuntimeError: worker died. ...
        """
        try:
            return future.result()
        except PPLError:  # the model's own error, as a local run raises it
            raise
        except Exception as err:  # whatever the executor raises for a lost worker
            self.close()
            raise SimulationError(
                f"The simulations of {what} were lost on the executor: "
                f"{type(err).__name__}: {err}. Expected the chunk's draws from a worker; a "
                "worker that died (killed, out of memory, disconnected) loses its chunk. "
                "Hint: Dask retries a lost chunk on another worker up to "
                "distributed.scheduler.allowed-failures times; with checkpoint=, "
                "inference.resume continues the training from its last checkpoint. The "
                "workers import the model and inputs= by name: define them at the top "
                "level of a module.") from err

    def close(self) -> None:
        """Cancel the chunks still in flight (those the loop will not use).

        Examples
        --------
        >>> Simulator(SimulationTask(print, (), {}, None, 1, 0)).close()
        """
        for future in self.pending.values():
            future.cancel()
        self.pending.clear()


def batch_of(network: ProgramProposal, site: str, sims: Simulations,
             indices: Sequence[int]) -> Batch:
    """The draws ``indices`` of ``sims`` as a training batch of ``network`` (program site
    ``site``).

    Examples
    --------
    >>> import numpy as np
    >>> import ppl
    >>> from ppl import dist
    >>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
    >>> def model(x, y=None):
    ...     ppl.sample("y", dist.Normal(ppl.sample("f", prior)(x), 0.1).to_event(1), obs=y)
    >>> sims = simulate(model, [0.0, 1.0], y=[0.0, 0.0], num_simulations=3, seed=0)
    >>> batch = batch_of(ProgramProposal(prior, hidden=8), "f", sims, [0, 2])
    >>> len(batch.data), batch.data[0].shape
    (2, (2, 2))
    """
    prior = network.prior
    d = len(prior.inputs)
    data = [points_of(*sims.data(i, prior), d) for i in indices]
    return Batch(data, network.walks([sims.programs[site][i] for i in indices]))


def stored_batches(pool: Batch, seed: int, batch_size: int) -> Callable[[int], Batch]:
    """``next_batch(t)``: ``batch_size`` draws of ``pool`` with replacement, chosen by a
    generator seeded by (seed, 0, t).

    Examples
    --------
    >>> pool = Batch([np.zeros((1, 2)) + i for i in range(5)], [[] for _ in range(5)])
    >>> [float(p[0, 0]) for p in stored_batches(pool, 0, 3)(7).data]
    [3.0, 4.0, 0.0]
    """
    def next_batch(t: int) -> Batch:
        rng = np.random.default_rng(chunk_seed(seed, TRAIN, t))
        pick = rng.choice(len(pool.data), batch_size)
        return Batch([pool.data[i] for i in pick], [pool.walks[i] for i in pick])
    return next_batch

