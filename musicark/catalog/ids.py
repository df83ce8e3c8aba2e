"""Deterministic ids: a 63-bit hash of (source, kind, external id).

    key  = utf8(source) 0x1F utf8(kind) 0x1F utf8(external_id)
    h    = 0x9E3779B97F4A7C15 xor len(key)
    for each 8-byte little-endian word w of key (the last one zero-padded):
        h = ((h xor w) * 0xBF58476D1CE4E5B9) mod 2^64;  h = h xor (h >> 31)
    id   = splitmix64_finalizer(h) >> 1

Two archives built from the same inputs hold the same ids, whatever the import order.
`hash_strings` computes the same value for a whole Arrow column at once, a word at a
time across all rows, while many rows are still that long; the last few long values are
finished one by one over their words (`_hash_tail`), so the cost stays linear in the
column's bytes even for one 16 MiB value among short ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pyarrow is imported by `hash_strings` only: ingest and search never load it
    import pyarrow as pa

_SEED = 0x9E3779B97F4A7C15
_MUL = 0xBF58476D1CE4E5B9
_MASK = (1 << 64) - 1
SEP = "\x1f"
# Below this many values still being hashed, a numpy pass per word costs more than
# finishing each value alone.
_VECTOR_MIN = 64


def _finalize(h: int) -> int:
    h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9 & _MASK
    h = (h ^ (h >> 27)) * 0x94D049BB133111EB & _MASK
    return h ^ (h >> 31)


def stable_hash(text: str) -> int:
    """The 63-bit hash of one string (see the module docstring)."""
    data = text.encode("utf-8", "surrogatepass")
    h = _SEED ^ len(data)
    for i in range(0, len(data), 8):
        h = ((h ^ int.from_bytes(data[i : i + 8], "little")) * _MUL) & _MASK
        h ^= h >> 31
    return _finalize(h) >> 1


def entity_id(source: str, kind: str, external_id: str) -> int:
    return stable_hash(f"{source}{SEP}{kind}{SEP}{external_id}")


def source_id(source: str) -> int:
    return stable_hash(source)


def _hash_tail(h: int, raw: bytes, start: int, length: int) -> int:
    """Continue a hash over `length` more bytes of `raw` from `start`, in Python ints."""
    body = length - length % 8
    words = np.frombuffer(raw, dtype="<u8", count=body // 8, offset=start).tolist()
    tail = raw[start + body : start + length]
    if tail:
        words.append(int.from_bytes(tail, "little"))
    for w in words:
        h = ((h ^ w) * _MUL) & _MASK
        h ^= h >> 31
    return h


def hash_strings(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """`stable_hash(v)` for every string of an Arrow column, as int64 (null as "")."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    arr = pc.fill_null(values.cast(pa.large_string()), "")
    n = len(arr)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64, count=n + 1, offset=arr.offset * 8)
    raw = bufs[2].to_pybytes() if bufs[2] is not None else b""
    padded = np.frombuffer(raw + b"\0" * 16, dtype=np.uint8)
    # Every byte offset viewed as the start of a little-endian 64-bit word (unaligned).
    words = np.ndarray(shape=(len(padded) - 8,), dtype="<u8", buffer=padded, strides=(1,))
    starts = offsets[:-1]
    lengths = offsets[1:] - starts
    mul = np.uint64(_MUL)
    h = np.uint64(_SEED) ^ lengths.astype(np.uint64)
    live = np.flatnonzero(lengths > 0)
    pos = 0
    with np.errstate(over="ignore"):
        while live.size >= _VECTOR_MIN:
            w = words[starts[live] + pos]
            remaining = lengths[live] - pos
            short = remaining < 8
            if short.any():
                keep_bits = np.where(short, remaining * 8, 0).astype(np.uint64)
                w = np.where(short, w & ((np.uint64(1) << keep_bits) - np.uint64(1)), w)
            x = (h[live] ^ w) * mul
            h[live] = x ^ (x >> np.uint64(31))
            pos += 8
            live = live[lengths[live] > pos]
        for i in live.tolist():
            h[i] = _hash_tail(int(h[i]), raw, int(starts[i]) + pos, int(lengths[i]) - pos)
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    return (h >> np.uint64(1)).astype(np.int64)
