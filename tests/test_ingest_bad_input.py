"""Bad input: every file gets a ledger entry and a summary line, the rest goes on,
the store never holds a partial blob and no original is touched."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from musicark.archive import Archive, init_archive
from musicark.store.blobs import blob_path
from tests.audio import make_file


def ledger(archive: Archive) -> dict[str, tuple[str, str]]:
    conn = sqlite3.connect(archive.state_path)
    try:
        return {
            os.path.basename(path): (status, reason or "")
            for path, status, reason in conn.execute("SELECT path, status, reason FROM ledger")
        }
    finally:
        conn.close()


def store_is_clean(archive: Archive) -> None:
    """Every file in the store hashes to its name; staging holds no leftovers."""
    for f in archive.store_dir.rglob("*"):
        if f.is_file():
            assert hashlib.sha256(f.read_bytes()).hexdigest() == f.name
    assert not [p for p in (archive.staging_dir / "ingest").glob("*")]


def ingest(run, *paths: Path | str, extra: tuple[str, ...] = ()) -> dict:  # type: ignore[no-untyped-def]
    out = run("ingest", *paths, "--jobs", "1", "--json", *extra, check=False)
    data = json.loads(out.output)
    errors = any(status.startswith("error_") for status in data["counts"])
    assert out.exit_code == (1 if errors else 0)
    return data


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("good")
    return {
        ext: make_file(d / f"g.{ext}", seed=40 + i, seconds=6).read_bytes()
        for i, ext in enumerate(["mp3", "flac", "ogg"])
    }


def test_zero_byte_text_and_corrupt_header_files(run, archive, tmp_path, good) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "empty.mp3").write_bytes(b"")
    (src / "notes.mp3").write_text("these are not the droids\n" * 40)
    for ext, data in good.items():
        broken = bytearray(data)
        start = 0 if ext == "mp3" else 40
        broken[start + 4 : start + 600] = bytes(596)  # destroy the stream headers
        (src / f"header.{ext}").write_bytes(bytes(broken))
    make_file(src / "fine.flac", seed=50, seconds=4)
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    data = ingest(run, src)
    entries = ledger(archive)
    assert entries["empty.mp3"] == ("error_empty", "zero-byte file")
    assert entries["notes.mp3"][0] == "error_not_audio"
    for ext in ("flac", "ogg"):
        assert entries[f"header.{ext}"][0] == "error_corrupt", entries[f"header.{ext}"]
    assert entries["header.mp3"][0] in ("error_corrupt", "damaged", "unmatched")
    assert entries["fine.flac"][0] == "unmatched"
    lines = {p["path"].rsplit("/", 1)[-1]: p for p in data["problems"]}
    assert lines["empty.mp3"]["status"] == "error_empty"
    assert lines["notes.mp3"]["reason"] == "not an audio file (no known audio format)"
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before
    store_is_clean(archive)
    again = run("ingest", src, "--jobs", "1")  # all known, nothing redone, nothing failed
    assert "unchanged since the last run" in again.output and again.exit_code == 0


@pytest.mark.parametrize("fingerprint", [True, False], ids=["fingerprint", "no-fingerprint"])
def test_truncated_files_are_kept_and_flagged_damaged(
    run, archive, tmp_path, good, fingerprint
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for ext, data in good.items():
        (src / f"half.{ext}").write_bytes(data[: len(data) // 2])
    extra = () if fingerprint else ("--no-fingerprint",)
    data = ingest(run, src, extra=extra)
    entries = ledger(archive)
    for ext in good:
        status, reason = entries[f"half.{ext}"]
        assert status == "damaged", (ext, status, reason)
        assert "truncated" in reason
    assert data["counts"] == {"damaged": 3}
    lines = [p for p in data["problems"] if p["status"] == "damaged"]
    assert len(lines) == 3
    # kept: the bytes are in the store as given
    for full in good.values():
        half = full[: len(full) // 2]
        assert blob_path(archive, hashlib.sha256(half).hexdigest()).read_bytes() == half
    store_is_clean(archive)


def test_corrupt_middle_is_damaged_when_decoded(run, archive, tmp_path, good) -> None:
    src = tmp_path / "in"
    src.mkdir()
    rng = __import__("random").Random(3)
    for ext in ("mp3", "flac"):
        broken = bytearray(good[ext])
        mid = len(broken) // 3
        broken[mid : mid + 3000] = bytes(rng.randrange(256) for _ in range(3000))
        (src / f"noise.{ext}").write_bytes(bytes(broken))
    ingest(run, src)
    entries = ledger(archive)
    for ext in ("mp3", "flac"):
        status, reason = entries[f"noise.{ext}"]
        assert status == "damaged", (ext, status, reason)
    store_is_clean(archive)


def test_unreadable_things(run, archive, tmp_path, good) -> None:
    src = tmp_path / "in"
    src.mkdir()
    os.mkfifo(src / "pipe.mp3")  # opening it would block: never opened
    (src / "dangling.mp3").symlink_to(src / "gone.mp3")
    (src / "loop.mp3").symlink_to(src / "loop.mp3")
    (src / "dir.mp3").mkdir()  # a folder named like a file: walked, holds nothing
    sub = src / "sub"
    sub.mkdir()
    (sub / "back").symlink_to(src)  # a folder loop
    (sub / "ok.flac").write_bytes(good["flac"])
    data = ingest(run, src)
    entries = ledger(archive)
    assert entries["pipe.mp3"] == ("error_not_regular", "not a regular file: a FIFO")
    assert entries["dangling.mp3"][0] == "error_unreadable"
    assert entries["loop.mp3"] == ("error_unreadable", "cannot read: symlink loop")
    assert entries["ok.flac"][0] == "unmatched"
    assert data["files"] == 4  # the loop through sub/back is not walked twice
    store_is_clean(archive)


@pytest.mark.skipif(
    os.geteuid() == 0,
    reason="root reads chmod-000 files; the FIFO and dangling-link cases cover unreadability",
)
def test_permission_denied(run, archive, tmp_path, good) -> None:
    src = tmp_path / "in"
    src.mkdir()
    f = src / "locked.mp3"
    f.write_bytes(good["mp3"])
    f.chmod(0)
    ingest(run, src)
    assert ledger(archive)["locked.mp3"][0] == "error_unreadable"


def test_awkward_names(run, archive, tmp_path, good) -> None:
    src = tmp_path / "in"
    src.mkdir()
    names = [b"new\nline.mp3", b"bad-\xff\xfe-utf8.mp3", b"..dots...mp3"]
    for i, raw in enumerate(names):
        data = bytearray(good["mp3"])
        data[-1] ^= i + 1  # three different files
        with open(os.path.join(os.fsencode(src), raw), "wb") as f:
            f.write(bytes(data))
    weird = src / "sub"
    weird.mkdir()
    result = run("ingest", str(weird / ".." / "."), "--jobs", "1")
    assert "ingested 3 files" in result.output
    assert result.output.count("\n") == 1  # one summary line: no name broke it
    conn = sqlite3.connect(archive.state_path)
    keys = {bytes(k) for (k,) in conn.execute("SELECT path_key FROM ledger")}
    assert {os.path.basename(k) for k in keys} == set(names)
    printable = {p for (p,) in conn.execute("SELECT path FROM ledger")}
    assert any(p.endswith("new\\nline.mp3") for p in printable)
    assert any("\\xff\\xfe" in p for p in printable)
    assert all(s in ("unmatched", "damaged") for (s,) in conn.execute("SELECT status FROM ledger"))


def test_huge_tag_and_the_same_file_twice(run, archive, tmp_path) -> None:
    from mutagen.id3 import ID3, TXXX

    src = tmp_path / "in"
    src.mkdir()
    f = make_file(src / "big.mp3", seed=60, seconds=4, tags={"title": "Big"})
    tags = ID3(str(f))
    tags.add(TXXX(desc="blob", text=["x" * 10_000_000]))
    tags.save(str(f))
    assert f.stat().st_size > 10_000_000
    data = ingest(run, f, f, src)
    assert data["repeated"] == 1
    assert data["counts"] == {"unmatched": 1}
    conn = sqlite3.connect(archive.state_path)
    (tag_json,) = conn.execute("SELECT tags FROM blobs").fetchone()
    assert json.loads(tag_json)["title"] == ["Big"]
    assert len(tag_json) < 100_000
    assert conn.execute("SELECT count(*) FROM ledger").fetchone()[0] == 1


def test_file_changed_while_being_read(run, archive, tmp_path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    f = src / "growing.mp3"
    f.write_bytes(os.urandom(48 * 1024 * 1024))
    original_size = f.stat().st_size
    stop = threading.Event()

    def grow() -> None:
        with open(f, "ab") as out:
            while not stop.is_set():
                out.write(b"x")
                out.flush()

    writer = threading.Thread(target=grow)
    writer.start()
    try:
        ingest(run, f)
    finally:
        stop.set()
        writer.join()
    status, reason = ledger(archive)["growing.mp3"]
    assert status == "error_changed", (status, reason)
    assert f.stat().st_size > original_size  # the original is the writer's, untouched by us
    store_is_clean(archive)
    assert not any(p.is_file() for p in archive.store_dir.rglob("*"))


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_during_a_write(tmp_path, small_fs, good) -> None:
    from tests.runner import Runner

    archive = init_archive(small_fs / "archive")
    run = Runner(archive)
    src = tmp_path / "in"
    src.mkdir()
    (src / "big.flac").write_bytes(good["flac"] + os.urandom(4 * 1024 * 1024))
    (src / "small.mp3").write_bytes(good["mp3"])
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    data = ingest(run, src)
    entries = ledger(archive)
    assert entries["big.flac"] == ("error_disk_full", "no space left in the archive")
    assert entries["small.mp3"][0] == "unmatched"
    assert data["counts"] == {"error_disk_full": 1, "unmatched": 1}
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before
    store_is_clean(archive)
    assert run("audit", "--level", "full").exit_code == 0
