"""The code in the docs runs: ``pycon`` blocks are doctests, README's Python block executes.

Each Markdown page's ``pycon`` blocks run in order in one namespace, like a session, so a
page can build on its earlier examples. The API page must mention every public name of
``ppl`` and of ``inference``.
"""

from __future__ import annotations

import doctest
import re
from pathlib import Path
from types import ModuleType

import pytest

import inference
import ppl

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted(p for p in (ROOT / "docs").rglob("*.md") if "_build" not in p.parts)
FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def blocks(path: Path, language: str) -> list[tuple[int, str]]:
    """(line number, text) of every fenced block in ``language``."""
    text = path.read_text()
    return [(text.count("\n", 0, m.start(2)), m.group(2)) for m in FENCE.finditer(text)
            if m.group(1) == language]


PAGES_WITH_EXAMPLES = [p for p in PAGES if blocks(p, "pycon")]


@pytest.mark.parametrize("page", PAGES_WITH_EXAMPLES,
                         ids=[str(p.relative_to(ROOT)) for p in PAGES_WITH_EXAMPLES])
def test_page_examples(page: Path) -> None:
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    globs: dict[str, object] = {"__name__": "__docs__"}
    for line, text in blocks(page, "pycon"):
        test = parser.get_doctest(text, globs, f"{page.name}:{line + 1}", str(page), line)
        runner.run(test, clear_globs=False)
        globs = test.globs  # DocTest copies its globals: carry them to the next block
    result = runner.summarize(verbose=False)
    assert result.attempted > 0
    assert result.failed == 0, f"{result.failed} example(s) in {page.name} failed (see above)"


def test_readme_usage_runs(capsys: pytest.CaptureFixture[str]) -> None:
    code = blocks(ROOT / "README.md", "python")
    assert len(code) == 1, "README.md should hold exactly one Python usage block"
    exec(compile(code[0][1], "README.md", "exec"), {"__name__": "__readme__"})
    assert capsys.readouterr().out.strip()


def test_readme_starts_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    assert text.startswith("```bash\nmake demo\nmake test\n```\n")


@pytest.mark.parametrize("package", [ppl, inference], ids=["ppl", "inference"])
def test_api_page_names_every_public_name(package: ModuleType) -> None:
    api = (ROOT / "docs" / "api.md").read_text()
    missing = [name for name in package.__all__ if f"{package.__name__}.{name}" not in api]
    assert not missing, f"docs/api.md does not document {missing}"
