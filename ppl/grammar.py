"""Grammars: Lark text plus production weights, the syntax and prior of programs.

A :class:`Grammar` is a probabilistic context-free grammar. Its text is a Lark grammar in
which every alternative ends with an alias naming an operator of :mod:`ppl.ops`
(``-> add``). Production weights default to uniform within a rule; a line comment
``// @weight 2.5`` on an alternative's line sets its weight, and ``weights=`` overrides
either from Python, keyed by alias (``"add"``) or by rule and alias (``"expr.add"``).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import warnings
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lark
import numpy as np

from ppl._compile import (
    PIECE_CHILD,
    PIECE_LITERAL,
    Production,
    compile_text,
    defined_rules,
    show_line,
)
from ppl.errors import (
    AmbiguousProgramError,
    GrammarError,
    GrammarWarning,
    ProgramError,
    ProgramSyntaxError,
    WeightError,
)
from ppl.ops import KIND_CONSTANT, KIND_FUNCTION, KIND_INPUT

if TYPE_CHECKING:
    from ppl.program import Program

__all__ = ["Grammar", "bundled_grammars"]

_CACHE: dict[tuple[str, tuple[tuple[str, float], ...]], Grammar] = {}


def _grammar_dir() -> Path:
    try:
        # Installed from a wheel, ppl._grammars is a namespace package (no __init__.py) and
        # files() is a MultiplexedPath, whose str() is no path: locate it through its files.
        for entry in resources.files("ppl._grammars").iterdir():
            if entry.name.endswith(".lark"):
                return Path(str(entry)).parent
    except ModuleNotFoundError:
        pass
    return Path(__file__).resolve().parent.parent / "grammars"


def bundled_grammars() -> list[str]:
    """Names of the grammars shipped with ``ppl`` (``Grammar.load(name)`` loads one).

    Examples
    --------
    >>> from ppl import bundled_grammars
    >>> {"arith", "boolean", "koza"} <= set(bundled_grammars())
    True
    """
    return sorted(p.stem for p in _grammar_dir().glob("*.lark"))


class Grammar:
    """A probabilistic context-free grammar over programs (immutable).

    Parameters
    ----------
    text : str
        Lark grammar text with a ``start`` rule and aliased alternatives.
    weights : mapping of str to float, optional
        Weight overrides keyed by alias or ``"rule.alias"``; they replace the file's
        ``// @weight`` annotations. Weights are normalised within each rule.
    name : str
        Name used in messages and printing.

    Examples
    --------
    >>> from ppl import Grammar
    >>> g = Grammar.load("arith")
    >>> p = g.parse("(x + sin(x))")
    >>> str(p), p.size, p.depth
    ('(x + sin(x))', 4, 3)
    """

    def __init__(self, text: str, weights: Mapping[str, float] | None = None,
                 name: str = "<string>") -> None:
        compiled = compile_text(text, name)
        self._text = text
        self._name = name
        self._compiled = compiled
        self.nonterminals: tuple[str, ...] = compiled.nonterminals
        """Nonterminal names; a production's ``lhs`` indexes this tuple."""
        self.start: int = compiled.start
        """Id of the root nonterminal (``start``, or the rule it is a unit alias of)."""
        self.productions: tuple[Production, ...] = compiled.productions
        """Every alternative, in grammar order."""
        self.by_lhs: tuple[tuple[int, ...], ...] = tuple(
            tuple(p.id for p in self.productions if p.lhs == a)
            for a in range(len(self.nonterminals)))
        """Production indices of each nonterminal."""
        self.arities: tuple[int, ...] = tuple(len(p.children) for p in self.productions)
        """Number of children of each production (the tree walks' hot loops read it)."""
        raw = np.ones(len(self.productions))
        for i, w in compiled.annotated.items():
            raw[i] = w
        self._overrides = dict(weights or {})
        raw = self._apply_overrides(raw, self._overrides)
        self.weights: np.ndarray = raw
        """Raw production weights (before normalisation)."""
        self.probs: np.ndarray = self._normalise(raw)
        """Production probabilities w(r), normalised within each nonterminal."""
        self.fingerprint: str = hashlib.blake2b(
            text.replace("\r\n", "\n").encode(), digest_size=8).hexdigest()
        """Hash of the grammar text: programs of equal fingerprints are interchangeable."""
        self._check_reachable()
        self._check_productive()
        self.min_depth: dict[str, int] = self._min_depths()
        """Minimum derivation depth of each nonterminal."""
        self.spectral_radius: float = self._check_spectral_radius()
        """Spectral radius of the mean matrix; < 1 means finite expected program size."""
        self._alias_index: dict[tuple[int, str], list[int]] = {}
        for p in self.productions:
            self._alias_index.setdefault((p.lhs, p.alias), []).append(p.id)

    # ------------------------------------------------------------------ construction
    @classmethod
    def load(cls, name_or_path: str | Path, weights: Mapping[str, float] | None = None
             ) -> Grammar:
        """Load a bundled grammar by name (``"arith"``) or a ``.lark`` file by path.

        Examples
        --------
        >>> Grammar.load("koza").nonterminals
        ('expr',)
        """
        path = Path(name_or_path)
        if not path.suffix and not path.exists():
            path = _grammar_dir() / f"{name_or_path}.lark"
            if not path.exists():
                raise GrammarError(
                    f"No bundled grammar named '{name_or_path}'. "
                    f"Bundled: {', '.join(bundled_grammars())}; or pass a path to a .lark file.")
        if not path.exists():
            raise GrammarError(f"Grammar file '{path}' does not exist.")
        text = path.read_text()
        key = (text, tuple(sorted((weights or {}).items())))
        if key not in _CACHE:
            _CACHE[key] = cls(text, weights, name=path.name)
        return _CACHE[key]

    @classmethod
    def from_string(cls, text: str, weights: Mapping[str, float] | None = None) -> Grammar:
        """Build a grammar from Lark text.

        Examples
        --------
        >>> g = Grammar.from_string('''
        ... ?start: e
        ... e: "(" e "+" e ")" -> add
        ...  | "1" -> one            // @weight 3
        ... %ignore " "
        ... ''')
        >>> g.probs.tolist()
        [0.25, 0.75]
        """
        return cls(text, weights)

    def with_weights(self, weights: Mapping[str, float]) -> Grammar:
        """Return the same grammar with other weight overrides (merged over the current).

        Examples
        --------
        >>> g = Grammar.load("tiny").with_weights({"sin": 0.0})    # add, mul, sin, var, one
        >>> g.probs.round(3).tolist()
        [0.222, 0.222, 0.0, 0.278, 0.278]
        >>> g.with_weights({"var": 5.0}).weight_overrides
        {'sin': 0.0, 'var': 5.0}
        """
        return Grammar(self._text, {**self._overrides, **weights}, name=self._name)

    def _apply_overrides(self, raw: np.ndarray, weights: Mapping[str, float]) -> np.ndarray:
        raw = raw.copy()
        for key, value in weights.items():
            rule, _, alias = key.rpartition(".")
            hits = [p.id for p in self.productions
                    if p.alias == alias and (not rule or p.rule == rule)]
            if not hits:
                names = sorted({p.alias for p in self.productions}
                               | {f"{p.rule}.{p.alias}" for p in self.productions})
                raise WeightError(f"Weight '{key}' names no alternative of {self._name}. "
                                  f"Known: {', '.join(names)}.")
            try:
                v = float(value)
            except (TypeError, ValueError):
                v = math.nan
            if not math.isfinite(v) or v < 0:
                raise WeightError(f"Weight '{key}' must be a finite number >= 0; got {value!r}.")
            raw[hits] = v
        return raw

    def _normalise(self, raw: np.ndarray) -> np.ndarray:
        probs = np.zeros_like(raw)
        for a, idx in enumerate(self.by_lhs):
            total = raw[list(idx)].sum()
            if not total > 0:
                p = self.productions[idx[0]]
                raise WeightError(
                    f"All weights of rule '{self.nonterminals[a]}' are zero.\n"
                    + show_line(self._text, p.line, self._name)
                    + "\nGive at least one alternative a positive weight.")
            probs[list(idx)] = raw[list(idx)] / total
        return probs

    # ------------------------------------------------------------------ validation
    def _check_reachable(self) -> None:
        # Lark drops only rules that nothing references; rules that reference each other
        # survive it, so reachability from start is a fixpoint over the productions.
        reach = {self.start}
        todo = [self.start]
        while todo:
            for r in self.by_lhs[todo.pop()]:
                for c in self.productions[r].children:
                    if c not in reach:
                        reach.add(c)
                        todo.append(c)
        self._reachable = sorted(reach)
        kept = {str(r.origin.name) for r in self._compiled.parser.rules}
        kept -= {n for a, n in enumerate(self.nonterminals) if a not in reach}
        for rule, line in defined_rules(self._text).items():
            if rule not in kept:
                warnings.warn(
                    f"Rule '{rule}' is unreachable from 'start' and will never be used.\n"
                    + show_line(self._text, line, self._name), GrammarWarning, stacklevel=4)

    def _check_productive(self) -> None:
        productive: set[int] = set()
        changed = True
        while changed:
            changed = False
            for p in self.productions:
                if p.lhs not in productive and self.probs[p.id] > 0 \
                        and all(c in productive for c in p.children):
                    productive.add(p.lhs)
                    changed = True
        for a, name in enumerate(self.nonterminals):
            if a not in productive:
                line = self.productions[self.by_lhs[a][0]].line
                raise GrammarError(
                    f"Rule '{name}' is unproductive: no derivation from it ever ends "
                    "(every positive-weight alternative recurses into an unproductive rule).\n"
                    + show_line(self._text, line, self._name)
                    + "\nAdd a leaf alternative (e.g. '| VAR -> var').")

    def _min_depths(self) -> dict[str, int]:
        depth = [math.inf] * len(self.nonterminals)
        changed = True
        while changed:
            changed = False
            for p in self.productions:
                if self.probs[p.id] > 0:
                    d = 1 + max((depth[c] for c in p.children), default=0)
                    if d < depth[p.lhs]:
                        depth[p.lhs] = d
                        changed = True
        return {n: int(depth[a]) for a, n in enumerate(self.nonterminals)}

    def mean_matrix(self) -> np.ndarray:
        """M[A, B] = Σ_{r ∈ R(A)} w(r) · (number of B among r's children).

        Examples
        --------
        >>> Grammar.load("boolean").nonterminals
        ('rule', 'feature', 'threshold')
        >>> Grammar.load("boolean").mean_matrix()[0]   # a rule's expected children
        array([0.6, 0.4, 0.4])
        """
        n = len(self.nonterminals)
        m = np.zeros((n, n))
        for p in self.productions:
            for c in p.children:
                m[p.lhs, c] += self.probs[p.id]
        return m

    def _check_spectral_radius(self) -> float:
        m = self.mean_matrix()[np.ix_(self._reachable, self._reachable)]
        rho = float(np.max(np.abs(np.linalg.eigvals(m)))) if m.size else 0.0
        if rho >= 1.0 - 1e-12:
            recursive = sorted({p.alias for p in self.productions if p.children})
            raise GrammarError(
                f"The grammar {self._name} is not consistent: the spectral radius of its mean "
                f"matrix is ρ = {rho:.4g} >= 1, so its expected program size is infinite.\n"
                f"Lower the weights of recursive alternatives ({', '.join(recursive)}) or "
                "raise those of leaves.")
        return rho

    def expected_size(self) -> float:
        """Expected number of nodes of an unlimited derivation: e_Sᵀ (I − M)⁻¹ 1.

        Examples
        --------
        >>> round(Grammar.load("arith").expected_size(), 3)
        6.0
        """
        m = self.mean_matrix()
        sizes = np.linalg.solve(np.eye(len(m)) - m, np.ones(len(m)))
        return float(sizes[self.start])

    # ------------------------------------------------------------------ reading programs
    def parse(self, text: str, inputs: Iterable[str] | None = None) -> Program:
        """Parse program text into a :class:`~ppl.program.Program` tree.

        Parameters
        ----------
        text : str
            Program text in the grammar's syntax.
        inputs : iterable of str, optional
            Input names in positional order (``program(*inputs)``). Default: the names the
            text reads, in **alphabetical** order, whatever order the text uses them in:
            ``parse("(q / c)")(6, 2)`` binds ``c=6, q=2``. A law read back from a model
            should be parsed by its prior, ``prior.parse(text)``, which uses the prior's
            declared order, the order the model calls the program in.

        Raises
        ------
        ProgramSyntaxError
            When the grammar does not derive ``text``.
        AmbiguousProgramError
            When ``text`` has several derivations (an ambiguous grammar).
        ProgramError
            When ``inputs`` is given and the text reads a name not in it.

        Examples
        --------
        >>> g = Grammar.load("arith")
        >>> g.parse("exp((x * -1.5))").constants
        array([-1.5])
        >>> g.parse("(q / c)").inputs
        ('c', 'q')
        >>> g.parse("(q / c)", inputs=["q", "c"]).inputs
        ('q', 'c')
        """
        from ppl.program import Program

        if not isinstance(text, str):
            raise ProgramError(f"parse expects program text (str); got {type(text).__name__}.")
        try:
            tree = self._compiled.parser.parse(text)
        except lark.exceptions.UnexpectedInput as err:
            line = getattr(err, "line", 1) or 1
            column = getattr(err, "column", 1) or 1
            raise ProgramSyntaxError(
                f"{self._name} does not derive the program text at line {line}, column "
                f"{column}.\n{show_line(text, line, 'program', column)}") from None
        if any(t.data == "_ambig" for t in tree.iter_subtrees()):
            raise AmbiguousProgramError(
                f"The program text {text!r} has several derivations in {self._name}, an "
                "ambiguous grammar. Programs are kept as trees: round-trip them through "
                "Program.to_json / pickle, or add parentheses to the grammar.")
        prods, values = self._from_lark(tree)
        names = [v for i, v in enumerate(values)
                 if self.productions[prods[i]].op.kind == KIND_INPUT]
        order = tuple(inputs) if inputs is not None else tuple(sorted(set(names)))
        return Program(self, tuple(prods), tuple(values), order)

    def _from_lark(self, tree: Any) -> tuple[list[int], list[Any]]:
        prods: list[int] = []
        values: list[Any] = []
        stack: list[tuple[Any, int]] = [(tree, self.start)]
        while stack:
            node, lhs = stack.pop()
            index, node = self._resolve(node, lhs)
            prod = self.productions[index]
            prods.append(index)
            kids = [c for c in node.children if isinstance(c, lark.Tree)]
            if prod.value_terminal is not None:
                token = next(c for c in node.children
                             if isinstance(c, lark.Token) and c.type == prod.value_terminal)
                values.append(float(token) if prod.op.kind == KIND_CONSTANT else str(token))
            else:
                values.append(None)
            for kid, child_lhs in reversed(list(zip(kids, prod.children, strict=True))):
                stack.append((kid, child_lhs))
        return prods, values

    def _resolve(self, node: Any, lhs: int) -> tuple[int, Any]:
        """Find the production of ``lhs`` that a Lark tree node stands for."""
        data = str(node.data)
        hits = self._alias_index.get((lhs, data), [])
        n_kids = sum(isinstance(c, lark.Tree) for c in node.children)
        for index in hits:
            if len(self.productions[index].children) == n_kids:
                return index, node
        if (data == self.nonterminals[lhs] or data == "start") and len(node.children) == 1 \
                and isinstance(node.children[0], lark.Tree):
            return self._resolve(node.children[0], lhs)
        for index in self._alias_index.get((lhs, "pass"), []):
            try:
                self._resolve(node, self.productions[index].children[0])
            except ProgramError:
                continue
            wrapper = lark.Tree("pass", [node])
            return index, wrapper
        raise ProgramError(f"Cannot map parse node '{data}' to an alternative of rule "
                           f"'{self.nonterminals[lhs]}'.")

    # ------------------------------------------------------------------ printing
    def format(self, prods: tuple[int, ...], values: tuple[Any, ...]) -> str:
        """Program text of a preorder production sequence (iterative; any depth).

        Examples
        --------
        >>> g = Grammar.load("tiny")                  # productions: add, mul, sin, var, one
        >>> g.format((0, 3, 2, 4), (None, "x", None, None))
        '(x + sin(1))'
        """
        stack: list[str] = []
        productions = self.productions
        sep = " " if self._compiled.spaced else ""
        for i in range(len(prods) - 1, -1, -1):
            p = productions[prods[i]]
            if p.op.kind == KIND_FUNCTION or p.children:
                kids = [stack.pop() for _ in p.children]
            else:
                kids = []
            pieces: list[str] = []
            for kind, payload in p.template:
                if kind == PIECE_LITERAL:
                    pieces.append(payload)
                elif kind == PIECE_CHILD:
                    pieces.append(kids[payload])
                else:
                    v = values[i]
                    pieces.append(repr(float(v)) if p.op.kind == KIND_CONSTANT else str(v))
            stack.append(_join(pieces, sep))
        return stack[0] if stack else ""

    # ------------------------------------------------------------------ learning weights
    def fit_weights(self, programs: Iterable[Program], pseudocount: float = 1.0) -> Grammar:
        """Return a grammar whose weights are Dirichlet-smoothed production counts.

        The weight of production r becomes ``count(r) + pseudocount`` (normalised within its
        rule), the posterior mean of the rule probabilities under a symmetric
        Dirichlet(pseudocount) prior given the corpus.

        Examples
        --------
        >>> g = Grammar.load("koza")
        >>> corpus = [g.parse("(x + x)"), g.parse("x"), g.parse("x")]
        >>> fitted = g.fit_weights(corpus, pseudocount=0.5)
        >>> [round(float(w), 3) for w in fitted.probs[[0, 8]]]  # add, var
        [0.158, 0.474]

        Smoothing gives every unused recursive production weight too; with many of them a
        large pseudocount can make the fitted grammar inconsistent (ρ ≥ 1), which raises.
        """
        if not (math.isfinite(pseudocount) and pseudocount >= 0):
            raise WeightError(f"pseudocount must be a finite number >= 0; got {pseudocount}.")
        counts = np.zeros(len(self.productions))
        for prog in programs:
            if prog.grammar.fingerprint != self.fingerprint:
                raise ProgramError(f"fit_weights got a program of another grammar: {prog}.")
            np.add.at(counts, list(prog.prods), 1.0)
        keyed = {f"{p.rule}.{p.alias}": 0.0 for p in self.productions}
        for p in self.productions:
            keyed[f"{p.rule}.{p.alias}"] += counts[p.id] + pseudocount
        return Grammar(self._text, keyed, name=self._name)

    # ------------------------------------------------------------------ misc
    @property
    def text(self) -> str:
        """The Lark grammar text.

        Examples
        --------
        >>> print(Grammar.load("tiny").text.splitlines()[5])
        e: "(" e "+" e ")"  -> add   // @weight 2
        """
        return self._text

    @property
    def name(self) -> str:
        """The grammar's name (file name for loaded grammars).

        Examples
        --------
        >>> Grammar.load("tiny").name, Grammar.from_string('start: "1" -> one').name
        ('tiny.lark', '<string>')
        """
        return self._name

    @property
    def weight_overrides(self) -> dict[str, float]:
        """The ``weights`` given at construction (a copy): alias or ``"rule.alias"`` -> raw
        weight, replacing the file's ``// @weight`` annotations; ``{}`` when none were given.
        ``Grammar(g.text, g.weight_overrides, name=g.name)`` rebuilds ``g``.

        Examples
        --------
        >>> g = Grammar.load("arith").with_weights({"sin": 2.0})
        >>> g.weight_overrides
        {'sin': 2.0}
        >>> Grammar.load("arith").weight_overrides
        {}
        """
        return dict(self._overrides)

    @property
    def value_patterns(self) -> dict[str, str]:
        """The regular expression of each value terminal (a copy), keyed by terminal name:
        what an input name or a constant of a leaf must match to be written in this grammar.

        Examples
        --------
        >>> Grammar.load("koza").value_patterns
        {'NAME': '[a-z_][a-z0-9_]*'}
        """
        return dict(self._compiled.value_patterns)

    def __repr__(self) -> str:
        return (f"Grammar({self._name!r}, {len(self.productions)} productions, "
                f"ρ={self.spectral_radius:.3g})")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self._text, self._overrides, self._name))


def _rebuild(text: str, weights: dict[str, float], name: str) -> Grammar:
    key = (text, tuple(sorted(weights.items())))
    if key not in _CACHE:
        _CACHE[key] = Grammar(text, weights, name=name)
    return _CACHE[key]


def _join(pieces: list[str], sep: str) -> str:
    if not sep:
        return "".join(pieces)
    out = pieces[0] if pieces else ""
    for prev, cur in itertools.pairwise(pieces):
        tight = (prev.endswith("(") or cur in (")", ",") or cur.startswith(")")
                 or (cur == "(" and prev[-1:].isalnum()))
        out += cur if tight else sep + cur
    return out

