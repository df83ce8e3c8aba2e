"""Per-blob verification times and rolling audits (`musicark audit --sample/--budget`).

A 300 TB store cannot be re-hashed in one run. Every blob that re-hashes to its name in a
full-level audit gets its time in `fixity.verified` (domain "fixity" of state.sqlite); a
rolling audit checks the blobs least recently verified first (never-verified ones before
all others, then oldest first, ties by sha256), either a share of the store (`sample`, in
percent) or as many as fit in a time budget (`budget`, seconds). Repeated runs therefore
sweep the whole store: two 50 % runs cover every blob. A rolling audit does not walk the
store for untracked files (that needs the full walk of `audit` without a sample).
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from musicark.archive import Archive
from musicark.errors import UsageError
from musicark.executor import make_executor
from musicark.progress import Progress, ProgressCallback, report
from musicark.sqlite import transaction
from musicark.state import migrate_domain
from musicark.store.blobs import blob_path_in, hash_file
from musicark.units import format_time

DOMAIN = "fixity"
MIGRATIONS = [
    """
CREATE TABLE fixity (
    sha256      TEXT PRIMARY KEY,
    verified    TEXT NOT NULL            -- last time the blob re-hashed to its name (UTC)
) WITHOUT ROWID;
CREATE INDEX fixity_verified ON fixity(verified)
""",
]
RECENT_DAYS = 30
_BATCH = 5000


def migrate(conn: sqlite3.Connection) -> None:
    migrate_domain(conn, DOMAIN, MIGRATIONS)


def mark_verified(conn: sqlite3.Connection, shas: Iterable[str], at: str) -> int:
    """Record that these blobs re-hashed to their names at `at` (own transactions)."""
    n = 0
    chunk: list[tuple[str, str]] = []
    for sha in shas:
        chunk.append((sha, at))
        if len(chunk) >= _BATCH:
            n += _write(conn, chunk)
            chunk = []
    return n + _write(conn, chunk)


def forget(conn: sqlite3.Connection, shas: Iterable[str]) -> None:
    """A blob found changed or missing is no longer verified (it goes first next time)."""
    rows = [(s,) for s in shas]
    if rows:
        with transaction(conn):
            conn.executemany("DELETE FROM fixity WHERE sha256 = ?", rows)


def _write(conn: sqlite3.Connection, rows: list[tuple[str, str]]) -> int:
    if not rows:
        return 0
    with transaction(conn):
        conn.executemany(
            "INSERT INTO fixity (sha256, verified) VALUES (?, ?)"
            " ON CONFLICT(sha256) DO UPDATE SET verified = excluded.verified",
            rows,
        )
    return len(rows)


def parse_duration(text: str) -> float:
    """`90`, `90s`, `15m`, `2h`, `1d` -> seconds (a positive number)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    raw = text.strip().lower()
    factor = 1
    if raw and raw[-1] in units:
        factor = units[raw[-1]]
        raw = raw[:-1]
    try:
        value = float(raw) * factor
    except ValueError:
        raise UsageError(f"--budget: {text!r} is not a duration such as 90s, 15m or 2h") from None
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"--budget must be a positive duration, not {text!r}")
    return value


def least_recently_verified(conn: sqlite3.Connection) -> Iterator[tuple[str, int]]:
    """(sha256, size) of every blob, never-verified first (in sha256 order), then oldest
    verification first. Two queries that each walk an index, so no sort of the whole
    store is needed however many blobs it holds."""
    queries = (
        "SELECT b.sha256, b.size FROM blobs b"
        " WHERE NOT EXISTS (SELECT 1 FROM fixity f WHERE f.sha256 = b.sha256)"
        " ORDER BY b.sha256",
        "SELECT f.sha256, b.size FROM fixity f INDEXED BY fixity_verified"
        " JOIN blobs b ON b.sha256 = f.sha256 ORDER BY f.verified, f.sha256",
    )
    for sql in queries:
        cursor = conn.execute(sql)
        while True:
            rows = cursor.fetchmany(10_000)
            if not rows:
                break
            yield from rows


def rolling_check(
    archive: Archive,
    conn: sqlite3.Connection,
    *,
    sample: float | None,
    budget: float | None,
    jobs: int,
    progress: ProgressCallback | None = None,
) -> tuple[int, int, list[tuple[str, int, str | None]]]:
    """Re-hash the least recently verified blobs: (blobs in the store, bytes read,
    [(sha256, size, problem or None)] for each blob checked, in order).

    `problem` is None for a blob that re-hashed to its name, else "missing" or a description.
    """
    if sample is not None and not 0 < sample <= 100:
        raise UsageError(f"--sample must be a percentage above 0 and at most 100, not {sample}")
    migrate(conn)
    total = conn.execute("SELECT count(*) FROM blobs").fetchone()[0]
    limit = total if sample is None else math.ceil(total * sample / 100)
    fanout = archive.config.store.fanout
    store = archive.store_dir
    deadline = None if budget is None else time.monotonic() + budget
    checked: list[tuple[str, int, str | None]] = []
    nbytes = 0

    def tasks() -> Iterator[tuple[str, int, str]]:
        for drawn, (sha, size) in enumerate(least_recently_verified(conn)):
            if drawn >= limit or (deadline is not None and time.monotonic() >= deadline):
                return
            yield sha, size, str(blob_path_in(store, sha, fanout))

    # hashlib drops the GIL: threads
    kind = "threads" if jobs > 1 else "inline"
    with make_executor(jobs=jobs, kind=kind) as executor:
        for out in executor.run(_hash_task, tasks()):
            sha, size, _path = out.task
            actual = out.result
            if actual is None:
                checked.append((sha, size, "missing"))
            elif actual != sha:
                checked.append((sha, size, f"hashes to {actual}"))
            else:
                checked.append((sha, size, None))
                nbytes += size
            if len(checked) % 256 == 0:
                report(progress, Progress("audit", len(checked), limit, "blobs"))
    report(progress, Progress("audit", len(checked), len(checked), "blobs"))
    return total, nbytes, checked


def _hash_task(task: tuple[str, int, str]) -> str | None:
    try:
        return hash_file(task[2])[0]
    except OSError:
        return None


def verification_status(archive: Archive, *, now: datetime | None = None) -> dict[str, Any]:
    """How fresh the store's fixity is, for the health page (read-only).

    `oldest_verified`: the oldest last-verification time (None when some blob was never
    verified: then `never_verified` counts them); `verified_recent_share`: the share of
    blobs (0..1) re-hashed in the last 30 days.
    """
    out: dict[str, Any] = {
        "blobs": 0,
        "verified": 0,
        "never_verified": 0,
        "oldest_verified": None,
        "verified_recent": 0,
        "verified_recent_share": 0.0,
        "recent_days": RECENT_DAYS,
    }
    if not archive.state_path.exists():
        return out
    conn = archive.connect_state(readonly=True)
    try:
        out["blobs"] = conn.execute("SELECT count(*) FROM blobs").fetchone()[0]
        since = format_time((now or datetime.now(UTC)) - timedelta(days=RECENT_DAYS))
        try:
            verified, oldest, recent = conn.execute(
                "SELECT count(*), min(f.verified), sum(f.verified >= ?) FROM fixity f"
                " JOIN blobs b ON b.sha256 = f.sha256",
                (since,),
            ).fetchone()
        except sqlite3.OperationalError:  # no audit has run yet
            verified, oldest, recent = 0, None, 0
    except sqlite3.OperationalError:  # no store tables yet
        return out
    finally:
        conn.close()
    out["verified"] = verified
    out["never_verified"] = out["blobs"] - verified
    out["oldest_verified"] = oldest if out["never_verified"] == 0 else None
    out["verified_recent"] = recent or 0
    if out["blobs"]:
        out["verified_recent_share"] = round(out["verified_recent"] / out["blobs"], 4)
    return out
