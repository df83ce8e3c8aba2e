"""Parquet input: stays columnar (cast with Arrow, no Python per row)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from musicark.catalog.formats.base import Chunk, ReadOptions, Reject
from musicark.catalog.formats.interchange import LINE, SCHEMA, RowError, coerce_row
from musicark.errors import FormatError
from musicark.paths import input_file


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
