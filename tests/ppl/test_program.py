"""Tests of ppl/program.py: evaluation on every backend, gradients, invalid arithmetic,
deep trees, identity (``key``), conversions, and the printing/parsing round trip."""

from __future__ import annotations

import ast
import json
import pickle
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy
import torch

from ppl import Grammar, Program, ProgramPrior
from ppl.errors import ProgramError

REPO = Path(__file__).resolve().parents[2]

# arith plus sqrt, pow and a few literals: every operator with an invalid domain.
MATH = r"""?start: e
e: "(" e "+" e ")"          -> add
 | "(" e "-" e ")"          -> sub
 | "(" e "*" e ")"          -> mul
 | "(" e "/" e ")"          -> div
 | "pow" "(" e "," e ")"    -> pow
 | "sqrt" "(" e ")"         -> sqrt
 | "exp" "(" e ")"          -> exp
 | "log" "(" e ")"          -> log
 | "sin" "(" e ")"          -> sin
 | "PI"                     -> pi
 | "HALF"                   -> half
 | NAME                     -> var    // @weight 10
 | NUMBER                   -> const  // @weight 10
NAME: /[a-z_][a-z0-9_]*/
NUMBER: /[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?/
%ignore " "
"""


@pytest.fixture(scope="module")
def math_grammar() -> Grammar:
    return Grammar.from_string(MATH)


def arith(text: str, inputs: tuple[str, ...] = ("x", "y")) -> Program:
    return Grammar.load("arith").parse(text, inputs=inputs)


PROGRAMS = [
    "((x * 2.5) + sin(y))",
    "(log((x * x)) - (exp(y) / (x + 3.0)))",
    "cos(((x - y) * -0.75))",
    "1.5",
]


class TestBackends:
    X = np.array([0.3, 1.2, -2.0, 4.0])
    Y = np.array([-1.0, 0.5, 2.0, 0.0])

    @pytest.mark.parametrize("text", PROGRAMS)
    def test_numpy_torch_jax_agree(self, text: str) -> None:
        p = arith(text)
        ref = p(self.X, self.Y)
        assert isinstance(ref, np.ndarray) and ref.dtype == np.float64 and ref.shape == (4,)
        out_t = p(torch.tensor(self.X), torch.tensor(self.Y))
        assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.float64
        np.testing.assert_allclose(out_t.numpy(), ref, rtol=1e-14)
        out_j = p(jnp.asarray(self.X), jnp.asarray(self.Y))
        assert isinstance(out_j, jax.Array)
        np.testing.assert_allclose(np.asarray(out_j), ref, rtol=2e-6, atol=1e-6)

    def test_torch_float32_stays_float32(self) -> None:
        out = arith("((x * 2.5) + 1.0)")(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 0.0]))
        assert out.dtype == torch.float32
        assert out.tolist() == [3.5, 6.0]

    def test_keywords_positions_and_broadcasting(self) -> None:
        p = arith("(x - y)")
        assert p(self.X, self.Y).tolist() == p(y=self.Y, x=self.X).tolist()
        assert p(self.X, y=self.Y).tolist() == (self.X - self.Y).tolist()
        out = p(np.ones((3, 1)), np.arange(4.0))
        assert out.shape == (3, 4)

    def test_constant_program_broadcasts_to_inputs(self) -> None:
        out = arith("2.5")(np.zeros(3), np.zeros(3))
        assert out.tolist() == [2.5] * 3
        out_t = arith("2.5")(torch.zeros(2, dtype=torch.float64), torch.zeros(2))
        assert out_t.shape == (2,)

    @pytest.mark.parametrize(
        ("x", "y", "want"),
        [(2.0, 3.0, -1.0), ([1.0, 2.0], [0.5, 0.5], [0.5, 1.5]), ([1, 2], [0, 1], [1.0, 1.0]),
         (np.float32(2.0), 1, 1.0)],
        ids=["python-floats", "lists", "int-lists", "numpy-scalar-and-int"])
    def test_python_scalars_and_lists(self, x: Any, y: Any, want: Any) -> None:
        out = arith("(x - y)")(x, y)
        assert isinstance(out, np.ndarray | np.floating)
        assert np.asarray(out).dtype == np.float64
        np.testing.assert_array_equal(out, want)

    def test_argument_errors(self) -> None:
        p = arith("(x - y)")
        with pytest.raises(ProgramError, match=r"reads input 'y', which was not given"):
            p(self.X)
        with pytest.raises(ProgramError, match="reads input 'x'"):
            p(y=self.Y)
        with pytest.raises(ProgramError, match="3 positional"):
            p(1.0, 2.0, 3.0)
        with pytest.raises(ProgramError, match="'x' given twice"):
            p(1.0, x=2.0)


class TestGradients:
    def test_gradcheck_inputs_and_constants(self) -> None:
        p = arith("(((x * 2.5) + sin((y * -1.5))) / exp(0.3))")
        x = torch.tensor([0.3, 1.2, -0.7], dtype=torch.float64, requires_grad=True)
        y = torch.tensor([0.1, -0.4, 2.0], dtype=torch.float64, requires_grad=True)
        c = torch.tensor(p.constants, requires_grad=True)
        assert torch.autograd.gradcheck(lambda a, b, k: p(a, b, constants=k), (x, y, c))

    def test_gradients_match_finite_differences(self) -> None:
        """∂/∂x and ∂/∂c of Σ f(x; c) from autograd equal central differences of numpy runs."""
        p = arith("(log(((x * x) + 1.5)) * cos((x - -0.5)))", inputs=("x",))
        x0 = np.array([0.3, 1.2, -2.0])
        c0 = p.constants
        x = torch.tensor(x0, requires_grad=True)
        c = torch.tensor(c0, requires_grad=True)
        p(x, constants=c).sum().backward()
        h = 1e-6
        assert x.grad is not None and c.grad is not None
        dx = (p(x0 + h) - p(x0 - h)) / (2 * h)
        np.testing.assert_allclose(x.grad.numpy(), dx, rtol=1e-6, atol=1e-8)
        for j in range(len(c0)):
            e = np.eye(len(c0))[j] * h
            dc = (p.with_constants(c0 + e)(x0).sum() - p.with_constants(c0 - e)(x0).sum()) / (2 * h)
            assert float(c.grad[j]) == pytest.approx(dc, rel=1e-6, abs=1e-8)

    def test_constants_tensor_replaces_stored_values(self) -> None:
        p = arith("(x * 2.5)", inputs=("x",))
        out = p(torch.tensor([2.0], dtype=torch.float64), constants=torch.tensor([4.0]))
        assert out.tolist() == [8.0]


INVALID = [
    # program, numpy result on x = [-8, 0, 1000] as (isnan, isinf) masks
    ("(x / 0.0)", [False, True, False], [True, False, True]),
    ("log(x)", [True, False, False], [False, True, False]),
    ("sqrt(x)", [True, False, False], [False, False, False]),
    ("exp(x)", [False, False, False], [False, False, True]),
    ("pow(x, 0.5)", [True, False, False], [False, False, False]),
    ("pow(x, 1.5)", [True, False, False], [False, False, False]),
    ("pow(-2.0, 0.5)", [True, True, True], [False, False, False]),
    ("(1.0 / (x - x))", [False, False, False], [True, True, True]),
]


class TestInvalidArithmetic:
    """x/0, log ≤ 0, sqrt < 0, exp overflow, negative ** fraction: nan/inf, never raise."""

    @pytest.mark.parametrize(("text", "nan", "inf"), INVALID, ids=[t[0] for t in INVALID])
    @pytest.mark.parametrize("backend", ["numpy", "torch", "jax", "list"])
    def test_gives_nan_or_inf(self, math_grammar: Grammar, text: str, nan: list[bool],
                              inf: list[bool], backend: str) -> None:
        p = math_grammar.parse(text, inputs=["x"])
        x = [-8.0, 0.0, 1000.0]
        arg = {"numpy": np.array(x), "torch": torch.tensor(x), "jax": jnp.asarray(x),
               "list": x}[backend]
        out = np.asarray(p(arg))  # warnings are errors in this suite: none may be emitted
        assert not np.iscomplexobj(out)
        assert out.dtype.kind == "f"
        assert np.isnan(out).tolist() == nan
        assert np.isinf(out).tolist() == inf

    @pytest.mark.parametrize("text", ["pow(x, 0.5)", "sqrt(x)", "log(x)", "pow(-8.0, 0.5)"])
    def test_python_scalar_never_complex(self, math_grammar: Grammar, text: str) -> None:
        p = math_grammar.parse(text, inputs=["x"])
        out = p(-8.0)
        assert not isinstance(out, complex) and not np.iscomplexobj(out)
        assert np.isnan(out)

    def test_no_inputs_at_all(self, math_grammar: Grammar) -> None:
        out = math_grammar.parse("pow(-2.0, 0.5)")()
        assert np.isnan(out) and not np.iscomplexobj(out)
        out_t = math_grammar.parse("pow(-2.0, 0.5)")(constants=torch.tensor([-2.0, 0.5]))
        assert torch.isnan(out_t)


DEEP = 5000


@pytest.fixture(scope="module")
def deep() -> Program:
    g = Grammar.load("tiny")
    sin, var = (next(p.id for p in g.productions if p.alias == a) for a in ("sin", "var"))
    return Program(g, [sin] * DEEP + [var], [None] * DEEP + ["x"], ["x"])


@pytest.fixture
def recursion_limit_1000() -> Iterator[None]:
    """Python's default limit, whatever the environment set: recursion would need 5000."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    yield
    sys.setrecursionlimit(old)


@pytest.mark.usefixtures("recursion_limit_1000")
class TestDeepTree:
    """A depth-5000 chain sin(sin(...sin(x))), built directly: nothing may recurse."""

    N = DEEP

    def test_structure(self, deep: Program) -> None:
        assert (deep.depth, deep.size) == (self.N + 1, self.N + 1)
        assert deep.node_depths()[-1] == self.N + 1

    def test_evaluates(self, deep: Program) -> None:
        x = np.array([0.5, 1.0])
        want = x.copy()
        for _ in range(self.N):
            want = np.sin(want)
        np.testing.assert_allclose(deep(x), want, rtol=1e-12)
        np.testing.assert_allclose(deep(torch.tensor(x)).numpy(), want, rtol=1e-12)

    def test_prints(self, deep: Program) -> None:
        assert str(deep) == "sin(" * self.N + "x" + ")" * self.N

    def test_hashes(self, deep: Program) -> None:
        assert isinstance(deep.key, str) and len(deep.key) == 16
        assert isinstance(hash(deep), int)

    def test_pickles(self, deep: Program) -> None:
        back = pickle.loads(pickle.dumps(deep))
        assert back == deep and back.key == deep.key

    def test_json_round_trip(self, deep: Program) -> None:
        back = Program.from_json(json.loads(json.dumps(deep.to_json())), deep.grammar)
        assert back == deep


KEY_SAME = [
    ("((x + y) * sin(2.0))", "(sin(-1.0) * (y + x))"),
    ("((x * 3.0) + (y - x))", "((y - x) + (-7.5 * x))"),
    ("(x + (y + (x * y)))", "(((y * x) + y) + x)"),
    ("exp(1.0)", "exp(2.0)"),
]
KEY_DIFFERENT = [
    ("(x - y)", "(y - x)"),
    ("(x / y)", "(y / x)"),
    ("(x - 1.0)", "(1.0 - x)"),
    ("sin(x)", "cos(x)"),
    ("(x + x)", "(x + y)"),
]


class TestKey:
    @pytest.mark.parametrize(("a", "b"), KEY_SAME, ids=[a for a, _ in KEY_SAME])
    def test_invariant_under_commutation_and_constants(self, a: str, b: str) -> None:
        assert arith(a).key == arith(b).key

    @pytest.mark.parametrize(("a", "b"), KEY_DIFFERENT, ids=[a for a, _ in KEY_DIFFERENT])
    def test_different_for_noncommutative_swaps(self, a: str, b: str) -> None:
        assert arith(a).key != arith(b).key

    def test_equality_is_exact(self) -> None:
        assert arith("(x + y)") != arith("(y + x)")
        assert arith("(x + y)") == arith("(x + y)")
        assert hash(arith("(x + 1.0)")) == hash(arith("(x + 1.0)"))
        # the positional order of inputs is calling convention, not part of the tree
        a, b = arith("(x + y)", ("x", "y")), arith("(x + y)", ("y", "x"))
        assert a == b and hash(a) == hash(b) and a.inputs != b.inputs


class TestConversions:
    @pytest.mark.parametrize(
        ("text", "want"),
        [("((x * x) + x)", "x**2 + x"), ("(x - 2.0)", "x - 2.0"),
         ("pow(x, HALF)", "sqrt(x)"), ("sin((PI * x))", "sin(pi*x)")])
    def test_to_sympy(self, math_grammar: Grammar, text: str, want: str) -> None:
        x = sympy.Symbol("x", real=True)
        got = math_grammar.parse(text).to_sympy()
        assert sympy.simplify(got - sympy.sympify(want, locals={"x": x})) == 0

    def test_to_sympy_agrees_with_evaluation(self, rng: np.random.Generator) -> None:
        prior = ProgramPrior(Grammar.load("arith"), inputs=["x", "y"], max_depth=4)
        xs, ys = np.array([0.3, 1.7]), np.array([-0.4, 2.2])
        sym = sympy.symbols("x y", real=True)
        for _ in range(30):
            p = prior.sample(rng=rng)
            f = sympy.lambdify(sym, p.to_sympy(), "numpy")
            with np.errstate(all="ignore"):
                want = np.broadcast_to(np.asarray(f(xs, ys), dtype=complex), (2,))
            got = p(xs, ys)
            real = np.abs(want.imag) < 1e-12
            np.testing.assert_allclose(got[real], want.real[real], rtol=1e-9, equal_nan=True)

    def test_with_constants(self) -> None:
        p = arith("((x * 2.5) + exp(-1.0))")
        q = p.with_constants([3.0, 0.0])
        assert str(q) == "((x * 3.0) + exp(0.0))"
        assert p.constants.tolist() == [2.5, -1.0]  # immutable
        assert q.key == p.key and q != p
        np.testing.assert_allclose(q(np.array([1.0]), np.array([0.0])), [4.0])
        assert p.with_constants(np.array([2.5, -1.0])) == p

    @pytest.mark.parametrize("values", [[1.0], [1.0, 2.0, 3.0], [np.nan, 1.0], [np.inf, 1.0]],
                             ids=["too-few", "too-many", "nan", "inf"])
    def test_with_constants_errors(self, values: list[float]) -> None:
        with pytest.raises(ProgramError, match=r"expects 2 values|must be finite"):
            arith("((x * 2.5) + exp(-1.0))").with_constants(values)

    def test_from_json_errors(self) -> None:
        data = arith("(x + 1.0)").to_json()
        with pytest.raises(ProgramError, match=r"Not a ppl\.program/1 record"):
            Program.from_json({**data, "format": "other"}, Grammar.load("arith"))
        with pytest.raises(ProgramError, match=r"saved with grammar arith\.lark"):
            Program.from_json(data, Grammar.load("koza"))


def _koza_ids() -> dict[str, int]:
    return {p.alias: p.id for p in Grammar.load("koza").productions}


K = _koza_ids()
BAD_SEQUENCES = [
    ([], [], "at least one node"),
    ([K["add"], K["var"]], [None, "x"], "ends before"),
    ([K["var"], K["var"]], ["x", "x"], "does not continue"),
    ([99], [None], "production 99"),
    ([-1], [None], "production -1"),
    ([K["var"]], ["x", None], "one value per node"),
    ([K["var"]], [None], "invalid value"),
    ([K["sin"], K["var"]], [1.0, "x"], "invalid value"),
]


class TestConstructor:
    @pytest.mark.parametrize(("prods", "values", "match"), BAD_SEQUENCES,
                             ids=["empty", "too-short", "trailing-node", "index-too-large",
                                  "negative-index", "values-length", "input-without-name",
                                  "function-with-value"])
    def test_rejects_invalid_preorder(self, prods: list[int], values: list[Any],
                                      match: str) -> None:
        with pytest.raises(ProgramError, match=match):
            Program(Grammar.load("koza"), prods, values, ["x"])

    @pytest.mark.parametrize("value", ["1.0", None, float("nan"), float("inf")])
    def test_rejects_bad_constant(self, value: Any) -> None:
        g = Grammar.load("arith")
        const = next(p.id for p in g.productions if p.alias == "const")
        with pytest.raises(ProgramError, match="invalid value"):
            Program(g, [const], [value])

    def test_rejects_wrong_nonterminal(self) -> None:
        g = Grammar.load("boolean")
        var = next(p.id for p in g.productions if p.rule == "feature")
        with pytest.raises(ProgramError, match="rule 'rule' was expected"):
            Program(g, [var], ["x"], ["x"])

    def test_accepts_valid_sequence_and_int_constant(self) -> None:
        g = Grammar.load("arith")
        ids = {p.alias: p.id for p in g.productions}
        p = Program(g, [ids["add"], ids["var"], ids["const"]], [None, "x", 2], ["x"])
        assert str(p) == "(x + 2.0)" and p.constants.dtype == np.float64


@pytest.mark.parametrize("name", ["arith", "koza", "boolean", "tiny"])
def test_parse_print_round_trip(name: str) -> None:
    """parse(str(p)) == p for 10,000 prior draws (about 3 s per grammar, Earley parsing)."""
    g = Grammar.load(name)
    prior = ProgramPrior(g, inputs=["x", "y"], max_depth=6)
    rng = np.random.default_rng(sum(map(ord, name)))
    failures = []
    for _ in range(10_000):
        p = prior.sample(rng=rng)
        text = str(p)
        if g.parse(text, inputs=["x", "y"]) != p:
            failures.append(text)
    assert not failures, failures[:5]


FORBIDDEN = {"eval", "exec", "compile", "__import__"}


def forbidden_calls(source: str) -> list[str]:
    """Calls of eval/exec/compile/__import__ (bare or as ``builtins.x``) in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else \
                f.attr if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) \
                and f.value.id == "builtins" else None
            if name in FORBIDDEN:
                found.append(f"line {node.lineno}: {name}(")
    return found


def test_forbidden_call_detector_detects() -> None:
    assert forbidden_calls("y = eval('1 + 1')\nimport builtins\nbuiltins.exec('x')\n") \
        == ["line 1: eval(", "line 3: exec("]
    assert forbidden_calls("model.eval()\nre.compile('a')\n") == []


@pytest.mark.parametrize("package", ["ppl", "inference"])
def test_program_text_is_never_evaluated(package: str) -> None:
    files = sorted((REPO / package).rglob("*.py"))
    assert files
    hits = {str(f.relative_to(REPO)): calls for f in files
            if (calls := forbidden_calls(f.read_text()))}
    assert hits == {}
