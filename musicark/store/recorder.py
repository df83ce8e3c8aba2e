"""The main-process side of ingest: worker results into ledger, blob, rendition,
provenance and fingerprint rows, one transaction per batch.

Only the recorder writes the store's tables during an ingest. It is called after the
batch's new blobs were renamed into the store and synced (`ingest.py`), in the same
step: the transaction that adds the rows also clears the batch's pending marks, so a
blob without rows is always one a later run can find and remove.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from musicark.sqlite import transaction
from musicark.store import acoustic, dupes, fpindex, ledger, schema
from musicark.store.fingerprint import from_bytes
from musicark.store.ledger import FINAL, display
from musicark.store.match import Matcher
from musicark.store.walk import Entry, Issue
from musicark.store.worker import FileEntry, FileResult

MAX_PROBLEM_LINES = 1000
CACHE_KIB = 512 * 1024
CHECKPOINT_PAGES = 16_384


@dataclass(frozen=True)
class Problem:
    path: str
    status: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "status": self.status, "reason": self.reason}


@dataclass
class IngestSummary:
    run_id: int
    files: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    unchanged: int = 0
    repeated: int = 0
    bytes_stored: int = 0
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)
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
            "problems": [p.to_dict() for p in self.problems],
            "more_problems": self.more_problems,
        }


@dataclass(frozen=True)
class LedgerRow:
    key: bytes
    path: str
    size: int | None
    mtime_ns: int | None
    sha256: str | None
    status: str
    reason: str | None

    def values(self, source: str | None, run_id: int, at: str) -> ledger.Row:
        return (
            self.key,
            display(self.path),
            self.size,
            self.mtime_ns,
            self.sha256,
            self.status,
            self.reason,
            source,
            run_id,
            at,
        )


class Recorder:
    """Turns worker results into rows (main process)."""

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
        # the pages of the sha256-keyed indexes each record inserts into at random stay in
        # memory (SQLite's default cache is 2 MB: each insert would read its page again),
        # and the WAL is checkpointed every ~64 MB, not every 4 MB: a checkpoint syncs
        # twice, and a page written by several batches is copied back once
        conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        conn.execute(f"PRAGMA wal_autocheckpoint = {CHECKPOINT_PAGES}")
        self.fp_next = (conn.execute("SELECT max(id) FROM fingerprints").fetchone()[0] or 0) + 1
        # postings are buffered and written as index segments (fpindex.py), not per batch
        self.fp_index = fpindex.IndexWriter(conn)
        self.fp_index.catch_up()
        self.fp_batch: list[tuple[int, bytes]] = []
        self._rows = _BatchRows()

    def _problem(self, path: str, status: str, reason: str | None) -> None:
        if len(self.summary.problems) < MAX_PROBLEM_LINES:
            self.summary.problems.append(Problem(display(path), status, reason or ""))
        else:
            self.summary.more_problems += 1

    def _write_ledger(self, rows: list[LedgerRow]) -> None:
        now = schema.now()
        ledger.record(self.conn, [r.values(self.source, self.run_id, now) for r in rows])

    def record_issues(self, issues: list[Issue]) -> None:
        """Paths the walk could not use (not regular, unreadable folders, ...)."""
        if not issues:
            return
        for issue in issues:
            self.summary.files += 1
            self.summary.counts[issue.status] += 1
            self._problem(issue.path, issue.status, issue.reason)
        with transaction(self.conn):
            self._write_ledger(
                [LedgerRow(i.key, i.path, None, None, None, i.status, i.reason) for i in issues]
            )

    def record_crashed(self, entries: tuple[FileEntry, ...], reason: str) -> None:
        """Files whose worker died outright while holding them (and only them)."""
        why = f"{reason} while reading this file"
        for e in entries:
            self.known.pop(e.key, None)
            self.summary.files += 1
            self.summary.counts["error_crashed"] += 1
            self._problem(e.path, "error_crashed", why)
        with transaction(self.conn):
            self._write_ledger(
                [
                    LedgerRow(e.key, e.path, e.size, e.mtime_ns, None, "error_crashed", why)
                    for e in entries
                ]
            )

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

    def has_blobs(self, shas: set[str]) -> set[str]:
        """Which of these blobs have rows."""
        found: set[str] = set()
        items = sorted(shas)
        for i in range(0, len(items), 500):
            chunk = items[i : i + 500]
            marks = ",".join("?" * len(chunk))
            found.update(
                sha
                for (sha,) in self.conn.execute(
                    f"SELECT sha256 FROM blobs WHERE sha256 IN ({marks})", chunk
                )
            )
        return found

    def mark_pending(self, shas: set[str], *, pid: int) -> None:
        """Committed before the blobs are renamed into the store: a run killed before their
        rows exist leaves these marks for the next run (`ingest.recover`)."""
        with transaction(self.conn):
            self.conn.executemany(
                "INSERT OR IGNORE INTO ingest_pending (sha256, pid) VALUES (?, ?)",
                [(sha, pid) for sha in sorted(shas)],
            )

    def record(self, results: list[FileResult], *, placed: set[str], pid: int) -> None:
        """One transaction: the rows of a batch whose new blobs (`placed`) are in the store
        now, and the end of their pending marks."""
        now = schema.now()
        rows = []
        unrecorded = set(placed)
        self.fp_batch = []
        self._rows = _BatchRows()
        with transaction(self.conn):
            for res in results:
                self.summary.files += 1
                rows.append(self._record_one(res, now, unrecorded))
            self.fp_batch = self._rows.write(self.conn)
            self._write_ledger(rows)
            if placed:
                self.conn.executemany(
                    "DELETE FROM ingest_pending WHERE sha256 = ? AND pid = ?",
                    [(sha, pid) for sha in placed],
                )
        for fp_id, data in self.fp_batch:  # committed: index them
            self.fp_index.add(fp_id, from_bytes(data))
        self.fp_batch = []
        if self.fp_index.full():
            self.fp_index.flush()
        if len(self.touched_tracks) >= 10_000:  # keep memory flat on huge runs
            dupes.update_preferred(self.conn, self.touched_tracks)
            self.touched_tracks.clear()

    def finish(self) -> None:
        """The end of a run: what the recorder deferred (the buffered fingerprint postings,
        the preferred renditions of the tracks it touched)."""
        self.fp_index.flush()
        dupes.update_preferred(self.conn, self.touched_tracks)
        self.touched_tracks.clear()

    def _record_one(self, res: FileResult, now: str, unrecorded: set[str]) -> LedgerRow:
        previous = self.known.pop(res.key, None)

        def row(status: str, reason: str | None) -> LedgerRow:
            return LedgerRow(res.key, res.path, res.size, res.mtime_ns, res.sha256, status, reason)

        if res.status not in ("new", "stored"):
            self.summary.counts[res.status] += 1
            self._problem(res.path, res.status, res.reason)
            return row(res.status, res.reason)
        assert res.sha256 is not None
        if res.sha256 not in unrecorded or res.info is None:
            self._provenance(res, now)
            if previous is not None and previous.sha256 == res.sha256 and previous.status in FINAL:
                # same bytes as last time (only the mtime moved): nothing changes
                self.summary.unchanged += 1
                return row(previous.status, res.reason)
            self.summary.counts["duplicate"] += 1
            return row("duplicate", res.reason or "the same bytes are already in the store")
        unrecorded.discard(res.sha256)  # a second copy in this batch is a duplicate
        status, reason = self._add_blob(res, now)
        self.summary.counts[status] += 1
        return row(status, reason)

    def _add_blob(self, res: FileResult, now: str) -> tuple[str, str]:
        info = res.info
        assert info is not None and res.sha256 is not None
        self._rows.blobs.append(
            (
                res.sha256,
                res.size,
                info.container,
                info.codec,
                info.duration_ms,
                info.bitrate,
                info.sample_rate,
                info.channels,
                int(info.lossless),
                info.damaged,
                json.dumps(res.tags, ensure_ascii=False),
                now,
            )
        )
        self._provenance(res, now)
        match = self.matcher.match(res.tags, info.duration_ms)
        self._rows.renditions.append(
            (
                res.sha256,
                match.track_id if match else None,
                match.method if match else None,
                match.confidence if match else None,
            )
        )
        if match:
            self.touched_tracks.add(match.track_id)
        if res.fingerprint:
            self._rows.fingerprints.append(
                (res.sha256, self.fp_next, res.fingerprint, res.fingerprint_ms)
            )
            self.fp_next += 1
        self.summary.bytes_stored += res.size
        if info.damaged:
            status, reason = "damaged", info.damaged
            self._problem(res.path, status, reason)
        elif match:
            status, reason = "success", f"matched by {match.method} ({match.confidence:.2f})"
        else:
            status, reason = "unmatched", "no catalogue track matches its tags"
        if info.note:
            reason = f"{reason}; {info.note}"
        return status, reason

    def _provenance(self, res: FileResult, now: str) -> None:
        self._rows.provenance.append(
            (res.sha256, res.key, display(res.path), self.source, res.size, res.mtime_ns, now)
        )


@dataclass
class _BatchRows:
    """A batch's rows per table, written with one statement each (blobs first: the other
    tables refer to them); values in the order of the statements below."""

    blobs: list[tuple[Any, ...]] = field(default_factory=list)
    provenance: list[tuple[Any, ...]] = field(default_factory=list)
    renditions: list[tuple[Any, ...]] = field(default_factory=list)
    fingerprints: list[tuple[str, int, bytes, int | None]] = field(default_factory=list)

    def write(self, conn: sqlite3.Connection) -> list[tuple[int, bytes]]:
        """Write the rows; the fingerprints added (the blob had none), to be indexed."""
        conn.executemany(
            "INSERT INTO blobs (sha256, size, container, codec, duration_ms, bitrate, sample_rate,"
            " channels, lossless, damaged, tags, added) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            self.blobs,
        )
        conn.executemany(
            "INSERT INTO provenance (sha256, path_key, path, source, size, mtime_ns, first_seen)"
            " VALUES (?,?,?,?,?,?,?) ON CONFLICT(sha256, path_key) DO UPDATE SET"
            " size = excluded.size, mtime_ns = excluded.mtime_ns",
            self.provenance,
        )
        conn.executemany(
            "INSERT INTO renditions (sha256, track_id, match_method, confidence) VALUES (?,?,?,?)",
            self.renditions,
        )
        added = []
        for sha256, fp_id, data, duration_ms in self.fingerprints:
            if acoustic.add_fingerprint(conn, sha256, fp_id, data, duration_ms):
                added.append((fp_id, data))
        return added
