"""The built wheel ships the bundled grammars and ``py.typed``, and an installed copy finds
them: ``Grammar.load("arith")`` works from the unzipped wheel with the repository out of
sight (no source tree on ``sys.path``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GRAMMARS = sorted(p.name for p in (REPO / "grammars").glob("*.lark"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the wheel once per module (about 2 s; pip's own output is kept for errors)."""
    tmp = tmp_path_factory.mktemp("wheel")
    # setuptools would write build/ and ppl.egg-info/ into the source tree; send them to tmp
    extra = tmp / "setup-extra.cfg"
    extra.write_text(f"[build]\nbuild_base = {tmp / 'build'}\n[egg_info]\negg_base = {tmp}\n")
    out = tmp / "dist"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-cache-dir", "-w", str(out), str(REPO)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "DIST_EXTRA_CONFIG": str(extra)}, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    wheels = list(out.glob("ppl-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_contains_grammars_and_py_typed(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert GRAMMARS and "arith.lark" in GRAMMARS
    for grammar in GRAMMARS:
        assert f"ppl/_grammars/{grammar}" in names
    assert "ppl/py.typed" in names
    assert "inference/py.typed" in names
    assert not any(n.startswith(("tests/", "examples/", "benchmarks/")) for n in names)
    # every package of the source tree ships (a subpackage missing from pyproject.toml's
    # list would install a wheel whose `import inference` fails)
    for init in sorted((REPO / "ppl").rglob("__init__.py")) + sorted(
            (REPO / "inference").rglob("__init__.py")):
        assert init.relative_to(REPO).as_posix() in names, init


def test_installed_wheel_loads_bundled_grammars(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    script = textwrap.dedent("""
        import json, sys
        import ppl
        from ppl import Grammar, bundled_grammars
        g = Grammar.load("arith")
        print(json.dumps({"file": ppl.__file__, "bundled": bundled_grammars(),
                          "probs": g.probs.tolist(), "path": sys.path,
                          "parsed": str(g.parse("((2.5 * x) + sin(x))"))}))
    """)
    # PYTHONSAFEPATH: neither the working directory nor the script's directory on sys.path;
    # PYTHONPATH: only the unzipped wheel (site-packages still holds the dependencies).
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(PYTHONSAFEPATH="1", PYTHONPATH=str(site), PYTHONDONTWRITEBYTECODE="1")
    result = subprocess.run([sys.executable, "-c", script], cwd=site, env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(info["file"]).resolve().is_relative_to(site.resolve())
    assert str(REPO) not in info["path"] and "" not in info["path"]
    assert sorted(info["bundled"]) == sorted(Path(g).stem for g in GRAMMARS)
    assert info["parsed"] == "((2.5 * x) + sin(x))"
    assert len(info["probs"]) == 10
