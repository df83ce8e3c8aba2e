"""`ingest`: files and folders into the content-addressed store, one ledger entry per file.

Pipeline (beets-style stages, each a function named by its verb):

    walk -> skip_known -> [workers (`worker.py`): store (hash while copying to staging)
    -> analyse (probe + tags + fingerprint)] -> place (sync, rename into the store, sync)
    -> record (match, rows; `recorder.py`)

The main process walks lazily and sends batches of files to the executor's workers,
with a bounded number of batches in flight, so memory does not grow with the number of
files. Workers are pure: they never write to the databases and never rename into the
store. The main process places each batch's blobs and records them in one step:

1. mark the batch's new blobs pending (`ingest_pending`, committed);
2. rename the synced temporary copies into the store, sync the renames;
3. one transaction adds the rows and removes the pending marks.

A run killed anywhere in between leaves pending marks whose process is gone; the next run
removes those blobs unless a row holds them, and removes temporary files of dead
processes from `staging/`. So a blob enters the store only together with its ledger row,
and workers (which die with their parent) add nothing after a kill.

A worker that dies outright costs only its file: the executor finds it and it is recorded
as `error_crashed`. Re-running over the same paths skips files whose path, size and mtime
are in the ledger, then files whose blob is already in the store.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from musicark import events
from musicark.archive import Archive
from musicark.errors import StoreError, UsageError
from musicark.executor import Executor, make_executor, resolve_jobs
from musicark.locks import exclusive
from musicark.progress import Progress, ProgressCallback, report
from musicark.sqlite import transaction
from musicark.store import schema
from musicark.store.blobs import (
    blob_file_in,
    blob_path_in,
    hash_file,
    is_disk_full,
    process_alive,
    sync_filesystem,
)
from musicark.store.ledger import STORED
from musicark.store.match import Matcher
from musicark.store.recorder import IngestSummary, Recorder
from musicark.store.walk import Entry, Issue, WalkStats, walk
from musicark.store.worker import FileEntry, FileResult, Task, process_batch, split

MODES = ("copy", "hardlink", "move")
BATCH_FILES = 200
FIRST_BATCH = 16
BATCH_BYTES = 256 * 1024 * 1024
# imported once by a fork server, inherited by forked workers
PRELOAD = (
    "musicark.store.worker",
    "musicark.store.probe",
    "musicark.store.tags",
    "av",
    "chromaprint",
    # mutagen's format modules, imported by every worker otherwise
    "mutagen.id3",
    "mutagen.flac",
    "mutagen.oggvorbis",
    "mutagen.oggopus",
    "mutagen.easymp4",
    "mutagen.apev2",
    "mutagen.asf",
)


def ingest(
    archive: Archive,
    paths: Sequence[str | os.PathLike[str]],
    *,
    mode: str = "copy",
    jobs: int | None = None,
    fingerprint: bool = True,
    source: str | None = None,
    progress: ProgressCallback | None = None,
) -> IngestSummary:
    """Ingest files and folders into the store; returns what happened to each kind of file."""
    if mode not in MODES:
        raise UsageError(f"--mode must be one of {', '.join(MODES)}, not {mode!r}")
    if not paths:
        raise UsageError("give at least one file or folder to ingest")
    jobs = resolve_jobs(jobs, archive.config.ingest.jobs)
    started = time.perf_counter()
    staging = archive.staging_dir / "ingest"
    # one ingest at a time: a second one would take the first one's staged files and
    # pending marks for a crashed run's leftovers and remove them
    with exclusive(archive.staging_dir / "ingest.lock", _busy):
        conn = schema.connect(archive)
        try:
            staging.mkdir(parents=True, exist_ok=True)
            _make_fanout(archive)
            recover(archive, conn)
            _clean_staging(staging)
            with transaction(conn):
                run_id = int(
                    conn.execute(
                        "INSERT INTO ingest_runs (started, mode, source) VALUES (?, ?, ?)",
                        (schema.now(), mode, source),
                    ).lastrowid
                    or 0
                )
            summary = IngestSummary(run_id=run_id)
            matcher = Matcher(
                archive, conn, tolerance_ms=archive.config.ingest.duration_tolerance_ms
            )
            recorder = Recorder(conn, matcher, summary, run_id=run_id, source=source)
            base = Task(
                entries=(),
                mode=mode,
                fingerprint=fingerprint,
                store_dir=str(archive.store_dir),
                staging_dir=str(staging),
                fanout=archive.config.store.fanout,
            )
            stats = WalkStats()
            try:
                _run(_Run(archive, recorder, base, progress), paths, stats, jobs)
            except sqlite3.Error as exc:
                raise StoreError(
                    f"{archive.state_path}: {exc}; run the command again to resume"
                ) from exc
            finally:
                matcher.close()
                _clean_staging(staging)
            summary.repeated = stats.repeated
            recorder.finish()
            summary.seconds = time.perf_counter() - started
            with transaction(conn):
                conn.execute(
                    "UPDATE ingest_runs SET finished = ?, summary = ? WHERE id = ?",
                    (schema.now(), json.dumps(summary.to_dict()), run_id),
                )
        finally:
            conn.close()
    events.send("store.changed", archive=archive, progress=progress)
    return summary


def _busy(pid: str) -> StoreError:
    return StoreError(
        f"another `musicark ingest` (pid {pid}) is storing files in this archive;"
        " run this one when it ends"
    )


class _Run:
    """What one ingest run's main loop needs: where blobs go and who records them."""

    def __init__(
        self, archive: Archive, recorder: Recorder, base: Task, progress: ProgressCallback | None
    ) -> None:
        self.archive = archive
        self.recorder = recorder
        self.base = base
        self.progress = progress
        self.store = archive.store_dir
        self.staging = Path(base.staging_dir)
        self.store_name = str(archive.store_dir)
        self.pid = os.getpid()
        self.untracked: list[FileEntry] = []  # blob file found in the store without a row
        # a placed batch waiting for the next sync before its rows are committed
        self.held: tuple[list[FileResult], set[str]] | None = None

    def tick(self) -> None:
        report(self.progress, Progress("ingest", self.recorder.summary.files, None, "files"))

    def commit(self, results: list[FileResult]) -> None:
        """Sync (this batch's copies, the last batch's renames), record the last batch, then
        place this batch's new blobs; they are recorded after the next sync (`finish`).

        One sync per batch: a blob's rows are committed only once its rename is durable,
        and a blob is renamed only once its data is; pending marks cover the gap."""
        if self.held is not None or any(r.status == "new" for r in results):
            self._settle()
        rec = self.recorder
        shas = {r.sha256 for r in results if r.sha256 and r.status in ("new", "stored")}
        with_rows = rec.has_blobs(shas)
        keep: list[FileResult] = []
        fresh: dict[str, FileResult] = {}
        copies: list[FileResult] = []
        for res in results:
            if res.status == "stored" and res.sha256 not in with_rows:
                self.untracked.append(res.entry)  # analysed again after the walk
                continue
            if res.status == "new" and res.sha256 is not None:
                if res.sha256 in with_rows or res.sha256 in fresh:
                    _drop(res)  # the same bytes are stored already: a duplicate
                    copies.append(res)
                else:
                    fresh[res.sha256] = res
            keep.append(res)
        placed = self._place(list(fresh.values()))
        for res in copies:
            if res.verified:  # --mode move: the stored blob is what must verify
                self._verify_stored(res)
        self.held = (keep, placed)

    def finish(self) -> None:
        """Record the batch still held (after syncing its renames)."""
        if self.held is not None:
            self._settle()

    def _settle(self) -> None:
        try:
            sync_filesystem(self.store)
        except OSError as exc:
            raise StoreError(
                f"{self.store}: sync failed ({exc.strerror}); run the command again to resume"
            ) from exc
        if self.held is None:
            return
        keep, placed = self.held
        self.held = None
        self.recorder.record(keep, placed=placed, pid=self.pid)
        remove_originals(keep)  # --mode move, after the batch is recorded
        for res in keep:
            _drop(res)

    def _verify_stored(self, res: FileResult) -> None:
        assert res.sha256 is not None
        final = blob_file_in(self.store_name, res.sha256, self.base.fanout)
        try:
            res.verified = hash_file(final)[0] == res.sha256
        except OSError:
            res.verified = False

    def _place(self, fresh: list[FileResult]) -> set[str]:
        """Rename the synced temporary copies into the store (marked pending first); the
        blobs that are in place."""
        if not fresh:
            return set()
        self.recorder.mark_pending({res.sha256 for res in fresh if res.sha256}, pid=self.pid)
        placed: set[str] = set()
        for res in fresh:
            assert res.sha256 is not None and res.tmp is not None
            try:
                _rename_into(res.tmp, blob_file_in(self.store_name, res.sha256, self.base.fanout))
            except OSError as exc:
                if is_disk_full(exc):
                    _fail(res, "error_disk_full", "no space left in the archive")
                else:
                    _fail(res, "error_io", f"cannot place the blob: {exc.strerror}")
                continue
            res.tmp = None
            placed.add(res.sha256)
        return placed


def _rename_into(tmp: str, final: str) -> None:
    """Rename into the store, making the fan-out folder only when the rename says it is
    missing (a folder made per file would cost a system call per file)."""
    try:
        os.replace(tmp, final)
    except FileNotFoundError:  # a new fan-out folder, or one that went away
        folder = os.path.dirname(final)
        try:
            os.mkdir(folder)
        except FileExistsError:
            pass
        except FileNotFoundError:
            os.makedirs(folder, exist_ok=True)
        os.replace(tmp, final)


def _fail(res: FileResult, status: str, reason: str) -> None:
    res.status, res.reason = status, reason
    _drop(res)


def _drop(res: FileResult) -> None:
    """Remove a temporary copy that will not become a blob."""
    if res.tmp is not None:
        Path(res.tmp).unlink(missing_ok=True)
        res.tmp = None


def _run(run: _Run, paths: Sequence[str | os.PathLike[str]], stats: WalkStats, jobs: int) -> None:
    """walk -> skip_known -> worker batches -> place + record, a bounded number in flight."""
    rec = run.recorder

    def tasks() -> Iterator[Task]:
        for batch in _batches(walk(paths, stats)):
            rec.record_issues([e for e in batch if isinstance(e, Issue)])
            todo = rec.skip_known([e for e in batch if isinstance(e, Entry)])
            if todo:
                entries = tuple(FileEntry(e.path, e.key, e.size, e.mtime_ns) for e in todo)
                yield replace(run.base, entries=entries)
            run.tick()

    # a worker is a process even for --jobs 1: a crashing codec must not take the run along
    with make_executor(
        jobs=jobs,
        kind="processes",
        # Chromaprint's library loads a second FFmpeg: not for --no-fingerprint
        preload=PRELOAD
        if run.base.fingerprint
        else tuple(m for m in PRELOAD if m != "chromaprint"),
        where=run.archive.config.ingest.executor,
        shared=(run.staging, run.store),
    ) as executor:
        _drain(run, executor, tasks())
        if run.untracked:  # blob files without rows: analyse them after all
            again, run.untracked = run.untracked, []
            retry = replace(run.base, entries=tuple(again), skip_stored=False)
            _drain(run, executor, split(retry))


def _drain(run: _Run, executor: Executor, tasks: Iterable[Task]) -> None:
    for out in executor.run(process_batch, tasks, split=split):
        if out.crashed is not None:
            run.recorder.record_crashed(out.task.entries, out.crashed)
        elif out.result is not None:
            run.commit(out.result)
        run.tick()
    run.finish()


def recover(archive: Archive, conn: sqlite3.Connection) -> int:
    """Remove the blobs an interrupted run renamed into the store but never recorded (its
    process is gone, its pending marks remain); returns how many were removed."""
    rows = conn.execute("SELECT sha256, pid FROM ingest_pending").fetchall()
    dead = [(sha, pid) for sha, pid in rows if not process_alive(pid)]
    if not dead:
        return 0
    removed = 0
    fanout = archive.config.store.fanout
    for sha, _pid in dead:
        held = conn.execute("SELECT 1 FROM blobs WHERE sha256 = ?", (sha,)).fetchone()
        if held is None:
            try:
                blob_path_in(archive.store_dir, sha, fanout).unlink()
                removed += 1
            except FileNotFoundError:
                pass
    with transaction(conn):
        conn.executemany("DELETE FROM ingest_pending WHERE sha256 = ? AND pid = ?", dead)
    return removed


def remove_originals(results: list[FileResult]) -> None:
    """`--mode move`: delete verified originals that have not changed since they were read."""
    for res in results:
        if not res.verified or res.status not in (*STORED, "new", "stored"):
            continue
        try:
            st = os.stat(res.path)
            if st.st_size == res.size and st.st_mtime_ns == res.mtime_ns:
                os.unlink(res.path)
        except OSError:
            pass  # gone already, or not ours to delete: the original stays


def _make_fanout(archive: Archive) -> None:
    """The first level of fan-out folders, made once."""
    if archive.config.store.fanout < 1 or (archive.store_dir / "ff").is_dir():
        return
    for i in range(256):
        (archive.store_dir / f"{i:02x}").mkdir(parents=True, exist_ok=True)


def _clean_staging(staging: Path) -> None:
    """Remove temporary files of processes that are gone (a killed run, a crashed worker).

    A temporary file is named after its process id; those of a live process (another
    ingest running now) are left alone.
    """
    for tmp in staging.glob("*.tmp"):
        pid = tmp.name.split("-", 1)[0]
        if pid.isdigit() and process_alive(int(pid)):
            continue
        tmp.unlink(missing_ok=True)


def _batches(items: Iterable[Entry | Issue]) -> Iterable[list[Entry | Issue]]:
    """Batches that start small (every worker busy at once, even on a short run) and grow
    to BATCH_FILES (fewer syncs per file)."""
    batch: list[Entry | Issue] = []
    size = 0
    limit = FIRST_BATCH
    for item in items:
        batch.append(item)
        if isinstance(item, Entry):
            size += item.size
        if len(batch) >= limit or size >= BATCH_BYTES:
            yield batch
            batch, size = [], 0
            limit = min(BATCH_FILES, limit * 2)
    if batch:
        yield batch


__all__ = ["MODES", "STORED", "IngestSummary", "ingest", "recover"]
