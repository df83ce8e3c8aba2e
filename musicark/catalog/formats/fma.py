"""The Free Music Archive dataset's `tracks.csv` as a catalogue format (`--format fma`).

The file has a two-level header — a group row (`album`, `artist`, `set`, `track`), the
field row, then pandas' index-name row `track_id` — and quoted fields that span lines
(biographies, album notes), so it is read with the `csv` module, not line by line. Each
row becomes an interchange row of source `fma`: the track's title, duration, listens,
number, licence (mapped to `rights`; anything not recognised is `unknown`, so it stays
dark), its artist and album, and the external id `fma` = track id, which `acquire fma:`
uses to tie the audio (`000/000002.mp3`) to the track.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from musicark.catalog.formats.base import Chunk, ReadOptions, Sample, estimate_by_size
from musicark.catalog.licences import licence_rights


def read_tracks(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(track id, {"group/field": value}) from an FMA `tracks.csv`, lazily."""
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        try:
            groups = next(reader)
            fields = next(reader)
        except StopIteration:
            return
        names: list[str] = []
        group = ""
        for g, f in zip(groups, fields, strict=False):
            group = g or group
            names.append(f"{group}/{f}")
        for row in reader:
            if not row or not row[0].strip().isdigit():
                continue  # the `track_id,,,` index-name row, blank lines
            yield int(row[0]), dict(zip(names[1:], row[1:], strict=False))


def _int(value: str | None) -> int | None:
    try:
        return int(float(value)) if value not in (None, "") else None
    except ValueError:
        return None


def fma_row(track_id: int, row: dict[str, str]) -> dict[str, Any]:
    """One `tracks.csv` row ({"group/field": value}) as an interchange row."""
    licence = row.get("track/license") or None
    seconds = _int(row.get("track/duration"))
    out: dict[str, Any] = {
        "source": "fma",
        "id": str(track_id),
        "title": row.get("track/title") or f"track {track_id}",
        "duration_ms": seconds * 1000 if seconds is not None else None,
        "play_count": _int(row.get("track/listens")),
        "track_number": _int(row.get("track/number")),
        "rights": licence_rights(licence),
        "external_ids": {"fma": str(track_id)},
    }
    if licence and licence.startswith("http"):
        out["license_url"] = licence
    if row.get("artist/name"):
        artist_id = row.get("artist/id") or row["artist/name"]
        out["artists"] = [{"id": artist_id, "name": row["artist/name"], "role": "main"}]
    if row.get("album/id"):
        out["album_id"] = row["album/id"]
        out["album_title"] = row.get("album/title") or None
    if licence and not licence.startswith("http"):
        out["extra"] = orjson.dumps({"license": licence}).decode()
    return out


class FmaFormat:
    name = "fma"
    summary = "the Free Music Archive dataset's tracks.csv (two-level header)"
    source: str | None = "fma"

    def sniff(self, sample: Sample) -> int:
        line = sample.first_line
        return 95 if line.startswith(b",album,") and b",track" in line else 0

    def read(self, path: Path, options: ReadOptions) -> Iterator[Chunk]:
        from musicark.catalog.formats.readers import chunked

        def items() -> Iterator[tuple[int, bytes | None]]:
            for number, (track_id, row) in enumerate(read_tracks(Path(path)), start=4):
                yield number, orjson.dumps(fma_row(track_id, row))

        yield from chunked(items(), orjson.loads, options)

    def estimate_rows(self, path: Path) -> int:
        return estimate_by_size(path, 600)
