"""`catalog export`: the catalogue as SQLite, Parquet or interchange JSONL (.zst, .gz, .xz).

Parquet and JSONL exports are in the interchange format, so `catalog import` of an
export gives back the same catalogue.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from musicark.archive import Archive
from musicark.catalog.db import storage_reason
from musicark.catalog.formats.compression import compression_of_name, open_compressed
from musicark.catalog.formats.interchange import SCHEMA
from musicark.errors import CatalogError, UsageError
from musicark.progress import Progress, ProgressCallback, report

EXPORT_FORMATS = ("sqlite", "parquet", "jsonl")
_SUFFIXES = {".parquet": "parquet", ".jsonl": "jsonl", ".sqlite": "sqlite", ".db": "sqlite"}
BATCH = 100_000

_QUERY = """
SELECT t.rowid, s.name, t.external_id, t.title, t.isrc, t.duration_ms, t.popularity, t.play_count,
       t.track_number, t.disc_number, t.explicit, t.rights, t.license_url, t.genres,
       (SELECT json_group_array(json_array(a.external_id, a.name, ta.role, a.popularity, a.followers))
          FROM (SELECT * FROM track_artists WHERE track_id = t.id ORDER BY position) ta
          JOIN artists a ON a.id = ta.artist_id),
       al.external_id, al.title, al.album_type, al.upc, al.label, al.release_date,
       al.release_date_precision, al.popularity, al.total_tracks, t.external_ids, t.extra
FROM tracks t
JOIN sources s ON s.id = t.source_id
LEFT JOIN albums al ON al.id = t.album_id
WHERE t.rowid > ? ORDER BY t.rowid LIMIT ?
"""


def _rows(conn: sqlite3.Connection) -> Iterator[list[dict[str, Any]]]:
    last = 0
    names = SCHEMA.names
    while True:
        rows = conn.execute(_QUERY, (last, BATCH)).fetchall()
        if not rows:
            return
        last = rows[-1][0]
        out = []
        for r in rows:
            rec = dict(zip(names, r[1:], strict=True))
            rec["explicit"] = None if rec["explicit"] is None else bool(rec["explicit"])
            rec["genres"] = orjson.loads(rec["genres"]) if rec["genres"] is not None else None
            rec["artists"] = [
                {"id": a[0], "name": a[1], "role": a[2], "popularity": a[3], "followers": a[4]}
                for a in orjson.loads(rec["artists"])
            ]
            x = rec["external_ids"]
            rec["external_ids"] = (
                [{"key": k, "value": v} for k, v in orjson.loads(x).items()]
                if x is not None
                else None
            )
            out.append(rec)
        yield out


def _jsonl_record(rec: dict[str, Any]) -> bytes:
    rec = dict(rec)
    x = rec["external_ids"]
    rec["external_ids"] = {p["key"]: p["value"] for p in x} if x is not None else None
    rec["extra"] = orjson.Fragment(rec["extra"]) if rec["extra"] is not None else None
    return orjson.dumps({k: v for k, v in rec.items() if v is not None}) + b"\n"


def _format_of(out: Path, format: str | None) -> tuple[str, str | None]:
    """(format, compression) from the option or the name: `x.jsonl.zst` → (jsonl, zst)."""
    kind = compression_of_name(out.name)
    stem = out.name[: -len(kind) - 1] if kind else out.name
    fmt = format or _SUFFIXES.get(Path(stem).suffix, "")
    if fmt not in EXPORT_FORMATS:
        raise UsageError(
            f"cannot tell the export format of {out.name}; pass --format ({', '.join(EXPORT_FORMATS)})"
        )
    if fmt == "parquet" and kind:
        raise UsageError(f"Parquet exports are compressed inside (zstd); drop the .{kind} suffix")
    return fmt, kind


def _write_sqlite(conn: sqlite3.Connection, tmp: Path, kind: str | None) -> None:
    plain = tmp.with_name(tmp.name + ".sqlite")
    _remove(plain)
    try:
        conn.execute("VACUUM INTO ?", (str(plain),))
        if kind:
            with plain.open("rb") as src, open_compressed(tmp, kind) as dst:
                shutil.copyfileobj(src, dst, 4 << 20)
        else:
            plain.replace(tmp)
    finally:
        _remove(plain)


def _remove(path: Path) -> None:
    """A file and the journals SQLite may have left beside it."""
    for p in (path, path.with_name(path.name + "-journal"), path.with_name(path.name + "-wal")):
        p.unlink(missing_ok=True)


def export_catalog(
    archive: Archive,
    out: Path,
    *,
    format: str | None = None,
    progress: ProgressCallback | None = None,
) -> int:
    """Write the catalogue to `out`; the format and compression default from its name.

    Writes to a temporary name beside `out` and renames when complete: a failure (a full
    disk) leaves `out` as it was and nothing else behind. Returns tracks written.
    """
    out = Path(out)
    fmt, kind = _format_of(out, format)
    if not out.parent.is_dir():
        raise UsageError(f"cannot write {out}: no folder {out.parent}")
    tmp = out.with_name(f".{out.name}.partial")
    conn = archive.connect_catalog(readonly=True)
    written = 0
    try:
        total = conn.execute("SELECT count(*) FROM tracks").fetchone()[0]
        if fmt == "sqlite":
            _write_sqlite(conn, tmp, kind)
            written = total
        elif fmt == "parquet":
            with pq.ParquetWriter(tmp, SCHEMA, compression="zstd") as writer:
                for rows in _rows(conn):
                    writer.write_table(pa.Table.from_pylist(rows, schema=SCHEMA))
                    written += len(rows)
                    report(progress, Progress("export", written, total, "tracks"))
        else:
            with open_compressed(tmp, kind) as f:
                for rows in _rows(conn):
                    f.write(b"".join(_jsonl_record(r) for r in rows))
                    written += len(rows)
                    report(progress, Progress("export", written, total, "tracks"))
        os.replace(tmp, out)
    except (OSError, sqlite3.Error, pa.ArrowException) as exc:
        raise CatalogError(f"cannot write {out}: {storage_reason(exc)}") from exc
    finally:
        conn.close()
        _remove(tmp)
    return written
