"""`ingest`: files and folders into the content-addressed store, one ledger entry per file.

Pipeline (beets-style stages, each a function named by its verb):

    walk -> skip_known -> [worker processes: store (hash while copying) -> analyse
    (probe + tags + fingerprint) -> commit blobs (sync, rename, sync)] -> match -> record

The main process walks lazily and sends batches of files to `jobs` worker processes,
with a bounded number of batches in flight, so memory does not grow with the number
of files. Workers never write to the databases; the main process records each batch
in one transaction after its blobs are durable. Re-running over the same paths skips
files whose path, size and mtime are in the ledger, then files whose hash is known.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import json
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from musicark import events
from musicark.archive import Archive
from musicark.errors import StoreError, UsageError
from musicark.executor import make_executor, resolve_jobs
from musicark.progress import Progress, ProgressCallback, report
from musicark.sqlite import transaction
from musicark.store import acoustic, dupes, ledger, schema
from musicark.store.blobs import (
    CHUNK,
    SMALL_FILE,
    DirCache,
    blob_path_in,
    hash_file,
    is_disk_full,
    sync_filesystem,
    write_new,
)
from musicark.store.ledger import FINAL, STORED, Rejected, display
from musicark.store.match import Matcher
from musicark.store.walk import Entry, Issue, WalkStats, walk

MODES = ("copy", "hardlink", "move")
BATCH_FILES = 200
FIRST_BATCH = 16
BATCH_BYTES = 256 * 1024 * 1024
MAX_PROBLEM_LINES = 1000


@dataclass
class FileResult:
    key: bytes
    path: str
    size: int
    mtime_ns: int
    status: str  # "new", "known", or a ledger error status
    sha256: str | None = None
    reason: str | None = None
    info: dict[str, Any] | None = None
    tags: dict[str, list[str]] | None = None
    fingerprint: bytes | None = None
    fingerprint_ms: int | None = None
    verified: bool = False  # --mode move: the stored blob re-hashed to sha256


@dataclass
class Task:
    entries: list[tuple[str, bytes, int, int]]
    mode: str
    fingerprint: bool
    store_dir: str
    staging_dir: str
    state_path: str
    fanout: int


@dataclass
class IngestSummary:
    run_id: int
    files: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    unchanged: int = 0
    repeated: int = 0
    bytes_stored: int = 0
    seconds: float = 0.0
    problems: list[dict[str, str]] = field(default_factory=list)
    more_problems: int = 0

    @property
    def ok(self) -> bool:
        return not any(s.startswith("error_") for s in self.counts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "files": self.files,
            "counts": dict(sorted(self.counts.items())),
            "unchanged": self.unchanged,
            "repeated": self.repeated,
            "bytes_stored": self.bytes_stored,
            "seconds": round(self.seconds, 3),
            "files_per_second": round(self.files / self.seconds, 1) if self.seconds else None,
            "problems": self.problems,
            "more_problems": self.more_problems,
        }


# ---------------------------------------------------------------- worker side

_worker_state: dict[str, Any] = {}


def _known_blob(state_path: str, sha256: str) -> bool:
    conn = _worker_state.get(state_path)
    if conn is None:
        conn = sqlite3.connect(f"file:{state_path}?mode=ro", uri=True, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=30000")
        _worker_state[state_path] = conn
    try:
        return (
            conn.execute("SELECT 1 FROM blobs WHERE sha256 = ?", (sha256,)).fetchone() is not None
        )
    except sqlite3.OperationalError:
        return False


def _tmp_name(staging: Path, original: str) -> Path:
    counter = _worker_state.setdefault("counter", itertools.count())
    ext = os.path.splitext(original)[1][1:9].lower()
    ext = "".join(c for c in ext if c.isascii() and c.isalnum())
    return staging / f"{os.getpid()}-{next(counter)}{'.' + ext if ext else ''}.tmp"


def _changed(before: os.stat_result, after: os.stat_result, read: int) -> bool:
    return (
        before.st_size != after.st_size
        or before.st_mtime_ns != after.st_mtime_ns
        or after.st_size != read
    )


def store_stage(
    task: Task, path: str, staging: Path
) -> tuple[str, int, int, Path | None, bool, bytes]:
    """Hash while copying to a temporary file: (sha256, size, mtime_ns, tmp, known, head)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise Rejected("error_unreadable", f"cannot open: {exc.strerror}") from exc
    tmp: Path | None = None
    try:
        st = os.fstat(fd)
        if not _is_regular(st):
            raise Rejected("error_not_regular", "not a regular file")
        h = hashlib.sha256()
        read = 0
        head = b""
        if st.st_size <= SMALL_FILE:
            data = _read_all(fd, st.st_size)
            read = len(data)
            h.update(data)
            after = os.fstat(fd)
            if _changed(st, after, read):
                raise Rejected("error_changed", "the file changed while being read")
            sha = h.hexdigest()
            if _known_blob(task.state_path, sha):
                return sha, read, st.st_mtime_ns, None, True, data[:16]
            tmp = _tmp_name(staging, path)
            if task.mode == "hardlink":
                _link(path, tmp, st)
            else:
                write_new(tmp, data)
            return sha, read, st.st_mtime_ns, tmp, False, data[:16]
        tmp = _tmp_name(staging, path)
        out = (
            None
            if task.mode == "hardlink"
            else os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        )
        try:
            with memoryview(bytearray(CHUNK)) as buf:
                while True:
                    n = os.readv(fd, [buf])
                    if not n:
                        break
                    h.update(buf[:n])
                    if not read:
                        head = bytes(buf[:16])
                    read += n
                    if out is not None:
                        view = buf[:n]
                        while view:
                            view = view[os.write(out, view) :]
        finally:
            if out is not None:
                os.close(out)
        after = os.fstat(fd)
        if _changed(st, after, read):
            raise Rejected("error_changed", "the file changed while being read")
        sha = h.hexdigest()
        if task.mode == "hardlink" and not _known_blob(task.state_path, sha):
            _link(path, tmp, st)
        elif _known_blob(task.state_path, sha):
            tmp.unlink(missing_ok=True)
            return sha, read, st.st_mtime_ns, None, True, head
        return sha, read, st.st_mtime_ns, tmp, False, head
    except OSError as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if is_disk_full(exc):
            raise Rejected("error_disk_full", "no space left in the archive") from exc
        if exc.errno == errno.EXDEV:
            raise Rejected(
                "error_io", "--mode hardlink needs the file on the archive's filesystem"
            ) from exc
        raise Rejected("error_io", f"read or write failed: {exc.strerror or exc}") from exc
    except Rejected:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)


def _is_regular(st: os.stat_result) -> bool:
    import stat

    return stat.S_ISREG(st.st_mode)


def _read_all(fd: int, size: int) -> bytes:
    parts = []
    remaining = size + 1  # one byte more: a file that grew shows up as changed
    while remaining > 0:
        chunk = os.read(fd, min(remaining, CHUNK))
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


def _link(path: str, tmp: Path, st: os.stat_result) -> None:
    os.link(path, tmp, follow_symlinks=True)
    lst = os.stat(tmp)
    if (lst.st_dev, lst.st_ino) != (st.st_dev, st.st_ino):
        tmp.unlink(missing_ok=True)
        raise Rejected("error_changed", "the file was replaced while being linked")


def analyse_stage(
    tmp: Path, *, fingerprint: bool, size: int | None = None, head: bytes | None = None
) -> tuple[dict[str, Any], dict[str, list[str]], bytes | None, int | None]:
    """Probe, tags and fingerprint of a stored temporary file."""
    from musicark.store.fingerprint import to_bytes
    from musicark.store.probe import analyse
    from musicark.store.tags import read_tags

    a = analyse(tmp, fingerprint=fingerprint, size=size, head=head)
    tags, problem = read_tags(tmp, container=a.container, codec=a.codec, head=head)
    info = {
        "container": a.container,
        "codec": a.codec,
        "duration_ms": a.duration_ms,
        "bitrate": a.bitrate,
        "sample_rate": a.sample_rate,
        "channels": a.channels,
        "lossless": a.lossless,
        "damaged": a.damaged,
        "tag_problem": problem,
    }
    fp = to_bytes(a.fingerprint) if a.fingerprint is not None and len(a.fingerprint) else None
    return info, tags, fp, a.fingerprint_ms


def process_batch(task: Task) -> list[FileResult]:
    """Worker: store, analyse and commit one batch of files; never touches the databases."""
    staging = Path(task.staging_dir)
    store = Path(task.store_dir)
    dirs: DirCache = _worker_state.setdefault("dirs", DirCache())
    results: list[FileResult] = []
    pending: list[tuple[FileResult, Path]] = []
    for path, key, size, mtime in task.entries:
        res = FileResult(key=key, path=path, size=size, mtime_ns=mtime, status="new")
        results.append(res)
        tmp = None
        try:
            sha, res.size, res.mtime_ns, tmp, known, head = store_stage(task, path, staging)
            res.sha256 = sha
            if known:
                res.status = "known"
                continue
            assert tmp is not None
            res.info, res.tags, res.fingerprint, res.fingerprint_ms = analyse_stage(
                tmp, fingerprint=task.fingerprint, size=res.size, head=head
            )
            pending.append((res, tmp))
        except Rejected as exc:
            res.status, res.reason = exc.status, exc.reason
            if tmp is not None:
                tmp.unlink(missing_ok=True)
        except OSError as exc:  # the temporary copy vanished or could not be read back
            res.status, res.reason = "error_io", f"{exc.strerror or exc}"
            if tmp is not None:
                tmp.unlink(missing_ok=True)
    _commit(task, pending, store, staging, dirs)
    if task.mode == "move":
        _verify_for_move(task, results, store)
    return results


def _commit(
    task: Task, pending: list[tuple[FileResult, Path]], store: Path, staging: Path, dirs: DirCache
) -> None:
    """Make the batch's blobs durable: sync data, rename into the store, sync the renames."""
    if not pending:
        return
    try:
        if task.mode != "hardlink":
            sync_filesystem(staging)
    except OSError as exc:
        for res, tmp in pending:
            tmp.unlink(missing_ok=True)
            res.status, res.reason = "error_io", f"sync failed: {exc.strerror}"
        return
    for res, tmp in pending:
        assert res.sha256 is not None
        final = blob_path_in(store, res.sha256, task.fanout)
        try:
            dirs.ensure(final.parent)
            try:
                os.replace(tmp, final)
            except FileNotFoundError:  # the fan-out folder went away since it was made
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, final)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if is_disk_full(exc):
                res.status, res.reason = "error_disk_full", "no space left in the archive"
            else:
                res.status, res.reason = "error_io", f"cannot place the blob: {exc.strerror}"
    sync_filesystem(store)


def _verify_for_move(task: Task, results: list[FileResult], store: Path) -> None:
    """`--mode move`: re-hash each stored blob; only a verified original may be deleted
    (by the main process, once the batch is recorded)."""
    for res in results:
        if res.status not in ("new", "known") or res.sha256 is None:
            continue
        final = blob_path_in(store, res.sha256, task.fanout)
        try:
            actual, _ = hash_file(final)
        except OSError:
            actual = ""
        if actual == res.sha256:
            res.verified = True
        else:
            res.reason = "kept the original: the stored blob did not verify"


def remove_originals(results: list[FileResult]) -> None:
    """Delete verified originals that have not changed since they were read."""
    for res in results:
        if not res.verified:
            continue
        try:
            st = os.stat(res.path)
            if st.st_size == res.size and st.st_mtime_ns == res.mtime_ns:
                os.unlink(res.path)
        except OSError:
            pass  # gone already, or not ours to delete: the original stays


# ---------------------------------------------------------------- main process side


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
    conn = schema.connect(archive)
    staging = archive.staging_dir / "ingest"
    staging.mkdir(parents=True, exist_ok=True)
    _make_fanout(archive)
    _clean_staging(staging)
    run_id = int(
        conn.execute(
            "INSERT INTO ingest_runs (started, mode, source) VALUES (?, ?, ?)",
            (schema.now(), mode, source),
        ).lastrowid
        or 0
    )
    summary = IngestSummary(run_id=run_id)
    matcher = Matcher(archive, conn, tolerance_ms=archive.config.ingest.duration_tolerance_ms)
    recorder = _Recorder(conn, matcher, summary, run_id=run_id, source=source)
    stats = WalkStats()
    base = Task(
        [],
        mode,
        fingerprint,
        str(archive.store_dir),
        str(staging),
        str(archive.state_path),
        archive.config.store.fanout,
    )
    try:
        _run(paths, stats, recorder, base, jobs, progress, summary)
    except sqlite3.Error as exc:
        raise StoreError(f"{archive.state_path}: {exc}; run the command again to resume") from exc
    finally:
        matcher.close()
        worker_conn = _worker_state.pop(str(archive.state_path), None)
        if worker_conn is not None:
            worker_conn.close()
    summary.repeated = stats.repeated
    dupes.update_preferred(conn, recorder.touched_tracks)
    summary.seconds = time.perf_counter() - started
    conn.execute(
        "UPDATE ingest_runs SET finished = ?, summary = ? WHERE id = ?",
        (schema.now(), json.dumps(summary.to_dict()), run_id),
    )
    conn.close()
    events.send("store.changed", archive=archive, progress=progress)
    return summary


def _run(
    paths: Sequence[str | os.PathLike[str]],
    stats: WalkStats,
    recorder: _Recorder,
    base: Task,
    jobs: int,
    progress: ProgressCallback | None,
    summary: IngestSummary,
) -> None:
    """walk -> skip_known -> worker batches -> record, with a bounded number in flight."""

    def tasks() -> Iterator[Task]:
        for batch in _batches(walk(paths, stats)):
            issues = [e for e in batch if isinstance(e, Issue)]
            entries = [e for e in batch if isinstance(e, Entry)]
            recorder.record_issues(issues)
            todo = recorder.skip_known(entries)
            if todo:
                yield replace(base, entries=[(e.path, e.key, e.size, e.mtime_ns) for e in todo])
            report(progress, Progress("ingest", summary.files, None, "files"))

    if jobs > 1:
        import av  # noqa: F401  (imported once here, inherited by forked workers)
        import mutagen  # noqa: F401
    kind = "processes" if jobs > 1 else "inline"
    preload = ["musicark.store.ingest", "av", "mutagen", "chromaprint"]
    with make_executor(jobs=jobs, kind=kind, **({"preload": preload} if jobs > 1 else {})) as ex:
        for out in ex.run(process_batch, tasks()):
            if out.result is not None:
                recorder.record_results(out.result)
            report(progress, Progress("ingest", summary.files, None, "files"))


def _make_fanout(archive: Archive) -> None:
    """The first level of fan-out folders, made once (workers then make one folder per blob)."""
    if archive.config.store.fanout < 1 or (archive.store_dir / "ff").is_dir():
        return
    for i in range(256):
        (archive.store_dir / f"{i:02x}").mkdir(parents=True, exist_ok=True)


def _clean_staging(staging: Path) -> None:
    """Remove temporary files a crashed ingest left behind (never read as stored).

    A temporary file is named after its process id; those of a live process (another
    ingest running now) are left alone.
    """
    for tmp in staging.glob("*.tmp"):
        pid = tmp.name.split("-", 1)[0]
        if pid.isdigit() and _alive(int(pid)):
            continue
        tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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


class _Recorder:
    """Turns worker results into ledger, blob, rendition and provenance rows (main process)."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        matcher: Matcher,
        summary: IngestSummary,
        *,
        run_id: int,
        source: str | None,
    ) -> None:
        self.conn = conn
        self.matcher = matcher
        self.summary = summary
        self.run_id = run_id
        self.source = source
        self.known: dict[bytes, ledger.Known] = {}
        self.touched_tracks: set[int] = set()
        self.fp_next = (conn.execute("SELECT max(id) FROM fingerprints").fetchone()[0] or 0) + 1

    def _problem(self, path: str, status: str, reason: str | None) -> None:
        if len(self.summary.problems) < MAX_PROBLEM_LINES:
            self.summary.problems.append(
                {"path": display(path), "status": status, "reason": reason or ""}
            )
        else:
            self.summary.more_problems += 1

    def record_issues(self, issues: list[Issue]) -> None:
        if not issues:
            return
        now = schema.now()
        rows = []
        for issue in issues:
            self.summary.files += 1
            self.summary.counts[issue.status] += 1
            self._problem(issue.path, issue.status, issue.reason)
            rows.append(
                (
                    issue.key,
                    display(issue.path),
                    None,
                    None,
                    None,
                    issue.status,
                    issue.reason,
                    self.source,
                    self.run_id,
                    now,
                )
            )
        with transaction(self.conn):
            ledger.record(self.conn, rows)

    def skip_known(self, entries: list[Entry]) -> list[Entry]:
        """Files whose path, size and mtime the ledger holds with a final outcome need no work."""
        known = ledger.lookup(self.conn, [e.key for e in entries])
        todo = []
        for e in entries:
            k = known.get(e.key)
            if (
                k is not None
                and k.status in FINAL
                and k.size == e.size
                and k.mtime_ns == e.mtime_ns
            ):
                self.summary.files += 1
                self.summary.unchanged += 1
                continue
            if k is not None:
                self.known[e.key] = k
            todo.append(e)
        return todo

    def record_results(self, results: list[FileResult]) -> None:
        now = schema.now()
        rows = []
        with transaction(self.conn):
            for res in results:
                self.summary.files += 1
                status, reason = self._record_one(res, now)
                if status is None:
                    continue
                rows.append(
                    (
                        res.key,
                        display(res.path),
                        res.size,
                        res.mtime_ns,
                        res.sha256,
                        status,
                        reason,
                        self.source,
                        self.run_id,
                        now,
                    )
                )
            ledger.record(self.conn, rows)
        remove_originals(results)  # --mode move, after the batch is recorded
        if len(self.touched_tracks) >= 10_000:  # keep memory flat on huge runs
            dupes.update_preferred(self.conn, self.touched_tracks)
            self.touched_tracks.clear()

    def _record_one(self, res: FileResult, now: str) -> tuple[str | None, str | None]:
        previous = self.known.pop(res.key, None)
        if res.status not in ("new", "known"):
            self.summary.counts[res.status] += 1
            self._problem(res.path, res.status, res.reason)
            return res.status, res.reason
        assert res.sha256 is not None
        exists = self.conn.execute("SELECT 1 FROM blobs WHERE sha256 = ?", (res.sha256,)).fetchone()
        if exists or res.info is None:
            self._provenance(res, now)
            if previous is not None and previous.sha256 == res.sha256 and previous.status in FINAL:
                # same bytes as last time (only the mtime moved): nothing changes
                self.summary.unchanged += 1
                return previous.status, res.reason
            self.summary.counts["duplicate"] += 1
            return "duplicate", res.reason or "the same bytes are already in the store"
        info = res.info
        self.conn.execute(
            "INSERT INTO blobs (sha256, size, container, codec, duration_ms, bitrate, sample_rate,"
            " channels, lossless, damaged, tags, added) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                res.sha256,
                res.size,
                info["container"],
                info["codec"],
                info["duration_ms"],
                info["bitrate"],
                info["sample_rate"],
                info["channels"],
                int(info["lossless"]),
                info["damaged"],
                json.dumps(res.tags or {}, ensure_ascii=False),
                now,
            ),
        )
        self._provenance(res, now)
        match = self.matcher.match(res.tags or {}, info["duration_ms"])
        self.conn.execute(
            "INSERT INTO renditions (sha256, track_id, match_method, confidence) VALUES (?,?,?,?)",
            (
                res.sha256,
                match.track_id if match else None,
                match.method if match else None,
                match.confidence if match else None,
            ),
        )
        if match:
            self.touched_tracks.add(match.track_id)
        if res.fingerprint:
            acoustic.add_fingerprint(
                self.conn, res.sha256, self.fp_next, res.fingerprint, res.fingerprint_ms
            )
            self.fp_next += 1
        self.summary.bytes_stored += res.size
        if info["damaged"]:
            status, reason = "damaged", info["damaged"]
            self._problem(res.path, status, reason)
        elif match:
            status, reason = "success", f"matched by {match.method} ({match.confidence:.2f})"
        else:
            status, reason = "unmatched", "no catalogue track matches its tags"
        if info.get("tag_problem"):
            reason = f"{reason}; {info['tag_problem']}"
        self.summary.counts[status] += 1
        return status, reason

    def _provenance(self, res: FileResult, now: str) -> None:
        self.conn.execute(
            "INSERT INTO provenance (sha256, path_key, path, source, size, mtime_ns, first_seen)"
            " VALUES (?,?,?,?,?,?,?) ON CONFLICT(sha256, path_key) DO UPDATE SET"
            " size = excluded.size, mtime_ns = excluded.mtime_ns",
            (res.sha256, res.key, display(res.path), self.source, res.size, res.mtime_ns, now),
        )


__all__ = ["MODES", "STORED", "IngestSummary", "ingest"]
