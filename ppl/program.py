"""Programs: immutable derivation trees of a grammar, evaluated over arrays.

A :class:`Program` stores its tree flat, in preorder: ``prods[i]`` is the production of node
``i`` and ``values[i]`` its value (an input name, a constant, or ``None``). Every algorithm on
it (evaluation, printing, hashing, pickling, JSON) is a loop over that sequence, so a tree of
depth 5000 needs no recursion. Node ``i``'s subtree spans ``prods[i:ends()[i]]``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import sympy

from ppl.errors import ProgramError
from ppl.evaluate import (
    BoundProgram,
    bind,
    bool_dtype,
    broadcast,
    constants_in,
    literal,
    numpy_literal,
)
from ppl.ops import KIND_CONSTANT, KIND_FUNCTION, KIND_INPUT, KIND_LITERAL

if TYPE_CHECKING:
    from ppl.grammar import Grammar

__all__ = ["BoundProgram", "Program"]

JSON_FORMAT = "ppl.program/1"


class Program:
    """An immutable program: a derivation tree of ``grammar``.

    Build programs with :meth:`Grammar.parse`, :meth:`ProgramPrior.sample` or
    :meth:`Program.from_json`; the constructor checks that ``prods`` is a valid preorder
    derivation from the grammar's start symbol.

    Parameters
    ----------
    grammar : Grammar
        The grammar the tree derives from.
    prods : sequence of int
        Production index of every node, in preorder.
    values : sequence
        Each node's value: input name (str) for input leaves, float for constants, else None.
    inputs : sequence of str
        Input names in positional order for calls ``program(*inputs)``.

    Examples
    --------
    >>> import numpy as np
    >>> from ppl import Grammar
    >>> f = Grammar.load("arith").parse("(x * 2.5)")
    >>> f(np.array([1.0, 2.0]))
    array([2.5, 5. ])
    >>> f.with_constants([3.0])(x=np.array([1.0]))
    array([3.])
    """

    __slots__ = ("_cache", "_grammar", "_inputs", "_prods", "_values")

    def __init__(self, grammar: Grammar, prods: Sequence[int], values: Sequence[Any],
                 inputs: Sequence[str] = ()) -> None:
        self._grammar = grammar
        self._prods = tuple(int(p) for p in prods)
        self._values = tuple(values)
        self._inputs = tuple(inputs)
        self._cache: dict[str, Any] = {}
        self._validate()

    @classmethod
    def unchecked(cls, grammar: Grammar, prods: tuple[int, ...], values: tuple[Any, ...],
                  inputs: tuple[str, ...]) -> Program:
        """``Program(grammar, prods, values, inputs)`` without its validation, for code that
        builds trees known to be valid (samplers, moves); the tuples are kept as given.

        Examples
        --------
        >>> from ppl import Grammar
        >>> f = Grammar.load("arith").parse("(x + 1.0)")
        >>> Program.unchecked(f.grammar, f.prods, f.values, f.inputs) == f
        True
        """
        self = object.__new__(cls)
        self._grammar, self._prods, self._values, self._inputs = grammar, prods, values, inputs
        self._cache = {}
        return self

    def _validate(self) -> None:
        g = self._grammar
        if len(self._values) != len(self._prods) or not self._prods:
            raise ProgramError("A program needs one value per node and at least one node; got "
                               f"{len(self._prods)} productions and {len(self._values)} values.")
        expected = [g.start]
        for i, (pi, v) in enumerate(zip(self._prods, self._values, strict=True)):
            if not expected or not 0 <= pi < len(g.productions):
                raise ProgramError(f"Node {i}: production {pi} does not continue a derivation "
                                   f"of {g.name}.")
            p = g.productions[pi]
            want = expected.pop()
            if p.lhs != want:
                raise ProgramError(f"Node {i}: production '{p.rule} -> {p.alias}' where rule "
                                   f"'{g.nonterminals[want]}' was expected.")
            kind = p.op.kind
            ok = (isinstance(v, str) if kind == KIND_INPUT else
                  isinstance(v, (float, int, np.floating)) and np.isfinite(v)
                  if kind == KIND_CONSTANT else v is None)
            if not ok:
                raise ProgramError(f"Node {i} ({p.alias}) has an invalid value {v!r}.")
            expected.extend(reversed(p.children))
        if expected:
            raise ProgramError("The production sequence ends before the derivation is complete.")
        if any(g.productions[p].op.kind == KIND_CONSTANT for p in self._prods):
            self._values = tuple(float(v) if isinstance(v, (int, float, np.floating)) else v
                                 for v in self._values)
        if len(set(self._inputs)) != len(self._inputs):
            raise ProgramError(f"Input names must be distinct; got {list(self._inputs)}.")
        if self._inputs:
            unknown = sorted(set(self.reads) - set(self._inputs))
            if unknown:
                raise ProgramError(f"The program {self} reads input(s) {unknown}, which are "
                                   f"not among its inputs {list(self._inputs)}.")

    # ------------------------------------------------------------------ structure
    @property
    def grammar(self) -> Grammar:
        """The grammar this program derives from.

        Examples
        --------
        >>> from ppl import Grammar
        >>> Grammar.load("koza").parse("(x + x)").grammar
        Grammar('koza.lark', 9 productions, ρ=0.833)
        """
        return self._grammar

    @property
    def prods(self) -> tuple[int, ...]:
        """Production index of every node, in preorder.

        Examples
        --------
        >>> from ppl import Grammar
        >>> Grammar.load("arith").parse("(x + sin(1.5))").prods    # add, var, sin, const
        (0, 8, 4, 9)
        """
        return self._prods

    @property
    def values(self) -> tuple[Any, ...]:
        """Value of every node, in preorder (input name, constant or None).

        Examples
        --------
        >>> from ppl import Grammar
        >>> Grammar.load("arith").parse("(x + sin(1.5))").values
        (None, 'x', None, 1.5)
        """
        return self._values

    @property
    def inputs(self) -> tuple[str, ...]:
        """Input names in positional order.

        Examples
        --------
        >>> from ppl import Grammar
        >>> Grammar.load("arith").parse("(y * x)").inputs     # parse sorts them
        ('x', 'y')
        """
        return self._inputs

    @property
    def reads(self) -> tuple[str, ...]:
        """The input names the tree reads, in order of first appearance (preorder).

        Examples
        --------
        >>> from ppl import Grammar
        >>> Grammar.load("arith").parse("((q / c) + q)", inputs=["q", "c"]).reads
        ('q', 'c')
        """
        reads = self._cache.get("reads")
        if reads is None:
            prods = self._grammar.productions
            seen = dict.fromkeys(v for p, v in zip(self._prods, self._values, strict=True)
                                 if prods[p].op.kind == KIND_INPUT)
            reads = self._cache["reads"] = tuple(seen)
        return reads

    def with_inputs(self, inputs: Sequence[str]) -> Program:
        """The same tree with another positional order of inputs (``program(*inputs)``);
        a ProgramError when the tree reads a name that is not in ``inputs``.

        Examples
        --------
        >>> from ppl import Grammar
        >>> p = Grammar.load("arith").parse("(q / c)")      # inputs sorted: ('c', 'q')
        >>> float(p.with_inputs(["q", "c"])(6.0, 2.0))
        3.0
        """
        return Program(self._grammar, self._prods, self._values, tuple(inputs))

    @property
    def size(self) -> int:
        """Number of nodes N(φ).

        Examples
        --------
        >>> from ppl import Grammar
        >>> Grammar.load("arith").parse("(x + sin(1.5))").size
        4
        """
        return len(self._prods)

    @property
    def depth(self) -> int:
        """Depth: 1 for a leaf, else 1 + the largest depth of the children.

        Examples
        --------
        >>> from ppl import Grammar
        >>> Grammar.load("arith").parse("(x + sin(1.5))").depth
        3
        """
        return int(self.heights()[0])

    def heights(self) -> np.ndarray:
        """Height of each node's subtree (1 for a leaf), in preorder.

        Examples
        --------
        >>> from ppl import Grammar
        >>> Grammar.load("arith").parse("(x + sin(1.5))").heights()
        array([3, 1, 2, 1])
        """
        h = self._cache.get("heights")
        if h is None:
            arity = self._grammar.arities
            out = [0] * len(self._prods)
            stack: list[int] = []
            pop = stack.pop
            for i in range(len(self._prods) - 1, -1, -1):
                k = arity[self._prods[i]]
                top = 1 if k == 0 else 1 + (pop() if k == 1 else max(pop() for _ in range(k)))
                out[i] = top
                stack.append(top)
            h = self._cache["heights"] = np.array(out, dtype=np.int64)
        return h

    def ends(self) -> np.ndarray:
        """``ends()[i]``: one past the last node of node ``i``'s subtree.

        Examples
        --------
        >>> from ppl import Grammar
        >>> Grammar.load("arith").parse("(x + sin(1.5))").ends()    # sin(1.5) is [2:4]
        array([4, 2, 4, 4])
        """
        e = self._cache.get("ends")
        if e is None:
            arity = self._grammar.arities
            out = [0] * len(self._prods)
            stack: list[int] = []
            pop = stack.pop
            for i in range(len(self._prods) - 1, -1, -1):
                end = i + 1
                for _ in range(arity[self._prods[i]]):
                    end = pop()
                out[i] = end
                stack.append(end)
            e = self._cache["ends"] = np.array(out, dtype=np.int64)
        return e

    def node_depths(self) -> np.ndarray:
        """Depth of each node from the root (the root has depth 1), in preorder.

        Examples
        --------
        >>> from ppl import Grammar
        >>> Grammar.load("arith").parse("(x + sin(1.5))").node_depths()
        array([1, 2, 2, 3])
        """
        d = self._cache.get("node_depths")
        if d is None:
            arity = self._grammar.arities
            out = [0] * len(self._prods)
            pending: list[int] = [1]
            for i, pi in enumerate(self._prods):
                di = out[i] = pending.pop()
                pending.extend([di + 1] * arity[pi])
            d = self._cache["node_depths"] = np.array(out, dtype=np.int64)
        return d

    def replace(self, i: int, prods: tuple[int, ...], values: tuple[Any, ...]) -> Program:
        """The program with node ``i``'s subtree replaced (the caller keeps types valid).

        Examples
        --------
        >>> from ppl import Grammar
        >>> f = Grammar.load("arith").parse("(x + sin(1.5))")
        >>> f.replace(2, (8,), ("x",))             # sin(1.5) -> x (production 8, var)
        Program('(x + x)')
        """
        j = int(self.ends()[i])
        return Program.unchecked(self._grammar, self._prods[:i] + prods + self._prods[j:],
                                 self._values[:i] + values + self._values[j:], self._inputs)

    # ------------------------------------------------------------------ constants
    def _constant_slots(self) -> list[int]:
        slots = self._cache.get("cslots")
        if slots is None:
            prods = self._grammar.productions
            slots = [i for i, p in enumerate(self._prods)
                     if prods[p].op.kind == KIND_CONSTANT]
            self._cache["cslots"] = slots
        return slots

    @property
    def num_constants(self) -> int:
        """The number of constants in the tree (``len(self.constants)``, without the array).

        Examples
        --------
        >>> from ppl import Grammar
        >>> Grammar.load("arith").parse("((2.0 * x) - 0.5)").num_constants
        2
        """
        return len(self._constant_slots())

    @property
    def constants(self) -> np.ndarray:
        """The constants of the tree in preorder, as a 1-d float array.

        Examples
        --------
        >>> from ppl import Grammar
        >>> Grammar.load("arith").parse("((2.0 * x) - 0.5)").constants
        array([2. , 0.5])
        """
        return np.array([self._values[i] for i in self._constant_slots()], dtype=np.float64)

    def with_constants(self, values: Sequence[float] | np.ndarray) -> Program:
        """The same tree with its constants replaced, in preorder.

        Examples
        --------
        >>> from ppl import Grammar
        >>> str(Grammar.load("arith").parse("(1.0 + x)").with_constants([2.0]))
        '(2.0 + x)'
        """
        vals = np.asarray(values, dtype=np.float64).reshape(-1)
        slots = self._constant_slots()
        if len(vals) != len(slots):
            raise ProgramError(f"with_constants expects {len(slots)} values; got {len(vals)}.")
        if not np.all(np.isfinite(vals)):
            raise ProgramError(f"Constants must be finite; got {vals.tolist()}.")
        new = list(self._values)
        for i, v in zip(slots, vals, strict=True):
            new[i] = float(v)
        out = Program.unchecked(self._grammar, self._prods, tuple(new), self._inputs)
        for k in ("heights", "ends", "node_depths", "cslots", "key", "code"):
            if k in self._cache:
                out._cache[k] = self._cache[k]
        return out

    # ------------------------------------------------------------------ evaluation
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """``program(*inputs)`` is :meth:`evaluate`: g(φ, x), vectorised over arrays."""
        return self.evaluate(*args, **kwargs)

    def _code(self) -> list[tuple[int, Any, int, Any]]:
        code = self._cache.get("code")
        if code is None:
            prods = self._grammar.productions
            code = []
            k = len(self._constant_slots())
            for i in range(len(self._prods) - 1, -1, -1):
                op = prods[self._prods[i]].op
                if op.kind == KIND_FUNCTION:
                    code.append((KIND_FUNCTION, op.fn, op.arity, None))
                elif op.kind == KIND_INPUT:
                    code.append((KIND_INPUT, op.boolean, 0, self._values[i]))
                elif op.kind == KIND_CONSTANT:
                    k -= 1
                    code.append((KIND_CONSTANT, None, 0, k))
                else:
                    code.append((KIND_LITERAL, None, 0, op.value))
            self._cache["code"] = code
        return code

    def evaluate(self, *args: Any, constants: Any = None, **kwargs: Any) -> Any:
        """Run the program on input arrays: ``g(φ, x)``, vectorised.

        Inputs bind by position (in ``self.inputs`` order) or by name. Their type picks the
        operators: numpy (default; lists and scalars become float64 arrays), torch tensors
        (gradients flow to inputs and to ``constants``) or jax arrays.

        Parameters
        ----------
        *args, **kwargs
            Input arrays.
        constants : array or tensor, optional
            Values to use for the constants (preorder) instead of the stored ones, e.g. a
            torch tensor with ``requires_grad=True``.

        Returns
        -------
        array
            The output, broadcast to the inputs' shape. Invalid arithmetic yields nan/inf.

        Examples
        --------
        >>> from ppl import Grammar
        >>> f = Grammar.load("arith").parse("(x + sin(1.5))")
        >>> f.evaluate(x=[0.0, 1.0]), f.evaluate([0.0], constants=[0.0])
        (array([0.99749499, 1.99749499]), array([0.]))
        """
        env, xp = bind(self._inputs, args, kwargs, constants)
        stored = [self._values[i] for i in self._constant_slots()]
        consts = constants_in(xp, stored if constants is None else constants, env)
        return broadcast(xp, self._run(xp, env, consts, lambda v: literal(xp, v, env)), env)

    def evaluate_numpy(self, env: Mapping[str, np.ndarray],
                       constants: np.ndarray | None = None) -> Any:
        """The hot-path evaluator: inputs already bound by name as float64 numpy arrays,
        constants (preorder) as an array, no broadcasting of the result. Same values as
        :meth:`evaluate` on the same inputs.

        Examples
        --------
        >>> import numpy as np
        >>> from ppl import Grammar
        >>> f = Grammar.load("arith").parse("(x + sin(1.5))")
        >>> f.evaluate_numpy({"x": np.array([0.0, 1.0])}, constants=np.array([0.0]))
        array([0., 1.])
        """
        consts = self.constants if constants is None else constants
        return self._run(np, env, consts, numpy_literal)

    def _run(self, xp: Any, env: Mapping[str, Any], consts: Any,
             literal: Any) -> Any:
        """The interpreter: the reverse-preorder stack machine over :meth:`_code`."""
        stack: list[Any] = []
        push = stack.append
        pop = stack.pop
        boolean = bool_dtype(xp)
        with np.errstate(all="ignore"):
            for kind, fn, arity, payload in self._code():
                if kind == KIND_FUNCTION:
                    if arity == 2:
                        a = pop()
                        push(fn(xp, a, pop()))
                    elif arity == 1:
                        push(fn(xp, pop()))
                    else:
                        push(fn(xp, *[pop() for _ in range(arity)]))
                elif kind == KIND_INPUT:
                    try:
                        value = env[payload]
                    except KeyError:
                        raise ProgramError(f"The program {self} reads input '{payload}', which "
                                           f"was not given (given: {list(env)}; the program takes "
                                           f"{list(self._inputs)}).") from None
                    push(value != 0 if fn and value.dtype != boolean else value)
                elif kind == KIND_CONSTANT:
                    push(consts[payload])
                else:
                    push(literal(payload))
        return stack[0]

    # ------------------------------------------------------------------ identity
    @property
    def key(self) -> str:
        """Canonical hash: equal for trees equal up to commutative reordering and constants.

        Examples
        --------
        >>> from ppl import Grammar
        >>> g = Grammar.load("arith")
        >>> g.parse("(x + sin(1.5))").key == g.parse("(sin(-2.0) + x)").key
        True
        """
        key = self._cache.get("key")
        if key is None:
            prods = self._grammar.productions
            stack: list[str] = []
            for i in range(len(self._prods) - 1, -1, -1):
                p = prods[self._prods[i]]
                if p.children:
                    kids = [stack.pop() for _ in p.children]
                    if p.op.commutative:
                        kids.sort()
                    stack.append(f"{p.id}({','.join(kids)})")
                elif p.op.kind == KIND_INPUT:
                    stack.append(f"{p.id}:{self._values[i]}")
                else:
                    stack.append(str(p.id))
            key = hashlib.blake2b(stack[0].encode(), digest_size=8).hexdigest()
            self._cache["key"] = key
        return key

    def __eq__(self, other: object) -> bool:
        """Trees are equal when their grammars, productions and values are equal.

        The positional order of inputs (``inputs``) is calling convention, not part of the
        tree: ``g.parse(str(p)) == p`` even when ``p`` does not read every input.
        """
        if not isinstance(other, Program):
            return NotImplemented
        return (self._prods == other._prods and self._values == other._values
                and self._grammar.fingerprint == other._grammar.fingerprint)

    def __hash__(self) -> int:
        return hash((self._prods, self._values))

    def __str__(self) -> str:
        text = self._cache.get("text")
        if text is None:
            text = self._cache["text"] = self._grammar.format(self._prods, self._values)
        return text

    def __repr__(self) -> str:
        return f"Program({str(self)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Program.unchecked, (self._grammar, self._prods, self._values, self._inputs))

    # ------------------------------------------------------------------ conversions
    def to_sympy(self) -> Any:
        """The program as a sympy expression (inputs become real symbols).

        Examples
        --------
        >>> from ppl import Grammar
        >>> Grammar.load("koza").parse("((x * x) + x)").to_sympy()
        x**2 + x
        """
        prods = self._grammar.productions
        stack: list[Any] = []
        for i in range(len(self._prods) - 1, -1, -1):
            p = prods[self._prods[i]]
            kind = p.op.kind
            if kind == KIND_FUNCTION:
                assert p.op.sympy_fn is not None
                stack.append(p.op.sympy_fn(*[stack.pop() for _ in p.children]))
            elif kind == KIND_INPUT:
                stack.append(sympy.Symbol(self._values[i], real=True))
            elif kind == KIND_CONSTANT:
                stack.append(sympy.Float(self._values[i]))
            else:
                value = p.op.value
                literal = (sympy.Integer(int(value)) if isinstance(value, float)
                           and value.is_integer() else sympy.sympify(value))
                stack.append(_SYMPY_LITERALS.get(p.alias, literal))
        return stack[0]

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict; :meth:`from_json` restores the same tree.

        Examples
        --------
        >>> from ppl import Grammar
        >>> f = Grammar.load("koza").parse("(x + x)")
        >>> f.to_json()["prods"], f.to_json()["text"]
        ([0, 8, 8], '(x + x)')
        """
        return {"format": JSON_FORMAT, "grammar": self._grammar.fingerprint,
                "grammar_name": self._grammar.name, "inputs": list(self._inputs),
                "prods": list(self._prods), "values": list(self._values), "text": str(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], grammar: Grammar) -> Program:
        """Rebuild a program from :meth:`to_json` output, checking it fits ``grammar``.

        Examples
        --------
        >>> from ppl import Grammar
        >>> f = Grammar.load("koza").parse("(x + x)")
        >>> Program.from_json(f.to_json(), f.grammar)
        Program('(x + x)')
        """
        if data.get("format") != JSON_FORMAT:
            raise ProgramError(f"Not a {JSON_FORMAT} record: format={data.get('format')!r}.")
        if data.get("grammar") != grammar.fingerprint:
            raise ProgramError(f"The program was saved with grammar {data.get('grammar_name')} "
                               f"({data.get('grammar')}), not {grammar.name} "
                               f"({grammar.fingerprint}).")
        return cls(grammar, data["prods"], data["values"], data.get("inputs", ()))


_SYMPY_LITERALS: dict[str, Any] = {"pi": sympy.pi, "half": sympy.Rational(1, 2),
                                   "true": sympy.true, "false": sympy.false}
