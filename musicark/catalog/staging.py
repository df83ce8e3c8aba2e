"""The reading half of an import: read, normalize and stage batches, in a worker process.

Each batch is normalized in Arrow and written by the ADBC SQLite driver into a staging
database (no Python per row). With more than a couple of batches this runs in a child
process, so that reading and normalizing batch k+1 overlaps with merging batch k into the
catalogue on the other core. Staging files rotate through `SLOTS` names; the bounded
queue guarantees a slot is rewritten only after the catalogue has merged it.
"""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_mod
from collections.abc import Iterator
from dataclasses import dataclass
from io import BufferedWriter
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from musicark import errors
from musicark.catalog.db import storage_reason
from musicark.catalog.formats import CatalogFormat, read_batches
from musicark.catalog.formats.base import ReadOptions, Reject
from musicark.catalog.formats.interchange import LINE
from musicark.catalog.normalize import Normalized, normalize
from musicark.executor import die_with_parent

SLOTS = 3


@dataclass(frozen=True)
class StageJob:
    path: str
    fmt: CatalogFormat  # travels to the staging process by reference to its class
    batch_rows: int
    resume_after: int  # lines up to here were committed by an earlier run
    source: str
    rights: str
    stage_dir: str
    rejects_path: str
    ship_tables: bool = False  # hand the normalized tables over instead of staging them
    max_line_bytes: int = 16 << 20


@dataclass(frozen=True)
class StagedBatch:
    stage: str | None  # the staging database holding this batch, unless shipped
    norm: Normalized | None  # the batch's tables, when shipped
    last_line: int
    rows: int  # rows read in this stretch, refused ones included
    rejected: int
    duplicates: int
    sources: tuple[str, ...]


def write_stage(path: Path, norm: Normalized) -> None:
    import adbc_driver_sqlite.dbapi as adbc

    with adbc.connect(str(path)) as conn:
        cur = conn.cursor()
        for name, table in (
            ("tracks", norm.tracks.replace_schema_metadata(None)),
            ("artists", norm.artists),
            ("albums", norm.albums),
            ("links", norm.links),
            ("xids", norm.external_ids),
        ):
            cur.adbc_ingest(name, table, mode="replace")
        cur.close()
        conn.commit()


def write_rejects(out: BufferedWriter, path: str, rejects: list[Reject], refused: pa.Table) -> int:
    """Append one JSON line per refused row: file, line, reason and the row as read."""
    for r in rejects:
        out.write(
            orjson.dumps({"file": path, "line": r.line, "reason": r.reason, "row": r.raw}) + b"\n"
        )
    if refused.num_rows:
        rows = refused.drop_columns([LINE, "_reason"]).to_pylist()
        lines, reasons = refused[LINE].to_pylist(), refused["_reason"].to_pylist()
        for line, reason, row in zip(lines, reasons, rows, strict=True):
            record = {"file": path, "line": line, "reason": reason, "row": row}
            out.write(orjson.dumps(record, default=str) + b"\n")
    return len(rejects) + refused.num_rows


def stage_batches(job: StageJob) -> Iterator[StagedBatch]:
    """Read `job.path` batch by batch, skipping what an earlier run committed."""
    done = job.resume_after
    with open(job.rejects_path, "ab") as rejects_out:
        k = 0
        options = ReadOptions(batch_rows=job.batch_rows, max_line_bytes=job.max_line_bytes)
        for chunk in read_batches(Path(job.path), job.fmt, options=options):
            if chunk.last_line <= job.resume_after:
                continue
            norm = normalize(chunk.table, source=job.source, default_rights=job.rights)
            refused = write_rejects(rejects_out, job.path, chunk.rejects, norm.rejected)
            rejects_out.flush()
            stage = None
            if not job.ship_tables:
                stage = str(Path(job.stage_dir) / f"batch-{k % SLOTS}.sqlite")
                write_stage(Path(stage), norm)
            sources = (norm.tracks.schema.metadata or {}).get(b"sources", b"").decode()
            yield StagedBatch(
                stage=stage,
                norm=norm if job.ship_tables else None,
                last_line=chunk.last_line,
                rows=chunk.last_line - done,
                rejected=refused,
                duplicates=norm.duplicates,
                sources=tuple(filter(None, sources.split("\x1f"))),
            )
            done = chunk.last_line
            k += 1


def _child(job: StageJob, out: Any, parent: int) -> None:
    die_with_parent(parent)  # a killed import must not leave this process reading on
    try:
        for batch in stage_batches(job):
            out.put(("batch", batch))
        out.put(("done", None))
    except errors.MusicarkError as exc:
        out.put(("error", (type(exc).__name__, str(exc))))
    except Exception as exc:  # reported to the parent as one line, not lost
        reason = storage_reason(exc)
        out.put(("error", ("CatalogError", f"{job.path}: staging failed: {reason}")))


def staged(job: StageJob, *, parallel: bool) -> Iterator[StagedBatch]:
    """The staged batches of `job`, from a child process when `parallel`."""
    if not parallel:
        yield from stage_batches(job)
        return
    ctx = multiprocessing.get_context("spawn")  # no fork: the parent holds SQLite and Arrow threads
    channel = ctx.Queue(maxsize=1)
    proc = ctx.Process(
        target=_child, args=(job, channel, os.getpid()), daemon=True, name="musicark-stage"
    )
    proc.start()
    try:
        while True:
            try:
                kind, payload = channel.get(timeout=1.0)
            except queue_mod.Empty:
                if not proc.is_alive():
                    raise errors.CatalogError(f"{job.path}: the staging process died") from None
                continue
            if kind == "done":
                return
            if kind == "error":
                name, message = payload
                cls = getattr(errors, name, errors.CatalogError)
                raise cls(message)
            yield payload
    finally:
        if proc.is_alive():
            proc.terminate()
        proc.join(10)
