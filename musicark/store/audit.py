"""Fixity audits: are the blobs the ledger holds present, of the right size, unchanged?

Levels (as bagit): `presence` (the file exists), `size` (and has its size), `full` (and
re-hashes to its name, on all cores). The store and the `blobs` table are both read in
sha256 order and merged, so memory stays flat whatever the number of blobs: a blob in
the table but not on disk is *missing*, a file on disk not in the table (or not named
like a blob) is *untracked*, a blob whose size or hash differs is *changed*.
Each audit's result is stored in the `audits` table of state.sqlite; a full-level audit
also records when each blob last re-hashed to its name (`store/fixity.py`), and `sample` /
`budget` make a rolling audit of the least recently verified blobs instead of all of them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from musicark.archive import Archive
from musicark.errors import UsageError
from musicark.executor import make_executor, resolve_jobs
from musicark.progress import Progress, ProgressCallback, report
from musicark.sqlite import transaction
from musicark.store import fixity, schema
from musicark.store.blobs import hash_file, is_sha256

LEVELS = ("presence", "size", "full")
MAX_LISTED = 1000
BATCH_FILES = 64  # blobs per hashing task
BATCH_BYTES = 16 * 1024 * 1024


@dataclass
class AuditResult:
    level: str
    checked: int = 0
    bytes: int = 0
    changed: list[dict[str, Any]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    untracked: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(
        default_factory=lambda: {"changed": 0, "missing": 0, "untracked": 0}
    )
    seconds: float = 0.0
    id: int | None = None
    rolling: dict[str, Any] | None = None  # a rolling audit: its share, budget and coverage
    repairs: list[dict[str, Any]] | None = None  # set when asked to repair

    @property
    def ok(self) -> bool:
        return not any(self.counts.values())

    @property
    def healed(self) -> bool:
        """Every problem found was repaired (and nothing untracked was found)."""
        if self.repairs is None or self.counts["untracked"]:
            return False
        fixed = sum(1 for r in self.repairs if r["status"] == "repaired")
        return fixed == self.counts["changed"] + self.counts["missing"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "level": self.level,
            "ok": self.ok,
            "checked": self.checked,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "counts": self.counts,
            "changed": self.changed,
            "missing": self.missing,
            "untracked": self.untracked,
            **({"rolling": self.rolling} if self.rolling is not None else {}),
            **({"repairs": self.repairs} if self.repairs is not None else {}),
        }

    def _add(self, kind: str, item: Any) -> None:
        self.counts[kind] += 1
        target: list[Any] = getattr(self, kind)
        if len(target) < MAX_LISTED:
            target.append(item)


def _store_files(root: Path) -> Iterator[tuple[str, str, int]]:
    """(name, relative path, size) of every file under the store, in sorted order."""

    # depth-first over sorted names gives sha256 order for a well-formed store
    def walk(folder: Path) -> Iterator[tuple[str, str, int]]:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        for e in entries:
            if e.is_dir(follow_symlinks=False):
                yield from walk(Path(e.path))
            else:
                try:
                    size = e.stat(follow_symlinks=False).st_size
                except OSError:
                    size = -1
                yield e.name, os.path.relpath(e.path, root), size

    yield from walk(root)


def _expected_rel(sha: str, fanout: int) -> str:
    return os.path.join(*[sha[2 * i : 2 * i + 2] for i in range(fanout)], sha)


def audit(
    archive: Archive,
    *,
    level: str = "full",
    jobs: int | None = None,
    sample: float | None = None,
    budget: float | None = None,
    repair: bool = False,
    progress: ProgressCallback | None = None,
) -> AuditResult:
    """Check every blob at `level` (or, with `sample` percent or a `budget` in seconds, the
    least recently verified ones, always at level full); with `repair`, fetch changed and
    missing blobs back from the releases that hold them (`swarm/repair.py`); record and
    return the result."""
    if level not in LEVELS:
        raise UsageError(f"--level must be one of {', '.join(LEVELS)}, not {level!r}")
    jobs = resolve_jobs(jobs, archive.config.ingest.jobs)
    if sample is not None or budget is not None:
        return _rolling(
            archive, sample=sample, budget=budget, jobs=jobs, repair=repair, progress=progress
        )
    started_at = schema.now()
    t0 = time.perf_counter()
    conn = schema.connect(archive)
    try:
        fixity.migrate(conn)
        result = AuditResult(level=level)
        verified: list[str] = []
        total = conn.execute("SELECT count(*) FROM blobs").fetchone()[0]
        rows = conn.execute("SELECT sha256, size FROM blobs ORDER BY sha256")
        merge = _Merge(archive.store_dir, archive.config.store.fanout, level, result)
        tick = Progress("audit", 0, total, "blobs")
        # hashing drops the GIL: threads, no process start-up, no pickling of results
        kind = "threads" if level == "full" and jobs > 1 else "inline"
        where = archive.config.ingest.executor if level == "full" else "local"
        with make_executor(
            jobs=jobs, kind=kind, where=where, shared=(archive.store_dir,)
        ) as executor:
            for out in executor.run(_hash_many, merge.batches(_iter(rows))):
                for (sha, size, _path), actual in zip(out.task, out.result or [], strict=True):
                    result.bytes += size
                    if actual is None:
                        result._add("missing", sha)
                    elif actual != sha:
                        result._add("changed", {"sha256": sha, "problem": f"hashes to {actual}"})
                    else:
                        verified.append(sha)
                if len(verified) >= 10_000:
                    fixity.mark_verified(conn, verified, started_at)
                    verified.clear()
                report(progress, replace(tick, done=result.checked))
        fixity.mark_verified(conn, verified, started_at)
        fixity.forget(conn, [*(c["sha256"] for c in result.changed), *result.missing])
        _finish(
            archive, conn, result, repair=repair, t0=t0, started_at=started_at, progress=progress
        )
    finally:
        conn.close()
    return result


Task = list[tuple[str, int, str]]  # (sha256, size, path) of blobs to re-hash


class _Merge:
    """Walks the store and the `blobs` rows (both in sha256 order) side by side."""

    def __init__(self, store: Path, fanout: int, level: str, result: AuditResult) -> None:
        self.store = store
        self.fanout = fanout
        self.level = level
        self.result = result

    def batches(self, rows: Iterator[tuple[str, int]]) -> Iterator[Task]:
        """Records missing, untracked and wrong-size blobs; yields the ones to re-hash."""
        result, fanout = self.result, self.fanout
        on_disk: dict[str, tuple[str, int]] = {}  # out-of-order files (a misplaced blob)
        files = _placed_files(_store_files(self.store), fanout, on_disk, result)
        current = next(files, None)
        batch: Task = []
        batch_bytes = 0
        for sha, size in rows:
            result.checked += 1
            # every file sorting before this sha is untracked (or misplaced)
            while current is not None and current[0] < sha:
                result._add("untracked", current[1])
                current = next(files, None)
            found: tuple[str, int] | None = None
            if current is not None and current[0] == sha:
                found = (current[1], current[2])
                current = next(files, None)
            elif sha in on_disk:
                found = on_disk.pop(sha)
            if found is None or found[0] != _expected_rel(sha, fanout):
                result._add("missing", sha)
                if found is not None:
                    result._add("untracked", found[0])
                continue
            if self.level in ("size", "full") and found[1] != size:
                result._add(
                    "changed", {"sha256": sha, "problem": f"size {found[1]}, expected {size}"}
                )
                continue
            if self.level != "full":
                if result.checked % 1000 == 0:
                    yield []  # a progress tick
                continue
            batch.append((sha, size, str(self.store / found[0])))
            batch_bytes += size
            if len(batch) >= BATCH_FILES or batch_bytes >= BATCH_BYTES:
                yield batch
                batch, batch_bytes = [], 0
        if batch:
            yield batch
        while current is not None:
            result._add("untracked", current[1])
            current = next(files, None)
        for rel, _size in on_disk.values():
            result._add("untracked", rel)


def _rolling(
    archive: Archive,
    *,
    sample: float | None,
    budget: float | None,
    jobs: int,
    repair: bool,
    progress: ProgressCallback | None,
) -> AuditResult:
    if sample is not None and budget is not None:
        raise UsageError("give --sample or --budget, not both")
    started_at = schema.now()
    t0 = time.perf_counter()
    conn = schema.connect(archive)
    try:
        total, nbytes, checked = fixity.rolling_check(
            archive, conn, sample=sample, budget=budget, jobs=jobs, progress=progress
        )
        result = AuditResult(level="full", checked=len(checked), bytes=nbytes)
        for sha, _size, problem in checked:
            if problem == "missing":
                result._add("missing", sha)
            elif problem is not None:
                result._add("changed", {"sha256": sha, "problem": problem})
        fixity.mark_verified(conn, (s for s, _, p in checked if p is None), started_at)
        fixity.forget(conn, (s for s, _, p in checked if p is not None))
        result.rolling = {
            "sample_percent": sample,
            "budget_seconds": budget,
            "store_blobs": total,
            "share_checked": round(len(checked) / total, 4) if total else 1.0,
            **fixity.verification_status(archive),
        }
        _finish(
            archive, conn, result, repair=repair, t0=t0, started_at=started_at, progress=progress
        )
    finally:
        conn.close()
    return result


def _finish(
    archive: Archive,
    conn: sqlite3.Connection,
    result: AuditResult,
    *,
    repair: bool,
    t0: float,
    started_at: str,
    progress: ProgressCallback | None,
) -> None:
    """Repair if asked, then record the audit."""
    if repair:
        _repair(archive, conn, result, progress)
    result.seconds = time.perf_counter() - t0
    _record(conn, result, started_at)


def _repair(
    archive: Archive,
    conn: sqlite3.Connection,
    result: AuditResult,
    progress: ProgressCallback | None,
) -> None:
    """Fetch the changed and missing blobs back from the swarm; the outcomes go into the
    audit's record (at most MAX_LISTED per run, as listed)."""
    from musicark.swarm.repair import repair_blobs

    damaged = [*(c["sha256"] for c in result.changed), *result.missing]
    outcomes = repair_blobs(archive, damaged, progress=progress) if damaged else []
    result.repairs = [o.to_dict() for o in outcomes]
    repaired = [o.sha256 for o in outcomes if o.status == "repaired" and o.sha256]
    fixity.mark_verified(conn, repaired, schema.now())  # each was re-hashed before placing


def _record(conn: sqlite3.Connection, result: AuditResult, started_at: str) -> None:
    with transaction(conn):
        cur = conn.execute(
            "INSERT INTO audits (started, finished, level, ok, checked, bytes, changed, missing,"
            " untracked, result) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                started_at,
                schema.now(),
                result.level,
                int(result.ok),
                result.checked,
                result.bytes,
                result.counts["changed"],
                result.counts["missing"],
                result.counts["untracked"],
                "{}",
            ),
        )
        result.id = cur.lastrowid
        conn.execute(
            "UPDATE audits SET result = ? WHERE id = ?", (json.dumps(result.to_dict()), result.id)
        )


def _iter(cursor: sqlite3.Cursor) -> Iterator[tuple[str, int]]:
    while True:
        rows = cursor.fetchmany(10_000)
        if not rows:
            return
        yield from rows


def _placed_files(
    files: Iterator[tuple[str, str, int]],
    fanout: int,
    on_disk: dict[str, tuple[str, int]],
    result: AuditResult,
) -> Iterator[tuple[str, str, int]]:
    """Well-placed blob files, in order; anything else is set aside or reported untracked."""
    for name, rel, size in files:
        if is_sha256(name) and rel == _expected_rel(name, fanout):
            yield name, rel, size
        elif is_sha256(name) and len(on_disk) < 100_000:
            on_disk[name] = (rel, size)  # misplaced: reported with its row (or at the end)
        else:
            result._add("untracked", rel)


def _hash_many(task: Task) -> list[str | None]:
    """Worker: the sha256 of each blob, None for one that cannot be read."""
    return [_hash_or_none(path) for _sha, _size, path in task]


def _hash_or_none(path: str) -> str | None:
    try:
        return hash_file(path)[0]
    except OSError:
        return None


def last_audit(archive: Archive) -> dict[str, Any] | None:
    """The most recent audit's result, as `musicark audit --json` printed it (read-only;
    None when no audit has run)."""
    if not archive.state_path.exists():
        return None
    conn = archive.connect_state(readonly=True)
    try:
        row = conn.execute("SELECT result FROM audits ORDER BY id DESC LIMIT 1").fetchone()
    except sqlite3.OperationalError:  # the store's tables do not exist yet
        return None
    finally:
        conn.close()
    return json.loads(row[0]) if row else None
