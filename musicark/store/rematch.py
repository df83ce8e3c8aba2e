"""Files stored before their catalogue track existed are matched once the catalogue has it.

`ingest` keeps an unmatched file (status `unmatched`), and a later run skips it as done, so
without this a file ingested before its catalogue import would stay out of every release.
The store follows "catalog.changed" (see `musicark.events`): after each import, renditions
without a track are matched again from the tags and duration kept in `blobs`, exactly as
ingest matches a new file, and their ledger rows become `success`.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass
from typing import Any

from musicark.archive import Archive
from musicark.progress import Progress, ProgressCallback, report
from musicark.sqlite import transaction
from musicark.store import dupes, schema
from musicark.store.match import Matcher

_BATCH = 1000


@dataclass(frozen=True, slots=True)
class RematchSummary:
    looked_at: int
    matched: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rematch_unmatched(
    archive: Archive, *, progress: ProgressCallback | None = None
) -> RematchSummary:
    """Match every stored rendition that has no catalogue track yet; returns the counts."""
    if not archive.state_path.exists() or not archive.catalog_path.exists():
        return RematchSummary(0, 0)
    conn = schema.connect(archive)
    try:
        total = conn.execute("SELECT count(*) FROM renditions WHERE track_id IS NULL").fetchone()[0]
        if not total:
            return RematchSummary(0, 0)
        matcher = Matcher(archive, conn, tolerance_ms=archive.config.ingest.duration_tolerance_ms)
        try:
            return _rematch(conn, matcher, total, progress)
        finally:
            matcher.close()
    finally:
        conn.close()


def _rematch(
    conn: sqlite3.Connection, matcher: Matcher, total: int, progress: ProgressCallback | None
) -> RematchSummary:
    looked = matched = 0
    after = ""
    while True:
        rows = conn.execute(
            "SELECT r.sha256, b.tags, b.duration_ms FROM renditions r JOIN blobs b USING (sha256)"
            " WHERE r.track_id IS NULL AND r.sha256 > ? ORDER BY r.sha256 LIMIT ?",
            (after, _BATCH),
        ).fetchall()
        if not rows:
            break
        after = rows[-1][0]
        touched: set[int] = set()
        with transaction(conn):
            for sha256, tags_json, duration_ms in rows:
                tags = json.loads(tags_json) if tags_json else {}
                found = matcher.match(tags, duration_ms) if isinstance(tags, dict) else None
                if found is None:
                    continue
                conn.execute(
                    "UPDATE renditions SET track_id = ?, match_method = ?, confidence = ?"
                    " WHERE sha256 = ? AND track_id IS NULL",
                    (found.track_id, found.method, found.confidence, sha256),
                )
                conn.execute(
                    "UPDATE ledger SET status = 'success', reason = ?, at = ?"
                    " WHERE sha256 = ? AND status = 'unmatched'",
                    (
                        f"matched by {found.method} ({found.confidence:.2f}) after a"
                        " catalogue import",
                        schema.now(),
                        sha256,
                    ),
                )
                touched.add(found.track_id)
                matched += 1
        dupes.update_preferred(conn, touched)
        looked += len(rows)
        report(progress, Progress("rematch", looked, total, "files"))
    return RematchSummary(looked, matched)
