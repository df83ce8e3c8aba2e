"""Decoded planes -> the 16-bit PCM Chromaprint is fed: the same values for every layout."""

from __future__ import annotations

import numpy as np
import pytest

from musicark.store.probe import _pcm16


def _reference(columns: list[np.ndarray]) -> bytes:
    """Stack, clip, scale, truncate: the conversion fingerprints were made with."""
    data = np.stack(columns, axis=1) if len(columns) > 1 else columns[0]
    if data.dtype.kind == "f":
        return (np.clip(data, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    if data.dtype == np.int16:
        return np.ascontiguousarray(data).tobytes()
    if data.dtype == np.uint8:
        return ((data.astype(np.int16) - 128) << 8).astype("<i2").tobytes()
    return (data >> 8 * (data.dtype.itemsize - 2)).astype("<i2").tobytes()


def _chunks(column: np.ndarray, sizes: list[int]) -> list[bytes | memoryview]:
    """A column cut as frames are: some chunks as bytes, some as views of padded buffers."""
    out: list[bytes | memoryview] = []
    raw = column.tobytes()
    start = 0
    for i, n in enumerate(sizes):
        piece = raw[start : start + n * column.itemsize]
        out.append(piece if i % 2 else memoryview(piece + b"\0" * 64)[: len(piece)])
        start += n * column.itemsize
    return out


@pytest.mark.parametrize(
    ("fmt", "dtype", "channels"),
    [
        ("fltp", np.float32, 2),
        ("fltp", np.float32, 1),
        ("dblp", np.float64, 2),
        ("s16p", np.int16, 2),
        ("s32p", np.int32, 6),
        ("u8p", np.uint8, 2),
    ],
)
def test_planar_formats_convert_to_the_reference_values(
    fmt: str, dtype: type, channels: int
) -> None:
    rng = np.random.default_rng(7)
    sizes = [1152, 1152, 576, 17]
    n = sum(sizes)
    if np.dtype(dtype).kind == "f":  # includes out-of-range samples (clipped) and exact ±1
        columns = [rng.uniform(-1.3, 1.3, n).astype(dtype) for _ in range(channels)]
        columns[0][:4] = [1.0, -1.0, 0.99999, -0.99999]
    else:
        info = np.iinfo(dtype)
        columns = [
            rng.integers(info.min, info.max, n, endpoint=True).astype(dtype)
            for _ in range(channels)
        ]
    planes = [_chunks(c, sizes) for c in columns]
    assert _pcm16(planes, fmt) == _reference(columns)


def test_packed_float_converts_to_the_reference_values() -> None:
    rng = np.random.default_rng(8)
    interleaved = rng.uniform(-1.5, 1.5, 2 * 1000).astype(np.float32)
    got = _pcm16([_chunks(interleaved, [600, 1400])], "flt")
    assert got == _reference([interleaved])
    assert len(got) == 2 * 2 * 1000
