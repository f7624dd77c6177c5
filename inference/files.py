"""Files written atomically: checkpoints (:mod:`inference.checkpoint`) and trained
proposals (:mod:`inference.amortized.persist`).

Examples
--------
>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "note.txt"
>>> atomic_write(path, lambda f: f.write(b"whole"))
>>> path.read_bytes()
b'whole'
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["atomic_write"]


def atomic_write(path: str | os.PathLike[str], dump: Callable[[BinaryIO], Any]) -> None:
    """Write a file atomically: ``dump`` writes into a temporary file in the same folder,
    which is flushed and fsynced, then renamed over ``path`` (``os.replace``), then the
    folder is fsynced; a failed write removes the temporary file. A reader sees the old
    file or the new one, never a part."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            dump(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:
        folder = os.open(target.parent, os.O_RDONLY)
    except OSError:  # a folder that cannot be opened (some platforms): the rename stands
        return
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
