"""`catalog enrich`: play counts from listening data, by MusicBrainz id, ISRC or track id."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from musicark.archive import Archive
from musicark.catalog.enrich import enrich_catalog
from musicark.catalog.importer import import_catalog
from tests.catalog_data import dump_catalog, track, write_jsonl


def _mbid(i: int) -> str:
    return f"00000000-0000-4000-8000-{i:012d}"


def _catalog(archive: Archive, tmp_path: Path) -> Path:
    rows = [
        track(i, external_ids={"musicbrainz_recording": _mbid(i)}, play_count=None)
        for i in range(6)
    ]
    rows[5]["isrc"] = rows[4]["isrc"]  # one recording on two releases
    return write_jsonl(tmp_path / "cat.jsonl", rows)


def _counts(archive: Archive) -> dict[str, tuple[int | None, str | None]]:
    conn = archive.connect_catalog(readonly=True)
    try:
        return {
            ext: (count, src)
            for ext, count, src in conn.execute(
                "SELECT t.external_id, t.play_count, l.source FROM tracks t "
                "LEFT JOIN track_listens l ON l.track_id = t.id"
            )
        }
    finally:
        conn.close()


def test_by_mbid_from_gzipped_csv_with_unknown_keys_and_bad_rows(
    archive: Archive,
    run,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    import_catalog(archive, [_catalog(archive, tmp_path)])
    csv_text = (
        "recording_mbid,total_listen_count,total_user_count\n"
        f"{_mbid(0)},1500,40\n"
        f"{_mbid(1).upper()},7,2\n"  # ids are matched case-insensitively
        f"{_mbid(99)},12,1\n"  # not in the catalogue
        "not-an-mbid,5,1\n"
        f"{_mbid(2)},-3,1\n"
        f"{_mbid(3)},lots,1\n"
    )
    src = tmp_path / "listenbrainz.csv.gz"
    src.write_bytes(gzip.compress(csv_text.encode()))
    out = run("catalog", "enrich", src, "--key", "mbid").output
    assert "6 rows, 2 matched, 1 unknown keys, 3 rejected; 2 tracks updated" in out
    counts = _counts(archive)
    assert counts["t0"] == (1500, "listenbrainz:listens")
    assert counts["t1"] == (7, "listenbrainz:listens")
    assert counts["t2"] == (None, None)
    rejects_file = Path(out.split("reason: ")[1].strip())
    rejects = [json.loads(line) for line in rejects_file.read_text().splitlines()]
    assert [(r["line"], r["reason"].split(":")[0]) for r in rejects] == [
        (5, "mbid"),
        (6, "listens"),
        (7, "listens"),
    ]
    before = dump_catalog(archive)
    again = run("catalog", "enrich", src, "--key", "mbid", "--json").output
    summary = json.loads(again)
    assert (summary["tracks_updated"], summary["tracks_unchanged"]) == (0, 2)
    assert dump_catalog(archive) == before  # idempotent


def test_by_isrc_from_parquet_listeners(archive: Archive, tmp_path: Path) -> None:
    import_catalog(archive, [_catalog(archive, tmp_path)])
    src = tmp_path / "stats.parquet"
    pq.write_table(
        pa.table({"isrc": ["US-ABC-00-00004", "USABC0000001"], "listeners": [900, 3]}), src
    )
    s = enrich_catalog(archive, src, key="isrc", field="listeners", source="lb")
    assert (s.rows, s.matched, s.unknown, s.tracks_updated) == (2, 2, 0, 3)
    counts = _counts(archive)
    assert counts["t4"] == counts["t5"] == (900, "lb:listeners")  # both tracks of the ISRC
    assert counts["t1"] == (3, "lb:listeners")


def test_by_track_id_from_jsonl_zst_and_kept_by_a_later_import(
    archive: Archive, tmp_path: Path
) -> None:
    cat = _catalog(archive, tmp_path)
    import_catalog(archive, [cat])
    lines = b"".join(
        orjson.dumps(r) + b"\n"
        for r in [{"id": "t3", "listens": 42}, {"id": "t404", "listens": 1}, {"listens": 5}]
    )
    src = tmp_path / "counts.jsonl.zst"
    src.write_bytes(zstandard.ZstdCompressor().compress(lines))
    s = enrich_catalog(archive, src, key="id")
    assert (s.matched, s.unknown, s.rejected, s.tracks_updated) == (1, 1, 1, 1)
    assert _counts(archive)["t3"] == (42, "counts:listens")
    # A newer version of the catalogue file changes t3's title but brings no play count.
    rows = [json.loads(line) for line in cat.read_text().splitlines()]
    rows[3]["title"] = "Renamed"
    summary = import_catalog(archive, [write_jsonl(tmp_path / "cat2.jsonl", rows)])
    assert summary.updated == 1
    assert _counts(archive)["t3"] == (42, "counts:listens")


def test_bad_key_is_a_usage_error_and_missing_column_one_line(
    archive: Archive,
    run,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    src = tmp_path / "x.csv"
    src.write_text("something,else\n1,2\n")
    assert run("catalog", "enrich", src, "--key", "upc", check=False).exit_code == 2
    result = run("catalog", "enrich", src, "--key", "isrc", check=False)
    assert result.exit_code == 1
    assert result.output.strip() == f"musicark: error: {src}: no isrc column (one of: isrc)"
