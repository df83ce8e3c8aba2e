"""`acquire`: grow the archive from lawful sources, in plan order, resumable and verified.

Stages (each a function named by its verb):

    offers (sources, lazily) -> resolve (to catalogue tracks; by plan rank when a plan is
    used) -> skip (done, held, same ISRC held, over budget) -> fetch + verify (worker
    threads) -> store (the store's own ingest, in batches) -> record (ledger, provenance)

The main thread decides and records; workers only move bytes. A bounded number of jobs
is in flight, so memory does not grow with the number of offers. One run per archive
at a time (a lock); a run stopped at any point leaves `.part` files and verified files in
staging that the next run resumes, and a ledger that says what is done.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musicark.acquire import state
from musicark.acquire.fetch import Job, Outcome, Worker
from musicark.acquire.http import Downloader, HttpSettings, make_client
from musicark.acquire.model import FINAL, Offer
from musicark.acquire.resolve import OfferIndex, Resolver, chunks, plan_track_ids
from musicark.acquire.sources import BaseSource, SourceContext, open_source
from musicark.archive import Archive
from musicark.catalog.licences import licence_rights
from musicark.errors import ArchiveError, UsageError
from musicark.executor import make_executor
from musicark.progress import Progress, ProgressCallback, report
from musicark.units import now

INGEST_BATCH = 64
FILTER_BATCH = 200
MAX_MISFITS = 100  # consecutive offers over the byte budget before the run stops looking
MAX_PROBLEMS = 1000


@dataclass
class AcquireSummary:
    run_id: int | None
    mode: str
    counts: Counter[str] = field(default_factory=Counter)
    unchanged: int = 0  # offers a previous run finished
    unchanged_failed: int = 0  # of those, the ones that ended in a final error
    repeated: int = 0  # offers of a track already fetched or in flight in this run
    unmatched_offers: int = 0
    bytes_fetched: int = 0
    seconds: float = 0.0
    problems: list[dict[str, str]] = field(default_factory=list)
    planned: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    @property
    def ok(self) -> bool:
        return not any(s.startswith("error_") and s != "error_not_available" for s in self.counts)

    def to_dict(self) -> dict[str, Any]:
        fetched = self.counts.get("success", 0)
        return {
            "run_id": self.run_id,
            "mode": self.mode,
            "counts": dict(sorted(self.counts.items())),
            "unchanged": self.unchanged,
            "unchanged_failed": self.unchanged_failed,
            "repeated": self.repeated,
            "unmatched_offers": self.unmatched_offers,
            "bytes_fetched": self.bytes_fetched,
            "seconds": round(self.seconds, 3),
            "files_per_second": round(fetched / self.seconds, 2) if self.seconds else None,
            "problems": self.problems,
            "planned": self.planned,
        }


def plan_path(archive: Archive, plan: str | None) -> Path | None:
    """`latest` (the archive's last plan), a plan file, or None (`none`: every offer)."""
    from musicark.plan.io import LATEST_PLAN, plans_dir

    latest = plans_dir(archive) / LATEST_PLAN
    if plan is None or plan == "auto":
        return latest if latest.exists() else None
    if plan == "none":
        return None
    if plan == "latest":
        if not latest.exists():
            raise ArchiveError(
                "the archive has no plan yet: run `musicark plan` or pass --plan none"
            )
        return latest
    path = Path(plan)
    if not path.is_file():
        raise UsageError(f"--plan: no plan file at {plan}")
    from musicark.plan.io import read_plan_metadata

    read_plan_metadata(path)  # refuse a file that is not a plan before anything starts
    return path


def acquire(
    archive: Archive,
    sources: Sequence[str],
    *,
    plan: str | None = "auto",
    limit: int | None = None,
    max_bytes: int | None = None,
    http: HttpSettings | None = None,
    dry_run: bool = False,
    fingerprint: bool = True,
    ia_base_url: str = "https://archive.org",
    progress: ProgressCallback | None = None,
) -> AcquireSummary:
    """Fetch what the sources offer (for the plan's tracks, in rank order, when a plan is
    used) into the store; returns what happened, by ledger outcome."""
    if not sources:
        raise UsageError("name at least one source (see `musicark sources`)")
    settings = http or HttpSettings()
    for name, value in (("--concurrency", settings.concurrency), ("--per-host", settings.per_host)):
        if value < 1:
            raise UsageError(f"{name} must be at least 1")
    if limit is not None and limit < 0:
        raise UsageError("--limit must not be negative")
    if settings.rate_limit < 0:
        raise UsageError("--rate-limit must not be negative")
    path = plan_path(archive, plan)
    staging = archive.staging_dir / "acquire"
    stop = threading.Event()
    with make_client(settings) as client:
        downloader = Downloader(client, settings, stop)
        context = SourceContext(
            downloader=downloader, ia_base_url=ia_base_url, want_hints=path is not None
        )
        opened = [open_source(spec, context=context) for spec in sources]
        with state.run_lock(staging):
            run = _Run(archive, opened, context, staging, stop, settings, dry_run, fingerprint)
            try:
                return run.go(path, limit=limit, max_bytes=max_bytes, progress=progress)
            finally:
                run.close()


class _Run:
    def __init__(
        self,
        archive: Archive,
        sources: list[BaseSource],
        context: SourceContext,
        staging: Path,
        stop: threading.Event,
        settings: HttpSettings,
        dry_run: bool,
        fingerprint: bool,
    ) -> None:
        self.archive = archive
        self.sources = sources
        self.context = context
        self.staging = staging
        self.stop = stop
        self.settings = settings
        self.dry_run = dry_run
        self.fingerprint = fingerprint
        self.conn = state.connect(archive)
        self.resolver = Resolver(archive, self.conn)
        self.run_id: int | None = None
        self.in_flight: set[int] = set()
        self.isrcs_in_flight: set[str] = set()
        self.keys_in_flight: set[str] = set()  # offers being fetched or stored
        self.deferred: dict[int, list[Offer]] = {}  # more offers of a track in flight
        self.pending: list[state.LedgerRow] = []
        self.summary = AcquireSummary(None, "plan")
        self.total: int | None = None  # files this run will fetch, when known (--limit)

    def close(self) -> None:
        self.resolver.close()
        self.conn.close()

    # ---- the run

    def go(
        self,
        plan: Path | None,
        *,
        limit: int | None,
        max_bytes: int | None,
        progress: ProgressCallback | None,
    ) -> AcquireSummary:
        started = time.perf_counter()
        s = self.summary
        s.mode = "plan" if plan is not None else "all"
        if not self.dry_run:
            with state.transaction(self.conn):
                cur = self.conn.execute(
                    "INSERT INTO acquire_runs (started, sources) VALUES (?, ?)",
                    (now(), json.dumps([f"{x.name}:{x.argument}" for x in self.sources])),
                )
            self.run_id = s.run_id = int(cur.lastrowid or 0)
        jobs = self._jobs_plan(plan) if plan is not None else self._jobs_all()
        self.total = limit
        selected = self._select(jobs, limit=limit, max_bytes=max_bytes)
        if self.dry_run:
            for job in selected:
                s.planned.append(
                    {"track_id": job.track_id, "offers": [o.to_dict() for o in job.offers]}
                )
                self._flush()
        else:
            self._execute(selected, progress)
        self._flush()
        s.problems.extend({"problem": p} for p in self.context.problems[:MAX_PROBLEMS])
        s.seconds = time.perf_counter() - started
        if self.run_id is not None:
            with state.transaction(self.conn):
                self.conn.execute(
                    "UPDATE acquire_runs SET finished = ?, summary = ? WHERE id = ?",
                    (now(), json.dumps(s.to_dict()), self.run_id),
                )
        return s

    # ---- offers, resolved and ordered

    def _jobs_all(self) -> Iterator[Job]:
        for source in self.sources:
            for offer in source.offers():
                ids = self.resolver.tracks(offer)
                if not ids:
                    self.summary.unmatched_offers += 1
                offer_track = ids[0] if ids else None
                yield Job(offer_track, [offer], offer.size or 0)

    def _jobs_plan(self, plan: Path) -> Iterator[Job]:
        index = OfferIndex(self.staging / "index")
        try:
            for rank, source in enumerate(self.sources):
                pairs = ((o, self.resolver.tracks(o)) for o in source.offers())
                self.summary.unmatched_offers += index.add(pairs, rank)
            index.finish()
            remaining = index.distinct_tracks()
            ranked = (tid for group in plan_track_ids(plan) for tid in group)
            for chunk in chunks(ranked, 1000):
                found = index.lookup(chunk)
                for tid in chunk:
                    if remaining <= 0:
                        return
                    offers = found.get(tid, [])
                    remaining -= bool(offers)
                    yield Job(tid, offers, offers[0].size or 0 if offers else 0)
        finally:
            index.close()

    def _select(
        self, jobs: Iterable[Job], *, limit: int | None, max_bytes: int | None
    ) -> Iterator[Job]:
        """Drop what is done or held; stop at the limit and the byte budget."""
        taken = 0
        used = 0
        misfits = 0
        batch: list[Job] = []

        def flush() -> Iterator[Job]:
            nonlocal taken, used, misfits
            for job in self._skip(batch):
                if limit is not None and taken >= limit:
                    return
                # promised sizes, or the bytes fetched so far where sizes are unknown
                if (
                    max_bytes is not None
                    and max(used, self.summary.bytes_fetched) + job.size > max_bytes
                ):
                    self._record(
                        job.offers[0],
                        job.track_id,
                        "skipped_low_priority",
                        "over the --max-bytes budget of this run",
                    )
                    misfits += 1
                    continue
                misfits = 0
                taken += 1
                used += job.size
                yield job
            batch.clear()

        for job in jobs:
            if (
                (limit is not None and taken >= limit)
                or misfits >= MAX_MISFITS
                or self.stop.is_set()
            ):
                break
            batch.append(job)
            if len(batch) >= FILTER_BATCH:
                yield from flush()
        if batch and not (limit is not None and taken >= limit):
            yield from flush()

    def _skip(self, jobs: list[Job]) -> list[Job]:
        keys = [o.ledger_key for j in jobs for o in j.offers]
        done = state.statuses(self.conn, keys)
        tids = [j.track_id for j in jobs if j.track_id is not None]
        held = _held(self.conn, tids)
        info = self.resolver.info(tids)
        out = []
        for job in jobs:
            tid = job.track_id
            if not job.offers:
                if tid is not None:
                    self._record_row(
                        f"track:{tid}",
                        None,
                        tid,
                        None,
                        "error_not_available",
                        "no source offers this track",
                    )
                continue
            if any(done.get(o.ledger_key) == "success" for o in job.offers):
                self.summary.unchanged += 1
                continue
            offers = [o for o in job.offers if done.get(o.ledger_key) not in FINAL]
            if not offers:
                self.summary.unchanged += 1
                self.summary.unchanged_failed += 1
                continue
            offers = [o for o in offers if o.ledger_key not in self.keys_in_flight]
            if not offers:  # the same offer listed twice: one transfer into one .part
                self.summary.repeated += 1
                continue
            job.offers = offers
            if tid is not None:
                if tid in self.in_flight:
                    if len(self.deferred) < 10_000:
                        self.deferred.setdefault(tid, []).extend(offers)  # a fallback
                    else:
                        self.summary.repeated += 1
                    continue
                if tid in held:
                    self._record(
                        offers[0],
                        tid,
                        "skipped_has_download",
                        "the track already has a rendition in the store",
                    )
                    continue
                isrc = info[tid].isrc if tid in info else None
                if isrc and (isrc in self.isrcs_in_flight or self._isrc_held(isrc)):
                    self._record(
                        offers[0],
                        tid,
                        "skipped_isrc_has_download",
                        f"another track with ISRC {isrc} has a rendition",
                    )
                    continue
                self.in_flight.add(tid)  # until recorded: memory bounded by the jobs in flight
                if isrc:
                    self.isrcs_in_flight.add(isrc)
                    job.isrc = isrc
            self.keys_in_flight.update(o.ledger_key for o in offers)
            out.append(job)
        return out

    def _isrc_held(self, isrc: str) -> bool:
        return bool(_held(self.conn, self.resolver.isrc_tracks(isrc)))

    # ---- fetching and storing

    def _execute(self, jobs: Iterator[Job], progress: ProgressCallback | None) -> None:
        from musicark.acquire.store import StoreBatcher

        sources: dict[str, BaseSource] = {}
        for src in self.sources:
            sources.setdefault(src.name, src)
        assert self.context.downloader is not None
        worker = Worker(sources, self.context.downloader, self.staging)
        storer = StoreBatcher(self.archive, self.conn, fingerprint=self.fingerprint)
        followups: deque[Job] = deque()  # other offers of tracks whose first offer failed
        done = 0

        def tasks() -> Iterator[Job]:
            for job in jobs:
                while followups:
                    yield followups.popleft()
                yield job
                self._flush()

        def settle(outcome: Outcome | None) -> None:
            nonlocal done
            if outcome is None or outcome.stopped:
                return
            follow = self._outcome(outcome, storer)
            if follow is not None:
                followups.append(follow)
            done += 1
            report(progress, Progress("acquire", done, self.total, "files", _rate(self.summary)))

        try:
            if self.archive.config.ingest.executor != "local":
                self._fetch_on_cluster(tasks, followups, settle)
            else:
                self._fetch_here(worker, tasks, followups, settle)
            for results in storer.finish():
                self._stored(results)
        finally:
            storer.close()
            self._flush()

    def _fetch_here(
        self,
        worker: Worker,
        tasks: Callable[[], Iterator[Job]],
        followups: deque[Job],
        settle: Callable[[Outcome | None], None],
    ) -> None:
        """Downloads on threads of this process (the host gate holds the limits)."""
        with make_executor(jobs=self.settings.concurrency, kind="threads") as pool:
            try:
                source: Iterator[Job] = tasks()
                while True:
                    for result in pool.run(worker.run, source):
                        settle(result.result)
                    if not followups:
                        break
                    source = iter(list(followups))
                    followups.clear()
            except BaseException:
                self.stop.set()  # workers stop at their next chunk; .part files stay
                assert self.context.downloader is not None
                self.context.downloader.client.close()  # unblock reads in progress
                raise

    def _fetch_on_cluster(
        self,
        tasks: Callable[[], Iterator[Job]],
        followups: deque[Job],
        settle: Callable[[Outcome | None], None],
    ) -> None:
        """Downloads as tasks of a Dask cluster, handed out per host (`acquire.cluster`)."""
        from musicark.acquire.cluster import fetch_on_cluster

        def crashed(job: Job, why: str) -> None:
            self._record(job.offers[0], job.track_id, "error_io", why)
            self._release(job)

        fetch_on_cluster(
            self.archive.config.ingest.executor,
            sources=self.sources,
            staging=self.staging,
            settings=self.settings,
            ia_base_url=self.context.ia_base_url,
            jobs=tasks,
            followups=followups,
            settle=settle,
            crashed=crashed,
        )

    def _outcome(self, outcome: Outcome, storer: Any) -> Job | None:
        """Record a finished job; returns a job for the track's other offers if it failed
        (offers of another host a cluster task left, then fallbacks seen meanwhile)."""
        job = outcome.job
        if outcome.stored is None:
            for offer, status, reason in outcome.failures:
                self._record(offer, job.track_id, status, reason)
            more = list(outcome.rest)
            if job.track_id is not None:
                more += self.deferred.pop(job.track_id, [])
            if more:
                self.keys_in_flight.difference_update(o.ledger_key for o in job.offers)
                self.keys_in_flight.update(o.ledger_key for o in more)
                return Job(job.track_id, more, more[0].size or 0, isrc=job.isrc)
            self._release(job)
            return None
        self.summary.bytes_fetched += outcome.stored[1].size
        for results in storer.add(outcome):
            self._stored(results)
        return None

    def _stored(self, results: list[tuple[Outcome, str, str]]) -> None:
        """Record a stored batch in one transaction (ledger, provenance, replaced offers),
        then drop the staged files the store now holds."""
        from musicark.acquire.store import mark_replaced, write_provenance

        self._flush()
        with state.transaction(self.conn):
            for outcome, status, reason in results:
                assert outcome.stored is not None
                offer, fetched = outcome.stored
                tid = outcome.job.track_id
                for failed, fstatus, freason in outcome.failures:
                    self._record(failed, tid, fstatus, freason)
                self._record(offer, tid, status, reason, sha256=fetched.sha256, size=fetched.size)
                if status == "success":
                    rights = offer.rights or (
                        licence_rights(offer.licence) if offer.licence else None
                    )
                    write_provenance(self.conn, offer, fetched, tid, rights)
            state.record(self.conn, self.pending)
            self.pending.clear()
            for outcome, status, _ in results:
                assert outcome.stored is not None
                if status == "success" and outcome.job.track_id is not None:
                    mark_replaced(self.conn, outcome.job.track_id, outcome.stored[0])
        for outcome, status, _ in results:
            assert outcome.stored is not None
            if status == "success":
                Path(outcome.stored[1].path).unlink(missing_ok=True)
            self._release(outcome.job)

    def _release(self, job: Job) -> None:
        """A track is no longer in flight: held now (later offers are skipped as such) or
        failed (a later offer of it may be tried)."""
        self.keys_in_flight.difference_update(o.ledger_key for o in job.offers)
        if job.track_id is None:
            return
        self.in_flight.discard(job.track_id)
        if job.isrc:
            self.isrcs_in_flight.discard(job.isrc)
        self.summary.repeated += len(self.deferred.pop(job.track_id, []))

    # ---- the ledger

    def _record(
        self,
        offer: Offer,
        track_id: int | None,
        status: str,
        reason: str,
        *,
        sha256: str | None = None,
        size: int | None = None,
    ) -> None:
        self._record_row(
            offer.ledger_key,
            offer.source,
            track_id,
            offer.where,
            status,
            reason,
            sha256=sha256,
            size=size if size is not None else offer.size,
        )

    def _record_row(
        self,
        key: str,
        source: str | None,
        track_id: int | None,
        url: str | None,
        status: str,
        reason: str,
        *,
        sha256: str | None = None,
        size: int | None = None,
    ) -> None:
        self.summary.counts[status] += 1
        if status.startswith("error_") and len(self.summary.problems) < MAX_PROBLEMS:
            self.summary.problems.append({"offer": key, "status": status, "reason": reason})
        if self.dry_run:
            return
        self.pending.append(
            (key, source, track_id, url, size, sha256, status, reason, self.run_id or 0)
        )
        if len(self.pending) >= 500 and not self.conn.in_transaction:
            self._flush()

    def _flush(self) -> None:
        if not self.pending or self.dry_run:
            self.pending.clear()
            return
        with state.transaction(self.conn):
            state.record(self.conn, self.pending)
        self.pending.clear()


def _held(conn: sqlite3.Connection, track_ids: list[int]) -> set[int]:
    out: set[int] = set()
    for i in range(0, len(track_ids), 500):
        chunk = track_ids[i : i + 500]
        marks = ",".join("?" * len(chunk))
        out.update(
            r[0]
            for r in conn.execute(
                f"SELECT DISTINCT track_id FROM renditions WHERE track_id IN ({marks})", chunk
            )
        )
    return out


def _rate(summary: AcquireSummary) -> str:
    seconds = time.perf_counter() - summary.started
    return f"{summary.bytes_fetched / max(seconds, 1e-3) / 1e6:.1f} MB/s"
