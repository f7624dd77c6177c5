"""Layers point one way (CONVENTIONS 1): grammars <- ppl <- inference <- examples.

Every module under ``ppl/`` is read with :mod:`ast` (never imported) and may not import
``inference`` (nor ``examples`` or ``benchmarks``); modules under ``inference/`` may not
import ``examples`` or ``benchmarks``. Imports inside functions and ``importlib`` calls with
a literal name count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

LAYERS = {
    "ppl": {"inference", "examples", "benchmarks"},
    "inference": {"examples", "benchmarks"},
}


def imported_modules(source: str) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in ``source``, including dynamic ones."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args \
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) \
                else ""
            if name in ("import_module", "__import__"):
                found.append((node.lineno, node.args[0].value))
    return found


def violations(package: str) -> list[str]:
    forbidden = LAYERS[package]
    out = []
    for path in sorted((REPO / package).rglob("*.py")):
        for line, module in imported_modules(path.read_text()):
            if module.split(".")[0] in forbidden:
                out.append(f"{path.relative_to(REPO)}:{line} imports {module}")
    return out


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_layers_point_one_way(package: str) -> None:
    assert list((REPO / package).rglob("*.py")), f"no modules found under {package}/"
    assert violations(package) == []


@pytest.mark.parametrize(
    "source",
    ["import inference\n", "import inference.mcmc as m\n", "from inference import infer\n",
     "from inference.api import query\n", "def f():\n    import inference\n",
     "import importlib\nimportlib.import_module('inference.api')\n",
     "__import__('inference')\n"],
    ids=["import", "import-submodule", "from-import", "from-submodule", "inside-function",
         "import-module", "dunder-import"])
def test_detector_catches_every_import_form(source: str) -> None:
    """The broken twin of the layer test: each way of importing inference is seen."""
    assert any(m.split(".")[0] == "inference" for _, m in imported_modules(source))


def test_detector_ignores_relative_and_unrelated_imports() -> None:
    source = "from . import grammar\nfrom .ops import OPS\nimport numpy\nimport inferencex\n"
    assert all(m.split(".")[0] != "inference" for _, m in imported_modules(source))
