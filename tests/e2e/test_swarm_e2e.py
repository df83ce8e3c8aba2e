"""The swarm end to end with real parts on 127.0.0.1: opentracker, `musicark seed`,
aria2c (v1) and qbittorrent-nox (hybrid), then `musicark verify` and `musicark seedlist`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from harness import Aria2, Opentracker, QBittorrent, SeedProcess, make_release, wait_for

from musicark.archive import Archive
from musicark.torrent.create import create_torrent
from musicark.torrent.metainfo import Torrent, load_torrent
from tests import release_data
from tests.runner import Runner

pytestmark = pytest.mark.e2e
PIECE = 64 * 1024
# an archive with a small catalogue and real ingested audio (module-scoped, copied per test)
template, arc, cli = release_data.template, release_data.arc, release_data.cli


def scrape_seeders(cli: Runner, infohash: str) -> int:
    result = cli("seedlist", "--max-size", "1GB", "--json", "--timeout", "5")
    data = orjson.loads(result.stdout)
    row = next(c for c in data["chosen"] + data["passed_over"] if c["infohash"] == infohash)
    return int(row["seeders"] or 0)


def _release_torrents(arc: Archive, release: str) -> list[tuple[Path, Torrent]]:
    conn = arc.connect_state(readonly=True)
    try:
        rows = conn.execute(
            "SELECT torrent_path FROM torrents WHERE release = ? AND kind = 'audio' ORDER BY name",
            (release,),
        ).fetchall()
    finally:
        conn.close()
    return [(arc.root / r[0], load_torrent(arc.root / r[0])) for r in rows]


def test_pack_seed_download_verify_scrape(
    cli: Runner, arc: Archive, tmp_path: Path, tracker: Opentracker, qbittorrent: QBittorrent
) -> None:
    # musicark packs the generated release as v1 (for aria2c), then, after more audio is
    # ingested, a hybrid release of it (for qbittorrent-nox)
    announce = ("--piece-size", "16KiB", "--tracker", tracker.announce)
    cli("pack", "e2e-v1", "--format", "v1", *announce)
    release_data._ingest(cli, tmp_path / "more", release_data.EXTRA, 500)
    cli("pack", "e2e-hybrid", "--format", "hybrid", *announce)
    (v1_path, v1), *_ = _release_torrents(arc, "e2e-v1")
    (hy_path, hybrid), *_ = _release_torrents(arc, "e2e-hybrid")
    assert v1.version == "v1" and hybrid.version == "hybrid"
    for t in (v1, hybrid):
        tracker.allow(*[h for h in (t.info_hash_v1, (t.info_hash_v2 or "")[:40]) if h])

    seeder = SeedProcess(arc.root, "e2e-v1", "e2e-hybrid")
    try:
        # the tracker's scrape (through `musicark seedlist`) sees the seeder once it announced
        wait_for(
            lambda: scrape_seeders(cli, v1.info_hash_v1 or "") >= 1,
            timeout=60,
            what="the seeder in the tracker's scrape",
            step=0.5,
        )
        # aria2c 1.36 downloads the v1 torrent, qbittorrent-nox the hybrid one
        result = Aria2(tmp_path).download(v1_path, tmp_path / "aria", timeout=90)
        assert result.returncode == 0, result.stdout[-2000:]
        qbittorrent.add(hy_path, tmp_path / "qbt")
        qbittorrent.wait_complete(timeout=90)
    finally:
        code, out, err = seeder.stop()
    assert code == 0, err
    assert "stopped after" in out and "seeding" in out

    # both downloads verify (their own folder or the folder holding it)
    for path, data in ((v1_path, tmp_path / "aria"), (hy_path, tmp_path / "qbt")):
        result = cli("verify", path, "--data", data)
        assert result.output.startswith("OK "), result.output

    # one flipped byte: verify names exactly that file and that piece
    target = max(v1.files, key=lambda f: f.length)
    victim = tmp_path / "aria" / v1.name / target.path_str
    raw = bytearray(victim.read_bytes())
    at = target.length // 2
    raw[at] ^= 0x10
    victim.write_bytes(bytes(raw))
    rep = orjson.loads(
        cli("verify", v1_path, "--data", tmp_path / "aria", "--json", check=False).stdout
    )
    assert rep["ok"] is False
    bad = [f for f in rep["torrents"][0]["files"] if f["status"] != "ok"]
    assert [(f["path"], f["status"]) for f in bad] == [(target.path_str, "corrupt")]
    assert bad[0]["bad_pieces"] == [(target.offset + at) // v1.piece_length]

    # the seeder kept resume data, so a restart does not need to hash everything again
    conn = arc.connect_state(readonly=True)
    try:
        stored = {r[0] for r in conn.execute("SELECT infohash FROM seed_resume")}
    finally:
        conn.close()
    assert v1.info_hash_v1 in stored and hybrid.info_hash_v1 in stored


def test_seed_refuses_a_busy_port_and_stops_on_sigint(arc: Archive, tmp_path: Path) -> None:
    root = make_release(tmp_path / "data" / "R", files=2, size=10_000)
    path = tmp_path / "r.torrent"
    path.write_bytes(create_torrent(root, piece_size=PIECE).data)
    first = SeedProcess(arc.root, "--torrent", path, "--data", root)
    first.wait_seeding()
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
        env={**os.environ, "MUSICARK_ARCHIVE": str(arc.root)},
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("musicark: error: cannot listen")
    code, out, err = first.stop(signal.SIGINT)
    assert code == 0, err
    assert "1 seeding" in out
