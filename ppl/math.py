"""Backend-neutral math for model code: ``ppl.math.exp`` is ``torch.exp`` under Pyro and
``jax.numpy.exp`` under NumPyro, chosen by :func:`ppl.backend.active` at each call.

A model that computes with ``ppl.math`` (a kernel matrix, a Cholesky factor, a ``logsumexp``
marginal) runs unchanged with ``backend="pyro"`` and ``backend="numpyro"``.

**One signature per function, numpy's.** Reductions take ``axis=`` (an int, a tuple or
``None`` for all) and ``keepdims=``; torch's ``dim=``/``keepdim=`` are not accepted. Where
torch's names differ: ``max``/``min`` are ``torch.amax``/``amin`` (values only, no
indices), ``concatenate`` is ``torch.cat``, ``expand_dims`` is ``torch.unsqueeze`` (one
int axis), ``transpose(x, axes)`` is ``x.permute(axes)`` (all axes reversed by default, as
numpy), ``triangular_solve(a, b, lower=True)`` is ``torch.linalg.solve_triangular(a, b,
upper=not lower)`` (a vector ``b`` allowed), ``softplus`` is
``torch.nn.functional.softplus`` and ``lgamma`` is ``jax.scipy.special.gammaln``.

**Inputs.** An array of the active backend's library passes through unchanged (its dtype
and its gradient kept). numpy arrays, Python numbers and lists of numbers become the
backend's float64 array (booleans stay boolean): a torch float64 tensor under Pyro; a jax
float64 array under NumPyro when jax's 64-bit mode is on, as it is inside
``infer(..., backend="numpyro")`` (jax's default float32 otherwise). An array of the other
library, or anything that is not a number, raises :class:`~ppl.errors.MathError` naming the
function and the backend. Numerical and shape errors are the library's own, unwrapped: Pyro's
NUTS treats a failed Cholesky (``torch.linalg.LinAlgError``) as a divergence. (jax's
``cholesky`` of a matrix that is not positive definite returns NaNs instead.)

Examples
--------
>>> import numpy as np, jax, ppl
>>> from ppl import math as pm
>>> pm.logsumexp(np.log([1.0, 3.0]))
tensor(1.3863, dtype=torch.float64)
>>> with ppl.backend.use("numpyro"), jax.enable_x64(True):
...     pm.logsumexp(np.log([1.0, 3.0]))
Array(1.38629436, dtype=float64)
>>> pm.pi, pm.inf
(3.141592653589793, inf)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ppl.backend import active
from ppl.errors import MathError

__all__ = [
    "abs", "asarray", "cholesky", "concatenate", "cos", "diagonal", "erf", "exp",
    "expand_dims", "expm1", "eye", "inf", "lgamma", "log", "log1p", "logsumexp", "matmul",
    "max", "mean", "min", "ones", "pi", "prod", "sigmoid", "sin", "softplus", "sqrt",
    "square", "stack", "sum", "tanh", "transpose", "triangular_solve", "where", "zeros",
]

pi = float(np.pi)
"""π as a Python float (it broadcasts against either library's arrays)."""
inf = float(np.inf)
"""+∞ as a Python float."""

_LIBRARY = {"pyro": "torch tensors", "numpyro": "jax arrays"}
Axis = int | Sequence[int] | None


def _resolve(path: str) -> Any:
    """The object at a dotted path such as ``"jax.numpy.exp"`` (its module imported now)."""
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _jax_float() -> Any:
    """jax's float64 when its 64-bit mode is on, float32 otherwise (as jax itself)."""
    jax = importlib.import_module("jax")
    return jax.numpy.float64 if jax.config.jax_enable_x64 else jax.numpy.float32


def _library_of(x: Any) -> str | None:
    """"torch" or "jax" for an array of either library, None for anything else."""
    if isinstance(x, torch.Tensor):
        return "torch"
    return "jax" if type(x).__module__.split(".")[0] in ("jax", "jaxlib") else None


def _array(fn: str, x: Any) -> Any:
    """``x`` as an array of the active backend, for ``ppl.math.<fn>`` (module docstring)."""
    backend = active()
    library = _library_of(x)
    if library is not None:
        if (library == "torch") == (backend == "pyro"):
            return x
        kind = "a torch.Tensor" if library == "torch" else "a jax array"
        raise MathError(
            f"ppl.math.{fn} got {kind}, but the active backend is {backend!r}, which "
            f"computes on {_LIBRARY[backend]}. Pass the model's data as numpy arrays (infer "
            "converts them for either backend) or build constants with ppl.math.asarray.")
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError, RuntimeError) as err:
        raise MathError(f"ppl.math.{fn} expects an array or a number; got "
                        f"{type(x).__name__} ({err}).") from None
    if arr.dtype.kind not in "biuf":
        raise MathError(f"ppl.math.{fn} expects an array or a number; got "
                        f"{type(x).__name__} {x!r:.60}.")
    if arr.dtype.kind != "b":
        arr = arr.astype(np.float64)
    if backend == "pyro":
        return torch.as_tensor(arr)
    return importlib.import_module("jax.numpy").asarray(arr)


def _on_backend(torch_path: str, jax_path: str) -> Any:
    return _resolve(torch_path if active() == "pyro" else jax_path)


def _unary(name: str, torch_path: str, jax_path: str, what: str, example: str
           ) -> Callable[[Any], Any]:
    """The elementwise function ``name``: ``torch_path`` or ``jax_path`` by backend."""

    def fn(x: Any) -> Any:
        return _on_backend(torch_path, jax_path)(_array(name, x))

    fn.__name__ = fn.__qualname__ = name
    arg, result = example.split(" -> ")
    fn.__doc__ = (f"{what}, elementwise (``{torch_path}`` or ``{jax_path}``).\n\n"
                  "    Examples\n    --------\n    >>> from ppl import math as pm\n"
                  f"    >>> float(pm.{name}({arg}))\n    {result}\n    ")
    return fn


exp = _unary("exp", "torch.exp", "jax.numpy.exp", "e ** x", "1.0 -> 2.7183")
log = _unary("log", "torch.log", "jax.numpy.log", "The natural logarithm", "2.0 -> 0.6931")
log1p = _unary("log1p", "torch.log1p", "jax.numpy.log1p", "log(1 + x), accurate near 0",
               "1.0 -> 0.6931")
expm1 = _unary("expm1", "torch.expm1", "jax.numpy.expm1", "e ** x - 1, accurate near 0",
               "1.0 -> 1.7183")
sqrt = _unary("sqrt", "torch.sqrt", "jax.numpy.sqrt", "The square root", "2.0 -> 1.4142")
square = _unary("square", "torch.square", "jax.numpy.square", "x ** 2", "3.0 -> 9.0")
abs = _unary("abs", "torch.abs", "jax.numpy.abs", "|x|", "-2.0 -> 2.0")
sin = _unary("sin", "torch.sin", "jax.numpy.sin", "The sine", "1.0 -> 0.8415")
cos = _unary("cos", "torch.cos", "jax.numpy.cos", "The cosine", "1.0 -> 0.5403")
tanh = _unary("tanh", "torch.tanh", "jax.numpy.tanh", "The hyperbolic tangent",
              "1.0 -> 0.7616")
sigmoid = _unary("sigmoid", "torch.sigmoid", "jax.nn.sigmoid", "1 / (1 + e ** -x)",
                 "0.0 -> 0.5")
softplus = _unary("softplus", "torch.nn.functional.softplus", "jax.nn.softplus",
                  "log(1 + e ** x)", "0.0 -> 0.6931")
erf = _unary("erf", "torch.erf", "jax.scipy.special.erf", "The error function",
             "1.0 -> 0.8427")
lgamma = _unary("lgamma", "torch.lgamma", "jax.scipy.special.gammaln",
                "log |Γ(x)|", "5.0 -> 3.1781")


def _dims(x: Any, axis: Axis) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(x.ndim))
    return (axis,) if isinstance(axis, int) else tuple(axis)


def _torch_prod(x: Any, dim: tuple[int, ...], keepdim: bool) -> Any:
    out = x
    for d in dim:  # torch.prod reduces one dimension at a time
        out = torch.prod(out, dim=d, keepdim=True)
    return out if keepdim or not dim else out.squeeze(dim)


def _reduction(name: str, torch_fn: Callable[..., Any], jax_path: str, what: str,
               example: str) -> Callable[..., Any]:
    """The reduction ``name(x, axis=None, keepdims=False)``."""

    def fn(x: Any, axis: Axis = None, keepdims: bool = False) -> Any:
        x = _array(name, x)
        if active() == "pyro":
            return torch_fn(x, dim=_dims(x, axis), keepdim=keepdims)
        axes = tuple(axis) if isinstance(axis, Sequence) else axis
        return _resolve(jax_path)(x, axis=axes, keepdims=keepdims)

    fn.__name__ = fn.__qualname__ = name
    arg, result = example.split(" -> ")
    fn.__doc__ = (f"{what} over ``axis`` (an int, a tuple, or None for all), keeping the "
                  "reduced axes\n    as size 1 when ``keepdims``.\n\n"
                  "    Examples\n    --------\n    >>> from ppl import math as pm\n"
                  f"    >>> pm.{name}({arg})\n    {result}\n    ")
    return fn


sum = _reduction("sum", torch.sum, "jax.numpy.sum", "The sum",
                 "[[1.0, 2.0], [3.0, 4.0]], axis=0 -> tensor([4., 6.], dtype=torch.float64)")
mean = _reduction("mean", torch.mean, "jax.numpy.mean", "The mean",
                  "[[1.0, 2.0], [3.0, 4.0]], axis=1 -> "
                  "tensor([1.5000, 3.5000], dtype=torch.float64)")
max = _reduction("max", torch.amax, "jax.numpy.max", "The largest value",
                 "[[1.0, 5.0], [3.0, 4.0]] -> tensor(5., dtype=torch.float64)")
min = _reduction("min", torch.amin, "jax.numpy.min", "The smallest value",
                 "[[1.0, 5.0], [3.0, 4.0]], axis=1, keepdims=True -> "
                 "tensor([[1.], [3.]], dtype=torch.float64)")
prod = _reduction("prod", _torch_prod, "jax.numpy.prod", "The product",
                  "[[1.0, 2.0], [3.0, 4.0]], axis=(0, 1) -> "
                  "tensor(24., dtype=torch.float64)")
logsumexp = _reduction("logsumexp", torch.logsumexp, "jax.scipy.special.logsumexp",
                       "log Σ exp(x), computed stably,",
                       "[0.0, 0.0], axis=0 -> tensor(0.6931, dtype=torch.float64)")


def cholesky(a: Any) -> Any:
    """The lower Cholesky factor L of a symmetric positive definite ``a`` (L Lᵀ = a), over
    the last two axes.

    Examples
    --------
    >>> from ppl import math as pm
    >>> pm.cholesky([[4.0, 2.0], [2.0, 5.0]])
    tensor([[2., 0.], [1., 2.]], dtype=torch.float64)
    """
    return _on_backend("torch.linalg.cholesky", "jax.numpy.linalg.cholesky")(
        _array("cholesky", a))


def triangular_solve(a: Any, b: Any, lower: bool = True) -> Any:
    """x with ``a @ x = b`` for a triangular ``a`` (lower, or upper when ``lower=False``).

    ``b`` is a vector (one axis fewer than ``a``) or a matrix of right-hand sides.

    Examples
    --------
    >>> from ppl import math as pm
    >>> pm.triangular_solve([[2.0, 0.0], [1.0, 2.0]], [2.0, 5.0])
    tensor([1., 2.], dtype=torch.float64)
    """
    if not isinstance(lower, bool):
        raise MathError(f"ppl.math.triangular_solve: lower must be True or False; got "
                        f"{lower!r}.")
    a, b = _array("triangular_solve", a), _array("triangular_solve", b)
    vector = b.ndim == a.ndim - 1
    if vector:
        b = b[..., None]
    if active() == "pyro":
        x = torch.linalg.solve_triangular(a, b, upper=not lower)
    else:
        x = _resolve("jax.scipy.linalg.solve_triangular")(a, b, lower=lower)
    return x[..., 0] if vector else x


def _arrays(fn: str, xs: Any) -> list[Any]:
    if not isinstance(xs, (list, tuple)) or not xs:
        raise MathError(f"ppl.math.{fn} expects a non-empty list or tuple of arrays; got "
                        f"{type(xs).__name__}.")
    return [_array(fn, x) for x in xs]


def stack(xs: Sequence[Any], axis: int = 0) -> Any:
    """The arrays ``xs`` (of one shape) stacked along a new axis ``axis``.

    Examples
    --------
    >>> from ppl import math as pm
    >>> pm.stack([[1.0, 2.0], [3.0, 4.0]], axis=1)
    tensor([[1., 3.], [2., 4.]], dtype=torch.float64)
    """
    arrays = _arrays("stack", xs)
    if active() == "pyro":
        return torch.stack(arrays, dim=axis)
    return _resolve("jax.numpy.stack")(arrays, axis=axis)


def concatenate(xs: Sequence[Any], axis: int = 0) -> Any:
    """The arrays ``xs`` joined along the existing axis ``axis`` (``torch.cat``).

    Examples
    --------
    >>> from ppl import math as pm
    >>> pm.concatenate([[1.0, 2.0], [3.0]])
    tensor([1., 2., 3.], dtype=torch.float64)
    """
    arrays = _arrays("concatenate", xs)
    if active() == "pyro":
        return torch.cat(arrays, dim=axis)
    return _resolve("jax.numpy.concatenate")(arrays, axis=axis)


def where(condition: Any, x: Any, y: Any) -> Any:
    """``x`` where ``condition`` holds, ``y`` elsewhere (broadcast together).

    Examples
    --------
    >>> import numpy as np
    >>> from ppl import math as pm
    >>> pm.where(np.array([True, False]), 1.0, [5.0, 6.0])
    tensor([1., 6.], dtype=torch.float64)
    """
    c, a, b = (_array("where", v) for v in (condition, x, y))
    return _on_backend("torch.where", "jax.numpy.where")(c, a, b)


def _shape(fn: str, shape: Any) -> tuple[int, ...]:
    dims = (shape,) if isinstance(shape, int) else shape
    if not isinstance(dims, (tuple, list)) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in dims):
        raise MathError(f"ppl.math.{fn} expects a shape (an int or a tuple of ints >= 0); "
                        f"got {shape!r}.")
    return tuple(dims)


def _filled(fn: str, shape: Any) -> Any:
    dims = _shape(fn, shape)
    if active() == "pyro":
        return getattr(torch, fn)(dims, dtype=torch.float64)
    return _resolve(f"jax.numpy.{fn}")(dims, dtype=_jax_float())


def zeros(shape: int | Sequence[int]) -> Any:
    """A float64 array of zeros of ``shape``.

    Examples
    --------
    >>> from ppl import math as pm
    >>> pm.zeros((2,))
    tensor([0., 0.], dtype=torch.float64)
    """
    return _filled("zeros", shape)


def ones(shape: int | Sequence[int]) -> Any:
    """A float64 array of ones of ``shape``.

    Examples
    --------
    >>> from ppl import math as pm
    >>> pm.ones(2)
    tensor([1., 1.], dtype=torch.float64)
    """
    return _filled("ones", shape)


def eye(n: int) -> Any:
    """The n × n float64 identity matrix.

    Examples
    --------
    >>> from ppl import math as pm
    >>> pm.eye(2)
    tensor([[1., 0.], [0., 1.]], dtype=torch.float64)
    """
    (size,) = _shape("eye", (n,))
    if active() == "pyro":
        return torch.eye(size, dtype=torch.float64)
    return _resolve("jax.numpy.eye")(size, dtype=_jax_float())


def asarray(x: Any) -> Any:
    """``x`` as a float64 array of the active backend (a tensor keeps its gradient).

    Examples
    --------
    >>> import numpy as np
    >>> from ppl import math as pm
    >>> pm.asarray(np.array([1, 2]))
    tensor([1., 2.], dtype=torch.float64)
    """
    arr = _array("asarray", x)
    if active() == "pyro":
        return arr.to(torch.float64)
    return arr.astype(_jax_float())


def matmul(a: Any, b: Any) -> Any:
    """The matrix product ``a @ b`` (batched over leading axes, as numpy).

    Examples
    --------
    >>> from ppl import math as pm
    >>> pm.matmul([[1.0, 2.0], [3.0, 4.0]], [1.0, 1.0])
    tensor([3., 7.], dtype=torch.float64)
    """
    a, b = _array("matmul", a), _array("matmul", b)
    return _on_backend("torch.matmul", "jax.numpy.matmul")(a, b)


def transpose(x: Any, axes: Sequence[int] | None = None) -> Any:
    """``x`` with its axes permuted to ``axes`` (all reversed when None, as numpy).

    Examples
    --------
    >>> from ppl import math as pm
    >>> pm.transpose([[1.0, 2.0]])
    tensor([[1.], [2.]], dtype=torch.float64)
    """
    x = _array("transpose", x)
    order = tuple(reversed(range(x.ndim))) if axes is None else tuple(axes)
    if active() == "pyro":
        return x.permute(order)
    return _resolve("jax.numpy.transpose")(x, order)


def diagonal(x: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Any:
    """The diagonal of ``x`` over ``axis1`` and ``axis2`` (shifted by ``offset``), as numpy:
    the diagonal becomes the last axis.

    Examples
    --------
    >>> from ppl import math as pm
    >>> pm.diagonal([[1.0, 2.0], [3.0, 4.0]])
    tensor([1., 4.], dtype=torch.float64)
    """
    x = _array("diagonal", x)
    if active() == "pyro":
        return torch.diagonal(x, offset=offset, dim1=axis1, dim2=axis2)
    return _resolve("jax.numpy.diagonal")(x, offset=offset, axis1=axis1, axis2=axis2)


def expand_dims(x: Any, axis: int) -> Any:
    """``x`` with a new axis of size 1 at position ``axis`` (``torch.unsqueeze``).

    Examples
    --------
    >>> from ppl import math as pm
    >>> pm.expand_dims([1.0, 2.0], 1).shape
    torch.Size([2, 1])
    """
    x = _array("expand_dims", x)
    if active() == "pyro":
        return torch.unsqueeze(x, axis)
    return _resolve("jax.numpy.expand_dims")(x, axis)
