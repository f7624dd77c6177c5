"""The one module that talks to ArviZ (0.23, InferenceData API).

Program sites are stored as integer ids in ``posterior`` (one id per distinct tree shape:
productions and input names, constants aside), with numeric statistics beside them
(``<site>_size``, ``_depth``, ``_log_prior``, and ``_n_constants`` when any draw has
constants) and the constants as a NaN-padded ``<site>_constants`` array. The id table
(program JSON records) and the grammar texts go into the attributes, so a saved result
restores its programs exactly.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np

from ppl.errors import PPLError
from ppl.grammar import Grammar
from ppl.prior import ConstantPrior, ProgramPrior
from ppl.program import Program

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"\s*ArviZ is undergoing", category=FutureWarning)
    import arviz as az

__all__ = ["az", "decode_programs", "encode_programs", "prior_from_attrs", "prior_to_attrs"]


def encode_programs(site: str, draws: np.ndarray, prior: ProgramPrior) -> dict[str, Any]:
    """Posterior variables of a program site from a (chain, draw) object array."""
    shapes: dict[tuple[Any, ...], int] = {}
    table: list[dict[str, Any]] = []
    chains, n = draws.shape
    ids = np.zeros((chains, n), dtype=np.int64)
    size = np.zeros((chains, n), dtype=np.int64)
    depth = np.zeros((chains, n), dtype=np.int64)
    ncon = np.zeros((chains, n), dtype=np.int64)
    logp = np.zeros((chains, n))
    width = max((len(p.constants) for p in draws.flat), default=0)
    consts = np.full((chains, n, max(width, 1)), np.nan)
    for c in range(chains):
        for d in range(n):
            p: Program = draws[c, d]
            shape = (p.prods, tuple(None if isinstance(v, float) else v for v in p.values))
            if shape not in shapes:
                shapes[shape] = len(table)
                table.append(p.to_json())
            ids[c, d] = shapes[shape]
            size[c, d], depth[c, d] = p.size, p.depth
            k = len(p.constants)
            ncon[c, d] = k
            consts[c, d, :k] = p.constants
            logp[c, d] = prior.log_density(p)
    out = {site: ids, f"{site}_size": size, f"{site}_depth": depth,
           f"{site}_log_prior": logp, "__table__": table}
    if width:  # no variables that would be identically zero or NaN
        out[f"{site}_n_constants"] = ncon
        out[f"{site}_constants"] = consts
    return out


def decode_programs(ids: np.ndarray, consts: np.ndarray, table: list[dict[str, Any]],
                    grammar: Grammar) -> np.ndarray:
    """Invert :func:`encode_programs`: a (chain, draw) object array of Programs."""
    shapes = [Program.from_json(rec, grammar) for rec in table]
    out = np.empty(ids.shape, dtype=object)
    for idx in np.ndindex(ids.shape):
        p = shapes[int(ids[idx])]
        k = len(p.constants)
        out[idx] = p.with_constants(consts[idx][:k]) if k else p
    return out


def prior_to_attrs(prior: ProgramPrior) -> dict[str, Any]:
    """A JSON-able record of a ProgramPrior (grammar text included)."""
    cp = prior.constant_prior
    return {"grammar_text": prior.grammar.text, "grammar_name": prior.grammar.name,
            "weights": prior.grammar.weight_overrides, "inputs": list(prior.inputs),
            "input_probs": prior.input_probs.tolist(), "max_depth": prior.max_depth,
            "max_size": prior.max_size, "constant_prior": [cp.family, cp.a, cp.b]}


def prior_from_attrs(rec: dict[str, Any]) -> ProgramPrior:
    """Rebuild a ProgramPrior from :func:`prior_to_attrs` output."""
    grammar = Grammar(rec["grammar_text"], rec["weights"], name=rec["grammar_name"])
    inputs = dict(zip(rec["inputs"], rec["input_probs"], strict=True))
    return ProgramPrior(grammar, inputs, rec["max_depth"], rec["max_size"],
                        ConstantPrior(*rec["constant_prior"]))


def to_json_attr(value: Any) -> str:
    return json.dumps(value)


def from_json_attr(idata: Any, key: str) -> Any:
    try:
        return json.loads(idata.posterior.attrs[key])
    except KeyError:
        raise PPLError(f"This InferenceData was not written by ppl (no '{key}' attribute)."
                       ) from None
