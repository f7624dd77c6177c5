"""Ready-made models: the standard model of a data set y ≈ f(x).

:func:`regression` is the model the benchmarks run and the one a user with a table of
inputs and one output should start from: a program f from a grammar prior, an unknown noise
scale, and a Normal likelihood whose scale has a **floor**:

    f ~ prior,   sigma ~ HalfNormal(scale),   y_i ~ Normal(f(x_i), sigma + floor · scale)

The floor is what noiseless data needs (docs/decisions.md, "A noise floor for noiseless
data"). Without it, an exact fit drives sigma to 0, the likelihood of the true law grows
without bound, and trees that compute the same function differ by their float64 round-off
(about 1e-16 of the outputs per operation), which such a likelihood magnifies into
differences of many nats: equivalent trees fight over round-off and the posterior's shape
is an artefact of evaluation order. With the floor s0 = ``floor`` · ``scale`` (1e-6 of the
outputs' spread by default), two trees whose outputs differ by round-off have log
likelihoods equal to within n·(1e-13 / 1e-6)² ≈ 1e-14 nats, so their posterior ratio is
their prior ratio; a law that misses the data by more than s0 is still told apart (the
data are exact to far better than 1e-6 of their spread only when they are synthetic). Set
``floor`` to the measurement's resolution when it is known.

Examples
--------
>>> import numpy as np, ppl
>>> prior = ppl.ProgramPrior("arith", inputs=["x"], max_depth=3)
>>> model = regression(prior, scale=1.0)
>>> x = np.linspace(-1, 1, 8)
>>> world = ppl.World(model, x, y=x * x)
>>> world.latent, world.observed, sorted(world.parents("y"))
(['f', 'sigma'], ['y'], ['f', 'sigma'])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ppl.backend import dist
from ppl.errors import ModelError
from ppl.primitives import plate, sample
from ppl.prior import ProgramPrior

__all__ = ["NOISE_FLOOR", "Regression", "regression"]

NOISE_FLOOR = 1e-6
"""The default noise floor of :func:`regression`, relative to the outputs' scale."""


def regression(prior: ProgramPrior, scale: float = 1.0, floor: float = NOISE_FLOOR,
               observed: str = "y", sigma: float | None = None) -> Callable[..., None]:
    """The model y_i ~ Normal(f(x_i), sigma + floor · scale), f ~ ``prior``, sigma ~
    HalfNormal(``scale``) (module docstring); called as ``model(*columns, y=...)``, one
    array per input of the prior, in its order. With ``sigma`` given, the noise scale is
    known: y_i ~ Normal(f(x_i), sigma), no sigma site and no floor. The model is a
    picklable object (:class:`Regression`), so its chains can run in worker processes.

    Parameters
    ----------
    prior : ProgramPrior
        The program's prior (site ``"f"``).
    scale : float
        The outputs' scale, e.g. ``np.std(y)``: sigma's prior scale and the floor's unit.
    floor : float
        The noise floor relative to ``scale`` (>= 0; 0: none).
    observed : str
        The keyword (and site name) of the observations.
    sigma : float, optional
        A known noise scale (> 0); None: learned, as above.

    Examples
    --------
    >>> import numpy as np, ppl
    >>> from inference import infer
    >>> prior = ppl.ProgramPrior("arith", inputs=["x"], max_depth=3)
    >>> x = np.linspace(-1, 1, 10)
    >>> post = infer(regression(prior, scale=float(np.std(x * x))), x, y=x * x,
    ...              num_samples=50, num_chains=1, progress=False)
    >>> post.attrs["plan"]
    'Gibbs: ProgramMH[f] + Noise[sigma]'
    >>> regression(prior, scale=0.0)
    Traceback (most recent call last):
    ...
    ppl.errors.ModelError: regression: scale must be a positive finite number (the outputs' \
spread, e.g. np.std(y)); got 0.0.
    """
    if not isinstance(prior, ProgramPrior):
        raise ModelError(f"regression: prior must be a ppl.ProgramPrior; got "
                         f"{type(prior).__name__}.")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not (
            math.isfinite(scale) and scale > 0):
        raise ModelError(f"regression: scale must be a positive finite number (the outputs' "
                         f"spread, e.g. np.std(y)); got {scale!r}.")
    if isinstance(floor, bool) or not isinstance(floor, (int, float)) or not (
            math.isfinite(floor) and floor >= 0):
        raise ModelError(f"regression: floor must be a finite number >= 0; got {floor!r}.")
    if sigma is not None and (isinstance(sigma, bool) or not isinstance(sigma, (int, float))
                              or not (math.isfinite(sigma) and sigma > 0)):
        raise ModelError(f"regression: sigma must be a positive finite number (a known noise "
                         f"scale) or None; got {sigma!r}.")
    return Regression(prior, float(scale), float(floor) * float(scale), observed,
                      None if sigma is None else float(sigma))


class Regression:
    """The model :func:`regression` returns: a module-level class, so that it pickles and
    a run's chains can go to worker processes (a closure would keep them in one).

    Examples
    --------
    >>> import pickle, ppl
    >>> model = regression(ppl.ProgramPrior("arith", inputs=["x"], max_depth=3), sigma=0.1)
    >>> model
    regression(arith.lark, inputs=['x'], sigma=0.1)
    >>> pickle.loads(pickle.dumps(model)).sigma
    0.1
    """

    def __init__(self, prior: ProgramPrior, scale: float, s0: float, observed: str,
                 sigma: float | None) -> None:
        self.__name__ = self.__qualname__ = "regression"  # as a function model's, in messages
        self.prior, self.scale, self.s0 = prior, scale, s0
        self.observed, self.sigma = observed, sigma

    def __repr__(self) -> str:
        noise = f"sigma={self.sigma}" if self.sigma is not None else f"scale={self.scale}"
        return (f"regression({self.prior.grammar.name}, inputs={list(self.prior.inputs)}, "
                f"{noise})")

    def __call__(self, *columns: Any, **data: Any) -> None:
        observed, prior = self.observed, self.prior
        unknown = sorted(set(data) - {observed})
        if unknown:
            raise ModelError(f"regression model: unknown keyword {unknown[0]!r}; the "
                             f"observations are passed as {observed}=.")
        if len(columns) != len(prior.inputs):
            raise ModelError(f"regression model: {len(columns)} input column(s) given, the "
                             f"prior has {len(prior.inputs)} ({', '.join(prior.inputs)}).")
        y = data.get(observed)
        if columns:
            n = len(columns[0])
        elif y is not None:
            n = len(y)
        else:
            raise ModelError(f"regression model: a prior without inputs needs {observed}= "
                             "to know the number of points.")
        f = sample("f", prior)
        if self.sigma is None:
            scale = sample("sigma", dist.HalfNormal(self.scale)) + self.s0
        else:
            scale = self.sigma
        with plate("data", n):
            sample(observed, dist.Normal(f(*columns), scale), obs=y)
