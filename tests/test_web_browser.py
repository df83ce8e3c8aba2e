"""The pages in a real browser (Debian's chromium, headless, via Playwright) against the
real server (`musicark serve` in a subprocess on a free 127.0.0.1 port)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from playwright.sync_api import expect

from musicark.archive import Archive, init_archive
from musicark.catalog.importer import import_catalog
from musicark.catalog.synthetic import generate_catalog
from tests.audio import import_catalog_rows, make_file, track
from tests.net import serve_process
from tests.runner import Runner

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
XSS = "<script>window.__xss=1</script><img src=x onerror=window.__xss=2>"
RTL = "Quokka \u202egnos lanif"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Archive]]:
    root = tmp_path_factory.mktemp("browser")
    archive = init_archive(root / "archive")
    table = generate_catalog(500, seed=3)
    titles = table.column("title").to_pylist()
    titles[0], titles[1], titles[2] = "Wombat Serenade", XSS, RTL
    table = table.set_column(table.schema.get_field_index("title"), "title", pa.array(titles))
    pq.write_table(table, root / "cat.parquet")
    import_catalog(archive, [root / "cat.parquet"])
    # tracks with real audio, ingested and packed into a release with a torrent; the third
    # file is the first one's song at another bit rate (an acoustic duplicate)
    rows = [
        track("w1", "Wombat Nocturne", "Anna Berg", isrc="USABC2400101", duration_ms=6000),
        track("w2", "Wombat Lullaby", "Ben Costa", isrc="USABC2400102", duration_ms=6000),
        {  # kept in the dark archive: held, never played
            **track("w3", "Wombat Echo", "Cleo Dahl", isrc="USABC2400103", duration_ms=6000),
            "rights": "all-rights-reserved",
        },
    ]
    import_catalog_rows(archive, rows, root)
    (root / "in").mkdir()
    for i, (row, seed, rate) in enumerate(
        zip(rows, (300, 301, 300), (None, None, 64000), strict=True)
    ):
        artists = row["artists"]
        assert isinstance(artists, list)
        make_file(
            root / "in" / f"{i}.ogg",
            seed=seed,
            seconds=6.0,
            bitrate=rate,
            tags={
                "title": str(row["title"]),
                "artist": artists[0]["name"],
                "isrc": str(row["isrc"]),
            },
        )
    cli = Runner(archive)
    cli("ingest", root / "in", "--jobs", "1")
    cli("pack", "r1")
    cli("publish", "r1", "--no-catalogue")
    cli("plan", "--budget", "50MB")
    from musicark.swarm.history import ScrapeRecord, migrate, record_scrapes

    state = archive.connect_state()
    migrate(state)
    torrents = state.execute("SELECT name, infohash_v1 FROM torrents").fetchall()
    record_scrapes(
        state,
        [ScrapeRecord(ih, name, "http://127.0.0.1:1/announce", 7, 2, 11) for name, ih in torrents],
    )
    state.close()
    from musicark.search import update_index

    update_index(archive)
    with serve_process(archive.root, "--log-level", "warning") as (base, _port):
        yield base, archive


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    context = browser.new_context()  # type: ignore[attr-defined]
    pg = context.new_page()
    pg.set_default_timeout(10_000)
    dialogs: list[str] = []
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    pg.dialogs = dialogs
    yield pg
    context.close()


def test_search_as_you_type_then_track_page(server: tuple[str, Archive], page) -> None:  # type: ignore[no-untyped-def]
    base, _ = server
    page.goto(f"{base}/search")
    page.locator("#q").press_sequentially("wombat ser", delay=20)
    first = page.locator("#results li a.title").first
    expect(page.locator("#status")).to_have_text("1–1 of 1")
    expect(first).to_have_text("Wombat Serenade")
    expect(page).to_have_url(re.compile(r"q=wombat\+ser"))  # the address follows the query
    first.click()
    page.wait_for_url("**/tracks/*")
    assert page.locator("#track-title").inner_text() == "Wombat Serenade"
    facts = page.locator("dl.facts").inner_text()
    assert "ISRC" in facts and "Rights" in facts
    assert page.locator("#not-released").inner_text() == "Not released."


def test_search_track_magnet(server: tuple[str, Archive], page) -> None:  # type: ignore[no-untyped-def]
    base, _ = server
    page.goto(f"{base}/")
    page.locator("#q").press_sequentially("wombat noc", delay=20)
    first = page.locator("#results li a.title").first
    expect(page.locator("#status")).to_have_text("1–1 of 1")
    expect(first).to_have_text("Wombat Nocturne")
    first.click()
    page.wait_for_url("**/tracks/*")
    assert "vorbis" in page.locator("table.renditions").inner_text()
    magnet = page.locator("input.magnet-link").first.input_value()
    assert magnet.startswith("magnet:?xt=urn:btih:")
    assert page.locator("ul.locations code.path").first.inner_text().endswith(".ogg")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.locator("button.copy").first.click()
    expect(page.locator("button.copy").first).to_have_text("Copied")  # after the async copy
    assert page.evaluate("navigator.clipboard.readText()") == magnet


def test_duplicates_and_swarm_health(server: tuple[str, Archive], page) -> None:  # type: ignore[no-untyped-def]
    base, _ = server
    page.goto(f"{base}/search?q=wombat+nocturne")
    page.locator("#results li a.title").first.click()
    page.wait_for_url("**/tracks/*")
    duplicate = page.locator("ul.duplicates li a").first
    duplicate.click()
    page.wait_for_url("**/tracks/*")
    expect(page.locator("#track-title")).to_have_text("Wombat Echo")
    page.goto(f"{base}/releases")
    row = page.locator("table.torrents tbody tr").first
    cells = row.locator("td").all_inner_texts()
    assert cells[6:9] == ["7", "2", "11"]  # seeders, leechers, completed
    assert row.locator("input.magnet-link").input_value().startswith("magnet:?")


def test_paging_as_you_type(server: tuple[str, Archive], page) -> None:  # type: ignore[no-untyped-def]
    base, _ = server
    page.goto(f"{base}/search")
    page.locator("#q").fill("lo")
    page.locator("#next").wait_for()
    first_page = page.locator("#results li a.title").all_inner_texts()
    assert len(first_page) == 20
    page.locator("#next").click()
    page.locator("#prev").wait_for()
    assert page.locator("#status").inner_text().startswith("21–")
    assert page.locator("#results li a.title").all_inner_texts() != first_page


def test_hostile_titles_render_as_text(server: tuple[str, Archive], page) -> None:  # type: ignore[no-untyped-def]
    base, _ = server
    page.goto(f"{base}/search")
    page.locator("#q").press_sequentially("window xss onerror", delay=10)
    first = page.locator("#results li a.title").first
    expect(page.locator("#status")).to_have_text("1–1 of 1")
    expect(first).to_have_text(XSS)
    assert page.evaluate("window.__xss") is None
    first.click()
    page.wait_for_url("**/tracks/*")
    assert page.locator("#track-title").inner_text() == XSS
    assert page.evaluate("window.__xss") is None
    assert page.locator("main script, main img").count() == 0
    # the server-rendered results page escapes the same title
    page.goto(f"{base}/search?q=window+xss+onerror")
    assert page.locator("#results li a.title").first.inner_text() == XSS
    assert page.evaluate("window.__xss") is None
    # an RTL override stays inside its own isolated text, shown as is
    page.goto(f"{base}/search?q=quokka+gnos")
    link = page.locator("#results li a.title").first
    assert link.inner_text() == RTL
    assert link.locator("bdi").count() == 1
    assert page.dialogs == []


AXE = Path(__file__).resolve().parents[1] / "node_modules" / "axe-core" / "axe.min.js"


def _pages(base: str, archive: Archive) -> list[str]:
    """Every kind of page: search (empty and with results), a playable and a dark track,
    album, artist, coverage (with a plan), releases, health, and an error page."""
    hits = httpx.get(f"{base}/api/search", params={"q": "wombat"}).json()["hits"]
    by_title = {h["title"]: h for h in hits}
    playable, dark = by_title["Wombat Nocturne"], by_title["Wombat Echo"]
    artist = httpx.get(f"{base}/api/tracks/{playable['id']}").json()["artists"][0]["id"]
    return [
        "/",
        "/search?q=wombat",
        f"/tracks/{playable['id']}",
        f"/tracks/{dark['id']}",
        f"/albums/{playable['album_id']}",
        f"/artists/{artist}",
        "/coverage",
        "/releases",
        "/health",
        "/tracks/1",
    ]


@pytest.mark.skipif(not AXE.exists(), reason="axe-core is not installed (run `make setup`)")
def test_no_serious_accessibility_violations(server: tuple[str, Archive], browser) -> None:  # type: ignore[no-untyped-def]
    base, archive = server
    # axe is injected as an inline script, which the pages' CSP rightly forbids
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    found: dict[str, list[str]] = {}
    try:
        for path in _pages(base, archive):
            page.goto(f"{base}{path}")
            page.add_script_tag(path=str(AXE))
            result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
            bad = [
                f"{v['id']} ({v['impact']}): {v['nodes'][0]['html'][:120]}"
                for v in result["violations"]
                if v["impact"] in ("serious", "critical")
            ]
            if bad:
                found[path] = bad
    finally:
        context.close()
    assert not found, found


def test_results_reachable_and_playable_by_keyboard(server: tuple[str, Archive], page) -> None:  # type: ignore[no-untyped-def]
    base, _ = server
    page.goto(f"{base}/search")
    page.keyboard.type("wombat nocturne")
    expect(page.locator("#status")).to_have_text("1–1 of 1")  # the full query's answer
    expect(page.locator("#results button.play")).to_have_count(1)
    # Tab from the search box reaches the first result's play button, Enter plays it
    names = []
    for _ in range(12):
        page.keyboard.press("Tab")
        names.append(page.evaluate("document.activeElement.getAttribute('aria-label') || ''"))
        if names[-1] == "Play Wombat Nocturne":
            break
    assert names[-1] == "Play Wombat Nocturne", names
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => { const p = document.getElementById('player');"
        " return p && !p.paused && p.currentTime > 0.2; }",
        timeout=10_000,
    )
    assert page.locator("#now-playing-title").inner_text() == "Playing: Wombat Nocturne"
    # the result itself: Shift+Tab back to its title link, Enter opens the track
    for _ in range(6):
        page.keyboard.press("Shift+Tab")
        if page.evaluate("document.activeElement.classList.contains('title')"):
            break
    page.keyboard.press("Enter")
    page.wait_for_url("**/tracks/*")
    expect(page.locator("#track-title")).to_have_text("Wombat Nocturne")
    # the track page's own player is a native control, reachable by Tab
    assert page.locator("#track-audio").get_attribute("src", timeout=5_000).startswith("/tracks/")


def test_usable_at_360_pixels(server: tuple[str, Archive], browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base, archive = server
    context = browser.new_context(viewport={"width": 360, "height": 740})
    page = context.new_page()
    try:
        for path in _pages(base, archive):
            page.goto(f"{base}{path}")
            # nothing wider than the screen: wide tables scroll inside their own box
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 360, f"{path} is {width} px wide"
        page.goto(f"{base}/search?q=wombat")
        shot = Path(os.environ.get("MUSICARK_SCREENSHOTS", tmp_path)) / "search-360.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 5_000
        box = page.locator("#results li a.title").first.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360
        pages = _pages(base, archive)
        for name, path in (
            ("releases", "/releases"),
            ("album", pages[4]),
            ("track", pages[2]),
            ("coverage", "/coverage"),
        ):
            page.goto(f"{base}{path}")
            page.screenshot(path=str(shot.with_name(f"{name}-360.png")), full_page=True)
    finally:
        context.close()
