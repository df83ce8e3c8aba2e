"""The built-in sources against real data shapes: `ia:` against a loopback server in the
Internet Archive's API shape, `fma:` against a dataset laid out like the real one, `dir:`
on a folder, and a plan-ordered run."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from musicark.acquire import HttpSettings, acquire, licence_rights
from musicark.archive import Archive
from musicark.catalog.formats.fma import read_tracks
from musicark.catalog.ids import entity_id
from musicark.cli import cli
from tests.acquire_server import Fault, FaultServer, Running
from tests.audio import import_catalog_rows, make_file, track
from tests.runner import Runner

FAST = HttpSettings(concurrency=4, backoff=0.01, read_timeout=2.0, retries=3)


def sha(data: bytes, kind: str = "sha256") -> str:
    return hashlib.new(kind, data).hexdigest()


@pytest.fixture
def server() -> Iterator[FaultServer]:
    app = FaultServer()
    with Running(app):
        yield app


def provenance(archive: Archive) -> dict[str, tuple[str | None, str | None]]:
    conn = sqlite3.connect(archive.state_path)
    rows = conn.execute("SELECT offer_key, rights, licence FROM acquire_provenance").fetchall()
    conn.close()
    return {k: (r, lic) for k, r, lic in rows}


def test_licences_map_to_rights() -> None:
    assert licence_rights("https://creativecommons.org/licenses/by-nc-sa/3.0/") == "cc-by-nc-sa"
    assert licence_rights("http://creativecommons.org/publicdomain/zero/1.0/") == "cc0"
    assert licence_rights("https://creativecommons.org/publicdomain/mark/1.0/") == "public-domain"
    assert (
        licence_rights("Attribution-NonCommercial-NoDerivatives 4.0 International") == "cc-by-nc-nd"
    )
    assert licence_rights("Attribution 4.0 International") == "cc-by"
    assert licence_rights("http://example.com/all-rights") == "unknown"
    assert licence_rights(None) == "unknown"


def test_ia_search_metadata_download(
    archive: Archive, server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import musicark.acquire.ia as ia

    monkeypatch.setattr(ia, "ROWS", 1)  # one identifier per page: paging is exercised
    flac = make_file(tmp_path / "a.flac", seed=1, seconds=4).read_bytes()
    mp3 = make_file(tmp_path / "a.mp3", seed=1, seconds=4).read_bytes()
    other = make_file(tmp_path / "b.mp3", seed=2, seconds=4).read_bytes()
    bad = make_file(tmp_path / "c.mp3", seed=3, seconds=4).read_bytes()
    items = {
        "shellac1": (
            "https://creativecommons.org/publicdomain/mark/1.0/",
            [
                {"name": "side a.flac", "source": "original", "format": "Flac", "body": flac},
                {
                    "name": "side a.mp3",
                    "source": "derivative",
                    "format": "VBR MP3",
                    "original": "side a.flac",
                    "body": mp3,
                },
                {"name": "cover.png", "source": "original", "format": "PNG", "body": b"png"},
            ],
        ),
        "netlabel2": (
            "http://example.com/license",
            [{"name": "b.mp3", "source": "original", "format": "VBR MP3", "body": other}],
        ),
        "tampered3": (
            "https://creativecommons.org/licenses/by/4.0/",
            [{"name": "c.mp3", "source": "original", "format": "VBR MP3", "body": bad}],
        ),
    }
    ids = [*sorted(items), "dark4"]

    def search(query: str) -> dict[str, object]:
        q = parse_qs(query)
        assert q["q"] == ["collection:test"] and q["output"] == ["json"]
        page = int(q["page"][0])
        docs = [{"identifier": i} for i in ids[page - 1 : page]]
        return {"response": {"numFound": len(ids), "start": page - 1, "docs": docs}}

    server.api["/advancedsearch.php"] = search
    server.api["/metadata/dark4"] = {"is_dark": True}
    for ident, (licence, files) in items.items():
        listed = []
        for f in files:
            body = f.pop("body")
            assert isinstance(body, bytes)
            server.add(f"/download/{ident}/{f['name']}".replace(" ", "%20"), body)
            server.files[f"/download/{ident}/{f['name']}"] = server.files.pop(
                f"/download/{ident}/{f['name']}".replace(" ", "%20")
            )
            listed.append(
                {**f, "size": str(len(body)), "md5": sha(body, "md5"), "sha1": sha(body, "sha1")}
            )
        server.api[f"/metadata/{ident}"] = {
            "metadata": {"identifier": ident, "licenseurl": licence},
            "files": listed,
        }
    server.faults["/download/tampered3/c.mp3"] = Fault("flip", times=99)

    summary = acquire(
        archive,
        ["ia:collection:test"],
        plan="none",
        http=FAST,
        fingerprint=False,
        ia_base_url=server.base,
    )
    assert summary.counts == {"success": 2, "error_checksum": 1}, summary.to_dict()
    prov = provenance(archive)
    assert prov["ia:shellac1/side a.flac"][0] == "public-domain"
    assert prov["ia:netlabel2/b.mp3"][0] == "unknown"  # stays dark
    assert server.hits["/download/shellac1/side a.mp3"] == 0  # the derivative is not fetched
    assert server.hits["/download/shellac1/cover.png"] == 0
    assert any("dark4" in p.get("problem", "") for p in summary.problems)


def write_fma(root: Path, tracks: list[tuple[int, str, str, str, bytes | None]]) -> Path:
    """An FMA-shaped dataset: fma_metadata/tracks.csv (two-level header) and fma_small/."""
    meta = root / "fma_metadata"
    meta.mkdir(parents=True)
    groups = [
        "",
        "album",
        "album",
        "artist",
        "artist",
        "set",
        "set",
        "track",
        "track",
        "track",
        "track",
    ]
    fields = [
        "",
        "id",
        "title",
        "id",
        "name",
        "split",
        "subset",
        "duration",
        "license",
        "title",
        "number",
    ]
    lines = [",".join(groups), ",".join(fields), "track_id" + "," * (len(groups) - 1)]
    for tid, title, artist, licence, body in tracks:
        lines.append(f'{tid},1,"Album",7,"{artist}",training,small,6,"{licence}","{title}",1')
        if body is not None:
            path = root / "fma_small" / f"{tid // 1000:03d}" / f"{tid:06d}.mp3"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
    (meta / "tracks.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_fma_dataset(archive: Archive, tmp_path: Path) -> None:
    a = make_file(tmp_path / "x.mp3", seed=11, seconds=4).read_bytes()
    b = make_file(tmp_path / "y.mp3", seed=12, seconds=4).read_bytes()
    root = write_fma(
        tmp_path / "fma",
        [
            (2, "Food", "AWOL", "Attribution-NonCommercial-ShareAlike 3.0 International", a),
            (1003, "Second, with comma", "Kurt Vile", "Attribution 4.0 International", b),
            (5, "Not in this subset", "Nobody", "Attribution 4.0 International", None),
        ],
    )
    assert [t for t, _ in read_tracks(root / "fma_metadata" / "tracks.csv")] == [2, 1003, 5]
    rows = [
        {
            **track("fma-2", "Food", "AWOL", duration_ms=4000),
            "external_ids": {"fma": "2"},
            "rights": "unknown",
        },
        track("fma-1003", "Second, with comma", "Kurt Vile", duration_ms=4000),
    ]
    import_catalog_rows(archive, rows, tmp_path)
    summary = acquire(archive, [f"fma:{root}"], plan="none", fingerprint=False)
    assert summary.counts == {"success": 2}, summary.to_dict()
    conn = sqlite3.connect(archive.state_path)
    got = dict(conn.execute("SELECT offer_key, track_id FROM acquire_provenance"))
    assert got["fma:track/2"] == entity_id("test", "track", "fma-2")  # by the FMA id
    assert got["fma:track/1003"] == entity_id("test", "track", "fma-1003")  # by artist + title
    assert provenance(archive)["fma:track/2"][0] == "cc-by-nc-sa"


def test_dir_mirror_matched_by_tags_and_cli(archive: Archive, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror" / "sub"
    mirror.mkdir(parents=True)
    make_file(
        mirror / "one.ogg",
        seed=21,
        seconds=4,
        tags={"title": "One", "artist": "A", "isrc": "GBAAA0100001"},
    )
    make_file(mirror / "two.mp3", seed=22, seconds=4, tags={"title": "Two", "artist": "A"})
    (mirror / "notes.txt").write_text("not audio")
    import_catalog_rows(
        archive, [track("d1", "One", "A", isrc="GBAAA0100001", duration_ms=4000)], tmp_path
    )
    run = Runner(archive)
    out = run("acquire", f"dir:{mirror.parent}", "--plan", "none", "--json", "--no-fingerprint")
    import orjson

    data = orjson.loads(out.output)
    assert data["counts"] == {"success": 2} and data["unmatched_offers"] == 2
    conn = sqlite3.connect(archive.state_path)
    matched = conn.execute("SELECT count(*) FROM renditions WHERE track_id IS NOT NULL").fetchone()[
        0
    ]
    assert matched == 1
    again = run("acquire", f"dir:{mirror.parent}", "--plan", "none")
    assert "2 done by earlier runs" in again.output
    listed = run("sources")
    assert "urls:FILE" in listed.output and "ia:QUERY" in listed.output
    bad = run("acquire", "nope:x", check=False)
    assert bad.exit_code == 2 and "unknown source" in bad.output
    missing = run("acquire", "urls:/no/such/file", check=False)
    assert missing.exit_code == 2 and "no such file" in missing.output


def test_plan_order_and_not_available(
    archive: Archive, server: FaultServer, tmp_path: Path
) -> None:
    rows = [
        {
            **track(f"p{i}", f"Plan {i}", "P", isrc=f"USPPP000000{i}", duration_ms=4000),
            "popularity": 90 - i,
        }
        for i in range(4)
    ]
    import_catalog_rows(archive, rows, tmp_path)
    run = Runner(archive)
    run("plan", "--budget", "1GB")
    bodies = [
        make_file(tmp_path / f"p{i}.mp3", seed=30 + i, seconds=4).read_bytes() for i in range(4)
    ]
    lines = ["url,isrc,size"]
    for i in (3, 1, 0):  # listed out of rank order; p2 offered by nobody
        url = server.add(f"/p{i}.mp3", bodies[i])
        lines.append(f"{url},USPPP000000{i},{len(bodies[i])}")
    listing = tmp_path / "l.csv"
    listing.write_text("\n".join(lines) + "\n")
    dry = acquire(archive, [f"urls:{listing}"], http=FAST, dry_run=True)
    assert dry.mode == "plan"
    order = [p["offers"][0]["where"].rsplit("/", 1)[1] for p in dry.planned]
    assert order == ["p0.mp3", "p1.mp3", "p3.mp3"]  # the plan's rank order
    summary = acquire(archive, [f"urls:{listing}"], http=FAST, limit=2, fingerprint=False)
    assert summary.counts == {"success": 2, "error_not_available": 1}, summary.to_dict()
    assert server.hits["/p3.mp3"] == 0
    rest = acquire(archive, [f"urls:{listing}"], http=FAST, fingerprint=False)
    assert rest.counts["success"] == 1 and rest.unchanged == 2
    assert cli is not None


def test_fma_audio_still_in_its_zip(archive: Archive, tmp_path: Path) -> None:
    import shutil
    import zipfile

    body = make_file(tmp_path / "z.mp3", seed=13, seconds=4).read_bytes()
    root = write_fma(tmp_path / "fma", [(7, "Zipped", "Z", "Attribution 4.0 International", body)])
    with zipfile.ZipFile(root / "fma_small.zip", "w") as z:
        z.write(root / "fma_small" / "000" / "000007.mp3", "fma_small/000/000007.mp3")
    shutil.rmtree(root / "fma_small")
    summary = acquire(archive, [f"fma:{root}"], plan="none", fingerprint=False)
    assert summary.counts == {"success": 1}, summary.to_dict()
    conn = sqlite3.connect(archive.state_path)
    assert conn.execute("SELECT sha256 FROM blobs").fetchone()[0] == sha(body)


def test_fma_catalogue_import_then_acquire(archive: Archive, tmp_path: Path) -> None:
    a = make_file(tmp_path / "x.mp3", seed=14, seconds=4).read_bytes()
    root = write_fma(
        tmp_path / "fma",
        [
            (2, "Food", "AWOL", "Attribution-NonCommercial-ShareAlike 3.0 International", a),
            (3, "Electric Ave", "AWOL", "http://example.com/nope", None),
        ],
    )
    csv_path = root / "fma_metadata" / "tracks.csv"
    text = csv_path.read_text().splitlines()
    text[3] = text[3].replace('"Food"', '"Food, with a\nline break"')  # a quoted multi-line field
    csv_path.write_text("\n".join(text) + "\n")
    run = Runner(archive)
    run("catalog", "import", str(csv_path))  # the format is recognised from its header
    conn = sqlite3.connect(archive.catalog_path)
    rows = dict(conn.execute("SELECT external_id, rights FROM tracks"))
    assert rows == {"2": "cc-by-nc-sa", "3": "unknown"}
    summary = acquire(archive, [f"fma:{root}"], plan="none", fingerprint=False)
    assert summary.counts == {"success": 1}
    state = sqlite3.connect(archive.state_path)
    got = state.execute("SELECT track_id FROM acquire_provenance").fetchone()[0]
    assert got == entity_id("fma", "track", "2")


def test_a_third_party_source_through_the_protocol(
    archive: Archive, server: FaultServer, tmp_path: Path
) -> None:
    from musicark.acquire import BaseSource, Offer, register
    from musicark.acquire.sources import SOURCES, SourceContext
    from musicark.errors import UsageError

    class M3uSource(BaseSource):
        name = "m3u"
        needs = "FILE: an M3U playlist of http(s) URLs"
        summary = "the URLs of a playlist"

        def __init__(self, argument: str, *, context: SourceContext) -> None:
            super().__init__(argument, context=context)
            if not Path(argument).is_file():
                raise UsageError(f"m3u: no such file {argument}")

        def offers(self) -> Iterator[Offer]:
            for line in Path(self.argument).read_text().splitlines():
                if line.startswith(("http://", "https://")):
                    yield Offer(source=self.name, key=line, url=line, crawled=True)

    register(M3uSource)
    try:
        body = make_file(tmp_path / "m.mp3", seed=51, seconds=4).read_bytes()
        playlist = tmp_path / "list.m3u"
        playlist.write_text(f"#EXTM3U\n{server.add('/m.mp3', body)}\n")
        out = Runner(archive)("sources")
        assert "m3u:FILE" in out.output
        summary = acquire(archive, [f"m3u:{playlist}"], plan="none", http=FAST, fingerprint=False)
        assert summary.counts == {"success": 1}
        assert server.hits["/robots.txt"] == 1  # crawled: robots.txt asked first
    finally:
        SOURCES.unregister("m3u")


def test_budget_and_dir_in_plan_order(archive: Archive, tmp_path: Path) -> None:
    rows = [
        {
            **track(f"b{i}", f"Budget {i}", "B", isrc=f"USBBB000000{i}", duration_ms=4000),
            "popularity": 90 - i,
        }
        for i in range(3)
    ]
    import_catalog_rows(archive, rows, tmp_path)
    Runner(archive)("plan", "--budget", "1GB")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    sizes = []
    for i in range(3):  # named against rank order: the plan, not the folder, decides
        path = make_file(
            mirror / f"{9 - i}.mp3",
            seed=60 + i,
            seconds=4,
            tags={"isrc": f"USBBB000000{i}", "title": f"Budget {i}", "artist": "B"},
        )
        sizes.append(path.stat().st_size)
    budget = str(sizes[0] + sizes[1] + 10)
    summary = acquire(archive, [f"dir:{mirror}"], max_bytes=int(budget), fingerprint=False)
    assert summary.mode == "plan"
    assert summary.counts == {"success": 2, "skipped_low_priority": 1}, summary.to_dict()
    conn = sqlite3.connect(archive.state_path)
    low = conn.execute(
        "SELECT track_id FROM acquire_ledger WHERE status = 'skipped_low_priority'"
    ).fetchone()[0]
    assert low == entity_id("test", "track", "b2")  # the lowest-ranked track waits
    rest = acquire(archive, [f"dir:{mirror}"], fingerprint=False)
    assert rest.counts == {"success": 1} and rest.unchanged == 2
