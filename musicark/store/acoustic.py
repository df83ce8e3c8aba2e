"""Acoustic near-duplicates: an inverted index over Chromaprint values, alignment, bit errors.

At ingest each fingerprint's values go into an inverted index (value -> fp_id, pos;
`fpindex.py`), keeping a content-defined sample of them (a value is indexed when a hash
of it falls in 1/SAMPLE of the range), so two renditions index the same values whatever
their offset. To find a
file's near-duplicates, its sampled values are looked up in the index; each hit votes
for an alignment offset; the best-voted candidates are compared at that offset (and
its neighbours) by bit error rate over the overlap. Renditions of one recording differ
in ~0-6 % of bits, different recordings in ~42-51 %: the default threshold is 15 %.
No pairwise scan: the work per file is its index lookups plus a few comparisons.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from musicark.store import fpindex
from musicark.store.fingerprint import SECONDS_PER_VALUE, from_bytes

MAX_POSTINGS = 2000  # values this common (silence, hum) are not evidence
MIN_VOTES = 2
MIN_OVERLAP = 24  # values (~3 s)
THRESHOLD = 0.15


def add_fingerprint(
    conn: sqlite3.Connection, sha256: str, fp_id: int, data: bytes, duration_ms: int | None
) -> bool:
    """Store a fingerprint (inside the caller's transaction); False when the blob has one.
    Its values are indexed by an `fpindex.IndexWriter` once the transaction commits."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO fingerprints (sha256, id, duration_ms, fp) VALUES (?,?,?,?)",
        (sha256, fp_id, duration_ms, data),
    )
    return cur.rowcount == 1


def _signed(v: int) -> int:
    return v - (1 << 32) if v >= 1 << 31 else v


def bit_error_rate(a: np.ndarray, b: np.ndarray, offset: int) -> tuple[float, int]:
    """BER of a against b shifted: a[i] is compared with b[i - offset]. (ber, overlap)."""
    if offset >= 0:
        x, y = a[offset:], b
    else:
        x, y = a, b[-offset:]
    n = min(len(x), len(y))
    if n <= 0:
        return 1.0, 0
    xor = np.bitwise_xor(x[:n], y[:n]).view(np.uint8)
    return float(np.unpackbits(xor).sum()) / (32 * n), n


@dataclass(frozen=True)
class NearDuplicate:
    a: str
    b: str
    ber: float
    offset_s: float  # b starts this many seconds into a (negative: a starts into b)
    overlap_s: float


def _load(conn: sqlite3.Connection, fp_id: int) -> tuple[str, np.ndarray] | None:
    row = conn.execute("SELECT sha256, fp FROM fingerprints WHERE id = ?", (fp_id,)).fetchone()
    return (row[0], from_bytes(row[1])) if row else None


def candidates(
    conn: sqlite3.Connection, fp_id: int, values: np.ndarray, segments: list[int] | None = None
) -> Counter[tuple[int, int]]:
    """Votes for (other fp_id, offset) from the index hits of `values`' sampled values."""
    votes: Counter[tuple[int, int]] = Counter()
    if segments is None:
        segments = fpindex.live_segments(conn)
    for p in fpindex.sampled(values):
        rows = fpindex.lookup(conn, _signed(int(values[p])), MAX_POSTINGS + 1, segments)
        if len(rows) > MAX_POSTINGS:
            continue
        for other, pos in rows:
            if other != fp_id:
                votes[(other, int(p) - pos)] += 1
    return votes


def near_duplicates_of(
    conn: sqlite3.Connection,
    fp_id: int,
    values: np.ndarray,
    *,
    threshold: float = THRESHOLD,
    segments: list[int] | None = None,
) -> Iterator[tuple[int, float, int, int]]:
    """(other fp_id, ber, offset, overlap) for every indexed fingerprint close to `values`."""
    votes = candidates(conn, fp_id, values, segments)
    best: dict[int, tuple[int, int]] = {}
    for (other, offset), n in votes.items():
        if n >= MIN_VOTES and (other not in best or n > best[other][0]):
            best[other] = (n, offset)
    for other, (_n, offset) in best.items():
        loaded = _load(conn, other)
        if loaded is None:
            continue
        theirs = loaded[1]
        trials = [(*bit_error_rate(values, theirs, offset + d), offset + d) for d in (-1, 0, 1)]
        ber, overlap, off = min(trials, key=lambda t: t[0])
        if overlap >= min(MIN_OVERLAP, len(values), len(theirs)) and ber <= threshold:
            yield other, ber, off, overlap


def find_near_duplicates(
    conn: sqlite3.Connection, *, threshold: float = THRESHOLD
) -> list[NearDuplicate]:
    """Every pair of fingerprinted blobs that sound the same (each pair once)."""
    out: list[NearDuplicate] = []
    segments = fpindex.live_segments(conn)
    cursor = conn.execute("SELECT id, sha256, fp FROM fingerprints ORDER BY id")
    while True:
        rows = cursor.fetchmany(256)
        if not rows:
            break
        for fp_id, sha, data in rows:
            values = from_bytes(data)
            for other, ber, offset, overlap in near_duplicates_of(
                conn, fp_id, values, threshold=threshold, segments=segments
            ):
                if other < fp_id:
                    continue
                loaded = _load(conn, other)
                assert loaded is not None
                out.append(
                    NearDuplicate(
                        a=sha,
                        b=loaded[0],
                        ber=round(ber, 4),
                        offset_s=round(offset * SECONDS_PER_VALUE, 2),
                        overlap_s=round(overlap * SECONDS_PER_VALUE, 2),
                    )
                )
    return out
