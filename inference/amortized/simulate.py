"""Ancestral simulation of a model: draws of (x, y, φ, θ) to train proposals on.

:func:`simulate` runs the model forward: every latent site (programs included) is drawn
from its prior and every observed site from the model (its data replaced by a draw, as
``poutine.uncondition`` does). The inputs x are the model's own arguments (a fixed design),
or come from ``inputs(rng) -> (args, kwargs)`` (a design sampler) for each draw.

Which sites are data: the sites the model observes when run with the arguments given
(``ppl.trace.discover``, as ``infer`` classifies them): pass the data argument, e.g.
``y=y`` (any values of the right shape: they are replaced by simulations).

The network's view of a draw (:func:`data_view`): **the model's first d positional
arguments are the prior's d inputs, in the prior's order** (an input with no positional
argument is looked up among the keyword arguments by its name), and **the first observed
site is y**. So ``def model(x, y=None)`` with ``ProgramPrior(..., inputs=["x"])`` gives the
points (x_i, y_i).

A draw with a NaN or infinite observed value (an invalid program, e.g. log of a negative
number) is counted in ``num_invalid`` and drawn again, at most :data:`MAX_TRIES` times in a
row; then :class:`SimulationError`. Draws are a deterministic function of ``seed``.

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
>>> x = np.linspace(-1, 1, 4)
>>> sims = simulate(model, x, y=np.zeros(4), num_simulations=3, seed=0)
>>> len(sims), sims.num_invalid, [str(f) for f in sims.programs["f"]]
(3, 0, ['1', 'x', '1'])
>>> xs, ys = sims.data(0, prior)
>>> xs.shape, ys.shape
((4, 1), (4,))
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pyro import poutine

from inference.config import check_int
from ppl.backend import to_torch
from ppl.errors import DataError, PPLError
from ppl.prior import ProgramPrior
from ppl.program import BoundProgram, Program
from ppl.trace import ModelTrace, data_errors, discover, seeded, sites_of, trace_model

__all__ = ["MAX_TRIES", "SimulationError", "Simulations", "data_view", "discover_model",
           "simulate"]

MAX_TRIES = 100
"""Invalid draws in a row after which :func:`simulate` gives up."""

InputSampler = Callable[[np.random.Generator], tuple[Sequence[Any], Mapping[str, Any]]]


class SimulationError(PPLError):
    """Simulating a model failed: no observed site, or only invalid draws.

    Examples
    --------
    >>> issubclass(SimulationError, PPLError)
    True
    """


@dataclass(frozen=True)
class Simulations:
    """Draws of a model by ancestral simulation (:func:`simulate`), one entry per draw.

    Examples
    --------
    >>> import ppl
    >>> from ppl import dist
    >>> def model(x, y=None):
    ...     f = ppl.sample("f", ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2))
    ...     ppl.sample("y", dist.Normal(f(x), 1.0).to_event(1), obs=y)
    >>> sims = simulate(model, [0.0, 1.0], y=[0.0, 0.0], num_simulations=4, seed=1)
    >>> len(sims.subset([0, 2])), sims.observed["y"][0].shape
    (2, (2,))
    """

    args: tuple[tuple[Any, ...], ...]
    """The model's positional arguments of each draw (the design x)."""
    kwargs: tuple[dict[str, Any], ...]
    """Its keyword arguments of each draw (the observed sites' data, if passed so, are the
    caller's values, not the draws: read :attr:`observed`)."""
    programs: dict[str, tuple[Program, ...]]
    """Program site -> the drawn program of each draw."""
    latents: dict[str, tuple[np.ndarray, ...]]
    """Other latent site -> its drawn value of each draw."""
    observed: dict[str, tuple[np.ndarray, ...]]
    """Observed site -> its simulated value of each draw (model order: the first is y)."""
    seed: int
    """The seed of the draws."""
    seconds: float
    """Wall time of the simulation."""
    num_invalid: int
    """Invalid draws (NaN/inf observed values) that were discarded and drawn again."""

    def __len__(self) -> int:
        return len(self.args)

    def data(self, i: int, prior: ProgramPrior) -> tuple[np.ndarray, np.ndarray]:
        """(x (n, d), y (n,)) of draw ``i`` as the network sees it (:func:`data_view`)."""
        return data_view(self.args[i], self.kwargs[i],
                         {k: v[i] for k, v in self.observed.items()}, prior)

    def subset(self, indices: Sequence[int]) -> Simulations:
        """The draws at ``indices`` (same seed, cost and invalid count)."""
        idx = list(indices)
        return Simulations(
            tuple(self.args[i] for i in idx), tuple(self.kwargs[i] for i in idx),
            {k: tuple(v[i] for i in idx) for k, v in self.programs.items()},
            {k: tuple(v[i] for i in idx) for k, v in self.latents.items()},
            {k: tuple(v[i] for i in idx) for k, v in self.observed.items()},
            self.seed, self.seconds, self.num_invalid)


def _numeric(value: Any, what: str) -> np.ndarray:
    """A model argument or site value as a float64 numpy array; DataError if not numeric."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{what} must be numeric (an array of numbers); got "
                        f"{type(value).__name__}.") from None


def data_view(args: Sequence[Any], kwargs: Mapping[str, Any], observed: Mapping[str, Any],
              prior: ProgramPrior) -> tuple[np.ndarray, np.ndarray]:
    """The network's data set (x (n, d), y (n,)) of one model run.

    Convention: the model's first d positional arguments are the prior's d inputs, in
    ``prior.inputs`` order (an input beyond the positional arguments is read from
    ``kwargs`` by its name); the first observed site is y, flattened to n values. An input
    of one value is broadcast to n.

    Raises
    ------
    DataError
        Naming what does not fit: no observed site, an input with no argument, a
        non-numeric argument, a length other than n, a non-finite value.

    Examples
    --------
    >>> import numpy as np
    >>> import ppl
    >>> prior = ppl.ProgramPrior("arith", inputs=["q", "c"], max_depth=3)
    >>> x, y = data_view((np.arange(3.0),), {"c": 2.0}, {"y": np.ones(3)}, prior)
    >>> x.tolist()
    [[0.0, 2.0], [1.0, 2.0], [2.0, 2.0]]
    >>> data_view((np.arange(3.0),), {}, {"y": np.ones(3)}, prior)
    Traceback (most recent call last):
    ...
    ppl.errors.DataError: The prior's input 'c' (input 1 of ['q', 'c']) has no model argument:
    expected the model's first 2 positional arguments to be the prior's inputs, in order,
    or a keyword argument 'c'; got 1 positional argument(s) and keywords [].
    """
    if not observed:
        raise DataError("The data view needs an observed site (y); got none. Expected the "
                        "model's obs= sites; hint: pass the data argument, e.g. y=y.")
    site, value = next(iter(observed.items()))
    y = _numeric(value, f"Observed site '{site}'").reshape(-1)
    n = y.size
    if n == 0 or not np.all(np.isfinite(y)):
        raise DataError(f"Observed site '{site}' must hold n >= 1 finite values; got "
                        f"{n} value(s), {int(np.sum(~np.isfinite(y)))} not finite.")
    cols = []
    for j, name in enumerate(prior.inputs):
        if j < len(args):
            where, raw = f"Positional argument {j} (the prior's input '{name}')", args[j]
        elif name in kwargs:
            where, raw = f"Keyword argument '{name}' (the prior's input)", kwargs[name]
        else:
            raise DataError(
                f"The prior's input '{name}' (input {j} of {list(prior.inputs)}) has no model "
                f"argument: expected the model's first {len(prior.inputs)} positional "
                f"arguments to be the prior's inputs, in order, or a keyword argument "
                f"'{name}'; got {len(args)} positional argument(s) and keywords "
                f"{sorted(kwargs)}.")
        col = _numeric(raw, where).reshape(-1)
        if col.size == 1:
            col = np.full(n, col[0])
        if col.size != n or not np.all(np.isfinite(col)):
            raise DataError(f"{where} must hold {n} finite values (one per value of the "
                            f"observed site '{site}'); got {col.size} value(s).")
        cols.append(col)
    x = np.stack(cols, axis=1) if cols else np.zeros((n, 0))
    return x, y


def discover_model(model: Callable[..., Any], args: Sequence[Any],
                   kwargs: Mapping[str, Any], seed: int = 0) -> ModelTrace:
    """The discovery run (``ppl.trace.discover``) of ``model`` on its arguments, arrays
    passed as torch tensors; a model failing on them is a DataError.

    Examples
    --------
    >>> import ppl
    >>> from ppl import dist
    >>> def model(x, y=None):
    ...     ppl.sample("y", dist.Normal(x, 1.0).to_event(1), obs=y)
    >>> discover_model(model, ([0.0, 1.0],), {"y": [0.5, 0.5]}).observed
    ['y']
    """
    with data_errors():
        return discover(model, tuple(to_torch(a) for a in args),
                        {k: to_torch(v) for k, v in kwargs.items()}, seed=seed)


def _design(inputs: InputSampler | None, rng: np.random.Generator, args: tuple[Any, ...],
           kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The model arguments of one draw: the fixed ones, or a draw of ``inputs(rng)``."""
    if inputs is None:
        return args, kwargs
    got = inputs(rng)
    if not (isinstance(got, tuple) and len(got) == 2 and isinstance(got[0], (tuple, list))
            and isinstance(got[1], Mapping)):
        raise SimulationError(f"inputs(rng) must return (args, kwargs): a tuple of positional "
                              f"arguments and a dict of keyword arguments; got {got!r:.80}.")
    return tuple(got[0]), {**kwargs, **got[1]}


def simulate(model: Callable[..., Any], *args: Any, num_simulations: int, seed: int,
             inputs: InputSampler | None = None, model_kwargs: Mapping[str, Any] | None = None,
             **kwargs: Any) -> Simulations:
    """Draw (x, y, φ, θ) ``num_simulations`` times by ancestral simulation of ``model``.

    Parameters
    ----------
    model : callable
        The model; its observed sites (those observed with the arguments given) are
        simulated.
    *args, **kwargs
        The model's arguments (the fixed design, and placeholder data for the observed
        sites).
    num_simulations : int
        Number of valid draws.
    seed : int
        Seed: the same seed gives the same draws.
    inputs : callable, optional
        ``inputs(rng) -> (args, kwargs)``: draws the model arguments of each draw from a
        numpy Generator (its keywords update ``kwargs``); default: the fixed arguments.
    model_kwargs : mapping, optional
        More keyword arguments of the model (any names, e.g. ``seed``).

    Returns
    -------
    Simulations
        The draws, their wall time and the number of invalid draws discarded.

    Raises
    ------
    SimulationError
        When the model observes no site, or :data:`MAX_TRIES` draws in a row are invalid.
    DataError
        When the model fails on its arguments.

    Examples
    --------
    >>> import ppl
    >>> from ppl import dist
    >>> def model(y=None):
    ...     mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
    ...     ppl.sample("y", dist.Normal(mu, 1.0), obs=y)
    >>> simulate(model, num_simulations=2, seed=0)
    Traceback (most recent call last):
    ...
    inference.amortized.simulate.SimulationError: The model observes no site with the
    arguments given; expected at least one obs= site (the data y). Hint: pass the data
    argument (e.g. y=...): its values are replaced by simulations.
    """
    check_int("num_simulations", num_simulations, 1)
    check_int("seed", seed, 0)
    if inputs is not None and not callable(inputs):
        raise SimulationError(f"inputs must be a callable inputs(rng) -> (args, kwargs) or "
                              f"None; got {type(inputs).__name__}.")
    kwargs = {**kwargs, **(model_kwargs or {})}
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    first_args, first_kwargs = _design(inputs, np.random.default_rng([seed, 1]), args, kwargs)
    names = discover_model(model, first_args, first_kwargs, seed).observed
    if not names:
        raise SimulationError("The model observes no site with the arguments given; expected "
                              "at least one obs= site (the data y). Hint: pass the data "
                              "argument (e.g. y=...): its values are replaced by simulations.")
    free = poutine.uncondition(model)
    draws: list[tuple[tuple[Any, ...], dict[str, Any], dict[str, Any]]] = []
    invalid = 0
    while len(draws) < num_simulations:
        for _ in range(MAX_TRIES):
            a, kw = _design(inputs, rng, args, kwargs)
            with data_errors(), seeded(int(rng.integers(0, 2**62))):
                trace = trace_model(free, tuple(to_torch(v) for v in a),
                                    {k: to_torch(v) for k, v in kw.items()})
            values = {n: s.value for n, s in sites_of(trace).items()
                      if s.latent or n in names}
            if all(np.all(np.isfinite(_numeric(values[n], f"Site '{n}'"))) for n in names):
                draws.append((a, kw, values))
                break
            invalid += 1
        else:
            raise SimulationError(
                f"{MAX_TRIES} draws in a row gave NaN or infinite values at {names} "
                f"({invalid} invalid in all, {len(draws)} valid); expected finite data. Hint: "
                "check the prior (e.g. weights of log, div) and the inputs' range.")
    return _collect(draws, names, seed, time.perf_counter() - start, invalid)


def _collect(draws: list[tuple[tuple[Any, ...], dict[str, Any], dict[str, Any]]],
            observed: list[str], seed: int, seconds: float, invalid: int) -> Simulations:
    """The :class:`Simulations` record of valid draws (args, kwargs, site values)."""
    programs: dict[str, list[Program]] = {}
    latents: dict[str, list[np.ndarray]] = {}
    data: dict[str, list[np.ndarray]] = {n: [] for n in observed}
    for _, _, values in draws:
        for name, value in values.items():
            if name in data:
                data[name].append(_numeric(value, f"Site '{name}'"))
            elif isinstance(value, (Program, BoundProgram)):
                programs.setdefault(name, []).append(
                    value.program if isinstance(value, BoundProgram) else value)
            else:
                latents.setdefault(name, []).append(_numeric(value, f"Site '{name}'"))
    return Simulations(tuple(a for a, _, _ in draws), tuple(kw for _, kw, _ in draws),
                       {k: tuple(v) for k, v in programs.items()},
                       {k: tuple(v) for k, v in latents.items()},
                       {k: tuple(v) for k, v in data.items()}, seed, seconds, invalid)
