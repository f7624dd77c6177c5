"""Writing one harness's sections of the shared docs/benchmarks.md."""

from __future__ import annotations

from pathlib import Path

__all__ = ["replace_sections"]


def replace_sections(path: Path, section: str, headings: tuple[str, ...]) -> None:
    """Replace the block of ``path`` that starts at the first of ``headings`` and runs to
    the next level-2 heading not in ``headings`` (or the end) with ``section``; append it
    when none is there. The rest of the file is kept as it is."""
    text = path.read_text() if path.exists() else ""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() in headings), None)
    if start is None:
        body = text.rstrip("\n") + ("\n\n" if text.strip() else "")
        path.write_text(body + section.rstrip("\n") + "\n")
        return
    end = next((i for i in range(start + 1, len(lines))
                if lines[i].startswith("## ") and lines[i].rstrip() not in headings),
               len(lines))
    tail = "".join(lines[end:])
    head = "".join(lines[:start])
    path.write_text(head + section.rstrip("\n") + "\n" + ("\n" + tail if tail else ""))
