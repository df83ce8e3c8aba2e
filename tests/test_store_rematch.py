"""Files ingested before their catalogue import are matched by the import (store follows
"catalog.changed"), so they reach releases instead of staying unmatched for good."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import orjson

from musicark.archive import Archive
from musicark.store.rematch import rematch_unmatched
from tests.audio import make_file, track
from tests.runner import Runner


def _renditions(archive: Archive) -> dict[str, int | None]:
    conn = sqlite3.connect(archive.state_path)
    try:
        return dict(conn.execute("SELECT sha256, track_id FROM renditions").fetchall())
    finally:
        conn.close()


def _statuses(archive: Archive) -> list[str]:
    conn = sqlite3.connect(archive.state_path)
    try:
        return sorted(r[0] for r in conn.execute("SELECT status FROM ledger"))
    finally:
        conn.close()


def test_ingest_before_the_catalogue_then_import_matches(
    run: Runner, archive: Archive, tmp_path: Path
) -> None:
    music = tmp_path / "music"
    music.mkdir()
    make_file(music / "a.mp3", seed=1, seconds=4, tags={"title": "Alpha", "artist": "Anna Berg"})
    make_file(music / "b.mp3", seed=2, seconds=4, tags={"title": "Nobody", "artist": "No One"})
    out = json.loads(run("ingest", music, "--jobs", "1", "--json").output)
    assert out["counts"] == {"unmatched": 2}
    assert set(_renditions(archive).values()) == {None}

    rows = [track("t1", "Alpha", "Anna Berg", duration_ms=4000)]
    cat = tmp_path / "catalogue.jsonl"
    cat.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    run("catalog", "import", cat, "--source", "label")

    matched = {sha: tid for sha, tid in _renditions(archive).items() if tid is not None}
    assert len(matched) == 1  # Alpha found its track; Nobody stays unmatched
    assert _statuses(archive) == ["success", "unmatched"]
    # an ingest re-run changes nothing, and the matched file is packed
    again = json.loads(run("ingest", music, "--jobs", "1", "--json").output)
    assert (again["unchanged"], again["counts"]) == (2, {})
    packed = json.loads(run("pack", "r1", "--json").output)
    assert (packed["files"], packed["not_in_catalog"]) == (1, 0)


def test_rematch_is_a_no_op_without_a_store_or_unmatched_files(archive: Archive) -> None:
    assert rematch_unmatched(archive).to_dict() == {"looked_at": 0, "matched": 0}
