"""HTTP tracker scrape (BEP 48): seeders, leechers and completed downloads per infohash.

Replies are read up to a size limit and decoded with musicark's bounded bencode
decoder, leniently: opentracker lists the hashes of a multi-hash reply unsorted, so
many hashes are asked for in one request. A tracker that does not answer, answers an
HTTP error, or answers anything but a scrape dictionary raises one `SwarmError` line
naming the tracker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote_from_bytes, urlsplit, urlunsplit

import httpx

from musicark.errors import SwarmError, TorrentError
from musicark.torrent.bencode import Limits, decode

MAX_REPLY_BYTES = 4 * 2**20
BATCH = 50  # infohashes per request, to keep URLs well under common limits
REPLY_LIMITS = Limits(max_depth=8, max_items=20 * BATCH * 8 + 64, max_size=MAX_REPLY_BYTES)


@dataclass(frozen=True, slots=True)
class ScrapeFigures:
    seeders: int
    leechers: int
    completed: int


def scrape_url(announce: str) -> str | None:
    """The scrape URL of an HTTP announce URL (BEP 48), or None when it has none."""
    parts = urlsplit(announce)
    if parts.scheme not in ("http", "https"):
        return None
    head, _, last = parts.path.rpartition("/")
    if not last.startswith("announce"):
        return None
    return urlunsplit(parts._replace(path=f"{head}/scrape{last[len('announce') :]}"))


def _query_hash(infohash: str) -> bytes:
    try:
        raw = bytes.fromhex(infohash)
    except ValueError:
        raise SwarmError(f"{infohash!r} is not a hex infohash") from None
    if len(raw) not in (20, 32):
        raise SwarmError(f"{infohash!r} is not a 20- or 32-byte infohash")
    return raw[:20]  # v2 hashes are truncated to 20 bytes on the wire (BEP 52)


def _fetch(client: httpx.Client, url: str, tracker: str, timeout: float) -> bytes:
    try:
        with client.stream("GET", url, timeout=timeout, follow_redirects=False) as resp:
            if resp.status_code != 200:
                raise SwarmError(f"tracker {tracker} answered HTTP {resp.status_code}")
            body = bytearray()
            for chunk in resp.iter_bytes():
                body += chunk
                if len(body) > MAX_REPLY_BYTES:
                    raise SwarmError(f"tracker {tracker} sent more than {MAX_REPLY_BYTES} bytes")
            return bytes(body)
    except httpx.TimeoutException:
        raise SwarmError(f"tracker {tracker} did not answer within {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise SwarmError(f"tracker {tracker} cannot be reached ({exc})") from exc


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def parse_scrape(body: bytes, *, tracker: str = "tracker") -> dict[bytes, ScrapeFigures]:
    """The `files` of a bencoded scrape reply, by raw 20-byte infohash."""
    try:
        reply = decode(body, limits=REPLY_LIMITS, strict=False)
    except TorrentError as exc:
        raise SwarmError(f"tracker {tracker} sent a reply that is not a scrape ({exc})") from exc
    if not isinstance(reply, dict):
        raise SwarmError(f"tracker {tracker} sent a reply that is not a scrape dictionary")
    failure = reply.get(b"failure reason")
    if isinstance(failure, bytes):
        text = failure.decode("utf-8", "replace")[:200]
        raise SwarmError(f"tracker {tracker} refused the scrape: {text}")
    files = reply.get(b"files")
    if not isinstance(files, dict):
        raise SwarmError(f"tracker {tracker} sent a scrape reply without files")
    out: dict[bytes, ScrapeFigures] = {}
    for key, entry in files.items():
        if len(key) != 20 or not isinstance(entry, dict):
            continue
        out[key] = ScrapeFigures(
            seeders=_count(entry.get(b"complete")),
            leechers=_count(entry.get(b"incomplete")),
            completed=_count(entry.get(b"downloaded")),
        )
    return out


def _scrape_batch(
    client: httpx.Client, url: str, tracker: str, batch: Sequence[str], timeout: float
) -> dict[bytes, ScrapeFigures]:
    query = "&".join(f"info_hash={quote_from_bytes(_query_hash(h), safe='')}" for h in batch)
    sep = "&" if urlsplit(url).query else "?"
    return parse_scrape(_fetch(client, f"{url}{sep}{query}", tracker, timeout), tracker=tracker)


def scrape(
    tracker: str, infohashes: Sequence[str], *, timeout: float = 10.0
) -> dict[str, ScrapeFigures]:
    """Figures for each hex infohash from the HTTP tracker whose announce URL is `tracker`.

    Hashes are asked for in batches of `BATCH`. A hash the tracker does not mention
    has no peers there (0, 0, 0).
    """
    url = scrape_url(tracker)
    if url is None:
        raise SwarmError(f"tracker {tracker} has no HTTP scrape URL (BEP 48)")
    out: dict[str, ScrapeFigures] = {}
    with httpx.Client() as client:
        for start in range(0, len(infohashes), BATCH):
            batch = list(infohashes[start : start + BATCH])
            files = _scrape_batch(client, url, tracker, batch, timeout)
            for h in batch:
                out[h] = files.get(_query_hash(h), ScrapeFigures(0, 0, 0))
    return out
