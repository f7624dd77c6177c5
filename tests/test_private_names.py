"""No private name crosses a module boundary.

Every module under ``ppl/``, ``inference/``, ``examples/`` and ``benchmarks/`` is read with
:mod:`ast` (never imported) and checked for three ways of reaching into another module:

(a) ``from M import _name`` where ``M`` is one of our modules and ``_name`` is not a
    submodule of ``M`` (relative imports are resolved first);
(b) importing a private module (a dotted path with a component ``_x``) of another top-level
    package: ``inference._arviz`` from ``examples/`` is refused, ``ppl._tracer`` from
    ``ppl/world.py`` is fine; ``import``, ``from`` and ``importlib.import_module`` alike;
(c) ``obj._x`` (``_x`` not a dunder), or ``getattr``/``setattr``/``hasattr``/``delattr`` with
    the literal ``"_x"``, where ``obj`` is not ``self``/``cls`` and ``_x`` is not defined in
    the same module: by a ``def _x``/``class _x``, an assignment ``self._x = ...``/``cls._x =
    ...``, an entry of ``__slots__``, or an assignment ``_x = ...`` at module or class level
    (annotated class fields included).

Private attributes of other libraries that we genuinely need are allowed by name and scope
in :data:`ALLOWED`, each with its reason. An entry nothing uses any more is an error too.
Offenders are reported one per line as ``path:line: name``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("ppl", "inference", "examples", "benchmarks")

ALLOWED: dict[str, tuple[str, str]] = {
    # name: (where: a file or a folder prefix, "" for anywhere; why)
    "_replace": ("", "NamedTuple's documented API (a copy with fields replaced), not private"),
    "_t": ("inference/", "Pyro HMC/NUTS's transition counter: was the step after warmup"),
    "_warmup_steps": ("inference/", "Pyro HMC/NUTS's warmup length: no public accessor"),
    "_mean_accept_prob": ("inference/", "Pyro NUTS's running mean acceptance: a step's own"),
    "_divergences": ("inference/", "Pyro NUTS's divergent steps (diagnostics() divides by 0)"),
    "_fetch_from_cache": ("inference/", "Pyro HMC's potential energy at the current point"),
    "_kinetic_energy": ("inference/", "Pyro HMC's kinetic energy under its adapted mass"),
    "_program": ("benchmarks/nguyen_methods.py",
                 "gplearn's fitted best program, as its docs read it"),
    "_programs": ("benchmarks/nguyen_methods.py",
                  "gplearn's population per generation: its early stop"),
}
"""Private attribute names of other libraries that we use on purpose, where and why. No
module in an entry's scope may define the name (:func:`test_allowed_names_are_foreign`)."""



def is_private(name: str) -> bool:
    """``_x`` and ``__x`` are private; dunders (``__init__``) and ``_`` alone are not."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__")) \
        and name != "_"


def is_self(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id in ("self", "cls")


def module_name(path: str) -> str:
    """``inference/mcmc/exact.py`` -> ``inference.mcmc.exact`` (packages lose ``__init__``)."""
    parts = path.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_submodule(module: str, name: str) -> bool:
    """Whether ``module.name`` is a module or package in this repository."""
    base = REPO.joinpath(*module.split("."), name)
    return base.with_suffix(".py").is_file() or base.is_dir()


def ours(module: str) -> bool:
    return module.split(".")[0] in PACKAGES


def resolve(node: ast.ImportFrom, path: str) -> str:
    """The absolute module of ``from ... import``, relative levels resolved against ``path``."""
    if not node.level:
        return node.module or ""
    package = module_name(path).split(".")
    if not path.endswith("__init__.py"):
        package = package[:-1]
    base = package[:len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def defined_names(tree: ast.Module) -> set[str]:
    """Private names this module defines (see the module docstring, rule (c))."""
    names: set[str] = set()

    def bind(target: ast.expr, scope_level: bool) -> None:
        if isinstance(target, ast.Tuple | ast.List):
            for t in target.elts:
                bind(t, scope_level)
        elif isinstance(target, ast.Starred):
            bind(target.value, scope_level)
        elif isinstance(target, ast.Name) and scope_level:
            names.add(target.id)
        elif isinstance(target, ast.Attribute) and is_self(target.value):
            names.add(target.attr)

    def visit(body: list[ast.stmt], scope_level: bool) -> None:
        for stmt in body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(stmt.name)
            if isinstance(stmt, ast.Assign):
                for t in stmt.targets:
                    bind(t, scope_level)
                if any(isinstance(t, ast.Name) and t.id == "__slots__" for t in stmt.targets):
                    values = stmt.value.elts if isinstance(stmt.value, ast.Tuple | ast.List) \
                        else [stmt.value]
                    names.update(v.value for v in values
                                 if isinstance(v, ast.Constant) and isinstance(v.value, str))
            elif isinstance(stmt, ast.AnnAssign | ast.AugAssign):
                bind(stmt.target, scope_level)
            if isinstance(stmt, ast.ClassDef):
                visit(stmt.body, True)  # class attributes and fields
            elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(stmt.body, False)
            else:  # if/for/while/with/try blocks keep their scope
                for field in ("body", "orelse", "finalbody"):
                    visit(getattr(stmt, field, []), scope_level)
                for handler in getattr(stmt, "handlers", []):
                    visit(handler.body, scope_level)

    visit(tree.body, True)
    return names


def private_import(module: str, path: str) -> str | None:
    """The private component of ``module`` when it belongs to another top-level package."""
    if not ours(module) or module.split(".")[0] == path.split("/")[0]:
        return None
    return next((part for part in module.split(".") if is_private(part)), None)


def offenders(source: str, path: str) -> list[tuple[int, str]]:
    """(line, name) of every private name of ``source`` (at ``path``) that crosses a module."""
    tree = ast.parse(source)
    defined = defined_names(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, p) for alias in node.names
                      if (p := private_import(alias.name, path))]
        elif isinstance(node, ast.ImportFrom):
            module = resolve(node, path)
            if (p := private_import(module, path)):
                found.append((node.lineno, p))
            for alias in node.names:
                if not ours(module) or not is_private(alias.name):
                    continue
                if not is_submodule(module, alias.name):  # (a)
                    found.append((node.lineno, alias.name))
                elif (p := private_import(f"{module}.{alias.name}", path)):  # (b)
                    found.append((node.lineno, p))
        elif isinstance(node, ast.Call):
            f, args = node.func, [a.value if isinstance(a, ast.Constant) else a
                                  for a in node.args]
            called = f.attr if isinstance(f, ast.Attribute) else f.id \
                if isinstance(f, ast.Name) else ""
            if called in ("import_module", "__import__") and args \
                    and isinstance(args[0], str) and (p := private_import(args[0], path)):
                found.append((node.lineno, p))
            elif called in ("getattr", "setattr", "hasattr", "delattr") and len(args) >= 2 \
                    and isinstance(args[1], str) and is_private(args[1]) \
                    and args[1] not in defined and not is_self(node.args[0]):
                found.append((node.lineno, args[1]))
        elif isinstance(node, ast.Attribute) and is_private(node.attr) \
                and node.attr not in defined and not is_self(node.value):
            found.append((node.lineno, node.attr))
    return sorted(set(found))


def sources() -> list[str]:
    return [str(p.relative_to(REPO)) for package in PACKAGES
            for p in sorted((REPO / package).rglob("*.py"))]


def allowed(path: str, name: str) -> bool:
    return name in ALLOWED and path.startswith(ALLOWED[name][0])


def report() -> tuple[list[str], set[str]]:
    """Offending ``path:line: name`` lines, and the allow-list entries in use."""
    out, used = [], set()
    for path in sources():
        for line, name in offenders((REPO / path).read_text(), path):
            if allowed(path, name):
                used.add(name)
                continue
            out.append(f"{path}:{line}: {name}")
    return out, used


def test_no_private_name_crosses_a_module() -> None:
    assert len(sources()) > 20, "the source walk found too few modules"
    bad, used = report()
    print("\n".join(bad))
    assert bad == [], "private names cross a module boundary:\n" + "\n".join(bad)
    stale = sorted((set(ALLOWED)) - used)
    assert stale == [], f"allow-list entries nothing uses any more, remove them: {stale}"


def test_allowed_names_are_foreign() -> None:
    """An allowed name is another library's: were it ours, the allow-list would hide it."""
    ours_too = [f"{path}: {name}" for path in sources()
                for name in sorted(defined_names(ast.parse((REPO / path).read_text())))
                if allowed(path, name)]
    assert ours_too == []


@pytest.mark.parametrize(
    ("source", "path", "name"),
    [("from ppl.world import _frame\n", "inference/x.py", "_frame"),
     ("from ..world import _frame\n", "ppl/sub/x.py", "_frame"),
     ("from inference._arviz import az\n", "examples/x.py", "_arviz"),
     ("import inference._arviz as ar\n", "benchmarks/x.py", "_arviz"),
     ("from inference import _arviz\n", "examples/x.py", "_arviz"),
     ("import importlib\nimportlib.import_module('inference._arviz')\n", "examples/x.py",
      "_arviz"),
     ("def f(prior):\n    return prior._input_logp\n", "inference/x.py", "_input_logp"),
     ("class A:\n    def f(self, other):\n        return other._cache\n", "ppl/x.py", "_cache"),
     ("def f(post):\n    return getattr(post, '_site')\n", "inference/x.py", "_site")],
    ids=["from-private-name", "relative-private-name", "from-private-module",
         "import-private-module", "private-submodule-by-name", "import-module",
         "foreign-attribute", "other-instance", "getattr-literal"])
def test_checker_reports_each_rule(source: str, path: str, name: str) -> None:
    """The broken twin: each rule, broken once, is reported."""
    assert name in [n for _, n in offenders(source, path)]


@pytest.mark.parametrize(
    ("source", "path"),
    [("from ppl import _tracer\nimport ppl._compile\n", "ppl/world.py"),
     ("from inference.arviz import az\n", "inference/compare.py"),
     ("class A:\n    __slots__ = ('_a',)\n    def f(self, o):\n        return o._a + self._b\n",
      "ppl/x.py"),
     ("class A:\n    def __init__(self):\n        self._n = 0\n    def eq(self, o):\n"
      "        return self._n == o._n and o.__class__ is A\n", "ppl/x.py"),
     ("_CACHE = {}\ndef f(m):\n    return m._CACHE\n", "inference/x.py"),
     ("from numpy import _core\nimport torch._C\n", "inference/x.py")],
    ids=["own-private-submodule", "own-package-private-module", "slots", "same-module-attr",
         "module-level", "third-party-import"])
def test_checker_allows_what_stays_inside(source: str, path: str) -> None:
    assert offenders(source, path) == []
