"""The error hierarchy of ``ppl``.

Every error the library raises on bad input derives from :class:`PPLError`, so a caller can
catch one class. Messages say what was expected, what came, where, and what to do.

Examples
--------
>>> from ppl.errors import GrammarError, PPLError
>>> issubclass(GrammarError, PPLError)
True
"""

from __future__ import annotations

__all__ = [
    "AmbiguousProgramError",
    "DataError",
    "GrammarError",
    "GrammarSyntaxError",
    "GrammarWarning",
    "InitializationError",
    "ModelError",
    "PPLError",
    "PriorError",
    "ProgramError",
    "ProgramSyntaxError",
    "SiteError",
    "SupportError",
    "WeightError",
]


class PPLError(Exception):
    """Base class of every error raised by ``ppl`` and ``inference`` on bad input."""


class GrammarError(PPLError):
    """A grammar that cannot define a prior: undefined, unproductive or inconsistent rules."""


class GrammarSyntaxError(GrammarError):
    """The grammar text is not valid Lark syntax; the message shows the line and a caret."""


class WeightError(GrammarError):
    """Production weights that are negative, not finite, all zero, or name no alternative."""


class GrammarWarning(UserWarning):
    """A grammar that works but is probably not what was meant (e.g. an unreachable rule)."""


class ProgramError(PPLError):
    """A program that does not fit its grammar, or was called with the wrong inputs."""


class ProgramSyntaxError(ProgramError):
    """Program text that the grammar does not derive; the message shows a caret."""


class AmbiguousProgramError(ProgramError):
    """Program text with more than one derivation in an ambiguous grammar."""


class PriorError(PPLError):
    """A program prior that cannot be built: limits below the minimum derivation depth, etc."""


class SupportError(PriorError):
    """A request that needs a finite program space (``enumerate``) on an infinite one."""


class DataError(PPLError):
    """Observed data that is NaN, infinite, empty or mis-shaped; names the site."""


class InitializationError(PPLError):
    """No valid initial state was found; names the sites that failed."""


class ModelError(PPLError):
    """A model that fails when run (traced or replayed); names the model and the error."""


class SiteError(PPLError):
    """A site name the model does not have (or not of the kind asked for); lists the valid
    ones."""
