"""The worker side of acquire: fetch one track's offers in turn until one verifies.

Runs in worker threads; touches no database. A file leaves this module only verified:
its size and every checksum the source gave match, it decodes from start to end (the
store's probe, which also reaches for the declared end), and it is synced to disk.
`.part` files (and their `.part.json` validators) stay in `staging/acquire/parts` until
complete, so a run stopped at any point resumes them; verified files wait in
`staging/acquire/ready` until the store has them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from musicark.acquire.http import CHUNK, Downloader, Stopped
from musicark.acquire.model import CHECKSUMS, Fetched, FetchFailed, Offer
from musicark.acquire.sources import BaseSource
from musicark.store.ledger import Rejected
from musicark.units import now

_CONTAINER_SUFFIX = {
    "mp3": ".mp3",
    "flac": ".flac",
    "ogg": ".ogg",
    "mov,mp4,m4a,3gp,3g2,mj2": ".m4a",
}


@dataclass
class Job:
    track_id: int | None
    offers: list[Offer]
    size: int = 0  # what the budget counts for it (the first offer's promised size)
    isrc: str | None = None  # the track's, while it is in flight


@dataclass
class Outcome:
    job: Job
    stored: tuple[Offer, Fetched] | None = None
    failures: list[tuple[Offer, str, str]] = field(default_factory=list)
    stopped: bool = False  # the run is stopping; the job is left for the next run
    rest: list[Offer] = field(default_factory=list)  # offers of another host, not tried
    pause: float = 0.0  # seconds left of a Retry-After of the task's host (cluster tasks)


def offer_hash(offer: Offer) -> str:
    return hashlib.sha1(offer.ledger_key.encode("utf-8", "surrogateescape")).hexdigest()


class Worker:
    def __init__(
        self,
        sources: dict[str, BaseSource],
        downloader: Downloader,
        staging: Path,
        *,
        clean: bool = True,
    ) -> None:
        self.sources = sources
        self.downloader = downloader
        self.parts = staging / "parts"
        self.ready = staging / "ready"
        self.parts.mkdir(parents=True, exist_ok=True)
        self.ready.mkdir(parents=True, exist_ok=True)
        if clean:  # once per run, before any transfer (a cluster task does not)
            for meta in self.parts.glob("*.part.json"):  # its part was finished or dropped
                if not meta.with_suffix("").exists():
                    meta.unlink(missing_ok=True)

    def run(
        self,
        job: Job,
        *,
        host: str | None = None,
        host_of: Callable[[Offer], str] | None = None,
    ) -> Outcome:
        """The job's offers in turn until one is stored; with `host`, only the offers
        `host_of` places there (the first of another host and all after it are `rest`)."""
        out = Outcome(job)
        for i, offer in enumerate(job.offers):
            if host is not None and host_of is not None and host_of(offer) != host:
                out.rest = job.offers[i:]
                return out
            try:
                out.stored = (offer, self.fetch_one(offer))
                return out
            except FetchFailed as exc:
                out.failures.append((offer, exc.status, exc.reason))
            except Stopped:
                out.stopped = True
                return out
        return out

    def fetch_one(self, offer: Offer) -> Fetched:
        h = offer_hash(offer)
        for ready in self.ready.glob(f"{h}*"):  # verified by a run that stopped before storing it
            try:
                sha, _ = verify(ready, offer, probe=False)
                return Fetched(
                    str(ready), ready.stat().st_size, sha, url=offer.where, fetched_at=now()
                )
            except FetchFailed:
                ready.unlink(missing_ok=True)
        part = self.parts / f"{h}.part"
        meta = self.parts / f"{h}.part.json"
        source = self.sources[offer.source]
        for attempt in range(2):
            try:
                transfer = source.fetch(offer, part, self.downloader)
            except FetchFailed as exc:
                if exc.status not in ("error_http", "error_changed", "error_io"):
                    _drop(part, meta)  # nothing worth resuming
                raise
            try:
                sha, suffix = verify(part, offer, probe=True)
            except FetchFailed:
                _drop(part, meta)
                if transfer.resumed and attempt == 0:
                    continue  # the older half may be what is wrong: once more from scratch
                raise
            final = self.ready / f"{h}{offer.suffix or suffix}"
            os.replace(part, final)
            meta.unlink(missing_ok=True)
            return Fetched(
                str(final),
                transfer.size,
                sha,
                etag=transfer.etag,
                last_modified=transfer.last_modified,
                url=transfer.url,
                fetched_at=now(),
                resumed=transfer.resumed,
            )
        raise AssertionError("unreachable")


def _drop(part: Path, meta: Path) -> None:
    part.unlink(missing_ok=True)
    meta.unlink(missing_ok=True)


def verify(path: Path, offer: Offer, *, probe: bool) -> tuple[str, str]:
    """sha256 and a suffix for `path`, or FetchFailed; the file is synced to disk."""
    wanted = {k: v for k, v in offer.checksums.items() if k in CHECKSUMS}
    hashes = {"sha256": hashlib.sha256(), **{k: hashlib.new(k) for k in wanted if k != "sha256"}}
    size = 0
    try:
        with open(path, "rb+") as fh:
            while chunk := fh.read(CHUNK):
                size += len(chunk)
                for h in hashes.values():
                    h.update(chunk)
            os.fsync(fh.fileno())
    except OSError as exc:
        raise FetchFailed("error_io", f"cannot read the download back: {exc.strerror}") from exc
    if offer.size is not None and size != offer.size:
        raise FetchFailed("error_checksum", f"{size} bytes where the source promised {offer.size}")
    for kind, value in wanted.items():
        got = hashes[kind].hexdigest()
        if got != value.lower():
            raise FetchFailed("error_checksum", f"{kind} {got} where the source gave {value}")
    suffix = ""
    if probe:
        suffix = _probe(path, size)
    return hashes["sha256"].hexdigest(), suffix


def _probe(path: Path, size: int) -> str:
    from musicark.store.probe import analyse

    try:
        a = analyse(path, fingerprint=False, size=size)
    except Rejected as exc:
        raise FetchFailed("error_not_audio", exc.reason) from exc
    if a.damaged:
        raise FetchFailed("error_not_audio", f"does not decode to the end: {a.damaged}")
    return _CONTAINER_SUFFIX.get(a.container, "")
