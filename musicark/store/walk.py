"""Walking the paths given to ingest: files and folders, in a stable order, lazily.

Memory stays bounded by the number of folders (to detect loops through symlinks), never
by the number of files. A path given twice, or a file also found inside a folder given,
is visited once. Anything that cannot be visited comes back as an `Issue`.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from musicark.store.ledger import display, path_key


@dataclass(frozen=True, slots=True)
class Entry:
    path: str
    key: bytes
    size: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class Issue:
    path: str
    key: bytes
    status: str
    reason: str


@dataclass
class WalkStats:
    repeated: int = 0


def _issue_for(path: str, exc: OSError) -> Issue:
    if exc.errno == errno.ELOOP:
        reason = "symlink loop"
    elif exc.errno == errno.ENOENT:
        reason = "no such file (or a dangling symlink)"
    else:
        reason = exc.strerror or str(exc)
    return Issue(path, path_key(path), "error_unreadable", f"cannot read: {reason}")


def walk(
    paths: Sequence[str | os.PathLike[str]], stats: WalkStats | None = None
) -> Iterator[Entry | Issue]:
    """Every regular file under `paths` (files and folders), each once."""
    stats = stats if stats is not None else WalkStats()
    explicit: set[bytes] = set()
    given: list[str] = []
    for p in paths:
        text = os.fspath(p)
        key = path_key(text)
        if key in explicit:
            stats.repeated += 1
            continue
        explicit.add(key)
        given.append(os.path.abspath(text))
    seen_dirs: set[tuple[int, int]] = set()
    for top in given:
        yield from _visit(top, seen_dirs, explicit, stats, top_level=True)


def _visit(
    path: str,
    seen_dirs: set[tuple[int, int]],
    explicit: set[bytes],
    stats: WalkStats,
    *,
    top_level: bool,
) -> Iterator[Entry | Issue]:
    try:
        st = os.stat(path)
    except OSError as exc:
        yield _issue_for(path, exc)
        return
    if stat.S_ISDIR(st.st_mode):
        ident = (st.st_dev, st.st_ino)
        if ident in seen_dirs:
            if top_level:
                stats.repeated += 1
            return
        seen_dirs.add(ident)
        try:
            with os.scandir(path) as it:
                names = sorted(os.fsencode(e.name) for e in it)
        except OSError as exc:
            yield _issue_for(path, exc)
            return
        for name in names:
            child = os.path.join(path, os.fsdecode(name))
            if path_key(child) in explicit:
                continue  # visited (or to be visited) as given
            yield from _visit(child, seen_dirs, explicit, stats, top_level=False)
        return
    if not stat.S_ISREG(st.st_mode):
        kind = (
            "a FIFO"
            if stat.S_ISFIFO(st.st_mode)
            else "a socket"
            if stat.S_ISSOCK(st.st_mode)
            else "a device"
        )
        yield Issue(path, path_key(path), "error_not_regular", f"not a regular file: {kind}")
        return
    yield Entry(path, path_key(path), st.st_size, st.st_mtime_ns)


__all__ = ["Entry", "Issue", "WalkStats", "display", "walk"]
