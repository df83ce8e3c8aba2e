"""`musicark pack`: data folders, deterministic torrents, manifests, append-only, rights."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import libtorrent as lt
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import Result

from musicark.archive import Archive, open_archive
from musicark.release.manifest import read_jsonl_zst
from musicark.store.blobs import blob_path
from musicark.torrent.metainfo import load_torrent
from tests import release_data
from tests.release_data import EXTRA, _ingest, _state
from tests.runner import Runner

# the shared fixtures (a module-scoped template archive, copied for each test)
template, arc, cli = release_data.template, release_data.arc, release_data.cli


def _torrents(arc: Archive, release: str = "r1") -> dict[str, bytes]:
    folder = arc.releases_dir / release / "torrents"
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.torrent"))}


def _pack(cli: Runner, *args: str, check: bool = True) -> Result:
    return cli("pack", "r1", "--target-size", "160KB", *args, check=check)


def test_pack_makes_folders_torrents_and_manifests(cli: Runner, arc: Archive) -> None:
    out = json.loads(_pack(cli, "--json", "--tracker", "http://127.0.0.1:6969/announce").output)
    assert out["withheld_rights"] == 2  # all-rights-reserved and unknown stay dark
    assert out["files"] == 5 and len(out["folders"]) >= 2
    base = arc.releases_dir / "r1"
    conn = _state(arc)
    serials = []
    for folder in out["folders"]:
        name = folder["name"]
        assert name.startswith("r1-test-")
        data = base / "data" / name
        t = load_torrent(base / "torrents" / f"{name}.torrent")
        info = lt.torrent_info(str(base / "torrents" / f"{name}.torrent"))
        assert str(info.info_hashes().v1) == folder["infohash_v1"] == t.info_hash_v1
        assert t.trackers == (("http://127.0.0.1:6969/announce",),)
        assert t.total_size <= 160_000
        records = list(read_jsonl_zst(base / "manifests" / f"{name}.jsonl.zst"))
        assert [r["path"] for r in records] == [f.path_str for f in t.files]
        bagit = (base / "manifests" / f"{name}.manifest-sha256.txt").read_text().splitlines()
        for rec, line in zip(records, bagit, strict=True):
            path = data / rec["path"]
            assert path.read_bytes()[:4] == b"OggS"
            assert hashlib.sha256(path.read_bytes()).hexdigest() == rec["sha256"]
            assert line == f"{rec['sha256']}  {rec['path']}"
            assert os.stat(path).st_ino == os.stat(blob_path(arc, rec["sha256"])).st_ino
            assert rec["rights"] in ("cc0", "cc-by", "public-domain", "cc-by-sa")
            assert rec["path"].isascii() and " " not in rec["path"]
            tf = next(f for f in t.files if f.path_str == rec["path"])
            assert (rec["offset"], rec["first_piece"], rec["last_piece"]) == (
                tf.offset,
                tf.first_piece,
                tf.last_piece,
            )
            serials.append(rec["serial"])
        rows = conn.execute(
            "SELECT count(*), sum(size) FROM release_files WHERE torrent = ?", (name,)
        ).fetchone()
        assert rows == (len(records), t.total_size)
        first, last = (int(x) for x in name.rsplit("-", 2)[1:])
        assert (first, last) == (records[0]["serial"], records[-1]["serial"])
    assert sorted(serials) == list(range(1, 6))
    names = [
        r[0] for r in conn.execute("SELECT path FROM release_files ORDER BY serial").fetchall()
    ]
    assert any("emile-zoe-cafe-naive" in n for n in names)  # accents folded to ASCII


def test_pack_is_deterministic_and_idempotent(
    template: Path, tmp_path: Path, cli: Runner, arc: Archive
) -> None:
    _pack(cli, "--format", "hybrid")
    first = _torrents(arc)
    again = _pack(cli, "--format", "hybrid")
    assert "nothing new to pack" in again.output
    assert _torrents(arc) == first
    other_root = tmp_path / "other"
    shutil.copytree(template, other_root)
    other = open_archive(other_root)
    time.sleep(1.1)
    _pack(Runner(other), "--format", "hybrid")
    assert _torrents(other) == first  # same inputs, another archive: the same bytes
    ses = lt.session({"listen_interfaces": "127.0.0.1:0", "enable_dht": False, "enable_lsd": False})
    for data in first.values():
        assert load_torrent(data).version == "hybrid"
        handle = ses.add_torrent(
            {"ti": lt.torrent_info(data), "save_path": str(arc.releases_dir / "r1" / "data")}
        )
        deadline = time.monotonic() + 20
        while handle.status().state != lt.torrent_status.seeding:
            assert time.monotonic() < deadline, "libtorrent did not find every piece"
            time.sleep(0.05)


def test_pack_is_append_only(cli: Runner, arc: Archive, tmp_path: Path) -> None:
    _pack(cli)
    before = _torrents(arc)
    data_before = {
        p.relative_to(arc.releases_dir): p.read_bytes()
        for p in (arc.releases_dir / "r1" / "data").rglob("*")
        if p.is_file()
    }
    _ingest(cli, tmp_path / "more", EXTRA, 300)
    out = json.loads(_pack(cli, "--json").output)
    assert out["files"] == 1 and len(out["folders"]) == 1
    assert out["folders"][0]["name"].endswith("-00000006-00000006")
    after = _torrents(arc)
    assert {k: after[k] for k in before} == before
    for rel, data in data_before.items():
        assert (arc.releases_dir / rel).read_bytes() == data


def test_include_restricted_is_recorded(cli: Runner, arc: Archive) -> None:
    out = json.loads(_pack(cli, "--include-restricted", "--json").output)
    assert out["files"] == 7 and out["withheld_rights"] == 0
    conn = _state(arc)
    assert conn.execute("SELECT restricted FROM releases WHERE name = 'r1'").fetchone() == (1,)
    assert conn.execute("SELECT count(*) FROM torrents WHERE restricted = 1").fetchone()[0] >= 1


def test_plan_order(cli: Runner, arc: Archive, tmp_path: Path) -> None:
    cat = arc.connect_catalog(readonly=True)
    ids = dict(cat.execute("SELECT external_id, id FROM tracks").fetchall())
    order = ["t5", "t3", "t1", "t4", "t2"]
    table = pa.table(
        {"rank": list(range(1, 6)), "track_id": [ids[t] for t in order]}
    ).replace_schema_metadata({b"musicark.plan": b"{}"})
    pq.write_table(table, tmp_path / "plan.parquet")
    cli("pack", "r1", "--plan", tmp_path / "plan.parquet")
    got = [r[0] for r in _state(arc).execute("SELECT track_id FROM release_files ORDER BY serial")]
    assert got == [ids[t] for t in order]


def test_bad_input_is_one_line_and_writes_nothing(
    cli: Runner, arc: Archive, tmp_path: Path
) -> None:
    cases = [
        (["--target-size", "1KB"], "smaller than one file"),
        (["--web-seed", "not-a-url"], "web seed 'not-a-url' is not a URL"),
        (["--piece-size", "3MB"], "power of two"),
        (["--max-files", "0"], "at least 1"),
        (["--plan", str(tmp_path / "missing.parquet")], "no plan"),
    ]
    for args, fragment in cases:
        result = cli("pack", "r1", *args, check=False)
        assert result.exit_code != 0, args
        assert fragment in result.output, result.output
        assert result.output.startswith("musicark: error:") and result.output.count("\n") == 1
    result = cli("pack", "Bad Name", check=False)
    assert "release name" in result.output and result.exit_code == 2
    assert not (arc.releases_dir / "r1" / "torrents").exists()


def test_corrupt_blob_stops_the_pack_cleanly(cli: Runner, arc: Archive) -> None:
    sha = _state(arc).execute("SELECT sha256 FROM renditions WHERE preferred = 1").fetchone()[0]
    blob = blob_path(arc, sha)
    os.chmod(blob, 0o644)
    data = bytearray(blob.read_bytes())
    data[100] ^= 0xFF
    blob.write_bytes(bytes(data))
    result = cli("pack", "r1", "--target-size", "1GB", check=False)
    assert result.exit_code == 1
    assert f"store blob {sha} fails its hash" in result.output
    base = arc.releases_dir / "r1"
    assert not any((base / "data").glob("*")) if (base / "data").exists() else True
    assert not (base / ".building").exists()
    assert _state(arc).execute("SELECT count(*) FROM release_files").fetchone()[0] == 0


def test_empty_store(run: Runner) -> None:
    result = run("pack", "r1", check=False)
    assert result.exit_code == 1
    assert "the store is empty" in result.output or "no audio" in result.output


def test_interrupted_pack_resumes_identically(cli: Runner, arc: Archive) -> None:
    _pack(cli)
    good = _torrents(arc)
    conn = _state(arc)
    last = conn.execute("SELECT name FROM torrents ORDER BY first_serial DESC").fetchone()[0]
    # a crash after the rename, before the rows were committed
    conn.execute("DELETE FROM release_files WHERE torrent = ?", (last,))
    conn.execute("DELETE FROM release_names WHERE torrent = ?", (last,))
    conn.execute("DELETE FROM torrents WHERE name = ?", (last,))
    first_serial = int(last.rsplit("-", 2)[1])
    conn.execute("UPDATE releases SET next_serial = ?", (first_serial,))
    conn.commit()
    (arc.releases_dir / "r1" / ".building" / "junk").mkdir(parents=True)
    _pack(cli)
    assert _torrents(arc) == good
    assert not (arc.releases_dir / "r1" / ".building").exists()


def test_one_pack_or_publish_of_a_release_at_a_time(cli: Runner, arc: Archive) -> None:
    from musicark.release.workspace import lock_release

    fd = lock_release(arc, "r1")
    try:
        result = _pack(cli, check=False)
        assert result.exit_code == 1 and "another process" in result.output
    finally:
        os.close(fd)
    _pack(cli)


@pytest.mark.e2e
def test_libtorrent_downloads_a_folder_from_its_web_seed(
    cli: Runner, arc: Archive, tmp_path: Path
) -> None:
    import functools
    import http.server
    import socketserver
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    data = arc.releases_dir / "r1" / "data"
    data.mkdir(parents=True)
    server = socketserver.ThreadingTCPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(data))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        out = json.loads(_pack(cli, "--format", "hybrid", "--web-seed", url, "--json").output)
        folder = out["folders"][0]
        ses = lt.session(
            {"listen_interfaces": "127.0.0.1:0", "enable_dht": False, "enable_lsd": False}
        )
        params = lt.add_torrent_params()
        params.ti = lt.torrent_info(str(arc.root / folder["torrent_path"]))
        params.save_path = str(tmp_path / "download")
        handle = ses.add_torrent(params)
        deadline = time.monotonic() + 30
        while not handle.status().is_seeding:
            assert time.monotonic() < deadline, "the web seed did not serve the folder"
            time.sleep(0.1)
        for path in (data / folder["name"]).rglob("*"):
            if path.is_file():
                got = (
                    tmp_path / "download" / folder["name"] / path.relative_to(data / folder["name"])
                )
                assert got.read_bytes() == path.read_bytes()
    finally:
        server.shutdown()
