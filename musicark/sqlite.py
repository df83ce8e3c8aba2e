"""What the catalogue and the state database share: opening SQLite files and running scripts."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def open_sqlite(
    path: Path, *, readonly: bool, journal_mode: str, busy_ms: int
) -> sqlite3.Connection:
    """A connection in autocommit mode (callers open their own transactions).

    Read-only connections never create the file; raises `FileNotFoundError` then, and
    `sqlite3.DatabaseError` for a file that is not a database.
    """
    if readonly:
        if not path.exists():
            raise FileNotFoundError(path)
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    else:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute(f"PRAGMA journal_mode={journal_mode}")
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA busy_timeout={busy_ms}")
    return conn


def run_script(conn: sqlite3.Connection, sql: str) -> None:
    """Run a migration script inside the caller's transaction (executescript would commit)."""
    for statement in sql.split(";\n"):
        if statement.strip():
            conn.execute(statement)


@contextmanager
def transaction(
    conn: sqlite3.Connection, *, immediate: bool = True
) -> Iterator[sqlite3.Connection]:
    """One transaction on an autocommit connection: committed when the block ends, rolled
    back when it raises (anything, `KeyboardInterrupt` included).

    `immediate` takes the write lock at the start, so two writers wait on `busy_timeout`
    instead of failing when the first one upgrades its read lock.
    """
    conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
