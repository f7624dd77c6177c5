"""Every script in ``examples/`` runs with ``--quick`` and writes its figure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def test_examples_exist() -> None:
    assert EXAMPLES, "examples/ holds no scripts"


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_quick(script: Path, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(script), "--quick", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{script.name} failed:\n{done.stdout}\n{done.stderr}"
    figures = list(tmp_path.glob("*.png"))
    assert figures, f"{script.name} wrote no .png into --out"
    assert all(f.stat().st_size > 1000 for f in figures)
