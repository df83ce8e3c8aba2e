"""`musicark ingest`: content-addressed store, ledger, matching, idempotent re-runs, modes."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path

import pytest

from musicark.archive import Archive
from musicark.store.blobs import blob_path
from tests.audio import import_catalog_rows, make_file, track

MBID = "0b4f6a5e-3c2d-4e1f-9a8b-7c6d5e4f3a2b"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def state(archive: Archive) -> sqlite3.Connection:
    return sqlite3.connect(archive.state_path)


def snapshot(archive: Archive) -> tuple[list[tuple[object, ...]], ...]:
    conn = state(archive)
    try:
        return tuple(
            conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
            for t in ("blobs", "renditions", "provenance", "ledger", "fingerprints")
        )
    finally:
        conn.close()


@pytest.fixture
def library(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    make_file(src / "a.mp3", seed=1, seconds=4, tags={"title": "Alpha", "artist": "Anna Berg"})
    make_file(
        src / "sub" / "b.flac", seed=2, seconds=4, tags={"title": "Beta", "artist": "Ben Costa"}
    )
    make_file(src / "c.opus", seed=3, seconds=4)
    return src


def test_ingest_stores_blobs_by_sha256_and_records_everything(run, archive, library) -> None:
    originals = {p: p.read_bytes() for p in library.rglob("*") if p.is_file()}
    out = run("ingest", library, "--jobs", "1", "--json")
    data = json.loads(out.output)
    assert data["files"] == 3
    assert data["counts"] == {"unmatched": 3}
    for p, content in originals.items():
        assert p.read_bytes() == content  # originals untouched
        digest = hashlib.sha256(content).hexdigest()
        stored = blob_path(archive, digest)
        assert stored == archive.store_dir / digest[:2] / digest[2:4] / digest
        assert stored.read_bytes() == content
    conn = state(archive)
    rows = dict(conn.execute("SELECT codec, container FROM blobs").fetchall())
    assert set(rows) == {"mp3float", "flac", "opus"} or set(rows) == {"mp3", "flac", "opus"}
    blob = conn.execute(
        "SELECT duration_ms, sample_rate, channels, lossless, bitrate, tags FROM blobs WHERE codec = 'flac'"
    ).fetchone()
    assert abs(blob[0] - 4000) < 100 and blob[1] == 44100 and blob[2] == 2 and blob[3] == 1
    assert blob[4] > 100_000
    assert json.loads(blob[5])["title"] == ["Beta"]
    assert conn.execute("SELECT count(*) FROM fingerprints").fetchone()[0] == 3
    ledger = conn.execute("SELECT path, status, sha256 FROM ledger ORDER BY path").fetchall()
    assert [Path(p).name for p, _, _ in ledger] == ["a.mp3", "c.opus", "b.flac"]
    assert all(s == "unmatched" for _, s, _ in ledger)
    assert not list((archive.staging_dir / "ingest").iterdir())


def test_rerun_does_no_work_and_changes_nothing(run, archive, library) -> None:
    run("ingest", library, "--jobs", "1")
    before = snapshot(archive)
    out = json.loads(run("ingest", library, "--jobs", "1", "--json").output)
    assert out["unchanged"] == 3 and out["counts"] == {}
    assert snapshot(archive) == before
    # a touched file (new mtime, same bytes) is re-hashed, recognised, and changes nothing
    f = library / "a.mp3"
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    out = json.loads(run("ingest", library, "--jobs", "1", "--json").output)
    assert out["unchanged"] == 3 and out["counts"] == {}
    after = snapshot(archive)
    assert after[:3] == before[:3] or after[0] == before[0]
    statuses = {Path(r[1]).name: r[5] for r in after[3]}
    assert statuses["a.mp3"] == "unmatched"


def test_same_bytes_under_two_paths_is_one_blob_two_provenance_records(
    run, archive, tmp_path
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    make_file(src / "one.flac", seed=5, seconds=3)
    (src / "two.flac").write_bytes((src / "one.flac").read_bytes())
    data = json.loads(run("ingest", src, "--jobs", "1", "--json").output)
    assert data["counts"] == {"unmatched": 1, "duplicate": 1}
    conn = state(archive)
    assert conn.execute("SELECT count(*) FROM blobs").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM provenance").fetchone()[0] == 2
    dupes = json.loads(run("dupes", "--json").output)
    assert dupes["exact"][0]["copies"] == 2


def test_matching_by_isrc_external_id_and_artist_title_duration(run, archive, tmp_path) -> None:
    import_catalog_rows(
        archive,
        [
            track("t1", "Silver Moon", "Anna Berg", isrc="USABC2400001", duration_ms=300_000),
            track("t2", "Paper Heart", "Ben Costa", mbid=MBID),
            track("t3", "Café Naïve (Remastered)", "Clara Dahl", duration_ms=4_500),
            track("t4", "Glass River", "Dora Evans", duration_ms=200_000),
        ],
        tmp_path,
    )
    src = tmp_path / "in"
    src.mkdir()
    make_file(
        src / "isrc.mp3", seed=11, seconds=4, tags={"title": "whatever", "isrc": "US-ABC-24-00001"}
    )
    make_file(
        src / "mbid.flac", seed=12, seconds=4, tags={"title": "x", "musicbrainz_trackid": MBID}
    )
    make_file(
        src / "att.m4a", seed=13, seconds=4, tags={"title": "cafe naive", "artist": "CLARA DAHL"}
    )
    make_file(
        src / "far.ogg", seed=14, seconds=4, tags={"title": "Glass River", "artist": "Dora Evans"}
    )
    make_file(src / "none.opus", seed=15, seconds=4, tags={"title": "Unknown", "artist": "Nobody"})
    data = json.loads(run("ingest", src, "--jobs", "1", "--no-fingerprint", "--json").output)
    assert data["counts"] == {"success": 3, "unmatched": 2}
    conn = state(archive)
    cat = archive.connect_catalog(readonly=True)
    ids = dict(cat.execute("SELECT external_id, id FROM tracks").fetchall())
    got = {
        Path(path).name: (track_id, method, conf)
        for path, track_id, method, conf in conn.execute(
            "SELECT p.path, r.track_id, r.match_method, r.confidence FROM renditions r"
            " JOIN provenance p ON p.sha256 = r.sha256"
        )
    }
    assert got["isrc.mp3"][:2] == (ids["t1"], "isrc")
    assert got["isrc.mp3"][2] < 1.0  # the duration disagrees: lower confidence
    assert got["mbid.flac"] == (ids["t2"], "external_id:musicbrainz", 1.0)
    assert got["att.m4a"][:2] == (ids["t3"], "artist_title_duration")
    assert 0.7 <= got["att.m4a"][2] <= 0.9
    assert got["far.ogg"][0] is None  # title and artist agree, the duration does not
    assert got["none.opus"] == (None, None, None)
    preferred = conn.execute("SELECT count(*) FROM renditions WHERE preferred = 1").fetchone()[0]
    assert preferred == 3


def test_hardlink_mode_links_the_original(run, archive, tmp_path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    f = make_file(src / "x.flac", seed=21, seconds=3)
    run("ingest", f, "--mode", "hardlink", "--jobs", "1", "--no-fingerprint")
    stored = blob_path(archive, sha(f))
    assert stored.stat().st_ino == f.stat().st_ino
    assert f.exists()


def test_move_mode_removes_the_original_after_verification(run, archive, tmp_path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    f = make_file(src / "x.mp3", seed=22, seconds=3)
    g = src / "copy.mp3"
    g.write_bytes(f.read_bytes())
    digest = sha(f)
    data = json.loads(run("ingest", src, "--mode", "move", "--jobs", "1", "--json").output)
    assert data["counts"] == {"unmatched": 1, "duplicate": 1}
    assert not f.exists() and not g.exists()
    assert sha(blob_path(archive, digest)) == digest


def test_parallel_workers_give_the_same_result(run, archive, library, tmp_path) -> None:
    for i in range(6):
        make_file(library / f"extra{i}.ogg", seed=100 + i, seconds=3)
    data = json.loads(run("ingest", library, "--jobs", "2", "--json").output)
    assert data["files"] == 9
    assert data["counts"] == {"unmatched": 9}
    assert run("audit", "--level", "full").exit_code == 0


def test_ingest_jobs(run, tmp_path) -> None:
    result = run("ingest", tmp_path, "--jobs", "-1", check=False)
    assert result.exit_code == 2
    assert "musicark: error: --jobs must be 0 (one per core) or more" in result.output
    # 0 is one per core, as in pack and verify
    (tmp_path / "lib").mkdir()
    make_file(tmp_path / "lib" / "one.ogg", seed=7, seconds=2)
    data = json.loads(run("ingest", tmp_path / "lib", "--jobs", "0", "--json").output)
    assert data["files"] == 1


def test_resumes_after_a_crash_between_rename_and_record(run, archive, tmp_path) -> None:
    import subprocess

    src = tmp_path / "in"
    src.mkdir()
    f = make_file(src / "x.ogg", seed=23, seconds=3)
    digest = sha(f)
    # what a crash leaves: a blob renamed into place but not recorded, and a stray temporary
    stored = blob_path(archive, digest)
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_bytes(f.read_bytes())
    staging = archive.staging_dir / "ingest"
    staging.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(["true"])
    proc.wait()
    (staging / f"{proc.pid}-0.ogg.tmp").write_bytes(b"half a file")
    audit = run("audit", "--level", "presence", check=False)
    assert audit.exit_code == 1 and "untracked" in audit.output
    data = json.loads(run("ingest", src, "--jobs", "1", "--json").output)
    assert data["counts"] == {"unmatched": 1}
    assert not list(staging.iterdir())
    assert run("audit").exit_code == 0


def test_a_second_ingest_at_the_same_time_is_refused(run, archive, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """While one ingest runs, another would take its staged files and pending marks for a
    crashed run's leftovers: it is refused, naming the running one."""
    import subprocess
    import sys

    lock = archive.staging_dir / "ingest.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "os.pwrite(fd, str(os.getpid()).encode(), 0)\n"
            "print('held', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        (tmp_path / "lib").mkdir()
        make_file(tmp_path / "lib" / "one.ogg", seed=3, seconds=2)
        refused = run("ingest", tmp_path / "lib", check=False)
        assert refused.exit_code == 1
        assert f"another `musicark ingest` (pid {holder.pid})" in refused.output
        assert len(refused.output.strip().splitlines()) == 1
    finally:
        holder.kill()
        holder.wait()
    data = json.loads(run("ingest", tmp_path / "lib", "--json").output)  # the lock died with it
    assert data["files"] == 1
