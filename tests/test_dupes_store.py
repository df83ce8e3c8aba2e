"""`musicark dupes`: exact duplicates, preferred renditions (and overrides), acoustic near-dups."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import numpy as np

from musicark.store.acoustic import bit_error_rate
from tests.audio import import_catalog_rows, make_file, track


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_preferred_rendition_lossless_then_bitrate_and_override(run, archive, tmp_path) -> None:
    import_catalog_rows(
        archive, [track("t1", "Silver Moon", "Anna Berg", isrc="SEABC2400007")], tmp_path
    )
    src = tmp_path / "in"
    src.mkdir()
    tags = {"title": "Silver Moon", "artist": "Anna Berg", "isrc": "SEABC2400007"}
    low = make_file(src / "low.mp3", seed=7, seconds=4, bitrate=96_000, tags=tags)
    high = make_file(src / "high.mp3", seed=7, seconds=4, bitrate=256_000, tags=tags)
    run("ingest", src, "--jobs", "1", "--no-fingerprint")
    data = json.loads(run("dupes", "--json").output)
    (group,) = data["same_recording"]
    best = [r for r in group["renditions"] if r["preferred"]]
    assert [r["sha256"] for r in best] == [sha(high)]
    assert best[0][
        "preferred_reason"
    ] == "higher bit rate (mp3float 256 kbit/s over mp3float 96 kbit/s)" or (
        best[0]["preferred_reason"].startswith("higher bit rate")
    )
    lossless = make_file(tmp_path / "lossless.flac", seed=7, seconds=4, tags=tags)
    run("ingest", lossless, "--jobs", "1", "--no-fingerprint")
    data = json.loads(run("dupes", "--json").output)
    (group,) = data["same_recording"]
    assert len(group["renditions"]) == 3
    best = [r for r in group["renditions"] if r["preferred"]]
    assert [r["sha256"] for r in best] == [sha(lossless)]
    assert best[0]["preferred_reason"].startswith("lossless (flac")

    # the operator overrides the rule, and it sticks across later ingests
    out = run("dupes", "--prefer", sha(low)).output
    assert f"preferred {sha(low)}" in out
    make_file(src / "another.ogg", seed=7, seconds=4, tags=tags)
    run("ingest", src, "--jobs", "1", "--no-fingerprint")
    conn = sqlite3.connect(archive.state_path)
    rows = conn.execute(
        "SELECT sha256, preferred_reason FROM renditions WHERE preferred = 1"
    ).fetchall()
    assert rows == [(sha(low), "chosen by the operator")]
    assert (
        conn.execute("SELECT count(*) FROM renditions WHERE track_id IS NOT NULL").fetchone()[0]
        == 4
    )
    text = run("dupes").output
    assert "* " + sha(low) in text


def test_prefer_refuses_unknown_or_malformed(run) -> None:
    bad = run("dupes", "--prefer", "abc", check=False)
    assert bad.exit_code == 2 and "full sha256" in bad.output
    unknown = run("dupes", "--prefer", "0" * 64, check=False)
    assert unknown.exit_code == 1 and "no blob" in unknown.output


def test_acoustic_finds_reencodes_and_trimmed_copies_not_other_songs(
    run, archive, tmp_path
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    original = make_file(src / "song.flac", seed=31, seconds=12)
    reencode = make_file(src / "song.ogg", seed=31, seconds=12)
    trimmed = make_file(
        src / "song-trimmed.mp3", seed=31, seconds=12, trim_start=2.5, bitrate=128_000
    )
    others = [make_file(src / f"other{i}.opus", seed=200 + i, seconds=12) for i in range(4)]
    run("ingest", src, "--jobs", "1")
    data = json.loads(run("dupes", "--acoustic", "--json").output)
    pairs = {frozenset((d["a"], d["b"])): d for d in data["acoustic"]}
    same = {sha(original), sha(reencode), sha(trimmed)}
    assert frozenset((sha(original), sha(reencode))) in pairs
    assert frozenset((sha(original), sha(trimmed))) in pairs
    for pair, d in pairs.items():
        assert pair <= same, f"a different song was reported: {d}"
        assert d["ber"] < 0.15
    cut = pairs[frozenset((sha(original), sha(trimmed)))]
    assert 2.0 <= abs(cut["offset_s"]) <= 3.0  # aligned by the trim
    assert len(others) == 4 and data["blobs"] == 7
    # an ingest killed before it wrote its buffered postings: `dupes` indexes them first
    conn = sqlite3.connect(archive.state_path)
    with conn:
        conn.execute("DELETE FROM fp_chunks")
        conn.execute("DELETE FROM fp_segments")
    conn.close()
    assert json.loads(run("dupes", "--acoustic", "--json").output)["acoustic"] == data["acoustic"]
    # an archive from before the index had segments: the upgrade drops the old table and
    # the index is rebuilt from the fingerprints, to the same answer
    conn = sqlite3.connect(archive.state_path)
    conn.executescript(
        "DROP TABLE fp_chunks; DROP TABLE fp_segments;"
        " CREATE TABLE fp_index (value INTEGER NOT NULL, fp_id INTEGER NOT NULL,"
        " pos INTEGER NOT NULL, PRIMARY KEY (value, fp_id, pos)) WITHOUT ROWID;"
        " UPDATE schema_versions SET version = 2 WHERE domain = 'store';"
    )
    conn.close()
    assert json.loads(run("dupes", "--acoustic", "--json").output)["acoustic"] == data["acoustic"]


def test_bit_error_rate_alignment() -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 2**32, 200, dtype=np.uint64).astype(np.uint32)
    b = a[17:].copy()
    assert bit_error_rate(a, b, 17) == (0.0, 183)
    ber, _ = bit_error_rate(a, b, 0)
    assert 0.4 < ber < 0.6
    c = rng.integers(0, 2**32, 200, dtype=np.uint64).astype(np.uint32)
    assert bit_error_rate(a, c, 0)[0] > 0.4
