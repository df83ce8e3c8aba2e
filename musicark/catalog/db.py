"""Catalogue connections, numbered migrations and the secondary indexes."""

from __future__ import annotations

import errno
import re
import sqlite3
from importlib import resources
from pathlib import Path

from musicark.errors import CatalogError
from musicark.sqlite import open_sqlite, run_script, transaction

# Indexes dropped for bulk loads into an empty catalogue and built once after;
# `ensure_indexes` restores any that an interrupted load left missing.
UNIQUE_INDEXES: dict[str, tuple[str, str]] = {
    "tracks_id": ("tracks", "id"),
    "track_artists_track": ("track_artists", "track_id, position"),
}
INDEXES: dict[str, str] = {
    "tracks_isrc": "tracks(isrc) WHERE isrc IS NOT NULL",
    "tracks_album": "tracks(album_id)",
    "track_artists_artist": "track_artists(artist_id)",
    "albums_upc": "albums(upc) WHERE upc IS NOT NULL",
    "external_ids_value": "external_ids(kind, value)",
}


def storage_reason(exc: BaseException) -> str:
    """A database or file error in one line; a full disk is named as such."""
    text = str(getattr(exc, "strerror", None) or exc).strip()
    text = text.splitlines()[0] if text else type(exc).__name__
    if getattr(exc, "errno", None) == errno.ENOSPC or "full" in text.lower():
        return f"the disk is full ({text})"
    return text


def _migrations() -> list[tuple[int, str]]:
    out = []
    for entry in resources.files("musicark.catalog").joinpath("migrations").iterdir():
        m = re.match(r"^(\d{4})_.*\.sql$", entry.name)
        if m:
            out.append((int(m.group(1)), entry.read_text(encoding="utf-8")))
    return sorted(out)


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the migrations the database lacks, each in its own transaction."""
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    for number, sql in _migrations():
        if number <= current:
            continue
        with transaction(conn):
            run_script(conn, sql)
            conn.execute(f"PRAGMA user_version = {number}")
        current = number
    return int(current)


def ensure_indexes(conn: sqlite3.Connection) -> int:
    """Create missing indexes; returns how many duplicate rows a unique one had to drop.

    Duplicates exist only after a bulk load met the same id in two batches: the row
    read last wins, as it does in an upsert.
    """
    dropped = 0
    for name, (table, columns) in UNIQUE_INDEXES.items():
        sql = f"CREATE UNIQUE INDEX IF NOT EXISTS {name} ON {table}({columns})"
        try:
            conn.execute(sql)
        except sqlite3.IntegrityError:
            cur = conn.execute(
                f"DELETE FROM {table} WHERE rowid NOT IN "
                f"(SELECT max(rowid) FROM {table} GROUP BY {columns})"
            )
            dropped += cur.rowcount if table == "tracks" else 0
            conn.execute(sql)
    for name, spec in INDEXES.items():
        conn.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {spec}")
    return dropped


def drop_indexes(conn: sqlite3.Connection) -> None:
    for name in (*UNIQUE_INDEXES, *INDEXES):
        conn.execute(f"DROP INDEX IF EXISTS {name}")


def connect(path: Path, *, readonly: bool = False, indexes: bool = True) -> sqlite3.Connection:
    """Open the catalogue (creating and migrating it unless `readonly`).

    A writer also restores indexes an interrupted bulk load left missing, unless
    `indexes` is False (the bulk load itself, which builds them when it is done).
    """
    try:
        # A rollback journal, not WAL: bulk imports append new pages, which a rollback
        # journal need not copy, where WAL would write them twice.
        conn = open_sqlite(path, readonly=readonly, journal_mode="TRUNCATE", busy_ms=10000)
        conn.execute("PRAGMA cache_size=-262144")  # 256 MiB
        conn.execute("PRAGMA temp_store=MEMORY")
        if not readonly:
            migrate(conn)
            if indexes:
                ensure_indexes(conn)
    except FileNotFoundError:
        raise CatalogError(f"no catalogue at {path}") from None
    except sqlite3.DatabaseError as exc:
        raise CatalogError(f"{path}: not a usable catalogue ({exc})") from exc
    return conn
