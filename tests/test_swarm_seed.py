"""The libtorrent seeder: resume data, states, errors (real libtorrent, 127.0.0.1)."""

from __future__ import annotations

import os
import random
import sqlite3
import threading
from pathlib import Path

import pytest

from musicark.errors import SwarmError
from musicark.swarm.history import SqliteResumeStore
from musicark.swarm.seed import Seeder, SeedItem, seed
from musicark.swarm.session import SessionOptions, parse_listen
from musicark.torrent.create import create_torrent

PIECE = 16 * 1024


def _data(root: Path) -> Path:
    rng = random.Random(4)
    for i in range(4):
        (root / f"{i}.flac").parent.mkdir(parents=True, exist_ok=True)
        (root / f"{i}.flac").write_bytes(rng.randbytes(40_000 + i))
    return root


def _store(tmp_path: Path) -> SqliteResumeStore:
    conn = sqlite3.connect(tmp_path / "state.sqlite", isolation_level=None)
    conn.execute("CREATE TABLE schema_versions (domain TEXT PRIMARY KEY, version INTEGER NOT NULL)")
    return SqliteResumeStore(conn)


def _states(item: SeedItem, store: SqliteResumeStore | None, seconds: float = 0.8) -> set[str]:
    status = seed(
        [item], options=SessionOptions(listen="127.0.0.1:0"), resume=store, seconds=seconds
    )
    return {t.state for t in status.torrents}


def test_resume_data_skips_the_recheck(tmp_path: Path) -> None:
    root = _data(tmp_path / "data" / "Rel")
    item = SeedItem("Rel", create_torrent(root, piece_size=PIECE).data, root.parent)
    store = _store(tmp_path)
    assert _states(item, store) == {"seeding"}
    assert store.conn.execute("SELECT count(*) FROM seed_resume").fetchone()[0] == 1

    # damage a file but keep its size and time: a restart trusts the saved resume data
    victim = root / "2.flac"
    st = victim.stat()
    raw = bytearray(victim.read_bytes())
    raw[100] ^= 0xFF
    victim.write_bytes(bytes(raw))
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert _states(item, store) == {"seeding"}
    # without resume data the same folder is checked and found incomplete; never repaired
    assert _states(item, None) == {"incomplete"}
    assert victim.read_bytes() == bytes(raw)


def test_missing_data_is_reported_not_written(tmp_path: Path) -> None:
    root = _data(tmp_path / "data" / "Rel")
    item = SeedItem("Rel", create_torrent(root, piece_size=PIECE).data, root.parent)
    (root / "1.flac").unlink()
    assert _states(item, None) == {"incomplete"}
    assert not (root / "1.flac").exists()  # upload mode: the seeder never downloads


def test_stop_event_and_status(tmp_path: Path) -> None:
    root = _data(tmp_path / "data" / "Rel")
    item = SeedItem("Rel", create_torrent(root, piece_size=PIECE).data, root.parent)
    seen = []
    stop = threading.Event()

    def on_status(status: object) -> None:
        seen.append(status)
        stop.set()

    status = seed(
        [item], options=SessionOptions(listen="127.0.0.1:0"), stop=stop, on_status=on_status
    )
    assert seen and status.listening.startswith("127.0.0.1:")
    assert status.torrents[0].name == "Rel" and status.elapsed < 10


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(SwarmError, match="nothing to seed"):
        seed([], options=SessionOptions(listen="127.0.0.1:0"), seconds=0.1)
    bad = SeedItem("bad", b"not a torrent", tmp_path)
    with pytest.raises(SwarmError, match="bad: libtorrent cannot load it"):
        Seeder(options=SessionOptions(listen="127.0.0.1:0")).start([bad])
    assert parse_listen("127.0.0.1:6881") == ("127.0.0.1", 6881)
    assert parse_listen("[::1]:7") == ("::1", 7)
    for text in ("6881", "host:", "h:99999"):
        with pytest.raises(Exception, match="HOST:PORT"):
            parse_listen(text)


def test_seed_cli_without_an_archive(tmp_path: Path) -> None:
    from tests.runner import Runner

    root = _data(tmp_path / "data" / "Rel")
    path = tmp_path / "rel.torrent"
    path.write_bytes(create_torrent(root, piece_size=PIECE).data)
    run = Runner(None)
    env = {"MUSICARK_ARCHIVE": str(tmp_path / "no-archive")}
    result = run(
        "seed",
        "--torrent",
        path,
        "--data",
        root,
        "--listen",
        "127.0.0.1:0",
        "--seconds",
        "1",
        env=env,
    )
    assert "1 seeding" in result.stdout
    result = run("seed", "--torrent", path, "--listen", "nowhere", check=False, env=env)
    assert result.exit_code == 2 and "--data" in result.output
    result = run(
        "seed", "--torrent", path, "--data", root, "--listen", "nowhere", check=False, env=env
    )
    assert result.exit_code == 2 and "HOST:PORT" in result.output
    result = run("seed", check=False, env=env)
    assert result.exit_code == 1 and "no musicark archive" in result.output


def test_seed_a_folder_of_torrents_with_some_data(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    torrents = tmp_path / "metadata" / "torrents"
    torrents.mkdir(parents=True)
    for name in ("A", "B", "C"):
        root = _data(tmp_path / "src" / name)
        (torrents / f"{name}.torrent").write_bytes(create_torrent(root, piece_size=PIECE).data)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (tmp_path / "src" / "B").rename(downloads / "B")
    args = ["seed", "--torrent", torrents, "--data", downloads, "--listen", "127.0.0.1:0"]
    result = run(*args, "--seconds", "1")
    assert "1 seeding" in result.stdout
    assert "2 torrent(s) have no data" in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run("seed", "--torrent", torrents, "--data", empty, "--seconds", "1", check=False)
    assert result.exit_code == 1 and "none of the torrents has data" in result.output
