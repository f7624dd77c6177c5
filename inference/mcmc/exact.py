"""Exact transition matrices of program moves on finite program spaces (TESTING.md P1).

A move's code is run down *every* path of its choices by re-execution: a scripted chooser
replays a prefix of choices and, at the first new choice point, lists every option with its
probability (uniform indices; every subtree of the budgeted prior with its exact
probability; every input name). The resulting matrix is the move's real transition kernel,
so ``π T = π`` and detailed balance can be checked to 1e-12.

With ``structural=True`` the same is done for moves over tree *structures* whose constants
are integrated out (MOVES.md move 5; the collapsed mode): constants are a placeholder 0.0,
never a choice, and subtrees are listed with their structure probabilities
(:func:`structures`), so grammars with constants have finite structure spaces too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from inference.mcmc.moves import Chooser, Proposal
from ppl.errors import SupportError
from ppl.ops import KIND_CONSTANT, KIND_INPUT
from ppl.prior import ProgramPrior
from ppl.program import Program

__all__ = ["proposal_paths", "structures", "transition_matrix"]

PLACEHOLDER = 0.0
"""The value of every constant leaf of an enumerated structure."""


class _Branch(Exception):
    def __init__(self, options: list[tuple[Any, float]]) -> None:
        self.options = options


class _ScriptedChooser:
    """Replays ``script`` (option indices); raises _Branch at the first unscripted choice."""

    def __init__(self, script: list[int], cache: dict[Any, list[tuple[Any, float]]],
                 structural: bool = False) -> None:
        self.script = script
        self.pos = 0
        self.log_prob = 0.0
        self.cache = cache
        self.structural = structural

    def _choose(self, key: Any, make: Callable[[], list[tuple[Any, float]]]) -> Any:
        options = self.cache.get(key)
        if options is None:
            options = self.cache[key] = make()
        if self.pos == len(self.script):
            raise _Branch(options)
        value, lp = options[self.script[self.pos]]
        self.pos += 1
        self.log_prob += lp
        return value

    def index(self, n: int) -> int:
        return int(self._choose(("index", n), lambda: [(i, -math.log(n)) for i in range(n)]))

    def subtree(self, prior: ProgramPrior, nonterminal: int, depth_budget: int | None,
                size_budget: int | None) -> tuple[tuple[int, ...], tuple[Any, ...]]:
        def make() -> list[tuple[Any, float]]:
            log_mass = prior.tables.log_mass(nonterminal, depth_budget, size_budget)
            if self.structural:
                return [((p, v), prior.subtree_log_prob(p, v, False) - log_mass)
                        for p, v in structures(prior, nonterminal, depth_budget, size_budget)]
            input_logp = {n: prior.input_log_prob(n) for n in prior.inputs
                          if prior.input_log_prob(n) > -math.inf}
            return [((p, v), lp - log_mass) for p, v, lp, _ in prior.tables.enumerate(
                input_logp, nonterminal, depth_budget, size_budget)]
        out: tuple[tuple[int, ...], tuple[Any, ...]] = self._choose(
            ("subtree", id(prior), nonterminal, depth_budget, size_budget), make)
        return out

    def leaf_value(self, prior: ProgramPrior, production: int) -> Any:
        kind = prior.grammar.productions[production].op.kind
        if kind == KIND_CONSTANT and self.structural:
            return PLACEHOLDER
        if kind == KIND_CONSTANT:
            raise SupportError("Exact transition matrices need a grammar without constants "
                               "(or structural=True).")
        if kind != KIND_INPUT:
            return None
        return self._choose(("input", id(prior)),
                            lambda: [(n, prior.input_log_prob(n)) for n in prior.inputs
                                     if prior.input_log_prob(n) > -math.inf])


def structures(prior: ProgramPrior, nonterminal: int | None = None,
               depth_budget: int | None = None, size_budget: int | None = None
               ) -> list[tuple[tuple[int, ...], tuple[Any, ...]]]:
    """Every tree structure of ``nonterminal`` (default: the start symbol, within the
    prior's limits) with positive probability, as (productions, values) in preorder;
    constants are ``PLACEHOLDER``. Finite when a depth or size budget applies.

    Examples
    --------
    >>> from ppl import ProgramPrior
    >>> len(structures(ProgramPrior("arith", inputs=["x"], max_depth=1)))  # x, a constant
    2
    """
    if nonterminal is None:
        nonterminal = prior.grammar.start
        depth_budget, size_budget = prior.max_depth, prior.max_size
    if depth_budget is None and size_budget is None:
        raise SupportError("structures() needs a depth or size limit.")
    g = prior.grammar
    memo: dict[tuple[int, int | None, int | None],
               list[tuple[tuple[int, ...], tuple[Any, ...]]]] = {}

    def expand(a: int, b: int | None, s: int | None
               ) -> list[tuple[tuple[int, ...], tuple[Any, ...]]]:
        if (b is not None and b < 1) or (s is not None and s < 1):
            return []
        if (a, b, s) in memo:
            return memo[(a, b, s)]
        out: list[tuple[tuple[int, ...], tuple[Any, ...]]] = []
        for r, p in enumerate(g.productions):
            if p.lhs != a or g.probs[r] == 0:
                continue
            if p.op.kind == KIND_INPUT:
                out += [((r,), (n,)) for n in prior.inputs if prior.input_log_prob(n) > -math.inf]
            elif p.op.kind == KIND_CONSTANT:
                out.append(((r,), (PLACEHOLDER,)))
            else:
                partial: list[tuple[tuple[int, ...], tuple[Any, ...]]] = [((r,), (None,))]
                for c in p.children:
                    kids = expand(c, None if b is None else b - 1, None if s is None else s - 1)
                    partial = [(pp + cp, pv + cv) for pp, pv in partial for cp, cv in kids
                               if s is None or len(pp) + len(cp) <= s]
                out += partial
        memo[(a, b, s)] = out
        return out

    return expand(nonterminal, depth_budget, size_budget)


def proposal_paths(move: Callable[[Chooser, ProgramPrior, Program], Proposal | None],
                   prior: ProgramPrior, phi: Program, structural: bool = False
                   ) -> list[tuple[float, Proposal | None]]:
    """Every choice path of ``move`` from ``phi``: (path probability, its outcome)."""
    out: list[tuple[float, Proposal | None]] = []
    cache: dict[Any, list[tuple[Any, float]]] = {}
    stack: list[list[int]] = [[]]
    while stack:
        script = stack.pop()
        chooser = _ScriptedChooser(script, cache, structural)
        try:
            result = move(chooser, prior, phi)
        except _Branch as branch:
            stack.extend(script + [k] for k in range(len(branch.options)))
            continue
        out.append((math.exp(chooser.log_prob), result))
    return out


def transition_matrix(move: Callable[[Chooser, ProgramPrior, Program], Proposal | None],
                      prior: ProgramPrior, programs: Sequence[Program],
                      log_target: Callable[[Program], float],
                      check_density: bool = True, structural: bool = False) -> np.ndarray:
    """The exact MH transition matrix T[i, j] of ``move`` on ``programs`` targeting
    ``log_target`` (an unnormalised log π over the same programs).

    With ``check_density``, every path's reported log q(φ' | φ) must equal the log
    probability of the choices it made (to 1e-9), or AssertionError is raised. With
    ``structural`` the programs are structures (:func:`structures`) and ``move`` must
    integrate the constants out of its densities.
    """
    index = {p: i for i, p in enumerate(programs)}
    lt = np.array([log_target(p) for p in programs])
    t = np.zeros((len(programs), len(programs)))
    for i, phi in enumerate(programs):
        for prob, prop in proposal_paths(move, prior, phi, structural):
            if prop is None:
                t[i, i] += prob
                continue
            if check_density and abs(math.log(prob) - prop.log_q_fwd) > 1e-9:
                raise AssertionError(f"log q_fwd {prop.log_q_fwd} != path log prob "
                                     f"{math.log(prob)} for {phi} -> {prop.program}")
            j = index[prop.program]
            log_alpha = lt[j] - lt[i] + prop.log_q_rev - prop.log_q_fwd
            alpha = 1.0 if log_alpha >= 0 else math.exp(log_alpha)
            t[i, j] += prob * alpha
            t[i, i] += prob * (1 - alpha)
    return t
