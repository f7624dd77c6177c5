"""Sphinx configuration: MyST Markdown pages, numpydoc docstrings, autodoc API pages.

Build with ``make docs`` (``sphinx-build -W --keep-going -b html docs docs/_build/html``);
warnings are errors.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ppl  # noqa: E402  (after the path is set)
from ppl.ops import KIND_CONSTANT, KIND_FUNCTION, KIND_INPUT, OPS  # noqa: E402

project = "ppl"
author = "the ppl developers"
copyright = "the ppl developers"
version = release = ppl.__version__

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
root_doc = "index"

myst_enable_extensions = ["dollarmath", "substitution"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "none"  # numpydoc's Parameters sections carry the types
numpydoc_show_class_members = False  # members are listed by autodoc's :members:
numpydoc_class_members_toctree = False
numpydoc_validation_checks: set[str] = set()

html_theme = "alabaster"
html_title = f"ppl {release}"


def _ops_table() -> str:
    """The operator table of ppl.ops.OPS as Markdown, built from the code at build time."""
    kinds = {KIND_FUNCTION: "function", KIND_INPUT: "input leaf", KIND_CONSTANT: "constant leaf"}
    rows = ["| alias | kind | arity | commutative | boolean | value |",
            "|---|---|---:|:---:|:---:|---|"]
    for name, op in OPS.items():
        kind = kinds.get(op.kind, "literal leaf")
        value = "" if op.value is None else f"`{op.value!r}`"
        rows.append(f"| `{name}` | {kind} | {op.arity} | {'yes' if op.commutative else ''} | "
                    f"{'yes' if op.boolean else ''} | {value} |")
    return "\n".join(rows)


myst_substitutions = {"ops_table": _ops_table()}
