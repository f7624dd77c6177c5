"""ppl: programs as random variables.

A program φ is drawn from a grammar prior (:class:`ProgramPrior` over a :class:`Grammar`)
and run on inputs like a function.

Examples
--------
>>> import numpy as np
>>> import ppl
>>> g = ppl.Grammar.load("arith")
>>> prior = ppl.ProgramPrior(g, inputs=["x"], max_depth=4)
>>> f = prior.sample(rng=np.random.default_rng(1))
>>> f(np.linspace(0, 1, 5)).shape
(5,)
"""

from ppl import backend, math
from ppl.backend import dist
from ppl.errors import (
    DataError,
    GrammarError,
    InitializationError,
    ModelError,
    PPLError,
    PriorError,
    ProgramError,
    SupportError,
)
from ppl.grammar import Grammar, bundled_grammars
from ppl.models import regression
from ppl.primitives import deterministic, factor, param, plate, sample
from ppl.prior import ConstantPrior, ProgramPrior
from ppl.program import Program
from ppl.world import World

__all__ = [
    "ConstantPrior",
    "DataError",
    "Grammar",
    "GrammarError",
    "InitializationError",
    "ModelError",
    "PPLError",
    "PriorError",
    "Program",
    "ProgramError",
    "ProgramPrior",
    "SupportError",
    "World",
    "backend",
    "bundled_grammars",
    "deterministic",
    "dist",
    "factor",
    "math",
    "param",
    "plate",
    "regression",
    "sample",
]

__version__ = "0.1.0"
