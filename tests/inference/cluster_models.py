"""A model for the cluster tests whose chain kills its own worker process once."""

from __future__ import annotations

import os
from typing import Any

from tests.inference.checkpoint_models import regression

KILL_FLAG = "PPL_TEST_KILL_FLAG"
"""Environment variable: a file path; the first chain on a Dask worker to create it exits."""


def dies_once(x: Any, y: Any = None) -> None:
    """:func:`regression`, except that the first call on a Dask worker, in one chain only,
    kills the worker's process (``os._exit``) as a crashed machine would."""
    flag = os.environ.get(KILL_FLAG)
    if flag:
        from distributed import get_worker

        try:
            get_worker()
        except ValueError:  # not on a worker: the caller's own process
            pass
        else:
            try:
                os.close(os.open(flag, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                pass
            else:
                os._exit(1)
    regression(x, y)
