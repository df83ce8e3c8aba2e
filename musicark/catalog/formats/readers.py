"""Line readers (JSONL, CSV): parsed row by row, since a bad row must be refused alone
with its line number. `chunked` turns parsed lines into batches for every line format.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from musicark.catalog.formats.base import Chunk, ReadOptions, Reject
from musicark.catalog.formats.compression import bounded_lines, open_decompressed
from musicark.catalog.formats.interchange import LINE, SCHEMA, RowError, coerce_row
from musicark.errors import FormatError


def _rows_to_chunk(
    rows: list[dict[str, Any]], lines: list[int], rejects: list[Reject], last: int
) -> Chunk:
    table = pa.Table.from_pylist(rows, schema=SCHEMA) if rows else SCHEMA.empty_table()
    table = table.append_column(LINE, pa.array(lines, pa.int64()))
    return Chunk(table=table, rejects=rejects, last_line=last)


def overlong(max_line_bytes: int) -> str:
    return f"line longer than {max_line_bytes} bytes (the catalog.max_line_bytes setting)"


def chunked(
    items: Iterable[tuple[int, bytes | None]],
    parse: Callable[[bytes], dict[str, Any]],
    options: ReadOptions,
) -> Iterator[Chunk]:
    """Rows parsed and coerced in batches; a None item is a line over the length cap."""
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    rejects: list[Reject] = []
    number = 0
    batch_rows = options.batch_rows
    for number, raw in items:
        if raw is None:
            rejects.append(Reject(number, overlong(options.max_line_bytes), ""))
            continue
        try:
            rows.append(coerce_row(parse(raw)))
            lines.append(number)
        except RowError as exc:
            rejects.append(Reject(number, str(exc), raw[:2000].decode("utf-8", "replace")))
        if len(rows) >= batch_rows:
            yield _rows_to_chunk(rows, lines, rejects, number)
            rows, lines, rejects = [], [], []
    if rows or rejects:
        yield _rows_to_chunk(rows, lines, rejects, number)


def parse_json(raw: bytes) -> dict[str, Any]:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RowError("invalid UTF-8") from None
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise RowError("invalid JSON (a truncated or broken line)") from None
    if not isinstance(obj, dict):
        raise RowError("expected a JSON object")
    return obj


def json_lines(stream: Any, max_line_bytes: int) -> Iterator[tuple[int, bytes | None]]:
    for number, line in bounded_lines(stream, max_line_bytes):
        if line is None or line.strip():  # blank lines are no rows
            yield number, line


def read_jsonl(path: Path, options: ReadOptions) -> Iterator[Chunk]:
    with open_decompressed(path) as stream:
        yield from chunked(json_lines(stream, options.max_line_bytes), parse_json, options)


def _text_lines(path: Path, stream: Any, max_line_bytes: int) -> Iterator[str]:
    """Decoded lines for the csv module; a line over the cap ends the file's import.

    A CSV record may span lines, so a single overlong line cannot be skipped safely.
    """
    for number, line in bounded_lines(stream, max_line_bytes):
        if line is None:
            raise FormatError(f"{path}: line {number}: {overlong(max_line_bytes)}")
        yield line.decode("utf-8", "surrogateescape") + "\n"


def read_csv(path: Path, options: ReadOptions) -> Iterator[Chunk]:
    if csv.field_size_limit() < options.max_line_bytes:
        csv.field_size_limit(options.max_line_bytes)
    with open_decompressed(path) as raw:
        reader = csv.reader(_text_lines(path, raw, options.max_line_bytes))
        try:
            header = [h.strip().lstrip("\ufeff") for h in next(reader)]
        except StopIteration:
            return
        width = len(header)

        def records() -> Iterator[tuple[int, bytes]]:
            for cells in reader:
                if not cells:
                    continue
                yield reader.line_num, _pack(cells)

        def parse(raw: bytes) -> dict[str, Any]:
            cells = _unpack(raw)
            if len(cells) != width:
                raise RowError(f"expected {width} fields, found {len(cells)}")
            row: dict[str, Any] = {}
            for key, cell in zip(header, cells, strict=True):
                try:
                    cell.encode("utf-8")
                except UnicodeEncodeError:
                    raise RowError("invalid UTF-8") from None
                row[key] = cell if cell != "" else None
            return row

        yield from chunked(records(), parse, options)


def _pack(cells: list[str]) -> bytes:
    # Cells travel as bytes (for the reject file) without losing undecodable bytes.
    return "\x1e".join(cells).encode("utf-8", "surrogateescape")


def _unpack(raw: bytes) -> list[str]:
    return raw.decode("utf-8", "surrogateescape").split("\x1e")
