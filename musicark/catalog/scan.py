"""Integer columns of every track at the speed of SQLite itself, for the plan's full reads.

`Scanner` runs one query on its own read-only connection and copies each row's values
into numpy arrays from a loop compiled by numba, which calls the SQLite C library
directly: no Python object, Arrow builder or conversion per value, and the GIL released
while it runs (several scanners on threads read rowid ranges in parallel). Every column
but an optional last text column is an integer (NULLs are given a default in SQL); the
text column lands in fixed-width slots when it has that width (what an ISRC has) and in
a spill buffer otherwise. The compiled loop is cached next to this module.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from musicark.catalog.reader import (
    ALBUM_FIELDS,
    ARTIST_FIELDS,
    CREDIT_FIELDS,
    _select,
    _simple_fields,
    tracks_sql,
)
from musicark.errors import CatalogError

_ROW, _DONE = 100, 101
_FULL, _PENDING = 0, 1  # what `_fill` returns besides SQLite's codes
_OPEN_READONLY, _OPEN_URI, _OPEN_NOMUTEX = 0x1, 0x40, 0x8000
_NULL = 5  # SQLITE_NULL


def _library_path() -> str:
    """The SQLite library: the system's, else the one Python's sqlite3 module loaded."""
    found = ctypes.util.find_library("sqlite3")
    if found:
        return found
    import sqlite3  # noqa: F401  (maps its library into this process)

    with open("/proc/self/maps") as fh:
        for line in fh:
            if "libsqlite3" in line:
                return line.split()[-1]
    raise CatalogError("cannot find the SQLite library (libsqlite3) to read the catalogue with")


@functools.cache
def _kernel() -> tuple[ctypes.CDLL, Any]:
    """The C library (for open, prepare, finalize) and the compiled row loop."""
    import llvmlite.binding as llvm
    from numba import njit, types

    path = _library_path()
    lib = ctypes.CDLL(path)
    lib.sqlite3_errmsg.restype = ctypes.c_char_p
    llvm.load_library_permanently(path)
    ptr = types.intp  # sqlite3_stmt*, passed as an integer
    step: Any = types.ExternalFunction("sqlite3_step", types.int32(ptr))
    col_int: Any = types.ExternalFunction("sqlite3_column_int64", types.int64(ptr, types.int32))
    col_type: Any = types.ExternalFunction("sqlite3_column_type", types.int32(ptr, types.int32))
    col_text: Any = types.ExternalFunction(
        "sqlite3_column_text", types.CPointer(types.uint8)(ptr, types.int32)
    )
    col_bytes: Any = types.ExternalFunction("sqlite3_column_bytes", types.int32(ptr, types.int32))

    @njit(nogil=True, cache=True)
    def fill(stmt, ints, slots, length, spill, spill_end, used, pending):  # type: ignore[no-untyped-def]
        """Rows into `ints` (column c in ints[c]; then the text column, if `slots` has
        rows): returns (rows, spill used, _FULL | _PENDING | SQLite's code). _PENDING:
        the spill could not hold the current row's text; call again with pending=True."""
        width = slots.shape[1]
        k = ints.shape[0]
        r = 0
        while r < ints.shape[1]:
            if pending:
                pending = False
            else:
                rc = step(stmt)
                if rc != 100:
                    return r, used, rc
            if slots.shape[0]:
                if col_type(stmt, k) == 5:
                    length[r] = -1
                else:
                    text = col_text(stmt, k)
                    n = col_bytes(stmt, k)
                    length[r] = n
                    if n == width:
                        for j in range(width):
                            slots[r, j] = text[j]
                    else:
                        if used + n > spill.shape[0]:
                            return r, used, 1
                        for j in range(n):
                            spill[used + j] = text[j]
                        used += n
                        spill_end[r] = used
            for c in range(k):
                ints[c, r] = col_int(stmt, c)
            r += 1
        return r, used, 0

    return lib, fill


@dataclass
class ScanBatch:
    """One batch of rows; the arrays are reused by the next batch.

    `ints[c]`: integer column c. Text: `length` (-1 NULL); rows whose length is the
    slot width hold their bytes in `slots`; the others are in `spill`, ending at
    `spill_end` (each row's bytes follow the previous spilled row's).
    """

    ints: np.ndarray
    slots: np.ndarray
    length: np.ndarray
    spill: np.ndarray
    spill_end: np.ndarray

    def __len__(self) -> int:
        return int(self.ints.shape[1])

    def spilled(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, offsets, data) of the spilled texts (Arrow string layout)."""
        width = self.slots.shape[1]
        rows = np.flatnonzero((self.length >= 0) & (self.length != width))
        ends = self.spill_end[rows]
        offsets = np.r_[np.int64(0), ends].astype(np.int64)
        return rows, offsets, self.spill[: int(ends[-1]) if len(ends) else 0]


class Scanner:
    """One read-only connection (one thread at a time). Use as a context manager."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise CatalogError(
                f"no catalogue at {self.path}; create an archive with `musicark init`"
            )
        self._lib, self._fill = _kernel()
        db = ctypes.c_void_p()
        # %-escaped: a file name may hold '?', '#' or '%', which a URI reads otherwise
        uri = f"file:{quote(str(self.path.resolve()))}?mode=ro".encode()
        flags = _OPEN_READONLY | _OPEN_URI | _OPEN_NOMUTEX
        rc = self._lib.sqlite3_open_v2(uri, ctypes.byref(db), flags, None)
        self._db = db
        if rc != 0:
            msg = self._message()
            self.close()
            raise CatalogError(f"{self.path}: cannot open the catalogue ({msg})")
        self._lib.sqlite3_busy_timeout(db, 5000)

    def __enter__(self) -> Scanner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._db:
            self._lib.sqlite3_close_v2(self._db)
            self._db = ctypes.c_void_p()

    def _message(self) -> str:
        raw = self._lib.sqlite3_errmsg(self._db) if self._db else None
        return raw.decode(errors="replace") if raw else "unknown error"

    def ints(self, sql: str, columns: int) -> np.ndarray:
        """Every row of a query of `columns` integers, as `columns` arrays (small tables)."""
        parts = [b.ints.copy() for b in self.batches(sql, ints=columns)]
        return np.concatenate(parts, axis=1) if parts else np.zeros((columns, 0), np.int64)

    def batches(
        self, sql: str, *, ints: int, text_width: int = 0, batch_rows: int = 1 << 18
    ) -> Iterator[ScanBatch]:
        """The rows of `sql`: `ints` integer columns, then a text column if `text_width`."""
        stmt = ctypes.c_void_p()
        rc = self._lib.sqlite3_prepare_v2(self._db, sql.encode(), -1, ctypes.byref(stmt), None)
        if rc != 0:
            raise CatalogError(f"{self.path}: cannot read the catalogue ({self._message()})")
        try:
            yield from self._run(stmt, ints, text_width, batch_rows)
        finally:
            self._lib.sqlite3_finalize(stmt)

    def _run(
        self, stmt: ctypes.c_void_p, ints: int, text_width: int, batch_rows: int
    ) -> Iterator[ScanBatch]:
        rows = max(batch_rows, 1)
        text_rows = rows if text_width else 0
        b = ScanBatch(
            ints=np.empty((ints, rows), np.int64),
            slots=np.empty((text_rows, max(text_width, 1)), np.uint8),
            length=np.empty(text_rows, np.int32),
            spill=np.empty(rows * 4 if text_width else 0, np.uint8),
            spill_end=np.empty(text_rows, np.int64),
        )
        pending = False
        while True:
            n, _, status = self._fill(
                stmt.value, b.ints, b.slots, b.length, b.spill, b.spill_end, 0, pending
            )
            if status not in (_FULL, _PENDING, _DONE):
                raise CatalogError(f"{self.path}: cannot read the catalogue ({self._message()})")
            if n:
                yield ScanBatch(b.ints[:, :n], b.slots[:n], b.length[:n], b.spill, b.spill_end[:n])
            pending = status == _PENDING
            if pending and n == 0:  # one text larger than the whole spill
                b.spill = np.empty(2 * len(b.spill) + 1, np.uint8)
            if status == _DONE:
                return


def track_scan_sql(
    ints: Sequence[str], text: str | None, *, above: int | None, upto: int | None
) -> str:
    """The query for `Scanner.batches`: integer track columns (NULL read as -1), then an
    optional text column, of tracks with rowid in (above, upto], in rowid order."""
    columns = [*ints, *([text] if text else [])]
    return tracks_sql(columns, defaults=dict.fromkeys(ints, -1), above=above, upto=upto)


_TABLES = {
    "albums": ("al", ALBUM_FIELDS),
    "artists": ("a", ARTIST_FIELDS),
    "track_artists": ("ta", CREDIT_FIELDS),
}


def table_scan_sql(table: str, ints: Sequence[str]) -> str:
    """Integer columns (NULL read as -1) of albums, artists or credits (`track_artists`),
    in stored order."""
    alias, fields = _TABLES[table]
    select = _select(ints, _simple_fields(alias, fields), dict.fromkeys(ints, -1))
    return f"SELECT {select} FROM {table} {alias}"


def credits_scan_sql(*, above: int | None = None, upto: int | None = None) -> str:
    """Track and artist ids of the credits with rowid in (above, upto], in stored order."""
    sql = table_scan_sql("track_artists", ("track_id", "artist_id"))
    where = [f"ta.rowid > {int(above)}"] if above is not None else []
    where += [f"ta.rowid <= {int(upto)}"] if upto is not None else []
    return sql + (" WHERE " + " AND ".join(where) if where else "")


# The rowid span of tracks and of credits: (lowest, highest), (1, 0) when empty
TRACK_ROWIDS_SQL = "SELECT coalesce(min(rowid), 1), coalesce(max(rowid), 0) FROM tracks"
CREDIT_ROWIDS_SQL = "SELECT coalesce(min(rowid), 1), coalesce(max(rowid), 0) FROM track_artists"
CREDIT_COUNT_SQL = "SELECT count(*) FROM track_artists"
