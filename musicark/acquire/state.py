"""Acquire's tables in state.sqlite (domain "acquire") and the run lock.

- `acquire_ledger`: one row per offer (`source:key`) with its latest outcome, and one
  `track:<id>` row per plan track that no source offered (`error_not_available`).
- `acquire_provenance`: where each stored rendition came from: source, URL, ETag,
  Last-Modified, fetch time, the licence the source stated and the rights it implies.
- `acquire_runs`: one row per run with its JSON summary.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

from musicark.archive import Archive
from musicark.errors import ArchiveError
from musicark.locks import exclusive
from musicark.sqlite import transaction
from musicark.state import migrate_domain

__all__ = [
    "DOMAIN",
    "acquired_rights",
    "connect",
    "counts",
    "record",
    "run_lock",
    "statuses",
    "transaction",
]

DOMAIN = "acquire"

MIGRATIONS = [
    """
CREATE TABLE acquire_runs (
    id          INTEGER PRIMARY KEY,
    started     TEXT NOT NULL,
    finished    TEXT,
    sources     TEXT NOT NULL,
    summary     TEXT                      -- JSON, as `musicark acquire --json` prints it
);
CREATE TABLE acquire_ledger (
    offer_key   TEXT PRIMARY KEY,         -- source:key, or track:<id> for tracks nobody offers
    source      TEXT,
    track_id    INTEGER,
    url         TEXT,
    size        INTEGER,
    sha256      TEXT,
    status      TEXT NOT NULL,
    reason      TEXT,
    run_id      INTEGER,
    at          TEXT NOT NULL
);
CREATE INDEX acquire_ledger_track ON acquire_ledger(track_id) WHERE track_id IS NOT NULL;
CREATE INDEX acquire_ledger_status ON acquire_ledger(status);
CREATE TABLE acquire_provenance (
    sha256        TEXT NOT NULL,
    offer_key     TEXT NOT NULL,
    source        TEXT NOT NULL,
    url           TEXT,
    etag          TEXT,
    last_modified TEXT,
    fetched_at    TEXT NOT NULL,
    licence       TEXT,
    rights        TEXT,                   -- from the licence; applies when the catalogue says unknown
    track_id      INTEGER,
    PRIMARY KEY (sha256, offer_key)
) WITHOUT ROWID
""",
]

LedgerRow = tuple[str, str | None, int | None, str | None, int | None, str | None, str, str, int]


def connect(archive: Archive, *, readonly: bool = False) -> sqlite3.Connection:
    """state.sqlite with acquire's tables (and the store's, which acquire reads) migrated."""
    from musicark.store import schema as store_schema

    conn = store_schema.connect(archive, readonly=readonly)
    if not readonly:
        migrate_domain(conn, DOMAIN, MIGRATIONS)
    return conn


def record(conn: sqlite3.Connection, rows: Iterable[LedgerRow]) -> None:
    """Upsert (offer_key, source, track_id, url, size, sha256, status, reason, run_id)."""
    from musicark.units import now

    at = now()
    conn.executemany(
        "INSERT INTO acquire_ledger (offer_key, source, track_id, url, size, sha256, status,"
        " reason, run_id, at) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(offer_key) DO UPDATE SET"
        " source=excluded.source, track_id=excluded.track_id, url=excluded.url,"
        " size=excluded.size, sha256=excluded.sha256, status=excluded.status,"
        " reason=excluded.reason, run_id=excluded.run_id, at=excluded.at",
        [(*row, at) for row in rows],
    )


def statuses(conn: sqlite3.Connection, keys: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        marks = ",".join("?" * len(chunk))
        for key, status in conn.execute(
            f"SELECT offer_key, status FROM acquire_ledger WHERE offer_key IN ({marks})", chunk
        ):
            out[key] = status
    return out


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT status, count(*) FROM acquire_ledger GROUP BY status"))


def acquired_rights(conn: sqlite3.Connection, sha256s: Sequence[str]) -> dict[str, str]:
    """The rights the acquiring source's licence gives each blob (where one was stated).

    `pack` uses them when the catalogue's rights for the track are missing or `unknown`;
    anything that does not allow redistribution keeps the blob dark. Empty for an archive
    that never ran `acquire`; the latest fetch wins where a blob came twice.
    """
    has = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'acquire_provenance'"
    ).fetchone()
    out: dict[str, str] = {}
    if not has:
        return out
    for i in range(0, len(sha256s), 500):
        chunk = list(sha256s[i : i + 500])
        marks = ",".join("?" * len(chunk))
        for sha, rights in conn.execute(
            f"SELECT sha256, rights FROM acquire_provenance WHERE sha256 IN ({marks})"
            " AND rights IS NOT NULL ORDER BY fetched_at",
            chunk,
        ):
            out[sha] = rights
    return out


def run_lock(folder: Path) -> AbstractContextManager[None]:
    """One acquire at a time per archive: a second run refuses instead of double-fetching."""
    return exclusive(
        folder / "acquire.lock",
        lambda pid: ArchiveError(
            f"another `musicark acquire` is running on this archive (pid {pid}); "
            "wait for it to finish"
        ),
    )
