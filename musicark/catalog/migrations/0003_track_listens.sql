-- Play counts set from listening data (`catalog enrich`), with where each came from.
-- tracks.play_count holds the value plans use; this table says which source set it and
-- keeps it when a later import brings the track without a play count of its own.
CREATE TABLE track_listens (
    track_id    INTEGER PRIMARY KEY,
    play_count  INTEGER NOT NULL,
    source      TEXT NOT NULL             -- NAME:FIELD, e.g. listenbrainz:listens
);
