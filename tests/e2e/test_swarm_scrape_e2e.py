"""Scrape against a real opentracker: its multi-hash replies are not canonical bencoding
(hashes in request order, not sorted), and musicark reads them in one request."""

from __future__ import annotations

from urllib.parse import quote_from_bytes

import httpx
import pytest
from harness import Opentracker

from musicark.errors import TorrentError
from musicark.swarm.scrape import parse_scrape, scrape
from musicark.torrent.bencode import decode

pytestmark = pytest.mark.e2e
HIGH, LOW = "f0" * 20, "0f" * 20  # asked for in this order: the reply lists them unsorted


def _announce(tracker: Opentracker, infohash: str, port: int) -> None:
    """A seeder announces itself, as a client would (a plain HTTP GET, BEP 3)."""
    query = (
        f"info_hash={quote_from_bytes(bytes.fromhex(infohash), safe='')}"
        f"&peer_id=-MA0001-{port:012d}&port={port}&uploaded=0&downloaded=0&left=0"
        "&event=started&compact=1"
    )
    resp = httpx.get(f"{tracker.announce}?{query}", timeout=5)
    assert resp.status_code == 200 and b"failure" not in resp.content, resp.content


def test_opentracker_multi_hash_scrape_in_one_request(tracker: Opentracker) -> None:
    tracker.allow(HIGH, LOW)
    _announce(tracker, HIGH, 6001)
    _announce(tracker, LOW, 6002)
    _announce(tracker, LOW, 6003)
    query = "&".join(
        f"info_hash={quote_from_bytes(bytes.fromhex(h), safe='')}" for h in (HIGH, LOW)
    )
    body = httpx.get(f"{tracker.scrape}?{query}", timeout=5).content
    with pytest.raises(TorrentError, match="unsorted"):
        decode(body)  # strictly, the reply is refused: this is what lenient decoding is for
    files = parse_scrape(body)
    assert files[bytes.fromhex(HIGH)].seeders == 1 and files[bytes.fromhex(LOW)].seeders == 2
    figures = scrape(tracker.announce, [HIGH, LOW], timeout=5)
    assert (figures[HIGH].seeders, figures[LOW].seeders) == (1, 2)
