"""`musicark plan` through the CLI on real archives (imported catalogues, real ingest)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from musicark.archive import Archive
from musicark.catalog.rights import REDISTRIBUTABLE
from musicark.catalog.synthetic import generate_catalog
from musicark.plan import CatalogColumns, selected_track_ids
from tests.audio import import_catalog_rows, make_file, track


@pytest.fixture
def catalog(run, archive: Archive, tmp_path: Path) -> Archive:  # type: ignore[no-untyped-def]
    path = tmp_path / "cat.parquet"
    t = generate_catalog(3000, seed=11)
    # As in real catalogues, most tracks have popularity 0 and no play count.
    zero = pa.array(np.random.default_rng(5).random(3000) < 0.6)
    t = t.set_column(5, "popularity", pc.if_else(zero, 0, t.column("popularity")))
    nulls = pa.nulls(3000, pa.int64())
    t = t.set_column(6, "play_count", pc.if_else(zero, nulls, t.column("play_count")))
    pq.write_table(t, path)
    run("catalog", "import", path)
    return archive


def _plan(run, *args: str | Path) -> dict:  # type: ignore[no-untyped-def]
    return json.loads(run("plan", *args, "--json").output)


def test_plan_writes_plan_summary_latest_and_plot(run, catalog, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "plans" / "p.parquet"
    png = tmp_path / "coverage.png"
    data = _plan(run, "--budget", "100MB", "--out", out, "--plot", png)
    s = data["summary"]
    assert 0 < s["selected"]["bytes"] <= 100_000_000
    assert s["catalogue"]["tracks"] == 3000
    assert 0 < s["selected"]["pct_listens"] <= 100
    assert s["selected"]["pct_listens"] > s["selected"]["pct_tracks"]
    assert s["knee"]["bytes"] > 0 and s["marginal_listens_per_tb"] >= 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    latest = catalog.root / "plans" / "latest.parquet"
    assert latest.read_bytes() == out.read_bytes()
    saved = json.loads((catalog.root / "plans" / "latest.json").read_text())
    assert saved["summary"] == s and len(saved["curve"]["bytes"]) > 10
    table = pq.read_table(out)
    assert table.num_rows == 3000
    assert table.column("rank").to_pylist() == list(range(1, 3001))
    ids = selected_track_ids(out)
    assert len(ids) == s["selected"]["tracks"]
    shown = run("plan", "show", out).output
    assert "of expected listens" in shown and "knee" in shown
    assert json.loads(run("plan", "show", "--json").output)["summary"] == s
    text = run("plan", "--budget", "100MB").output
    assert "selected:" in text and "latest.parquet" in text


def test_same_catalogue_same_options_same_bytes(run, catalog, tmp_path) -> None:  # type: ignore[no-untyped-def]
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    run("plan", "--budget", "50MB", "--strategy", "popularity", "--out", a)
    run("plan", "--budget", "80MB", "--out", tmp_path / "other.parquet")
    run("plan", "--budget", "50MB", "--strategy", "popularity", "--out", b)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != (tmp_path / "other.parquet").read_bytes()


def test_per_byte_covers_more_than_popularity(run, catalog) -> None:  # type: ignore[no-untyped-def]
    per_byte = _plan(run, "--budget", "60MB")["summary"]["selected"]
    popular = _plan(run, "--budget", "60MB", "--strategy", "popularity")["summary"]["selected"]
    assert per_byte["pct_listens"] >= popular["pct_listens"]
    assert per_byte["tracks"] > popular["tracks"]


def test_one_per_isrc_rights_and_threshold(run, catalog, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "p.parquet"
    data = _plan(
        run, "--budget", "1TB", "--rights", "public", "--min-zero-score", "20", "--out", out
    )
    st = data["summary"]["statuses"]
    assert st["skipped_isrc_has_download"] > 0  # the generator repeats ~2 % of ISRCs
    assert st["skipped_rights"] > 0 and st["skipped_low_priority"] > 0
    assert data["summary"]["selected"]["dark"]["tracks"] == 0
    conn = catalog.connect_catalog(readonly=True)
    rows = dict(
        (tid, (isrc, rights))
        for tid, isrc, rights in conn.execute("SELECT id, isrc, rights FROM tracks")
    )
    plan = pq.read_table(out)
    sel = plan.filter(pc.equal(plan.column("status").cast(pa.string()), "selected"))
    chosen = [rows[t] for t in sel.column("track_id").to_pylist()]
    assert all(r in REDISTRIBUTABLE for _, r in chosen)
    isrcs = [i for i, _ in chosen if i]
    assert len(isrcs) == len(set(isrcs))
    every = _plan(run, "--budget", "1TB", "--every-isrc-copy")["summary"]
    assert every["statuses"]["skipped_isrc_has_download"] == 0
    assert every["selected"]["redistributable"]["tracks"] > 0
    assert every["selected"]["dark"]["tracks"] > 0


@pytest.mark.parametrize("budget", ["0", "-1TB", "lots", "12 parsecs"])
def test_bad_budgets_are_one_line_errors(run, archive, budget: str) -> None:  # type: ignore[no-untyped-def]
    result = run("plan", "--budget", budget, check=False)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("musicark: error:")


def test_other_bad_input(run, archive, tmp_path) -> None:  # type: ignore[no-untyped-def]
    empty = run("plan", "--budget", "1TB", check=False)
    assert empty.exit_code == 1 and "no tracks" in empty.output
    assert len(empty.output.strip().splitlines()) == 1
    for args in (
        ["plan"],
        ["plan", "--budget-tracks", "0"],
        ["plan", "--budget", "1TB", "--bitrate", "fast"],
    ):
        r = run(*args, check=False)
        assert r.exit_code == 2 and r.output.startswith("musicark: error:"), args
    missing = run("plan", "show", tmp_path / "nope.parquet", check=False)
    assert missing.exit_code == 2 and "no plan" in missing.output
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"x": [1]}), other)
    assert "not a musicark plan" in run("plan", "show", other, check=False).output


def test_tracks_without_duration_are_reported(run, archive, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rows = [track(f"t{i}", f"Song {i}", "Anna Berg", duration_ms=200_000) for i in range(5)]
    rows[1]["duration_ms"] = None
    import_catalog_rows(archive, rows, tmp_path)
    data = _plan(run, "--budget", "1GB")
    assert data["summary"]["catalogue"]["unknown_size"] == 1
    assert data["summary"]["statuses"]["skipped_unknown_size"] == 1
    assert data["summary"]["selected"]["tracks"] == 4
    assert "no duration" in run("plan", "--budget", "1GB").output


def test_held_files_count_at_their_real_size(run, archive, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rows = [
        track("t1", "Silver Moon", "Anna Berg", isrc="USABC2400001", duration_ms=8_000),
        track("t2", "Paper Heart", "Ben Costa", isrc="USABC2400002", duration_ms=8_000),
    ]
    import_catalog_rows(archive, rows, tmp_path)
    src = tmp_path / "in"
    src.mkdir()
    f = make_file(src / "a.mp3", seed=3, tags={"title": "Silver Moon", "isrc": "USABC2400001"})
    run("ingest", src, "--jobs", "1", "--no-fingerprint")
    out = tmp_path / "p.parquet"
    data = _plan(run, "--budget-tracks", "5", "--out", out)
    assert data["summary"]["catalogue"]["held"] == 1
    table = pq.read_table(out).to_pylist()
    held = [r for r in table if r["size_source"] == "held"]
    assert len(held) == 1 and held[0]["expected_bytes"] == f.stat().st_size
    other = [r for r in table if r["size_source"] == "estimated"]
    assert other[0]["expected_bytes"] == 8_000 * 160_000 // 8000
    assert data["summary"]["selected"]["bytes_held"] == f.stat().st_size


def test_unreadable_catalogue_is_a_one_line_error(run, archive) -> None:  # type: ignore[no-untyped-def]
    archive.catalog_path.write_bytes(b"this is not an SQLite database" * 100)
    result = run("plan", "--budget", "1TB", check=False)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "cannot read the catalogue" in lines[0]


def _check_against_sql(catalog: Archive) -> CatalogColumns:
    """`load_catalog` against the same values computed by SQLite, row by row."""
    import sqlite3

    from musicark.plan.isrc import isrc_keys
    from musicark.plan.load import load_catalog

    cols = load_catalog(catalog)
    conn = sqlite3.connect(catalog.catalog_path)
    rows = conn.execute(
        "SELECT t.id, coalesce(t.duration_ms, -1), coalesce(t.popularity, -1),"
        " coalesce(t.play_count, -1), t.isrc, t.rights, coalesce(al.popularity, -1),"
        " (SELECT coalesce(max(a.popularity), -1) FROM track_artists ta"
        "  JOIN artists a ON a.id = ta.artist_id WHERE ta.track_id = t.id),"
        " (SELECT coalesce(max(a.followers), -1) FROM track_artists ta"
        "  JOIN artists a ON a.id = ta.artist_id WHERE ta.track_id = t.id)"
        " FROM tracks t LEFT JOIN albums al ON al.id = t.album_id ORDER BY t.rowid"
    ).fetchall()
    conn.close()
    assert len(cols) == len(rows)
    by_column = list(zip(*rows, strict=True))
    assert cols.track_id.tolist() == list(by_column[0])
    assert cols.duration_ms.tolist() == list(by_column[1])
    assert cols.popularity.tolist() == list(by_column[2])
    assert cols.play_count.tolist() == list(by_column[3])
    assert np.array_equal(cols.isrc_key, isrc_keys(pa.array(by_column[4], pa.string())))
    assert cols.redistributable.tolist() == [r in REDISTRIBUTABLE for r in by_column[5]]
    assert cols.album_popularity.tolist() == list(by_column[6])
    assert cols.artist_popularity.tolist() == list(by_column[7])
    assert cols.artist_followers.tolist() == [min(f, 2**31 - 1) for f in by_column[8]]
    assert len(cols.held()) == 0
    assert len(set(cols.isrc_key.tolist())) < 3000  # repeated ISRCs share a key
    return cols


def test_load_catalog_matches_the_catalogue_read_row_by_row(catalog: Archive) -> None:
    cols = _check_against_sql(catalog)
    assert (cols.artist_popularity >= 0).all() and (cols.album_popularity >= 0).all()


def test_load_catalog_with_credits_out_of_track_order(catalog: Archive, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    # Re-crediting tracks rewrites their credits after everyone else's, and an unknown
    # artist and an uncredited track appear: the credits no longer follow the tracks.
    conn = sqlite3.connect(catalog.catalog_path)
    ids = [r[0] for r in conn.execute("SELECT id FROM tracks ORDER BY rowid LIMIT 40")]
    moved = conn.execute(
        f"SELECT * FROM track_artists WHERE track_id IN ({','.join('?' * 30)})", ids[:30]
    ).fetchall()
    conn.execute(f"DELETE FROM track_artists WHERE track_id IN ({','.join('?' * 40)})", ids)
    conn.executemany("INSERT INTO track_artists VALUES (?, ?, ?, ?)", moved[::-1])
    conn.execute("INSERT INTO track_artists VALUES (?, 9, 12345, 'main')", (ids[0],))
    # holes in the rowids of both halves, and a track stored before rowid 1
    conn.execute("DELETE FROM tracks WHERE rowid % 97 = 5")
    conn.execute(
        "INSERT INTO tracks (rowid, id, source_id, external_id, title, rights, row_hash)"
        " VALUES (-5, 77, 1, 'x', 'early', 'cc0', 0)"
    )
    conn.commit()
    conn.close()
    cols = _check_against_sql(catalog)
    assert len(cols) == 3000 - 31 + 1 and cols.track_id[0] == 77
    assert (cols.artist_popularity == -1).sum() >= 10  # the ten left uncredited, and more


def test_load_catalog_with_one_credit_run_per_track_in_another_order(  # type: ignore[no-untyped-def]
    catalog: Archive, monkeypatch
) -> None:
    import sqlite3

    from musicark.plan import load

    # As many credit runs as tracks, but the first track's credits stored last: the
    # tracks read do not match the credits' ids, which are read again.
    conn = sqlite3.connect(catalog.catalog_path)
    first = conn.execute("SELECT id FROM tracks ORDER BY rowid LIMIT 1").fetchone()[0]
    moved = conn.execute("SELECT * FROM track_artists WHERE track_id = ?", (first,)).fetchall()
    conn.execute("DELETE FROM track_artists WHERE track_id = ?", (first,))
    conn.executemany("INSERT INTO track_artists VALUES (?, ?, ?, ?)", moved)
    conn.commit()
    conn.close()
    reads: list[int] = []
    real = load._credit_maxima

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        keys, values = real(*args, **kwargs)
        reads.append(len(keys))
        return keys, values

    monkeypatch.setattr(load, "_credit_maxima", counted)
    cols = _check_against_sql(catalog)
    assert reads == [len(cols), len(cols)]
    assert (cols.artist_popularity >= 0).all()


# The plan of the `catalog` fixture, as made before the catalogue reader existed: the
# sha256 of its rows and metadata (see `_plan_digest`). A change here changes plans.
PINNED_PLAN = {
    "all": "7d3ff2d8053b5bad40c0db5e43883ee4db21282a537bae90c87f8426826279c9",
    "public": "f3ed5b01f343ab517b6a793b98d0c373476edfebf2073a662062ddebe8c237fb",
}


def _plan_digest(path: Path) -> str:
    import hashlib

    import orjson

    table = pq.read_table(path)
    rows = {name: table.column(name).cast(pa.string()).to_pylist() for name in table.column_names}
    meta = (table.schema.metadata or {})[b"musicark.plan"]
    return hashlib.sha256(orjson.dumps([rows, meta.decode()])).hexdigest()


@pytest.mark.parametrize("rights", ["all", "public"])
def test_plans_are_pinned(run, catalog, tmp_path, rights) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "p.parquet"
    run("plan", "--budget", "50MB", "--rights", rights, "--out", out)
    again = tmp_path / "q.parquet"
    run("plan", "--budget", "50MB", "--rights", rights, "--out", again)
    assert out.read_bytes() == again.read_bytes()
    assert _plan_digest(out) == PINNED_PLAN[rights]


def test_load_catalog_in_small_batches(catalog: Archive, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from musicark.plan import load

    monkeypatch.setattr(load, "BATCH_ROWS", 7)  # credit runs cut by batches join up again
    cols = _check_against_sql(catalog)
    assert (cols.artist_popularity >= 0).all()


def test_load_catalog_reads_every_kind_of_isrc_text(catalog: Archive, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    from musicark.plan import load

    # Texts of twelve bytes that are not ISRCs as stored, and of every other length (one
    # longer than a whole batch's spill buffer), a few rows apart so batches of 7 mix them.
    odd = [
        "usabc1234567",
        " USABC123456",
        "US-AB-12-34567",
        "",
        "  usabc1234567  ",
        "é" * 6,
        "x" * 5000,
        "ZZZZZZZZZZZZ",
        "US\x00BC1234567",
        "USABC1234567",
    ]
    conn = sqlite3.connect(catalog.catalog_path)
    rowids = [r[0] for r in conn.execute("SELECT rowid FROM tracks ORDER BY rowid")]
    for i, text in enumerate(odd * 3):
        conn.execute("UPDATE tracks SET isrc = ? WHERE rowid = ?", (text, rowids[i * 5 + 2]))
    conn.execute("UPDATE tracks SET isrc = NULL WHERE rowid = ?", (rowids[-1],))
    conn.commit()
    conn.close()
    monkeypatch.setattr(load, "BATCH_ROWS", 7)
    cols = _check_against_sql(catalog)
    assert len(set(cols.isrc_key[[i * 5 + 2 for i in range(10)]].tolist())) == 8  # 3 equal
    assert cols.isrc_key[-1] == 0


def test_credit_maxima_the_same_in_any_number_of_rowid_ranges(
    catalog: Archive, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from musicark.plan import load

    monkeypatch.setattr(load, "BATCH_ROWS", 5)
    path = catalog.catalog_path
    _, artists = load._side_tables(path)
    keys, (pop, fol) = load._credit_maxima(path, artists, ranges=1)
    assert len(keys) == 3000  # one entry per track: its credits are stored together
    for ranges in (2, 3, 7, 64):  # ranges cut tracks' credits apart, and join them again
        k, (p, f) = load._credit_maxima(path, artists, ranges=ranges)
        assert np.array_equal(k, keys) and np.array_equal(p, pop) and np.array_equal(f, fol)


def test_scanner_reads_a_catalogue_whose_path_needs_escaping(catalog: Archive, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    from musicark.catalog.scan import TRACK_ROWIDS_SQL, Scanner

    odd = tmp_path / "a ?b#c %41 é" / "catalog.sqlite"
    odd.parent.mkdir()
    shutil.copyfile(catalog.catalog_path, odd)
    with Scanner(odd) as scan:
        low, high = scan.ints(TRACK_ROWIDS_SQL, 2)[:, 0]
    assert (low, high) == (1, 3000)
