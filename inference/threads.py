"""One torch thread and one BLAS thread for the enclosed code: how chains, fits and
simulations run.

Our tensors and arrays hold a few dozen to a few thousand numbers, where intra-op threads
only add synchronisation (measured 6x slower per NUTS sweep with 2 torch threads on a busy
2-core machine, 10x per SVI step), and where several worker processes share the cores, a
BLAS library's default thread per core spins against the sibling workers (two program
chains on 2 cores ran their search at 0.4x the sweeps: docs/benchmarks.md, "Chain processes
and BLAS threads"). Both settings are restored on exit.

Examples
--------
>>> import torch
>>> before = torch.get_num_threads()
>>> with one_thread():
...     torch.get_num_threads()
1
>>> torch.get_num_threads() == before
True
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from threadpoolctl import threadpool_limits

__all__ = ["one_thread"]


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """One torch thread and one thread per BLAS/OpenMP library (``threadpoolctl``) inside;
    the caller's settings restored on exit (module docstring)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(threads)
