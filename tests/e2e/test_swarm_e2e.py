"""The swarm end to end with real parts on 127.0.0.1: opentracker, `musicark seed`,
aria2c (v1) and qbittorrent-nox (hybrid), then `musicark verify` and `musicark seedlist`."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from harness import Aria2, Opentracker, QBittorrent, free_port, wait_for

from musicark.torrent.create import create_torrent
from musicark.torrent.metainfo import Torrent, load_torrent

pytestmark = pytest.mark.e2e
PIECE = 64 * 1024


def make_release(root: Path, *, files: int, size: int, seed: int = 11) -> Path:
    rng = random.Random(seed)
    for i in range(files):
        path = root / f"Artist {i % 3}" / f"{i:03d} Track.ogg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size + rng.randrange(size)))
    return root


def write_torrent(root: Path, out: Path, *, format: str, tracker: Opentracker) -> Torrent:
    created = create_torrent(root, format=format, piece_size=PIECE, trackers=[tracker.announce])
    out.write_bytes(created.data)
    t = load_torrent(created.data)
    hashes = [h for h in (t.info_hash_v1, (t.info_hash_v2 or "")[:40]) if h]
    tracker.allow(*hashes)
    return t


class SeedProcess:
    """`musicark seed` as its own process, as a user runs it."""

    def __init__(self, archive: Path, *args: str | Path) -> None:
        self.port = free_port()
        argv = [sys.executable, "-m", "musicark", "seed", "--listen", f"127.0.0.1:{self.port}"]
        argv += [str(a) for a in args]
        env = {**os.environ, "MUSICARK_ARCHIVE": str(archive)}
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
        )

    def stop(self) -> tuple[int, str, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return self.proc.returncode, out, err


def scrape_seeders(run, torrents: list[Path], infohash: str) -> int:  # type: ignore[no-untyped-def]
    args: list[str | Path] = ["seedlist", "--max-size", "1GB", "--json", "--timeout", "5"]
    for t in torrents:
        args += ["--torrent", t]
    result = run(*args)
    data = orjson.loads(result.stdout)
    row = next(c for c in data["chosen"] + data["passed_over"] if c["infohash"] == infohash)
    return int(row["seeders"] or 0)


def test_seed_download_verify_scrape(  # type: ignore[no-untyped-def]
    run, archive, tmp_path: Path, tracker: Opentracker, qbittorrent: QBittorrent
) -> None:
    seed_dir = tmp_path / "seed"
    root = make_release(seed_dir / "Demo Release 1", files=6, size=150_000)
    v1_path, hy_path = tmp_path / "demo-v1.torrent", tmp_path / "demo-hybrid.torrent"
    v1 = write_torrent(root, v1_path, format="v1", tracker=tracker)
    hybrid = write_torrent(root, hy_path, format="hybrid", tracker=tracker)
    assert v1.info_hash_v1 and hybrid.info_hash_v1

    seeder = SeedProcess(
        archive.root, "--torrent", v1_path, "--torrent", hy_path, "--data", seed_dir
    )
    try:
        # the tracker's scrape sees the seeder once it has checked the data and announced
        wait_for(
            lambda: scrape_seeders(run, [v1_path, hy_path], v1.info_hash_v1 or "") >= 1,
            timeout=20,
            what="the seeder in the tracker's scrape",
            step=0.5,
        )

        # aria2c 1.36 downloads the v1 torrent
        aria = Aria2(tmp_path)
        result = aria.download(v1_path, tmp_path / "aria", timeout=40)
        assert result.returncode == 0, result.stdout[-2000:]

        # qbittorrent-nox downloads the hybrid one
        qbittorrent.add(hy_path, tmp_path / "qbt")
        qbittorrent.wait_complete(timeout=40)
    finally:
        code, out, err = seeder.stop()
    assert code == 0, err
    assert "stopped after" in out and "2 seeding" in out

    # both downloads verify
    for torrent, data in ((v1_path, tmp_path / "aria"), (hy_path, tmp_path / "qbt")):
        result = run("verify", torrent, "--data", data)
        assert result.output.startswith("OK Demo Release 1 [full]"), result.output

    # one flipped byte: verify names exactly that file and that piece
    target = v1.files[4]
    victim = tmp_path / "aria" / "Demo Release 1" / target.path_str
    raw = bytearray(victim.read_bytes())
    at = target.length // 2
    raw[at] ^= 0x10
    victim.write_bytes(bytes(raw))
    rep = orjson.loads(
        run("verify", v1_path, "--data", tmp_path / "aria", "--json", check=False).output
    )
    assert rep["ok"] is False
    bad = [f for f in rep["torrents"][0]["files"] if f["status"] != "ok"]
    assert [(f["path"], f["status"]) for f in bad] == [(target.path_str, "corrupt")]
    assert bad[0]["bad_pieces"] == [(target.offset + at) // PIECE]

    # the seeder kept resume data, so a restart does not need to hash everything again
    conn = archive.connect_state(readonly=True)
    try:
        stored = {r[0] for r in conn.execute("SELECT infohash FROM seed_resume")}
    finally:
        conn.close()
    assert v1.info_hash_v1 in stored and hybrid.info_hash_v1 in stored


def test_seed_refuses_a_busy_port_and_stops_on_sigint(run, archive, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = make_release(tmp_path / "data" / "R", files=2, size=10_000)
    path = tmp_path / "r.torrent"
    path.write_bytes(create_torrent(root, piece_size=PIECE).data)
    first = SeedProcess(archive.root, "--torrent", path, "--data", root)
    time.sleep(1.5)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "musicark",
            "seed",
            "--listen",
            f"127.0.0.1:{first.port}",
            "--torrent",
            str(path),
            "--data",
            str(root),
            "--seconds",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "MUSICARK_ARCHIVE": str(archive.root)},
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("musicark: error: cannot listen")
    first.proc.send_signal(signal.SIGINT)
    code, out, _ = first.stop()
    assert code == 0 and "1 seeding" in out
