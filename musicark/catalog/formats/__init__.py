"""Input formats of `catalog import`: a registry of formats, detection, and reading.

See `base.py` for the protocol a format follows and docs/plugins.md for adding one.
"""

from __future__ import annotations

import csv
import lzma
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import zstandard

from musicark.catalog.formats import builtin as _builtin  # noqa: F401  (registers the built-ins)
from musicark.catalog.formats.base import (
    ENTRY_POINT_GROUP,
    FORMATS,
    CatalogFormat,
    Chunk,
    ReadOptions,
    Reject,
    Sample,
    format_names,
    get_format,
    register_format,
)
from musicark.catalog.formats.detect import detect, detect_format, resolve
from musicark.errors import FormatError

DECODE_ERRORS = (
    OSError,
    EOFError,
    lzma.LZMAError,
    zstandard.ZstdError,
    zlib.error,
    tarfile.TarError,
)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_batches(path: Path, fmt: CatalogFormat | str, *, options: ReadOptions) -> Iterator[Chunk]:
    """Chunks of `path` read as `fmt`; a file that breaks off mid-stream raises FormatError."""
    import pyarrow as pa

    reader = get_format(fmt) if isinstance(fmt, str) else fmt
    try:
        yield from reader.read(path, options)
    except DECODE_ERRORS as exc:
        raise FormatError(f"{path}: cannot be read to the end ({_one_line(exc)})") from exc
    except (pa.ArrowException, csv.Error) as exc:
        raise FormatError(f"{path}: {_one_line(exc)}") from exc


__all__ = [
    "ENTRY_POINT_GROUP",
    "FORMATS",
    "CatalogFormat",
    "Chunk",
    "ReadOptions",
    "Reject",
    "Sample",
    "detect",
    "detect_format",
    "format_names",
    "get_format",
    "read_batches",
    "register_format",
    "resolve",
]
