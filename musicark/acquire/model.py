"""What sources produce and what the acquire stage records: offers, outcomes, statuses.

An `Offer` is one file a source can deliver (a URL, a local path), with what the source
says about it: size, checksums, licence, and hints that tie it to a catalogue track
(a track id, an ISRC, a MusicBrainz id, an id in the source's own catalogue).

Ledger outcomes (the `status` column of `acquire_ledger`), named as the reference
effort named them:

- `success`: fetched, verified and stored (or the same bytes were already stored)
- `skipped_has_download`: the track already has a rendition in the store
- `skipped_isrc_has_download`: another track with the same ISRC has a rendition
- `skipped_low_priority`: did not fit in `--max-bytes` this run (retried next run)
- `error_not_available`: no source offers the track, or the source answers 404/410
- `error_has_replacement`: this offer failed, another offer of the track was stored instead
- `error_checksum`: the bytes do not match the size or a checksum the source gave
- `error_size`: the server announced or sent more than the source promised
- `error_not_audio`: an HTML page (or anything else) where audio was promised, or a
  file that does not decode from start to end
- `error_robots`: robots.txt disallows the URL (crawled sources)
- `error_http`, `error_changed`, `error_io`, `error_ingest`: not stored this time; retried
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

FINAL = (
    "success",
    "error_not_available",
    "error_has_replacement",
    "error_checksum",
    "error_size",
    "error_not_audio",
    "error_robots",
)
RETRY = ("error_http", "error_changed", "error_io", "error_ingest", "skipped_low_priority")
SKIPPED = ("skipped_has_download", "skipped_isrc_has_download")
STATUSES = (*FINAL, *RETRY, *SKIPPED)
CHECKSUMS = ("sha256", "sha1", "md5")


@dataclass(frozen=True, slots=True)
class Offer:
    """One file a source can deliver. `key` is stable across runs (it names the ledger row)."""

    source: str
    key: str
    url: str | None = None
    path: str | None = None
    size: int | None = None
    checksums: Mapping[str, str] = field(default_factory=dict)
    licence: str | None = None
    rights: str | None = None
    track_id: int | None = None
    isrc: str | None = None
    mbid: str | None = None
    external: tuple[str, str] | None = None  # (kind, value) in the catalogue's external_ids
    title: str | None = None
    artist: str | None = None
    duration_ms: int | None = None  # with title + artist: the last way to find the track
    suffix: str = ""  # file extension, with the dot
    crawled: bool = False  # honour robots.txt

    @property
    def ledger_key(self) -> str:
        return f"{self.source}:{self.key}"

    @property
    def where(self) -> str:
        return self.url or self.path or self.key

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "key": self.key,
            "where": self.where,
            "size": self.size,
            "checksums": dict(self.checksums),
            "licence": self.licence,
            "rights": self.rights,
            "track_id": self.track_id,
            "isrc": self.isrc,
        }


@dataclass(slots=True)
class Fetched:
    """A verified file in staging, ready for the store, and what the transfer told us."""

    path: str
    size: int
    sha256: str
    etag: str | None = None
    last_modified: str | None = None
    url: str | None = None
    fetched_at: str = ""
    resumed: bool = False


class FetchFailed(Exception):
    """An offer that ends in a ledger outcome instead of a file (internal to acquire)."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
