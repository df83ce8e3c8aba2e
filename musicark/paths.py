"""Paths the user names: say what a path is when it is not what a command needs."""

from __future__ import annotations

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
