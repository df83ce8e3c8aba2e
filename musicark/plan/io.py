"""Reading the catalogue and the store for a plan, and writing/reading plan files.

The catalogue is read through ADBC (SQLite query results straight into Arrow) and then
handled as numpy arrays; no Python object per track. Joins (credits to artists, tracks to
albums, renditions to tracks) are hash look-ups in Arrow (`pyarrow.compute.index_in`).

Where plans are kept: ``ARCHIVE/plans/latest.parquet`` (the last plan made, in full) and
``ARCHIVE/plans/latest.json`` (its summary and coverage curve, for the web UI).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from musicark.archive import Archive
from musicark.catalog.ids import hash_strings
from musicark.catalog.rights import REDISTRIBUTABLE
from musicark.errors import CatalogError, UsageError
from musicark.progress import Progress, ProgressCallback, report

PLANS_DIR = "plans"
LATEST_PLAN = "latest.parquet"
LATEST_SUMMARY = "latest.json"
METADATA_KEY = b"musicark.plan"


@dataclass
class CatalogColumns:
    """One entry per catalogue track, in the order the catalogue returned them.

    Unknown values are -1 (isrc_key 0 = no ISRC; held_size -1 = not held).
    """

    track_id: np.ndarray  # int64
    duration_ms: np.ndarray  # int64
    popularity: np.ndarray  # int64
    play_count: np.ndarray  # int64
    isrc_key: np.ndarray  # int64
    redistributable: np.ndarray  # bool
    artist_popularity: np.ndarray  # int64, highest over credited artists
    artist_followers: np.ndarray  # int64, highest over credited artists
    album_popularity: np.ndarray  # int64
    held_size: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.track_id)


def _int_column(table: pa.Table, name: str) -> np.ndarray:
    col = table.column(name)
    if col.null_count:
        col = pc.fill_null(col, -1)
    return np.ascontiguousarray(col.to_numpy(), dtype=np.int64)


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


def isrc_keys(isrc: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An int64 per ISRC, equal exactly for equal ISRCs (case-insensitive), 0 for none.

    A well-formed ISRC (12 characters, upper-cased) maps to an exact 64-bit key without
    hashing (see `_isrc_words`); anything else to its 63-bit `stable_hash`, which never
    equals such a key (the keys of ISRCs have the top bit of every byte pair pattern
    ``0b??`` bounded; hashed keys are made odd-negative and flagged apart below).
    """
    if isinstance(isrc, pa.ChunkedArray):
        isrc = isrc.combine_chunks() if isrc.num_chunks != 1 else isrc.chunk(0)
    n = len(isrc)
    out = np.zeros(n, dtype=np.int64)
    if n == 0:
        return out
    arr = isrc.cast(pa.large_string())
    valid = np.ones(n, dtype=bool) if arr.null_count == 0 else arr.is_valid().to_numpy(False)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64, count=n + 1, offset=arr.offset * 8)
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    twelve = valid & (lengths == 12)
    done = np.zeros(n, dtype=bool)
    if twelve.all():
        key, ok = _isrc_words(data, offsets[:-1])
        out[ok] = key[ok]
        done = ok
    elif twelve.any():
        rows = np.flatnonzero(twelve)
        key, ok = _isrc_words(data, offsets[rows])
        out[rows[ok]] = key[ok]
        done[rows[ok]] = True
    rest = np.flatnonzero(valid & ~done & (lengths > 0))
    if rest.size:
        upper = pc.utf8_upper(pc.utf8_trim_whitespace(arr.take(pa.array(rest))))
        again = isrc_keys(upper) if rest.size < n else np.zeros(rest.size, np.int64)
        retry = _isrc_qualifies(upper)
        hashed = hash_strings(upper)
        # A hashed key is flagged by bit 7 of its lowest byte, which no ISRC key has set.
        hashed = (hashed & ~np.int64(0xFF)) | np.int64(0x80) | (hashed & np.int64(0x7F))
        out[rest] = np.where(retry, again, hashed)
    return out


def _isrc_qualifies(values: pa.Array) -> np.ndarray:
    """Which (upper-cased, trimmed) values take the exact-key path of `isrc_keys`."""
    ok = pc.match_substring_regex(values, r"^[0-9A-Z\[\\\]^_:;<=>?@]{8}[0-9:;<=>?]{4}$")
    return np.asarray(pc.fill_null(ok, False).to_numpy(zero_copy_only=False), dtype=bool)


def _query(uri: str, sql: str) -> pa.Table:
    import adbc_driver_sqlite.dbapi as adbc

    with adbc.connect(uri) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetch_arrow_table()


def _lookup(values: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Index of each value in `keys` (-1 where absent): a hash join in Arrow."""
    if len(values) == 0 or len(keys) == 0:
        return np.full(len(values), -1, dtype=np.int64)
    found = pc.index_in(pa.array(values), value_set=pa.array(keys))
    return np.asarray(pc.fill_null(found, -1).to_numpy(), dtype=np.int64)


def _table_exists(uri: str, name: str) -> bool:
    t = _query(uri, f"SELECT count(*) AS n FROM sqlite_master WHERE type='table' AND name='{name}'")
    return bool(t.column("n")[0].as_py())


@dataclass
class CatalogTables:
    """The catalogue columns a plan reads, as Arrow tables straight from SQLite."""

    tracks: pa.Table  # id, duration_ms, popularity, play_count, album_id, isrc, redistributable
    credits: pa.Table  # track_id, artist_id
    artists: pa.Table  # id, popularity, followers
    albums: pa.Table  # id, popularity


def fetch_catalog(archive: Archive) -> CatalogTables:
    """Read what a plan needs from catalog.sqlite (read-only, through ADBC)."""
    path = archive.catalog_path
    if not path.exists():
        raise CatalogError(f"no catalogue at {path}; create an archive with `musicark init`")
    uri = f"file:{path}?mode=ro"
    public = ", ".join(f"'{r}'" for r in REDISTRIBUTABLE)
    try:
        return CatalogTables(
            tracks=_query(
                uri,
                "SELECT id, duration_ms, popularity, play_count, album_id, isrc,"
                f" rights IN ({public}) AS redistributable FROM tracks",
            ),
            credits=_query(uri, "SELECT track_id, artist_id FROM track_artists"),
            artists=_query(uri, "SELECT id, popularity, followers FROM artists"),
            albums=_query(uri, "SELECT id, popularity FROM albums"),
        )
    except Exception as exc:  # ADBC raises its own DB-API errors
        raise CatalogError(f"{path}: cannot read the catalogue ({exc})") from None


def catalog_columns(tables: CatalogTables) -> CatalogColumns:
    """Per-track numpy columns from the fetched tables (credits and albums joined in)."""
    tracks = tables.tracks
    n = tracks.num_rows
    cols = CatalogColumns(
        track_id=_int_column(tracks, "id"),
        duration_ms=_int_column(tracks, "duration_ms"),
        popularity=_int_column(tracks, "popularity"),
        play_count=_int_column(tracks, "play_count"),
        isrc_key=isrc_keys(tracks.column("isrc")),
        redistributable=_int_column(tracks, "redistributable") > 0,
        artist_popularity=np.full(n, -1, dtype=np.int64),
        artist_followers=np.full(n, -1, dtype=np.int64),
        album_popularity=np.full(n, -1, dtype=np.int64),
        held_size=np.full(n, -1, dtype=np.int64),
    )
    _attach_credits(cols, tables.credits, tables.artists)
    albums = tables.albums
    if albums.num_rows and n:
        at = _lookup(_int_column(tracks, "album_id"), _int_column(albums, "id"))
        apop = _int_column(albums, "popularity")
        hit = at >= 0
        cols.album_popularity[hit] = apop[at[hit]]
    return cols


def load_catalog(
    archive: Archive, *, progress: ProgressCallback | None = None, held: bool = True
) -> CatalogColumns:
    """Read every track with what a plan needs (and the held sizes from state.sqlite)."""
    stage = "plan: read catalogue"
    report(progress, Progress(stage, 0, 3, "steps"))
    tables = fetch_catalog(archive)
    report(progress, Progress(stage, 1, 3, "steps"))
    cols = catalog_columns(tables)
    del tables
    report(progress, Progress(stage, 2, 3, "steps"))
    if held:
        attach_held_sizes(archive, cols)
    report(progress, Progress(stage, 3, 3, "steps"))
    return cols


def _credit_rows(track_id: np.ndarray, credit_track: np.ndarray) -> np.ndarray:
    """Index into `track_id` of each credit row's track (-1 for an unknown track)."""
    if len(credit_track) == 0:
        return np.zeros(0, dtype=np.int64)
    # Fast path: credits stored in the tracks' own order, every track credited (what an
    # import writes); then each run of one track id is that track.
    starts = np.flatnonzero(np.r_[True, credit_track[1:] != credit_track[:-1]])
    if len(starts) == len(track_id) and np.array_equal(credit_track[starts], track_id):
        runs = np.diff(np.r_[starts, len(credit_track)])
        return np.repeat(np.arange(len(track_id), dtype=np.int64), runs)
    return _lookup(credit_track, track_id)


def _attach_credits(cols: CatalogColumns, credits: pa.Table, artists: pa.Table) -> None:
    if credits.num_rows == 0 or artists.num_rows == 0:
        return
    row = _credit_rows(cols.track_id, _int_column(credits, "track_id"))
    art = _lookup(_int_column(credits, "artist_id"), _int_column(artists, "id"))
    ok = (row >= 0) & (art >= 0)
    row, art = row[ok], art[ok]
    np.maximum.at(cols.artist_popularity, row, _int_column(artists, "popularity")[art])
    np.maximum.at(cols.artist_followers, row, _int_column(artists, "followers")[art])


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
        raise CatalogError(f"{path}: cannot read the store's renditions ({exc})") from None
    if held.num_rows == 0:
        return 0
    at = _lookup(_int_column(held, "track_id"), cols.track_id)
    sizes = _int_column(held, "size")
    hit = at >= 0
    cols.held_size[at[hit]] = sizes[hit]
    return int(np.count_nonzero(hit))


# ---- plan files -----------------------------------------------------------------------


def plans_dir(archive: Archive) -> Path:
    return archive.root / PLANS_DIR


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


def write_plan(table: pa.Table, path: Path) -> None:
    """Write a plan Parquet file atomically; the same table gives the same bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        pq.write_table(
            table,
            tmp,
            compression="zstd",
            use_dictionary=["status", "tier", "size_source"],
            row_group_size=1 << 20,
            write_statistics=True,
            store_schema=True,
        )
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"cannot write the plan to {path}: {exc.strerror}") from None


def copy_file(src: Path, dest: Path) -> None:
    """Copy a written plan to `dest` atomically."""
    import shutil

    dest = Path(dest)
    tmp = dest.with_name(f".{dest.name}.tmp")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, tmp)
        tmp.replace(dest)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"cannot write the plan to {dest}: {exc.strerror}") from None


def write_json(data: dict[str, Any], path: Path) -> None:
    try:
        _atomic_write(Path(path), orjson.dumps(data, option=orjson.OPT_INDENT_2))
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None


def read_plan_metadata(path: Path) -> dict[str, Any]:
    """The summary (and curve) stored in a plan file, without reading its rows."""
    path = Path(path)
    try:
        schema = pq.read_schema(path)
    except FileNotFoundError:
        raise UsageError(f"no plan at {path}") from None
    except (OSError, pa.ArrowInvalid) as exc:
        raise UsageError(f"{path} is not a plan file ({exc})") from None
    raw = (schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise UsageError(f"{path} is a Parquet file but not a musicark plan")
    data: dict[str, Any] = orjson.loads(raw)
    return data


def read_plan(path: Path, *, columns: list[str] | None = None) -> pa.Table:
    """The rows of a plan file, in rank order."""
    read_plan_metadata(path)
    return pq.read_table(path, columns=columns)


def selected_track_ids(path: Path) -> np.ndarray:
    """Track ids a plan selects, in acquisition (rank) order."""
    t = read_plan(path, columns=["track_id", "status"])
    mask = pc.equal(t.column("status").cast(pa.string()), "selected")
    return np.asarray(t.column("track_id").filter(mask).to_numpy(), dtype=np.int64)
