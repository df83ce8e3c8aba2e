"""The inverted index over fingerprint values: a look-up returns exactly the postings a plain
value -> (fp_id, pos) map holds, sorted as the one-row-per-posting B-tree returned them,
through flushes, merges of several levels, a killed run and the next run's catch-up."""

from __future__ import annotations

import subprocess
from collections import defaultdict
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from musicark.archive import init_archive
from musicark.sqlite import transaction
from musicark.store import fpindex, schema
from musicark.store.acoustic import _signed, add_fingerprint, candidates


@pytest.fixture
def small(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny chunks, buffers and fan-in, so a few hundred fingerprints span many segments."""
    monkeypatch.setattr(fpindex, "CHUNK", 8)
    monkeypatch.setattr(fpindex, "FLUSH_POSTINGS", 150)
    monkeypatch.setattr(fpindex, "FANIN", 3)
    monkeypatch.setattr(fpindex, "COMMIT_CHUNKS", 5)
    monkeypatch.setattr(fpindex, "PAGE_CHUNKS", 3)


def _fingerprints(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    # a small value space (many shared values, both halves of the 32-bit range) and one
    # value in almost every fingerprint, whose postings run over many chunks
    space = rng.integers(0, 2**32, 60, dtype=np.uint64).astype(np.uint32)
    space[0] = next(v for v in range(1000) if len(fpindex.sampled(np.array([v], np.uint32))))
    out = []
    for _ in range(n):
        values = space[rng.integers(0, len(space), int(rng.integers(5, 60)))]
        values[: int(rng.integers(0, 3))] = space[0]
        out.append(values.astype(np.uint32))
    return out


def _store(conn, fps: list[np.ndarray], first_id: int) -> None:
    with transaction(conn):
        for i, values in enumerate(fps, start=first_id):
            sha = f"{i:064x}"
            conn.execute("INSERT INTO blobs (sha256, size, added) VALUES (?, 1, 'now')", (sha,))
            assert add_fingerprint(conn, sha, i, values.astype("<u4").tobytes(), None)


def _expected(fps: list[np.ndarray]) -> dict[int, list[tuple[int, int]]]:
    index: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for fp_id, values in enumerate(fps, start=1):
        for p in fpindex.sampled(values):
            index[_signed(int(values[p]))].append((fp_id, int(p)))
    return {v: sorted(postings) for v, postings in index.items()}


def _check(conn, fps: list[np.ndarray]) -> None:
    expected = _expected(fps)
    for value, postings in expected.items():
        assert fpindex.lookup(conn, value, 10**6) == postings
        assert fpindex.lookup(conn, value, 3) == postings[:3]
    for absent in (-(2**31), 2**31 - 1, 12345):
        if absent not in expected:
            assert fpindex.lookup(conn, absent, 10) == []


def test_lookups_through_flushes_and_merges(tmp_path: Path, small: None) -> None:
    conn = schema.connect(init_archive(tmp_path / "a"))
    fps = _fingerprints(300, seed=1)
    _store(conn, fps, 1)
    writer = fpindex.IndexWriter(conn)
    for fp_id, values in enumerate(fps, start=1):
        writer.add(fp_id, values)
        if writer.full():
            writer.flush()
    writer.flush()
    levels = [r[0] for r in conn.execute("SELECT level FROM fp_segments WHERE live")]
    assert max(levels) >= 2 and len(levels) < 3 * (max(levels) + 1)  # merged, bounded
    assert not conn.execute("SELECT 1 FROM fp_segments WHERE NOT live").fetchone()
    ranges = conn.execute("SELECT first_fp, last_fp FROM fp_segments ORDER BY first_fp").fetchall()
    assert ranges[0][0] == 1 and ranges[-1][1] == 300
    assert all(a[1] + 1 == b[0] for a, b in pairwise(ranges))
    _check(conn, fps)
    # votes are counted from the same postings, in the same order, as before
    votes = candidates(conn, 7, fps[6])
    assert votes and all(other != 7 for other, _offset in votes)


def test_killed_run_is_indexed_by_the_next(tmp_path: Path, small: None) -> None:
    conn = schema.connect(init_archive(tmp_path / "a"))
    fps = _fingerprints(120, seed=2)
    _store(conn, fps[:80], 1)
    writer = fpindex.IndexWriter(conn)
    for fp_id, values in enumerate(fps[:80], start=1):
        writer.add(fp_id, values)
        if writer.full():
            writer.flush()
    # killed: the buffer is lost, and a flush was cut off half-way through its segment
    assert writer.buffered
    flushed = conn.execute("SELECT max(last_fp) FROM fp_segments WHERE live").fetchone()[0]
    _store(conn, fps[80:], 81)
    half = fpindex._SegmentWriter(conn, 0, 81, 120)
    values = np.sort(fps[80].view(np.int32))
    half.add(values, np.full(len(values), 81, np.uint32), np.arange(len(values), dtype=np.uint16))
    half._cut(final=True)
    # while its writer lives (another ingest, now), a segment being written is left alone
    fpindex.IndexWriter(conn)
    assert conn.execute("SELECT 1 FROM fp_segments WHERE id = ?", (half.id,)).fetchone()
    gone = subprocess.Popen(["true"])
    gone.wait()
    with transaction(conn):
        conn.execute("UPDATE fp_segments SET pid = ? WHERE id = ?", (gone.pid, half.id))
    assert fpindex.index_all(conn) == 120 - flushed
    assert not conn.execute("SELECT 1 FROM fp_segments WHERE NOT live").fetchone()
    _check(conn, fps)
    assert fpindex.index_all(conn) == 0  # nothing left to do
    _check(conn, fps)
