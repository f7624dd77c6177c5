"""The array side of evaluating a :class:`~ppl.program.Program` on numpy, torch or jax.

:meth:`Program.evaluate <ppl.program.Program.evaluate>` binds its call's inputs by name
(:func:`bind`) in the array module they come from (:func:`namespace`, :func:`as_array`),
makes constants and literals of a matching dtype (:func:`constants_in`, :func:`literal`),
runs its interpreter, and broadcasts a result that reads fewer inputs to the inputs' shape
(:func:`broadcast`). :class:`BoundProgram` evaluates a program with its constants bound to
an array; :func:`evaluate_draws` evaluates many posterior draws at the same numpy inputs.

Examples
--------
>>> import numpy as np, torch
>>> namespace([torch.zeros(2), np.zeros(2)]).__name__       # torch wins over numpy
'torch'
>>> broadcast(np, np.float64(2.0), {"x": np.zeros(3)})       # a constant program's value
array([2., 2., 2.])
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ppl.errors import ProgramError

if TYPE_CHECKING:
    from ppl.program import Program

__all__ = ["BoundProgram", "as_array", "bind", "bool_dtype", "broadcast", "constants_in",
           "evaluate_draws", "float_like", "literal", "namespace", "numpy_literal"]


def bind(inputs: Sequence[str], args: tuple[Any, ...], kwargs: Mapping[str, Any],
         constants: Any = None) -> tuple[dict[str, Any], Any]:
    """The inputs of a call ``program(*args, **kwargs)`` by name, as arrays, and their array
    module (:func:`namespace` of the inputs and ``constants``).

    ``args`` bind to ``inputs`` in order, ``kwargs`` by name; with ``inputs`` empty any
    name is accepted.

    Raises
    ------
    ProgramError
        On too many positional arguments, an input given twice, or an unknown name.

    Examples
    --------
    >>> env, xp = bind(("q", "c"), ([6, 8],), {"c": 2.0})
    >>> env, xp.__name__
    ({'q': array([6., 8.]), 'c': array(2.)}, 'numpy')
    """
    if len(args) > len(inputs):
        raise ProgramError(f"The program takes inputs {list(inputs)}; got "
                           f"{len(args)} positional arguments.")
    raw = dict(zip(inputs, args, strict=False))
    for name, value in kwargs.items():
        if name in raw:
            raise ProgramError(f"Input '{name}' given twice.")
        if inputs and name not in inputs:
            raise ProgramError(f"Unknown input '{name}': the program takes inputs "
                               f"{list(inputs)}.")
        raw[name] = value
    xp = namespace(list(raw.values()) + ([constants] if constants is not None else []))
    return {k: as_array(xp, v) for k, v in raw.items()}, xp


def namespace(values: list[Any]) -> Any:
    """The array module of ``values``: torch if any is a tensor, else ``jax.numpy`` if any is
    a jax array, else numpy.

    Examples
    --------
    >>> import numpy as np
    >>> namespace([np.zeros(2), 1.0]).__name__
    'numpy'
    """
    torch = sys.modules.get("torch")
    for v in values:
        if torch is not None and isinstance(v, torch.Tensor):
            return torch
    for v in values:
        if type(v).__module__.startswith("jax"):
            import jax.numpy as jnp

            return jnp
    return np


def bool_dtype(xp: Any) -> Any:
    """The boolean dtype of the array module ``xp``.

    Examples
    --------
    >>> import numpy as np, torch
    >>> bool_dtype(np), bool_dtype(torch)
    (dtype('bool'), torch.bool)
    """
    return np.dtype(bool) if xp is np else xp.bool_ if hasattr(xp, "bool_") else xp.bool


def as_array(xp: Any, value: Any) -> Any:
    """``value`` as an array of ``xp``: integers (and numpy's other floats) become float64
    (float32 under jax); floats and booleans of torch and jax keep their dtype.

    Examples
    --------
    >>> import numpy as np, torch
    >>> as_array(np, [1, 2]), as_array(torch, [1, 2])
    (array([1., 2.]), tensor([1., 2.], dtype=torch.float64))
    """
    if xp is np:
        a = np.asarray(value)
        if a.dtype.kind in "iuO" or (a.dtype.kind == "f" and a.dtype != np.float64):
            a = a.astype(np.float64)
        return a
    if xp.__name__ == "torch":
        t = xp.as_tensor(value)
        if not (t.is_floating_point() or t.dtype == xp.bool):
            t = t.to(xp.float64)
        return t
    a = xp.asarray(value)
    return a if a.dtype.kind in "fb" else a.astype(xp.float32)


def float_like(xp: Any, env: Mapping[str, Any]) -> Any:
    """The float dtype for constants and literals: that of the first floating input of
    ``env`` under torch or jax, else float64 (None under jax without a floating input).

    Examples
    --------
    >>> import torch
    >>> float_like(torch, {"x": torch.zeros(2, dtype=torch.float32)})
    torch.float32
    """
    for v in env.values():
        if xp is not np and xp.__name__ == "torch" and v.is_floating_point():
            return v.dtype
        if xp is not np and xp.__name__ != "torch" and v.dtype.kind == "f":
            return v.dtype
    return xp.float64 if xp is np or xp.__name__ == "torch" else None


def constants_in(xp: Any, values: Any, env: Mapping[str, Any]) -> Any:
    """The constants ``values`` (preorder) as scalars of ``xp``, or a flat view of ``values``
    when it already is a tensor or jax array (so gradients reach it).

    Examples
    --------
    >>> import numpy as np
    >>> [float(c) for c in constants_in(np, [1, 2.5], {})]
    [1.0, 2.5]
    """
    if xp is np:
        return [np.float64(v) for v in values]
    if xp.__name__ == "torch":
        if isinstance(values, xp.Tensor):
            return values.reshape(-1)
        return [xp.tensor(float(v), dtype=float_like(xp, env)) for v in values]
    return [xp.asarray(v, dtype=float_like(xp, env)) for v in np.asarray(values).reshape(-1)] \
        if not type(values).__module__.startswith("jax") else values.reshape(-1)


def numpy_literal(value: Any) -> Any:
    """A grammar literal (``pi``, ``true``, ...) as a numpy scalar.

    Examples
    --------
    >>> numpy_literal(True), numpy_literal(2)
    (np.True_, np.float64(2.0))
    """
    return np.bool_(value) if isinstance(value, bool) else np.float64(value)


def literal(xp: Any, value: Any, env: Mapping[str, Any]) -> Any:
    """A grammar literal as a scalar of ``xp``, floats in the dtype of :func:`float_like`.

    Examples
    --------
    >>> import torch
    >>> literal(torch, 0.5, {"x": torch.zeros(1, dtype=torch.float32)})
    tensor(0.5000)
    """
    if isinstance(value, bool):
        return np.bool_(value) if xp is np else xp.asarray(value)
    if xp is np:
        return np.float64(value)
    if xp.__name__ == "torch":
        return xp.tensor(value, dtype=float_like(xp, env))
    return xp.asarray(value, dtype=float_like(xp, env))


def broadcast(xp: Any, result: Any, env: Mapping[str, Any]) -> Any:
    """``result`` broadcast to the common shape of the inputs in ``env`` (a program that
    reads no input, or fewer, still returns one value per data point).

    Examples
    --------
    >>> import numpy as np
    >>> broadcast(np, np.zeros(3), {"x": np.ones((2, 1)), "y": np.ones(3)}).shape
    (2, 3)
    """
    if not env:
        return result
    shape = np.broadcast_shapes(*[tuple(v.shape) for v in env.values()])
    if tuple(result.shape) == shape:
        return result
    if xp is np:
        return np.array(np.broadcast_to(result, shape))
    if xp.__name__ == "torch":
        return result.expand(shape)
    return xp.broadcast_to(result, shape)


def evaluate_draws(programs: Sequence[Program] | np.ndarray, columns: Sequence[np.ndarray],
                   rows: int) -> np.ndarray:
    """f_k(x_j) of every program ``programs[k]`` (a sequence or an object array of posterior
    draws) at every row j of the numpy inputs ``columns`` (in the programs' input order), as
    float64 of shape (len(programs), rows): a program that reads no input is repeated over
    the rows; invalid arithmetic yields nan/inf, silently.

    Examples
    --------
    >>> import numpy as np
    >>> from ppl import Grammar
    >>> g = Grammar.load("arith")
    >>> programs = [g.parse(t, inputs=["x"]) for t in ("(x + 1)", "2", "log(x)")]
    >>> evaluate_draws(programs, [np.array([1.0, 0.0])], rows=2)
    array([[  2.,   1.],
           [  2.,   2.],
           [  0., -inf]])
    """
    values = np.empty((len(programs), rows))
    with np.errstate(all="ignore"):
        for k, program in enumerate(programs):
            values[k] = np.broadcast_to(np.asarray(program(*columns), dtype=np.float64),
                                        (rows,))
    return values


class BoundProgram:
    """A program whose constants are bound to an array (e.g. a torch tensor with gradient).

    Calling it evaluates ``program`` with those constants, so gradients of anything computed
    from its output flow back to ``constants``. A :class:`~ppl.prior.ProgramPrior` scores it
    as its ``program`` (the stored constants).

    Examples
    --------
    >>> import torch
    >>> from ppl import Grammar
    >>> f = Grammar.load("arith").parse("(x * 2.0)")
    >>> c = torch.tensor([3.0], dtype=torch.float64, requires_grad=True)
    >>> BoundProgram(f, c)(torch.ones(2, dtype=torch.float64)).sum().backward()
    >>> c.grad
    tensor([2.], dtype=torch.float64)
    """

    __slots__ = ("constants", "program")

    def __init__(self, program: Program, constants: Any) -> None:
        self.program = program
        self.constants = constants

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.program.evaluate(*args, constants=self.constants, **kwargs)

    def __repr__(self) -> str:
        return f"BoundProgram({self.program!r})"
