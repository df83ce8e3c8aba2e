"""The tier's tables in state.sqlite (domain "tier").

- `derived`: one row per derived blob (also a row of `blobs`): the rendition it was made
  from, codec, bit rate, the settings key it answers (`opus-75000`) and the full settings,
  encoder and library versions, and what its check measured.
- `transcode_failures`: a transcode whose check failed (nothing was stored), per source and
  settings key, with the reason; the next run does not try it again.
"""

from __future__ import annotations

import sqlite3

from musicark.archive import Archive
from musicark.state import migrate_domain
from musicark.store import schema as store_schema

DOMAIN = "tier"

MIGRATIONS = [
    """
CREATE TABLE derived (
    sha256             TEXT PRIMARY KEY,
    source_sha256      TEXT NOT NULL,
    codec              TEXT NOT NULL,
    bitrate            INTEGER NOT NULL,
    settings_key       TEXT NOT NULL,
    settings           TEXT NOT NULL,     -- JSON: every encoder and muxer setting
    encoder            TEXT NOT NULL,     -- e.g. "libopus 1.6.1"
    libraries          TEXT NOT NULL,     -- JSON: PyAV and FFmpeg library versions
    duration_ms        INTEGER NOT NULL,
    source_duration_ms INTEGER NOT NULL,
    ber                REAL NOT NULL,     -- Chromaprint bit error rate against the source
    created            TEXT NOT NULL,
    UNIQUE (source_sha256, settings_key)
);
CREATE TABLE transcode_failures (
    source_sha256      TEXT NOT NULL,
    settings_key       TEXT NOT NULL,
    reason             TEXT NOT NULL,
    at                 TEXT NOT NULL,
    PRIMARY KEY (source_sha256, settings_key)
) WITHOUT ROWID
""",
]


def connect(archive: Archive) -> sqlite3.Connection:
    """state.sqlite with the store's and the tier's tables migrated."""
    conn = store_schema.connect(archive)
    migrate_domain(conn, DOMAIN, MIGRATIONS)
    return conn


def has_tables(conn: sqlite3.Connection) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'derived'"
    ).fetchone()
    return row is not None
