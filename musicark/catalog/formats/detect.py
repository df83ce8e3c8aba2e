"""Recognise an input file's format from its content, not its name."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import orjson

from musicark.catalog.formats.compression import compression_of, read_head
from musicark.errors import FormatError
from musicark.paths import input_file

FORMATS = ("auto", "jsonl", "csv", "parquet", "musicbrainz")


def _first_line(head: bytes) -> bytes:
    return head.split(b"\n", 1)[0].strip()


def detect_format(path: Path) -> str:
    """One of jsonl, csv, parquet, musicbrainz; FormatError for anything else."""
    input_file(path)
    with path.open("rb") as f:
        magic = f.read(6)
    if magic[:4] == b"PAR1":
        return "parquet"
    head = read_head(path)
    if head[:4] == b"PAR1":
        raise FormatError(
            f"{path}: a {compression_of(magic)}-compressed Parquet file; Parquet compresses "
            "inside, decompress it first"
        )
    if not head:
        raise FormatError(f"{path}: empty or unreadable file, not a catalogue")
    if len(head) > 262 and head[257:262] == b"ustar":
        return "musicbrainz"  # the JSON dump is a tar of per-entity line files
    line = _first_line(head.lstrip(b"\xef\xbb\xbf"))
    if line.startswith(b"{"):
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            return "musicbrainz" if "artist-credit" in obj else "jsonl"
        # A first line that does not parse may still be JSONL with a broken first row.
        return "jsonl"
    try:
        header = next(csv.reader(io.StringIO(line.decode("utf-8", "replace"))))
    except (csv.Error, StopIteration):
        header = []
    if {"id", "title"} <= {h.strip().lower() for h in header}:
        return "csv"
    raise FormatError(
        f"{path}: not a catalogue file (expected musicark JSONL, CSV with id and title "
        "columns, Parquet, or a MusicBrainz JSON dump)"
    )
