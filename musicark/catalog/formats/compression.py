"""Transparent zstd, gzip and xz: recognised by magic bytes on reading, by suffix on writing.

Lines are read with a length cap (`bounded_lines`): a file holding one endless line is
read in bounded memory, and the overlong line is reported, not held.
"""

from __future__ import annotations

import gzip
import io
import lzma
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import zstandard

from musicark.errors import FormatError
from musicark.paths import input_file

_MAGIC = {
    b"\x28\xb5\x2f\xfd": "zst",
    b"\x1f\x8b": "gz",
    b"\xfd7zXZ\x00": "xz",
}
COMPRESSIONS = ("zst", "gz", "xz")
_SKIP_BLOCK = 1 << 20


def compression_of(head: bytes) -> str | None:
    for magic, name in _MAGIC.items():
        if head.startswith(magic):
            return name
    return None


def compression_of_name(name: str) -> str | None:
    """The compression a file name asks for (`x.jsonl.zst` → zst), None for none."""
    suffix = name.rsplit(".", 1)[-1] if "." in name else ""
    return suffix if suffix in COMPRESSIONS else None


def open_decompressed(path: Path) -> BinaryIO:
    """A buffered binary stream of the file's content, decompressed when it is compressed."""
    input_file(path)  # a FIFO would block the reader and a device never ends
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
        # The zstd reader cannot be iterated or read by line; a buffer on top can.
        return io.BufferedReader(reader, buffer_size=1 << 20)
    if kind == "gz":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if kind == "xz":
        return lzma.LZMAFile(raw, mode="rb")  # type: ignore[return-value]
    return raw


def open_compressed(path: Path, kind: str | None) -> BinaryIO:
    """A binary writer to `path`, compressing with `kind` (zst, gz, xz or None)."""
    raw = path.open("wb")
    if kind == "zst":
        return zstandard.ZstdCompressor(level=9, threads=-1).stream_writer(raw, closefd=True)
    if kind == "gz":
        return gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0)  # type: ignore[return-value]
    if kind == "xz":
        return lzma.LZMAFile(raw, mode="wb", preset=6)  # type: ignore[return-value]
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


def bounded_lines(stream: BinaryIO, max_bytes: int) -> Iterator[tuple[int, bytes | None]]:
    """(line number, line without its end) for every line; None for a line over `max_bytes`.

    No line longer than `max_bytes` is ever held: the rest of an overlong line is read
    and dropped a block at a time.
    """
    number = 0
    while True:
        line = stream.readline(max_bytes + 2)
        if not line:
            return
        number += 1
        body = line.rstrip(b"\r\n")
        if len(body) <= max_bytes:
            yield number, body
            continue
        while not line.endswith(b"\n"):
            line = stream.readline(_SKIP_BLOCK)
            if not line:
                break
        yield number, None
