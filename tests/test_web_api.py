"""The JSON API and pages in-process: conformance to the OpenAPI description (schemathesis),
bounds, read-only behaviour, escaping of hostile catalogue strings, other parts' tables."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from starlette.applications import Starlette
from starlette.testclient import TestClient

from musicark.archive import Archive, init_archive
from musicark.web import create_app
from tests.web_data import LONG, XSS, make_web_archive


@pytest.fixture(scope="module")
def web_archive(tmp_path_factory: pytest.TempPathFactory) -> Archive:
    return make_web_archive(tmp_path_factory.mktemp("web"))


@pytest.fixture(scope="module")
def app(web_archive: Archive) -> Starlette:
    return create_app(web_archive)


@pytest.fixture
def client(app: Starlette) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _track_id(client: TestClient, query: str) -> str:
    hits = client.get("/api/search", params={"q": query}).json()["hits"]
    return str(hits[0]["id"])


def test_api_conforms_to_openapi(app: Starlette) -> None:
    api = schemathesis.openapi.from_asgi("/api/openapi.json", app)
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) == 7
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate()

        check()


def test_search_api_and_bounds(client: TestClient) -> None:
    ok = client.get("/api/search", params={"q": "love", "limit": 5, "offset": 5})
    assert ok.status_code == 200
    data = ok.json()
    assert data["limit"] == 5 and data["offset"] == 5 and len(data["hits"]) <= 5
    assert all(isinstance(h["id"], str) and h["id"].isdigit() for h in data["hits"])
    for params, fragment in (
        ({}, "missing"),
        ({"q": ""}, "missing or empty"),
        ({"q": "x" * 257}, "limit is 256"),
        ({"q": "love", "limit": "0"}, "limit"),
        ({"q": "love", "limit": "1000000"}, "limit"),
        ({"q": "love", "limit": "ten"}, "limit"),
        ({"q": "love", "offset": "-1"}, "offset"),
        ({"q": "love", "offset": "99999999999999999999"}, "offset"),
    ):
        bad = client.get("/api/search", params=params)
        assert bad.status_code == 400, params
        assert fragment in bad.json()["error"]
    # text the schema allows that can match nothing: no hits, never a 400
    for q in ("   ", "\x1e\x1e", "\u0301", "\t\x7f "):
        empty = client.get("/api/search", params={"q": q, "offset": 5799})
        assert empty.status_code == 200, q
        assert empty.json()["total"] == 0 and empty.json()["hits"] == []
    page = client.get("/search", params={"q": "love", "page": "0"})
    assert page.status_code == 400 and "page" in page.text


def test_ids_and_missing_things(client: TestClient) -> None:
    assert client.get("/api/tracks/abc").status_code == 400
    assert client.get("/api/tracks/-5").status_code == 400
    assert client.get("/api/tracks/1").status_code == 404
    assert client.get("/api/tracks/99999999999999999999").status_code == 400
    assert client.get("/api/tracks/9999999999999999999").status_code == 404
    assert client.get("/tracks/1").status_code == 404
    assert client.get("/static/../app.py").status_code == 404
    assert client.get("/static/%2e%2e%2fapp.py").status_code == 404
    assert client.get("/static/search.js").status_code == 200


def test_read_only(client: TestClient, web_archive: Archive) -> None:
    before = web_archive.catalog_path.read_bytes()
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        for url in ("/api/search?q=love", "/api/tracks/1", "/search"):
            assert client.request(method, url).status_code == 405
    client.get("/api/search", params={"q": "love"})
    assert web_archive.catalog_path.read_bytes() == before


def test_security_headers(client: TestClient) -> None:
    r = client.get("/")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"


def test_hostile_titles_are_escaped(client: TestClient) -> None:
    tid = _track_id(client, "window xss")
    page = client.get(f"/tracks/{tid}")
    assert page.status_code == 200
    assert "<script>window" not in page.text
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;&#34;&#39;&amp;" in page.text
    listing = client.get("/search", params={"q": "window xss"})
    assert "<script>window" not in listing.text and "&lt;script&gt;" in listing.text
    api = client.get(f"/api/tracks/{tid}").json()
    assert api["title"] == XSS
    # the JSON is served as JSON, never sniffed as HTML
    assert client.get(f"/api/tracks/{tid}").headers["content-type"].startswith("application/json")
    long_id = _track_id(client, "ω")
    assert LONG in client.get(f"/tracks/{long_id}").text


def test_store_tables_show_on_track_page(client: TestClient, web_archive: Archive) -> None:
    from musicark.store.schema import connect

    tid = _track_id(client, "love")
    conn = connect(web_archive)
    sha = "ab" * 32
    conn.execute(
        "INSERT OR REPLACE INTO blobs (sha256, size, container, codec, bitrate, lossless, added)"
        " VALUES (?, 4200000, 'ogg', 'vorbis', 160000, 0, '2026-01-01')",
        (sha,),
    )
    conn.execute(
        "INSERT OR REPLACE INTO renditions (sha256, track_id, match_method, confidence, preferred,"
        " preferred_reason) VALUES (?, ?, 'isrc', 1.0, 1, 'highest bit rate')",
        (sha, int(tid)),
    )
    conn.execute(
        "INSERT INTO audits (started, finished, level, ok, checked, bytes, changed, missing,"
        " untracked, result) VALUES ('a', 'b', 'full', 0, 10, 100, 1, 0, 0, ?)",
        (json.dumps({"changed": ["<b>x</b>.ogg"]}),),
    )
    conn.close()
    data = client.get(f"/api/tracks/{tid}").json()
    assert data["held"] is True and data["renditions"][0]["preferred"] is True
    assert data["renditions"][0]["bitrate"] == 160000 and data["released"] is False
    page = client.get(f"/tracks/{tid}").text
    assert "vorbis" in page and "160 kbit/s" in page and "Not released." in page
    # whole-archive counts are reused for a few seconds: a new app reads them afresh
    client = TestClient(create_app(web_archive), raise_server_exceptions=False)
    health = client.get("/health").text
    assert "Problems found." in health and "&lt;b&gt;x&lt;/b&gt;.ogg" in health
    assert "<strong>1</strong> changed" in health and "<strong>0</strong> missing" in health
    api = client.get("/api/health").json()
    assert api["holdings"]["tracks_held"] == 1
    assert api["full_audit"]["level"] == "full" and api["full_audit"]["changed"] == 1
    assert api["verification"]["blobs"] == 1 and api["verification"]["never_verified"] == 1
    full = health.split('id="full-audit"')[1].split("</p>")[0]
    assert "b: problems found" in full
    assert "some files were never verified" in health


def test_pages_with_nothing_yet(client: TestClient) -> None:
    for url in ("/coverage", "/releases", "/health"):
        r = client.get(url)
        assert r.status_code == 200, url
    assert "No plan yet" in client.get("/coverage").text
    assert "No torrents yet" in client.get("/releases").text


def test_no_index_yet(tmp_path: Path) -> None:
    archive = init_archive(tmp_path / "bare")
    with TestClient(create_app(archive), raise_server_exceptions=False) as c:
        assert c.get("/api/search", params={"q": "love"}).status_code == 503
        page = c.get("/search", params={"q": "love"})
        assert page.status_code == 200 and "not been built yet" in page.text
        assert c.get("/api/tracks/5").status_code == 404


def test_coverage_from_the_latest_plan(tmp_path: Path) -> None:
    from tests.runner import Runner

    archive = make_web_archive(tmp_path)
    Runner(archive)("plan", "--budget", "200MB")
    with TestClient(create_app(archive), raise_server_exceptions=False) as c:
        data = c.get("/api/coverage").json()
        plan = data["plan"]
        assert len(plan["curve"]) > 10
        shares = [p["listens_share"] for p in plan["curve"]]
        assert shares == sorted(shares) and 0.99 <= shares[-1] <= 1.0
        assert sum(t["tracks"] for t in plan["tiers"]) == 400
        assert plan["summary"]["selected.tracks"] > 0
        page = c.get("/coverage").text
        assert 'id="coverage-curve"' in page and "<polyline points=" in page
        assert 'id="tiers"' in page and "main" in page
        # read as a person reads it: no raw keys, shares as percentages, the knee marked
        assert "options.budget_bytes" not in page and "selected.tiers" not in page
        view = plan["overview"]
        assert view["budget_bytes"] == 200_000_000 and view["selected_tracks"] > 0
        sentence = page.split('id="plan-sentence"')[1].split("</p>")[0]
        assert "200 MB" in sentence and "most expected listens per byte first" in sentence
        assert f"{view['share_of_listens'] * 100:.1f} %" in sentence
        assert f"<strong>{view['selected_tracks']:,}</strong> tracks" in sentence
        assert 'id="knee-mark"' in page and view["knee"]["bytes"] > 0
        assert "still to acquire" in page and "dark archive" in page
        kinds = [r["kind"] for r in view["rights"]]
        assert kinds == ["redistributable", "dark archive"]
        assert sum(r["tracks"] for r in view["rights"]) == view["selected_tracks"]
        assert sum(t["selected"] for t in plan["tiers"]) == view["selected_tracks"]


def test_serve_refuses_an_address_in_use(run) -> None:  # type: ignore[no-untyped-def]
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("serve", "--port", str(port), check=False)
    assert result.exit_code == 2
    assert "musicark: error: cannot listen on 127.0.0.1:" in result.output
    assert "Traceback" not in result.output


def test_whole_archive_counts_are_reused(web_archive: Archive) -> None:
    """holdings and verification count whole tables (seconds at 256 M tracks): one count
    serves every request for SUMMARY_TTL seconds, however many threads ask at once."""
    import threading

    from musicark.web.data import ArchiveReader

    reader = ArchiveReader(web_archive)
    calls: list[int] = []

    def count() -> int:
        calls.append(1)
        return len(calls)

    threads = [threading.Thread(target=reader.cached, args=("n", count)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert reader.cached("n", count) == 1 and len(calls) == 1
    assert reader.cached("n", count, ttl=0.0) == 2
    assert reader.holdings()["tracks"] == 400
