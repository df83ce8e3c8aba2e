"""`catalog import`: the merging half — one transaction per batch.

`staging.py` reads and normalizes batches (in a child process for large files). Each
batch then commits in one transaction that also records how far the file has been read,
so a crash loses at most the batch in flight and the next run goes on after it.

* upsert mode: the batch, staged in a database of its own by the ADBC driver, is merged
  with SQL upserts; inserted, updated and unchanged tracks are told apart by row hash.
* bulk mode (a large file into an empty catalogue): the batch is appended through ADBC
  straight into the catalogue with the indexes dropped; they are built once at the end.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import adbc_driver_manager

from musicark import events
from musicark.archive import Archive
from musicark.catalog.db import connect, drop_indexes, ensure_indexes, storage_reason
from musicark.catalog.formats import CatalogFormat, get_format, resolve
from musicark.catalog.ids import source_id
from musicark.catalog.normalize import Normalized
from musicark.catalog.rights import normalize_rights
from musicark.catalog.staging import StagedBatch, StageJob, staged
from musicark.errors import CatalogError, UsageError
from musicark.executor import cpu_count
from musicark.paths import input_file
from musicark.progress import Progress, ProgressCallback, report
from musicark.sqlite import transaction

TRACK_COLUMNS = (
    "id, source_id, external_id, title, album_id, isrc, duration_ms, popularity, play_count, "
    "track_number, disc_number, explicit, rights, license_url, genres, external_ids, extra, row_hash"
)
ALBUM_COLUMNS = (
    "id, source_id, external_id, title, album_type, upc, label, release_date, "
    "release_date_precision, popularity, total_tracks, row_hash"
)
ARTIST_COLUMNS = "id, source_id, external_id, name, popularity, followers, row_hash"


@dataclass
class FileSummary:
    path: str
    format: str
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    duplicates: int = 0
    rejects_file: str | None = None


@dataclass
class ImportSummary:
    files: list[FileSummary] = field(default_factory=list)

    def total(self, name: str) -> int:
        return sum(getattr(f, name) for f in self.files)

    @property
    def imported(self) -> int:
        return self.total("imported")

    @property
    def updated(self) -> int:
        return self.total("updated")

    @property
    def unchanged(self) -> int:
        return self.total("unchanged")

    @property
    def rejected(self) -> int:
        return self.total("rejected")

    def describe(self) -> str:
        return (
            f"{self.imported} imported, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.rejected} rejected"
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "imported": self.imported,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "files": [vars(f) for f in self.files],
        }


def file_key(path: Path) -> str:
    """Identity of an input file: its size and its first and last MiB."""
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with path.open("rb") as f:
        h.update(f.read(1 << 20))
        if size > 2 << 20:
            f.seek(-(1 << 20), os.SEEK_END)
        h.update(f.read(1 << 20))
    return h.hexdigest()


def _upsert_entities(x: Any, prefix: str = "stage.") -> None:
    for table, columns in (("artists", ARTIST_COLUMNS), ("albums", ALBUM_COLUMNS)):
        sets = ", ".join(f"{c.strip()} = excluded.{c.strip()}" for c in columns.split(",")[1:])
        x(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {prefix}{table} WHERE true "
            f"ORDER BY id ON CONFLICT(id) DO UPDATE SET {sets} "
            f"WHERE {table}.row_hash != excluded.row_hash"
        )


class _BulkWriter:
    """Bulk mode: append batches straight into the catalogue through ADBC (no staging copy).

    The catalogue had no tracks, so every track is new; the indexes are dropped and built
    once at the end. The caller's sqlite3 connection is closed meanwhile: two SQLite
    libraries must not hold the same file open in one process.
    """

    def __init__(self, path: Path) -> None:
        import adbc_driver_sqlite.dbapi as adbc

        self.conn = adbc.connect(str(path))
        self.cur = self.conn.cursor()
        self.cur.execute("PRAGMA cache_size=-262144")  # appends need little cache

    def write(self, norm: Normalized, sources: Sequence[str], key: str, batch: StagedBatch) -> int:
        cur = self.cur
        for name in sources:
            cur.execute(
                "INSERT OR IGNORE INTO sources (id, name) VALUES (?, ?)", (source_id(name), name)
            )
        cur.execute("SELECT coalesce(max(rowid), 0) FROM tracks")
        (last,) = cur.fetchone()  # type: ignore[misc]
        cur.adbc_ingest("tracks", norm.tracks.replace_schema_metadata(None), mode="append")
        cur.adbc_ingest("track_artists", norm.links, mode="append")
        cur.execute(
            "INSERT INTO track_changes (track_id) SELECT id FROM tracks WHERE rowid > ?", (last,)
        )
        for name, table in (
            ("artists", norm.artists),
            ("albums", norm.albums),
            ("xids", norm.external_ids),
        ):
            cur.adbc_ingest(f"stage_{name}", table, mode="replace", temporary=True)
        _upsert_entities(cur.execute, prefix="temp.stage_")
        cur.execute("INSERT OR IGNORE INTO external_ids SELECT * FROM temp.stage_xids")
        n = norm.tracks.num_rows
        cur.execute(
            "UPDATE imports SET done_line = ?, imported = imported + ?, rejected = rejected + ? "
            "WHERE file_key = ?",
            (batch.last_line, n, batch.rejected, key),
        )
        self.conn.commit()
        return n

    def close(self) -> None:
        self.cur.close()
        self.conn.close()


def _merge(conn: sqlite3.Connection) -> tuple[int, int, int]:
    """Upsert the staged batch; returns (inserted, updated, unchanged) tracks."""
    x = conn.execute
    x("DROP TABLE IF EXISTS temp.changed")
    x(
        "CREATE TEMP TABLE changed AS SELECT s.id AS id, t.id IS NULL AS new "
        "FROM stage.tracks s LEFT JOIN tracks t ON t.id = s.id "
        "WHERE t.id IS NULL OR t.row_hash != s.row_hash ORDER BY s.id"
    )
    total = x("SELECT count(*) FROM stage.tracks").fetchone()[0]
    inserted, changed = x("SELECT coalesce(sum(new), 0), count(*) FROM temp.changed").fetchone()
    if changed:
        _upsert_entities(x)
        sets = ", ".join(
            f"{c.strip()} = excluded.{c.strip()}" for c in TRACK_COLUMNS.split(",")[1:]
        ).replace(  # a count set by `catalog enrich` stays unless the file brings its own
            "play_count = excluded.play_count",
            "play_count = coalesce(excluded.play_count, "
            "(SELECT l.play_count FROM track_listens l WHERE l.track_id = tracks.id))",
        )
        x(
            f"INSERT INTO tracks ({TRACK_COLUMNS}) SELECT {TRACK_COLUMNS} FROM stage.tracks s "
            f"WHERE s.id IN (SELECT id FROM temp.changed) ORDER BY s.id "
            f"ON CONFLICT(id) DO UPDATE SET {sets}"
        )
        if inserted != changed:
            x(
                "DELETE FROM track_artists WHERE track_id IN (SELECT id FROM temp.changed WHERE NOT new)"
            )
            x(
                "DELETE FROM external_ids WHERE entity = 'track' "
                "AND entity_id IN (SELECT id FROM temp.changed WHERE NOT new)"
            )
        x(
            "INSERT INTO track_artists (track_id, position, artist_id, role) "
            "SELECT track_id, position, artist_id, role FROM stage.links "
            "WHERE track_id IN (SELECT id FROM temp.changed)"
        )
        x(
            "INSERT OR IGNORE INTO external_ids (kind, value, entity, entity_id) "
            "SELECT kind, value, entity, entity_id FROM stage.xids "
            "WHERE entity_id IN (SELECT id FROM temp.changed)"
        )
        x("INSERT INTO track_changes (track_id) SELECT id FROM temp.changed")
    return inserted, changed - inserted, total - changed


def _merge_staged(conn: sqlite3.Connection, batch: StagedBatch, key: str) -> tuple[int, int, int]:
    """Merge one staged batch in one transaction, with the file's resume point."""
    conn.execute("ATTACH DATABASE ? AS stage", (batch.stage,))
    try:
        with transaction(conn):
            for name in batch.sources:
                conn.execute(
                    "INSERT OR IGNORE INTO sources (id, name) VALUES (?, ?)",
                    (source_id(name), name),
                )
            ins, upd, same = _merge(conn)
            conn.execute(
                "UPDATE imports SET done_line = ?, imported = imported + ?, "
                "updated = updated + ?, unchanged = unchanged + ?, "
                "rejected = rejected + ? WHERE file_key = ?",
                (batch.last_line, ins, upd, same, batch.rejected, key),
            )
    finally:
        conn.execute("DETACH DATABASE stage")
    return ins, upd, same


@dataclass(frozen=True)
class _Plan:
    """What one file's import does: where it resumes and how it writes."""

    key: str
    fmt: CatalogFormat
    mode: str  # "bulk" or "upsert"
    resume_after: int
    estimate: int


def _start(
    conn: sqlite3.Connection,
    path: Path,
    fmt: CatalogFormat,
    key: str,
    archive: Archive,
    together: bool,
) -> _Plan:
    """Record the import in `imports` (or pick up the unfinished one) and choose its mode
    (`together`: one bulk load of several files, see `_bulk_together`)."""
    row = conn.execute(
        "SELECT done_line, finished, mode FROM imports WHERE file_key = ?", (key,)
    ).fetchone()
    resuming = bool(row and not row[1])
    estimate = fmt.estimate_rows(path)
    empty = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM tracks)").fetchone()[0]
    if (resuming and row[2] == "bulk") or together:
        mode = "bulk"
    elif empty and estimate >= archive.config.catalog.bulk_min_rows:
        mode = "bulk"  # append without indexes, build them once at the end
    else:
        mode = "upsert"
    conn.execute(
        "INSERT INTO imports (file_key, path, done_line, mode) VALUES (?, ?, 0, ?) "
        "ON CONFLICT(file_key) DO UPDATE SET path = excluded.path, mode = excluded.mode, "
        "done_line = CASE WHEN imports.finished THEN 0 ELSE imports.done_line END, "
        "finished = 0",
        (key, str(path), mode),
    )
    return _Plan(key, fmt, mode, row[0] if resuming else 0, estimate)


def _run(
    archive: Archive,
    conn: sqlite3.Connection,
    job: StageJob,
    plan: _Plan,
    summary: FileSummary,
    progress: ProgressCallback | None,
) -> sqlite3.Connection:
    """Stage and merge every batch; returns the (possibly reopened) catalogue connection."""
    done_rows = 0
    parallel = plan.estimate > 2 * job.batch_rows
    bulk: _BulkWriter | None = None
    if plan.mode == "bulk":
        job = dataclasses.replace(job, ship_tables=True)
        conn.close()
        bulk = _BulkWriter(archive.catalog_path)
    try:
        for batch in staged(job, parallel=parallel):
            summary.rejected += batch.rejected
            summary.duplicates += batch.duplicates
            summary.unchanged += batch.duplicates
            if bulk is not None:
                assert batch.norm is not None
                ins, upd, same = bulk.write(batch.norm, batch.sources, plan.key, batch), 0, 0
            else:
                ins, upd, same = _merge_staged(conn, batch, plan.key)
            summary.imported += ins
            summary.updated += upd
            summary.unchanged += same
            done_rows += batch.rows
            report(progress, Progress("import", done_rows, plan.estimate or None, "rows", job.path))
    finally:
        if bulk is not None:
            bulk.close()
            conn = connect(archive.catalog_path, indexes=False)
            _sort_on_every_core(conn)
    return conn


def _sort_on_every_core(conn: sqlite3.Connection) -> None:
    """Settings for building the indexes after a bulk load.

    With a small sort memory SQLite's sorter writes sorted runs (to temporary files, not
    RAM) and sorts and merges them on helper threads: measured on 1 M tracks, the
    connection's own thread did 1.8 of 3.7 CPU-seconds instead of all 3.8, so the index
    builds use the second core that the staging process has left idle.
    """
    conn.execute("PRAGMA temp_store=FILE")
    conn.execute("PRAGMA cache_size=-8192")  # 8 MiB
    conn.execute(f"PRAGMA threads={max(1, cpu_count())}")


def _storage_error(path: Path, exc: BaseException) -> CatalogError:
    reason = storage_reason(exc)
    if reason.startswith("the disk is full"):
        return CatalogError(
            f"{path}: import stopped, {reason}; free space and run it again to resume"
        )
    return CatalogError(f"{path}: import failed ({reason})")


def import_file(
    archive: Archive,
    path: Path,
    *,
    format: str = "auto",
    source: str | None = None,
    default_rights: str | None = None,
    progress: ProgressCallback | None = None,
) -> FileSummary:
    """Import one file into the archive's catalogue (see `import_catalog`)."""
    if format != "auto":
        get_format(format)  # an unknown name is a usage error, before the file is looked at
    path = Path(path)
    input_file(path)
    return _import_one(
        archive,
        path,
        resolve(path, format),
        file_key(path),
        source=source,
        default_rights=default_rights,
        progress=progress,
        together=False,
        finish=[],
    )


def _import_one(
    archive: Archive,
    path: Path,
    fmt: CatalogFormat,
    key: str,
    *,
    source: str | None,
    default_rights: str | None,
    progress: ProgressCallback | None,
    together: bool,
    finish: Sequence[str] | None,
) -> FileSummary:
    """Import `path`; then, unless `finish` is None (a file of a bulk load that goes on),
    build the indexes and mark it and the earlier files of the load (`finish`) finished."""
    settings = archive.config.catalog
    rights = normalize_rights(default_rights or settings.default_rights)
    summary = FileSummary(path=str(path), format=fmt.name)
    stage_dir = archive.staging_dir / f"import-{key[:16]}"
    rejects_path = archive.rejects_dir / f"{path.name}.{key[:12]}.rejects.jsonl"
    conn = connect(archive.catalog_path, indexes=False)
    try:
        plan = _start(conn, path, fmt, key, archive, together)
        if plan.mode == "bulk":
            drop_indexes(conn)
        else:
            ensure_indexes(conn)
            conn.execute("PRAGMA cache_size=-1048576")  # upserts look ids up all over
        rejects_path.parent.mkdir(parents=True, exist_ok=True)  # folders the user removed
        if not plan.resume_after:
            rejects_path.write_bytes(b"")
        stage_dir.mkdir(parents=True, exist_ok=True)
        job = StageJob(
            path=str(path),
            fmt=fmt,
            batch_rows=settings.batch_rows,
            resume_after=plan.resume_after,
            source=source or fmt.source or "local",
            rights=rights,
            stage_dir=str(stage_dir),
            rejects_path=str(rejects_path),
            max_line_bytes=settings.max_line_bytes,
        )
        conn = _run(archive, conn, job, plan, summary, progress)
        if finish is not None:
            report(progress, Progress("indexes", 0, None, "indexes"))
            superseded = ensure_indexes(conn)
            summary.imported -= superseded  # the same id twice in a bulk load: the last row won
            summary.updated += superseded
            with transaction(conn):
                for done in (*finish, key):
                    conn.execute("UPDATE imports SET finished = 1 WHERE file_key = ?", (done,))
            conn.execute("PRAGMA optimize")
    except (OSError, sqlite3.Error, adbc_driver_manager.Error) as exc:
        raise _storage_error(path, exc) from exc
    finally:
        conn.close()
        shutil.rmtree(stage_dir, ignore_errors=True)
    if summary.rejected:
        summary.rejects_file = str(rejects_path)
    else:
        rejects_path.unlink(missing_ok=True)
    return summary


def _bulk_together(
    archive: Archive,
    paths: Sequence[Path],
    formats: Sequence[CatalogFormat],
    keys: Sequence[str],
) -> bool:
    """Whether several files load as one bulk load: appended with the indexes dropped and
    the indexes built once after the last file. Upserting file after file into indexed
    tables of tens of millions of rows rewrites pages all over the catalogue (measured:
    ~130 GB written for the first 30 of 50 one-million-track files); the bulk load writes
    each page about once. Taken when the catalogue has no tracks, or when an earlier
    bulk load of these files was interrupted, and none of the files was imported before.
    """
    if len(paths) < 2:
        return False
    conn = connect(archive.catalog_path, indexes=False)
    try:
        marks = ",".join("?" * len(keys))
        rows = conn.execute(
            f"SELECT finished, mode FROM imports WHERE file_key IN ({marks})", list(keys)
        ).fetchall()
        if any(finished for finished, _mode in rows):
            return False
        if any(mode == "bulk" for _finished, mode in rows):
            return True  # an interrupted load of these files: go on as it began
        if conn.execute("SELECT EXISTS (SELECT 1 FROM tracks)").fetchone()[0]:
            return False
    finally:
        conn.close()
    rows_in = sum(f.estimate_rows(p) for p, f in zip(paths, formats, strict=True))
    return bool(rows_in >= archive.config.catalog.bulk_min_rows)


def import_catalog(
    archive: Archive,
    paths: Sequence[Path | str],
    *,
    format: str = "auto",
    source: str | None = None,
    default_rights: str | None = None,
    progress: ProgressCallback | None = None,
) -> ImportSummary:
    """Import catalogue files; upserts by (source, external id), so re-importing changes nothing.

    Every file is checked for its format before any is imported, so that a wrong file in
    the list fails the command before it changes the catalogue. Sends "catalog.changed"
    when a file was imported (the search index follows).
    """
    if not paths:
        raise UsageError("no files to import")
    if default_rights is not None:
        normalize_rights(default_rights)
    files = [input_file(p) for p in paths]
    formats = [resolve(p, format) for p in files]
    keys = [file_key(p) for p in files]
    together = _bulk_together(archive, files, formats, keys)
    summary = ImportSummary()
    for i, (p, fmt, key) in enumerate(zip(files, formats, keys, strict=True)):
        # a bulk load of several files is finished (indexes, `finished`) with its last file
        finish = None if together and i < len(files) - 1 else keys[:i] if together else []
        summary.files.append(
            _import_one(
                archive,
                p,
                fmt,
                key,
                source=source,
                default_rights=default_rights,
                progress=progress,
                together=together,
                finish=finish,
            )
        )
    # After a failure the followers catch up at the next import (track_changes keeps the order).
    events.send("catalog.changed", archive=archive, progress=progress)
    return summary
