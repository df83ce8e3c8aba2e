"""Reading the whole catalogue for a full index build, column-wise (ADBC into Arrow).

Credits are read once, sorted by (track, position) and joined to artist names in Arrow;
tracks are then read in stored (rowid) order in batches, and each batch finds its
credits by binary search. No SQLite index look-up per track, no Python object per
credit: the Python work left is one tuple per track.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from musicark.archive import Archive
from musicark.search.index import Row

_TRACKS = """
SELECT t.rowid AS r, t.id AS id, coalesce(t.title, '') AS title,
       coalesce(t.popularity, 0) AS popularity, coalesce(t.isrc, '') AS isrc,
       coalesce(t.duration_ms, -1) AS duration_ms, coalesce(t.external_id, '') AS external_id,
       coalesce(t.external_ids, '') AS external_ids, coalesce(t.album_id, -1) AS album_id,
       coalesce(al.title, '') AS album, coalesce(al.upc, '') AS upc
FROM tracks t LEFT JOIN albums al ON al.id = t.album_id
WHERE t.rowid > ? ORDER BY t.rowid LIMIT ?
"""


def _key_column(values: pa.ChunkedArray | pa.Array) -> list[str]:
    """`analysis.normalize_key` over a column: no spaces or hyphens, lower case."""
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
        names = self.names.take(pa.array(pos)).to_pylist()
        return [n if ok else "" for n, ok in zip(names, found.tolist(), strict=True)]


def _load_credits(cur: Any) -> _Credits:
    cur.execute("SELECT track_id, position, artist_id FROM track_artists")
    ta = cur.fetch_arrow_table()
    cur.execute("SELECT id, coalesce(name, '') AS name FROM artists")
    ar = cur.fetch_arrow_table()
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
    import adbc_driver_sqlite.dbapi as adbc

    uri = f"file:{archive.catalog_path}?mode=ro"
    with adbc.connect(uri) as conn, conn.cursor() as cur:  # one read transaction
        cur.execute("SELECT coalesce(max(seq), 0) AS seq FROM track_changes")
        seq = int(cur.fetch_arrow_table().column("seq")[0].as_py())
        cur.execute("SELECT count(*) AS n FROM tracks")
        total = int(cur.fetch_arrow_table().column("n")[0].as_py())
        credits = _load_credits(cur)

        def batches() -> Iterator[list[Row]]:
            last = -(2**63)
            while True:
                cur.execute(_TRACKS, (last, batch))
                t = cur.fetch_arrow_table()
                if t.num_rows == 0:
                    return
                last = int(t.column("r")[-1].as_py())
                yield _rows(t, credits)

        yield CatalogScan(seq, total, batches())
