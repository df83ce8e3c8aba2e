"""MusicBrainz JSON data dump: recordings as interchange rows.

Only CC0 core data is kept. Fields MusicBrainz publishes under other licences
(annotation, rating, tags, genres, user data) are dropped on reading.
"""

from __future__ import annotations

from typing import Any

from musicark.catalog.formats.interchange import RowError

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
