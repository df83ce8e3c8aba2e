"""ISRCs as exact 64-bit keys: equal keys for equal ISRCs, without hashing well-formed ones."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from musicark.catalog.ids import hash_strings
from musicark.catalog.scan import ScanBatch

POOL = pa.system_memory_pool()  # see plan/load.py


_HI_ADD_LOW = np.uint64(0x5050505050505050)  # byte + 0x50 sets bit 7 iff byte >= 0x30
_HI_ADD_HIGH = np.uint64(0x2020202020202020)  # byte + 0x20 sets bit 7 iff byte >= 0x60
_LO_ADD_HIGH = np.uint64(0x40404040)  # byte + 0x40 sets bit 7 iff byte >= 0x40
_B7 = np.uint64(0x8080808080808080)
_B7_LO = np.uint64(0x80808080)
_M7 = np.uint64(0x7F7F7F7F7F7F7F7F)
_ZERO_HI = np.uint64(0x3030303030303030)
_ZERO_LO = np.uint64(0x30303030)


def _unaligned(data: np.ndarray, dtype: str, width: int) -> np.ndarray:
    """`view[i]` = the little-endian integer stored at byte offset i of `data`."""
    count = max(len(data) - width + 1, 0)
    return np.ndarray(shape=(count,), dtype=dtype, buffer=data, offset=0, strides=(1,))


def _isrc_words(data: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact 64-bit keys of 12-byte strings at `starts`, and which ones qualified.

    Qualifies: bytes 0-7 in 0x30-0x5F (digits, capitals) and bytes 8-11 in 0x30-0x3F
    (digits), as every ISRC is. Each of the first eight bytes keeps its 6 low bits after
    subtracting 0x30; the four digits' 4 bits each fill the 2 spare bits of those bytes.
    """
    hi = _unaligned(data, "<u8", 8)[starts]
    lo = _unaligned(data, "<u4", 4)[starts + 8].astype(np.uint64)
    m7 = hi & _M7
    ok = ((m7 + _HI_ADD_LOW) & _B7) == _B7
    ok &= (((m7 + _HI_ADD_HIGH) | hi) & _B7) == 0
    l7 = lo & np.uint64(0x7F7F7F7F)
    ok &= ((l7 + np.uint64(0x50505050)) & _B7_LO) == _B7_LO
    ok &= (((l7 + _LO_ADD_HIGH) | lo) & _B7_LO) == 0
    hi -= _ZERO_HI  # no borrows where ok: every byte >= 0x30
    lo -= _ZERO_LO
    spread = []
    for part in (lo & np.uint64(0x03030303), (lo >> np.uint64(2)) & np.uint64(0x03030303)):
        part = (part | (part << np.uint64(16))) & np.uint64(0x0000FFFF0000FFFF)
        part = (part | (part << np.uint64(8))) & np.uint64(0x00FF00FF00FF00FF)
        spread.append(part)
    key = hi | (spread[0] << np.uint64(6)) | (spread[1] << np.uint64(14))
    return key.view(np.int64), ok


def _exact_keys(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(keys, qualified, valid) of a string array through `_isrc_words`."""
    n = len(arr)
    arr = arr.cast(pa.large_string(), memory_pool=POOL)
    valid = np.ones(n, dtype=bool) if arr.null_count == 0 else arr.is_valid().to_numpy(False)
    key = np.zeros(n, dtype=np.int64)
    done = np.zeros(n, dtype=bool)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64, count=n + 1, offset=arr.offset * 8)
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    twelve = valid & (np.diff(offsets) == 12)
    if twelve.all():
        key, done = _isrc_words(data, offsets[:-1])
        key[~done] = 0
    elif twelve.any():
        rows = np.flatnonzero(twelve)
        k, ok = _isrc_words(data, offsets[rows])
        key[rows[ok]] = k[ok]
        done[rows[ok]] = True
    return key, done, valid


def isrc_keys(isrc: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An int64 per ISRC, equal exactly for equal ISRCs (case and spaces ignored), 0 for none.

    A well-formed ISRC maps to an exact 64-bit key without hashing (`_isrc_words`);
    anything else to its 63-bit `stable_hash` with bits 4 and 5 set, which no exact key has
    (the 6 low bits of each byte of an exact key hold a value below 0x30).
    """
    if isinstance(isrc, pa.ChunkedArray):
        isrc = isrc.combine_chunks() if isrc.num_chunks != 1 else isrc.chunk(0)
    if len(isrc) == 0:
        return np.zeros(0, dtype=np.int64)
    out, done, valid = _exact_keys(isrc)
    rest = np.flatnonzero(valid & ~done)
    if rest.size:
        cleaned = pc.utf8_upper(pc.utf8_trim_whitespace(isrc.take(pa.array(rest))))
        key, ok, _ = _exact_keys(cleaned)
        empty = np.asarray(pc.equal(pc.utf8_length(cleaned), 0).to_numpy(False), dtype=bool)
        hashed = hash_strings(cleaned) | np.int64(0x30)
        out[rest] = np.where(ok, key, np.where(empty, 0, hashed))
    return out


def _strings(offsets: np.ndarray, data: np.ndarray) -> pa.Array:
    """A large_string array over `data` (as SQLite returned it: not validated again)."""
    return pa.Array.from_buffers(
        pa.large_string(),
        len(offsets) - 1,
        [None, pa.py_buffer(offsets.astype(np.int64)), pa.py_buffer(np.ascontiguousarray(data))],
    )


def scanned_isrc_keys(batch: ScanBatch) -> np.ndarray:
    """`isrc_keys` of a scanned batch's text column (12-byte slots, the rest spilled)."""
    n = len(batch)
    key, ok = _isrc_words(batch.slots.reshape(-1), np.arange(n, dtype=np.int64) * 12)
    done = (batch.length == 12) & ok
    out = np.where(done, key, 0)
    odd = np.flatnonzero((batch.length == 12) & ~ok)
    if odd.size:  # twelve bytes, but lower case, spaces or not an ISRC
        offsets = np.arange(odd.size + 1, dtype=np.int64) * 12
        out[odd] = isrc_keys(_strings(offsets, batch.slots[odd].reshape(-1)))
    rows, offsets, data = batch.spilled()
    if rows.size:
        out[rows] = isrc_keys(_strings(offsets, data))
    return out
