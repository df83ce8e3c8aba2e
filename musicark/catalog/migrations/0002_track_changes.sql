-- Tracks inserted or changed by each import, in order, so that derived data (the search
-- index) catches up incrementally: a consumer remembers the last seq it has seen.
-- Rows are never deleted, so a plain rowid key grows monotonically.
CREATE TABLE track_changes (
    seq         INTEGER PRIMARY KEY,
    track_id    INTEGER NOT NULL
);
