"""`musicark publish` and `musicark locate`: metadata torrent, torrents.json, offline locate."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import libtorrent as lt
import pyarrow.parquet as pq
import pyzstd

from musicark.archive import Archive
from musicark.release.locate import classify, locate
from musicark.release.manifest import read_jsonl_zst
from musicark.torrent.metainfo import load_torrent
from tests import release_data
from tests.release_data import EXTRA, _ingest
from tests.runner import Runner

template, arc, cli = release_data.template, release_data.arc, release_data.cli


def _published(cli: Runner, arc: Archive) -> tuple[dict[str, object], Path]:
    cli("pack", "r1", "--target-size", "160KB", "--web-seed", "http://127.0.0.1:8080/data/")
    out = json.loads(cli("publish", "r1", "--json").output)
    return out, arc.root / str(out["data_path"])


def test_publish_writes_metadata_and_its_torrent(cli: Runner, arc: Archive) -> None:
    out, folder = _published(cli, arc)
    assert out["name"] == "r1-metadata-0001" and not out["unchanged"]
    names = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    for required in (
        "catalog.sqlite.zst",
        "catalog.parquet",
        "catalog.jsonl.zst",
        "files.jsonl.zst",
        "torrents.json",
        "locate.sqlite",
        "release.json",
    ):
        assert required in names
    torrents = json.loads((folder / "torrents.json").read_text())
    conn = sqlite3.connect(arc.state_path)
    audio = conn.execute("SELECT name, infohash_v1 FROM torrents WHERE kind = 'audio'").fetchall()
    assert {(t["name"], t["infohash_v1"]) for t in torrents} == set(audio)
    for t in torrents:
        assert set(t) >= {
            "name",
            "infohash_v1",
            "infohash_v2",
            "magnet",
            "torrent_size",
            "file_count",
            "data_size",
            "created",
            "obsolete",
            "embargo",
        }
        assert f"torrents/{t['name']}.torrent" in names
        assert f"manifests/{t['name']}.jsonl.zst" in names
        params = lt.parse_magnet_uri(t["magnet"])
        assert str(params.info_hashes.v1) == t["infohash_v1"]
        assert list(params.url_seeds) == ["http://127.0.0.1:8080/data/"]
    ledger = list(read_jsonl_zst(folder / "files.jsonl.zst"))
    assert len(ledger) == 5 and all(r["status"] == "released" for r in ledger)
    assert pq.read_table(folder / "catalog.parquet").num_rows == 8
    plain = pyzstd.decompress((folder / "catalog.sqlite.zst").read_bytes())
    assert plain.startswith(b"SQLite format 3")
    release = json.loads((folder / "release.json").read_text())
    assert release["restricted_rights_included"] is False and release["files"] == 5
    # the metadata torrent covers the folder, and libtorrent accepts it
    meta = load_torrent(arc.root / str(out["torrent_path"]))
    assert meta.info_hash_v1 == out["infohash_v1"]
    assert {f.path_str for f in meta.files} == names
    lt.torrent_info(str(arc.root / str(out["torrent_path"])))


def test_publish_again_changes_nothing_then_supersedes(
    cli: Runner, arc: Archive, tmp_path: Path
) -> None:
    first, _ = _published(cli, arc)
    again = json.loads(cli("publish", "r1", "--json").output)
    assert again["unchanged"] and again["name"] == first["name"]
    _ingest(cli, tmp_path / "more", EXTRA, 300)
    cli("pack", "r1", "--target-size", "160KB")
    second = json.loads(cli("publish", "r1", "--json").output)
    assert second["name"] == "r1-metadata-0002"
    conn = sqlite3.connect(arc.state_path)
    rows = dict(
        conn.execute("SELECT name, obsolete FROM torrents WHERE kind = 'metadata'").fetchall()
    )
    assert rows == {"r1-metadata-0001": 1, "r1-metadata-0002": 0}


def test_publish_bad_input(cli: Runner, run: Runner) -> None:
    result = cli("publish", "nope", check=False)
    assert result.exit_code == 1 and "no release named 'nope'" in result.output
    result = cli("publish", "r1", "--web-seed", "x", check=False)
    assert result.exit_code == 2 and "not a URL" in result.output


def test_locate_every_kind_of_query_online_and_offline(cli: Runner, arc: Archive) -> None:
    _, folder = _published(cli, arc)
    conn = sqlite3.connect(arc.state_path)
    track_id, sha, path, torrent = conn.execute(
        "SELECT track_id, sha256, path, torrent FROM release_files WHERE isrc = 'USABC2400004'"
    ).fetchone()
    queries = [
        str(track_id),
        "USABC2400004",
        "us-abc-24-00004",
        sha,
        sha[:20],
        "emile zoe - CAFE NAIVE",
    ]
    for source in (arc, folder):
        for q in queries:
            found = locate(source, q)
            assert [(f.torrent, f.path, f.sha256) for f in found] == [(torrent, path, sha)], q
    loc = locate(folder, "Émile Zoë - Café Naïve")[0]
    # the byte range is where the file's bytes are in the torrent's data
    t = load_torrent(arc.releases_dir / "r1" / "torrents" / f"{torrent}.torrent")
    tf = next(f for f in t.files if f.path_str == path)
    assert loc.byte_range == (tf.offset, tf.offset + tf.length - 1)
    assert (loc.first_piece, loc.last_piece) == (tf.first_piece, tf.last_piece)
    data = (arc.releases_dir / "r1" / "data" / torrent / path).read_bytes()
    assert hashlib.sha256(data).hexdigest() == sha
    assert str(lt.parse_magnet_uri(loc.magnet).info_hashes.v1) == t.info_hash_v1
    # through the CLI, offline: no archive needed
    offline = Runner(None)
    out = json.loads(offline("locate", "USABC2400004", "--metadata", folder, "--json").output)
    assert out[0]["full_path"] == f"{torrent}/{path}" and out[0]["track_id"] == str(track_id)
    text = cli("locate", "Anna Berg - Silver Moon").output
    assert "magnet:?xt=urn:btih:" in text and "pieces:" in text


def test_locate_sha256_prefix_of_digits_only(cli: Runner, arc: Archive) -> None:
    # one sha256 in ~2 000 starts with 16 decimal digits: such a prefix also reads as an id
    _published(cli, arc)
    conn = sqlite3.connect(arc.state_path)
    track_id, path = conn.execute(
        "SELECT track_id, path FROM release_files WHERE isrc = 'USABC2400004'"
    ).fetchone()
    digits = "1234567890123456" + "ab" * 24
    with conn:
        conn.execute("UPDATE release_files SET sha256 = ? WHERE isrc = 'USABC2400004'", (digits,))
    conn.close()
    assert [f.path for f in locate(arc, digits[:16])] == [path]
    assert [f.path for f in locate(arc, digits[:18])] == [path]
    assert [f.path for f in locate(arc, str(track_id))] == [path]


def test_locate_misses_and_bad_queries(cli: Runner, arc: Archive, tmp_path: Path) -> None:
    result = cli("locate", "USABC2400001", check=False)
    assert result.exit_code == 1 and "no releases yet" in result.output
    cli("pack", "r1")
    result = cli("locate", "USABC2400006", check=False)  # all rights reserved: not packed
    assert result.exit_code == 1 and "in no released torrent" in result.output
    assert json.loads(cli("locate", "USABC2400006", "--json").output) == []
    result = cli("locate", "USABC2400001", "--release", "other", check=False)
    assert result.exit_code == 1 and "no release named 'other'" in result.output
    assert cli("locate", "USABC2400001", "--release", "r1").output.count("magnet:?") == 1
    result = cli("locate", "???", check=False)
    assert result.exit_code == 2 and "cannot tell what" in result.output
    result = Runner(None)("locate", "1", "--metadata", tmp_path, check=False)
    assert result.exit_code == 1 and "locate.sqlite" in result.output


def test_classify() -> None:
    assert classify("12345") == ("track_id", 12345)
    assert classify("DEABC2400001") == ("isrc", "DEABC2400001")
    assert classify("a" * 64) == ("sha256", "a" * 64)
    assert classify("Anna - Song")[0] == "name"


def test_interrupted_publish_resumes(cli: Runner, arc: Archive) -> None:
    out, folder = _published(cli, arc)
    conn = sqlite3.connect(arc.state_path)
    # a crash after the folder was moved into place, before the rows were committed
    conn.execute("DELETE FROM publications")
    conn.execute("DELETE FROM torrents WHERE kind = 'metadata'")
    conn.commit()
    (folder / "stray").write_text("left by a crash")
    again = json.loads(cli("publish", "r1", "--json").output)
    assert again["name"] == out["name"] and not again["unchanged"]
    assert not (folder / "stray").exists()
    assert load_torrent(arc.root / str(again["torrent_path"])).info_hash_v1
