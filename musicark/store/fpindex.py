"""The inverted index over fingerprint values (`fp_segments`, `fp_chunks`): value -> (fp_id, pos).

A log-structured index, as search engines keep theirs. Ingest buffers the postings of the
fingerprints it records in memory and writes them out, sorted by value, as a new segment:
a run of chunks, each one row holding a few hundred postings as packed arrays. Segments
of one level are merged FANIN at a time into one segment of the next level, by a streaming
merge. Every write is an append of sorted data, so the cost per fingerprint does not grow
with the index (a B-tree keyed by value took one random page write per posting, and its
commit rate fell as the index grew).

Postings are derived from `fingerprints`: segments cover contiguous ranges of fingerprint
ids, and whatever is above the highest indexed id (the buffer of a run that was killed)
is indexed again by the next writer (`IndexWriter.catch_up`). A segment is written in
several transactions, invisible (`live = 0`) until one last transaction swaps it for the
segments it replaces; what a killed merge or flush left behind is removed by the next
writer (a segment whose writing process is gone; one another ingest is writing is left).

Segments cover disjoint fingerprint ranges and are read in range order, so the postings of
a value come out sorted by (fp_id, pos), as they did from the B-tree.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator

import numpy as np

from musicark.sqlite import transaction
from musicark.store.blobs import process_alive

CHUNK = 384  # postings per chunk row: 3 840 bytes, one 4 KiB page
FLUSH_POSTINGS = 4_000_000  # the in-memory buffer (~40 MB, ~16 k full-length fingerprints)
FANIN = 8  # segments of one level merged into one of the next
COMMIT_CHUNKS = 2_000  # chunks per transaction while a segment is written
PAGE_CHUNKS = 256  # chunks a merge reads from each segment at a time
SAMPLE = 4  # index one value in SAMPLE (content-defined)

Postings = tuple[np.ndarray, np.ndarray, np.ndarray]  # values int32, fp ids uint32, pos uint16


def sampled(values: np.ndarray) -> np.ndarray:
    """Positions of the values to index (a hash of the value, not of the position)."""
    mixed = (values.astype(np.uint64) * np.uint64(0x9E3779B1)) & np.uint64(0xFFFFFFFF)
    return np.nonzero((mixed >> np.uint64(28)) % np.uint64(SAMPLE) == 0)[0]


def encode(values: np.ndarray, ids: np.ndarray, pos: np.ndarray) -> bytes:
    return (
        values.astype("<i4").tobytes() + ids.astype("<u4").tobytes() + pos.astype("<u2").tobytes()
    )


def decode(data: bytes) -> Postings:
    n = len(data) // 10
    return (
        np.frombuffer(data, "<i4", n, 0),
        np.frombuffer(data, "<u4", n, 4 * n),
        np.frombuffer(data, "<u2", n, 8 * n),
    )


def _by_value(values: np.ndarray) -> np.ndarray:
    """The order of a stable sort by value: one sort of unique 64-bit keys (value, index),
    3x faster than numpy's stable sort of 32-bit values."""
    key = (values.astype(np.int64) + 2**31).astype(np.uint64) << np.uint64(32)
    key |= np.arange(len(values), dtype=np.uint64)
    key.sort()
    return (key & np.uint64(0xFFFFFFFF)).astype(np.intp)


def _live(conn: sqlite3.Connection) -> list[int]:
    return [r[0] for r in conn.execute("SELECT id FROM fp_segments WHERE live ORDER BY first_fp")]


def lookup(
    conn: sqlite3.Connection, value: int, limit: int, segments: list[int] | None = None
) -> list[tuple[int, int]]:
    """Up to `limit` postings (fp_id, pos) of a value (signed 32-bit), by fp_id then pos."""
    out: list[tuple[int, int]] = []
    for seg in _live(conn) if segments is None else segments:
        row = conn.execute(
            "SELECT last_value, data FROM fp_chunks WHERE segment = ? AND first_value <= ?"
            " ORDER BY first_value DESC LIMIT 1",
            (seg, value),
        ).fetchone()
        if row is None or row[0] < value:
            continue
        values, ids, pos = decode(row[1])
        lo, hi = np.searchsorted(values, value, "left"), np.searchsorted(values, value, "right")
        out.extend(zip(ids[lo:hi].tolist(), pos[lo:hi].tolist(), strict=True))
        if len(out) >= limit:
            return out[:limit]
    return out


def live_segments(conn: sqlite3.Connection) -> list[int]:
    """The segments a series of `lookup`s reads (one snapshot of the index)."""
    return _live(conn)


class _SegmentWriter:
    """Writes one segment (not live yet) from postings given in value order, whole values
    at a time; chunks never split the postings of one value."""

    def __init__(self, conn: sqlite3.Connection, level: int, first_fp: int, last_fp: int) -> None:
        self.conn = conn
        with transaction(conn):
            self.id = int(
                conn.execute(
                    "INSERT INTO fp_segments (level, first_fp, last_fp, postings, live, pid)"
                    " VALUES (?, ?, ?, 0, 0, ?)",
                    (level, first_fp, last_fp, os.getpid()),
                ).lastrowid
                or 0
            )
        self.parts: list[Postings] = []
        self.held = 0
        self.rows: list[tuple[int, int, int, bytes]] = []
        self.postings = 0

    def add(self, values: np.ndarray, ids: np.ndarray, pos: np.ndarray) -> None:
        if len(values):
            self.parts.append((values, ids, pos))
            self.held += len(values)
        if self.held >= 16 * CHUNK:
            self._cut(final=False)

    def _cut(self, *, final: bool) -> None:
        if not self.parts:
            return
        values, ids, pos = (np.concatenate(a) for a in zip(*self.parts, strict=True))
        n, start = len(values), 0
        while n - start >= CHUNK or (final and start < n):
            end = min(start + CHUNK, n)
            if end < n:  # the rest of this value goes in the same chunk
                end = int(np.searchsorted(values, values[end - 1], "right"))
            if end == n and not final:
                break  # maybe more of the last value in the next call: keep it
            self.rows.append(
                (
                    self.id,
                    int(values[start]),
                    int(values[end - 1]),
                    encode(values[start:end], ids[start:end], pos[start:end]),
                )
            )
            start = end
        self.postings += start
        self.parts = [(values[start:], ids[start:], pos[start:])] if start < n else []
        self.held = n - start
        if len(self.rows) >= COMMIT_CHUNKS or final:
            with transaction(self.conn):
                self.conn.executemany(
                    "INSERT INTO fp_chunks (segment, first_value, last_value, data)"
                    " VALUES (?, ?, ?, ?)",
                    self.rows,
                )
            self.rows = []

    def publish(self, replaces: list[int]) -> None:
        """Make the segment live in place of `replaces`, in one transaction."""
        self._cut(final=True)
        with transaction(self.conn):
            _drop(self.conn, replaces)
            self.conn.execute(
                "UPDATE fp_segments SET live = 1, postings = ? WHERE id = ?",
                (self.postings, self.id),
            )


def _drop(conn: sqlite3.Connection, segments: list[int]) -> None:
    # postings hold nothing secret: freed pages need not be zeroed (which would write a
    # merged segment's every page once more)
    before = conn.execute("PRAGMA secure_delete").fetchone()[0]
    conn.execute("PRAGMA secure_delete = FAST")
    try:
        for seg in segments:
            conn.execute("DELETE FROM fp_chunks WHERE segment = ?", (seg,))
            conn.execute("DELETE FROM fp_segments WHERE id = ?", (seg,))
    finally:
        conn.execute(f"PRAGMA secure_delete = {int(before)}")


def _pages(conn: sqlite3.Connection, seg: int) -> Iterator[Postings]:
    """A segment's postings in value order, PAGE_CHUNKS whole chunks at a time (the merge's
    work per step is then numpy's, not Python's), without a cursor held across commits."""
    after: int | None = None
    while True:
        rows = conn.execute(
            "SELECT first_value, data FROM fp_chunks WHERE segment = ?"
            + ("" if after is None else " AND first_value > ?")
            + f" ORDER BY first_value LIMIT {PAGE_CHUNKS}",
            (seg,) if after is None else (seg, after),
        ).fetchall()
        if not rows:
            return
        chunks = [decode(data) for _first, data in rows]
        values, ids, pos = (np.concatenate(a) for a in zip(*chunks, strict=True))
        yield values, ids, pos
        after = rows[-1][0]


def merge(conn: sqlite3.Connection, segments: list[int], level: int) -> None:
    """Merge live segments (contiguous fingerprint ranges, in range order) into one."""
    marks = ",".join("?" * len(segments))
    lo, hi = conn.execute(
        f"SELECT min(first_fp), max(last_fp) FROM fp_segments WHERE id IN ({marks})", segments
    ).fetchone()
    out = _SegmentWriter(conn, level, lo, hi)
    sources = [_pages(conn, s) for s in segments]
    held: list[Postings | None] = [next(s, None) for s in sources]
    while any(h is not None for h in held):
        # every value up to the smallest last value held is complete in what is held
        bound = min(int(h[0][-1]) for h in held if h is not None)
        parts: list[Postings] = []
        for i, h in enumerate(held):
            if h is None:
                continue
            cut = int(np.searchsorted(h[0], bound, "right"))
            parts.append((h[0][:cut], h[1][:cut], h[2][:cut]))
            held[i] = (h[0][cut:], h[1][cut:], h[2][cut:]) if cut < len(h[0]) else None
            if held[i] is None:
                held[i] = next(sources[i], None)
        values, ids, pos = (np.concatenate(a) for a in zip(*parts, strict=True))
        order = _by_value(values)  # parts in fp order: (value, fp_id, pos)
        out.add(values[order], ids[order], pos[order])
    out.publish(segments)


class IndexWriter:
    """Buffers postings in memory and writes them out as segments (the ingest side)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.parts: list[Postings] = []
        self.buffered = 0
        self.first_fp: int | None = None
        self.last_fp = 0
        with transaction(conn):  # what a killed flush or merge left (not a running one)
            _drop(
                conn,
                [
                    seg
                    for seg, pid in conn.execute("SELECT id, pid FROM fp_segments WHERE NOT live")
                    if pid is None or not process_alive(pid)
                ],
            )

    def add(self, fp_id: int, values: np.ndarray) -> None:
        """Buffer a fingerprint's postings (fingerprints in ascending id order)."""
        positions = sampled(values)
        self.parts.append(
            (
                values[positions].view(np.int32),
                np.full(len(positions), fp_id, np.uint32),
                positions.astype(np.uint16),
            )
        )
        self.buffered += len(positions)
        if self.first_fp is None:
            self.first_fp = fp_id
        self.last_fp = fp_id

    def full(self) -> bool:
        return self.buffered >= FLUSH_POSTINGS

    def catch_up(self) -> int:
        """Index the fingerprints above the highest indexed id; returns how many."""
        indexed = (
            self.conn.execute("SELECT max(last_fp) FROM fp_segments WHERE live").fetchone()[0] or 0
        )
        top = max(indexed, self.last_fp)
        n = 0
        while True:
            rows = self.conn.execute(
                "SELECT id, fp FROM fingerprints WHERE id > ? ORDER BY id LIMIT 1000", (top,)
            ).fetchall()
            if not rows:
                return n
            for fp_id, data in rows:
                self.add(fp_id, np.frombuffer(data, "<u4"))
                if self.full():
                    self.flush()
            top, n = rows[-1][0], n + len(rows)

    def flush(self) -> None:
        """Write the buffer as a level-0 segment, then merge full levels."""
        if self.first_fp is None:
            return
        values, ids, pos = (np.concatenate(a) for a in zip(*self.parts, strict=True))
        order = _by_value(values)  # appended by (fp_id, pos)
        out = _SegmentWriter(self.conn, 0, self.first_fp, self.last_fp)
        out.add(values[order], ids[order], pos[order])
        out.publish([])
        self.parts, self.buffered, self.first_fp = [], 0, None
        level = 0
        while True:
            segs = [
                r[0]
                for r in self.conn.execute(
                    "SELECT id FROM fp_segments WHERE live AND level = ? ORDER BY first_fp",
                    (level,),
                )
            ]
            if len(segs) < FANIN:
                return
            merge(self.conn, segs[:FANIN], level + 1)
            level += 1


def index_all(conn: sqlite3.Connection) -> int:
    """Index whatever fingerprints the index lacks (a killed run's buffer); returns how many."""
    writer = IndexWriter(conn)
    n = writer.catch_up()
    writer.flush()
    return n
