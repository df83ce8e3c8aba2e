"""`state.sqlite`: what the archive holds and did (store, ledger, releases, swarm history).

Each domain owns its tables and migrates them itself through `migrate_domain`, so
domains add tables without sharing one migration sequence.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from musicark.errors import ArchiveError
from musicark.sqlite import open_sqlite, run_script, transaction


def connect_state(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open `state.sqlite` in autocommit mode (callers open their own transactions)."""
    try:
        conn = open_sqlite(path, readonly=readonly, journal_mode="WAL", busy_ms=30000)
        if not readonly:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_versions"
                " (domain TEXT PRIMARY KEY, version INTEGER NOT NULL)"
            )
        conn.execute("PRAGMA foreign_keys=ON")
    except FileNotFoundError:
        raise ArchiveError(f"no archive state at {path}") from None
    except sqlite3.DatabaseError as exc:
        raise ArchiveError(f"{path}: not a usable state database ({exc})") from exc
    return conn


def migrate_domain(conn: sqlite3.Connection, domain: str, migrations: Sequence[str]) -> int:
    """Apply `migrations[i]` (SQL scripts, in order) that `domain` has not applied yet."""
    row = conn.execute("SELECT version FROM schema_versions WHERE domain = ?", (domain,)).fetchone()
    current = row[0] if row else 0
    for number, script in enumerate(migrations, start=1):
        if number <= current:
            continue
        with transaction(conn):
            again = conn.execute(
                "SELECT version FROM schema_versions WHERE domain = ?", (domain,)
            ).fetchone()
            if again and again[0] >= number:  # another process migrated meanwhile
                current = again[0]
                continue
            run_script(conn, script)
            conn.execute(
                "INSERT INTO schema_versions (domain, version) VALUES (?, ?)"
                " ON CONFLICT(domain) DO UPDATE SET version = excluded.version",
                (domain, number),
            )
        current = number
    return current
