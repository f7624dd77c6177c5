"""Every public name has a runnable example (CONVENTIONS 5, redesign item 6).

Every name in ``ppl.__all__`` and ``inference.__all__``, and every public method, property,
static or class method that :data:`CLASSES` define themselves (``vars(cls)``, dunders and
``_names`` skipped), must have a ``>>>`` example in its docstring; ``--doctest-modules`` runs
it. A property is documented by its getter. Only an object's own docstring counts: unlike
``inspect.getdoc``, a method without one does not borrow the docstring of the method it
overrides (``ProgramPrior.sample`` would show ``TorchDistribution.sample``'s). An instance
such as ``ppl.dist`` is documented by its class's docstring, where its example lives.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Iterable
from typing import Any

import inference
import ppl

PACKAGES = (ppl, inference)
CLASSES = (inference.Posterior, inference.SymbolicRegressor, ppl.Grammar, ppl.Program,
           ppl.ProgramPrior, ppl.World)



def docstring(obj: Any) -> str:
    """The docstring that documents ``obj`` (its own, cleaned; "" when it has none)."""
    if isinstance(obj, property):
        obj = obj.fget
    elif isinstance(obj, staticmethod | classmethod):
        obj = obj.__func__
    doc = getattr(obj, "__doc__", None)
    return inspect.cleandoc(doc) if isinstance(doc, str) else ""


def has_example(obj: Any) -> bool:
    return ">>>" in docstring(obj)


def public_members(cls: type) -> dict[str, Any]:
    """The public methods and properties ``cls`` defines itself (not inherited ones)."""
    return {name: obj for name, obj in vars(cls).items() if not name.startswith("_")
            and (callable(obj) or isinstance(obj, property | staticmethod | classmethod))}


def missing_examples(packages: Iterable[types.ModuleType], classes: Iterable[type]
                     ) -> list[str]:
    """``package.name`` of each exported name, ``Class.member`` of each public member, that
    has no ``>>>`` example."""
    missing = [f"{package.__name__}.{name}" for package in packages
               for name in package.__all__ if not has_example(getattr(package, name))]
    missing += [f"{cls.__name__}.{name}" for cls in classes
                for name, obj in public_members(cls).items() if not has_example(obj)]
    return missing


def test_every_public_name_has_an_example() -> None:
    missing = missing_examples(PACKAGES, CLASSES)
    assert not missing, (f"{len(missing)} public name(s) without a '>>>' example in their "
                         "docstring (CONVENTIONS 5):\n" + "\n".join(missing))


def test_the_checker_flags_names_without_an_example() -> None:
    """The broken twin: a fake package and class, each kind of member with and without an
    example; exactly the ones without are reported."""

    def documented() -> None:
        """Do nothing.

        Examples
        --------
        >>> documented()
        """

    def bare() -> None:
        """Do nothing (no example)."""

    def undocumented() -> None:
        pass

    class Thing:
        """A thing.

        >>> Thing().method()
        """

        def method(self) -> None:
            """Do nothing.

            >>> Thing().method()
            """

        def plain(self) -> None:
            """Do nothing (no example)."""

        @property
        def size(self) -> int:
            """Always 1 (no example)."""
            return 1

        @classmethod
        def make(cls) -> Thing:
            """A new thing (no example)."""
            return cls()

        @staticmethod
        def helper() -> None:
            """Do nothing.

            >>> Thing.helper()
            """

        def _private(self) -> None:
            """Private: never checked."""

    class Child(Thing):
        def method(self) -> None:  # overrides a method with an example, has none itself
            pass

    fake = types.ModuleType("fake")
    fake.__dict__.update(documented=documented, bare=bare, undocumented=undocumented,
                         Thing=Thing)
    fake.__all__ = ["Thing", "bare", "documented", "undocumented"]
    assert missing_examples([fake], [Thing, Child]) == [
        "fake.bare", "fake.undocumented", "Thing.plain", "Thing.size", "Thing.make",
        "Child.method"]
