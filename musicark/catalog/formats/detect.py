"""Recognise an input file's format from its content, not its name: every registered
format sniffs the file's first bytes and the surest wins."""

from __future__ import annotations

from pathlib import Path

from musicark.catalog.formats.base import FORMATS as REGISTRY
from musicark.catalog.formats.base import (
    SAMPLE_BYTES,
    CatalogFormat,
    Sample,
    get_format,
    load_plugins,
)
from musicark.catalog.formats.compression import compression_of, read_head
from musicark.errors import FormatError
from musicark.paths import input_file


def sample_of(path: Path) -> Sample:
    input_file(path)
    with path.open("rb") as f:
        raw = f.read(SAMPLE_BYTES)
    kind = compression_of(raw)
    head = read_head(path, SAMPLE_BYTES) if kind else raw
    return Sample(path=path, raw=raw, head=head, compression=kind)


def detect(path: Path) -> CatalogFormat:
    """The registered format surest to read `path`; FormatError when none is."""
    load_plugins()
    sample = sample_of(path)
    if not sample.head:
        raise FormatError(f"{path}: empty or unreadable file, not a catalogue")
    best, score = None, 0
    for fmt in REGISTRY:
        s = fmt.sniff(sample)
        if s > score:
            best, score = fmt, s
    if best is None:
        names = ", ".join(REGISTRY.names())
        raise FormatError(f"{path}: not a catalogue file (none of the formats {names} reads it)")
    return best


def detect_format(path: Path) -> str:
    """The name of `path`'s format (see `detect`)."""
    return detect(path).name


def resolve(path: Path, format: str) -> CatalogFormat:
    """The format named by `format`, or the detected one for "auto"."""
    return detect(path) if format == "auto" else get_format(format)
