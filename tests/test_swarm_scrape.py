"""Tracker scrape, swarm history and the seed list: real HTTP on 127.0.0.1, real SQLite."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import orjson
import pytest

from musicark.errors import SwarmError
from musicark.swarm.history import ScrapeRecord, latest_figures, migrate, record_scrapes
from musicark.swarm.scrape import parse_scrape, scrape, scrape_url
from musicark.swarm.seedlist import Candidate, propose
from musicark.swarm.sources import SwarmTorrent
from musicark.torrent.bencode import encode
from musicark.torrent.create import create_torrent

H1, H2 = "11" * 20, "22" * 20
FIGURES = {"complete": 5, "downloaded": 1, "incomplete": 4}


def test_scrape_url() -> None:
    assert scrape_url("http://t.example/announce") == "http://t.example/scrape"
    assert (
        scrape_url("http://t.example:8/x/announce.php?k=1") == "http://t.example:8/x/scrape.php?k=1"
    )
    assert scrape_url("http://t.example/a") is None
    assert scrape_url("udp://t.example:80/announce") is None


def test_parse_scrape() -> None:
    body = encode({"files": {bytes.fromhex(H1): {"complete": 3, "downloaded": 9, "incomplete": 2}}})
    figures = parse_scrape(body)
    assert figures[bytes.fromhex(H1)].seeders == 3
    assert figures[bytes.fromhex(H1)].leechers == 2
    assert figures[bytes.fromhex(H1)].completed == 9
    with pytest.raises(SwarmError, match="refused the scrape: go away"):
        parse_scrape(encode({"failure reason": "go away"}))
    for garbage in (b"<html>502</html>", b"l" * 5000 + b"e" * 5000, b"d5:files99999999:e", b"i5e"):
        with pytest.raises(SwarmError, match="not a scrape"):
            parse_scrape(garbage)
    with pytest.raises(SwarmError, match="without files"):
        parse_scrape(encode({"interval": 5}))


class Tracker(BaseHTTPRequestHandler):
    """A misbehaving tracker: what it answers depends on the path."""

    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        Tracker.requests.append(self.path)
        if self.path.startswith("/slow/"):
            time.sleep(2)
        if self.path.startswith("/error/"):
            self.send_response(500)
            self.end_headers()
            return
        if self.path.startswith("/huge/"):
            body = b"d5:files" + b"x" * (5 * 2**20)
        elif self.path.startswith("/garbage/"):
            body = b"\x00\xffnot bencode at all"
        elif self.path.count("info_hash") == 1:
            h = H1 if "%11" in self.path else H2
            body = encode({"files": {bytes.fromhex(h): FIGURES}})
        else:  # a good tracker listing hashes in reverse (non-canonical) order, as opentracker
            body = (
                b"d5:filesd"
                + b"".join(b"20:" + bytes.fromhex(h) + encode(FIGURES) for h in (H2, H1))
                + b"ee"
            )
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that hang up early (timeouts, size limits) are expected here


@pytest.fixture
def server() -> Iterator[str]:
    httpd = QuietServer(("127.0.0.1", 0), Tracker)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_scrape_against_misbehaving_trackers(server: str) -> None:
    Tracker.requests.clear()
    figures = scrape(f"{server}/ok/announce", [H1, H2], timeout=5)
    assert figures[H1].seeders == 5 and figures[H2].leechers == 4
    # the unsorted two-hash reply is read: one request, not one per hash
    assert len(Tracker.requests) == 1 and Tracker.requests[0].count("info_hash") == 2
    with pytest.raises(SwarmError, match=r"did not answer within 0\.5 s"):
        scrape(f"{server}/slow/announce", [H1], timeout=0.5)
    with pytest.raises(SwarmError, match="HTTP 500"):
        scrape(f"{server}/error/announce", [H1])
    with pytest.raises(SwarmError, match="more than"):
        scrape(f"{server}/huge/announce", [H1])
    with pytest.raises(SwarmError, match="not a scrape"):
        scrape(f"{server}/garbage/announce", [H1])
    with pytest.raises(SwarmError, match="cannot be reached"):
        scrape("http://127.0.0.1:9/announce", [H1], timeout=2)


def _torrent(name: str, size: int, infohash: str) -> SwarmTorrent:
    return SwarmTorrent(name, infohash, None, size, (), magnet=f"magnet:?xt=urn:btih:{infohash}")


def test_history_keeps_the_latest_per_tracker(tmp_path: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(tmp_path / "state.sqlite", isolation_level=None)
    conn.execute("CREATE TABLE schema_versions (domain TEXT PRIMARY KEY, version INTEGER NOT NULL)")
    migrate(conn)
    record_scrapes(conn, [ScrapeRecord(H1, "a", "t1", 9, 1, 0)], at="2026-01-01T00:00:00Z")
    record_scrapes(
        conn,
        [
            ScrapeRecord(H1, "a", "t1", 2, 3, 4),
            ScrapeRecord(H1, "a", "t2", None, None, None, "down"),
        ],
        at="2026-01-02T00:00:00Z",
    )
    fig = latest_figures(conn)[H1]
    assert (fig.seeders, fig.leechers, fig.completed, fig.trackers_ok) == (2, 3, 4, 1)
    assert fig.errors == ("t2: down",)
    assert fig.scraped_at == "2026-01-02T00:00:00Z"


def test_propose_least_seeded_first_within_space() -> None:
    from musicark.swarm.history import SwarmFigures

    def cand(name: str, size: int, seeders: int | None, leechers: int = 0) -> Candidate:
        fig = None if seeders is None else SwarmFigures(seeders, leechers, 0, "t", 1)
        return Candidate(_torrent(name, size, name * 40), fig)

    cands = [
        cand("a", 50, 10),
        cand("b", 40, 0, leechers=1),
        cand("c", 40, 0, leechers=7),
        cand("d", 80, 1),
        cand("e", 10, None),  # never scraped: counts as unseeded
        cand("f", 5, 3),
    ]
    result = propose(cands, max_size=100)
    assert [c.torrent.name for c in result.chosen] == ["c", "b", "e", "f"]
    assert result.total_size == 95
    assert [c.torrent.name for c in result.passed_over] == ["d", "a"]
    rng = random.Random(1)
    shuffled = cands[:]
    rng.shuffle(shuffled)
    assert propose(shuffled, max_size=100).chosen == result.chosen


def test_seedlist_cli_with_unreachable_and_garbage_trackers(
    run, tmp_path: Path, server: str
) -> None:  # type: ignore[no-untyped-def]
    paths = []
    for i, tracker in enumerate(("http://127.0.0.1:9/announce", f"{server}/garbage/announce")):
        root = tmp_path / f"T{i}"
        root.mkdir()
        (root / "a.bin").write_bytes(random.Random(i).randbytes(5000 + i))
        path = tmp_path / f"t{i}.torrent"
        path.write_bytes(create_torrent(root, trackers=[tracker]).data)
        paths.append(path)
    args = [
        "seedlist",
        "--max-size",
        "1MB",
        "--timeout",
        "2",
        "--torrent",
        paths[0],
        "--torrent",
        paths[1],
    ]
    result = run(*args, "--json")
    assert "Traceback" not in result.output
    assert result.stderr.count("musicark: warning: tracker") == 2
    data = orjson.loads(result.stdout)
    assert len(data["chosen"]) == 2 and len(data["errors"]) == 2
    assert all(c["seeders"] is None for c in data["chosen"])
    magnets = run(*args, "--magnets").stdout.split()
    assert len(magnets) == 2 and all(m.startswith("magnet:?xt=urn:btih:") for m in magnets)
    listing = run("torrents", "--torrent", tmp_path, "--json").stdout
    assert {r["name"] for r in orjson.loads(listing)} == {"T0", "T1"}
    bad = run("seedlist", "--max-size", "lots", check=False)
    assert bad.exit_code == 2 and "not a size" in bad.output
    none = run("seedlist", "--max-size", "1GB", check=False)
    assert none.exit_code == 1 and "no torrents" in none.output


def test_an_archive_without_releases_lists_no_torrents(run) -> None:  # type: ignore[no-untyped-def]
    listing = run("torrents")
    assert listing.exit_code == 0 and listing.output == ""
    assert orjson.loads(run("torrents", "--json").stdout) == []
    # choosing what to seed from nothing is still an error
    none = run("seedlist", "--max-size", "1GB", check=False)
    assert none.exit_code == 1 and "no torrents" in none.output
