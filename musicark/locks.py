"""One writer at a time: an exclusive flock on a file in the archive.

An flock dies with its process, so a run killed with -9 never leaves a stale lock; the
holder's pid is written into the file so that the refusal can name it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from musicark.errors import MusicarkError


@contextmanager
def exclusive(path: Path, busy: Callable[[str], MusicarkError]) -> Iterator[None]:
    """Hold `path` (made, with its folder) for the block; raise `busy(pid)` at once when
    another process holds it (pid "?" when unknown)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            other = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise busy(other) from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)
