"""Reading what a plan needs from the catalogue (and the store) into compact numpy columns.

Everything is read through `musicark.catalog.scan.Scanner` (SQLite's values straight
into numpy from a compiled loop; no Arrow, whose many small buffers would stay in the
heap), tracks in batches written into columns allocated once. Side tables are sorted by
id once and joined by binary search: albums to each batch of tracks as it is read,
artists to each batch of credits (streamed too, reduced to one maximum per track), held
sizes from the store by looking tracks up among the held ones. Nothing holds a hash table
over every track.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from musicark.archive import Archive
from musicark.catalog.scan import (
    CREDIT_COUNT_SQL,
    CREDIT_ROWIDS_SQL,
    TRACK_ROWIDS_SQL,
    Scanner,
    credits_scan_sql,
    table_scan_sql,
    track_scan_sql,
)
from musicark.errors import CatalogError, MusicarkError
from musicark.plan.isrc import scanned_isrc_keys
from musicark.plan.kernels import Lookup, credit_runs
from musicark.plan.sparse import Overrides
from musicark.progress import Progress, ProgressCallback, report

BATCH_ROWS = 1 << 16
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

    Unknown values are -1 (isrc_key 0 = no ISRC). Integer widths are the smallest that
    hold the values (any integer dtype is accepted). `held_size`: the held tracks' sizes
    (`Overrides`: most tracks hold nothing), or one int64 per track (-1 = not held).
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
    held_size: np.ndarray | Overrides

    def __len__(self) -> int:
        return len(self.track_id)

    def held(self) -> Overrides:
        """The held tracks' sizes, whichever way `held_size` gives them."""
        if isinstance(self.held_size, Overrides):
            return self.held_size
        at = np.flatnonzero(self.held_size >= 0)
        return Overrides(len(self), at, self.held_size[at].astype(np.int64))


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


def _fit(arr: np.ndarray, dtype: type[np.integer]) -> np.ndarray:
    """int64 values as `dtype`, clipped to its range."""
    info = np.iinfo(dtype)
    if dtype is not np.int64 and len(arr) and (arr.max() > info.max or arr.min() < info.min):
        arr = np.clip(arr, info.min, info.max)
    return arr.astype(dtype)


def _int_column(table: pa.Table, name: str) -> np.ndarray:
    return _ints(table.column(name), np.int64)


def _first_line(exc: BaseException) -> str:
    """A database error in one line (ADBC's messages span several)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _query(uri: str, sql: str) -> pa.Table:
    import adbc_driver_sqlite.dbapi as adbc

    with adbc.connect(uri) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetch_arrow_table()


def _table_exists(uri: str, name: str) -> bool:
    t = _query(uri, f"SELECT count(*) AS n FROM sqlite_master WHERE type='table' AND name='{name}'")
    return bool(t.column("n")[0].as_py())


def _catalog_path(archive: Archive) -> Path:
    path = archive.catalog_path
    if not path.exists():
        raise CatalogError(f"no catalogue at {path}; create an archive with `musicark init`")
    return path


class _Keyed:
    """A side table (albums, artists) sorted by id, looked up through `kernels.Lookup`.

    Each value column ends with a -1, where unknown ids point.
    """

    def __init__(self, ids: np.ndarray, values: list[np.ndarray]) -> None:
        self.ids, self.values = ids, values
        self.lookup = Lookup(ids)

    @classmethod
    def of(
        cls, scan: Scanner, table: str, columns: Sequence[tuple[str, type[np.integer]]]
    ) -> _Keyed:
        names = ["id", *(c for c, _ in columns)]
        ids, *rest = scan.ints(table_scan_sql(table, names), len(names))
        order = np.argsort(ids, kind="stable")  # equal ids: the first stored wins
        values = [
            np.r_[_fit(v, dtype)[order], np.array([-1], dtype=dtype)]
            for v, (_, dtype) in zip(rest, columns, strict=True)
        ]
        ids = ids[order]
        first = np.r_[True, ids[1:] != ids[:-1]][: len(ids)]
        return cls(ids[first], [v[np.r_[first, True]] for v in values])

    def index(self, ids: np.ndarray) -> np.ndarray:
        """Position of each id (`len(self.ids)`, the trailing -1, where unknown)."""
        return self.lookup.find(ids)


def _side_tables(path: Path) -> tuple[_Keyed, _Keyed]:
    """Albums (popularity) and artists (popularity, followers), keyed by id."""
    with Scanner(path) as scan:
        albums = _Keyed.of(scan, "albums", [("popularity", np.int16)])
        artists = _Keyed.of(scan, "artists", [("popularity", np.int16), ("followers", np.int32)])
    return albums, artists


def _runs(keys: np.ndarray) -> np.ndarray:
    """Where each run of equal consecutive keys starts."""
    return np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else keys[:0]


def _max_by_runs(keys: np.ndarray, *values: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    starts = _runs(keys)
    return keys[starts], [np.maximum.reduceat(v, starts) for v in values]


def _credit_maxima(
    path: Path, artists: _Keyed, *, ranges: int = 2
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Highest popularity and followers over each credited track's artists (-1: unknown
    artist), as (track ids, [popularity, followers]), streamed from the credits table.

    A track's credits are stored together (what an import writes), so this holds about
    one entry per track; a track whose credits are scattered appears more than once. The
    entries are written into arrays allocated once for as many entries as there are
    credits (pages never written are never resident), `ranges` rowid ranges in parallel,
    each from the start of its own slot; the slots are then moved together.
    """
    with Scanner(path) as scan:
        low, high = (int(v) for v in scan.ints(CREDIT_ROWIDS_SQL, 2)[:, 0])
        room = high - low + 1
        if room > 1 << 32:  # rowids too sparse for their span to be sensible: count
            room, ranges = int(scan.ints(CREDIT_COUNT_SQL, 1)[0, 0]), 1
    out = (np.empty(room, np.int64), np.empty(room, np.int16), np.empty(room, np.int32))
    values = (artists.values[0], artists.values[1])

    def fill(above: int | None, upto: int | None, at: int) -> int:
        n = at
        with Scanner(path) as scan:
            sql = credits_scan_sql(above=above, upto=upto)
            for b in scan.batches(sql, ints=2, batch_rows=BATCH_ROWS):
                # runs cut by a batch boundary join up (credit_runs merges into the last)
                n = credit_runs(b.ints[0], artists.index(b.ints[1]), values, out, n)
        return n - at

    if ranges == 1:
        n = fill(None, None, 0)
        return out[0][:n], [out[1][:n], out[2][:n]]
    bounds = [low - 1 + room * i // ranges for i in range(ranges + 1)]
    with ThreadPoolExecutor(ranges) as pool:
        futures = [
            (b - low + 1, pool.submit(fill, b, up, b - low + 1))
            for b, up in itertools.pairwise(bounds)
        ]
        blocks = [(at, f.result()) for at, f in futures]
    keys, pops, fols = out
    joined: list[tuple[int, int]] = []
    last = -1  # where the last entry so far is (before the blocks move)
    for at, count in blocks:  # a run cut by a range boundary joins the entry before it
        if count and last >= 0 and keys[last] == keys[at]:
            pops[last] = max(pops[last], pops[at])
            fols[last] = max(fols[last], fols[at])
            at, count = at + 1, count - 1
        joined.append((at, count))
        if count:
            last = at + count - 1
    arrays: dict[str, np.ndarray] = {"keys": keys, "pops": pops, "fols": fols}
    n = _compact(arrays, joined)
    return keys[:n], [pops[:n], fols[:n]]


# read by `Scanner` (NULL as -1), with the ISRC as text after them
_SCANNED = ("id", "duration_ms", "popularity", "play_count", "album_id", "redistributable")
_NAMES = ("track_id", "duration_ms", "popularity", "play_count", "isrc_key", "public", "album")
_DTYPES = (np.int64, np.int32, np.int16, np.int64, np.int64, np.bool_, np.int16)


def _fill_range(
    path: Path,
    albums: _Keyed,
    out: dict[str, np.ndarray],
    *,
    above: int,
    upto: int,
    at: int,
    mismatch: threading.Event | None = None,
) -> int:
    """Tracks with rowid in (above, upto], written into `out` from position `at` on (the
    range has room for `upto - above` rows: rowids are unique); returns how many.

    With `mismatch`, `out["track_id"]` already holds the ids the credits named, run by
    run: each batch is checked against them (and `mismatch` set where they differ).
    """
    pos = at
    sql = track_scan_sql(_SCANNED, "isrc", above=above, upto=upto)
    with Scanner(path) as scan:
        for b in scan.batches(sql, ints=len(_SCANNED), text_width=12, batch_rows=BATCH_ROWS):
            sl = slice(pos, pos + len(b))
            ids, duration, popularity, plays, album, public = b.ints
            if mismatch is not None and not np.array_equal(out["track_id"][sl], ids):
                mismatch.set()
            out["track_id"][sl] = ids
            out["duration_ms"][sl] = _fit(duration, np.int32)
            out["popularity"][sl] = _fit(popularity, np.int16)
            out["play_count"][sl] = plays
            out["isrc_key"][sl] = scanned_isrc_keys(b)
            out["public"][sl] = public > 0
            out["album"][sl] = albums.values[0][albums.index(album)]
            pos += len(b)
    return pos - at


def _compact(out: dict[str, np.ndarray], blocks: list[tuple[int, int]]) -> int:
    """Move (start, count) blocks down so that they follow each other from 0; returns the
    total. Copies a bounded piece at a time (the blocks only ever move down); the pages
    past the total that the blocks had written are handed back."""
    total = 0
    step = 1 << 20
    for start, count in blocks:
        if start != total:
            for arr in out.values():
                for i in range(0, count, step):
                    k = min(step, count - i)
                    arr[total + i : total + i + k] = arr[start + i : start + i + k]
        total += count
    for arr in out.values():
        _release_tail(arr, total)
    return total


_PAGE = 4096


def _release_tail(arr: np.ndarray, n: int) -> None:
    """Hand back the whole pages of `arr` past its first `n` items (never read again:
    the array is only ever used as ``arr[:n]``)."""
    start = -(-(arr.ctypes.data + n * arr.itemsize) // _PAGE) * _PAGE
    end = (arr.ctypes.data + arr.nbytes) // _PAGE * _PAGE
    if end - start >= 1 << 20:
        try:
            import ctypes

            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), 4)  # DONTNEED
        except (OSError, AttributeError):  # not Linux: the pages stay
            pass


def _read_parallel(path: Path, *, ranges: int = 2) -> CatalogColumns:
    """Credits first (reduced to one entry per credited track), then tracks in `ranges`
    rowid ranges on as many connections.

    The columns are allocated once, with a slot per range as wide as its rowid range, and
    filled in place (no per-batch pieces to concatenate): SQLite reads and most numpy
    work release the GIL, so the ranges read in parallel; the result is in rowid order,
    as one sequential read gives it. When the credits name one track per rowid (an
    import writes them in track order), their track ids are the track id column itself:
    the tracks are checked against them as they are read, not stored a second time.
    """
    albums, artists = _side_tables(path)
    with Scanner(path) as scan:
        low, hi = (int(v) for v in scan.ints(TRACK_ROWIDS_SQL, 2)[:, 0])
    lo = low - 1
    keys, (pop, fol) = _credit_maxima(path, artists)
    bounds = [lo + (hi - lo) * i // ranges for i in range(ranges + 1)]
    shared = len(keys) == hi - lo
    out: dict[str, np.ndarray] = {
        name: keys if shared and name == "track_id" else np.empty(hi - lo, dtype)
        for name, dtype in zip(_NAMES, _DTYPES, strict=True)
    }
    mismatch = threading.Event() if shared else None
    with ThreadPoolExecutor(ranges) as pool:
        futures = [
            (
                b - lo,
                pool.submit(
                    _fill_range, path, albums, out, above=b, upto=up, at=b - lo, mismatch=mismatch
                ),
            )
            for b, up in itertools.pairwise(bounds)
        ]
        blocks = [(at, f.result()) for at, f in futures]
    del albums
    n = _compact(out, blocks)
    cols = CatalogColumns(
        track_id=out["track_id"][:n],
        duration_ms=out["duration_ms"][:n],
        popularity=out["popularity"][:n],
        play_count=out["play_count"][:n],
        isrc_key=out["isrc_key"][:n],
        redistributable=out["public"][:n],
        artist_popularity=np.zeros(0, np.int16),
        artist_followers=np.zeros(0, np.int32),
        album_popularity=out["album"][:n],
        held_size=Overrides.none(n, np.int64),
    )
    del out
    if shared and (mismatch is None or mismatch.is_set() or n != len(keys)):
        # the track ids were written over the credits' ids: read the credits again
        del keys, pop, fol
        keys, (pop, fol) = _credit_maxima(path, artists)
    _attach_credits(cols, keys, pop, fol)
    return cols


def _attach_credits(
    cols: CatalogColumns, keys: np.ndarray, pop: np.ndarray, fol: np.ndarray
) -> None:
    """Each track's credit maxima (-1 where uncredited); `keys` are the credited track ids.

    Followers are kept as int32 (clipped): the followers score is 100 from 1e8 up.
    """
    if len(keys) == len(cols) and np.array_equal(keys, cols.track_id):
        cols.artist_popularity, cols.artist_followers = pop, fol  # credits in track order
        return
    cols.artist_popularity = np.full(len(cols), -1, dtype=np.int16)
    cols.artist_followers = np.full(len(cols), -1, dtype=np.int32)
    if len(keys) == 0:
        return
    order = np.argsort(keys, kind="stable")
    keys, (pop, fol) = _max_by_runs(keys[order], pop[order], fol[order])
    del order
    step = 1 << 20
    for start in range(0, len(cols), step):
        ids = cols.track_id[start : start + step]
        pos = np.minimum(np.searchsorted(keys, ids), len(keys) - 1)
        hit = keys[pos] == ids
        cols.artist_popularity[start : start + step][hit] = pop[pos[hit]]
        cols.artist_followers[start : start + step][hit] = fol[pos[hit]]


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
        cols = _read_parallel(path)
        report(progress, Progress(stage, 1, 3, "steps"))
    except MusicarkError:
        raise
    except Exception as exc:  # ADBC raises its own DB-API errors
        raise CatalogError(
            f"{archive.catalog_path}: cannot read the catalogue ({_first_line(exc)})"
        ) from exc
    pa.default_memory_pool().release_unused()  # hand the Arrow buffers back to the system
    report(progress, Progress(stage, 2, 3, "steps"))
    if held:
        attach_held_sizes(archive, cols)
    report(progress, Progress(stage, 3, 3, "steps"))
    return cols


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
    ids = _int_column(held, "track_id")
    order = np.argsort(ids)
    ids, sizes = ids[order], _int_column(held, "size")[order]
    rows, where = _among(cols.track_id, ids)
    cols.held_size = _merged(cols.held(), rows, sizes[where])
    _attach_derived_sizes(archive, cols)
    return len(rows)


def _merged(held: Overrides, at: np.ndarray, sizes: np.ndarray) -> Overrides:
    """`held` with `sizes` at positions `at` (these win where both hold a track)."""
    pos = np.r_[held.at.astype(np.int64), at.astype(np.int64)]
    values = np.r_[held.values, sizes].astype(np.int64)
    order = np.argsort(pos, kind="stable")
    pos, values = pos[order], values[order]
    last = np.r_[pos[1:] != pos[:-1], True]
    return Overrides(held.n, pos[last], values[last])


def _among(track_id: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positions in `track_id`, positions in `ids`) of the tracks whose id is in `ids`
    (sorted), each track looked up among them: memory in proportion to `ids`, not to the
    catalogue."""
    if len(ids) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    rows: list[np.ndarray] = []
    where: list[np.ndarray] = []
    step = 1 << 20
    for start in range(0, len(track_id), step):
        part = track_id[start : start + step]
        pos = np.minimum(np.searchsorted(ids, part), len(ids) - 1)
        hit = ids[pos] == part
        rows.append(np.flatnonzero(hit) + start)
        where.append(pos[hit])
    return np.concatenate(rows), np.concatenate(where)


def _attach_derived_sizes(archive: Archive, cols: CatalogColumns) -> None:
    """A zero-tier track with a derived rendition (`musicark transcode`) is held at that
    rendition's real size, the one `pack` releases."""
    from musicark.plan.model import TIER_ZERO, tiers
    from musicark.tier.transcode import derived_sizes

    found = derived_sizes(archive, f"opus-{archive.config.plan.bitrate_zero_popularity}")
    if not found:
        return
    ids = np.fromiter(found, dtype=np.int64, count=len(found))
    order = np.argsort(ids)
    ids = ids[order]
    sizes = np.fromiter(found.values(), dtype=np.int64, count=len(found))[order]
    at, where = _among(cols.track_id, ids)
    # the tier as make_plan sets it (listens only matter where popularity is unknown)
    zero = tiers(cols.popularity[at], np.maximum(cols.play_count[at], 0)) == TIER_ZERO
    cols.held_size = _merged(cols.held(), at[zero], sizes[where[zero]])
