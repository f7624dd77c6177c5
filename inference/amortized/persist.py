"""What a trained proposal is valid for (its key), and its file format.

A proposal q(φ | x, y) is only meaningful for the program space and the model it was
trained on. Its **key** hashes these parts (:func:`key_parts`):

- ``grammar``: the hash of the grammar's text (``Grammar.fingerprint``; not its file name);
- ``weights``: the normalised production weights;
- ``limits``: ``max_depth`` and ``max_size``;
- ``inputs``: the input names, in order, and their probabilities;
- ``constant prior``: family and parameters;
- ``sites``: name, kind and observed flag of every site of the model (``ppl.trace.discover``),
  and which program site the proposal is for.

A file holds ``torch.save`` of {format, metadata (JSON text), network state, optimiser
state}, written atomically (temporary file, fsync, ``os.replace``): a crash mid-write leaves
the previous file intact. Loading compares the key parts one by one and names each that
differs (:class:`ProposalMismatchError`).

Examples
--------
>>> import ppl
>>> from ppl.trace import discover
>>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
>>> def model():
...     ppl.sample("f", prior)
>>> parts = key_parts(prior, "f", discover(model).sites)
>>> parts["limits"], len(key_of(parts))
({'max_depth': 2, 'max_size': None}, 32)
>>> other = key_parts(ppl.ProgramPrior("tiny", inputs=["x"], max_depth=3), "f",
...                   discover(model).sites)
>>> differences(parts, other)
['limits (saved {"max_depth": 2, "max_size": null}, now {"max_depth": 3, "max_size": null})']
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from inference.files import atomic_write
from ppl.errors import PPLError
from ppl.prior import ProgramPrior
from ppl.trace import Site

__all__ = ["FORMAT", "ProposalFileError", "ProposalMismatchError", "differences", "key_of",
           "key_parts", "read", "write"]

FORMAT = "ppl.amortized/1"
"""Format tag of proposal files."""


class ProposalMismatchError(PPLError):
    """A saved proposal whose key does not fit the model it is loaded for.

    Examples
    --------
    >>> issubclass(ProposalMismatchError, PPLError)
    True
    """


class ProposalFileError(PPLError):
    """A file that is not a readable proposal file.

    Examples
    --------
    >>> read("/nonexistent/q.pt")
    Traceback (most recent call last):
    ...
    inference.amortized.persist.ProposalFileError: No proposal file at '/nonexistent/q.pt';
    expected a file written by Proposal.save.
    """


def key_parts(prior: ProgramPrior, site: str, sites: Mapping[str, Site]) -> dict[str, Any]:
    """The JSON-able parts of the key of a proposal for program site ``site`` of a model
    with ``sites`` and prior ``prior`` (see the module docstring).

    Examples
    --------
    >>> import ppl
    >>> from ppl.trace import discover
    >>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
    >>> def model():
    ...     ppl.sample("f", prior)
    >>> sorted(key_parts(prior, "f", discover(model).sites))
    ['constant prior', 'grammar', 'inputs', 'limits', 'sites', 'weights']
    """
    g = prior.grammar
    return {
        "grammar": {"text_hash": g.fingerprint},
        "weights": [float(w) for w in g.probs],
        "limits": {"max_depth": prior.max_depth, "max_size": prior.max_size},
        "inputs": {"names": list(prior.inputs),
                   "probs": [float(p) for p in prior.input_probs]},
        "constant prior": [prior.constant_prior.family, prior.constant_prior.a,
                           prior.constant_prior.b],
        "sites": {"program site": site,
                  "all": [[s.name, s.kind, s.observed] for s in sites.values()]},
    }


def key_of(parts: Mapping[str, Any]) -> str:
    """The key: a 128-bit hash (hex) of the canonical JSON of ``parts``.

    Examples
    --------
    >>> key_of({"a": 1, "b": 2}) == key_of({"b": 2, "a": 1})
    True
    """
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def differences(saved: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """Each key part that differs, as ``"name (saved ..., now ...)"``.

    Examples
    --------
    >>> differences({"limits": 3, "inputs": ["x"]}, {"limits": 4, "inputs": ["x"]})
    ['limits (saved 3, now 4)']
    """
    out = []
    for name in sorted(set(saved) | set(now)):
        a, b = saved.get(name), now.get(name)
        if a != b:
            out.append(f"{name} (saved {json.dumps(a, sort_keys=True):.200}, now "
                       f"{json.dumps(b, sort_keys=True):.200})")
    return out


def write(path: str | os.PathLike[str], metadata: Mapping[str, Any],
          network: Mapping[str, Any], optimizer: Mapping[str, Any] | None) -> None:
    """Write a proposal file atomically (temporary file in the same folder, fsync,
    ``os.replace``).

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "q.pt")
    >>> write(path, {"site": "f"}, {}, None)
    >>> read(path)
    ({'site': 'f'}, {}, None)
    """
    target = Path(path)
    payload = {"format": FORMAT, "metadata": json.dumps(metadata, sort_keys=True),
               "network": dict(network), "optimizer": optimizer}
    atomic_write(target, lambda f: torch.save(payload, f))


def read(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Any],
                                              dict[str, Any] | None]:
    """(metadata, network state, optimiser state) of a proposal file.

    Raises
    ------
    ProposalFileError
        When the file is missing or not a proposal file of this format.

    Examples
    --------
    See :func:`write`.
    """
    try:
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ProposalFileError(f"No proposal file at {str(path)!r}; expected a file "
                                "written by Proposal.save.") from None
    except Exception as err:  # torch raises many kinds on a foreign file
        raise ProposalFileError(f"{str(path)!r} is not a proposal file ({err}); expected a "
                                "file written by Proposal.save.") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        got = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ProposalFileError(f"{str(path)!r} is not a proposal file of format {FORMAT!r}; "
                                f"got {got!r}. Hint: save it again with Proposal.save.")
    return json.loads(payload["metadata"]), payload["network"], payload["optimizer"]
