"""`acquire urls:` against a real HTTP server on 127.0.0.1 that injects faults."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from musicark.acquire import HttpSettings, acquire
from musicark.acquire.state import run_lock
from musicark.archive import Archive
from musicark.catalog.ids import entity_id
from musicark.errors import ArchiveError
from tests.acquire_server import Fault, FaultServer, Running
from tests.audio import import_catalog_rows, make_file, track

FAST = HttpSettings(concurrency=4, per_host=4, backoff=0.01, read_timeout=1.0, retries=4)


def tid(external: str) -> int:
    return entity_id("test", "track", external)


@pytest.fixture(scope="module")
def songs(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    folder = tmp_path_factory.mktemp("songs")
    return [
        make_file(folder / f"s{i}.mp3", seed=100 + i, seconds=6.0).read_bytes() for i in range(6)
    ]


@pytest.fixture
def server() -> Iterator[FaultServer]:
    app = FaultServer()
    with Running(app):
        yield app


@pytest.fixture
def catalog(archive: Archive, tmp_path: Path) -> Archive:
    rows = [
        track(f"t{i}", f"Song {i}", "Artist", isrc=f"USAAA000000{i}", duration_ms=6000)
        for i in range(6)
    ]
    rows.append(track("t6", "Song 0 again", "Other", isrc="USAAA0000000", duration_ms=6000))
    import_catalog_rows(archive, rows, tmp_path)
    return archive


def write_csv(path: Path, rows: list[dict[str, object]]) -> Path:
    cols = ["url", "track_id", "isrc", "size", "sha256", "md5", "licence"]
    lines = [",".join(cols)]
    for r in rows:
        lines.append(",".join(str(r.get(c, "") if r.get(c) is not None else "") for c in cols))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def ledger(archive: Archive) -> dict[str, tuple[str, str | None]]:
    conn = sqlite3.connect(archive.state_path)
    rows = conn.execute("SELECT offer_key, status, reason FROM acquire_ledger").fetchall()
    conn.close()
    return {k.split(":", 1)[1]: (s, r) for k, s, r in rows}


def blobs(archive: Archive) -> dict[str, int | None]:
    conn = sqlite3.connect(archive.state_path)
    rows = conn.execute(
        "SELECT b.sha256, r.track_id FROM blobs b LEFT JOIN renditions r USING (sha256)"
    ).fetchall()
    conn.close()
    return dict(rows)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_urls_fetch_verify_store_and_resume_nothing(
    catalog: Archive, server: FaultServer, songs: list[bytes], tmp_path: Path
) -> None:
    server.gzip = True  # a server that compresses for clients asking for it
    rows = []
    for i in range(3):
        url = server.add(f"/f{i}.mp3", songs[i])
        rows.append(
            {
                "url": url,
                "track_id": tid(f"t{i}"),
                "size": len(songs[i]),
                "sha256": sha(songs[i]),
                "licence": "https://creativecommons.org/licenses/by/4.0/",
            }
        )
    listing = write_csv(tmp_path / "list.csv", rows)
    summary = acquire(catalog, [f"urls:{listing}"], plan="none", http=FAST, fingerprint=False)
    assert summary.counts == {"success": 3}, summary.to_dict()
    held = blobs(catalog)
    for i in range(3):
        assert held[sha(songs[i])] == tid(f"t{i}")  # the offer's track, untagged file
    conn = sqlite3.connect(catalog.state_path)
    prov = conn.execute("SELECT url, etag, rights, fetched_at FROM acquire_provenance").fetchall()
    assert len(prov) == 3 and all(p[1] and p[2] == "cc-by" and p[3] for p in prov)
    assert list((catalog.staging_dir / "acquire" / "ready").iterdir()) == []
    assert all(
        h.get("accept-encoding") == "identity" for p, h in server.requests if p.endswith(".mp3")
    )
    agents = {h.get("user-agent", "") for _, h in server.requests}
    assert all(a.startswith("musicark/") for a in agents)
    before = len(server.requests)
    again = acquire(catalog, [f"urls:{listing}"], plan="none", http=FAST, fingerprint=False)
    assert again.unchanged == 3 and not again.counts
    assert len(server.requests) == before  # nothing fetched twice


@pytest.mark.parametrize(
    ("fault", "expect"),
    [
        (Fault("cut", times=2), "success"),
        (Fault("status", times=2, status=500), "success"),
        (Fault("status", times=2, status=503), "success"),
        (Fault("status", times=99, status=500), "error_http"),
        (Fault("slow", times=1, delay=1.5), "success"),
        (Fault("flip", times=99), "error_checksum"),
        (Fault("loop", times=99), "error_http"),
        (Fault("huge", times=99), "error_size"),
        (Fault("html", times=99), "error_not_audio"),
        (Fault("status", times=99, status=404), "error_not_available"),
    ],
    ids=lambda v: v if isinstance(v, str) else f"{v.kind}-{v.status}x{v.times}",
)
def test_faults(
    catalog: Archive,
    server: FaultServer,
    songs: list[bytes],
    tmp_path: Path,
    fault: Fault,
    expect: str,
) -> None:
    body = songs[0]
    url = server.add("/song.mp3", body)
    server.faults["/song.mp3"] = fault
    listing = write_csv(
        tmp_path / "l.csv",
        [{"url": url, "isrc": "USAAA0000001", "size": len(body), "sha256": sha(body)}],
    )
    summary = acquire(catalog, [f"urls:{listing}"], plan="none", http=FAST, fingerprint=False)
    assert summary.counts == {expect: 1}, summary.to_dict()
    if expect == "success":
        assert set(blobs(catalog)) == {sha(body)}
    else:
        assert blobs(catalog) == {}  # nothing unverified enters the store
        parts = catalog.staging_dir / "acquire" / "parts"
        if expect != "error_http":
            assert list(parts.iterdir()) == []
    if fault.kind == "cut":
        ranges = [h.get("range") for p, h in server.requests if p == "/song.mp3"]
        assert ranges[0] is None and ranges[1] and ranges[1].startswith("bytes=")


def test_retry_after_is_honoured(
    catalog: Archive, server: FaultServer, songs: list[bytes], tmp_path: Path
) -> None:
    import time

    url = server.add("/a.mp3", songs[1])
    server.faults["/a.mp3"] = Fault("retry_after", times=1, status=429)
    listing = write_csv(tmp_path / "l.csv", [{"url": url, "size": len(songs[1])}])
    started = time.monotonic()
    summary = acquire(catalog, [f"urls:{listing}"], plan="none", http=FAST, fingerprint=False)
    assert summary.counts == {"success": 1}
    assert time.monotonic() - started >= 1.0  # Retry-After: 1, not the 10 ms backoff


@pytest.mark.parametrize("kind", ["change", "change_206"])
def test_file_changed_between_ranged_requests(
    catalog: Archive, server: FaultServer, songs: list[bytes], tmp_path: Path, kind: str
) -> None:
    from tests.acquire_server import Served

    url = server.add("/c.mp3", songs[2])
    server.replacements["/c.mp3"] = Served(songs[3])
    server.faults["/c.mp3"] = Fault(kind, times=1)
    listing = write_csv(tmp_path / "l.csv", [{"url": url, "track_id": tid("t3")}])
    summary = acquire(catalog, [f"urls:{listing}"], plan="none", http=FAST, fingerprint=False)
    assert summary.counts == {"success": 1}, summary.to_dict()
    assert set(blobs(catalog)) == {sha(songs[3])}  # the new file whole, never a splice


def test_robots_txt_and_lock_and_dry_run(
    catalog: Archive, server: FaultServer, songs: list[bytes], tmp_path: Path
) -> None:
    server.robots = "User-agent: *\nDisallow: /private/\n"
    ok = server.add("/pub/a.mp3", songs[0])
    no = server.add("/private/b.mp3", songs[1])
    listing = write_csv(
        tmp_path / "l.csv", [{"url": ok, "track_id": tid("t0")}, {"url": no, "track_id": tid("t1")}]
    )
    dry = acquire(catalog, [f"urls:{listing}"], plan="none", http=FAST, dry_run=True)
    assert [p["offers"][0]["where"] for p in dry.planned] == [ok, no]
    assert ledger(catalog) == {} and server.hits["/pub/a.mp3"] == 0
    with run_lock(catalog.staging_dir / "acquire"), pytest.raises(ArchiveError, match="another"):
        acquire(catalog, [f"urls:{listing}"], plan="none", http=FAST)
    summary = acquire(catalog, [f"urls:{listing}"], plan="none", http=FAST, fingerprint=False)
    assert summary.counts == {"success": 1, "error_robots": 1}
    assert server.hits["/private/b.mp3"] == 0


def test_isrc_held_skips_and_fallback_offer_replaces(
    catalog: Archive, server: FaultServer, songs: list[bytes], tmp_path: Path
) -> None:
    gone = server.url("/gone.mp3")
    alt = server.add("/alt.mp3", songs[0])
    same_isrc = server.add("/again.mp3", songs[4])
    listing = write_csv(
        tmp_path / "l.csv",
        [
            {"url": gone, "track_id": tid("t0")},
            {"url": alt, "track_id": tid("t0")},
            {"url": same_isrc, "track_id": tid("t6")},  # t6 shares t0's ISRC
        ],
    )
    summary = acquire(catalog, [f"urls:{listing}"], plan="none", http=FAST, fingerprint=False)
    states = ledger(catalog)
    assert states[alt][0] == "success"
    assert states[gone][0] == "error_has_replacement"
    assert states[same_isrc][0] == "skipped_isrc_has_download"
    assert server.hits["/again.mp3"] == 0
    assert summary.counts["success"] == 1


def test_cancel_leaves_a_resumable_run(
    catalog: Archive, server: FaultServer, songs: list[bytes], tmp_path: Path
) -> None:
    from musicark.errors import Cancelled
    from musicark.progress import Progress

    rows = [{"url": server.add(f"/x{i}.mp3", songs[i]), "track_id": tid(f"t{i}")} for i in range(5)]
    listing = write_csv(tmp_path / "l.csv", rows)
    one = HttpSettings(concurrency=1, backoff=0.01)

    def stop_after_first(p: Progress) -> bool:
        return p.done < 1

    with pytest.raises(Cancelled):
        acquire(
            catalog,
            [f"urls:{listing}"],
            plan="none",
            http=one,
            fingerprint=False,
            progress=stop_after_first,
        )
    from musicark.acquire.fetch import offer_hash
    from musicark.acquire.model import Offer

    ready = {p.stem for p in (catalog.staging_dir / "acquire" / "ready").iterdir()}
    assert ready and len(blobs(catalog)) < 5  # verified, not yet stored: kept for the next run
    verified = [r for r in rows if offer_hash(Offer("urls", str(r["url"]))) in ready]
    hits = dict(server.hits)
    rest = acquire(catalog, [f"urls:{listing}"], plan="none", http=one, fingerprint=False)
    assert rest.counts == {"success": 5}
    assert len(blobs(catalog)) == 5
    for r in verified:  # nothing verified is fetched again
        path = str(r["url"]).removeprefix(server.base)
        assert server.hits[path] == hits[path]


def test_per_host_limit_and_rate_limit(
    catalog: Archive, server: FaultServer, songs: list[bytes], tmp_path: Path
) -> None:
    rows = [{"url": server.add(f"/r{i}.mp3", songs[i])} for i in range(5)]
    listing = write_csv(tmp_path / "l.csv", rows)
    settings = HttpSettings(concurrency=4, per_host=1, rate_limit=8.0, backoff=0.01)
    summary = acquire(catalog, [f"urls:{listing}"], plan="none", http=settings, fingerprint=False)
    assert summary.counts == {"success": 5}
    assert server.max_active == 1  # one transfer at a time on this host
    gaps = [b - a for a, b in zip(server.starts, server.starts[1:], strict=False)]
    assert min(gaps) >= 0.1  # 8 requests/s: starts at least 125 ms apart (less jitter)


def test_tls_is_verified(catalog: Archive, songs: list[bytes], tmp_path: Path) -> None:
    import subprocess

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    app = FaultServer(ssl=(str(cert), str(key)))
    with Running(app):
        url = app.add("/s.mp3", songs[0])
        assert url.startswith("https://")
        listing = write_csv(tmp_path / "l.csv", [{"url": url}])
        summary = acquire(catalog, [f"urls:{listing}"], plan="none", http=FAST, fingerprint=False)
    assert summary.counts == {"error_http": 1}  # a self-signed certificate is refused
    assert "CERTIFICATE_VERIFY_FAILED" in summary.problems[0]["reason"]
    assert app.hits["/s.mp3"] == 0


def test_proxy_from_the_environment(
    catalog: Archive,
    server: FaultServer,
    songs: list[bytes],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server.add("/p.mp3", songs[1])
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", server.base)  # the test server plays the proxy
    listing = write_csv(tmp_path / "l.csv", [{"url": "http://music.example.invalid/p.mp3"}])
    summary = acquire(catalog, [f"urls:{listing}"], plan="none", http=FAST, fingerprint=False)
    assert summary.counts == {"success": 1}, summary.to_dict()
    hosts = {h.get("host") for p, h in server.requests if p == "/p.mp3"}
    assert hosts == {"music.example.invalid"}


def test_robots_crawl_delay_spaces_requests(
    catalog: Archive, server: FaultServer, songs: list[bytes], tmp_path: Path
) -> None:
    server.robots = "User-agent: *\nCrawl-delay: 0.3\n"
    rows = [{"url": server.add(f"/d{i}.mp3", songs[i])} for i in range(3)]
    listing = write_csv(tmp_path / "l.csv", rows)
    summary = acquire(catalog, [f"urls:{listing}"], plan="none", http=FAST, fingerprint=False)
    assert summary.counts == {"success": 3}
    gaps = [b - a for a, b in zip(server.starts, server.starts[1:], strict=False)]
    assert min(gaps) >= 0.25


def test_an_offer_listed_twice_is_fetched_once(
    catalog: Archive, server: FaultServer, songs: list[bytes], tmp_path: Path
) -> None:
    url = server.add("/twice.mp3", songs[5])
    listing = write_csv(tmp_path / "l.csv", [{"url": url}, {"url": url}, {"url": url}])
    summary = acquire(catalog, [f"urls:{listing}"], plan="none", http=FAST, fingerprint=False)
    assert summary.counts == {"success": 1} and summary.repeated == 2
    assert server.hits["/twice.mp3"] == 1
