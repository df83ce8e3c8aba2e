"""`musicark transcode`: derived renditions for the tracks of a plan tier.

For every track a plan selects in the tier (`zero` by default: the long tail), the
preferred held rendition is re-encoded (`encode.render`, in worker processes) and checked
against its source (`check.py`). The main process stores a checked file by its own sha256
(synced, renamed into the store) and then records it: a `blobs` row and a `derived` row
with its provenance (source, codec, bit rate, settings, encoder and library versions,
what the check measured). A failed check is recorded in `transcode_failures` and nothing
is stored. Re-running skips what is derived or failed already; a crash leaves at most a
temporary file (removed by the next run) or a stored blob not yet recorded (recorded by
the next run, which derives the same bytes).

Tasks carry batches of sources (`_batches`: sized by bytes, a few per worker), so the same
run goes to a Dask cluster (`--executor dask://...`): its workers read the sources from
the shared store and write checked files into `staging/transcode` on the shared path; the
coordinator alone renames them into the store and records them. A worker killed mid-task
leaves only a `.part` file (its task runs again elsewhere), which the run removes.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from musicark.archive import Archive
from musicark.errors import StoreError, UsageError
from musicark.executor import Outcome, make_executor, resolve_jobs
from musicark.locks import exclusive
from musicark.progress import Progress, ProgressCallback, report
from musicark.sqlite import transaction
from musicark.store import schema as store_schema
from musicark.store.blobs import blob_path, replace_durably
from musicark.tier import schema
from musicark.tier.encode import (
    CODECS,
    Job,
    Rendered,
    Settings,
    library_versions,
    render_batch,
    split_batch,
)

TIERS = ("zero", "main")
MAX_LISTED = 1000
_CHUNK = 500
TASK_BYTES = 32 << 20  # source bytes per task at most: ~10 real files, tens of CPU-seconds
TASKS_PER_WORKER = 4  # at least this many tasks per worker while there are files enough


@dataclass
class TranscodeSummary:
    plan: str
    tier: str
    codec: str
    bitrate: int
    selected: int = 0  # tracks of the tier the plan selects
    held: int = 0  # of which the store holds a preferred rendition
    transcoded: int = 0
    already: int = 0  # derived by an earlier run
    not_needed: int = 0  # the held rendition is this codec at this bit rate or below
    failed: int = 0
    failed_before: int = 0  # a recorded failure: not tried again
    missing_source: int = 0  # the held blob is not in the store (see `audit --repair`)
    bytes_in: int = 0
    bytes_out: int = 0
    audio_seconds: float = 0.0
    seconds: float = 0.0
    jobs: int = 1
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["seconds"] = round(self.seconds, 3)
        out["audio_seconds"] = round(self.audio_seconds, 3)
        out["realtime"] = round(self.audio_seconds / self.seconds, 1) if self.seconds else None
        out["ok"] = self.ok
        return out


@dataclass(frozen=True)
class _Source:
    track_id: int
    sha256: str
    size: int
    codec: str | None
    bitrate: int | None
    fingerprint: bytes | None


def plan_tracks(archive: Archive, plan: str | Path | None, tier: str) -> tuple[str, list[int]]:
    """(plan path, track ids the plan selects in `tier`)."""
    import pyarrow.compute as pc

    from musicark.plan import latest_plan
    from musicark.plan.io import read_plan

    if tier not in TIERS:
        raise UsageError(f"--tier must be one of {', '.join(TIERS)}, not {tier!r}")
    path = latest_plan(archive) if plan in (None, "latest") else Path(str(plan))
    if not path.exists():
        if plan not in (None, "latest"):  # a path named by the caller: a usage error
            raise UsageError(f"no plan at {path}")
        raise StoreError(f"no plan at {path} (make one with `musicark plan`)")
    table = read_plan(path, columns=["track_id", "status", "tier"])
    mask = pc.and_(
        pc.equal(table.column("status").cast("string"), "selected"),
        pc.equal(table.column("tier").cast("string"), tier),
    )
    ids = table.filter(mask).column("track_id").to_pylist()
    return str(path), sorted({int(t) for t in ids if t is not None})


def _sources(conn: sqlite3.Connection, track_ids: list[int]) -> Iterator[_Source]:
    """The preferred held rendition of each track that has one (with its fingerprint)."""
    for i in range(0, len(track_ids), _CHUNK):
        chunk = track_ids[i : i + _CHUNK]
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(
            "SELECT r.track_id, r.sha256, b.size, b.codec, b.bitrate, f.fp FROM renditions r"
            " JOIN blobs b ON b.sha256 = r.sha256"
            " LEFT JOIN fingerprints f ON f.sha256 = r.sha256"
            f" WHERE r.preferred = 1 AND r.track_id IN ({marks}) ORDER BY r.track_id",
            chunk,
        ):
            yield _Source(*row)


def transcode(
    archive: Archive,
    *,
    plan: str | Path | None = None,
    tier: str = "zero",
    codec: str = "opus",
    bitrate: int = 75_000,
    jobs: int | None = None,
    progress: ProgressCallback | None = None,
) -> TranscodeSummary:
    """Derive and check a rendition for each selected track of `tier` (module docstring)."""
    if codec not in CODECS:
        raise UsageError(f"--codec must be one of {', '.join(CODECS)}, not {codec!r}")
    if not 6_000 <= bitrate <= 510_000:
        raise UsageError(f"--bitrate must be between 6k and 510k for {codec}, not {bitrate}")
    settings = Settings(codec, bitrate)
    workers = resolve_jobs(jobs, archive.config.ingest.jobs)
    plan_path, track_ids = plan_tracks(archive, plan, tier)
    summary = TranscodeSummary(plan_path, tier, codec, bitrate, selected=len(track_ids))
    summary.jobs = workers
    t0 = time.perf_counter()
    conn = schema.connect(archive)
    work = archive.staging_dir / "transcode"
    try:
        with exclusive(work / ".lock", _busy):
            _clear(work)  # what a crashed run (or a killed worker) left
            jobs_todo = _todo(archive, conn, track_ids, settings, work, summary)
            versions = library_versions()
            done = 0
            report(progress, Progress("transcode", 0, len(jobs_todo), "tracks"))
            kind = "processes" if workers > 1 else "inline"
            with make_executor(
                jobs=workers,
                kind=kind,
                where=archive.config.ingest.executor,
                shared=(work, archive.store_dir),
            ) as executor:
                summary.jobs = executor.jobs
                tasks = _batches(jobs_todo, executor.jobs)
                for out in executor.run(render_batch, tasks, split=split_batch):
                    for job, res in _pairs(out):
                        _settle(archive, conn, settings, versions, job, res, out.crashed, summary)
                    done += len(out.task)
                    report(progress, Progress("transcode", done, len(jobs_todo), "tracks"))
            _clear(work)
    finally:
        conn.close()
    summary.seconds = time.perf_counter() - t0
    return summary


def _busy(pid: str) -> StoreError:
    return StoreError(f"another `musicark transcode` (pid {pid}) is running in this archive")


def _clear(work: Path) -> None:
    """Remove temporary files: every task of this run has ended (one run at a time)."""
    for pattern in ("*.tmp", "*.part"):
        for leftover in work.glob(pattern):
            leftover.unlink(missing_ok=True)


def _batches(jobs: list[Job], width: int) -> list[tuple[Job, ...]]:
    """Tasks of up to TASK_BYTES of sources, at least TASKS_PER_WORKER per worker."""
    sizes = [Path(j.source_path).stat().st_size for j in jobs]
    cap = max(1, min(TASK_BYTES, sum(sizes) // (width * TASKS_PER_WORKER)))
    out: list[tuple[Job, ...]] = []
    batch: list[Job] = []
    size = 0
    for job, here in zip(jobs, sizes, strict=True):
        if batch and size + here > cap:
            out.append(tuple(batch))
            batch, size = [], 0
        batch.append(job)
        size += here
    if batch:
        out.append(tuple(batch))
    return out


def _pairs(out: Outcome[tuple[Job, ...], list[Rendered]]) -> list[tuple[Job, Rendered | None]]:
    if out.result is None:
        return [(job, None) for job in out.task]
    return list(zip(out.task, out.result, strict=True))


def _todo(
    archive: Archive,
    conn: sqlite3.Connection,
    track_ids: list[int],
    settings: Settings,
    work: Path,
    summary: TranscodeSummary,
) -> list[Job]:
    derived = {
        s
        for (s,) in conn.execute(
            "SELECT source_sha256 FROM derived WHERE settings_key = ?", (settings.key,)
        )
    }
    failed = {
        s
        for (s,) in conn.execute(
            "SELECT source_sha256 FROM transcode_failures WHERE settings_key = ?", (settings.key,)
        )
    }
    todo: list[Job] = []
    seen: set[str] = set()
    for src in _sources(conn, track_ids):
        summary.held += 1
        if src.sha256 in derived:
            summary.already += 1
        elif src.sha256 in failed:
            summary.failed_before += 1
        elif src.codec == settings.codec and (src.bitrate or 0) <= settings.bitrate:
            summary.not_needed += 1
        elif src.sha256 not in seen:
            path = blob_path(archive, src.sha256)
            if not path.is_file():
                summary.missing_source += 1
                continue
            seen.add(src.sha256)
            summary.bytes_in += src.size
            todo.append(
                Job(
                    source_sha256=src.sha256,
                    source_path=str(path),
                    tmp_path=str(work / f"{src.sha256}.{settings.key}.tmp"),
                    settings=settings,
                    source_fp=src.fingerprint,
                )
            )
    return todo


def _settle(
    archive: Archive,
    conn: sqlite3.Connection,
    settings: Settings,
    versions: dict[str, str],
    job: Job,
    res: Rendered | None,
    crashed: str | None,
    summary: TranscodeSummary,
) -> None:
    """Store and record one worker's result (or its failure)."""
    if res is not None and res.ok and res.sha256 is not None and not _whole(job, res):
        # not the file the worker checked (staging changed under the run): tried next run
        summary.failed += 1
        if len(summary.failures) < MAX_LISTED:
            why = f"{job.tmp_path} is missing or not the {res.size} bytes checked"
            summary.failures.append({"source_sha256": job.source_sha256, "reason": why})
        return
    if res is None or not res.ok or res.sha256 is None:
        reason = f"the encoder crashed: {crashed}" if res is None else str(res.reason)
        Path(job.tmp_path).unlink(missing_ok=True)
        summary.failed += 1
        if len(summary.failures) < MAX_LISTED:
            summary.failures.append({"source_sha256": job.source_sha256, "reason": reason})
        with transaction(conn):
            conn.execute(
                "INSERT OR REPLACE INTO transcode_failures"
                " (source_sha256, settings_key, reason, at) VALUES (?,?,?,?)",
                (job.source_sha256, settings.key, reason, store_schema.now()),
            )
        return
    _place(archive, Path(job.tmp_path), res.sha256)
    now = store_schema.now()
    codec = CODECS[settings.codec]
    tags = {k: [v] for k, v in res.tags.items()}
    with transaction(conn):
        conn.execute(
            "INSERT OR IGNORE INTO blobs (sha256, size, container, codec, duration_ms, bitrate,"
            " sample_rate, channels, lossless, damaged, tags, added)"
            " VALUES (?,?,?,?,?,?,?,?,0,NULL,?,?)",
            (
                res.sha256,
                res.size,
                codec.container,
                codec.name,
                res.duration_ms,
                settings.bitrate,
                codec.sample_rate,
                res.channels,
                json.dumps(tags, ensure_ascii=False),
                now,
            ),
        )
        conn.execute(
            "INSERT OR REPLACE INTO derived (sha256, source_sha256, codec, bitrate, settings_key,"
            " settings, encoder, libraries, duration_ms, source_duration_ms, ber, created)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                res.sha256,
                job.source_sha256,
                settings.codec,
                settings.bitrate,
                settings.key,
                json.dumps(settings.describe(), sort_keys=True),
                versions.get("libopus", codec.encoder),
                json.dumps(versions, sort_keys=True),
                res.duration_ms,
                res.source_duration_ms,
                res.ber,
                now,
            ),
        )
        conn.execute(
            "DELETE FROM transcode_failures WHERE source_sha256 = ? AND settings_key = ?",
            (job.source_sha256, settings.key),
        )
    summary.transcoded += 1
    summary.bytes_out += res.size
    summary.audio_seconds += res.source_duration_ms / 1000


def _whole(job: Job, res: Rendered) -> bool:
    try:
        return os.stat(job.tmp_path).st_size == res.size
    except OSError:
        return False


def _place(archive: Archive, tmp: Path, sha256: str) -> None:
    """Rename a checked temporary file into the store, durably (kept if already there)."""
    dest = blob_path(archive, sha256)
    if dest.exists():
        tmp.unlink(missing_ok=True)
        return
    replace_durably(tmp, dest)


def derived_renditions(
    conn: sqlite3.Connection, *, limit: int = MAX_LISTED
) -> list[dict[str, Any]]:
    """Every derived rendition with its source and the source's track (for `dupes`)."""
    if not schema.has_tables(conn):
        return []
    return [
        {
            "sha256": sha,
            "source_sha256": source,
            "track_id": track_id,
            "codec": codec,
            "bitrate": bitrate,
            "size": size,
            "ber": ber,
            "encoder": encoder,
        }
        for sha, source, track_id, codec, bitrate, size, ber, encoder in conn.execute(
            "SELECT d.sha256, d.source_sha256, r.track_id, d.codec, d.bitrate, b.size, d.ber,"
            " d.encoder FROM derived d JOIN blobs b ON b.sha256 = d.sha256"
            " LEFT JOIN renditions r ON r.sha256 = d.source_sha256"
            " ORDER BY r.track_id, d.sha256 LIMIT ?",
            (limit,),
        )
    ]


def derived_for(
    conn: sqlite3.Connection, source_shas: list[str], settings_key: str
) -> dict[str, tuple[str, int]]:
    """source sha256 -> (derived sha256, size) for the given settings key."""
    if not schema.has_tables(conn):
        return {}
    out: dict[str, tuple[str, int]] = {}
    for i in range(0, len(source_shas), _CHUNK):
        chunk = source_shas[i : i + _CHUNK]
        marks = ",".join("?" * len(chunk))
        for source, sha, size in conn.execute(
            "SELECT d.source_sha256, d.sha256, b.size FROM derived d"
            " JOIN blobs b ON b.sha256 = d.sha256"
            f" WHERE d.settings_key = ? AND d.source_sha256 IN ({marks})",
            [settings_key, *chunk],
        ):
            out[source] = (sha, size)
    return out


def derived_sizes(archive: Archive, settings_key: str) -> dict[int, int]:
    """track id -> size of the derived rendition (of `settings_key`) of its preferred
    rendition, for `plan` (read-only; empty before any transcode)."""
    if not archive.state_path.exists():
        return {}
    conn = archive.connect_state(readonly=True)
    try:
        if not schema.has_tables(conn):
            return {}
        return dict(
            conn.execute(
                "SELECT r.track_id, b.size FROM renditions r"
                " JOIN derived d ON d.source_sha256 = r.sha256 AND d.settings_key = ?"
                " JOIN blobs b ON b.sha256 = d.sha256"
                " WHERE r.preferred = 1 AND r.track_id IS NOT NULL",
                (settings_key,),
            ).fetchall()
        )
    finally:
        conn.close()
