"""A scikit-learn estimator for symbolic regression: :class:`SymbolicRegressor`.

``fit(X, y)`` runs :func:`inference.infer` on the model of :func:`ppl.regression` (a
program f from a grammar prior, y_i ~ Normal(f(x_i), sigma + floor · scale)) and keeps the
whole :class:`~inference.Posterior`; ``predict(X)`` is the posterior predictive mean of
f(X) over the posterior's draws (programs and constants); ``equations_`` is the table of
distinct laws, PySR-style, and :meth:`~SymbolicRegressor.sympy`,
:meth:`~SymbolicRegressor.latex`, :meth:`~SymbolicRegressor.torch` and
:meth:`~SymbolicRegressor.jax` export one of them. Parameters are only stored by the
constructor (the scikit-learn convention), so ``get_params``, ``set_params``, ``clone``,
pipelines and grid searches work.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.uniform(-2, 2, size=(20, 2))
>>> model = SymbolicRegressor(max_depth=4, max_time=None, num_samples=100, num_chains=1)
>>> model.fit(X, X[:, 0] ** 2 + X[:, 1]).equations_.loc[0, "sympy"]
x0**2 + x1
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import sympy
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from inference.api import RunWarning, infer
from inference.config import ESTIMATOR_CHAINS, RunConfig
from ppl.errors import InputDataError, PPLError, PriorError
from ppl.evaluate import evaluate_draws
from ppl.models import NOISE_FLOOR, regression
from ppl.prior import ProgramPrior
from ppl.program import Program

__all__ = ["SymbolicRegressor"]

NAMED_OPTIONS = ("method", "num_samples", "num_warmup", "num_chains", "seed", "max_time",
                 "chain_method", "progress")
"""Run options that are the estimator's own parameters (not allowed in ``run_options``)."""


class SymbolicRegressor(RegressorMixin, BaseEstimator):  # type: ignore[misc]
    """Bayesian symbolic regression with the scikit-learn interface.

    ``fit`` draws from the posterior p(f, sigma | X, y) of the model y_i ~ Normal(f(x_i),
    s) with f ~ ``ProgramPrior(grammar, inputs=feature names, max_depth, max_size)`` and
    s = sigma + ``floor`` · std(y), sigma ~ HalfNormal(std(y)) (:func:`ppl.regression`;
    ``noise="auto"``), or s = ``noise`` when the noise scale is known. Fitted attributes:
    ``posterior_`` (the :class:`~inference.Posterior`), ``equations_`` (one row per
    distinct function, most probable first), ``n_features_in_`` and, after a pandas
    DataFrame, ``feature_names_in_`` (the columns become the programs' input names;
    otherwise ``x0``, ``x1``, ...).

    Parameters
    ----------
    grammar : str or Grammar
        The grammar of the prior: a bundled name ("arith": + − × ÷ sin cos exp log and
        constants), a ``.lark`` path or a :class:`ppl.Grammar`.
    max_depth, max_size : int or None
        The prior's limits (it is conditioned on them exactly).
    max_time : float or None
        Seconds per chain (10): half searches (tempered walkers with restarts), the rest is
        the exact chain from the best state found. The number of draws then depends on the
        machine, so a timed fit is not bitwise reproducible; with ``max_time=None`` it is
        (``num_samples`` draws after ``num_warmup`` sweeps, no search).
    num_chains, num_samples, num_warmup : int, int, int or None
        Chains (2), draws kept per chain at most (1000), adaptive sweeps before them
        (default: :func:`inference.infer`'s).
    noise : "auto" or float
        "auto": the noise scale is learned, with the noise floor ``floor`` · std(y) added;
        a positive float: the known noise sd (no floor).
    floor : float
        The noise floor relative to std(y) (``ppl.models.NOISE_FLOOR``, 1e-6).
    seed : int
        Master seed of the run.
    method : str
        The :func:`inference.infer` method ("mcmc").
    chain_method : {"sequential", "parallel"}
        Chains one after another (default), or in processes ("parallel"; in a script, fit
        under ``if __name__ == "__main__":``).
    predict_draws : int
        At most this many posterior draws, evenly thinned, make ``predict`` (1000).
    run_options : dict or None
        Further :func:`inference.infer` options, e.g. ``{"num_rungs": 4}``.

    Notes
    -----
    scikit-learn's ``check_estimator`` passes in full with a small budget (the test
    ``tests/inference/test_estimator.py`` runs it); its input checks expect a
    ``ValueError``, which :class:`ppl.errors.InputDataError` is. The tag ``poor_score`` is
    not set. Two inputs get scikit-learn's own ``TypeError`` rather than a PPLError, as its
    checks require: sparse X, and X holding objects that are neither numbers nor text.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.linspace(0, 2, 20)
    >>> model = SymbolicRegressor(max_depth=3, max_time=None, num_samples=30, num_chains=1)
    >>> table = model.fit(x[:, None], 2 * x + 1).equations_
    >>> list(table.columns)
    ['program', 'probability', 'complexity', 'loss', 'sympy', 'law']
    >>> table.loc[0, "sympy"].evalf(3), int(table.loc[0, "complexity"])
    (2.0*x0 + 1.0, 5)
    >>> model.predict(np.array([[3.0]])).round(3)
    array([7.])
    """

    def __init__(self, grammar: Any = "arith", max_depth: int | None = 5,
                 max_size: int | None = None, max_time: float | None = 10.0,
                 num_chains: int = ESTIMATOR_CHAINS,
                 num_samples: int = RunConfig.num_samples, num_warmup: int | None = None,
                 noise: str | float = "auto", floor: float = NOISE_FLOOR, seed: int = 0,
                 method: str = "mcmc", chain_method: str = "sequential",
                 predict_draws: int = 1000, run_options: Mapping[str, Any] | None = None
                 ) -> None:
        self.grammar = grammar
        self.max_depth = max_depth
        self.max_size = max_size
        self.max_time = max_time
        self.num_chains = num_chains
        self.num_samples = num_samples
        self.num_warmup = num_warmup
        self.noise = noise
        self.floor = floor
        self.seed = seed
        self.method = method
        self.chain_method = chain_method
        self.predict_draws = predict_draws
        self.run_options = run_options

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Any) -> SymbolicRegressor:
        """Draw from the posterior of the law given ``X`` (n_samples, n_features) and
        ``y`` (n_samples,); sets ``posterior_``, ``equations_``, ``n_features_in_``
        (and ``feature_names_in_`` for a DataFrame). Returns ``self``.

        Raises
        ------
        InputDataError
            X not 2-d, not numeric or not finite, y not 1-d, not finite or of another
            length (the message names the column and row).
        PPLError
            Invalid parameters (``noise``, ``predict_draws``, ``run_options``, the prior's
            limits, column names the grammar cannot write).

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> data = pd.DataFrame({"t": np.linspace(0, 3, 20)})
        >>> model = SymbolicRegressor(max_depth=3, max_time=None, num_samples=30,
        ...                           num_chains=1)
        >>> model.fit(data, 2 * np.exp(-data["t"]))
        SymbolicRegressor(max_depth=3, max_time=None, num_chains=1, num_samples=30)
        >>> model.feature_names_in_, model.n_features_in_, model.posterior_.num_draws
        (array(['t'], dtype=object), 1, 30)
        >>> model.sympy().evalf(3)
        2.0*exp(-t)
        """
        Xa, ya = self._validate(X, y, reset=True)
        names = [str(n) for n in getattr(self, "feature_names_in_", [])] or \
            [f"x{j}" for j in range(Xa.shape[1])]
        noise = self._noise()
        if not (isinstance(self.predict_draws, int) and self.predict_draws >= 1):
            raise PPLError(f"predict_draws must be a positive int; got {self.predict_draws!r}.")
        options = dict(self.run_options or {})
        clash = sorted(set(options) & set(NAMED_OPTIONS))
        if clash:
            raise PPLError(f"run_options: {clash[0]!r} is a parameter of SymbolicRegressor; "
                           f"set it there (SymbolicRegressor({clash[0]}=...)).")
        try:
            prior = ProgramPrior(self.grammar, inputs=names, max_depth=self.max_depth,
                                 max_size=self.max_size)
        except PriorError as err:
            hint = (" Rename the DataFrame's columns, e.g. X.rename(columns=str.lower)."
                    if hasattr(self, "feature_names_in_") else "")
            raise PriorError(f"SymbolicRegressor.fit: {err}{hint}") from None
        scale = float(np.std(ya)) or 1.0  # constant y: any positive unit will do
        columns = [np.array(c, dtype=np.float64) for c in Xa.T]  # writable copies
        ya = np.array(ya, dtype=np.float64)
        with warnings.catch_warnings():  # the time budget ends the run: expected
            warnings.filterwarnings("ignore", "max_time cut the run short", RunWarning)
            self.posterior_ = infer(
                regression(prior, scale, float(self.floor), sigma=noise), *columns, y=ya,
                method=self.method, num_samples=self.num_samples,
                num_warmup=self.num_warmup, num_chains=self.num_chains, seed=self.seed,
                max_time=self.max_time, chain_method=self.chain_method, progress=False,
                **options)
        laws = self.posterior_.samples["f"].reshape(-1)
        if noise is None:
            sd = self.posterior_.samples["sigma"].reshape(-1) + float(self.floor) * scale
        else:
            sd = np.full(len(laws), noise)
        picks = np.unique(np.linspace(0, len(laws) - 1, min(len(laws), self.predict_draws))
                          .round().astype(int))
        self._laws, self._sd = laws, np.asarray(sd, dtype=np.float64)
        self._picks = picks
        self.equations_ = equations(self.posterior_, columns, ya)
        return self

    def _noise(self) -> float | None:
        if isinstance(self.noise, str) and self.noise == "auto":
            return None
        ok = isinstance(self.noise, (int, float)) and not isinstance(self.noise, bool)
        if not ok or not (math.isfinite(float(self.noise)) and float(self.noise) > 0):
            raise PPLError(f"noise must be 'auto' (learned) or a positive finite noise sd; "
                           f"got {self.noise!r}.")
        return float(self.noise)

    def _validate(self, X: Any, y: Any = None, reset: bool = False) -> Any:
        """Checked float64 arrays: ``X`` (and ``y`` when ``reset``, i.e. in fit)."""
        where = f"{type(self).__name__}.{'fit' if reset else 'predict'}"
        precheck(X, where)
        if reset and y is not None:
            try:
                values = np.asarray(y)
            except ValueError:  # ragged: scikit-learn's check says so
                values = np.zeros(0)
            bad_y = (~np.isfinite(values.reshape(-1)) if values.dtype.kind in "fc"
                     else np.zeros(1, dtype=bool))
            if bad_y.any():
                raise InputDataError(f"{where}: y has {int(bad_y.sum())} NaN or inf value(s), "
                                     f"the first at row {int(np.argmax(bad_y))}; drop those "
                                     "rows.")
        try:
            if reset:
                Xa, ya = validate_data(self, X, y, reset=True, dtype=np.float64,
                                       ensure_all_finite=False, y_numeric=True)
            else:
                Xa = validate_data(self, X, reset=False, dtype=np.float64,
                                   ensure_all_finite=False)
        except ValueError as err:
            if isinstance(err, PPLError):
                raise
            raise InputDataError(f"{where}: {err}") from None
        names = list(getattr(self, "feature_names_in_", [])) or \
            [f"x{j}" for j in range(Xa.shape[1])]
        bad = ~np.isfinite(Xa)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise InputDataError(f"{where}: X has {int(bad.sum())} NaN or inf value(s), the "
                                 f"first at row {i}, column {names[j]!r}; drop or impute them "
                                 "(e.g. X[np.isfinite(X).all(axis=1)]).")
        return (Xa, ya) if reset else Xa

    # ------------------------------------------------------------------ prediction
    def _columns(self, X: Any) -> list[np.ndarray]:
        """``X`` checked, as one contiguous array per input (a program's arguments)."""
        return [np.ascontiguousarray(c) for c in self._validate(X).T]

    def _values(self, X: Any, picks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """f(X) at the posterior draws ``picks``, shape (len(picks), n), and their noise sd."""
        check_is_fitted(self)
        columns = self._columns(X)
        return evaluate_draws(self._laws[picks], columns, len(columns[0])), self._sd[picks]

    def predict(self, X: Any, return_std: bool = False, index: int | None = None) -> Any:
        """The posterior predictive mean E[f(x) | data] at each row of ``X``, averaged over
        (at most ``predict_draws``) posterior draws of the program and its constants.

        Draws whose program is invalid at a row (x/x at 0, log of a negative) are left out
        of that row's mean (NaN when every draw is). With ``return_std=True`` also the
        predictive sd of a new observation y: sqrt(Var[f(x)] + E[s²]), the spread of the
        draws of f plus the noise (s = sigma + floor · std(y), or the known ``noise``).
        With ``index=k``: f_k(X) of the law in row ``k`` of ``equations_`` instead (its
        constants at their posterior medians), the same values as :meth:`sympy`,
        :meth:`torch` and :meth:`jax` give.

        Examples
        --------
        >>> import numpy as np
        >>> x = np.linspace(0, 2, 20)
        >>> model = SymbolicRegressor(max_depth=3, max_time=None, num_samples=30,
        ...                           num_chains=1).fit(x[:, None], 2 * x + 1)
        >>> mean, sd = model.predict(np.array([[0.0], [1.0]]), return_std=True)
        >>> mean.round(3), bool(np.all(sd < 0.01))
        (array([1., 3.]), True)
        >>> model.predict(np.array([[0.5]]), index=0)
        array([2.])
        """
        check_is_fitted(self)
        if index is not None:
            if return_std:
                raise PPLError("predict: return_std=True describes the posterior "
                               "predictive (index=None), not one law.")
            return np.asarray(self._law(index)(*self._columns(X)), dtype=float)
        values, sd = self._values(X, self._picks)
        ok = np.isfinite(values)
        count = ok.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(ok, values, 0.0).sum(axis=0) / count
            if not return_std:
                return mean
            var_f = np.where(ok, (values - mean) ** 2, 0.0).sum(axis=0) / count
            noise = (ok * sd[:, None] ** 2).sum(axis=0) / count
        return mean, np.sqrt(var_f + noise)

    def sample_posterior(self, X: Any, n: int = 100, seed: int = 0) -> np.ndarray:
        """``n`` draws of f(X) from the posterior (programs and constants; no noise),
        shape (n, len(X)): draws picked uniformly at random by ``seed`` (without replacement
        when the posterior has at least ``n``). Invalid values are NaN or inf.

        Examples
        --------
        >>> import numpy as np
        >>> x = np.linspace(0, 2, 20)
        >>> model = SymbolicRegressor(max_depth=3, max_time=None, num_samples=30,
        ...                           num_chains=1).fit(x[:, None], 2 * x + 1)
        >>> draws = model.sample_posterior(np.array([[0.0], [1.0], [2.0]]), n=5)
        >>> draws.shape, draws.mean(axis=0).round(2)
        ((5, 3), array([1., 3., 5.]))
        """
        check_is_fitted(self)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise PPLError(f"sample_posterior: n must be a positive int; got {n!r}.")
        total = len(self._laws)
        picks = np.random.default_rng(seed).choice(total, size=int(n), replace=n > total)
        return self._values(X, picks)[0]

    # ------------------------------------------------------------------ exports
    def _law(self, index: int | None) -> Program:
        check_is_fitted(self)
        k = 0 if index is None else index
        rows = len(self.equations_)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not -rows <= k < rows:
            raise PPLError(f"index must be an int row of equations_ (0 to {rows - 1}); got "
                           f"{index!r}.")
        law: Program = self.equations_["law"].iloc[int(k)]
        return law

    def sympy(self, index: int | None = None) -> Any:
        """The law of row ``index`` of ``equations_`` (default 0, the most probable) as a
        sympy expression in the feature names (real symbols).

        Examples
        --------
        >>> import numpy as np
        >>> x = np.linspace(0, 2, 20)
        >>> model = SymbolicRegressor(max_depth=3, max_time=None, num_samples=30,
        ...                           num_chains=1).fit(x[:, None], 2 * x + 1)
        >>> model.sympy()
        2*x0 + 1.0
        """
        return self._law(index).to_sympy()

    def latex(self, index: int | None = None, precision: int | None = 4) -> str:
        """The law of row ``index`` as LaTeX, constants rounded to ``precision``
        significant digits (None: all of them).

        Examples
        --------
        >>> import numpy as np
        >>> x = np.linspace(0, 2, 20)
        >>> model = SymbolicRegressor(max_depth=3, max_time=None, num_samples=30,
        ...                           num_chains=1).fit(x[:, None], np.exp(x) / 3)
        >>> model.latex()
        '0.3333 e^{x_{0}}'
        """
        expr = self.sympy(index)
        if precision is not None:
            expr = expr.xreplace({f: sympy.Float(f, precision) for f in expr.atoms(sympy.Float)})
        return str(sympy.latex(expr))

    def torch(self, index: int | None = None) -> Callable[[Any], Any]:
        """The law of row ``index`` as a function of a torch tensor X of shape (n,
        n_features), returning f(X) of shape (n,) (differentiable in X).

        Examples
        --------
        >>> import numpy as np, torch
        >>> x = np.linspace(0, 2, 20)
        >>> model = SymbolicRegressor(max_depth=3, max_time=None, num_samples=30,
        ...                           num_chains=1).fit(x[:, None], 2 * x + 1)
        >>> model.torch()(torch.tensor([[0.0], [1.0]], dtype=torch.float64))
        tensor([1., 3.], dtype=torch.float64)
        """
        return self._function(index)

    def jax(self, index: int | None = None) -> Callable[[Any], Any]:
        """The law of row ``index`` as a function of a jax array X of shape (n,
        n_features), returning f(X) of shape (n,) (``jax.jit`` and ``jax.grad`` apply).

        Examples
        --------
        >>> import numpy as np, jax.numpy as jnp
        >>> x = np.linspace(0, 2, 20)
        >>> model = SymbolicRegressor(max_depth=3, max_time=None, num_samples=30,
        ...                           num_chains=1).fit(x[:, None], 2 * x + 1)
        >>> np.asarray(model.jax()(jnp.array([[0.0], [1.0]]))).round(3)
        array([1., 3.], dtype=float32)
        """
        return self._function(index)

    def _function(self, index: int | None) -> Callable[[Any], Any]:
        law = self._law(index)
        width = self.n_features_in_

        def f(X: Any) -> Any:
            if len(X.shape) != 2 or X.shape[1] != width:
                raise InputDataError(f"The law takes X of shape (n, {width}); got "
                                     f"{tuple(X.shape)}.")
            return law(*[X[:, j] for j in range(width)])

        f.__doc__ = f"f(X) = {law}, X of shape (n, {width})."
        return f


def precheck(X: Any, where: str) -> None:
    """Name the column (and row) of a non-numeric X before scikit-learn's generic checks.

    Examples
    --------
    >>> import pandas as pd
    >>> precheck(pd.DataFrame({"a": [1.0, 2.0], "b": ["u", "v"]}), "fit")
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ppl.errors.InputDataError: fit: column 'b' of X has dtype ...; every column must be \
numeric (encode categories as numbers first).
    """
    if isinstance(X, pd.DataFrame):
        for name in X.columns:
            kind = X[name].dtype
            if not pd.api.types.is_numeric_dtype(kind) or pd.api.types.is_complex_dtype(kind):
                raise InputDataError(f"{where}: column {name!r} of X has dtype {kind}; every "
                                     "column must be numeric (encode categories as numbers "
                                     "first).")
        return
    if hasattr(X, "tocsr") or not isinstance(X, (np.ndarray, list, tuple)):
        return
    try:
        arr = np.asarray(X)
    except ValueError as err:
        raise InputDataError(f"{where}: X is not a rectangular array ({err}).") from None
    if arr.ndim != 2 or arr.dtype.kind not in "OUS":
        return
    for j in range(arr.shape[1]):  # text that is not a number (other objects: TypeError)
        for i, value in enumerate(arr[:, j]):
            try:
                float(value)
            except ValueError:
                raise InputDataError(f"{where}: X[{i}, {j}] = {value!r} (row {i}, column x{j}) "
                                     "is not a number.") from None


def equations(post: Any, columns: list[np.ndarray], y: np.ndarray) -> pd.DataFrame:
    """The table ``equations_``: one row per distinct function of ``post.programs("f")``,
    most probable first. Columns: ``program`` (text), ``probability``, ``complexity``
    (number of nodes), ``loss`` (the mean squared error on the training data of the row's
    law, its constants at their posterior medians; inf when invalid there), ``sympy`` (a
    sympy expression) and ``law`` (the :class:`~ppl.Program`, called as
    ``law(*columns)``).

    Examples
    --------
    >>> import numpy as np, ppl
    >>> from inference import infer
    >>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
    >>> x = np.linspace(-1, 1, 8)
    >>> post = infer(ppl.regression(prior), x, y=x + 1, num_samples=30, num_chains=1,
    ...              progress=False)
    >>> equations(post, [x], x + 1)[["program", "complexity", "loss"]]
       program  complexity  loss
    0  (x + 1)           3   0.0
    """
    table = post.programs("f", top=None, simplify=False)
    rows = []
    for law, probability in zip(table["program"], table["probability"], strict=True):
        pred = np.asarray(law(*columns), dtype=float)
        loss = float(np.mean((pred - y) ** 2)) if np.all(np.isfinite(pred)) else math.inf
        rows.append({"program": str(law), "probability": float(probability),
                     "complexity": law.size, "loss": loss, "sympy": law.to_sympy(),
                     "law": law})
    return pd.DataFrame(rows)
