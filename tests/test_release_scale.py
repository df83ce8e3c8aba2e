"""`musicark pack` at a larger scale (slow): thousands of blobs, several folders, append-only.

The store's rows are written as the store part writes them (the contract tables in
state.sqlite and blobs at `blob_path`), so the test does not pay for decoding audio.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from musicark.archive import Archive
from musicark.catalog.importer import import_catalog
from musicark.catalog.synthetic import generate_catalog
from musicark.store import schema as store_schema
from musicark.store.blobs import blob_path
from musicark.torrent.metainfo import load_torrent
from tests.runner import Runner


def _fill_store(archive: Archive, track_ids: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    conn = store_schema.connect(archive)
    conn.execute("BEGIN")
    for track_id in track_ids:
        data = rng.integers(0, 256, int(rng.integers(2_000, 60_000)), dtype=np.uint8).tobytes()
        sha = hashlib.sha256(data).hexdigest()
        path = blob_path(archive, sha)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        conn.execute(
            "INSERT INTO blobs (sha256, size, container, codec, added) VALUES (?, ?, 'ogg',"
            " 'vorbis', '2026-01-01T00:00:00Z')",
            (sha, len(data)),
        )
        conn.execute(
            "INSERT INTO renditions (sha256, track_id, match_method, confidence, preferred)"
            " VALUES (?, ?, 'isrc', 1.0, 1)",
            (sha, track_id),
        )
    conn.execute("COMMIT")
    conn.close()


@pytest.mark.slow
def test_pack_thousands_of_files(archive: Archive, run: Runner, tmp_path: Path) -> None:
    catalog = tmp_path / "catalogue.parquet"
    pq.write_table(generate_catalog(6000, seed=5, rights={"cc0": 1.0}), catalog)
    import_catalog(archive, [catalog])
    ids = [r[0] for r in archive.connect_catalog().execute("SELECT id FROM tracks ORDER BY id")]
    _fill_store(archive, ids[:4000], seed=1)
    started = time.perf_counter()
    out = json.loads(
        run("pack", "big", "--max-files", "1500", "--target-size", "30MB", "--json").output
    )
    first_pack = time.perf_counter() - started
    assert out["files"] == 4000 and len(out["folders"]) >= 3
    torrents = {
        p.name: p.read_bytes() for p in (archive.releases_dir / "big" / "torrents").glob("*")
    }
    for folder in out["folders"]:
        t = load_torrent(archive.root / folder["torrent_path"])
        assert len(t.files) <= 1500 and t.total_size <= 30_000_000
    _fill_store(archive, ids[4000:], seed=2)
    more = json.loads(
        run("pack", "big", "--max-files", "1500", "--target-size", "30MB", "--json").output
    )
    assert more["files"] == 2000 and more["already_released"] == 4000
    for name, data in torrents.items():
        assert (archive.releases_dir / "big" / "torrents" / name).read_bytes() == data
    assert first_pack < 120
