"""Checkpoints of a program-MCMC run: atomic files, and what a resume must match.

``infer(..., checkpoint="run.ckpt", checkpoint_every=100)`` writes, before any chain
starts, a manifest ``run.ckpt`` (the run's options and a fingerprint of what it ran on),
and every ``checkpoint_every`` sweeps one file per chain, ``run.ckpt.chain<c>``, with that
chain's whole state: every rung's Gibbs state (programs, continuous values, adaptive step
sizes, the NUTS blocks' kernels), the random generator's state, the loop's position and the
draws kept so far. Caches are not saved: each is a memo of its key, rebuilt on demand.
:func:`inference.resume` continues the run from them, and N sweeps, a checkpoint, a fresh
process and N more are bitwise the 2N sweeps of an uninterrupted run (without ``max_time``,
whose cut depends on the clock).

Every file is written atomically (:func:`save`, by :func:`inference.files.atomic_write`: a
temporary file in the same folder, flushed and fsynced, then ``os.replace``): a run killed
during a write leaves the previous checkpoint intact.

Examples
--------
>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "run.ckpt"
>>> save(path, {"a": 1})
>>> read(path)
{'a': 1}
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import os
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

import ppl
from inference.amortized.persist import differences, key_parts
from inference.files import atomic_write
from inference.target import Target
from ppl.errors import PPLError
from ppl.trace import PROGRAM

__all__ = ["FORMAT", "CheckpointError", "begin", "chain_path", "check_run", "fingerprint",
           "read", "run_fingerprint", "save"]

FORMAT = 1
"""Version of the checkpoint files' layout."""


class CheckpointError(PPLError):
    """A checkpoint that cannot be read, or that belongs to another run."""


class _Pickler(pickle.Pickler):
    """Stores the objects of ``keep`` by their position: a chain's state refers to its
    target (and through it the model), which the resuming process builds anew."""

    def __init__(self, file: Any, keep: Sequence[Any]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.keep = {id(o): i for i, o in enumerate(keep)}

    def persistent_id(self, obj: Any) -> Any:
        i = self.keep.get(id(obj))
        return None if i is None else ("keep", i)


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: Any, keep: Sequence[Any]) -> None:
        super().__init__(file)
        self.keep = keep

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and pid[0] == "keep" and pid[1] < len(self.keep)):
            raise pickle.UnpicklingError(f"unknown reference {pid!r}")
        return self.keep[pid[1]]


def save(path: str | os.PathLike[str], payload: Any, keep: Sequence[Any] = ()) -> None:
    """Pickle ``payload`` to ``path`` atomically; the objects of ``keep`` are
    stored as references, which :func:`read` resolves to the objects it is given."""
    atomic_write(path, lambda f: _Pickler(f, keep).dump(payload))


def read(path: str | os.PathLike[str], keep: Sequence[Any] = ()) -> Any:
    """The payload of a checkpoint file (references to ``keep``'s positions resolved to its
    objects); :class:`CheckpointError` naming the file when it is missing or unreadable."""
    try:
        with open(path, "rb") as f:
            return _Unpickler(f, keep).load()
    except FileNotFoundError:
        raise CheckpointError(f"No checkpoint at {os.fspath(path)!r}.") from None
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError) as err:
        raise CheckpointError(f"The checkpoint {os.fspath(path)!r} cannot be read: "
                              f"{type(err).__name__}: {err}") from None


def chain_path(path: str | os.PathLike[str], chain: int) -> Path:
    """The file of chain ``chain`` of the checkpoint ``path``."""
    return Path(f"{os.fspath(path)}.chain{chain}")


def _digest(value: Any, h: Any) -> None:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    elif hasattr(value, "__array__") and not isinstance(value, np.ndarray):  # jax arrays
        value = np.asarray(value)
    if isinstance(value, np.ndarray):
        h.update(str((value.dtype, value.shape)).encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, Mapping):
        for k in sorted(value, key=str):
            h.update(repr(k).encode())
            _digest(value[k], h)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _digest(v, h)
    else:
        h.update(repr(value).encode())


def fingerprint(target: Target) -> dict[str, Any]:
    """What a resume must match: the package version, the model (its name and source),
    the data (observed values and arguments), the latent sites, and each program site's
    prior (:func:`inference.amortized.persist.key_parts`, as a trained proposal's key).

    Examples
    --------
    >>> import numpy as np, ppl
    >>> from ppl import dist
    >>> from inference.amortized.persist import differences
    >>> def model(y=None):
    ...     ppl.sample("y", dist.Normal(ppl.sample("m", dist.Normal(0.0, 1.0)), 1.0), obs=y)
    >>> a = fingerprint(Target(model, (), {"y": np.array(1.0)}))
    >>> b = fingerprint(Target(model, (), {"y": np.array(2.0)}))
    >>> [d.split()[0] for d in differences(a, b)]
    ['data']
    """
    programs = {}
    for name, site in sorted(target.latents.items()):
        if site.kind == PROGRAM:
            parts = key_parts(site.fn, name, {})
            del parts["sites"]
            programs[name] = parts
    return run_fingerprint(
        target.model, [target.args, target.kwargs, target.observed, target.given_obs,
                       target.fixed], {n: s.kind for n, s in target.latents.items()}, programs)


def run_fingerprint(model: Any, data: Any, sites: Mapping[str, str],
                    programs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The fingerprint of a run of ``model`` on ``data`` (any nest of arrays, tensors,
    mappings and sequences) whose latent sites have the kinds ``sites``; ``programs`` holds
    each program site's prior key (:func:`fingerprint` builds it from a Target).

    Examples
    --------
    >>> import numpy as np
    >>> def model(y=None): ...
    >>> a = run_fingerprint(model, [np.zeros(3)], {"m": "continuous"})
    >>> a == run_fingerprint(model, [np.zeros(3)], {"m": "continuous"})
    True
    >>> a["data"] == run_fingerprint(model, [np.ones(3)], {"m": "continuous"})["data"]
    False
    """
    try:
        source = inspect.getsource(model)
    except (OSError, TypeError):
        source = ""
    digest = hashlib.sha256()
    _digest(data, digest)
    return {"package": ppl.__version__,
            "model": f"{getattr(model, '__module__', '?')}."
                     f"{getattr(model, '__qualname__', repr(model))} "
                     f"{hashlib.sha256(source.encode()).hexdigest()[:16]}",
            "data": digest.hexdigest()[:16], "programs": dict(programs or {}),
            "sites": ",".join(f"{n}:{k}" for n, k in sorted(sites.items()))}


def begin(path: str | os.PathLike[str], fp: Mapping[str, Any], config: Any,
          resuming: bool, force: bool = False) -> None:
    """Start a checkpointed run: write its manifest (format, fingerprint ``fp`` and the
    run's ``config`` without its executor), or, when ``resuming``, check that the saved
    fingerprint matches ``fp`` (a :class:`CheckpointError` naming what differs unless
    ``force``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "run.ckpt"
    >>> begin(path, {"data": "a"}, None, resuming=False)
    >>> begin(path, {"data": "a"}, None, resuming=True)
    >>> try:
    ...     begin(path, {"data": "b"}, None, resuming=True)
    ... except CheckpointError as err:
    ...     print(str(err)[-63:])
    data (saved "a", now "b") (pass force=True to continue anyway).
    """
    if not resuming:
        executor_free = (dataclasses.replace(config, executor=None)
                         if hasattr(config, "executor") else config)
        save(path, {"format": FORMAT, "fingerprint": dict(fp), "config": executor_free})
        return
    _refuse(path, read(path)["fingerprint"], fp, force)


def check_run(path: str | os.PathLike[str], manifest: Mapping[str, Any], target: Target,
              force: bool = False) -> None:
    """Refuse to resume the checkpoint ``path`` (its ``manifest``) on ``target`` when it is
    of another run, with a :class:`CheckpointError` naming what differs in their
    :func:`fingerprint` (the model, the data, a program prior, the package version);
    ``force=True`` continues anyway.

    Examples
    --------
    >>> import numpy as np, ppl
    >>> from ppl import dist
    >>> def model(y=None):
    ...     ppl.sample("y", dist.Normal(ppl.sample("m", dist.Normal(0.0, 1.0)), 1.0), obs=y)
    >>> manifest = {"fingerprint": fingerprint(Target(model, (), {"y": np.array(1.0)}))}
    >>> check_run("run.ckpt", manifest, Target(model, (), {"y": np.array(1.0)}))
    >>> try:
    ...     check_run("run.ckpt", manifest, Target(model, (), {"y": np.array(2.0)}))
    ... except CheckpointError as err:
    ...     print(str(err)[:57])
    The checkpoint 'run.ckpt' is of another run: data (saved
    """
    _refuse(path, manifest["fingerprint"], fingerprint(target), force)


def _refuse(path: str | os.PathLike[str], saved: Mapping[str, Any], now: Mapping[str, Any],
            force: bool) -> None:
    diffs = differences(dict(saved), dict(now))
    if diffs and not force:
        raise CheckpointError(f"The checkpoint {os.fspath(path)!r} is of another run: "
                              f"{'; '.join(diffs)} (pass force=True to continue anyway).")
