"""The store's tables in state.sqlite (domain "store") and how to open them.

- `blobs`: one row per stored sha256 with what probing found (codec, duration, ...).
- `renditions`: which catalogue track a blob is a rendition of, how it was matched,
  and whether it is the preferred rendition of that track.
- `provenance`: every path a blob was ingested from (many per blob).
- `ledger`: one row per ingested path with its latest outcome (`success`, `duplicate`, ...).
- `ingest_runs`: one row per `musicark ingest` with its summary.
- `fingerprints` / `fp_segments`, `fp_chunks`: Chromaprint fingerprints and the inverted
  index over (a content-defined sample of) their values, for acoustic near-duplicates
  (`fpindex.py`: segments of sorted postings, packed a few hundred to a row).
- `match_titles` / `match_state`: the normalised-title index used to match by artist + title.
- `audits`: each audit's result (the web UI shows the last one).
- `ingest_pending`: blobs an ingest is renaming into the store before their rows are
  committed; what a killed run leaves here, the next run removes (`ingest.recover`).
"""

from __future__ import annotations

import sqlite3

from musicark.archive import Archive
from musicark.state import migrate_domain
from musicark.units import now as now  # re-exported: stages call schema.now()

DOMAIN = "store"

MIGRATIONS = [
    """
CREATE TABLE blobs (
    sha256      TEXT PRIMARY KEY,
    size        INTEGER NOT NULL,
    container   TEXT,
    codec       TEXT,
    duration_ms INTEGER,
    bitrate     INTEGER,
    sample_rate INTEGER,
    channels    INTEGER,
    lossless    INTEGER,
    damaged     TEXT,                     -- why the audio is incomplete or undecodable in part
    tags        TEXT,                     -- JSON object of the tags read with mutagen
    added       TEXT NOT NULL
);
CREATE TABLE renditions (
    sha256           TEXT PRIMARY KEY REFERENCES blobs(sha256),
    track_id         INTEGER,             -- catalogue track; NULL when unmatched
    match_method     TEXT,                -- isrc | external_id:<kind> | artist_title_duration
    confidence       REAL,
    preferred        INTEGER NOT NULL DEFAULT 0,
    preferred_reason TEXT,
    preferred_by     TEXT                 -- 'operator' when set with `dupes --prefer`
);
CREATE INDEX renditions_track ON renditions(track_id) WHERE track_id IS NOT NULL;
CREATE TABLE provenance (
    sha256      TEXT NOT NULL REFERENCES blobs(sha256),
    path_key    BLOB NOT NULL,            -- absolute path, exact bytes
    path        TEXT NOT NULL,            -- the same path, printable
    source      TEXT,
    size        INTEGER NOT NULL,
    mtime_ns    INTEGER NOT NULL,
    first_seen  TEXT NOT NULL,
    PRIMARY KEY (sha256, path_key)
) WITHOUT ROWID;
CREATE TABLE ingest_runs (
    id          INTEGER PRIMARY KEY,
    started     TEXT NOT NULL,
    finished    TEXT,
    mode        TEXT NOT NULL,
    source      TEXT,
    summary     TEXT                      -- JSON, as `musicark ingest --json` prints it
);
CREATE TABLE ledger (
    path_key    BLOB PRIMARY KEY,
    path        TEXT NOT NULL,
    size        INTEGER,
    mtime_ns    INTEGER,
    sha256      TEXT,
    status      TEXT NOT NULL,
    reason      TEXT,
    source      TEXT,
    run_id      INTEGER,
    at          TEXT NOT NULL
);
CREATE INDEX ledger_status ON ledger(status);
CREATE INDEX ledger_sha256 ON ledger(sha256) WHERE sha256 IS NOT NULL;
CREATE TABLE fingerprints (
    sha256      TEXT PRIMARY KEY REFERENCES blobs(sha256),
    id          INTEGER NOT NULL UNIQUE,  -- small integer used in fp_index
    duration_ms INTEGER,                  -- audio decoded for the fingerprint
    fp          BLOB NOT NULL             -- raw Chromaprint values, uint32 little-endian
);
CREATE TABLE fp_index (
    value       INTEGER NOT NULL,
    fp_id       INTEGER NOT NULL,
    pos         INTEGER NOT NULL,
    PRIMARY KEY (value, fp_id, pos)
) WITHOUT ROWID;
CREATE TABLE match_titles (
    title_key   INTEGER NOT NULL,
    track_id    INTEGER NOT NULL,
    PRIMARY KEY (title_key, track_id)
) WITHOUT ROWID;
CREATE TABLE match_state (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    catalog_seq INTEGER NOT NULL
);
CREATE TABLE audits (
    id          INTEGER PRIMARY KEY,
    started     TEXT NOT NULL,
    finished    TEXT NOT NULL,
    level       TEXT NOT NULL,
    ok          INTEGER NOT NULL,
    checked     INTEGER NOT NULL,
    bytes       INTEGER NOT NULL,
    changed     INTEGER NOT NULL,
    missing     INTEGER NOT NULL,
    untracked   INTEGER NOT NULL,
    result      TEXT NOT NULL             -- JSON, as `musicark audit --json` prints it
)
""",
    """
CREATE TABLE ingest_pending (
    sha256      TEXT NOT NULL,            -- a blob being renamed into the store
    pid         INTEGER NOT NULL,         -- by this ingest process, before its rows exist
    PRIMARY KEY (sha256, pid)
) WITHOUT ROWID
""",
    # the inverted index as segments of packed, sorted postings (fpindex.py); the rows of
    # the old one-posting-per-row index are rebuilt from `fingerprints` by the next writer
    """
DROP TABLE fp_index;
CREATE TABLE fp_segments (
    id          INTEGER PRIMARY KEY,
    level       INTEGER NOT NULL,         -- merged this many times (FANIN segments each)
    first_fp    INTEGER NOT NULL,         -- the fingerprint ids it covers
    last_fp     INTEGER NOT NULL,
    postings    INTEGER NOT NULL,
    live        INTEGER NOT NULL          -- 0 while being written
);
CREATE TABLE fp_chunks (
    segment     INTEGER NOT NULL,
    first_value INTEGER NOT NULL,         -- signed 32-bit fingerprint values
    last_value  INTEGER NOT NULL,
    data        BLOB NOT NULL             -- n x int32 value, n x uint32 fp id, n x uint16 pos
);
CREATE INDEX fp_chunks_at ON fp_chunks(segment, first_value)
""",
    # who writes a segment that is not live yet: one left by a process that is gone is
    # removed, one another ingest is writing now is not
    """
ALTER TABLE fp_segments ADD COLUMN pid INTEGER
""",
]


def connect(archive: Archive, *, readonly: bool = False) -> sqlite3.Connection:
    """state.sqlite with the store's tables migrated (read-only: as they are)."""
    conn = archive.connect_state(readonly=readonly)
    if not readonly:
        migrate_domain(conn, DOMAIN, MIGRATIONS)
    return conn
