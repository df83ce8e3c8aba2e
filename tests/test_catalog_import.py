"""`musicark init` and `catalog import/stats/export` on real files and SQLite databases."""

from __future__ import annotations

import gzip
import io
import lzma
import tarfile
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from musicark.archive import Archive, init_archive
from musicark.catalog.importer import import_catalog
from musicark.errors import Cancelled
from musicark.progress import Progress
from tests.catalog_data import dump_catalog, track, write_jsonl


def test_init_creates_layout_and_is_idempotent(tmp_path: Path) -> None:
    from tests.runner import Runner

    run = Runner(None)
    result = run("init", tmp_path / "ark")
    assert "archive ready" in result.output
    for name in ("musicark.toml", "catalog.sqlite", "store", "releases", "rejects"):
        assert (tmp_path / "ark" / name).exists()
    run("init", tmp_path / "ark")  # again: fine
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file.txt").write_text("x")
    result = run("init", tmp_path / "busy", check=False)
    assert result.exit_code == 1
    assert result.output.strip().startswith("musicark: error:")
    assert "not empty" in result.output


def test_commands_need_an_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.runner import Runner

    monkeypatch.chdir(tmp_path)
    result = Runner(None)("catalog", "stats", check=False)
    assert result.exit_code == 1
    assert "no musicark archive" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_import_reimport_and_update(archive: Archive, run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rows = [track(i) for i in range(50)]
    src = write_jsonl(tmp_path / "a.jsonl", rows)
    out = run("catalog", "import", src).output
    assert "50 imported, 0 updated, 0 unchanged, 0 rejected" in out
    before = dump_catalog(archive)
    out = run("catalog", "import", src).output
    assert "0 imported, 0 updated, 50 unchanged" in out
    assert dump_catalog(archive) == before

    rows[3]["title"] = "A new title"
    rows[7]["artists"] = [{"name": "Somebody Else"}]
    rows.append(track(99))
    newer = write_jsonl(tmp_path / "b.jsonl", rows)
    summary = orjson.loads(run("catalog", "import", newer, "--json").output)
    assert (summary["imported"], summary["updated"], summary["unchanged"]) == (1, 2, 48)
    conn = archive.connect_catalog(readonly=True)
    titles = {r[0] for r in conn.execute("SELECT title FROM tracks")}
    assert "A new title" in titles and "Song 3 café" not in titles
    credited = conn.execute(
        "SELECT a.name FROM tracks t JOIN track_artists ta ON ta.track_id = t.id "
        "JOIN artists a ON a.id = ta.artist_id WHERE t.external_id = 't7'"
    ).fetchall()
    assert credited == [("Somebody Else",)]
    changes = conn.execute("SELECT count(*) FROM track_changes").fetchone()[0]
    assert changes == 50 + 3


def test_bad_rows_go_to_rejects_with_line_and_reason(archive: Archive, run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lines = [
        orjson.dumps(track(1)),
        orjson.dumps(track(2, id=None)),
        orjson.dumps(track(3, title="")),
        orjson.dumps(track(4, duration_ms="long")),
        orjson.dumps(track(5, duration_ms=-5)),
        orjson.dumps(
            track(6, title="caf\udce9".encode("utf-8", "surrogateescape").decode("latin-1"))
        ),
        orjson.dumps(track(7, rights="mine-all-mine")),
        orjson.dumps(track(8, popularity=101)),
        orjson.dumps(track(9, isrc="nope")),
        orjson.dumps(track(10)),
    ]
    raw = b"\n".join(lines) + b"\n"
    raw = raw.replace(b"caf\\u00c3\\u00a9", b"caf\xe9")  # no-op guard for json escaping
    broken_utf8 = orjson.dumps(track(11)).replace(b"Song 11", b"Song \xff\xfe")
    truncated = orjson.dumps(track(12))[:40]
    src = tmp_path / "bad.jsonl"
    src.write_bytes(raw + broken_utf8 + b"\n" + truncated)
    out = run("catalog", "import", src).output
    assert "3 imported" in out and "9 rejected" in out
    rejects_file = next(archive.rejects_dir.glob("bad.jsonl.*.rejects.jsonl"))
    rejects = {
        r["line"]: r["reason"] for r in map(orjson.loads, rejects_file.read_bytes().splitlines())
    }
    assert rejects == {
        2: "missing id",
        3: "missing title",
        4: "duration_ms: expected an integer, got 'long'",
        5: "duration_ms is negative",
        7: "unknown rights value",
        8: "popularity outside 0-100",
        9: "malformed ISRC",
        11: "invalid UTF-8",
        12: "invalid JSON (a truncated or broken line)",
    }


@pytest.mark.parametrize("name", ["picture.png", "notes.txt", "empty.jsonl"])
def test_not_a_catalogue_fails_with_one_line(
    archive: Archive, run, tmp_path: Path, name: str
) -> None:  # type: ignore[no-untyped-def]
    good = write_jsonl(tmp_path / "good.jsonl", [track(1)])
    content = {
        "picture.png": b"\x89PNG\r\n\x1a\n" + bytes(100),
        "notes.txt": b"hello\nworld\n",
        "empty.jsonl": b"",
    }
    bad = tmp_path / name
    bad.write_bytes(content[name])
    result = run("catalog", "import", good, bad, check=False)
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1 and "musicark: error:" in result.output
    conn = archive.connect_catalog(readonly=True)
    assert conn.execute("SELECT count(*) FROM tracks").fetchone()[0] == 0


def _compress(data: bytes, kind: str) -> bytes:
    if kind == "gz":
        return gzip.compress(data)
    if kind == "xz":
        return lzma.compress(data)
    if kind == "zst":
        return zstandard.ZstdCompressor().compress(data)
    return data


@pytest.mark.parametrize("kind", ["", "gz", "xz", "zst"])
def test_csv_with_nested_cells_and_compression(
    archive: Archive, run, tmp_path: Path, kind: str
) -> None:  # type: ignore[no-untyped-def]
    csv_text = (
        "id,title,isrc,duration_ms,artists,genres,rights,mood\n"
        't1,First,US-ABC-24-00001,1000,"[{""name"": ""Zoë"", ""id"": ""z""}]","[""jazz""]",cc-by,calm\n'
        't2,"Second, with comma",,2000,Solo Artist,,,\n'
        "t3,,,3000,,,,\n"
    )
    src = tmp_path / f"cat.csv{'.' + kind if kind else ''}"
    src.write_bytes(_compress(csv_text.encode(), kind))
    out = run("catalog", "import", src, "--source", "label", "--rights", "public-domain").output
    assert "2 imported" in out and "1 rejected" in out
    conn = archive.connect_catalog(readonly=True)
    rows = dict(conn.execute("SELECT external_id, rights FROM tracks"))
    assert rows == {"t1": "cc-by", "t2": "public-domain"}
    assert conn.execute("SELECT isrc, extra FROM tracks WHERE external_id='t1'").fetchone() == (
        "USABC2400001",
        '{"mood":"calm"}',
    )
    assert conn.execute("SELECT name FROM sources").fetchall() == [("label",)]


def _mb_lines() -> bytes:
    recs = [
        {
            "id": "0f1d8a5e-0000-4000-8000-000000000001",
            "title": "Hymn",
            "length": 201000,
            "isrcs": ["GBAAA0000001", "GBAAA0000002"],
            "video": False,
            "disambiguation": "",
            "artist-credit": [
                {
                    "name": "Choir",
                    "joinphrase": " & ",
                    "artist": {"id": "ar-1", "name": "The Choir"},
                },
                {"name": "Organ", "joinphrase": "", "artist": {"id": "ar-2", "name": "Organist"}},
            ],
            "annotation": "not CC0",
            "rating": {"value": 4, "votes-count": 2},
            "tags": [{"name": "choral", "count": 1}],
            "genres": [{"name": "classical"}],
        },
        {"id": "0f1d8a5e-0000-4000-8000-000000000002", "title": "Silence", "artist-credit": []},
    ]
    return b"".join(orjson.dumps(r) + b"\n" for r in recs)


@pytest.mark.parametrize("packed", ["tar.xz", "lines"])
def test_musicbrainz_dump(archive: Archive, run, tmp_path: Path, packed: str) -> None:  # type: ignore[no-untyped-def]
    data = _mb_lines()
    if packed == "tar.xz":
        src = tmp_path / "recording.tar.xz"
        with tarfile.open(src, "w:xz") as tar:
            info = tarfile.TarInfo("mbdump/recording")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    else:
        src = tmp_path / "recording"
        src.write_bytes(data)
    out = run("catalog", "import", src).output
    assert "2 imported" in out
    conn = archive.connect_catalog(readonly=True)
    isrc, duration, extra, source = conn.execute(
        "SELECT isrc, duration_ms, extra, s.name FROM tracks t JOIN sources s ON s.id = t.source_id "
        "WHERE title = 'Hymn'"
    ).fetchone()
    assert (isrc, duration, source) == ("GBAAA0000001", 201000, "musicbrainz")
    extra = orjson.loads(extra)
    assert extra["isrcs"] == ["GBAAA0000001", "GBAAA0000002"]
    for non_cc0 in ("annotation", "rating", "tags", "genres"):
        assert non_cc0 not in extra
    names = conn.execute(
        "SELECT a.name FROM track_artists ta JOIN artists a ON a.id = ta.artist_id ORDER BY position"
    ).fetchall()
    assert names == [("The Choir",), ("Organist",)]
    assert (
        conn.execute(
            "SELECT count(*) FROM external_ids WHERE kind = 'musicbrainz_recording'"
        ).fetchone()[0]
        == 2
    )


def test_parquet_keeps_unknown_columns(archive: Archive, run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    table = pa.table(
        {"id": ["p1", "p2"], "title": ["One", "Two"], "duration_ms": ["100", "x"], "bpm": [120, 90]}
    )
    src = tmp_path / "cat.parquet"
    pq.write_table(table, src)
    out = run("catalog", "import", src).output
    assert "1 imported" in out and "1 rejected" in out
    exported = tmp_path / "out.jsonl"
    run("catalog", "export", exported)
    (row,) = [orjson.loads(line) for line in exported.read_bytes().splitlines()]
    assert row["extra"] == {"bpm": 120} and row["duration_ms"] == 100


def test_interrupted_import_resumes(tmp_path: Path) -> None:
    archive = init_archive(tmp_path / "ark")
    config = archive.root / "musicark.toml"
    config.write_text(config.read_text().replace("batch_rows = 200000", "batch_rows = 10"))
    from musicark.archive import open_archive

    archive = open_archive(archive.root)
    src = write_jsonl(tmp_path / "a.jsonl", [track(i) for i in range(45)])
    calls = []

    def stop_after_two(p: Progress) -> bool:
        calls.append(p.done)
        return p.stage != "import" or p.done < 20

    with pytest.raises(Cancelled):
        import_catalog(archive, [src], progress=stop_after_two)
    conn = archive.connect_catalog(readonly=True)
    assert conn.execute("SELECT count(*) FROM tracks").fetchone()[0] == 20  # two whole batches
    conn.close()
    summary = import_catalog(archive, [src])
    assert summary.imported == 25  # resumed after line 20: the rest only
    fresh = init_archive(tmp_path / "fresh")
    import_catalog(fresh, [src])
    assert dump_catalog(fresh) == dump_catalog(archive)


def test_ids_do_not_depend_on_import_order(tmp_path: Path) -> None:
    rows = [track(i) for i in range(30)]
    a, b = init_archive(tmp_path / "a"), init_archive(tmp_path / "b")
    import_catalog(a, [write_jsonl(tmp_path / "one.jsonl", rows)])
    import_catalog(b, [write_jsonl(tmp_path / "part2.jsonl", rows[15:])])
    import_catalog(b, [write_jsonl(tmp_path / "part1.jsonl", rows[:15])])
    da, db = dump_catalog(a), dump_catalog(b)
    assert da == db


def test_bulk_load_into_an_empty_catalogue(tmp_path: Path) -> None:
    """Bulk mode (append without indexes, in a staging process) gives the same catalogue."""
    from musicark.catalog.synthetic import generate_catalog

    table = generate_catalog(3000, seed=5)
    src = tmp_path / "big.parquet"
    pq.write_table(table, src)
    upsert = init_archive(tmp_path / "upsert")
    import_catalog(upsert, [src])
    bulk = init_archive(tmp_path / "bulk")
    config = bulk.root / "musicark.toml"
    text = config.read_text().replace("batch_rows = 200000", "batch_rows = 700")
    config.write_text(text.replace("bulk_min_rows = 500000", "bulk_min_rows = 1"))
    from musicark.archive import open_archive

    bulk = open_archive(bulk.root)
    summary = import_catalog(bulk, [src])  # 5 batches: staged in a child process
    assert (summary.imported, summary.rejected) == (3000, 0)
    conn = bulk.connect_catalog(readonly=True)
    assert conn.execute("SELECT mode FROM imports").fetchone() == ("bulk",)
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"tracks_id", "tracks_isrc", "track_artists_track"} <= indexes
    conn.close()
    assert dump_catalog(bulk) == dump_catalog(upsert)
    again = import_catalog(bulk, [src])
    assert (again.imported, again.unchanged) == (0, 3000)


def test_bulk_load_keeps_the_last_of_a_repeated_id(tmp_path: Path) -> None:
    from musicark.archive import open_archive

    root = init_archive(tmp_path / "ark").root
    config = root / "musicark.toml"
    text = config.read_text().replace("batch_rows = 200000", "batch_rows = 10")
    config.write_text(text.replace("bulk_min_rows = 500000", "bulk_min_rows = 1"))
    archive = open_archive(root)
    rows = [track(i) for i in range(30)]
    rows[25] = track(2, title="Second thoughts")
    summary = import_catalog(archive, [write_jsonl(tmp_path / "dup.jsonl", rows)])
    assert (summary.imported, summary.updated) == (29, 1)
    conn = archive.connect_catalog(readonly=True)
    assert conn.execute("SELECT title FROM tracks WHERE external_id = 't2'").fetchall() == [
        ("Second thoughts",)
    ]
    assert conn.execute("SELECT count(*) FROM track_artists").fetchone()[0] == 29


def test_stats_counts_what_was_imported(archive: Archive, run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rows = [track(i, rights="cc0" if i % 3 else "all-rights-reserved") for i in range(12)]
    rows.append(track(12, isrc=rows[0]["isrc"], popularity=None, duration_ms=None))
    run("catalog", "import", write_jsonl(tmp_path / "s.jsonl", rows))
    stats = orjson.loads(run("catalog", "stats", "--json", "--bitrate", "80k").output)
    assert stats["tracks"] == 13 and stats["artists"] == 7 and stats["albums"] == 5
    assert stats["distinct_isrcs"] == 12 and stats["tracks_with_popularity"] == 12
    assert stats["by_rights"] == {"cc0": 9, "all-rights-reserved": 4}
    assert stats["by_source"] == {"test": 13}
    milliseconds = sum(180_000 + i for i in range(12))
    assert stats["estimated_audio_bytes"] == milliseconds * 80_000 // 8000
    text = run("catalog", "stats").output
    assert "tracks" in text and "cc0" in text


def _bulk_archive(root: Path, batch_rows: int = 7) -> Archive:
    from musicark.archive import open_archive

    config = init_archive(root).root / "musicark.toml"
    text = config.read_text().replace("batch_rows = 200000", f"batch_rows = {batch_rows}")
    config.write_text(text.replace("bulk_min_rows = 500000", "bulk_min_rows = 1"))
    return open_archive(root)


def test_several_files_into_an_empty_catalogue_are_one_bulk_load(tmp_path: Path) -> None:
    rows = [track(i) for i in range(60)]
    rows[45] = track(3, title="Heard again")  # an id of the first file, again in the third
    files = [write_jsonl(tmp_path / f"part{k}.jsonl", rows[k * 20 : k * 20 + 20]) for k in range(3)]
    bulk = _bulk_archive(tmp_path / "bulk")
    seen: list[str] = []
    summary = import_catalog(bulk, files, progress=lambda p: seen.append(p.stage))
    assert (summary.imported, summary.updated, summary.rejected) == (59, 1, 0)
    assert seen.count("indexes") == 1  # built once, after the last file
    conn = bulk.connect_catalog(readonly=True)
    assert conn.execute("SELECT mode, finished FROM imports").fetchall() == [("bulk", 1)] * 3
    assert conn.execute("SELECT title FROM tracks WHERE external_id = 't3'").fetchall() == [
        ("Heard again",)
    ]
    conn.close()
    # the same catalogue as file after file, and a second import changes nothing
    one_by_one = init_archive(tmp_path / "upsert")
    for f in files:
        import_catalog(one_by_one, [f])
    assert dump_catalog(bulk) == dump_catalog(one_by_one)
    again = import_catalog(bulk, files)  # file after file: t3 goes back and forth once
    assert (again.imported, again.updated, again.unchanged) == (0, 2, 58)
    conn = bulk.connect_catalog(readonly=True)
    assert [m for (m,) in conn.execute("SELECT mode FROM imports")] == ["upsert"] * 3
    conn.close()


def test_files_into_a_catalogue_with_tracks_are_upserted(tmp_path: Path) -> None:
    archive = _bulk_archive(tmp_path / "ark")
    import_catalog(archive, [write_jsonl(tmp_path / "first.jsonl", [track(0)])])
    more = [write_jsonl(tmp_path / f"m{k}.jsonl", [track(k + 1), track(0)]) for k in range(2)]
    summary = import_catalog(archive, more)
    assert (summary.imported, summary.unchanged) == (2, 2)
    conn = archive.connect_catalog(readonly=True)
    modes = conn.execute("SELECT mode FROM imports ORDER BY rowid").fetchall()
    assert modes == [("bulk",), ("upsert",), ("upsert",)]


def test_import_into_an_archive_whose_work_folders_were_removed(tmp_path: Path) -> None:
    import shutil

    archive = init_archive(tmp_path / "ark")
    shutil.rmtree(archive.staging_dir)
    shutil.rmtree(archive.rejects_dir)
    rows = [track(0), {"id": "broken", "title": None}]
    summary = import_catalog(archive, [write_jsonl(tmp_path / "c.jsonl", rows)])
    assert (summary.imported, summary.rejected) == (1, 1)
    assert summary.files[0].rejects_file and Path(summary.files[0].rejects_file).is_file()
