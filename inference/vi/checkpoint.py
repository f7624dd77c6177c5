"""Checkpoints of ``infer(..., method="svi", checkpoint="run.ckpt")`` and their resume.

An SVI run writes, once its sites are checked, the manifest ``run.ckpt`` (as an MCMC run
does: the format, the fingerprint of the model and data, the options), and every
``checkpoint_every`` optimisation steps the fit's whole state to ``run.ckpt.svi``
(:func:`state_path`):

- the loss (negative ELBO estimate) of every step so far, from which the loop's state (the
  windows' means of the convergence test) is rebuilt (:func:`inference.vi.fit.train`);
- what the backend's optimisation needs to go on, by the path the fit takes (``kind``):
  ``"pyro"``, the parameter store's unconstrained values, ``ClippedAdam``'s state per
  parameter (moments, step, decayed step size) and torch's generator; ``"numpyro"``, the
  leaves of the ``SVIState`` pytree (the optimiser's state, its step counter, the
  ``rng_key``) as numpy arrays; ``"program"``, the program guides' logits, every
  structure's constant guide in the optimiser's order, the continuous sites' guides, the
  optimiser's state, the numpy generator of the particles, torch's generator, the log p
  cache and the counters of invalid particles and skipped steps.

:func:`inference.resume` (through :func:`resume_svi`) builds the fit anew from the seed,
as the first run did, then loads that state over it and runs the remaining steps. Without
``max_time``, N steps, a checkpoint, a fresh process and N more are bitwise the 2N steps
of an uninterrupted run (parameters, ELBO trace, draws); a resumed run's ``max_time``
counts from the resume. Every file is written atomically (:func:`inference.checkpoint.
save`).

Examples
--------
>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "run.ckpt"
>>> state_path(path).name
'run.ckpt.svi'
"""

from __future__ import annotations

import dataclasses
import os
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from inference.checkpoint import FORMAT, CheckpointError, check_run, fingerprint, read, save
from inference.config import RunConfig
from inference.results import Posterior
from inference.target import Target
from ppl.errors import PPLError

__all__ = ["KINDS", "Checkpoints", "resume_svi", "state_path", "write_manifest"]

KINDS = ("pyro", "numpyro", "program")
"""The fit paths whose states a checkpoint holds: Pyro's SVI, NumPyro's SVI, and the
program path (:mod:`inference.vi.program_fit`)."""


def state_path(path: str | os.PathLike[str]) -> Path:
    """The file of the fit's state of the checkpoint ``path``."""
    return Path(f"{os.fspath(path)}.svi")


def write_manifest(model: Callable[..., Any], args: tuple[Any, ...],
                   kwargs: Mapping[str, Any], cfg: RunConfig) -> None:
    """Remove the state file an earlier run left at ``cfg.checkpoint``, then write the
    manifest of a checkpointed SVI run there; a guide callable that cannot be pickled (a
    lambda, a function defined inside another) is refused before anything is written.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, ppl
    >>> from ppl import dist
    >>> def model(y=None):
    ...     ppl.sample("y", dist.Normal(ppl.sample("m", dist.Normal(0.0, 1.0)), 1.0), obs=y)
    >>> path = str(pathlib.Path(tempfile.mkdtemp()) / "run.ckpt")
    >>> write_manifest(model, (), {"y": np.array(1.0)},
    ...                RunConfig.build(method="svi", checkpoint=path))
    >>> sorted(read(path))
    ['config', 'fingerprint', 'format']
    """
    assert cfg.checkpoint is not None
    guide = cfg.svi.guide
    if not isinstance(guide, str):
        try:
            pickle.dumps(guide)
        except (pickle.PicklingError, AttributeError, TypeError) as err:
            raise PPLError(f"checkpoint= saves the run's options, and the guide "
                           f"{cfg.svi.guide_name!r} cannot be pickled ({err}). Define it at "
                           "the top level of a module, or run without checkpoint=.") from None
    target = Target(model, args, kwargs, seed=cfg.seed)
    state_path(cfg.checkpoint).unlink(missing_ok=True)
    save(cfg.checkpoint, {"format": FORMAT, "fingerprint": fingerprint(target),
                          "config": dataclasses.replace(cfg, executor=None)})


class Checkpoints:
    """When a fit saves its state, where, and the state it resumes from.

    Parameters
    ----------
    cfg : RunConfig
        The run: ``checkpoint`` (None: nothing is saved) and ``checkpoint_every``.
    saved : mapping, optional
        The payload of the state file a resumed fit continues from (:func:`state_path`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = str(pathlib.Path(tempfile.mkdtemp()) / "run.ckpt")
    >>> ckpt = Checkpoints(RunConfig.build(method="svi", checkpoint=path))
    >>> ckpt.losses is None, ckpt.load("pyro")
    (True, None)
    """

    def __init__(self, cfg: RunConfig, saved: Mapping[str, Any] | None = None) -> None:
        self.path = None if cfg.checkpoint is None else state_path(cfg.checkpoint)
        self.every = cfg.checkpoint_every
        self.saved = saved

    @property
    def losses(self) -> np.ndarray | None:
        """The losses of the steps the resumed fit has run (None for a fresh fit)."""
        return None if self.saved is None else np.asarray(self.saved["losses"])

    def load(self, kind: str) -> Any:
        """The saved state of the fit path ``kind`` (one of :data:`KINDS`), None for a
        fresh fit; a :class:`~inference.checkpoint.CheckpointError` when the checkpoint
        was written by another path (the model changed under ``force=True``).

        Examples
        --------
        >>> ckpt = Checkpoints(RunConfig.build(method="svi"),
        ...                    {"kind": "pyro", "state": 1, "losses": [0.5]})
        >>> ckpt.load("pyro")
        1
        >>> ckpt.load("numpyro")
        Traceback (most recent call last):
        ...
        inference.checkpoint.CheckpointError: The checkpoint holds the state of a 'pyro' fit;
        this run is a 'numpyro' fit.
        """
        if self.saved is None:
            return None
        if self.saved.get("kind") != kind:
            raise CheckpointError(f"The checkpoint holds the state of a "
                                  f"{self.saved.get('kind')!r} fit; this run is a {kind!r} "
                                  "fit.")
        return self.saved["state"]

    def saver(self, kind: str, snapshot: Callable[[], Any]
              ) -> Callable[[np.ndarray], None] | None:
        """The ``save`` of :func:`inference.vi.fit.train`: writes the losses so far and
        ``snapshot()`` atomically (None when the run has no checkpoint).

        Examples
        --------
        >>> import tempfile, pathlib
        >>> path = str(pathlib.Path(tempfile.mkdtemp()) / "run.ckpt")
        >>> save = Checkpoints(RunConfig.build(method="svi", checkpoint=path)).saver(
        ...     "pyro", lambda: {"w": 1})
        >>> save(np.array([3.0, 2.0]))
        >>> got = read(state_path(path))
        >>> got["step"], got["kind"], got["state"]
        (2, 'pyro', {'w': 1})
        """
        if self.path is None:
            return None
        path = self.path

        def write(losses: np.ndarray) -> None:
            save(path, {"format": FORMAT, "kind": kind, "step": len(losses),
                        "losses": np.array(losses), "state": snapshot()})

        return write


def resume_svi(path: str, manifest: Mapping[str, Any], config: RunConfig,
               model: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
               force: bool) -> Posterior:
    """:func:`inference.resume` for ``method="svi"``: check that the checkpoint is of this
    model and data (:func:`inference.checkpoint.check_run`), then run the fit from its
    state file (from the seed when it had written none). ``attrs["resumed"]`` is the step
    the fit continued from (0: none).

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, ppl
    >>> from inference import infer, resume
    >>> from ppl import dist
    >>> def model(y=None):
    ...     ppl.sample("y", dist.Normal(ppl.sample("m", dist.Normal(0.0, 1.0)), 1.0), obs=y)
    >>> path = str(pathlib.Path(tempfile.mkdtemp()) / "run.ckpt")
    >>> run = dict(method="svi", num_steps=100, learning_rate=0.1, num_samples=100,
    ...            num_chains=1, progress=False)
    >>> whole = infer(model, y=np.array(0.5), checkpoint=path, checkpoint_every=60, **run)
    >>> again = resume(path, model, y=np.array(0.5))           # steps 61 to 100 again
    >>> again.attrs["resumed"], bool(np.array_equal(whole.samples["m"], again.samples["m"]))
    (60, True)
    """
    from inference.vi.svi import run_svi  # svi imports this module

    check_run(path, manifest, Target(model, args, kwargs, seed=config.seed), force)
    file = state_path(path)
    saved = read(file) if file.exists() else None
    if saved is not None and (not isinstance(saved, dict) or saved.get("format") != FORMAT
                              or saved.get("kind") not in KINDS):
        raise CheckpointError(f"{os.fspath(file)!r} is not an SVI state of this version "
                              f"(format {FORMAT}).")
    post = run_svi(model, args, kwargs, config, Checkpoints(config, saved))
    post.attrs["resumed"] = 0 if saved is None else int(saved["step"])
    return post
