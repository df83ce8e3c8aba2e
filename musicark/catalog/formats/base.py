"""The catalogue format protocol and its registry.

A catalogue format is an object with:

- `name`: what `--format` takes (`jsonl`); `summary`: one line for the docs;
- `source`: the source name given to rows that carry none, or None (then `--source`, else
  `local`);
- `sniff(sample) -> int`: how sure it is that a file is in this format, from its first
  bytes (`Sample`): 0 not at all, 100 certain (a magic number). `detect_format` picks the
  highest score; ties go to the format registered first. It may raise `FormatError` to
  refuse a file with a reason (a Parquet file compressed from the outside);
- `read(path, options) -> Iterator[Chunk]`: the file as batches of interchange rows
  (`interchange.SCHEMA` plus the `_line` column) and the rows it refused, at most
  `options.batch_rows` rows and no line longer than `options.max_line_bytes` each;
- `estimate_rows(path) -> int`: a rough row count (progress, and the bulk-load choice).

Built-in formats register here exactly as plugins do; a package outside musicark adds
one through the `musicark.formats` entry-point group (docs/plugins.md). This module stays
light (no Arrow at import) so that the CLI can list the formats quickly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from musicark.registry import Registry

if TYPE_CHECKING:
    import pyarrow as pa

ENTRY_POINT_GROUP = "musicark.formats"
SAMPLE_BYTES = 65536


@dataclass(frozen=True)
class ReadOptions:
    """How a reader reads: rows per batch, and the longest line accepted."""

    batch_rows: int = 200_000
    max_line_bytes: int = 16 << 20


@dataclass(frozen=True)
class Reject:
    line: int
    reason: str
    raw: str


@dataclass
class Chunk:
    """A batch of rows in `SCHEMA` (plus `_line`), and the rows of that stretch refused."""

    table: pa.Table
    rejects: list[Reject] = field(default_factory=list)
    last_line: int = 0


@dataclass(frozen=True)
class Sample:
    """The start of a file, as stored and decompressed, for `sniff`."""

    path: Path
    raw: bytes  # the first bytes as stored
    head: bytes  # the first bytes after decompression (== raw when not compressed)
    compression: str | None  # zst, gz, xz or None

    @property
    def first_line(self) -> bytes:
        return self.head.lstrip(b"\xef\xbb\xbf").split(b"\n", 1)[0].strip()


@runtime_checkable
class CatalogFormat(Protocol):
    name: str
    summary: str
    source: str | None

    def sniff(self, sample: Sample) -> int: ...

    def read(self, path: Path, options: ReadOptions) -> Iterator[Chunk]: ...

    def estimate_rows(self, path: Path) -> int: ...


def _follows_protocol(obj: object) -> bool:
    return isinstance(obj, CatalogFormat) and not isinstance(obj, type)


FORMATS: Registry[CatalogFormat] = Registry("catalogue format", check=_follows_protocol)
_plugins_loaded = False


def register_format(fmt: CatalogFormat, *, replace: bool = False) -> CatalogFormat:
    """Register `fmt` under `fmt.name` (built-ins and plugins alike)."""
    return FORMATS.register(fmt.name, fmt, replace=replace)


def load_plugins() -> None:
    """Register the formats of installed packages (`musicark.formats` entry points), once."""
    global _plugins_loaded
    if not _plugins_loaded:
        _plugins_loaded = True
        FORMATS.load_entry_points(ENTRY_POINT_GROUP)


def get_format(name: str) -> CatalogFormat:
    load_plugins()
    return FORMATS.get(name)


def format_names() -> tuple[str, ...]:
    load_plugins()
    return FORMATS.names()


def estimate_by_size(path: Path, bytes_per_row: int = 150) -> int:
    """The usual estimate for line formats: the file's size over a typical row's."""
    return path.stat().st_size // bytes_per_row
