"""Reading what a plan needs from the catalogue (and the store) into compact numpy columns.

The catalogue is read through `musicark.catalog.reader.ColumnReader` (SQLite query
results straight into Arrow), in record batches that are turned into numpy columns one at
a time, so the whole tracks table never sits in memory as Arrow. Joins (credits to artists, tracks to albums, renditions to
tracks) are hash look-ups in Arrow (`pyarrow.compute.index_in`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from musicark.archive import Archive
from musicark.catalog.ids import hash_strings
from musicark.catalog.reader import ColumnReader
from musicark.errors import CatalogError, MusicarkError
from musicark.progress import Progress, ProgressCallback, report

BATCH_ROWS = 1 << 18
# Arrow work of a plan allocates from the system allocator, which (see `map_large_allocations`)
# hands large freed buffers straight back; a caching pool would keep them resident.
POOL = pa.system_memory_pool()
TRACK_COLUMNS = (
    "id",
    "duration_ms",
    "popularity",
    "play_count",
    "album_id",
    "isrc",
    "redistributable",
)


@dataclass
class CatalogColumns:
    """One entry per catalogue track, in the order the catalogue returned them.

    Unknown values are -1 (isrc_key 0 = no ISRC; held_size -1 = not held). Integer widths
    are the smallest that hold the values (any integer dtype is accepted).
    """

    track_id: np.ndarray  # int64
    duration_ms: np.ndarray  # int32
    popularity: np.ndarray  # int16
    play_count: np.ndarray  # int64
    isrc_key: np.ndarray  # int64
    redistributable: np.ndarray  # bool
    artist_popularity: np.ndarray  # int16, highest over credited artists
    artist_followers: np.ndarray  # int32 (clipped), highest over credited artists
    album_popularity: np.ndarray  # int16
    held_size: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.track_id)


def _ints(col: pa.Array | pa.ChunkedArray, dtype: type[np.integer]) -> np.ndarray:
    """An integer column as numpy `dtype`, nulls as -1, values clipped to the dtype."""
    if col.null_count:
        col = pc.coalesce(col, -1, memory_pool=POOL)
    arr = np.asarray(col.to_numpy(), dtype=np.int64)
    info = np.iinfo(dtype)
    if dtype is not np.int64 and len(arr) and (arr.max() > info.max or arr.min() < info.min):
        arr = np.clip(arr, info.min, info.max)
    # Always a copy: a zero-copy view would keep the whole record batch it came from alive.
    return np.array(arr, dtype=dtype, copy=True)


def _int_column(table: pa.Table, name: str) -> np.ndarray:
    return _ints(table.column(name), np.int64)


_HI_ADD_LOW = np.uint64(0x5050505050505050)  # byte + 0x50 sets bit 7 iff byte >= 0x30
_HI_ADD_HIGH = np.uint64(0x2020202020202020)  # byte + 0x20 sets bit 7 iff byte >= 0x60
_LO_ADD_HIGH = np.uint64(0x40404040)  # byte + 0x40 sets bit 7 iff byte >= 0x40
_B7 = np.uint64(0x8080808080808080)
_B7_LO = np.uint64(0x80808080)
_M7 = np.uint64(0x7F7F7F7F7F7F7F7F)
_ZERO_HI = np.uint64(0x3030303030303030)
_ZERO_LO = np.uint64(0x30303030)


def _unaligned(data: np.ndarray, dtype: str, width: int) -> np.ndarray:
    """`view[i]` = the little-endian integer stored at byte offset i of `data`."""
    count = max(len(data) - width + 1, 0)
    return np.ndarray(shape=(count,), dtype=dtype, buffer=data, offset=0, strides=(1,))


def _isrc_words(data: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact 64-bit keys of 12-byte strings at `starts`, and which ones qualified.

    Qualifies: bytes 0-7 in 0x30-0x5F (digits, capitals) and bytes 8-11 in 0x30-0x3F
    (digits), as every ISRC is. Each of the first eight bytes keeps its 6 low bits after
    subtracting 0x30; the four digits' 4 bits each fill the 2 spare bits of those bytes.
    """
    hi = _unaligned(data, "<u8", 8)[starts]
    lo = _unaligned(data, "<u4", 4)[starts + 8].astype(np.uint64)
    m7 = hi & _M7
    ok = ((m7 + _HI_ADD_LOW) & _B7) == _B7
    ok &= (((m7 + _HI_ADD_HIGH) | hi) & _B7) == 0
    l7 = lo & np.uint64(0x7F7F7F7F)
    ok &= ((l7 + np.uint64(0x50505050)) & _B7_LO) == _B7_LO
    ok &= (((l7 + _LO_ADD_HIGH) | lo) & _B7_LO) == 0
    hi -= _ZERO_HI  # no borrows where ok: every byte >= 0x30
    lo -= _ZERO_LO
    spread = []
    for part in (lo & np.uint64(0x03030303), (lo >> np.uint64(2)) & np.uint64(0x03030303)):
        part = (part | (part << np.uint64(16))) & np.uint64(0x0000FFFF0000FFFF)
        part = (part | (part << np.uint64(8))) & np.uint64(0x00FF00FF00FF00FF)
        spread.append(part)
    key = hi | (spread[0] << np.uint64(6)) | (spread[1] << np.uint64(14))
    return key.view(np.int64), ok


def _exact_keys(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(keys, qualified, valid) of a string array through `_isrc_words`."""
    n = len(arr)
    arr = arr.cast(pa.large_string(), memory_pool=POOL)
    valid = np.ones(n, dtype=bool) if arr.null_count == 0 else arr.is_valid().to_numpy(False)
    key = np.zeros(n, dtype=np.int64)
    done = np.zeros(n, dtype=bool)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64, count=n + 1, offset=arr.offset * 8)
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    twelve = valid & (np.diff(offsets) == 12)
    if twelve.all():
        key, done = _isrc_words(data, offsets[:-1])
        key[~done] = 0
    elif twelve.any():
        rows = np.flatnonzero(twelve)
        k, ok = _isrc_words(data, offsets[rows])
        key[rows[ok]] = k[ok]
        done[rows[ok]] = True
    return key, done, valid


def isrc_keys(isrc: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An int64 per ISRC, equal exactly for equal ISRCs (case and spaces ignored), 0 for none.

    A well-formed ISRC maps to an exact 64-bit key without hashing (`_isrc_words`);
    anything else to its 63-bit `stable_hash` with bits 4 and 5 set, which no exact key has
    (the 6 low bits of each byte of an exact key hold a value below 0x30).
    """
    if isinstance(isrc, pa.ChunkedArray):
        isrc = isrc.combine_chunks() if isrc.num_chunks != 1 else isrc.chunk(0)
    if len(isrc) == 0:
        return np.zeros(0, dtype=np.int64)
    out, done, valid = _exact_keys(isrc)
    rest = np.flatnonzero(valid & ~done)
    if rest.size:
        cleaned = pc.utf8_upper(pc.utf8_trim_whitespace(isrc.take(pa.array(rest))))
        key, ok, _ = _exact_keys(cleaned)
        empty = np.asarray(pc.equal(pc.utf8_length(cleaned), 0).to_numpy(False), dtype=bool)
        hashed = hash_strings(cleaned) | np.int64(0x30)
        out[rest] = np.where(ok, key, np.where(empty, 0, hashed))
    return out


def _first_line(exc: BaseException) -> str:
    """A database error in one line (ADBC's messages span several)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _query(uri: str, sql: str) -> pa.Table:
    import adbc_driver_sqlite.dbapi as adbc

    with adbc.connect(uri) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetch_arrow_table()


_Column: TypeAlias = np.ndarray | pa.Array | pa.ChunkedArray


def _lookup(values: _Column, keys: _Column, *, missing: int = -1) -> np.ndarray:
    """Index (int32, read-only) of each value in `keys` (`missing` where absent): a hash
    join in Arrow."""
    if len(values) == 0 or len(keys) == 0:
        return np.full(len(values), missing, dtype=np.int32)
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks(memory_pool=POOL)
    found = pc.index_in(
        values if not isinstance(values, np.ndarray) else pa.array(values),
        value_set=keys if not isinstance(keys, np.ndarray) else pa.array(keys),
        memory_pool=POOL,
    )
    filled = pc.coalesce(found, pa.scalar(missing, pa.int32()), memory_pool=POOL)
    del found
    if isinstance(filled, pa.ChunkedArray):
        filled = filled.combine_chunks(memory_pool=POOL)
    return np.asarray(filled.to_numpy(), dtype=np.int32)


def _table_exists(uri: str, name: str) -> bool:
    t = _query(uri, f"SELECT count(*) AS n FROM sqlite_master WHERE type='table' AND name='{name}'")
    return bool(t.column("n")[0].as_py())


def _catalog_path(archive: Archive) -> Path:
    path = archive.catalog_path
    if not path.exists():
        raise CatalogError(f"no catalogue at {path}; create an archive with `musicark init`")
    return path


def _side_tables(path: Path) -> tuple[pa.Table, pa.Table, pa.Table]:
    """Credits (track_id, artist_id), artists (id, popularity, followers), albums (id,
    popularity)."""
    with ColumnReader(path) as reader:
        return (
            reader.credits(("track_id", "artist_id")),
            reader.artists(("id", "popularity", "followers")),
            reader.albums(("id", "popularity")),
        )


def _range_parts(path: Path, above: int | None, upto: int) -> dict[str, list[np.ndarray]]:
    with ColumnReader(path) as reader:
        return _track_parts(
            reader.track_batches(TRACK_COLUMNS, above=above, upto=upto, batch_rows=BATCH_ROWS)
        )


_NAMES = ("track_id", "duration_ms", "popularity", "play_count", "isrc_key", "public", "album")
_DTYPES = (np.int64, np.int32, np.int16, np.int64, np.int64, np.bool_, np.int64)


def _track_parts(batches: Iterable[pa.RecordBatch]) -> dict[str, list[np.ndarray]]:
    """Each batch's columns as compact numpy arrays (not yet concatenated)."""
    parts: dict[str, list[np.ndarray]] = {name: [] for name in _NAMES}
    for b in batches:
        parts["track_id"].append(_ints(b.column("id"), np.int64))
        parts["duration_ms"].append(_ints(b.column("duration_ms"), np.int32))
        parts["popularity"].append(_ints(b.column("popularity"), np.int16))
        parts["play_count"].append(_ints(b.column("play_count"), np.int64))
        parts["isrc_key"].append(isrc_keys(b.column("isrc")))
        parts["public"].append(_ints(b.column("redistributable"), np.int8) > 0)
        parts["album"].append(_ints(b.column("album_id"), np.int64))
    return parts


def _track_columns(
    parts: list[dict[str, list[np.ndarray]]],
) -> tuple[CatalogColumns, np.ndarray]:
    """CatalogColumns (credits, albums and held sizes not yet attached: empty) and each
    track's album id. Each column is concatenated and its parts dropped before the next."""
    col: dict[str, np.ndarray] = {}
    for name, dtype in zip(_NAMES, _DTYPES, strict=True):
        pieces = [a for part in parts for a in part.pop(name)]
        col[name] = np.concatenate(pieces) if pieces else np.zeros(0, dtype)
        del pieces
    none = np.zeros(0, dtype=np.int16)
    cols = CatalogColumns(
        track_id=col["track_id"],
        duration_ms=col["duration_ms"],
        popularity=col["popularity"],
        play_count=col["play_count"],
        isrc_key=col["isrc_key"],
        redistributable=col["public"],
        artist_popularity=none,
        artist_followers=none,
        album_popularity=none,
        held_size=none,
    )
    return cols, col.pop("album")


def _read_parallel(
    path: Path, *, ranges: int = 2
) -> tuple[CatalogColumns, np.ndarray, tuple[pa.Table, pa.Table, pa.Table]]:
    """Tracks in `ranges` rowid ranges on as many connections, side tables on another.

    SQLite reads and most numpy work release the GIL, so the ranges read in parallel;
    the result is in rowid order, as one sequential read gives it.
    """
    with ColumnReader(path) as reader:
        hi = reader.max_rowid()
    bounds = [hi * i // ranges for i in range(ranges + 1)]
    bounds[-1] = max(hi, 0)  # the first range has no lower bound: it takes rowids <= 0 too
    with ThreadPoolExecutor(ranges + 1) as pool:
        side = pool.submit(_side_tables, path)
        futures = [
            pool.submit(_range_parts, path, lo if i else None, up)
            for i, (lo, up) in enumerate(itertools.pairwise(bounds))
        ]
        parts = [f.result() for f in futures]
        tables = side.result()
    cols, album_id = _track_columns(parts)
    return cols, album_id, tables


def _attach_albums(cols: CatalogColumns, album_id: np.ndarray, albums: pa.Table) -> None:
    cols.album_popularity = np.full(len(cols), -1, dtype=np.int16)
    if albums.num_rows and len(cols):
        apop = np.r_[_ints(albums.column("popularity"), np.int16), np.int16(-1)]
        # an unknown album points at the trailing -1
        cols.album_popularity = apop[_lookup(album_id, albums.column("id"), missing=len(apop) - 1)]


def _join(
    cols: CatalogColumns,
    album_id: list[np.ndarray],
    tables: list[pa.Table],
) -> None:
    """Attach albums, then credits, then an empty `held_size`; empties the lists as it goes
    (the caller hands them over, so each is freed as soon as it is used)."""
    credits, artists, albums = tables
    tables.clear()
    _attach_albums(cols, album_id.pop(), albums)
    del albums
    _attach_credits(cols, credits, artists)
    del credits, artists
    cols.held_size = np.full(len(cols), -1, dtype=np.int64)


def map_large_allocations() -> None:
    """Serve allocations of 1 MiB and up from their own mappings, unmapped when freed.

    glibc raises its mmap threshold after each large free, so the column arrays a plan
    frees would otherwise stay in its heap, resident, for the rest of the process.
    """
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # not glibc
        pass


def load_catalog(
    archive: Archive, *, progress: ProgressCallback | None = None, held: bool = True
) -> CatalogColumns:
    """Read every track with what a plan needs (and the held sizes from state.sqlite)."""
    stage = "plan: read catalogue"
    path = _catalog_path(archive)
    map_large_allocations()
    report(progress, Progress(stage, 0, 3, "steps"))
    try:
        cols, album_id, (credits, artists, albums) = _read_parallel(path)
        report(progress, Progress(stage, 1, 3, "steps"))
    except MusicarkError:
        raise
    except Exception as exc:  # ADBC raises its own DB-API errors
        raise CatalogError(
            f"{archive.catalog_path}: cannot read the catalogue ({_first_line(exc)})"
        ) from exc
    side = [credits, artists, albums]
    del credits, artists, albums
    album = [album_id]
    del album_id
    _join(cols, album, side)
    pa.default_memory_pool().release_unused()  # hand the Arrow buffers back to the system
    report(progress, Progress(stage, 2, 3, "steps"))
    if held:
        attach_held_sizes(archive, cols)
    report(progress, Progress(stage, 3, 3, "steps"))
    return cols


def _credit_starts(track_id: np.ndarray, credit_track: pa.ChunkedArray) -> np.ndarray | None:
    """Where each track's run of credit rows starts, when the credits are stored in the
    tracks' own order with every track credited (what an import writes); else None.

    Works on the Arrow chunks in place (no copy of the credits' track ids).
    """
    if len(credit_track) == 0 or len(track_id) == 0 or credit_track.null_count:
        return None
    index = np.int32 if len(credit_track) < 2**31 else np.int64
    parts: list[np.ndarray] = []
    offset, prev = 0, None
    for chunk in credit_track.chunks:
        c = chunk.to_numpy()
        if len(c) == 0:
            continue
        if prev is None or c[0] != prev:
            parts.append(np.array([offset], dtype=index))
        parts.append((np.flatnonzero(c[1:] != c[:-1]) + (offset + 1)).astype(index))
        prev, offset = c[-1], offset + len(c)
    total = sum(len(p) for p in parts)
    if total != len(track_id):
        return None
    starts = np.concatenate(parts)
    del parts
    for begin in range(0, len(starts), 1 << 20):
        at = starts[begin : begin + (1 << 20)]
        if not np.array_equal(credit_track.take(at).to_numpy(), track_id[begin : begin + len(at)]):
            return None
    return starts


def _attach_credits(cols: CatalogColumns, credits: pa.Table, artists: pa.Table) -> None:
    """Highest popularity and followers over each track's credited artists (-1: none).

    Followers are kept as int32 (clipped): the followers score is 100 from 1e8 up.
    """
    n = len(cols)
    cols.artist_popularity = np.full(n, -1, dtype=np.int16)
    cols.artist_followers = np.full(n, -1, dtype=np.int32)
    if credits.num_rows == 0 or artists.num_rows == 0 or n == 0:
        return
    # Index of each credit's artist; unknown artists point at a trailing -1.
    art = _lookup(credits.column("artist_id"), artists.column("id"), missing=artists.num_rows)
    ct = credits.column("track_id")
    starts = _credit_starts(cols.track_id, ct)
    for name, dtype, out in (
        ("popularity", np.int16, cols.artist_popularity),
        ("followers", np.int32, cols.artist_followers),
    ):
        values = _ints(artists.column(name), dtype)
        values = np.r_[values, np.array([-1], dtype=dtype)]
        if starts is not None:
            out[:] = np.maximum.reduceat(values[art], starts)
        else:
            row = _lookup(ct, cols.track_id)  # credits in another order: a hash join
            ok = row >= 0
            np.maximum.at(out, row[ok], values[art[ok]])


def attach_held_sizes(archive: Archive, cols: CatalogColumns) -> int:
    """Set `held_size` from the store's preferred renditions; returns how many are held.

    An archive without ingest (no state.sqlite, or no store tables yet) holds nothing.
    """
    path = archive.state_path
    if not path.exists():
        return 0
    uri = f"file:{path}?mode=ro"
    try:
        if not (_table_exists(uri, "renditions") and _table_exists(uri, "blobs")):
            return 0
        held = _query(
            uri,
            "SELECT r.track_id AS track_id, max(b.size) AS size FROM renditions r"
            " JOIN blobs b ON b.sha256 = r.sha256"
            " WHERE r.preferred = 1 AND r.track_id IS NOT NULL GROUP BY r.track_id",
        )
    except Exception as exc:
        raise CatalogError(
            f"{path}: cannot read the store's renditions ({_first_line(exc)})"
        ) from exc
    if held.num_rows == 0:
        return 0
    at = _lookup(_int_column(held, "track_id"), cols.track_id)
    sizes = _int_column(held, "size")
    hit = at >= 0
    cols.held_size[at[hit]] = sizes[hit]
    _attach_derived_sizes(archive, cols)
    return int(np.count_nonzero(hit))


def _attach_derived_sizes(archive: Archive, cols: CatalogColumns) -> None:
    """A zero-tier track with a derived rendition (`musicark transcode`) is held at that
    rendition's real size, the one `pack` releases."""
    from musicark.plan.model import TIER_ZERO, tiers
    from musicark.tier.transcode import derived_sizes

    found = derived_sizes(archive, f"opus-{archive.config.plan.bitrate_zero_popularity}")
    if not found:
        return
    at = _lookup(np.fromiter(found, dtype=np.int64, count=len(found)), cols.track_id)
    sizes = np.fromiter(found.values(), dtype=np.int64, count=len(found))
    hit = at >= 0
    at, sizes = at[hit], sizes[hit]
    # the tier as make_plan sets it (listens only matter where popularity is unknown)
    zero = tiers(cols.popularity[at], np.maximum(cols.play_count[at], 0)) == TIER_ZERO
    cols.held_size[at[zero]] = sizes[zero]
