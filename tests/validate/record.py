"""Where full-size runs write their figures, and how ``docs/validation.md`` quotes them.

Each run writes ``out/validate/<part>.json`` (the folder from ``$VALIDATE_OUT``): its
figures with the date, the commit, the command and the wall time. ``python -m
tests.validate.record`` renders every such file into the results section of
``docs/validation.md`` (between the ``<!-- results -->`` markers), so the document quotes
what the last ``make validate`` measured.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "validation.md"
BEGIN, END = "<!-- results -->", "<!-- /results -->"


def out_dir() -> Path:
    """``$VALIDATE_OUT`` or ``out/validate`` under the repository."""
    return Path(os.environ.get("VALIDATE_OUT", REPO / "out" / "validate"))


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                              capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write(part: str, figures: dict[str, Any], seconds: float, passed: bool) -> Path:
    """Write ``figures`` of ``part`` with the date, commit, command and wall time."""
    path = out_dir() / f"{part}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"part": part, "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "commit": commit(), "command": "make validate (" + " ".join(sys.argv) + ")",
              "seconds": round(seconds, 1), "passed": passed, "figures": figures}
    path.write_text(json.dumps(record, indent=1, default=float))
    return path


def render(records: list[dict[str, Any]]) -> str:
    """Markdown of the records: one subsection each, its figures as a table."""
    lines = []
    for r in sorted(records, key=lambda r: r["part"]):
        lines += [f"### {r['part']}", "",
                  f"{'passed' if r['passed'] else '**FAILED**'}; {r['date']}, commit "
                  f"`{r['commit']}`, {r['seconds']:.0f} s; `{r['command']}`", "",
                  "| figure | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in r["figures"].items()]
        lines.append("")
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return ", ".join(_fmt(x) for x in v)
    return str(v)


def main() -> None:
    records = [json.loads(p.read_text()) for p in sorted(out_dir().glob("*.json"))]
    text = DOC.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    body = render(records) if records else "No full-size run recorded yet.\n"
    DOC.write_text(f"{head}{BEGIN}\n\n{body}\n{END}{tail}")
    print(f"{len(records)} result file(s) rendered into {DOC}")


if __name__ == "__main__":
    main()
