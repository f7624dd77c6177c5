"""Tests of ppl/math.py: every function against numpy on both backends (values, shapes,
axis/keepdims, dtypes), gradients through torch's autograd and ``jax.grad``, and bad inputs
(an array of the other library, non-numbers) refused with a MathError naming the function
and the backend. The models that use it under NUTS are in tests/inference/test_nuts_math.py.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from scipy import special

import ppl
from ppl import math as pm
from ppl.errors import MathError, PPLError

BACKENDS = ["pyro", "numpyro"]
RNG = np.random.default_rng(0)
X = RNG.uniform(0.2, 2.0, size=(2, 3, 4))
SPD = (lambda a: a @ np.swapaxes(a, -1, -2) + 3 * np.eye(3))(RNG.normal(size=(2, 3, 3)))


@contextlib.contextmanager
def on(backend: str) -> Iterator[None]:
    with ppl.backend.use(backend), jax.enable_x64(backend == "numpyro"):
        yield


def numpy_of(value: Any, backend: str) -> np.ndarray:
    """The array as numpy, after checking it is the backend's float64 (or bool) array."""
    if backend == "pyro":
        assert isinstance(value, torch.Tensor)
        assert value.dtype in (torch.float64, torch.bool)
        return value.detach().numpy()
    assert isinstance(value, jax.Array)
    assert value.dtype in (jnp.float64, jnp.bool_)
    return np.asarray(value)


UNARY: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "exp": np.exp, "log": np.log, "log1p": np.log1p, "expm1": np.expm1, "sqrt": np.sqrt,
    "square": np.square, "abs": np.abs, "sin": np.sin, "cos": np.cos, "tanh": np.tanh,
    "sigmoid": special.expit, "softplus": lambda x: np.logaddexp(0.0, x),
    "erf": special.erf, "lgamma": special.gammaln}

REDUCTIONS: dict[str, Callable[..., np.ndarray]] = {
    "sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min, "prod": np.prod,
    "logsumexp": special.logsumexp}
AXES = [None, 0, 1, -1, (0, 2), (0, 1, 2)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(UNARY))
def test_elementwise_matches_numpy(backend: str, name: str) -> None:
    signed = X - 1.0 if name in ("abs", "sin", "tanh", "sigmoid", "softplus") else X
    with on(backend):
        out = numpy_of(getattr(pm, name)(signed), backend)
        scalar = numpy_of(getattr(pm, name)(0.5), backend)  # a Python float
    np.testing.assert_allclose(out, UNARY[name](signed), rtol=1e-12)
    assert out.shape == X.shape and scalar.shape == ()
    np.testing.assert_allclose(scalar, UNARY[name](np.float64(0.5)), rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("keepdims", [False, True], ids=["drop", "keep"])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reductions_match_numpy(backend: str, name: str, axis: Any, keepdims: bool
                                ) -> None:
    with on(backend):
        out = numpy_of(getattr(pm, name)(X, axis=axis, keepdims=keepdims), backend)
    expected = REDUCTIONS[name](X, axis=axis, keepdims=keepdims)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_logsumexp_is_stable() -> None:
    big = np.array([1000.0, 1000.0, -np.inf])
    for backend in BACKENDS:
        with on(backend):
            out = numpy_of(pm.logsumexp(big), backend)
        np.testing.assert_allclose(out, 1000.0 + np.log(2.0), rtol=1e-12)


CASES: dict[str, tuple[Callable[[], Any], Callable[[], np.ndarray]]] = {
    # name: (the ppl.math call, the numpy answer)
    "cholesky": (lambda: pm.cholesky(SPD), lambda: np.linalg.cholesky(SPD)),
    "solve-lower-vector": (lambda: pm.triangular_solve(np.linalg.cholesky(SPD[0]), X[0, :, 0]),
                           lambda: np.linalg.solve(np.linalg.cholesky(SPD[0]), X[0, :, 0])),
    "solve-upper-batched": (
        lambda: pm.triangular_solve(np.swapaxes(np.linalg.cholesky(SPD), -1, -2), X[:, :, :2],
                                    lower=False),
        lambda: np.linalg.solve(np.swapaxes(np.linalg.cholesky(SPD), -1, -2), X[:, :, :2])),
    "stack": (lambda: pm.stack([X[0], X[1]], axis=1), lambda: np.stack([X[0], X[1]], 1)),
    "concatenate": (lambda: pm.concatenate((X, X), axis=-1),
                    lambda: np.concatenate((X, X), -1)),
    "where": (lambda: pm.where(X > 1.0, X, 0.0), lambda: np.where(X > 1.0, X, 0.0)),
    "eye": (lambda: pm.eye(3), lambda: np.eye(3)),
    "zeros": (lambda: pm.zeros((2, 3)), lambda: np.zeros((2, 3))),
    "ones": (lambda: pm.ones(4), lambda: np.ones(4)),
    "matmul": (lambda: pm.matmul(SPD, X[:, :, :2]), lambda: SPD @ X[:, :, :2]),
    "transpose": (lambda: pm.transpose(X), lambda: np.transpose(X)),
    "transpose-axes": (lambda: pm.transpose(X, (1, 0, 2)), lambda: np.transpose(X, (1, 0, 2))),
    "diagonal": (lambda: pm.diagonal(SPD, axis1=1, axis2=2),
                 lambda: np.diagonal(SPD, axis1=1, axis2=2)),
    "diagonal-offset": (lambda: pm.diagonal(SPD[0], offset=1),
                        lambda: np.diagonal(SPD[0], offset=1)),
    "expand_dims": (lambda: pm.expand_dims(X, 1), lambda: np.expand_dims(X, 1)),
    "asarray-int": (lambda: pm.asarray(np.arange(3)), lambda: np.arange(3.0)),
    "asarray-list": (lambda: pm.asarray([[1, 2.5]]), lambda: np.array([[1.0, 2.5]])),
    "constants": (lambda: pm.asarray([pm.pi, -pm.inf]), lambda: np.array([np.pi, -np.inf])),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_array_functions_match_numpy(backend: str, case: str) -> None:
    call, expected = CASES[case]
    with on(backend):
        out = numpy_of(call(), backend)
    assert out.shape == expected().shape
    np.testing.assert_allclose(out, expected(), rtol=1e-10)


def loss(x: Any) -> Any:
    """A scalar touching every differentiable function."""
    k = pm.matmul(x, pm.transpose(x)) + 3.0 * pm.eye(3)
    chol = pm.cholesky(k)
    z = pm.triangular_solve(chol, pm.diagonal(k))
    parts = pm.stack([pm.exp(-x), pm.log1p(x), pm.sqrt(x), pm.sigmoid(x), pm.softplus(x),
                      pm.tanh(x), pm.erf(x), pm.lgamma(x + 1.0), pm.square(pm.sin(x)),
                      pm.abs(pm.cos(x)), pm.expm1(x) / 10.0, pm.log(x)])
    return pm.sum(z) + pm.mean(pm.logsumexp(parts, axis=0)) + pm.sum(pm.max(x, axis=1)) \
        + pm.sum(pm.min(x, axis=0)) + pm.prod(pm.concatenate([x[0], x[1]]) / 2.0) \
        + pm.sum(pm.where(x > 1.0, x, 2.0 * x)) + pm.sum(pm.expand_dims(x, 0))


def test_gradients_flow_and_agree_on_both_backends() -> None:
    x = X[0, :3, :3]
    tx = torch.tensor(x, requires_grad=True)
    loss(tx).backward()
    assert tx.grad is not None
    with on("numpyro"):
        value = float(loss(jnp.asarray(x)))
        grad = np.asarray(jax.grad(loss)(jnp.asarray(x)))
    np.testing.assert_allclose(value, float(loss(torch.tensor(x))), rtol=1e-12)
    np.testing.assert_allclose(tx.grad.numpy(), grad, rtol=1e-9)
    eps = 1e-6  # central differences on one entry
    step = np.zeros_like(x)
    step[1, 2] = eps
    numeric = (float(loss(torch.tensor(x + step))) - float(loss(torch.tensor(x - step)))) / (
        2 * eps)
    np.testing.assert_allclose(grad[1, 2], numeric, rtol=1e-6)


def test_a_tensor_keeps_its_dtype_and_graph() -> None:
    t = torch.ones(2, dtype=torch.float32, requires_grad=True)
    out = pm.exp(t)
    assert out.dtype == torch.float32 and out.requires_grad
    assert pm.asarray(t).dtype == torch.float64 and pm.asarray(t).requires_grad


def test_without_x64_jax_keeps_its_default_float() -> None:
    with ppl.backend.use("numpyro"), jax.enable_x64(False):
        assert pm.asarray([1.0]).dtype == jnp.float32 and pm.zeros(2).dtype == jnp.float32


@pytest.mark.parametrize(("backend", "call", "message"), [
    ("numpyro", lambda: pm.exp(torch.zeros(2)), "ppl.math.exp got a torch.Tensor, but the "
     "active backend is 'numpyro'"),
    ("numpyro", lambda: pm.stack([np.zeros(2), torch.zeros(2)]), "ppl.math.stack got a "
     "torch.Tensor"),
    ("pyro", lambda: pm.logsumexp(jnp.zeros(2)), "ppl.math.logsumexp got a jax array, but "
     "the active backend is 'pyro'"),
    ("pyro", lambda: pm.matmul(np.eye(2), jnp.eye(2)), "ppl.math.matmul got a jax array"),
    ("pyro", lambda: pm.sqrt("2.0"), "ppl.math.sqrt expects an array or a number; got str"),
    ("numpyro", lambda: pm.sum(None), "ppl.math.sum expects an array or a number"),
    ("pyro", lambda: pm.cholesky([[1.0, 2.0], [3.0]]), "ppl.math.cholesky expects an array"),
    ("pyro", lambda: pm.stack([]), "ppl.math.stack expects a non-empty list"),
    ("numpyro", lambda: pm.concatenate(np.zeros(3)), "ppl.math.concatenate expects a "
     "non-empty list"),
    ("pyro", lambda: pm.zeros((2, -1)), r"ppl.math.zeros expects a shape .* got \(2, -1\)"),
    ("numpyro", lambda: pm.eye(2.5), "ppl.math.eye expects a shape"),
    ("pyro", lambda: pm.triangular_solve(np.eye(2), np.ones(2), lower="yes"),
     "lower must be True or False"),
], ids=["torch-under-numpyro", "torch-in-list", "jax-under-pyro", "jax-second-arg", "string",
        "none", "ragged", "empty-stack", "array-not-list", "bad-shape", "float-size",
        "lower"])
def test_bad_inputs_raise_math_error(backend: str, call: Callable[[], Any],
                                     message: str) -> None:
    with on(backend), pytest.raises(MathError, match=message) as err:
        call()
    assert isinstance(err.value, PPLError)


def test_the_wrong_library_error_says_what_to_do() -> None:
    with on("numpyro"), pytest.raises(MathError) as err:
        pm.exp(torch.zeros(2))
    assert "which computes on jax arrays" in str(err.value)
    assert "numpy arrays" in str(err.value)


def test_pyro_use_does_not_import_jax() -> None:
    code = ("import sys, numpy as np\nfrom ppl import math as pm\n"
            "pm.cholesky(pm.eye(2)); pm.logsumexp(np.zeros(3), axis=0)\n"
            "print('jax' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_every_public_name_is_tested() -> None:
    tested = set(UNARY) | set(REDUCTIONS) | {"cholesky", "triangular_solve", "stack",
                                             "concatenate", "where", "eye", "zeros", "ones",
                                             "matmul", "transpose", "diagonal",
                                             "expand_dims", "asarray", "pi", "inf"}
    assert tested == set(pm.__all__)
