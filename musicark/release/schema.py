"""The release part's tables in state.sqlite (domain "release").

- `releases`: one row per release name (a series of packs sharing a name).
- `torrents`: one row per data folder and its .torrent (audio) and per published
  metadata torrent; paths are relative to the archive root.
- `release_files`: one row per packed file: where it is inside its torrent, its byte and
  piece range, and what it is (track id, ISRC, artists, title, rights) so that `locate`
  answers from this table alone — the metadata release ships the same table.
- `release_names`: normalised "artist title" keys of every packed file, for locate.
- `publications`: one row per `musicark publish`.
"""

from __future__ import annotations

import sqlite3

from musicark.archive import Archive
from musicark.state import migrate_domain
from musicark.units import now as now  # re-exported: stages call schema.now()

DOMAIN = "release"

FILES_DDL = """
CREATE TABLE release_files (
    torrent     TEXT NOT NULL,            -- torrents.name
    path        TEXT NOT NULL,            -- inside the torrent's folder, '/'-separated
    serial      INTEGER NOT NULL,         -- file number within the release (names use it)
    sha256      TEXT NOT NULL,
    track_id    INTEGER,
    isrc        TEXT,
    artists     TEXT,                     -- JSON array of names, credit order
    title       TEXT,
    album       TEXT,
    rights      TEXT,
    size        INTEGER NOT NULL,
    offset      INTEGER NOT NULL,         -- first byte in the torrent's piece space
    first_piece INTEGER NOT NULL,
    last_piece  INTEGER NOT NULL,
    PRIMARY KEY (torrent, path)
);
CREATE INDEX release_files_sha256 ON release_files(sha256);
CREATE INDEX release_files_track ON release_files(track_id);
CREATE INDEX release_files_isrc ON release_files(isrc) WHERE isrc IS NOT NULL;
CREATE TABLE release_names (
    name_key    TEXT NOT NULL,            -- normalize(artist) || ' - ' || normalize(title)
    torrent     TEXT NOT NULL,
    path        TEXT NOT NULL,
    PRIMARY KEY (name_key, torrent, path)
) WITHOUT ROWID
"""

TORRENTS_DDL = """
CREATE TABLE torrents (
    name         TEXT PRIMARY KEY,        -- the data folder's and the torrent's name
    release      TEXT NOT NULL,
    kind         TEXT NOT NULL,           -- audio | metadata
    collection   TEXT,
    first_serial INTEGER,
    last_serial  INTEGER,
    format       TEXT NOT NULL,           -- v1 | v2 | hybrid
    piece_length INTEGER NOT NULL,
    infohash_v1  TEXT,
    infohash_v2  TEXT,
    magnet       TEXT NOT NULL,
    torrent_path TEXT NOT NULL,           -- relative to the archive root
    data_path    TEXT NOT NULL,           -- the data folder, relative to the archive root
    torrent_size INTEGER NOT NULL,
    file_count   INTEGER NOT NULL,
    data_size    INTEGER NOT NULL,
    created      TEXT NOT NULL,
    obsolete     INTEGER NOT NULL DEFAULT 0,
    embargo      TEXT,
    restricted   INTEGER NOT NULL DEFAULT 0  -- packed with --include-restricted
)
"""

MIGRATIONS = [
    """
CREATE TABLE releases (
    name        TEXT PRIMARY KEY,
    created     TEXT NOT NULL,
    restricted  INTEGER NOT NULL DEFAULT 0,   -- some torrent holds restricted rights
    next_serial INTEGER NOT NULL DEFAULT 1,
    published   TEXT
);
"""
    + TORRENTS_DDL
    + ";\n"
    + FILES_DDL
    + """;
CREATE TABLE publications (
    id          INTEGER PRIMARY KEY,
    release     TEXT NOT NULL,
    torrent     TEXT NOT NULL,            -- the metadata torrent's name
    state_key   TEXT NOT NULL,            -- what was published: torrents and catalogue state
    created     TEXT NOT NULL
)
""",
]


def connect(archive: Archive, *, readonly: bool = False) -> sqlite3.Connection:
    """state.sqlite with the release tables migrated (read-only: as they are)."""
    conn = archive.connect_state(readonly=readonly)
    if not readonly:
        migrate_domain(conn, DOMAIN, MIGRATIONS)
    return conn


def has_tables(conn: sqlite3.Connection) -> bool:
    return bool(
        conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'release_files'"
        ).fetchone()
    )
