"""Before/after measurements: one function of a benchmark module run against an earlier
source tree in a subprocess, alternating with this tree.

A benchmark with ``--before DIR`` calls its measuring function in a subprocess whose
``sys.path`` starts with ``DIR`` (so ``ppl`` and ``inference`` come from that tree; spawned
chain processes inherit the path), alternating with this tree ``--repeats`` times so both
are timed under the same load (:mod:`benchmarks.sweep_profile`,
:mod:`benchmarks.parallel_chains`).

Examples
--------
>>> [label for label, _ in alternating("../before", 2)]
['before', 'this tree', 'before', 'this tree']
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["ROOT", "alternating", "call_in_tree"]

ROOT = Path(__file__).resolve().parent.parent
"""This source tree."""

_CALL = ("import importlib.util, json, sys; sys.path.insert(0, sys.argv[1]); "
         "spec = importlib.util.spec_from_file_location('measured', sys.argv[2]); "
         "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod); "
         "call = json.loads(sys.argv[3]); "
         "print(json.dumps(getattr(mod, call['fn'])(**call['kwargs'])))")


def alternating(before: str | None, repeats: int) -> list[tuple[str, str | None]]:
    """(label, tree) in the order to measure: ``before`` (when given) then this tree (None),
    ``repeats`` times."""
    pair = ([("before", before)] if before else []) + [("this tree", None)]
    return pair * repeats


def call_in_tree(tree: str | None, module_file: str, fn: str,
                 kwargs: dict[str, Any]) -> dict[str, Any]:
    """``fn(**kwargs)`` of the module at ``module_file`` in a subprocess with ``tree`` (None:
    this tree) first on sys.path; its JSON result."""
    root = str(Path(tree).resolve()) if tree else str(ROOT)
    out = subprocess.run([sys.executable, "-c", _CALL, root, str(Path(module_file).resolve()),
                          json.dumps({"fn": fn, "kwargs": kwargs})],
                         capture_output=True, text=True, check=True, cwd=root,
                         env=dict(os.environ, PYTHONPATH=root))
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))
