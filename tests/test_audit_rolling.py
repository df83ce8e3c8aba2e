"""Rolling audits: least recently verified first, per-blob verification times."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from musicark.archive import Archive
from musicark.store.fixity import parse_duration, verification_status


@pytest.fixture
def stored(run, archive: Archive, tmp_path: Path) -> list[Path]:
    src = tmp_path / "in"
    src.mkdir()
    for i in range(10):
        (src / f"f{i}.bin").write_bytes(bytes([i]) * (1000 + i))
    # not audio: ingest keeps them out of the store, so write blobs through the store directly
    from musicark.store import schema
    from musicark.store.blobs import blob_path, hash_file

    conn = schema.connect(archive)
    for p in sorted(src.iterdir()):
        sha, size = hash_file(p)
        dest = blob_path(archive, sha)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(p.read_bytes())
        conn.execute(
            "INSERT INTO blobs (sha256, size, added) VALUES (?, ?, ?)", (sha, size, schema.now())
        )
    conn.close()
    return sorted(p for p in archive.store_dir.rglob("*") if p.is_file())


def _audit(run, *args: str) -> dict:
    result = run("audit", *args, "--json", check=False)
    return json.loads(result.output)


def _verified(archive: Archive) -> dict[str, str]:
    conn = sqlite3.connect(archive.state_path)
    try:
        return dict(conn.execute("SELECT sha256, verified FROM fixity"))
    finally:
        conn.close()


def test_two_half_runs_cover_the_whole_store(run, archive, stored) -> None:
    assert verification_status(archive)["never_verified"] == 10
    first = _audit(run, "--sample", "50")
    assert first["ok"] and first["checked"] == 5 and first["rolling"]["share_checked"] == 0.5
    after_first = _verified(archive)
    assert len(after_first) == 5
    second = _audit(run, "--sample", "50")
    assert second["checked"] == 5
    after_second = _verified(archive)
    # the second run took exactly the five the first one had not verified
    assert len(after_second) == 10 and set(after_first) <= set(after_second)
    assert all(after_second[s] == after_first[s] for s in after_first)
    status = verification_status(archive)
    assert status["never_verified"] == 0 and status["verified_recent_share"] == 1.0
    assert status["oldest_verified"] == min(after_second.values())
    # a third run starts again from the oldest verified
    third = _audit(run, "--sample", "50")
    assert third["checked"] == 5
    refreshed = {s for s, t in _verified(archive).items() if t != after_second[s]}
    assert refreshed == set(after_first)


def test_rolling_audit_finds_damage_and_puts_it_first(run, archive, stored) -> None:
    run("audit", "--level", "full")  # verifies all ten
    victim = stored[3]
    data = bytearray(victim.read_bytes())
    data[0] ^= 0xFF
    victim.write_bytes(bytes(data))
    gone = stored[7]
    gone.unlink()
    conn = sqlite3.connect(archive.state_path)
    # age both so that the rolling audit reaches them first
    old = (datetime.now(UTC) - timedelta(days=40)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    conn.execute(
        "UPDATE fixity SET verified = ? WHERE sha256 IN (?, ?)", (old, victim.name, gone.name)
    )
    conn.commit()
    conn.close()
    status = verification_status(archive)
    assert status["oldest_verified"] == old and status["verified_recent_share"] == 0.8
    result = run("audit", "--sample", "20", check=False)
    assert result.exit_code == 1
    assert f"changed {victim.name}" in result.output and f"missing {gone.name}" in result.output
    assert "rolling: 20.0% of 10 blobs checked" in result.output
    # damaged blobs lose their verification time: they come first again
    assert victim.name not in _verified(archive) and gone.name not in _verified(archive)
    assert verification_status(archive)["never_verified"] == 2


def test_budget_audit_and_bad_options(run, archive, stored) -> None:
    data = _audit(run, "--budget", "1m")
    assert data["checked"] == 10 and data["rolling"]["budget_seconds"] == 60
    bad = run("audit", "--budget", "soon", check=False)
    assert bad.exit_code == 2 and "--budget" in bad.output
    both = run("audit", "--sample", "10", "--budget", "1m", check=False)
    assert both.exit_code == 2
    zero = run("audit", "--sample", "0", check=False)
    assert zero.exit_code == 2 and "--sample" in zero.output


def test_parse_duration() -> None:
    assert parse_duration("90") == 90 and parse_duration("15m") == 900
    assert parse_duration("2h") == 7200 and parse_duration("1d") == 86400


def test_status_of_an_empty_archive(archive) -> None:
    status = verification_status(archive)
    assert status["blobs"] == 0 and status["oldest_verified"] is None


def test_repair_of_a_blob_no_release_holds(run, archive, stored) -> None:
    gone = stored[2]
    gone.unlink()
    result = run("audit", "--repair", "--json", check=False)
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["missing"] == [gone.name]
    assert data["repairs"] == [
        {
            "sha256": gone.name,
            "status": "unrepairable",
            "torrent": None,
            "path": None,
            "detail": "no release holds it",
        }
    ]
    assert not gone.exists()
    text = run("audit", "--sample", "100", "--repair", check=False).output
    assert f"unrepairable {gone.name}: no release holds it" in text
