"""Paths the user names: say what a path is when it is not what a command needs."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import stat
from pathlib import Path

from musicark.errors import UsageError

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISREG, "a file"),
)


def path_kind(path: Path | str) -> str:
    """'a file', 'a folder', 'a FIFO (named pipe)', ..., 'missing' or 'a dangling symlink'."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "a dangling symlink" if os.path.islink(path) else "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    return next((kind for test, kind in _KINDS if test(mode)), "not a file")


def input_file(path: Path | str, *, what: str = "file") -> Path:
    """`path` if it is a regular file (symlinks followed); UsageError saying what it is if not.

    A path named on the command line that is missing or of the wrong kind is a usage error
    (exit code 2), found before anything is read or changed.
    """
    path = Path(path)
    kind = path_kind(path)
    if kind == "a file":
        return path
    if kind == "missing":
        raise UsageError(f"{path}: no such {what}")
    raise UsageError(f"{path}: is {kind}, not a {what}")


_libc: ctypes.CDLL | None = None


def sync_filesystem(path: Path) -> None:
    """Flush every written byte and rename of the filesystem holding `path` (syncfs(2)).

    One call per batch costs far less than an fsync per file; falls back to os.sync().
    """
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        syncfs = getattr(_libc, "syncfs", None)
        if syncfs is None or syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)
