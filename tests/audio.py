"""Test audio and catalogues: seeded files from musicark.store.synthetic, catalogue rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from musicark.store.synthetic import FORMATS, encode, make_file, song, tag

__all__ = ["FORMATS", "encode", "import_catalog_rows", "make_file", "song", "tag", "track"]


def import_catalog_rows(archive: object, rows: Sequence[Mapping[str, object]], tmp: Path) -> None:
    """Import interchange-format rows (JSONL) into the archive's catalogue."""
    import orjson

    from musicark.catalog.importer import import_catalog

    path = tmp / "catalogue.jsonl"
    path.write_bytes(b"".join(orjson.dumps(dict(r)) + b"\n" for r in rows))
    import_catalog(archive, [path], source="test")  # type: ignore[arg-type]


def track(
    tid: str,
    title: str,
    artist: str,
    *,
    isrc: str | None = None,
    duration_ms: int = 8000,
    mbid: str | None = None,
) -> dict[str, object]:
    row: dict[str, object] = {
        "source": "test",
        "id": tid,
        "title": title,
        "isrc": isrc,
        "duration_ms": duration_ms,
        "popularity": 50,
        "rights": "cc0",
        "artists": [{"id": f"ar-{artist}", "name": artist, "role": "main"}],
        "album_id": "al1",
        "album_title": "Test Album",
    }
    if mbid:
        row["external_ids"] = {"musicbrainz": mbid}
    return row
