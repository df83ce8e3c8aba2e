-- The catalogue: every track the archive knows about, held or not.
-- Ids are 63-bit hashes of (source, kind, external id): see musicark/catalog/ids.py.
-- Rows are stored in arrival order (rowid) with a unique index on the hashed id: bulk
-- imports append instead of scattering writes over the whole table.

CREATE TABLE sources (
    id      INTEGER PRIMARY KEY,          -- hash of the name
    name    TEXT NOT NULL UNIQUE
);

CREATE TABLE artists (
    id          INTEGER NOT NULL,
    source_id   INTEGER NOT NULL,
    external_id TEXT NOT NULL,
    name        TEXT NOT NULL,
    popularity  INTEGER,                  -- 0-100
    followers   INTEGER,
    row_hash    INTEGER NOT NULL
);

CREATE TABLE albums (
    id                      INTEGER NOT NULL,
    source_id               INTEGER NOT NULL,
    external_id             TEXT NOT NULL,
    title                   TEXT,
    album_type              TEXT,
    upc                     TEXT,
    label                   TEXT,
    release_date            TEXT,         -- ISO 8601, as precise as release_date_precision
    release_date_precision  TEXT,         -- year | month | day
    popularity              INTEGER,
    total_tracks            INTEGER,
    row_hash                INTEGER NOT NULL
);

CREATE TABLE tracks (
    id              INTEGER NOT NULL,
    source_id       INTEGER NOT NULL,
    external_id     TEXT NOT NULL,
    title           TEXT NOT NULL,
    album_id        INTEGER,
    isrc            TEXT,
    duration_ms     INTEGER,
    popularity      INTEGER,              -- 0-100
    play_count      INTEGER,
    track_number    INTEGER,
    disc_number     INTEGER,
    explicit        INTEGER,              -- 0/1
    rights          TEXT NOT NULL,
    license_url     TEXT,
    genres          TEXT,                 -- JSON array
    external_ids    TEXT,                 -- JSON object: {"musicbrainz": "...", ...}
    extra           TEXT,                 -- JSON object: every source field without a column
    row_hash        INTEGER NOT NULL      -- hash of the whole imported record
);

CREATE TABLE track_artists (
    track_id    INTEGER NOT NULL,
    position    INTEGER NOT NULL,
    artist_id   INTEGER NOT NULL,
    role        TEXT NOT NULL DEFAULT 'main'
);

-- Lookup of any external id (MusicBrainz, Discogs, ...) and ISRC/UPC to an entity.
CREATE TABLE external_ids (
    kind        TEXT NOT NULL,
    value       TEXT NOT NULL,
    entity      TEXT NOT NULL,            -- track | album | artist
    entity_id   INTEGER NOT NULL,
    PRIMARY KEY (entity, entity_id, kind, value)
) WITHOUT ROWID;

-- One row per imported file and batch, so an interrupted import resumes.
CREATE TABLE imports (
    file_key    TEXT NOT NULL,            -- sha256 of the file's first and last MiB + size
    path        TEXT NOT NULL,
    done_line   INTEGER NOT NULL,         -- last line (or row) committed so far
    finished    INTEGER NOT NULL DEFAULT 0,
    mode        TEXT NOT NULL DEFAULT 'upsert', -- or 'bulk': appended without indexes
    imported    INTEGER NOT NULL DEFAULT 0,
    updated     INTEGER NOT NULL DEFAULT 0,
    unchanged   INTEGER NOT NULL DEFAULT 0,
    rejected    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (file_key)
);

CREATE UNIQUE INDEX artists_id ON artists(id);
CREATE UNIQUE INDEX albums_id ON albums(id);
-- tracks(id) and track_artists(track_id, position) are unique too: see UNIQUE_INDEXES in db.py.
