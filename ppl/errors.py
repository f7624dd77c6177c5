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
    "InputDataError",
    "MathError",
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
    """Base class of every error raised by ``ppl`` and ``inference`` on bad input.

    Examples
    --------
    >>> import ppl
    >>> try:
    ...     ppl.ProgramPrior("arith", inputs="x")
    ... except ppl.PPLError as err:          # catches every error of the library
    ...     print(type(err).__name__)
    PriorError
    """


class GrammarError(PPLError):
    """A grammar that cannot define a prior: undefined, unproductive or inconsistent rules.

    Examples
    --------
    >>> import ppl
    >>> ppl.Grammar.load("nope")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ppl.errors.GrammarError: No bundled grammar named 'nope'. Bundled: arith, ...
    """


class GrammarSyntaxError(GrammarError):
    """The grammar text is not valid Lark syntax; the message shows the line and a caret."""


class WeightError(GrammarError):
    """Production weights that are negative, not finite, all zero, or name no alternative."""


class GrammarWarning(UserWarning):
    """A grammar that works but is probably not what was meant (e.g. an unreachable rule)."""


class ProgramError(PPLError):
    """A program that does not fit its grammar, or was called with the wrong inputs.

    Examples
    --------
    >>> import ppl
    >>> f = ppl.Grammar.load("arith").parse("(x + 1.0)")
    >>> f(1.0, 2.0)
    Traceback (most recent call last):
        ...
    ppl.errors.ProgramError: The program takes inputs ['x']; got 2 positional arguments.
    """


class ProgramSyntaxError(ProgramError):
    """Program text that the grammar does not derive; the message shows a caret."""


class AmbiguousProgramError(ProgramError):
    """Program text with more than one derivation in an ambiguous grammar."""


class PriorError(PPLError):
    """A program prior that cannot be built: limits below the minimum derivation depth, etc.

    Examples
    --------
    >>> import ppl
    >>> ppl.ProgramPrior("arith", inputs="x")
    Traceback (most recent call last):
        ...
    ppl.errors.PriorError: inputs must be a list of input names (e.g. ['x']); got 'x'.
    """


class SupportError(PriorError):
    """A request that needs a finite program space (``enumerate``) on an infinite one.

    Examples
    --------
    >>> import ppl
    >>> prior = ppl.ProgramPrior("arith", inputs=["x"], max_depth=2)   # real constants
    >>> try:
    ...     prior.support_size()
    ... except ppl.SupportError as err:
    ...     print(str(err).split(":")[0])
    The program space of arith.lark is infinite
    """


class DataError(PPLError):
    """Observed data that is NaN, infinite, empty or mis-shaped; names the site.

    Examples
    --------
    >>> import numpy as np, ppl
    >>> from ppl import dist
    >>> from inference import infer
    >>> def model(x, y=None):
    ...     s = ppl.sample("s", dist.HalfNormal(1.0))
    ...     with ppl.plate("data", len(x)):
    ...         ppl.sample("y", dist.Normal(x, s), obs=y)
    >>> infer(model, np.zeros(3), y=np.array([0.0, np.nan, 1.0]))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ppl.errors.DataError: ...'y' has 1 NaN or infinite value(s); drop or impute them ...
    """


class InputDataError(DataError, ValueError):
    """Arrays given to an estimator (``X``, ``y``) that are not numeric, finite and of
    matching shapes; names the column and row. Also a ``ValueError``, as scikit-learn
    expects of an estimator's input checks.

    Examples
    --------
    >>> import numpy as np
    >>> from inference.estimator import SymbolicRegressor
    >>> X = np.array([[0.0, 1.0], [1.0, np.inf]])
    >>> SymbolicRegressor().fit(X, np.zeros(2))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ppl.errors.InputDataError: SymbolicRegressor.fit: X has 1 NaN or inf value(s), the first \
at row 1, column 'x1'; ...
    """


class InitializationError(PPLError):
    """No valid initial state was found; names the sites that failed.

    Examples
    --------
    >>> import torch, ppl
    >>> from ppl import dist
    >>> from inference import infer
    >>> def model(y):                       # no s in (0, 1) explains y = 2
    ...     s = ppl.sample("s", dist.Uniform(0.0, 1.0))
    ...     ppl.sample("y", dist.Uniform(0.0, s), obs=y)
    >>> try:
    ...     infer(model, torch.tensor(2.0), num_samples=5, num_chains=1, progress=False)
    ... except ppl.InitializationError as err:
    ...     print(str(err).split(" (")[0])
    No valid initial state in 100 tries
    """


class ModelError(PPLError):
    """A model that fails when run (traced or replayed); names the model and the error.

    Examples
    --------
    >>> import ppl
    >>> def model():
    ...     raise ValueError("bad input")
    >>> try:
    ...     ppl.World(model)
    ... except ppl.ModelError as err:
    ...     print(type(err).__name__)
    ModelError
    """


class SiteError(PPLError):
    """A site name the model does not have (or not of the kind asked for); lists the valid
    ones."""


class MathError(PPLError, TypeError):
    """A :mod:`ppl.math` function given what the active backend cannot compute on: an array
    of the other backend's library (a torch tensor under NumPyro, a jax array under Pyro) or
    something that is not a number; names the function and the backend.

    Examples
    --------
    >>> import torch, ppl
    >>> from ppl import math as pm
    >>> with ppl.backend.use("numpyro"):
    ...     pm.exp(torch.zeros(2))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ppl.errors.MathError: ppl.math.exp got a torch.Tensor, but the active backend is 'numpyro'...
    """
