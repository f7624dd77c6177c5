"""SymbolicRegressor (inference/estimator.py): scikit-learn's checks, recovery of a law,
predictions, posterior draws, exports and input errors."""

from __future__ import annotations

import pickle
import re
from typing import Any

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import sympy
import torch
from sklearn.base import clone
from sklearn.utils.estimator_checks import estimator_checks_generator

from inference.estimator import SymbolicRegressor
from ppl.errors import DataError, InputDataError, PPLError, PriorError

TINY = dict(max_depth=2, max_time=None, num_samples=5, num_warmup=2, num_chains=1,
            run_options={"init_candidates": 10, "program_moves": 2})
"""A budget small enough for scikit-learn's ~50 checks, each of which fits (~8 s in all)."""

EXPECTED_FAILED_CHECKS: dict[str, str] = {}
"""Checks of scikit-learn 1.9 the estimator cannot pass, with the reason: none. (The array
API check skips itself unless SCIPY_ARRAY_API is set; the estimator does not declare array
API support.)"""

SLOW_CHECKS = {"check_regressors_train", "check_regressor_data_not_an_array",
               "check_dtype_object", "check_estimators_dtypes", "check_regressors_int"}
"""Checks that fit on 200 points or several times (~1 s each): the slow tier; the other ~45
run in CI (~7 s)."""


def check_name(check: Any) -> str:
    return str(getattr(check, "func", check).__name__)


SKLEARN_CHECKS = [
    pytest.param(est, check, id=check_name(check) + (
        "-" + "-".join(f"{k}={v}" for k, v in check.keywords.items())
        if getattr(check, "keywords", None) else ""),
        marks=[pytest.mark.slow] if check_name(check) in SLOW_CHECKS else [])
    for est, check in estimator_checks_generator(
        SymbolicRegressor(**TINY), expected_failed_checks=EXPECTED_FAILED_CHECKS,
        mark="xfail")]


@pytest.mark.parametrize("estimator, check", SKLEARN_CHECKS)
def test_sklearn_compatible(estimator: SymbolicRegressor, check: Any) -> None:
    """scikit-learn's estimator checks (``check_estimator``), one test each."""
    check(estimator)


def law_data(n: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    X = np.random.default_rng(seed).uniform(-2, 2, size=(n, 2))
    return X, X[:, 0] ** 2 + X[:, 1]


@pytest.fixture(scope="module")
def fitted() -> SymbolicRegressor:
    X, y = law_data()
    return SymbolicRegressor(max_depth=4, max_time=None, num_samples=100, num_chains=1,
                             seed=1).fit(X, y)


def test_recovers_the_law_as_the_top_equation(fitted: SymbolicRegressor) -> None:
    table = fitted.equations_
    x0, x1 = sympy.symbols("x0 x1", real=True)
    assert sympy.simplify(table.loc[0, "sympy"] - (x0**2 + x1)) == 0
    assert table.loc[0, "loss"] < 1e-20
    assert table["probability"].is_monotonic_decreasing
    assert list(table.columns) == ["program", "probability", "complexity", "loss", "sympy",
                                   "law"]
    assert table.loc[0, "complexity"] == table.loc[0, "law"].size == 5
    assert fitted.score(*law_data(seed=1)) == pytest.approx(1.0)


def test_broken_twin_shuffled_targets_are_not_the_law() -> None:
    """The recovery test can fail: with y shuffled there is no x0² + x1 to find."""
    X, y = law_data()
    model = SymbolicRegressor(max_depth=4, max_time=None, num_samples=30, num_chains=1,
                              seed=1).fit(X, np.random.default_rng(0).permutation(y))
    x0, x1 = sympy.symbols("x0 x1", real=True)
    assert sympy.simplify(model.equations_.loc[0, "sympy"] - (x0**2 + x1)) != 0


def test_predict_shapes_and_std(fitted: SymbolicRegressor) -> None:
    X, y = law_data(n=7, seed=2)
    mean = fitted.predict(X)
    assert mean.shape == (7,)
    np.testing.assert_allclose(mean, y, atol=1e-6)
    mean2, sd = fitted.predict(X, return_std=True)
    assert sd.shape == (7,) and np.all(sd >= 0)
    np.testing.assert_array_equal(mean, mean2)
    noisy = SymbolicRegressor(max_depth=3, max_time=None, num_samples=30, num_chains=1,
                              noise=0.5).fit(X, y)
    assert "sigma" not in noisy.posterior_.samples  # a known noise is not a latent
    assert np.all(noisy.predict(X, return_std=True)[1] >= 0.5)  # the noise is in the sd


def test_sample_posterior(fitted: SymbolicRegressor) -> None:
    X, _ = law_data(n=4, seed=3)
    draws = fitted.sample_posterior(X, n=12, seed=5)
    assert draws.shape == (12, 4)
    np.testing.assert_array_equal(draws, fitted.sample_posterior(X, n=12, seed=5))
    assert fitted.sample_posterior(X, n=500).shape == (500, 4)  # more than the 100 draws
    np.testing.assert_allclose(draws.mean(axis=0), fitted.predict(X), atol=1e-6)


def test_exports_agree_with_predict_at_the_chosen_law(fitted: SymbolicRegressor) -> None:
    X, _ = law_data(n=6, seed=4)
    for index in (0, len(fitted.equations_) - 1):
        want = fitted.predict(X, index=index)
        expr = fitted.sympy(index=index)
        x0, x1 = sympy.symbols("x0 x1", real=True)
        f = sympy.lambdify((x0, x1), expr, "numpy")
        np.testing.assert_allclose(np.broadcast_to(f(X[:, 0], X[:, 1]), (6,)), want,
                                   rtol=1e-12)
        got = fitted.torch(index=index)(torch.tensor(X, dtype=torch.float64))
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
        np.testing.assert_allclose(np.asarray(fitted.jax(index=index)(jnp.asarray(X))), want,
                                   rtol=1e-5)  # jax computes in float32 by default
    assert fitted.latex() == "x_{0}^{2} + x_{1}"
    with pytest.raises(InputDataError, match=re.escape("takes X of shape (n, 2)")):
        fitted.torch()(torch.zeros(3, 3))


def test_torch_export_is_differentiable(fitted: SymbolicRegressor) -> None:
    X = torch.tensor([[1.5, -1.0]], dtype=torch.float64, requires_grad=True)
    fitted.torch()(X).sum().backward()
    np.testing.assert_allclose(X.grad.numpy(), [[3.0, 1.0]])


def test_dataframe_columns_name_the_inputs() -> None:
    X, y = law_data()
    frame = pd.DataFrame(X, columns=["mass", "speed"])
    model = SymbolicRegressor(max_depth=3, max_time=None, num_samples=30, num_chains=1)
    model.fit(frame, y)
    assert list(model.feature_names_in_) == ["mass", "speed"]
    assert model.posterior_.priors["f"].inputs == ("mass", "speed")
    assert {s.name for s in model.sympy().free_symbols} <= {"mass", "speed"}
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        model.predict(X)
    with pytest.raises(InputDataError, match="feature names should match"):
        model.predict(frame.rename(columns={"speed": "velocity"}))


def test_pickles_and_clones(fitted: SymbolicRegressor) -> None:
    X, _ = law_data(n=5, seed=6)
    back = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(back.predict(X), fitted.predict(X))
    assert clone(fitted).get_params() == fitted.get_params()


ROW_NAN = np.array([[0.0, 1.0], [1.0, 2.0], [2.0, np.nan]])
BAD_INPUTS = [
    (ROW_NAN, np.zeros(3), InputDataError, "first at row 2, column 'x1'"),
    (np.ones((3, 2)), np.array([0.0, np.inf, 1.0]), InputDataError,
     re.escape("y has 1 NaN or inf value(s), the first at row 1")),
    (np.ones(3), np.zeros(3), InputDataError, "Expected 2D array"),
    (np.ones((3, 2)), np.zeros(4), InputDataError, "inconsistent numbers of samples"),
    (pd.DataFrame({"a": [1.0, 2.0], "b": ["u", "v"]}), np.zeros(2), InputDataError,
     "column 'b' of X has dtype"),
    (np.array([[1.0, "two"], [3.0, 4.0]], dtype=object), np.zeros(2), InputDataError,
     re.escape("X[0, 1] = 'two' (row 0, column x1) is not a number")),
    (pd.DataFrame({"Temp": [1.0, 2.0]}), np.zeros(2), PriorError,
     "Input name 'Temp' cannot be written.*rename"),
]


@pytest.mark.parametrize("X, y, error, message", BAD_INPUTS,
                         ids=["nan-in-X", "inf-in-y", "1d-X", "length", "text-column",
                              "text-cell", "column-name"])
def test_bad_inputs_name_the_offender(X: Any, y: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        SymbolicRegressor(**TINY).fit(X, y)


def test_input_errors_are_ppl_and_value_errors() -> None:
    assert issubclass(InputDataError, DataError) and issubclass(InputDataError, ValueError)


@pytest.mark.parametrize("params, message", [
    ({"noise": -1.0}, "noise must be 'auto'"),
    ({"noise": "learned"}, "noise must be 'auto'"),
    ({"predict_draws": 0}, "predict_draws must be a positive int"),
    ({"run_options": {"seed": 3}}, "'seed' is a parameter of SymbolicRegressor"),
], ids=["negative-noise", "noise-word", "predict-draws", "run-option-clash"])
def test_bad_parameters(params: dict[str, Any], message: str) -> None:
    X, y = law_data()
    with pytest.raises(PPLError, match=message):
        SymbolicRegressor(**{**TINY, **params}).fit(X, y)


def test_bad_calls_after_fit(fitted: SymbolicRegressor) -> None:
    X, _ = law_data(n=3)
    with pytest.raises(PPLError, match="index must be an int row of equations_"):
        fitted.sympy(index=len(fitted.equations_))
    with pytest.raises(PPLError, match="return_std=True describes the posterior"):
        fitted.predict(X, return_std=True, index=0)
    with pytest.raises(InputDataError, match="X has 3 features, but SymbolicRegressor is "
                       "expecting 2"):
        fitted.predict(np.ones((2, 3)))
    with pytest.raises(InputDataError, match="first at row 1, column 'x0'"):
        fitted.predict(np.array([[0.0, 0.0], [np.inf, 0.0]]))
    with pytest.raises(PPLError, match="n must be a positive int"):
        fitted.sample_posterior(X, n=0)


def test_a_timed_fit_ends_quietly_at_its_budget() -> None:
    """The budget ending the run is how a timed fit works: no RunWarning (warnings are
    errors here)."""
    X, y = law_data()
    model = SymbolicRegressor(max_depth=3, max_time=0.5, num_chains=1).fit(X, y)
    assert 1 <= model.posterior_.num_draws < 1000
    assert model.predict(X).shape == (20,)
