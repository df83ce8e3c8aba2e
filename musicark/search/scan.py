"""Catalogue rows for the search index, read through the catalogue reader.

A full build (`scan_catalog`) reads column-wise through `ColumnReader`: credits are read
once, sorted by (track, position) and joined to artist names in Arrow; tracks are then
read in stored (rowid) order in pages, and each page finds its credits by binary search.
No SQLite index look-up per track, no Python object per credit: the Python work left is
one tuple per track. An update (`rows_for`) reads the changed tracks by id through
`CatalogReader`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import orjson

from musicark.archive import Archive
from musicark.catalog.reader import CatalogReader, ColumnReader, TrackRecord

if TYPE_CHECKING:  # Arrow is imported by the whole-catalogue scan only: loading this
    # module (every `store.changed` does, to follow it) stays cheap
    import pyarrow as pa

# (id, title, artists, album_id, album, popularity, isrc, duration_ms, keys)
Row = tuple[int, str, str, int | None, str, int, str | None, int | None, list[str]]

_COLUMNS = (
    "rowid",
    "id",
    "title",
    "popularity",
    "isrc",
    "duration_ms",
    "external_id",
    "external_ids",
    "album_id",
    "album",
    "upc",
)
_DEFAULTS: dict[str, str | int] = {
    "title": "",
    "popularity": 0,
    "isrc": "",
    "duration_ms": -1,
    "external_id": "",
    "external_ids": "",
    "album_id": -1,
    "album": "",
    "upc": "",
}
_SEPARATORS = re.compile(r"[\s-]+")


def _key(value: str) -> str:
    """`normalize_key`, with a fast path for the common case (no spaces or hyphens)."""
    v = value.strip().lower()
    return _SEPARATORS.sub("", v) if (" " in v or "-" in v or "\t" in v) else v


def row_of(track: TrackRecord) -> Row:
    """The index row of one track read by id (an update)."""
    keys: list[str] = []
    for value in (track.isrc, track.upc, track.external_id):
        if value:
            keys.append(_key(value))
    if track.external_ids and track.external_ids != "{}":
        keys += _external_keys(track.external_ids)
    return (
        track.id,
        track.title or "",
        ", ".join(track.artist_names),
        track.album_id,
        track.album or "",
        int(track.popularity or 0),
        track.isrc,
        track.duration_ms,
        keys,
    )


def rows_for(reader: CatalogReader, ids: list[int]) -> list[Row]:
    """Index rows of the tracks of `ids` that exist, in id order."""
    found = reader.tracks(ids)
    return [row_of(found[t]) for t in sorted(found)]


def _key_column(values: pa.ChunkedArray | pa.Array) -> list[str]:
    """`analysis.normalize_key` over a column: no spaces or hyphens, lower case."""
    import pyarrow.compute as pc

    stripped = pc.replace_substring_regex(values, pattern=r"[\s-]+", replacement="")
    return list(pc.utf8_lower(stripped).to_pylist())


@dataclass
class _Credits:
    track_ids: np.ndarray  # sorted unique track ids with credits
    names: pa.Array  # "Artist A, Artist B" per entry of track_ids

    def lookup(self, ids: np.ndarray) -> list[str]:
        if len(self.track_ids) == 0:
            return [""] * len(ids)
        pos = np.searchsorted(self.track_ids, ids)
        pos = np.minimum(pos, len(self.track_ids) - 1)
        found = self.track_ids[pos] == ids
        import pyarrow as pa

        names = self.names.take(pa.array(pos)).to_pylist()
        return [n if ok else "" for n, ok in zip(names, found.tolist(), strict=True)]


def _load_credits(reader: ColumnReader) -> _Credits:
    import pyarrow as pa
    import pyarrow.compute as pc

    ta = reader.credits(("track_id", "position", "artist_id"))
    ar = reader.artists(("id", "name"), defaults={"name": ""})
    if ta.num_rows == 0:
        return _Credits(np.zeros(0, dtype=np.int64), pa.array([], pa.string()))
    ta = ta.take(pc.sort_indices(ta, [("track_id", "ascending"), ("position", "ascending")]))
    where = pc.index_in(ta.column("artist_id"), value_set=ar.column("id"))
    names = pc.fill_null(ar.column("name").take(where), "")
    tid = np.asarray(ta.column("track_id").to_numpy(), dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, tid[1:] != tid[:-1]])
    offsets = pa.array(np.r_[starts, len(tid)].astype(np.int32))
    flat = names.combine_chunks() if isinstance(names, pa.ChunkedArray) else names
    joined = pc.binary_join(pa.ListArray.from_arrays(offsets, flat), ", ")
    return _Credits(tid[starts], joined)


def _external_keys(text: str) -> list[str]:
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        return []
    keys: list[str] = []
    if isinstance(parsed, dict):
        for kind, value in parsed.items():
            if isinstance(value, str | int) and str(value).strip():
                v = "".join(str(value).split()).replace("-", "").lower()
                keys += (v, f"{''.join(str(kind).lower().split())}:{v}")
    return keys


def _rows(t: pa.Table, credits: _Credits) -> list[Row]:
    ids = np.asarray(t.column("id").to_numpy(), dtype=np.int64)
    artists = credits.lookup(ids)
    titles = t.column("title").to_pylist()
    albums = t.column("album").to_pylist()
    pops = t.column("popularity").to_pylist()
    isrcs = t.column("isrc").to_pylist()
    durations = t.column("duration_ms").to_pylist()
    album_ids = t.column("album_id").to_pylist()
    ext_json = t.column("external_ids").to_pylist()
    isrc_k = _key_column(t.column("isrc"))
    upc_k = _key_column(t.column("upc"))
    ext_k = _key_column(t.column("external_id"))
    rows: list[Row] = []
    for i, tid in enumerate(ids.tolist()):
        keys: list[str] = []
        if isrc_k[i]:
            keys.append(isrc_k[i])
        if upc_k[i]:
            keys.append(upc_k[i])
        if ext_k[i]:
            keys.append(ext_k[i])
        if ext_json[i] and ext_json[i] != "{}":
            keys += _external_keys(ext_json[i])
        rows.append(
            (
                tid,
                titles[i],
                artists[i],
                album_ids[i] if album_ids[i] != -1 else None,
                albums[i],
                pops[i],
                isrcs[i] or None,
                durations[i] if durations[i] != -1 else None,
                keys,
            )
        )
    return rows


@dataclass
class CatalogScan:
    seq: int  # last track_changes.seq included in what is read
    total: int  # tracks
    batches: Iterator[list[Row]]


@contextmanager
def scan_catalog(archive: Archive, *, batch: int = 100_000) -> Iterator[CatalogScan]:
    """Every track as index rows, read in one snapshot of the catalogue."""
    with ColumnReader(archive.catalog_path) as reader:  # one read transaction
        seq = reader.last_change()
        total = reader.track_count()
        credits = _load_credits(reader)

        def batches() -> Iterator[list[Row]]:
            last = -(2**63)
            while True:
                t = reader.track_page(_COLUMNS, after_rowid=last, limit=batch, defaults=_DEFAULTS)
                if t.num_rows == 0:
                    return
                last = int(t.column("rowid")[-1].as_py())
                yield _rows(t, credits)

        yield CatalogScan(seq, total, batches())
