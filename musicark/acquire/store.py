"""Handing verified files to the store's ingest, and recording where they came from.

Verified files are ingested in batches by `musicark.store.ingest.ingest` (hard links from
staging, so no second copy), on one background thread while downloads go on. The store's
own ledger then says what became of each file. An offer that named its track fixes the
rendition's track when ingest could not match the file by its tags.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from musicark.acquire.fetch import Outcome
from musicark.acquire.model import Fetched, Offer
from musicark.archive import Archive
from musicark.sqlite import transaction
from musicark.store import dupes, ledger
from musicark.store.ledger import STORED

INGEST_BATCH = 64

Results = list[tuple[Outcome, str, str]]


class StoreBatcher:
    def __init__(self, archive: Archive, conn: sqlite3.Connection, *, fingerprint: bool) -> None:
        self.archive = archive
        self.conn = conn
        self.fingerprint = fingerprint
        self.batch: list[Outcome] = []
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="acquire-store")
        self.running: tuple[list[Outcome], Future[None]] | None = None

    def add(self, outcome: Outcome) -> Iterator[Results]:
        self.batch.append(outcome)
        if self.running is not None and self.running[1].done():
            yield self._collect()
        if len(self.batch) >= INGEST_BATCH:
            if self.running is not None:
                yield self._collect()
            self._start()

    def finish(self) -> Iterator[Results]:
        if self.running is not None:
            yield self._collect()
        if self.batch:
            self._start()
            yield self._collect()

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    def _start(self) -> None:
        batch, self.batch = self.batch, []
        paths = [o.stored[1].path for o in batch if o.stored is not None]
        self.running = (batch, self.pool.submit(self._ingest, paths))

    def _ingest(self, paths: list[str]) -> None:
        from musicark.store.ingest import ingest

        ingest(
            self.archive,
            paths,
            mode="hardlink",
            jobs=1,
            fingerprint=self.fingerprint,
            source="acquire",
        )

    def _collect(self) -> Results:
        assert self.running is not None
        batch, fut = self.running
        self.running = None
        error: str | None = None
        try:
            fut.result()
        except Exception as exc:  # the store refused the whole batch: retried next run
            error = f"the store failed: {exc}"
        keys = [ledger.path_key(o.stored[1].path) for o in batch if o.stored is not None]
        known = ledger.lookup(self.conn, keys) if error is None else {}
        results: Results = []
        touched: set[int] = set()
        for outcome in batch:
            assert outcome.stored is not None
            offer, fetched = outcome.stored
            k = known.get(ledger.path_key(fetched.path))
            if k is not None and k.sha256 == fetched.sha256 and k.status in (*STORED, "duplicate"):
                reason = (
                    "stored" if k.status != "duplicate" else "the same bytes were already stored"
                )
                results.append((outcome, "success", reason))
                tid = outcome.job.track_id
                if tid is not None and _assign(self.conn, fetched.sha256, tid, offer.source):
                    touched.add(tid)
            else:
                why = error or f"the store said {k.status if k else 'nothing'}"
                results.append((outcome, "error_ingest", why))
        if touched:
            dupes.update_preferred(self.conn, touched)
        return results


def _assign(conn: sqlite3.Connection, sha256: str, track_id: int, source: str) -> bool:
    """Give an unmatched rendition the track its offer named."""
    # TODO(store): ask ingest to take per-file track hints instead of fixing the row after.
    with transaction(conn):
        cur = conn.execute(
            "UPDATE renditions SET track_id = ?, match_method = ?, confidence = 1.0"
            " WHERE sha256 = ? AND track_id IS NULL",
            (track_id, f"acquire:{source}", sha256),
        )
    return cur.rowcount > 0


def write_provenance(
    conn: sqlite3.Connection,
    offer: Offer,
    fetched: Fetched,
    track_id: int | None,
    rights: str | None,
) -> None:
    conn.execute(
        "INSERT INTO acquire_provenance (sha256, offer_key, source, url, etag, last_modified,"
        " fetched_at, licence, rights, track_id) VALUES (?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT(sha256, offer_key) DO UPDATE SET url = excluded.url, etag = excluded.etag,"
        " last_modified = excluded.last_modified, fetched_at = excluded.fetched_at,"
        " licence = excluded.licence, rights = excluded.rights, track_id = excluded.track_id",
        (
            fetched.sha256,
            offer.ledger_key,
            offer.source,
            fetched.url or offer.where,
            fetched.etag,
            fetched.last_modified,
            fetched.fetched_at,
            offer.licence,
            rights,
            track_id,
        ),
    )


def mark_replaced(conn: sqlite3.Connection, track_id: int, offer: Offer) -> None:
    """Earlier failed offers of a track that is now stored become `error_has_replacement`;
    a `track:<id>` row saying nobody offered it goes."""
    conn.execute("DELETE FROM acquire_ledger WHERE offer_key = ?", (f"track:{track_id}",))
    conn.execute(
        "UPDATE acquire_ledger SET status = 'error_has_replacement',"
        " reason = reason || '; stored from ' || ? WHERE track_id = ? AND offer_key != ?"
        " AND status LIKE 'error_%' AND status NOT IN ('error_has_replacement')",
        (offer.where, track_id, offer.ledger_key),
    )
