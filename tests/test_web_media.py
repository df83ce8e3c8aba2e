"""Listen and fetch: held audio played from the store (Range, ETag, types, rights), the
release's .torrent files and torrents.json, and nothing else on disk reachable."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import libtorrent as lt
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from musicark.archive import Archive, init_archive
from musicark.web import create_app
from tests.audio import import_catalog_rows, make_file, track
from tests.net import serve_process
from tests.runner import Runner

ROWS = [
    track("m1", "Numbat Aria", "Anna Berg", isrc="USABC2400201", duration_ms=4000),
    track("m2", "Numbat Rondo", "Ben Costa", isrc="USABC2400202", duration_ms=4000),
    {
        **track("m3", "Numbat Secret", "Cleo Dahl", isrc="USABC2400203", duration_ms=4000),
        "rights": "all-rights-reserved",
    },
]


def make_media_archive(root: Path) -> Archive:
    """Three held tracks (two cc0, packed and published as release r1; one dark)."""
    archive = init_archive(root / "archive")
    import_catalog_rows(archive, ROWS, root)
    (root / "in").mkdir()
    for i, row in enumerate(ROWS):
        artists = row["artists"]
        assert isinstance(artists, list)
        make_file(
            root / "in" / f"{i}.ogg",
            seed=400 + i,
            seconds=4.0,
            tags={
                "title": str(row["title"]),
                "artist": artists[0]["name"],
                "isrc": str(row["isrc"]),
            },
        )
    cli = Runner(archive)
    cli("ingest", root / "in", "--jobs", "1")
    cli("pack", "r1")
    cli("publish", "r1", "--no-catalog")
    cli("index", "rebuild")
    return archive


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Archive:
    return make_media_archive(tmp_path_factory.mktemp("media"))


@pytest.fixture(scope="module")
def app(archive: Archive) -> Starlette:
    return create_app(archive)


@pytest.fixture
def client(app: Starlette) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _track(client: TestClient, title: str) -> dict:  # type: ignore[type-arg]
    hits = client.get("/api/search", params={"q": title}).json()["hits"]
    tid = next(h["id"] for h in hits if h["title"] == title)
    data: dict = client.get(f"/api/tracks/{tid}").json()  # type: ignore[type-arg]
    return data


def test_a_redistributable_track_plays_with_ranges(client: TestClient, archive: Archive) -> None:
    t = _track(client, "Numbat Aria")
    r0 = t["renditions"][0]
    url = r0["audio_url"]
    assert url == f"/tracks/{t['id']}/audio/{r0['sha256']}" and r0["not_playable"] is None
    page = client.get(f"/tracks/{t['id']}").text
    assert f'<audio id="track-audio" controls preload="none" src="{url}"' in page
    whole = client.get(url)
    assert whole.status_code == 200
    assert whole.headers["content-type"] == "audio/ogg"
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["etag"] == f'"{r0["sha256"]}"'
    assert "max-age=31536000" in whole.headers["cache-control"]
    assert hashlib.sha256(whole.content).hexdigest() == r0["sha256"]
    size = len(whole.content)
    part = client.get(url, headers={"range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == whole.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{size}"
    tail = client.get(url, headers={"range": "bytes=-50"})
    assert tail.status_code == 206 and tail.content == whole.content[-50:]
    assert client.get(url, headers={"range": f"bytes={size + 10}-"}).status_code == 416
    cached = client.get(url, headers={"if-none-match": f'"{r0["sha256"]}"'})
    assert cached.status_code == 304 and cached.content == b""
    # the search API and the album page give the same URL, and a play button for it
    hits = client.get("/api/search", params={"q": "numbat aria"}).json()["hits"]
    assert hits[0]["audio_url"] == url and hits[0]["held"] is True
    album = client.get(f"/albums/{t['album']['id']}").text
    assert f'data-src="{url}"' in album and 'aria-label="Play Numbat Aria"' in album
    assert ">r1</bdi></a>" in album  # which release holds it
    loc = t["locations"][0]
    assert loc["torrent_url"] == f"/releases/r1/torrents/{loc['torrent']}.torrent"
    assert f'href="{loc["torrent_url"]}"' in page
    assert client.get(loc["torrent_url"]).status_code == 200


def test_dark_renditions_are_never_served(client: TestClient, archive: Archive) -> None:
    t = _track(client, "Numbat Secret")
    r0 = t["renditions"][0]
    assert t["held"] is True and r0["audio_url"] is None
    assert "all-rights-reserved" in r0["not_playable"]
    page = client.get(f"/tracks/{t['id']}").text
    assert "<audio id=" not in page.split("<main")[1].split("now-playing")[0]
    assert "Not playable here" in page and "dark archive" in page
    denied = client.get(f"/tracks/{t['id']}/audio/{r0['sha256']}")
    assert denied.status_code == 403
    assert "do not allow redistribution" in denied.text
    assert (
        client.get(
            f"/tracks/{t['id']}/audio/{r0['sha256']}", headers={"range": "bytes=0-9"}
        ).status_code
        == 403
    )
    album = client.get(f"/albums/{t['album']['id']}").text
    assert 'aria-label="Play Numbat Secret"' not in album


def test_audio_urls_name_only_a_tracks_own_renditions(client: TestClient) -> None:
    aria, rondo = _track(client, "Numbat Aria"), _track(client, "Numbat Rondo")
    other = rondo["renditions"][0]["sha256"]
    assert client.get(f"/tracks/{aria['id']}/audio/{other}").status_code == 404
    for bad in ("../../catalog.sqlite", "ab" * 31, "AB" * 32, "..%2F..%2Fcatalog.sqlite"):
        r = client.get(f"/tracks/{aria['id']}/audio/{bad}")
        assert r.status_code in (400, 404) and b"SQLite format" not in r.content, bad


def test_no_audio_serves_none(archive: Archive) -> None:
    with TestClient(create_app(archive, audio=False), raise_server_exceptions=False) as c:
        t = _track(c, "Numbat Aria")
        r0 = t["renditions"][0]
        assert r0["audio_url"] is None and "turned off" in r0["not_playable"]
        assert c.get(f"/tracks/{t['id']}/audio/{r0['sha256']}").status_code == 404
        assert 'id="track-audio"' not in c.get(f"/tracks/{t['id']}").text


def test_release_page_offers_torrents_and_lists(client: TestClient, archive: Archive) -> None:
    page = client.get("/releases").text
    links = re.findall(r'href="(/releases/r1/torrents/[^"]+\.torrent)"', page)
    assert links, page
    data = client.get("/api/releases").json()
    audio = [t for t in data["torrents"] if t["kind"] == "audio"]
    assert audio and audio[0]["torrent_url"] in links and audio[0]["file_count"] == 2
    release = data["releases"][0]
    assert release["files"] == 2 and release["metadata"] and release["torrents_json_url"]
    got = client.get(audio[0]["torrent_url"])
    assert got.status_code == 200 and got.headers["content-type"] == "application/x-bittorrent"
    assert "attachment" in got.headers["content-disposition"]
    info = lt.torrent_info(lt.bdecode(got.content))
    assert info.name() == audio[0]["name"] and info.num_files() == 2
    listing = client.get(release["torrents_json_url"])
    assert listing.status_code == 200
    assert audio[0]["name"] in {t["name"] for t in listing.json()}
    assert client.get(release["release_json_url"]).json()["release"] == "r1"
    assert release["metadata_torrent_url"] in page and 'class="torrents-json"' in page
    # column names read as words
    assert "next_serial" not in page and "Next file number" in page


def test_nothing_else_on_disk_is_reachable(client: TestClient, archive: Archive) -> None:
    for path in (
        "/releases/r1/torrents/..%2F..%2F..%2Fcatalog.sqlite.torrent",
        "/releases/r1/torrents/%2e%2e.torrent",
        "/releases/r1/..%2F..%2Fcatalog.sqlite",
        "/releases/r1/catalog.sqlite",
        "/releases/..%2F..%2Fcatalog.sqlite",
        "/releases/r1/torrents/r1.torrent",
        "/releases/r1/data",
        "/releases/nope/torrents.json",
    ):
        r = client.get(path)
        assert r.status_code in (400, 404), path
        assert b"SQLite format" not in r.content
    # a torrent recorded under another release is not served under this one
    name = client.get("/api/releases").json()["torrents"][0]["name"]
    assert client.get(f"/releases/other/torrents/{name}.torrent").status_code == 404
    # a row whose path leads outside the release folder is refused
    import sqlite3

    conn = sqlite3.connect(archive.state_path)
    cols = [r[1] for r in conn.execute("PRAGMA table_info(torrents)")]
    row = dict(zip(cols, conn.execute("SELECT * FROM torrents LIMIT 1").fetchone(), strict=True))
    row.update(name="evil", torrent_path="catalog.sqlite", kind="audio")
    conn.execute(
        f"INSERT INTO torrents ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
        [row[c] for c in cols],
    )
    conn.commit()
    try:
        assert client.get("/releases/r1/torrents/evil.torrent").status_code == 404
    finally:
        conn.execute("DELETE FROM torrents WHERE name = 'evil'")
        conn.commit()
        conn.close()


@pytest.mark.slow  # three server processes start: ~3-10 s
def test_serve_cli_no_audio_with_workers(archive: Archive) -> None:
    """`musicark serve --workers 2 --no-audio --header-timeout`: the options reach every
    worker process (they are started from an import string, not this process's app)."""
    import socket
    import time

    import httpx

    options = ["--workers", "2", "--no-audio", "--threads", "2", "--header-timeout", "0.5"]
    with serve_process(archive.root, *options) as (base, port):
        with httpx.Client(base_url=base, timeout=10) as c:
            for _ in range(4):  # whichever worker answers
                t = _track(c, "Numbat Aria")  # type: ignore[arg-type]
                sha = t["renditions"][0]["sha256"]
                assert t["renditions"][0]["audio_url"] is None
                assert c.get(f"/tracks/{t['id']}/audio/{sha}").status_code == 404
        with socket.create_connection(("127.0.0.1", port), timeout=5) as slow:
            slow.sendall(b"GET / HTTP/1.1\r\n")
            started = time.monotonic()
            while time.monotonic() - started < 4:
                try:
                    slow.sendall(b"X")
                except OSError:
                    break
                time.sleep(0.1)
            assert time.monotonic() - started < 3
