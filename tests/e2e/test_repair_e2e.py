"""Repair from the swarm, end to end on 127.0.0.1: archive A packs and publishes a release,
aria2c downloads a copy into a mirror that `musicark seed` serves through opentracker; a
flipped byte and a deleted blob in A's store come back with `audit --repair`, and a damaged
file of the mirror's copy comes back from A with `verify --repair`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from harness import Aria2, Opentracker, SeedProcess

from musicark.archive import Archive, init_archive
from musicark.store.blobs import blob_path
from musicark.torrent.metainfo import load_torrent
from tests import release_data
from tests.runner import Runner

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # real clients: ~20 s
template, arc, cli = release_data.template, release_data.arc, release_data.cli


def _packed(arc: Archive) -> tuple[Path, list[tuple[str, str]]]:
    """The release's .torrent and (sha256, path inside it) of its files."""
    conn = arc.connect_state(readonly=True)
    try:
        (torrent_path,) = conn.execute("SELECT torrent_path FROM torrents WHERE kind = 'audio'")
        files = conn.execute("SELECT sha256, path FROM release_files ORDER BY path").fetchall()
        held = [r[0] for r in conn.execute("SELECT sha256 FROM blobs ORDER BY sha256")]
    finally:
        conn.close()
    packed = {sha for sha, _ in files}
    assert any(sha not in packed for sha in held)  # restricted rights: never released
    return arc.root / torrent_path[0], files


def test_audit_and_verify_repair_from_the_swarm(
    cli: Runner, arc: Archive, tmp_path: Path, tracker: Opentracker
) -> None:
    cli("pack", "r1", "--format", "v1", "--piece-size", "16KiB", "--tracker", tracker.announce)
    cli("publish", "r1")
    torrent_path, files = _packed(arc)
    torrent = load_torrent(torrent_path)
    tracker.allow(torrent.info_hash_v1 or "")

    # a mirror downloads the release with a real client, then seeds it
    origin = SeedProcess(arc.root, "r1")
    try:
        origin.wait_seeding()
        got = Aria2(tmp_path).download(torrent_path, tmp_path / "mirror", timeout=60)
        assert got.returncode == 0, got.stdout[-2000:]
    finally:
        origin.stop()
    mirror_data = tmp_path / "mirror" / torrent.name
    mirror_archive = init_archive(tmp_path / "mirror-archive")
    mirror = SeedProcess(mirror_archive.root, "--torrent", torrent_path, "--data", mirror_data)
    try:
        mirror.wait_seeding()
        # A's store loses a byte of one blob and all of another; a third, never released
        # (restricted rights), is damaged too
        (flip_sha, _), (gone_sha, _) = files[0], files[-1]
        flipped = blob_path(arc, flip_sha)
        raw = bytearray(flipped.read_bytes())
        raw[len(raw) // 3] ^= 0x40
        flipped.write_bytes(bytes(raw))
        blob_path(arc, gone_sha).unlink()
        released = {sha for sha, _ in files}
        conn = arc.connect_state(readonly=True)
        dark = next(
            sha
            for (sha,) in conn.execute("SELECT sha256 FROM blobs ORDER BY sha256")
            if sha not in released
        )
        conn.close()
        dark_bytes = blob_path(arc, dark).read_bytes()
        blob_path(arc, dark).unlink()

        result = cli("audit", "--repair", "--json", check=False)
        data = json.loads(result.output)
        assert result.exit_code == 1  # the dark blob cannot be repaired
        outcome = {r["sha256"]: r for r in data["repairs"]}
        assert outcome[flip_sha]["status"] == "repaired"
        assert outcome[gone_sha]["status"] == "repaired"
        assert outcome[dark]["status"] == "unrepairable"
        assert outcome[dark]["detail"] == "no release holds it"
        assert data["counts"] == {"changed": 1, "missing": 2, "untracked": 0}
        # the audit history keeps the repairs
        history = arc.connect_state(readonly=True)
        (kept,) = history.execute("SELECT result FROM audits ORDER BY id DESC LIMIT 1").fetchone()
        history.close()
        assert {r["sha256"] for r in json.loads(kept)["repairs"]} == {flip_sha, gone_sha, dark}
        assert not (arc.staging_dir / "repair").exists() or not any(
            (arc.staging_dir / "repair").iterdir()
        )
    finally:
        mirror.stop()

    # put the dark blob back by hand: the next full audit is clean, the release folder too
    blob_path(arc, dark).write_bytes(dark_bytes)
    final = json.loads(cli("audit", "--level", "full", "--json").output)
    assert final["ok"] and final["counts"] == {"changed": 0, "missing": 0, "untracked": 0}
    assert cli("verify", "--release", "r1").output.startswith("OK ")

    # a volunteer's copy heals from A: `verify --repair` on the mirror's folder
    victim = mirror_data / files[1][1].removeprefix(f"{torrent.name}/")
    victim.unlink()
    origin = SeedProcess(arc.root, "r1")
    try:
        origin.wait_seeding()
        out = Runner(mirror_archive)(
            "verify", torrent_path, "--data", mirror_data, "--repair", "--json", check=False
        )
    finally:
        origin.stop()
    rep = json.loads(out.output)
    assert out.exit_code == 0, out.output
    assert [r["status"] for r in rep["repairs"]] == ["repaired"]
    assert Runner(mirror_archive)("verify", torrent_path, "--data", mirror_data).output.startswith(
        "OK "
    )
    shutil.rmtree(tmp_path / "mirror", ignore_errors=True)
