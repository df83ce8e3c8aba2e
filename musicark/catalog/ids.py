"""Deterministic ids: a 63-bit hash of (source, kind, external id).

    key  = utf8(source) 0x1F utf8(kind) 0x1F utf8(external_id)
    h    = 0x9E3779B97F4A7C15 xor len(key)
    for each 8-byte little-endian word w of key (the last one zero-padded):
        h = ((h xor w) * 0xBF58476D1CE4E5B9) mod 2^64;  h = h xor (h >> 31)
    id   = splitmix64_finalizer(h) >> 1

Two archives built from the same inputs hold the same ids, whatever the import order.
`hash_strings` computes the same value for a whole Arrow column at once, a word at a
time across all rows: the first words over every row (finished rows masked out), then
over the rows still that long; the last few long values are finished one by one over
their words (`_hash_tail`), so the cost stays linear in the column's bytes even for one
16 MiB value among short ones.
"""

from __future__ import annotations

import numpy as np
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


# Keeps the first k bytes of a little-endian word, for k = 0..8.
_KEEP = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [_MASK], dtype=np.uint64)
# Words hashed for every value at once (finished values masked out) before the values
# still going on are gathered: catalogue strings are mostly short.
_DENSE_WORDS = 8


def _string_layout(values: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bytes, starts, lengths) of a string column, read in place; a null counts as ""."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if values.type not in (pa.string(), pa.large_string()):
        values = values.cast(pa.large_string())
    width = np.int64 if values.type == pa.large_string() else np.int32
    bufs = values.buffers()
    offsets = np.frombuffer(
        bufs[1], dtype=width, count=len(values) + 1, offset=values.offset * width().itemsize
    ).astype(np.int64)
    lengths = offsets[1:] - offsets[:-1]
    if values.null_count:
        lengths[~values.is_valid().to_numpy(zero_copy_only=False)] = 0
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    return data, offsets[:-1], lengths


def hash_strings(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """`stable_hash(v)` for every string of an Arrow column, as int64 (null as "")."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    data, starts, lengths = _string_layout(values)
    end = int((starts + lengths).max())
    padded = np.zeros(end + 8 * _DENSE_WORDS + 16, dtype=np.uint8)  # finished values read on
    padded[:end] = data[:end]
    # Every byte offset viewed as the start of a little-endian 64-bit word (unaligned).
    words = np.ndarray(shape=(len(padded) - 8,), dtype="<u8", buffer=padded, strides=(1,))
    mul, shift = np.uint64(_MUL), np.uint64(31)
    h = np.uint64(_SEED) ^ lengths.astype(np.uint64)
    dense = min(_DENSE_WORDS, (int(lengths.max()) + 7) // 8)
    with np.errstate(over="ignore"):
        for k in range(dense):
            left = lengths - 8 * k
            w = words[starts + 8 * k]
            w &= _KEEP[np.clip(left, 0, 8)]
            x = h ^ w
            x *= mul
            x ^= x >> shift
            h = np.where(left > 0, x, h)
        pos = 8 * dense
        live = np.flatnonzero(lengths > pos)
        while live.size >= _VECTOR_MIN:
            w = words[starts[live] + pos]
            w &= _KEEP[np.minimum(lengths[live] - pos, 8)]
            x = (h[live] ^ w) * mul
            h[live] = x ^ (x >> shift)
            pos += 8
            live = live[lengths[live] > pos]
        raw = padded.tobytes() if live.size else b""
        for i in live.tolist():
            h[i] = _hash_tail(int(h[i]), raw, int(starts[i]) + pos, int(lengths[i]) - pos)
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    return (h >> np.uint64(1)).astype(np.int64)
