"""Shared fixtures: every test starts from the same global random state (CONVENTIONS 11).

Library code never touches global generators (CONVENTIONS 3); the seeding here only makes
tests that go through Pyro's conventions (``ProgramPrior.sample()`` without ``rng`` draws its
seed from torch's global generator) reproducible.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

REPO = Path(__file__).resolve().parents[1]
# tests/ppl mirrors the package (CONVENTIONS 11) but has no __init__.py, so with tests/ on
# sys.path (pytest puts it there for this conftest) `import ppl` could resolve to the
# namespace package tests/ppl when pytest is started as a script (`python -m pytest` puts
# the working directory first and hides this). The repository root goes first.
if sys.path[:1] != [str(REPO)]:
    sys.path.insert(0, str(REPO))

torch.set_num_threads(1)  # tensors here hold dozens of numbers: threads only add overhead
# and one BLAS thread: two xdist workers on two cores would otherwise each spin a BLAS
# thread per core against the other (as chain processes did, docs/benchmarks.md)
threadpool_limits(limits=1, user_api="blas")

SEED = 20240607
"""The global seed every test starts from."""


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    """Seed torch, numpy's legacy global generator and Python's ``random`` per test."""
    random.seed(SEED)
    np.random.seed(SEED)  # the legacy global state, on purpose
    torch.manual_seed(SEED)


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh numpy Generator with a fixed seed."""
    return np.random.default_rng(12345)
