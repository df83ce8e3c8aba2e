"""MusicBrainz JSON data dump: recordings as interchange rows.

Only CC0 core data is kept. Fields MusicBrainz publishes under other licences
(annotation, rating, tags, genres, user data) are dropped on reading.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from musicark.catalog.formats.base import Chunk, ReadOptions
from musicark.catalog.formats.compression import open_decompressed
from musicark.catalog.formats.interchange import RowError
from musicark.catalog.formats.readers import chunked, json_lines, parse_json
from musicark.errors import FormatError

SOURCE = "musicbrainz"
# Not CC0 in the MusicBrainz dumps: never stored.
NON_CC0 = frozenset(
    {"annotation", "rating", "tags", "genres", "user-tags", "user-genres", "user-rating"}
)
_MAPPED = frozenset({"id", "title", "length", "isrcs", "artist-credit"})


def recording_to_row(rec: dict[str, Any]) -> dict[str, Any]:
    """One recording object from the dump as an interchange row (before coercion)."""
    if not isinstance(rec, dict):
        raise RowError("expected a JSON object")
    isrcs = rec.get("isrcs") or []
    if not isinstance(isrcs, list):
        raise RowError("isrcs: expected a list")
    credits = rec.get("artist-credit") or []
    if not isinstance(credits, list):
        raise RowError("artist-credit: expected a list")
    artists = []
    for credit in credits:
        if not isinstance(credit, dict):
            raise RowError("artist-credit: expected objects")
        artist = credit.get("artist") or {}
        artists.append(
            {
                "id": artist.get("id"),
                "name": artist.get("name") or credit.get("name"),
                "role": "main",
            }
        )
    extra = {key: value for key, value in rec.items() if key not in _MAPPED and key not in NON_CC0}
    phrase = "".join(
        f"{c.get('name', '')}{c.get('joinphrase', '')}" for c in credits if isinstance(c, dict)
    )
    if phrase:
        extra["artist-credit-phrase"] = phrase
    if len(isrcs) > 1:
        extra["isrcs"] = isrcs
    row: dict[str, Any] = {
        "source": SOURCE,
        "id": rec.get("id"),
        "title": rec.get("title"),
        "duration_ms": rec.get("length"),
        "isrc": isrcs[0] if isrcs else None,
        "artists": artists,
        "external_ids": {"musicbrainz_recording": rec["id"]}
        if isinstance(rec.get("id"), str)
        else None,
        "extra": extra or None,
    }
    return row


def read_musicbrainz(path: Path, options: ReadOptions) -> Iterator[Chunk]:
    def parse(raw: bytes) -> dict[str, Any]:
        return recording_to_row(parse_json(raw))

    with open_decompressed(path) as stream:
        head = stream.read(512)
    if len(head) > 262 and head[257:262] == b"ustar":
        with tarfile.open(path, mode="r|*") as tar:
            for member in tar:
                if member.isfile() and member.name.rsplit("/", 1)[-1] == "recording":
                    f = tar.extractfile(member)
                    assert f is not None
                    yield from chunked(json_lines(f, options.max_line_bytes), parse, options)
                    return
        raise FormatError(f"{path}: a tar file without mbdump/recording")
    with open_decompressed(path) as stream:
        yield from chunked(json_lines(stream, options.max_line_bytes), parse, options)
