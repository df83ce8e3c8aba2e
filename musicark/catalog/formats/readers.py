"""Readers: every format becomes batches of interchange rows plus the rows refused.

Parquet stays columnar (cast with Arrow, no Python per row); JSONL, CSV and the
MusicBrainz dump are parsed row by row, since a bad row must be refused alone with its
line number.
"""

from __future__ import annotations

import csv
import lzma
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from musicark.catalog.formats.compression import bounded_lines, open_decompressed
from musicark.catalog.formats.interchange import LINE, SCHEMA, RowError, coerce_row
from musicark.catalog.formats.musicbrainz import recording_to_row
from musicark.errors import FormatError
from musicark.paths import input_file

DECODE_ERRORS = (
    OSError,
    EOFError,
    lzma.LZMAError,
    zstandard.ZstdError,
    zlib.error,
    tarfile.TarError,
)


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


def _rows_to_chunk(
    rows: list[dict[str, Any]], lines: list[int], rejects: list[Reject], last: int
) -> Chunk:
    table = pa.Table.from_pylist(rows, schema=SCHEMA) if rows else SCHEMA.empty_table()
    table = table.append_column(LINE, pa.array(lines, pa.int64()))
    return Chunk(table=table, rejects=rejects, last_line=last)


def overlong(max_line_bytes: int) -> str:
    return f"line longer than {max_line_bytes} bytes (the catalog.max_line_bytes setting)"


def _chunked(
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


def _parse_json(raw: bytes) -> dict[str, Any]:
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


def _json_lines(stream: Any, max_line_bytes: int) -> Iterator[tuple[int, bytes | None]]:
    for number, line in bounded_lines(stream, max_line_bytes):
        if line is None or line.strip():  # blank lines are no rows
            yield number, line


def read_jsonl(path: Path, options: ReadOptions) -> Iterator[Chunk]:
    with open_decompressed(path) as stream:
        yield from _chunked(_json_lines(stream, options.max_line_bytes), _parse_json, options)


def read_musicbrainz(path: Path, options: ReadOptions) -> Iterator[Chunk]:
    def parse(raw: bytes) -> dict[str, Any]:
        return recording_to_row(_parse_json(raw))

    with open_decompressed(path) as stream:
        head = stream.read(512)
    if len(head) > 262 and head[257:262] == b"ustar":
        with tarfile.open(path, mode="r|*") as tar:
            for member in tar:
                if member.isfile() and member.name.rsplit("/", 1)[-1] == "recording":
                    f = tar.extractfile(member)
                    assert f is not None
                    yield from _chunked(_json_lines(f, options.max_line_bytes), parse, options)
                    return
        raise FormatError(f"{path}: a tar file without mbdump/recording")
    with open_decompressed(path) as stream:
        yield from _chunked(_json_lines(stream, options.max_line_bytes), parse, options)


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

        yield from _chunked(records(), parse, options)


def _pack(cells: list[str]) -> bytes:
    # Cells travel as bytes (for the reject file) without losing undecodable bytes.
    return "\x1e".join(cells).encode("utf-8", "surrogateescape")


def _unpack(raw: bytes) -> list[str]:
    return raw.decode("utf-8", "surrogateescape").split("\x1e")


def _conform(batch: pa.RecordBatch, first_row: int) -> Chunk:
    """A Parquet batch in `SCHEMA`: cast typed columns, keep unknown ones in `extra`."""
    n = batch.num_rows
    table = pa.Table.from_batches([batch])
    columns: list[pa.Array | pa.ChunkedArray] = []
    bad = [False] * n
    reasons: dict[int, str] = {}
    for f in SCHEMA:
        if f.name == "extra" or f.name not in table.column_names:
            columns.append(pa.nulls(n, f.type))
            continue
        col = table.column(f.name)
        try:
            columns.append(col.cast(f.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            values = []
            for i, value in enumerate(col.to_pylist()):
                try:
                    values.append(coerce_row({f.name: value}).get(f.name))
                except RowError as exc:
                    values.append(None)
                    bad[i] = True
                    reasons.setdefault(i, str(exc))
            try:
                columns.append(pa.array(values, f.type))
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise FormatError(f"column {f.name!r} has an unusable type {col.type}") from exc
    unknown = [c for c in table.column_names if c not in SCHEMA.names]
    extra = pa.nulls(n, pa.string())
    if unknown or "extra" in table.column_names:
        blobs = []
        unknown_values = {c: table.column(c).to_pylist() for c in unknown}
        extra_in = (
            table.column("extra").to_pylist() if "extra" in table.column_names else [None] * n
        )
        for i in range(n):
            try:
                row = {c: unknown_values[c][i] for c in unknown}
                if extra_in[i] is not None:
                    row["extra"] = extra_in[i]
                blobs.append(coerce_row(row)["extra"])
            except (RowError, TypeError) as exc:
                blobs.append(None)
                bad[i] = True
                reasons.setdefault(i, str(exc))
        extra = pa.array(blobs, pa.string())
    columns[SCHEMA.names.index("extra")] = extra
    lines = pa.array(range(first_row, first_row + n), pa.int64())
    out = pa.Table.from_arrays([*columns, lines], schema=SCHEMA.append(pa.field(LINE, pa.int64())))
    rejects = []
    if reasons:
        keep = pa.array([not b for b in bad])
        raw_rows = table.filter(pa.array(bad)).to_pylist()
        for (i, reason), raw in zip(sorted(reasons.items()), raw_rows, strict=True):
            rejects.append(Reject(first_row + i, reason, orjson.dumps(raw, default=str).decode()))
        out = out.filter(keep)
    return Chunk(table=out, rejects=rejects, last_line=first_row + n - 1)


def open_parquet(path: Path) -> pq.ParquetFile:
    """The Parquet file, or FormatError in one line (a truncated file has no footer)."""
    input_file(path)
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FormatError(f"{path}: not a readable Parquet file ({reason})") from exc


def read_parquet(path: Path, options: ReadOptions) -> Iterator[Chunk]:
    pf = open_parquet(path)
    if not {"id", "title"} <= set(pf.schema_arrow.names):
        raise FormatError(f"{path}: a Parquet file without id and title columns")
    first = 1
    for batch in pf.iter_batches(batch_size=options.batch_rows):
        yield _conform(batch, first)
        first += batch.num_rows


READERS: dict[str, Callable[[Path, ReadOptions], Iterator[Chunk]]] = {
    "jsonl": read_jsonl,
    "csv": read_csv,
    "parquet": read_parquet,
    "musicbrainz": read_musicbrainz,
}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_batches(path: Path, fmt: str, *, options: ReadOptions) -> Iterator[Chunk]:
    """Chunks of `path` read as `fmt`; a file that breaks off mid-stream raises FormatError."""
    try:
        yield from READERS[fmt](path, options)
    except DECODE_ERRORS as exc:
        raise FormatError(f"{path}: cannot be read to the end ({_one_line(exc)})") from exc
    except (pa.ArrowException, csv.Error) as exc:
        raise FormatError(f"{path}: {_one_line(exc)}") from exc
