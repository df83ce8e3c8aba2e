"""Small catalogue inputs written as real files, for the catalogue tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson


def track(i: int, **over: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "source": "test",
        "id": f"t{i}",
        "title": f"Song {i} café",
        "isrc": f"USABC{i:07d}",
        "duration_ms": 180_000 + i,
        "popularity": i % 101,
        "rights": "cc0",
        "artists": [{"id": f"a{i % 7}", "name": f"Artist {i % 7}", "role": "main"}],
        "album_id": f"al{i % 5}",
        "album_title": f"Album {i % 5}",
        "genres": ["folk"],
    }
    row.update(over)
    return row


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def dump_catalog(archive: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every catalogue table's rows, sorted, for comparing two catalogues."""
    conn = archive.connect_catalog(readonly=True)
    try:
        return {
            t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
            for t in ("sources", "tracks", "artists", "albums", "track_artists", "external_ids")
        }
    finally:
        conn.close()
