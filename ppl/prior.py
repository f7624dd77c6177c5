"""The program prior: a PCFG conditioned exactly on depth and size limits.

:class:`ProgramPrior` is a Pyro distribution whose values are :class:`~ppl.program.Program`
trees, so ``pyro.sample("f", prior)`` (or ``ppl.sample``) makes a program-valued site. Its
``log_prob`` is exact::

    log π₀(φ) = Σ_u log w(r_u) + Σ_{inputs} log q(name) + Σ_{constants} log p_c(c) − log Z

where Z is the truncation mass of the limits (:mod:`ppl._tables`), and ``sample`` draws from
exactly that distribution (never a locally pruned generator).
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from pyro.distributions import TorchDistribution
from torch.distributions import constraints

from ppl._tables import Tables
from ppl.errors import PPLError, PriorError, ProgramError
from ppl.grammar import Grammar
from ppl.ops import KIND_CONSTANT, KIND_INPUT
from ppl.program import BoundProgram, Program

__all__ = ["ConstantPrior", "ProgramPrior"]

RNGLike = np.random.Generator | int | None


def as_generator(rng: RNGLike) -> np.random.Generator:
    """A numpy Generator from ``rng``; ``None`` draws a seed from torch's global generator.

    ``None`` is what Pyro's own distributions do (they use torch's global RNG, seeded by
    ``pyro.set_rng_seed``); library code always passes an explicit generator.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        rng = int(torch.randint(0, 2**62, ()).item())
    return np.random.default_rng(rng)


class ConstantPrior:
    """The prior density p_c of a program's real constants (numpy, for speed).

    Parameters
    ----------
    family : {"normal", "laplace", "uniform"}
    a, b : float
        loc and scale (normal, laplace) or low and high (uniform).

    Examples
    --------
    >>> ConstantPrior("normal", 0.0, 1.0).log_prob(0.0)
    -0.9189385332046727
    >>> ConstantPrior.from_any(None)
    ConstantPrior('normal', 0.0, 1.0)
    """

    FAMILIES = ("normal", "laplace", "uniform")

    def __init__(self, family: str, a: float, b: float) -> None:
        if family not in self.FAMILIES:
            raise PriorError(f"Constant prior family must be one of {self.FAMILIES}; got "
                             f"{family!r}.")
        a, b = float(a), float(b)
        if not (math.isfinite(a) and math.isfinite(b)) or \
                (family == "uniform" and not a < b) or (family != "uniform" and not b > 0):
            raise PriorError(f"Invalid parameters for a {family} constant prior: {a}, {b}.")
        self.family, self.a, self.b = family, a, b

    @classmethod
    def from_any(cls, spec: Any) -> ConstantPrior:
        """Accept None (Normal(0, 1)), a ConstantPrior, or a torch/Pyro/NumPyro Normal,
        Laplace or Uniform distribution with scalar parameters."""
        if spec is None:
            return cls("normal", 0.0, 1.0)
        if isinstance(spec, ConstantPrior):
            return spec
        name = type(spec).__name__.lower()
        try:
            if name in ("normal", "laplace"):
                return cls(name, float(spec.loc), float(spec.scale))
            if name == "uniform":
                return cls(name, float(spec.low), float(spec.high))
        except (TypeError, ValueError, RuntimeError):
            pass
        raise PriorError(f"constant_prior must be a scalar Normal, Laplace or Uniform "
                         f"distribution (or a ConstantPrior); got {spec!r}.")

    def grad_log_prob(self, c: np.ndarray) -> np.ndarray:
        """d/dc log p_c(c), elementwise (0 inside a uniform's support)."""
        if self.family == "normal":
            return np.asarray(-(c - self.a) / self.b**2)
        if self.family == "laplace":
            return np.asarray(-np.sign(c - self.a) / self.b)
        return np.zeros_like(c)

    def log_prob(self, c: float) -> float:
        """log p_c(c)."""
        if self.family == "normal":
            z = (c - self.a) / self.b
            return -0.5 * z * z - math.log(self.b) - 0.5 * math.log(2 * math.pi)
        if self.family == "laplace":
            return -abs(c - self.a) / self.b - math.log(2 * self.b)
        return -math.log(self.b - self.a) if self.a <= c <= self.b else -math.inf

    def sample(self, rng: np.random.Generator) -> float:
        """One draw c ~ p_c."""
        if self.family == "normal":
            return float(self.a + self.b * rng.standard_normal())
        if self.family == "laplace":
            return float(rng.laplace(self.a, self.b))
        return float(rng.uniform(self.a, self.b))

    def __repr__(self) -> str:
        return f"ConstantPrior({self.family!r}, {self.a}, {self.b})"


class ProgramPrior(TorchDistribution):
    """Distribution over programs of ``grammar``, conditioned on ``max_depth``/``max_size``.

    Parameters
    ----------
    grammar : Grammar or str
        A grammar or the name of a bundled one.
    inputs : sequence of str or mapping of str to float
        Input names (positional order of ``program(*inputs)``); a mapping gives weights of
        the input-leaf choice (default uniform).
    max_depth, max_size : int, optional
        Limits the prior is conditioned on (exactly, by dynamic programming).
    constant_prior : distribution, optional
        Prior of real constants; default Normal(0, 1).

    Examples
    --------
    >>> import numpy as np
    >>> from ppl import Grammar, ProgramPrior
    >>> prior = ProgramPrior(Grammar.load("koza"), inputs=["x"], max_depth=3)
    >>> f = prior.sample(rng=np.random.default_rng(0))
    >>> f.depth <= 3
    True
    >>> round(float(sum(np.exp(lp) for _, lp in prior.enumerate())), 12)
    1.0
    """

    arg_constraints: ClassVar[dict[str, Any]] = {}
    support = constraints.real  # placeholder for Pyro's checks; values are Programs
    has_enumerate_support = False

    def __init__(self, grammar: Grammar | str, inputs: Sequence[str] | Mapping[str, float],
                 max_depth: int | None = None, max_size: int | None = None,
                 constant_prior: Any = None, validate_args: bool | None = None) -> None:
        self.grammar: Grammar = Grammar.load(grammar) if isinstance(grammar, str) else grammar
        """The grammar whose derivations are the support."""
        if not isinstance(self.grammar, Grammar):
            raise PriorError(f"ProgramPrior needs a Grammar; got {type(grammar).__name__}.")
        self.inputs, self.input_probs = self._check_inputs(inputs)
        """Input names (positional order) and the probabilities of the input-leaf choice."""
        self.max_depth = self._check_limit("max_depth", max_depth)
        """Depth limit the prior is conditioned on (None: no limit)."""
        self.max_size = self._check_limit("max_size", max_size)
        """Size limit (number of nodes) the prior is conditioned on (None: no limit)."""
        self.constant_prior = ConstantPrior.from_any(constant_prior)
        """Prior density p_c of each real constant."""
        self._check_limits()
        self.tables = Tables(self.grammar, self.max_depth, self.max_size)
        self.log_normalizer: float = self.tables.log_mass(self.grammar.start)
        """log Z_D(S): the prior mass of the limits."""
        if self.log_normalizer == -math.inf:
            raise PriorError(f"No program of {self.grammar.name} fits max_depth="
                             f"{self.max_depth}, max_size={self.max_size}.")
        self._input_logp = {n: math.log(p) for n, p in zip(self.inputs, self.input_probs,
                                                            strict=True) if p > 0}
        self._input_cum: list[float] = np.cumsum(self.input_probs).tolist()
        self._prod_logp = [math.log(p) if p > 0 else -math.inf for p in self.grammar.probs]
        self._exchangeable, self._recursive = self._move_tables()
        super().__init__(torch.Size(), torch.Size(), validate_args=False)

    # ------------------------------------------------------------------ validation
    def _check_inputs(self, inputs: Any) -> tuple[tuple[str, ...], np.ndarray]:
        if isinstance(inputs, str) or inputs is None:
            raise PriorError(f"inputs must be a list of input names (e.g. ['x']); got "
                             f"{inputs!r}.")
        if isinstance(inputs, Mapping):
            names, weights = list(inputs), [inputs[k] for k in inputs]
        else:
            names, weights = list(inputs), [1.0] * len(inputs)
        uses_inputs = any(p.op.kind == KIND_INPUT and self.grammar.probs[p.id] > 0
                          for p in self.grammar.productions)
        if uses_inputs and not names:
            raise PriorError(f"{self.grammar.name} has input leaves, so inputs must name at "
                             "least one input.")
        if len(set(names)) != len(names):
            raise PriorError(f"Input names repeat: {names}.")
        value_patterns = self.grammar.value_patterns
        patterns = {p.value_terminal: value_patterns[p.value_terminal]
                    for p in self.grammar.productions
                    if p.op.kind == KIND_INPUT and p.value_terminal}
        keywords = {piece for p in self.grammar.productions for kind, piece in p.template
                    if kind == 0}
        for n in names:
            if not isinstance(n, str) or any(not re.fullmatch(pat, n) for pat in
                                             patterns.values()) or n in keywords:
                raise PriorError(f"Input name {n!r} cannot be written in {self.grammar.name}: "
                                 f"it must match {sorted(patterns.values())} and not be a "
                                 "keyword of the grammar.")
        w = np.array(weights, dtype=float) if names else np.ones(0)
        if names and (not np.all(np.isfinite(w)) or np.any(w < 0) or not w.sum() > 0):
            raise PriorError(f"Input weights must be finite, >= 0 and not all zero; got "
                             f"{dict(zip(names, weights, strict=True))}.")
        return tuple(names), (w / w.sum() if names else w)

    @staticmethod
    def _check_limit(name: str, value: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise PriorError(f"{name} must be a positive integer or None; got {value!r}.")
        return int(value)

    def _check_limits(self) -> None:
        start = self.grammar.nonterminals[self.grammar.start]
        need = self.grammar.min_depth[start]
        if self.max_depth is not None and self.max_depth < need:
            raise PriorError(f"max_depth={self.max_depth} is below the minimum derivation "
                             f"depth {need} of rule '{start}' in {self.grammar.name}.")

    def _move_tables(self) -> tuple[tuple[tuple[int, ...], ...], tuple[tuple[int, ...], ...]]:
        g = self.grammar
        live = [p for p in g.productions if g.probs[p.id] > 0]
        exchangeable = tuple(
            tuple(q.id for q in live if q.id != p.id and q.lhs == p.lhs
                  and q.children == p.children) if g.probs[p.id] > 0 else ()
            for p in g.productions)
        recursive = tuple(tuple(p.id for p in live if p.lhs == a and a in p.children)
                          for a in range(len(g.nonterminals)))
        return exchangeable, recursive

    def exchangeable(self) -> tuple[tuple[int, ...], ...]:
        """For each production, the other positive-weight productions with the same
        left-hand side and the same sequence of child nonterminals (relabel targets).

        Examples
        --------
        >>> p = ProgramPrior("tiny", inputs=["x"], max_depth=2)   # add, mul, sin, var, one
        >>> p.exchangeable()                   # add <-> mul, var <-> one; sin has no twin
        ((1,), (0,), (), (4,), (3,))
        """
        return self._exchangeable

    def recursive(self) -> tuple[tuple[int, ...], ...]:
        """For each nonterminal A, its positive-weight productions with A among the children
        (the productions an insert move can wrap a subtree of A in).

        Examples
        --------
        >>> ProgramPrior("tiny", inputs=["x"], max_depth=2).recursive()    # e: add, mul, sin
        ((0, 1, 2),)
        """
        return self._recursive

    def input_log_prob(self, name: str) -> float:
        """log q(name) of an input leaf's value (−inf for an unknown input).

        Examples
        --------
        >>> p = ProgramPrior("arith", inputs={"x": 3.0, "y": 1.0}, max_depth=3)
        >>> round(p.input_log_prob("x"), 4), p.input_log_prob("z")           # log(3/4)
        (-0.2877, -inf)
        """
        return self._input_logp.get(name, -math.inf)

    def sample_leaf_value(self, rng: np.random.Generator, production: int) -> Any:
        """A leaf's value from its prior: an input name, a constant, or None.

        Examples
        --------
        >>> import numpy as np
        >>> p = ProgramPrior("arith", inputs=["x"], max_depth=3)   # 8: var, 9: const
        >>> rng = np.random.default_rng(0)
        >>> p.sample_leaf_value(rng, 8), round(p.sample_leaf_value(rng, 9), 4)
        ('x', -0.1321)
        """
        return self._leaf(rng, production)

    # ------------------------------------------------------------------ sampling
    def _leaf(self, rng: np.random.Generator, r: int) -> Any:
        kind = self.grammar.productions[r].op.kind
        if kind == KIND_INPUT:
            cum = self._input_cum  # bisect_right on a list: np.searchsorted's index
            return self.inputs[bisect.bisect_right(cum, rng.random() * cum[-1])]
        if kind == KIND_CONSTANT:
            return self.constant_prior.sample(rng)
        return None

    def sample(self, sample_shape: Any = (), rng: RNGLike = None) -> Any:
        """Draw φ ~ π₀ exactly; an array of programs if ``sample_shape`` is not empty.

        Parameters
        ----------
        sample_shape : tuple, optional
            Shape of independent draws: ``()`` (default) returns one Program, ``(n,)`` a
            numpy object array of n Programs.
        rng : numpy Generator or int, optional
            Randomness; default: a seed drawn from torch's global RNG (Pyro's convention).

        Examples
        --------
        >>> p = ProgramPrior("tiny", inputs=["x"], max_depth=2)
        >>> p.sample(rng=3)
        Program('(x * 1)')
        >>> p.sample((3,), rng=1)
        array([Program('x'), Program('(1 * x)'), Program('1')], dtype=object)
        """
        gen = as_generator(rng)
        shape = tuple(sample_shape)
        if not shape:
            return self.sample_program(gen)
        out = np.empty(int(np.prod(shape)), dtype=object)
        for i in range(out.size):
            out[i] = self.sample_program(gen)
        return out.reshape(shape)

    def sample_program(self, rng: np.random.Generator) -> Program:
        """One exact draw φ ~ π₀ using ``rng``.

        Examples
        --------
        >>> import numpy as np
        >>> p = ProgramPrior("tiny", inputs=["x"], max_depth=2)
        >>> p.sample_program(np.random.default_rng(3))
        Program('(x * 1)')
        """
        prods, values = self.tables.sample(rng, self.grammar.start, self.max_depth,
                                           self.max_size, self._leaf)
        return Program.unchecked(self.grammar, tuple(prods), tuple(values), self.inputs)

    def sample_subtree(self, rng: np.random.Generator, nonterminal: int,
                       depth_budget: int | None, size_budget: int | None
                       ) -> tuple[tuple[int, ...], tuple[Any, ...]]:
        """T ~ p_b(· | A): a subtree of ``nonterminal`` from the prior restricted to depth ≤
        ``depth_budget`` and size ≤ ``size_budget`` (None: the prior's own limit).

        Examples
        --------
        >>> import numpy as np
        >>> p = ProgramPrior("tiny", inputs=["x"], max_depth=2)
        >>> prods, values = p.sample_subtree(np.random.default_rng(3), 0, 2, None)
        >>> prods, values, p.grammar.format(prods, values)
        ((1, 3, 4), (None, 'x', None), '(x * 1)')
        """
        prods, values = self.tables.sample(rng, nonterminal, depth_budget, size_budget,
                                           self._leaf)
        return tuple(prods), tuple(values)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.sample(*args, **kwargs)

    def parse(self, program: str | Program) -> Program:
        """A program of this prior, from its text (or from a Program of the same grammar),
        with the prior's input order: calling it positionally matches the model's own
        ``f(*inputs)``. Use this, not ``grammar.parse``, to read back a law as text.

        Raises
        ------
        ProgramError
            When the text reads a name that is not among the prior's inputs, or does not
            parse (:class:`~ppl.errors.ProgramSyntaxError`).

        Examples
        --------
        >>> from ppl import Grammar, ProgramPrior
        >>> prior = ProgramPrior(Grammar.load("arith"), inputs=["q", "c"], max_depth=3)
        >>> law = prior.parse("(q / c)")
        >>> law.inputs, float(law(6.0, 2.0)), float(law(c=2.0, q=6.0))
        (('q', 'c'), 3.0, 3.0)
        """
        if isinstance(program, Program):
            if program.grammar.fingerprint != self.grammar.fingerprint:
                raise ProgramError(f"The program {program} is of grammar "
                                   f"{program.grammar.name}, not of this prior's "
                                   f"{self.grammar.name}.")
            tree = program
        elif isinstance(program, str):
            tree = self.grammar.parse(program)
        else:
            raise ProgramError(f"parse expects program text (str) or a Program; got "
                               f"{type(program).__name__}.")
        unknown = [n for n in tree.reads if n not in self.inputs]
        if unknown:
            raise ProgramError(f"The program {tree} reads {unknown}, which are not among the "
                               f"prior's inputs {list(self.inputs)}.")
        return tree.with_inputs(self.inputs)

    # ------------------------------------------------------------------ densities
    def rule_log_prob(self, program: Program) -> float:
        """Σ_u log w(r_u) + Σ log q(input) + Σ log p_c(c): the unnormalised log prior.

        It is −inf for an input name the prior does not know or a zero-weight production.

        Examples
        --------
        >>> import math
        >>> p = ProgramPrior("tiny", inputs=["x"], max_depth=2)
        >>> round(p.rule_log_prob(p.grammar.parse("sin(x)")), 4)  # log w(sin) + log w(var)
        -3.6889
        >>> round(math.log(1 / 10) + math.log(2.5 / 10), 4)
        -3.6889
        """
        return self.subtree_log_prob(program.prods, program.values)

    def subtree_log_prob(self, prods: tuple[int, ...], values: tuple[Any, ...],
                         constants: bool = True) -> float:
        """Σ log w(r) + value log densities of a (sub)tree given in preorder (no normaliser).

        ``subtree_log_prob(T) - tables.log_mass(A, b, s)`` is log p_b(T | A), the density of
        :meth:`sample_subtree`. With ``constants=False`` the constants' densities are left
        out: the probability of the tree's structure with its constants integrated out.

        Examples
        --------
        >>> p = ProgramPrior("arith", inputs=["x"], max_depth=2)
        >>> f = p.grammar.parse("(x * 2.0)")
        >>> round(p.subtree_log_prob(f.prods, f.values), 4)   # + log N(2.0; 0, 1)
        -8.2942
        >>> round(p.subtree_log_prob(f.prods, f.values, constants=False), 4)
        -5.3753
        """
        total = 0.0
        prods_table = self.grammar.productions
        logp = self._prod_logp
        for r, v in zip(prods, values, strict=True):
            total += logp[r]
            if v is not None:
                kind = prods_table[r].op.kind
                if kind == KIND_INPUT:
                    total += self._input_logp.get(v, -math.inf)
                elif kind == KIND_CONSTANT and constants:
                    total += self.constant_prior.log_prob(v)
        return total

    def log_density(self, program: Program) -> float:
        """log π₀(φ) under the limits, as a float (−inf outside the support).

        Examples
        --------
        >>> p = ProgramPrior("tiny", inputs=["x"], max_depth=2)
        >>> round(p.log_density(p.grammar.parse("sin(x)")), 4)    # rule_log_prob - log Z
        -3.2581
        >>> p.log_density(p.grammar.parse("sin(sin(x))"))          # depth 3 > max_depth
        -inf
        """
        if isinstance(program, BoundProgram):
            program = program.program
        if not isinstance(program, Program):
            raise PPLError(f"ProgramPrior.log_prob expects a Program; got "
                           f"{type(program).__name__}.")
        if program.grammar.fingerprint != self.grammar.fingerprint:
            return -math.inf
        if self.max_size is not None and program.size > self.max_size:
            return -math.inf
        if self.max_depth is not None and program.depth > self.max_depth:
            return -math.inf
        return self.rule_log_prob(program) - self.log_normalizer

    def log_prob(self, value: Any) -> torch.Tensor:
        """log π₀(φ) as a float64 torch scalar (Pyro's interface).

        Examples
        --------
        >>> p = ProgramPrior("tiny", inputs=["x"], max_depth=2)
        >>> p.log_prob(p.grammar.parse("sin(x)"))
        tensor(-3.2581, dtype=torch.float64)
        """
        return torch.tensor(self.log_density(value), dtype=torch.float64)

    def size_distribution(self, max_size: int | None = None) -> np.ndarray:
        """Exact P(size = s), s = 0, 1, ..., under this prior.

        With a ``max_size`` limit of its own, the array covers the whole support (the
        argument is not used). With only ``max_depth``, it covers every size the depth
        allows and sums to one. Without limits, the support is infinite: the array stops at
        ``max_size`` (default 50) and sums to less than one.

        Examples
        --------
        >>> from ppl import Grammar
        >>> p = ProgramPrior(Grammar.load("tiny"), inputs=["x"], max_depth=2)
        >>> p.size_distribution().round(4).tolist()
        [0.0, 0.7692, 0.0769, 0.1538]
        """
        return self.tables.size_distribution(max_size)

    # ------------------------------------------------------------------ finite spaces
    def enumerate(self) -> Iterator[tuple[Program, float]]:
        """Yield every program with its log-probability (finite spaces only).

        Raises
        ------
        SupportError
            When the space is infinite (constants, or recursion without limits).

        Examples
        --------
        >>> import numpy as np
        >>> p = ProgramPrior("tiny", inputs=["x"], max_depth=2)
        >>> [(str(f), round(float(np.exp(lp)), 4)) for f, lp in p.enumerate()][-4:]
        [('sin(x)', 0.0385), ('sin(1)', 0.0385), ('x', 0.3846), ('1', 0.3846)]
        """
        for prods, values, lp, _ in self.tables.enumerate(self._input_logp):
            yield (Program.unchecked(self.grammar, prods, values, self.inputs),
                   lp - self.log_normalizer)

    def support_size(self) -> int:
        """The number of programs in the (finite) support, counted without listing them.

        Examples
        --------
        >>> from ppl import Grammar
        >>> ProgramPrior(Grammar.load("tiny"), inputs=["x"], max_depth=4).support_size()
        182712
        """
        return self.tables.count(len(self._input_logp))

    # ------------------------------------------------------------------ Pyro plumbing
    def expand(self, batch_shape: Any, _instance: Any = None) -> ProgramPrior:
        """Pyro's batching hook: a program site has no batch shape, so only ``()`` is
        accepted, and returns the prior itself.

        Raises
        ------
        PPLError
            For any other ``batch_shape`` (a program site inside a plate).

        Examples
        --------
        >>> p = ProgramPrior("tiny", inputs=["x"], max_depth=2)
        >>> p.expand(()) is p
        True
        >>> p.expand((3,))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        ppl.errors.PPLError: A program site cannot be batched: put ppl.sample(...) outside ...
        """
        if tuple(batch_shape) != ():
            raise PPLError("A program site cannot be batched: put ppl.sample(..., ProgramPrior)"
                           " outside of plates.")
        return self

    def to_numpyro(self) -> Any:
        """The same prior as a NumPyro distribution (for ``backend="numpyro"`` models).

        Examples
        --------
        >>> import jax
        >>> p = ProgramPrior("tiny", inputs=["x"], max_depth=2)
        >>> q = p.to_numpyro()
        >>> q.sample(jax.random.PRNGKey(0)), round(float(q.log_prob(p.grammar.parse("x"))), 4)
        (Program('1'), -0.9555)
        """
        from ppl._numpyro import NumPyroProgramPrior

        return NumPyroProgramPrior(self)

    def __repr__(self) -> str:
        return (f"ProgramPrior({self.grammar.name}, inputs={list(self.inputs)}, "
                f"max_depth={self.max_depth}, max_size={self.max_size})")
