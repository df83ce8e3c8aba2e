"""The ingest ledger: one row per path with its latest outcome, and the outcome vocabulary.

Outcomes (the `status` column):

- `success`: stored and matched to a catalogue track
- `unmatched`: stored, no catalogue track found (kept all the same)
- `damaged`: stored, but truncated or partly undecodable (the reason says how)
- `duplicate`: the same bytes are already in the store (a new provenance record only)
- `error_empty`, `error_not_audio`, `error_corrupt`: not stored, the file is not usable audio
- `error_crashed`: not stored, the worker reading it died outright (a codec crash, the
  out-of-memory killer); the rest of the run went on
- `error_unreadable`, `error_not_regular`, `error_changed`, `error_disk_full`, `error_io`:
  not stored this time; the next run tries again

Final outcomes are not retried while the path keeps its size and mtime.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

STORED = ("success", "unmatched", "damaged")
FINAL = (*STORED, "duplicate", "error_empty", "error_not_audio", "error_corrupt", "error_crashed")
RETRY = ("error_unreadable", "error_not_regular", "error_changed", "error_disk_full", "error_io")
STATUSES = (*FINAL, *RETRY)


class Rejected(Exception):
    """A file that gets a ledger entry instead of a blob (internal to the ingest pipeline)."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def path_key(path: str | bytes) -> bytes:
    """The exact bytes of an absolute path: names need not be valid UTF-8."""
    return os.fsencode(os.path.abspath(path))


def display(path: str | bytes) -> str:
    """A one-line printable form of a path: invalid bytes as \\xNN, control characters escaped."""
    raw = os.fsencode(path)
    text = raw.decode("utf-8", "backslashreplace")
    if not text.isprintable():
        text = "".join(
            c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text
        )
    return text


@dataclass(frozen=True)
class Known:
    size: int | None
    mtime_ns: int | None
    sha256: str | None
    status: str


def lookup(conn: sqlite3.Connection, keys: Sequence[bytes]) -> dict[bytes, Known]:
    out: dict[bytes, Known] = {}
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        marks = ",".join("?" * len(chunk))
        for key, size, mtime, sha, status in conn.execute(
            f"SELECT path_key, size, mtime_ns, sha256, status FROM ledger WHERE path_key IN ({marks})",
            chunk,
        ):
            out[bytes(key)] = Known(size, mtime, sha, status)
    return out


Row = tuple[bytes, str, int | None, int | None, str | None, str, str | None, str | None, int, str]


def record(conn: sqlite3.Connection, rows: Iterable[Row]) -> None:
    """Upsert (path_key, path, size, mtime_ns, sha256, status, reason, source, run_id, at)."""
    conn.executemany(
        "INSERT INTO ledger (path_key, path, size, mtime_ns, sha256, status, reason, source,"
        " run_id, at) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(path_key) DO UPDATE SET"
        " path=excluded.path, size=excluded.size, mtime_ns=excluded.mtime_ns,"
        " sha256=excluded.sha256, status=excluded.status, reason=excluded.reason,"
        " source=excluded.source, run_id=excluded.run_id, at=excluded.at",
        list(rows),
    )


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT status, count(*) FROM ledger GROUP BY status").fetchall())
