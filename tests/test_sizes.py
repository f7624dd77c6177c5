"""Size budget (CONVENTIONS 10): no module over 600 lines.

Every ``.py`` file under the checked folders is counted; a file past the budget is named with
its line count, so the failure says which module to split along a real seam.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("ppl", "inference", "benchmarks", "examples", "tests")
MAX_LINES = 600


def oversized(root: Path, folders: tuple[str, ...] = FOLDERS,
              limit: int = MAX_LINES) -> list[str]:
    """``"path: N lines"`` of every ``.py`` file under ``root/folder`` longer than ``limit``."""
    out = []
    for folder in folders:
        for path in sorted((root / folder).rglob("*.py")):
            with path.open(encoding="utf-8") as f:
                count = sum(1 for _ in f)
            if count > limit:
                out.append(f"{path.relative_to(root)}: {count} lines")
    return out


def test_no_module_over_the_size_budget() -> None:
    for folder in FOLDERS:
        assert list((REPO / folder).rglob("*.py")), f"no modules found under {folder}/"
    found = oversized(REPO)
    assert not found, (f"{len(found)} module(s) over {MAX_LINES} lines; split each along a "
                       "real seam (CONVENTIONS 10):\n" + "\n".join(found))


def test_an_oversized_module_is_named_with_its_count(tmp_path: Path) -> None:
    """The broken twin: a file one line past the budget is reported, one at it is not."""
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "sub" / "big.py").write_text("x = 1\n" * (MAX_LINES + 1))
    (tmp_path / "pkg" / "ok.py").write_text("x = 1\n" * MAX_LINES)
    assert oversized(tmp_path, ("pkg",)) == [f"pkg/sub/big.py: {MAX_LINES + 1} lines"]
