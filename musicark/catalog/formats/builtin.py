"""The built-in catalogue formats, registered through the same protocol as plugins.

Sniffing needs only the first bytes; the readers (and Arrow) are imported when a file
is read, so listing the formats stays quick.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import orjson

from musicark.catalog.formats.base import (
    Chunk,
    ReadOptions,
    Sample,
    estimate_by_size,
    register_format,
)
from musicark.catalog.formats.fma import FmaFormat
from musicark.errors import FormatError


def _is_tar(head: bytes) -> bool:
    return len(head) > 262 and head[257:262] == b"ustar"


def _json_object(line: bytes) -> dict[str, object] | None:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


class ParquetFormat:
    name = "parquet"
    summary = "Parquet with the interchange columns (nested values as Arrow lists and structs)"
    source: str | None = None

    def sniff(self, sample: Sample) -> int:
        if sample.raw[:4] == b"PAR1":
            return 100
        if sample.compression and sample.head[:4] == b"PAR1":
            raise FormatError(
                f"{sample.path}: a {sample.compression}-compressed Parquet file; Parquet "
                "compresses inside, decompress it first"
            )
        return 0

    def read(self, path: Path, options: ReadOptions) -> Iterator[Chunk]:
        from musicark.catalog.formats.parquet import read_parquet

        return read_parquet(path, options)

    def estimate_rows(self, path: Path) -> int:
        from musicark.catalog.formats.parquet import open_parquet

        return int(open_parquet(path).metadata.num_rows)


class MusicBrainzFormat:
    name = "musicbrainz"
    summary = "the MusicBrainz JSON dump of recordings (the .tar.xz or its extracted lines)"
    source: str | None = "musicbrainz"

    def sniff(self, sample: Sample) -> int:
        if _is_tar(sample.head):
            return 90  # the JSON dump is a tar of per-entity line files
        obj = _json_object(sample.first_line) if sample.first_line.startswith(b"{") else None
        return 90 if obj is not None and "artist-credit" in obj else 0

    def read(self, path: Path, options: ReadOptions) -> Iterator[Chunk]:
        from musicark.catalog.formats.musicbrainz import read_musicbrainz

        return read_musicbrainz(path, options)

    def estimate_rows(self, path: Path) -> int:
        return estimate_by_size(path, 400)


class JsonlFormat:
    name = "jsonl"
    summary = "interchange JSONL: one JSON object per line"
    source: str | None = None

    def sniff(self, sample: Sample) -> int:
        # A first line that does not parse may still be JSONL with a broken first row.
        return 50 if sample.first_line.startswith(b"{") else 0

    def read(self, path: Path, options: ReadOptions) -> Iterator[Chunk]:
        from musicark.catalog.formats.readers import read_jsonl

        return read_jsonl(path, options)

    def estimate_rows(self, path: Path) -> int:
        return estimate_by_size(path)


class CsvFormat:
    name = "csv"
    summary = "interchange CSV: a header row with at least id and title; nested values as JSON"
    source: str | None = None

    def sniff(self, sample: Sample) -> int:
        text = sample.first_line.decode("utf-8", "replace")
        try:
            header = next(csv.reader(io.StringIO(text)))
        except (csv.Error, StopIteration):
            return 0
        return 50 if {"id", "title"} <= {h.strip().lower() for h in header} else 0

    def read(self, path: Path, options: ReadOptions) -> Iterator[Chunk]:
        from musicark.catalog.formats.readers import read_csv

        return read_csv(path, options)

    def estimate_rows(self, path: Path) -> int:
        return estimate_by_size(path)


for _fmt in (ParquetFormat(), MusicBrainzFormat(), JsonlFormat(), CsvFormat(), FmaFormat()):
    register_format(_fmt)
