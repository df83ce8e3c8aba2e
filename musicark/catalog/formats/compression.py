"""Transparent decompression of zstd, gzip and xz inputs, recognised by magic bytes."""

from __future__ import annotations

import gzip
import lzma
from pathlib import Path
from typing import BinaryIO

import zstandard

from musicark.errors import FormatError

_MAGIC = {
    b"\x28\xb5\x2f\xfd": "zst",
    b"\x1f\x8b": "gz",
    b"\xfd7zXZ\x00": "xz",
}


def compression_of(head: bytes) -> str | None:
    for magic, name in _MAGIC.items():
        if head.startswith(magic):
            return name
    return None


def open_decompressed(path: Path) -> BinaryIO:
    """A binary stream of the file's content, decompressed when it is compressed."""
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise FormatError(f"{path}: cannot read ({exc.strerror})") from exc
    kind = compression_of(raw.read(6))
    raw.seek(0)
    if kind == "zst":
        reader = zstandard.ZstdDecompressor().stream_reader(
            raw, read_across_frames=True, closefd=True
        )
        return reader
    if kind == "gz":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if kind == "xz":
        return lzma.LZMAFile(raw, mode="rb")  # type: ignore[return-value]
    return raw


def read_head(path: Path, size: int = 65536) -> bytes:
    """The first `size` decompressed bytes (fewer when the file is shorter or corrupt)."""
    stream = open_decompressed(path)
    try:
        return stream.read(size)
    except (OSError, EOFError, lzma.LZMAError, zstandard.ZstdError):
        return b""
    finally:
        stream.close()
