"""Deterministic ids: a 63-bit hash of (source, kind, external id).

    id = splitmix64(fnv1a64(utf8(source) 0x1F utf8(kind) 0x1F utf8(external_id))) >> 1

Two archives built from the same inputs hold the same ids, whatever the import order.
`hash_strings` computes the same value for a whole Arrow column at once.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK = (1 << 64) - 1
SEP = "\x1f"


def _splitmix(h: int) -> int:
    h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9 & _MASK
    h = (h ^ (h >> 27)) * 0x94D049BB133111EB & _MASK
    return h ^ (h >> 31)


def stable_hash(text: str) -> int:
    """The 63-bit hash of one string (see the module docstring)."""
    h = _FNV_OFFSET
    for byte in text.encode("utf-8", "surrogatepass"):
        h = ((h ^ byte) * _FNV_PRIME) & _MASK
    return _splitmix(h) >> 1


def entity_id(source: str, kind: str, external_id: str) -> int:
    return stable_hash(f"{source}{SEP}{kind}{SEP}{external_id}")


def source_id(source: str) -> int:
    return stable_hash(source)


def hash_strings(values: pa.Array | pa.ChunkedArray, *, prefix: str = "") -> np.ndarray:
    """`stable_hash(prefix + v)` for every (non-null) string of an Arrow column, as int64.

    Vectorised over the column: one numpy pass per byte position, so the cost is
    rows x longest value, with no Python per row. Nulls hash as the empty string.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    arr = pc.fill_null(values.cast(pa.large_string()), "")
    n = len(arr)
    h0 = _FNV_OFFSET
    for byte in prefix.encode("utf-8"):
        h0 = ((h0 ^ byte) * _FNV_PRIME) & _MASK
    h = np.full(n, h0, dtype=np.uint64)
    if n:
        bufs = arr.buffers()
        offsets = np.frombuffer(bufs[1], dtype=np.int64, count=n + 1, offset=arr.offset * 8)
        data = (
            np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(1, np.uint8)
        )
        starts = offsets[:-1]
        lengths = offsets[1:] - starts
        prime = np.uint64(_FNV_PRIME)
        live = np.arange(n)
        pos = 0
        with np.errstate(over="ignore"):
            while True:
                live = live[lengths[live] > pos]
                if live.size == 0:
                    break
                b = data[starts[live] + pos].astype(np.uint64)
                h[live] = (h[live] ^ b) * prime
                pos += 1
            h ^= h >> np.uint64(30)
            h *= np.uint64(0xBF58476D1CE4E5B9)
            h ^= h >> np.uint64(27)
            h *= np.uint64(0x94D049BB133111EB)
            h ^= h >> np.uint64(31)
    return (h >> np.uint64(1)).astype(np.int64)
