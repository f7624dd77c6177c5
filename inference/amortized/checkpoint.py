"""Checkpoints of amortized training: a manifest, and the training state every K steps.

``train_proposal(..., checkpoint="train.ckpt", checkpoint_every=K)`` writes, before the
first step, a manifest ``train.ckpt`` (:func:`write_manifest`: ``"kind": "train"``, the
fingerprint of the model, its data and the program prior as
:func:`inference.checkpoint.fingerprint` computes it for MCMC runs, the training options,
the design sampler and any stored simulations), and every K global steps the whole
training state to ``train.ckpt.state`` (:class:`TrainState`, :func:`save_state`): the
proposal as :meth:`~inference.amortized.Proposal.save` writes it (metadata, the network's
current weights, Adam's state), the loop's state (:class:`~inference.amortized.loop.
FitState`: step, best weights, patience count, losses, history) and the validation set.
Both are written atomically (:func:`inference.checkpoint.save`).

There is no random generator to save: the loop draws nothing itself, and the minibatch of
step t is simulated with its own seed (seed, 0, t) (:mod:`inference.amortized.batches`),
so the simulation stream's state is the next step's index (``FitState.steps``).
:func:`inference.resume` continues the training (:func:`inference.amortized.train.
resume_training`), and N steps, a checkpoint, a fresh process and N more are bitwise the
2N steps of an uninterrupted run.

Examples
--------
>>> import pathlib, tempfile
>>> state_path(pathlib.Path(tempfile.mkdtemp()) / "train.ckpt").name
'train.ckpt.state'
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from inference.amortized.loop import Batch, FitState
from inference.amortized.persist import differences
from inference.amortized.simulate import InputSampler, Simulations
from inference.checkpoint import FORMAT, CheckpointError, fingerprint, read, save
from inference.target import Target
from ppl.errors import PPLError

__all__ = ["KIND", "TrainState", "check_manifest", "read_state", "save_state", "state_path",
           "write_manifest"]

KIND = "train"
"""The ``"kind"`` of a training checkpoint's manifest."""


class TrainState(NamedTuple):
    """A training run between two steps: everything :func:`inference.resume` needs.

    Examples
    --------
    >>> TrainState(({}, {}, None), FitState(0, 0.0, 1.0, {}, 0, [], []), Batch([], [])
    ...            ).fit.best_valid
    1.0
    """

    proposal: tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]
    """(metadata, network weights, Adam's state) as a proposal file holds them
    (:func:`inference.amortized.persist.write`): the metadata of the proposal before this
    training call, the weights and optimiser state of this moment."""
    fit: FitState
    """The loop's state; ``fit.steps`` is also the simulation stream's position."""
    valid: Batch
    """The validation set (drawn once, kept)."""


def state_path(path: str | os.PathLike[str]) -> Path:
    """The file of the training state of the checkpoint ``path``.

    Examples
    --------
    >>> str(state_path("run/train.ckpt"))
    'run/train.ckpt.state'
    """
    return Path(f"{os.fspath(path)}.state")


def write_manifest(path: str | os.PathLike[str], target: Target, options: Mapping[str, Any],
                   inputs: InputSampler | None, simulations: Simulations | None) -> None:
    """Write the manifest of a training checkpoint (and remove the state file of an
    earlier run at ``path``); a PPLError when ``inputs`` cannot be saved.

    Examples
    --------
    >>> import pathlib, tempfile, numpy as np, ppl
    >>> from ppl import dist
    >>> def model(y=None):
    ...     f = ppl.sample("f", ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2))
    ...     ppl.sample("y", dist.Normal(f(0.5), 1.0), obs=y)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "train.ckpt"
    >>> target = Target(model, (), {"y": np.array(0.0)})
    >>> write_manifest(path, target, {"seed": 0}, None, None)
    >>> read(path)["kind"], read(path)["options"]
    ('train', {'seed': 0})
    >>> write_manifest(path, target, {}, lambda r: r, None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ppl.errors.PPLError: checkpoint= saves inputs= with the checkpoint, so it must pickle ...
    """
    state_path(path).unlink(missing_ok=True)
    try:
        save(path, {"format": FORMAT, "kind": KIND, "fingerprint": fingerprint(target),
                    "options": dict(options), "inputs": inputs, "simulations": simulations})
    except (pickle.PicklingError, AttributeError, TypeError) as err:
        raise PPLError(f"checkpoint= saves inputs= with the checkpoint, so it must pickle "
                       f"(a function defined at the top level of a module); got "
                       f"{getattr(inputs, '__qualname__', type(inputs).__name__)} "
                       f"({type(err).__name__}: {err}).") from None


def check_manifest(path: str | os.PathLike[str], manifest: Mapping[str, Any],
                   target: Target, force: bool) -> None:
    """Raise a CheckpointError naming what differs when the training checkpointed at
    ``path`` was of another model, data, program prior or package version (unless
    ``force``).

    Examples
    --------
    >>> import numpy as np, ppl
    >>> from ppl import dist
    >>> def model(y=None):
    ...     f = ppl.sample("f", ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2))
    ...     ppl.sample("y", dist.Normal(f(0.5), 1.0), obs=y)
    >>> saved = {"fingerprint": fingerprint(Target(model, (), {"y": np.array(0.0)}))}
    >>> other = Target(model, (), {"y": np.array(1.0)})
    >>> check_manifest("t.ckpt", saved, other, False)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    inference.checkpoint.CheckpointError: The checkpoint 't.ckpt' is of another training: data ...
    """
    diffs = differences(manifest["fingerprint"], fingerprint(target))
    if diffs and not force:
        raise CheckpointError(f"The checkpoint {os.fspath(path)!r} is of another training: "
                              f"{'; '.join(diffs)} (pass force=True to continue anyway).")


def save_state(path: str | os.PathLike[str], state: TrainState) -> None:
    """Write the training state of the checkpoint ``path`` atomically.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "train.ckpt"
    >>> save_state(path, TrainState(({}, {}, None), FitState(3, 0.1, 1.0, {}, 0, [], []),
    ...                             Batch([], [])))
    >>> read_state(path).fit.steps
    3
    """
    save(state_path(path), {"format": FORMAT, "kind": KIND, "state": state})


def read_state(path: str | os.PathLike[str]) -> TrainState | None:
    """The training state of the checkpoint ``path``, or None when none was written yet
    (the training starts again from its seed); a CheckpointError when it cannot be read.

    Examples
    --------
    >>> read_state("/nonexistent/train.ckpt") is None
    True
    """
    file = state_path(path)
    if not file.exists():
        return None
    payload = read(file)
    if not isinstance(payload, dict) or payload.get("kind") != KIND or \
            payload.get("format") != FORMAT:
        raise CheckpointError(f"{os.fspath(file)!r} is not the state of a training "
                              f"checkpoint of this version (format {FORMAT}).")
    state: TrainState = payload["state"]
    return state

