"""`pack` takes a rendition's rights from the licence it was acquired under when the
catalogue has none: end to end through `acquire urls:` against a server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from musicark.acquire import HttpSettings, acquire, licence_rights
from musicark.archive import Archive
from musicark.catalog.ids import entity_id
from musicark.release.manifest import read_jsonl_zst
from musicark.release.pack import pack
from tests.acquire_server import FaultServer, Running
from tests.audio import import_catalog_rows, make_file, track

FAST = HttpSettings(concurrency=2, per_host=2, backoff=0.01, read_timeout=2.0, retries=2)
CC_BY = "https://creativecommons.org/licenses/by/4.0/"
ARR = "All rights reserved"

# track -> (catalogue rights, licence the source states)
CASES = {
    "open": ("unknown", CC_BY),  # catalogue silent, CC licence: public
    "closed": ("unknown", ARR),  # catalogue silent, not redistributable: dark
    "silent": ("unknown", None),  # neither says anything: dark
    "cat-arr": ("all-rights-reserved", CC_BY),  # the catalogue wins: dark
    "cat-cc0": ("cc0", ARR),  # the catalogue wins: public
}


def tid(external: str) -> int:
    return entity_id("test", "track", external)


@pytest.fixture
def server() -> Iterator[FaultServer]:
    app = FaultServer()
    with Running(app):
        yield app


@pytest.fixture
def acquired(archive: Archive, server: FaultServer, tmp_path: Path) -> Archive:
    rows = []
    lines = ["url,track_id,size,sha256,licence"]
    for i, (name, (rights, licence)) in enumerate(CASES.items()):
        row = track(name, f"Song {name}", "Artist", duration_ms=2000)
        row["rights"] = rights
        rows.append(row)
        body = make_file(tmp_path / f"{name}.mp3", seed=300 + i, seconds=2.0).read_bytes()
        url = server.add(f"/{name}.mp3", body)
        sha = hashlib.sha256(body).hexdigest()
        lines.append(f"{url},{tid(name)},{len(body)},{sha},{licence or ''}")
    import_catalog_rows(archive, rows, tmp_path)
    listing = tmp_path / "list.csv"
    listing.write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = acquire(archive, [f"urls:{listing}"], plan="none", http=FAST, fingerprint=False)
    assert summary.counts == {"success": len(CASES)}, summary.to_dict()
    return archive


def _released(archive: Archive, release: str) -> dict[int, str]:
    conn = sqlite3.connect(archive.state_path)
    rows = conn.execute(
        "SELECT f.track_id, f.rights FROM release_files f JOIN torrents t ON t.name = f.torrent"
        " WHERE t.release = ?",
        (release,),
    ).fetchall()
    conn.close()
    return dict(rows)


def test_acquired_licence_sets_rights_when_the_catalogue_has_none(acquired: Archive) -> None:
    out = pack(acquired, "pub", target_size="50MB")
    assert out.withheld_rights == 3
    assert _released(acquired, "pub") == {tid("open"): "cc-by", tid("cat-cc0"): "cc0"}
    [folder] = out.folders
    manifest = acquired.releases_dir / "pub" / "manifests" / f"{folder.name}.jsonl.zst"
    records = read_jsonl_zst(manifest)
    assert {r["track_id"]: r["rights"] for r in records} == _released(acquired, "pub")
    # --include-restricted packs the rest, each with the rights that were used
    out = pack(acquired, "all", target_size="50MB", include_restricted=True)
    assert out.withheld_rights == 0
    assert _released(acquired, "all") == {
        tid("closed"): "all-rights-reserved",
        tid("silent"): "unknown",
        tid("cat-arr"): "all-rights-reserved",
    }


def test_all_rights_reserved_licence_names_its_rights() -> None:
    assert licence_rights("All Rights Reserved") == "all-rights-reserved"
    assert licence_rights("(c) 2020, all rights reserved.") == "all-rights-reserved"
    assert licence_rights("Some rights reserved") == "unknown"
