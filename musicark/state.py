"""`state.sqlite`: what the archive holds and did (store, ledger, releases, swarm history).

Each domain owns its tables and migrates them itself through `migrate_domain`, so
domains add tables without sharing one migration sequence.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from musicark.errors import ArchiveError


def connect_state(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open `state.sqlite` in autocommit mode (callers open their own transactions)."""
    try:
        if readonly:
            if not path.exists():
                raise ArchiveError(f"no archive state at {path}")
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        else:
            conn = sqlite3.connect(path, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_versions"
                " (domain TEXT PRIMARY KEY, version INTEGER NOT NULL)"
            )
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA foreign_keys=ON")
    except sqlite3.DatabaseError as exc:
        raise ArchiveError(f"{path}: not a usable state database ({exc})") from None
    return conn


def migrate_domain(conn: sqlite3.Connection, domain: str, migrations: Sequence[str]) -> int:
    """Apply `migrations[i]` (SQL scripts, in order) that `domain` has not applied yet."""
    row = conn.execute("SELECT version FROM schema_versions WHERE domain = ?", (domain,)).fetchone()
    current = row[0] if row else 0
    for number, script in enumerate(migrations, start=1):
        if number <= current:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            again = conn.execute(
                "SELECT version FROM schema_versions WHERE domain = ?", (domain,)
            ).fetchone()
            if again and again[0] >= number:  # another process migrated meanwhile
                conn.execute("COMMIT")
                continue
            for statement in script.split(";\n"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_versions (domain, version) VALUES (?, ?)"
                " ON CONFLICT(domain) DO UPDATE SET version = excluded.version",
                (domain, number),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        current = number
    return current
