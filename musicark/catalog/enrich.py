"""`catalog enrich`: play counts from open listening data (e.g. ListenBrainz statistics).

A file of (key, listens, listeners) rows — CSV, Parquet or JSONL, compressed or not — sets
`tracks.play_count` of the tracks each key names, and `track_listens` records which
source set it. Keys: a MusicBrainz recording id (the catalogue's external ids), an ISRC
(every track with it), or the source's own track id (in every source of the catalogue).

Keys the catalogue does not know are counted, never an error; rows without a usable key
or count go to `rejects/` with their line and reason. Each batch commits in one
transaction; running the same file again changes nothing.
"""

from __future__ import annotations

import csv
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from musicark import events
from musicark.archive import Archive
from musicark.catalog.db import connect, storage_reason
from musicark.catalog.formats.compression import (
    bounded_lines,
    compression_of,
    open_decompressed,
    read_head,
)
from musicark.catalog.formats.readers import overlong
from musicark.catalog.ids import SEP, stable_hash
from musicark.errors import CatalogError, FormatError, UsageError
from musicark.paths import input_file
from musicark.progress import Progress, ProgressCallback, report
from musicark.sqlite import transaction

KEYS = ("mbid", "isrc", "id")
FIELDS = ("listens", "listeners")
# Column names accepted for each key and field (ListenBrainz's own names included).
KEY_COLUMNS = {
    "mbid": ("recording_mbid", "mbid", "musicbrainz_recording", "recording_id"),
    "isrc": ("isrc",),
    "id": ("id", "track_id"),
}
FIELD_COLUMNS = {
    "listens": ("listens", "total_listen_count", "listen_count", "play_count", "playcount"),
    "listeners": ("listeners", "total_user_count", "user_count", "listener_count"),
}
MBID_KINDS = ("musicbrainz_recording", "musicbrainz")
BATCH = 50_000
_ISRC = re.compile(r"^[A-Z]{2}[A-Z0-9]{3}[0-9]{7}$")
_MBID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass
class EnrichSummary:
    path: str
    source: str  # NAME:FIELD as recorded in track_listens
    rows: int = 0
    matched: int = 0  # rows whose key names at least one track
    unknown: int = 0  # rows whose key names no track
    tracks_updated: int = 0
    tracks_unchanged: int = 0
    rejected: int = 0
    rejects_file: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Row = tuple[int, Any, Any]  # (line, key, count) as read


def _pick(names: list[str], wanted: tuple[str, ...], what: str, path: Path) -> str:
    lower = {n.strip().lower(): n for n in names}
    for w in wanted:
        if w in lower:
            return lower[w]
    raise FormatError(f"{path}: no {what} column (one of: {', '.join(wanted)})")


def _parquet_rows(path: Path, key: str, field: str) -> Iterator[list[Row]]:
    import pyarrow.parquet as pq

    from musicark.catalog.formats.parquet import open_parquet

    pf: pq.ParquetFile = open_parquet(path)
    names = pf.schema_arrow.names
    kc = _pick(names, KEY_COLUMNS[key], key, path)
    vc = _pick(names, FIELD_COLUMNS[field], field, path)
    line = 1
    for batch in pf.iter_batches(batch_size=BATCH, columns=[kc, vc]):
        keys, values = batch.column(0).to_pylist(), batch.column(1).to_pylist()
        yield [(line + i, k, v) for i, (k, v) in enumerate(zip(keys, values, strict=True))]
        line += batch.num_rows


def _line_rows(path: Path, key: str, field: str, max_line: int) -> Iterator[list[Row]]:
    """CSV (a header row) or JSONL (objects), told apart by the first line."""
    with open_decompressed(path) as stream:
        lines = bounded_lines(stream, max_line)
        first = next(lines, None)
        if first is None or first[1] is None:
            return
        jsonl = first[1].lstrip(b"\xef\xbb\xbf").startswith(b"{")
        out: list[Row] = []
        if jsonl:
            keys, fields = KEY_COLUMNS[key], FIELD_COLUMNS[field]
            for number, raw in ((first[0], first[1]), *lines):
                out.append(_json_row(number, raw, keys, fields))
                if len(out) >= BATCH:
                    yield out
                    out = []
        else:
            header = next(csv.reader([first[1].decode("utf-8", "replace").lstrip("\ufeff")]))
            ki = header.index(_pick(header, KEY_COLUMNS[key], key, path))
            vi = header.index(_pick(header, FIELD_COLUMNS[field], field, path))
            for number, raw in lines:
                out.append(_csv_row(number, raw, ki, vi))
                if len(out) >= BATCH:
                    yield out
                    out = []
        if out:
            yield out


class _Bad(str):
    """A reject reason travelling in a row's key slot."""


def _json_row(
    number: int, raw: bytes | None, keys: tuple[str, ...], fields: tuple[str, ...]
) -> Row:
    if raw is None:
        return (number, _Bad("line too long"), None)
    if not raw.strip():
        return (number, None, _Bad("blank line"))
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return (number, _Bad("invalid JSON"), None)
    if not isinstance(obj, dict):
        return (number, _Bad("expected a JSON object"), None)
    lower = {str(k).lower(): v for k, v in obj.items()}
    k = next((lower[c] for c in keys if c in lower), None)
    v = next((lower[c] for c in fields if c in lower), None)
    return (number, k, v)


def _csv_row(number: int, raw: bytes | None, ki: int, vi: int) -> Row:
    if raw is None:
        return (number, _Bad("line too long"), None)
    if not raw.strip():
        return (number, None, _Bad("blank line"))
    try:
        cells = next(csv.reader([raw.decode("utf-8")]))
    except (UnicodeDecodeError, csv.Error):
        return (number, _Bad("not a readable CSV line"), None)
    if len(cells) <= max(ki, vi):
        return (number, _Bad(f"expected at least {max(ki, vi) + 1} fields"), None)
    return (number, cells[ki], cells[vi])


def _clean_key(key: str, value: Any) -> str:
    if not isinstance(value, str | int) or isinstance(value, bool) or value == "":
        raise ValueError(f"{key}: missing")
    text = str(value).strip()
    if key == "isrc":
        text = text.replace("-", "").replace(" ", "").upper()
        if not _ISRC.match(text):
            raise ValueError("isrc: malformed ISRC")
    elif key == "mbid":
        text = text.lower()
        if not _MBID.match(text):
            raise ValueError("mbid: not a MusicBrainz id")
    return text


def _clean_count(field: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{field}: expected a count")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ValueError(f"{field}: expected a count, got {value[:40]!r}") from None
    if not isinstance(value, int) or value < 0:
        raise ValueError(f"{field}: expected a count of zero or more")
    return value


def _clean(rows: list[Row], key: str, field: str, max_line: int) -> tuple[list, list[dict]]:
    good: list[tuple[str, int, int]] = []
    bad: list[dict[str, Any]] = []
    for line, k, v in rows:
        if isinstance(v, _Bad):
            continue  # a blank line: no row at all
        try:
            if isinstance(k, _Bad):
                reason = overlong(max_line) if k == "line too long" else str(k)
                raise ValueError(reason)
            good.append((_clean_key(key, k), _clean_count(field, v), line))
        except ValueError as exc:
            bad.append({"line": line, "reason": str(exc), "row": {"key": k, field: v}})
    return good, bad


def _match_sql(key: str) -> str:
    """SQL filling temp.enrich_hits(key, track_id, play_count) from temp.enrich_in."""
    if key == "isrc":
        join = "JOIN tracks t ON t.isrc = e.key"
        tid = "t.id"
    elif key == "mbid":
        kinds = ", ".join(f"'{k}'" for k in MBID_KINDS)
        join = (
            f"JOIN external_ids x ON x.kind IN ({kinds}) AND x.value = e.key AND x.entity = 'track'"
        )
        tid = "x.entity_id"
    else:  # the source's own id: a track id is a hash of (source, "track", id)
        join = "JOIN temp.enrich_ids i ON i.key = e.key JOIN tracks t ON t.id = i.track_id"
        tid = "t.id"
    return (
        f"INSERT OR REPLACE INTO temp.enrich_hits (track_id, key, play_count) "
        f"SELECT {tid}, e.key, e.play_count FROM temp.enrich_in e {join}"
    )


def _prepare(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS enrich_in (key TEXT PRIMARY KEY, play_count INTEGER)"
    )
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS enrich_ids (key TEXT, track_id INTEGER)")
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS enrich_hits "
        "(track_id INTEGER PRIMARY KEY, key TEXT, play_count INTEGER)"
    )


def _apply(
    conn: sqlite3.Connection,
    good: list[tuple[str, int, int]],
    key: str,
    sources: list[str],
    origin: str,
    summary: EnrichSummary,
) -> None:
    """One batch, in one transaction: match keys, set counts that differ, log the changes."""
    x = conn.execute
    with transaction(conn):
        for table in ("enrich_in", "enrich_ids", "enrich_hits"):
            x(f"DELETE FROM temp.{table}")
        conn.executemany(
            "INSERT OR REPLACE INTO temp.enrich_in (key, play_count) VALUES (?, ?)",
            [(k, n) for k, n, _ in good],
        )
        if key == "id":
            conn.executemany(
                "INSERT INTO temp.enrich_ids VALUES (?, ?)",
                [(k, stable_hash(f"{s}{SEP}track{SEP}{k}")) for k, _, _ in good for s in sources],
            )
        x(_match_sql(key))
        x(
            "INSERT INTO track_listens (track_id, play_count, source) "
            "SELECT track_id, play_count, ? FROM temp.enrich_hits WHERE true "
            "ON CONFLICT(track_id) DO UPDATE SET play_count = excluded.play_count, "
            "source = excluded.source WHERE track_listens.play_count != excluded.play_count "
            "OR track_listens.source != excluded.source",
            (origin,),
        )
        changed = x(
            "UPDATE tracks SET play_count = h.play_count FROM temp.enrich_hits h "
            "WHERE tracks.id = h.track_id AND tracks.play_count IS NOT h.play_count "
            "RETURNING tracks.id"
        ).fetchall()
        conn.executemany("INSERT INTO track_changes (track_id) VALUES (?)", changed)
        keys_in = x("SELECT count(*) FROM temp.enrich_in").fetchone()[0]
        matched, hits = x("SELECT count(DISTINCT key), count(*) FROM temp.enrich_hits").fetchone()
    summary.matched += matched
    summary.unknown += keys_in - matched
    summary.tracks_updated += len(changed)
    summary.tracks_unchanged += hits - len(changed)


def _rows(path: Path, key: str, field: str, max_line: int) -> Iterator[list[Row]]:
    input_file(path)
    with path.open("rb") as f:
        magic = f.read(6)
    if magic[:4] == b"PAR1":
        return _parquet_rows(path, key, field)
    if compression_of(magic) and read_head(path, 4) == b"PAR1":
        raise FormatError(f"{path}: a compressed Parquet file; decompress it first")
    return _line_rows(path, key, field, max_line)


def enrich_catalog(
    archive: Archive,
    path: Path,
    *,
    key: str,
    field: str = "listens",
    source: str | None = None,
    progress: ProgressCallback | None = None,
) -> EnrichSummary:
    """Set play counts from `path`'s `field` for the tracks its `key` column names."""
    if key not in KEYS:
        raise UsageError(f"unknown key {key!r} (one of: {', '.join(KEYS)})")
    if field not in FIELDS:
        raise UsageError(f"unknown field {field!r} (one of: {', '.join(FIELDS)})")
    path = Path(path)
    name = source or path.name.split(".", 1)[0]
    summary = EnrichSummary(path=str(path), source=f"{name}:{field}")
    max_line = archive.config.catalog.max_line_bytes
    batches = _rows(path, key, field, max_line)
    rejects_path = archive.rejects_dir / f"{path.name}.enrich.rejects.jsonl"
    rejects_path.parent.mkdir(parents=True, exist_ok=True)
    conn = connect(archive.catalog_path)
    try:
        _prepare(conn)
        sources = [r[0] for r in conn.execute("SELECT name FROM sources ORDER BY name")]
        with rejects_path.open("wb") as rejects:
            for rows in batches:
                good, bad = _clean(rows, key, field, max_line)
                for record in bad:
                    rejects.write(orjson.dumps({"file": str(path), **record}, default=str) + b"\n")
                summary.rows += len(good) + len(bad)
                summary.rejected += len(bad)
                _apply(conn, good, key, sources, summary.source, summary)
                report(progress, Progress("enrich", summary.rows, None, "rows", str(path)))
    except (OSError, sqlite3.Error) as exc:
        raise CatalogError(f"{path}: enrich failed ({storage_reason(exc)})") from exc
    finally:
        conn.close()
    if summary.rejected:
        summary.rejects_file = str(rejects_path)
    else:
        rejects_path.unlink(missing_ok=True)
    if summary.tracks_updated:
        events.send("catalog.changed", archive=archive, progress=progress)
    return summary
