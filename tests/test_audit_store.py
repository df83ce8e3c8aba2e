"""`musicark audit`: presence, size and full fixity checks, recorded in state.sqlite."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from musicark.archive import Archive
from musicark.store.audit import last_audit
from tests.audio import make_file


@pytest.fixture
def stored(run, archive: Archive, tmp_path: Path) -> list[Path]:
    src = tmp_path / "in"
    src.mkdir()
    for i, ext in enumerate(["mp3", "flac", "ogg"]):
        make_file(src / f"f{i}.{ext}", seed=70 + i, seconds=3)
    run("ingest", src, "--jobs", "1", "--no-fingerprint")
    blobs = sorted(p for p in archive.store_dir.rglob("*") if p.is_file())
    assert len(blobs) == 3
    return blobs


@pytest.mark.parametrize("level", ["presence", "size", "full"])
def test_clean_store_passes_at_every_level(run, archive, stored, level) -> None:
    result = run("audit", "--level", level)
    assert f"audit ({level}) ok: 3 blobs checked" in result.output
    data = json.loads(run("audit", "--level", level, "--json").output)
    assert data["ok"] and data["checked"] == 3
    assert data["bytes"] == (sum(p.stat().st_size for p in stored) if level == "full" else 0)


def test_changed_missing_and_untracked_are_reported_with_exit_status(run, archive, stored) -> None:
    flipped, gone, resized = stored
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0x01  # same size, different bytes
    flipped.write_bytes(bytes(data))
    gone.unlink()
    with open(resized, "ab") as f:
        f.write(b"!")
    stray = archive.store_dir / "ab" / "cd" / "not-a-blob.txt"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_text("hello")
    misplaced = archive.store_dir / "00" / "00" / ("f" * 64)
    misplaced.parent.mkdir(parents=True, exist_ok=True)
    misplaced.write_text("x")

    presence = run("audit", "--level", "presence", "--json", check=False)
    assert presence.exit_code == 1
    p = json.loads(presence.output)
    assert p["missing"] == [gone.name] and p["changed"] == []
    assert sorted(p["untracked"]) == sorted(
        [os.path.join("00", "00", "f" * 64), os.path.join("ab", "cd", "not-a-blob.txt")]
    )

    size = json.loads(run("audit", "--level", "size", "--json", check=False).output)
    assert [c["sha256"] for c in size["changed"]] == [resized.name]

    full = run("audit", "--level", "full", check=False)
    assert full.exit_code == 1
    assert f"changed {flipped.name}: hashes to" in full.output
    assert f"changed {resized.name}: size" in full.output
    assert f"missing {gone.name}" in full.output
    assert "untracked store/ab/cd/not-a-blob.txt" in full.output
    assert "PROBLEMS" in full.output

    last = last_audit(archive)
    assert last is not None and last["level"] == "full" and not last["ok"]
    assert last["counts"] == {"changed": 2, "missing": 1, "untracked": 2}


def test_audit_of_an_empty_store(run) -> None:
    data = json.loads(run("audit", "--json").output)
    assert data["ok"] and data["checked"] == 0


def test_bad_level_is_a_usage_error(run) -> None:
    result = run("audit", "--level", "sometimes", check=False)
    assert result.exit_code == 2


def test_last_audit_before_any_audit(archive) -> None:
    assert last_audit(archive) is None
