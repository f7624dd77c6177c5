"""Compile Lark grammar text into the productions of a probabilistic grammar.

Lark checks the syntax of a grammar and that every symbol is defined; this module checks
what a *prior* needs on top (DESIGN §4): every alternative names an operator of
:mod:`ppl.ops` by its alias, regex terminals carry a value distribution (input name or
constant), weights are valid, every nonterminal is productive. Each error names the rule and
shows its grammar line.
"""

from __future__ import annotations

import math
import re
from typing import Any, NamedTuple

import lark
from lark.grammar import NonTerminal, Terminal
from lark.lexer import PatternStr

from ppl.errors import GrammarError, GrammarSyntaxError, WeightError
from ppl.ops import KIND_CONSTANT, KIND_FUNCTION, KIND_INPUT, KIND_LITERAL, OPS, Op

PIECE_LITERAL = 0
PIECE_CHILD = 1
PIECE_VALUE = 2

_RULE_DEF = re.compile(r"^\s*[?!]?([_a-z][_a-z0-9]*)\s*(?:\.\s*-?\d+\s*)?:")
_BLOCK_END = re.compile(r"^\s*(?:[?!]?[_a-z][_a-z0-9]*|[_A-Z][_A-Z0-9]*)\s*(?:\.\s*-?\d+\s*)?:"
                        r"|^\s*%")
_ALIAS = re.compile(r"->\s*([_a-z][_a-z0-9]*)")
_WEIGHT = re.compile(r"//\s*@weight\s+(\S+)")


class Production(NamedTuple):
    """One alternative of a nonterminal: ``lhs -> template`` evaluated by ``op``."""

    id: int
    """Position in ``Grammar.productions``."""
    lhs: int
    """Nonterminal id of the left-hand side."""
    rule: str
    """Name of the left-hand side rule."""
    alias: str
    """Operator name (the Lark alias)."""
    op: Op
    """The operator from :data:`ppl.ops.OPS`."""
    children: tuple[int, ...]
    """Nonterminal ids of the child slots, in order."""
    template: tuple[tuple[int, Any], ...]
    """Printing pieces: (PIECE_LITERAL, text), (PIECE_CHILD, j) or (PIECE_VALUE, terminal)."""
    value_terminal: str | None
    """Name of the regex terminal holding the node's value (input or constant leaves)."""
    line: int
    """1-based line of the alternative in the grammar text (0 if unknown)."""


class Compiled(NamedTuple):
    """The result of :func:`compile_text`."""

    nonterminals: tuple[str, ...]
    start: int
    productions: tuple[Production, ...]
    annotated: dict[int, float]
    parser: lark.Lark
    value_patterns: dict[str, str]
    spaced: bool


def show_line(text: str, line: int, source: str, column: int | None = None) -> str:
    """Return ``source:line | text`` (and a caret under ``column``) for error messages."""
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        return f"  in {source}"
    head = f"  {source}:{line} | "
    out = head + lines[line - 1].rstrip()
    if column is not None:
        out += "\n" + " " * (len(head) + column - 1) + "^"
    return out


def _rule_lines(text: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for i, line in enumerate(text.splitlines(), 1):
        m = _RULE_DEF.match(line)
        if m and m.group(1) not in found:
            found[m.group(1)] = i
    return found


def _alias_lines(text: str, source: str = "grammar"
                 ) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], str]]:
    """Map (rule, alias) to its line, and to the raw weight annotation on that line."""
    lines = text.splitlines()
    where: dict[tuple[str, str], int] = {}
    weights: dict[tuple[str, str], str] = {}
    rule: str | None = None
    for i, line in enumerate(lines, 1):
        m = _RULE_DEF.match(line)
        if m:
            rule = m.group(1)
        elif _BLOCK_END.match(line):
            rule = None
        if rule is None:
            continue
        code = line.split("//", 1)[0]
        aliases = _ALIAS.findall(code)
        for alias in aliases:
            where.setdefault((rule, alias), i)
        w = _WEIGHT.search(line)
        if w:
            if len(aliases) != 1:
                raise WeightError(
                    "A '// @weight' annotation must stand on a line with exactly one "
                    f"aliased alternative; this line has {len(aliases)}.\n"
                    + show_line(text, i, source)
                    + "\nPut each weighted alternative on its own line.")
            weights[(rule, aliases[0])] = w.group(1)
    return where, weights


def _translate_lark_error(err: lark.exceptions.LarkError, text: str, source: str) -> GrammarError:
    if isinstance(err, lark.exceptions.UnexpectedInput):
        line = getattr(err, "line", 0) or 0
        column = getattr(err, "column", 0) or 0
        first = str(err).splitlines()[0]
        return GrammarSyntaxError(
            f"Grammar syntax error in {source} at line {line}, column {column}: {first}\n"
            + show_line(text, line, source, column)
            + "\nCheck the rule syntax (Lark EBNF: 'rule: a b -> alias | c -> alias2').")
    msg = str(err)
    m = re.search(r"at line (\d+) column (\d+)", msg)
    if m:  # Lark reports some syntax errors as GrammarError("... at line L column C")
        line, column = int(m.group(1)), int(m.group(2))
        return GrammarSyntaxError(
            f"Grammar syntax error in {source} at line {line}, column {column}: "
            f"{msg.splitlines()[0]}\n" + show_line(text, line, source, column)
            + "\nCheck the rule syntax (Lark EBNF: 'rule: a b -> alias | c -> alias2').")
    rules = _rule_lines(text)
    m = re.search(r"Rule '(\w+)' used but not defined \(in rule (\w+)\)", msg)
    if m:
        used, where = m.groups()
        kind = "terminal" if used.isupper() else "rule"
        return GrammarError(
            f"Undefined {kind} '{used}' used in rule '{where}'.\n"
            + show_line(text, rules.get(where, 0), source)
            + f"\nDefine '{used}' or fix the name.")
    m = re.search(r"Rule '(\w+)' defined more than once", msg)
    if m:
        name = m.group(1)
        lines = [i for i, ln in enumerate(text.splitlines(), 1)
                 if (mm := _RULE_DEF.match(ln)) and mm.group(1) == name]
        shown = "\n".join(show_line(text, i, source) for i in lines)
        return GrammarError(f"Rule '{name}' is defined more than once.\n{shown}\n"
                            "Merge the definitions into one rule with '|' alternatives.")
    return GrammarError(f"Lark rejected the grammar in {source}: {msg}")


def _build_parser(text: str, source: str) -> lark.Lark:
    if "start" not in _rule_lines(text):
        raise GrammarError(
            f"The grammar in {source} has no 'start' rule.\n"
            "Programs are derived from 'start': add e.g. '?start: expr'.")
    try:
        return lark.Lark(text, parser="earley", ambiguity="explicit", lexer="dynamic")
    except lark.exceptions.LarkError as err:
        raise _translate_lark_error(err, text, source) from None


def _resolve_units(rules: dict[str, list[Any]]) -> dict[str, str]:
    """Rules whose only alternative is an unaliased single nonterminal collapse into it."""
    target: dict[str, str] = {}
    for name, alts in rules.items():
        if len(alts) == 1 and alts[0].alias is None and len(alts[0].expansion) == 1 \
                and isinstance(alts[0].expansion[0], NonTerminal):
            target[name] = str(alts[0].expansion[0].name)
    resolved: dict[str, str] = {}
    for name in target:
        seen = {name}
        cur = name
        while cur in target and target[cur] not in seen:
            cur = target[cur]
            seen.add(cur)
        resolved[name] = cur
    return resolved


def compile_text(text: str, source: str) -> Compiled:
    """Compile grammar ``text`` (named ``source`` in messages) into productions.

    Raises
    ------
    GrammarError
        For every fault listed in TESTING.md's grammar section.
    """
    parser = _build_parser(text, source)
    terminals = {t.name: t for t in parser.terminals}
    rules: dict[str, list[Any]] = {}
    for r in parser.rules:
        rules.setdefault(str(r.origin.name), []).append(r)
    units = _resolve_units(rules)
    names = [n for n in rules if n not in units]
    ids = {n: i for i, n in enumerate(names)}
    for unit, tgt in units.items():
        ids[unit] = ids[tgt]
    alias_lines, raw_weights = _alias_lines(text, source)
    rule_lines = _rule_lines(text)
    productions: list[Production] = []
    annotated: dict[int, float] = {}
    value_patterns: dict[str, str] = {}
    for name in names:
        for r in rules[name]:
            prod = _make_production(len(productions), ids, name, r, terminals, text, source,
                                    alias_lines, rule_lines)
            if prod.value_terminal is not None:
                value_patterns[prod.value_terminal] = terminals[prod.value_terminal].pattern.value
            if (name, prod.alias) in raw_weights:
                annotated[prod.id] = _parse_weight(raw_weights[(name, prod.alias)], name,
                                                      prod.alias, prod.line, text, source)
            productions.append(prod)
    spaced = bool(parser.ignore_tokens)
    return Compiled(tuple(names), ids["start"], tuple(productions), annotated, parser,
                    value_patterns, spaced)


def _parse_weight(raw: str, rule: str, alias: str, line: int, text: str, source: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise WeightError(f"Weight '{raw}' of {rule} -> {alias} must be a finite number >= 0.\n"
                          + show_line(text, line, source))
    return value


def _make_production(index: int, ids: dict[str, int], name: str, r: Any,
                     terminals: dict[str, Any], text: str, source: str,
                     alias_lines: dict[tuple[str, str], int],
                     rule_lines: dict[str, int]) -> Production:
    alias = r.alias
    children: list[int] = []
    template: list[tuple[int, Any]] = []
    value_terms: list[str] = []
    for sym in r.expansion:
        if isinstance(sym, NonTerminal):
            template.append((PIECE_CHILD, len(children)))
            children.append(ids[str(sym.name)])
        elif isinstance(sym, Terminal):
            pattern = terminals[sym.name].pattern
            if isinstance(pattern, PatternStr):
                template.append((PIECE_LITERAL, pattern.value))
            else:
                template.append((PIECE_VALUE, sym.name))
                value_terms.append(sym.name)
    line = alias_lines.get((name, alias), rule_lines.get(name, 0)) if alias else \
        rule_lines.get(name, 0)
    where = show_line(text, line, source)
    if alias is None:
        if len(children) == 1 and len(template) == 1:
            alias = "pass"
        else:
            raise GrammarError(
                f"An alternative of rule '{name}' has no alias, so it names no operator.\n"
                f"{where}\nEnd the alternative with '-> op', op one of: "
                f"{', '.join(sorted(OPS))}.")
    op = OPS.get(alias)
    if op is None:
        raise GrammarError(
            f"Rule '{name}' aliases an alternative '-> {alias}', which is not an operator.\n"
            f"{where}\nKnown operators: {', '.join(sorted(OPS))}.")
    if value_terms and op.kind in (KIND_FUNCTION, KIND_LITERAL):
        raise GrammarError(
            f"Regex terminal {value_terms[0]} in rule '{name}' (-> {alias}) has no value "
            f"distribution.\n{where}\nUse a regex terminal only alone in an alternative "
            "aliased '-> var' (an input name) or '-> const' (a constant), or use a string.")
    if op.kind == KIND_FUNCTION and len(children) != op.arity:
        raise GrammarError(
            f"Operator '{alias}' takes {op.arity} argument(s) but the alternative of rule "
            f"'{name}' has {len(children)} nonterminal(s).\n{where}")
    if op.kind in (KIND_INPUT, KIND_CONSTANT) and (children or len(value_terms) != 1):
        raise GrammarError(
            f"Leaf operator '{alias}' in rule '{name}' needs exactly one regex terminal and no "
            f"nonterminals; got {len(value_terms)} terminal(s), {len(children)} "
            f"nonterminal(s).\n{where}")
    if op.kind == KIND_LITERAL and children:
        raise GrammarError(f"Literal operator '{alias}' in rule '{name}' takes no "
                           f"nonterminals.\n{where}")
    return Production(index, ids[name], name, alias, op, tuple(children), tuple(template),
                      value_terms[0] if value_terms else None, line)


def defined_rules(text: str) -> dict[str, int]:
    """Every rule name defined in ``text`` with its line (Lark drops unreachable ones)."""
    return _rule_lines(text)
