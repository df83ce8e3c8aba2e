"""The one way the rest of musicark reads the catalogue.

Two readers over catalog.sqlite, both read-only; no module outside `musicark.catalog`
writes SQL against a catalogue table (a test checks the source):

- `ColumnReader`: whole columns as Arrow, through ADBC (SQLite query results straight into
  Arrow record batches), for consumers that touch every track (plan, the search index
  build). Tracks are read in stored (rowid) order, optionally one rowid range at a time
  so that several connections can read in parallel.
- `CatalogReader`: rows on one `sqlite3` connection, as typed records: tracks by id with
  their credits, the change log (`track_changes`) after a sequence number, and look-ups
  by ISRC, external id, album, artist and title.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from musicark.catalog.rights import REDISTRIBUTABLE
from musicark.errors import CatalogError

if TYPE_CHECKING:  # Arrow arrives with ADBC's results: row look-ups (ingest) never load it
    import pyarrow as pa

# A CASE of equalities, not `IN (...)`: SQLite answers an IN list by probing a temporary
# index for every row (about twice the time over a whole-catalogue read); same result.
_PUBLIC = " ".join(f"WHEN '{r}' THEN 1" for r in REDISTRIBUTABLE)
# Track columns a `ColumnReader` reads, by name; `album` and `upc` join the track's album.
TRACK_FIELDS: dict[str, str] = {
    "rowid": "t.rowid",
    "id": "t.id",
    "source_id": "t.source_id",
    "external_id": "t.external_id",
    "title": "t.title",
    "album_id": "t.album_id",
    "isrc": "t.isrc",
    "duration_ms": "t.duration_ms",
    "popularity": "t.popularity",
    "play_count": "t.play_count",
    "track_number": "t.track_number",
    "disc_number": "t.disc_number",
    "rights": "t.rights",
    "redistributable": f"CASE t.rights {_PUBLIC} ELSE 0 END",
    "external_ids": "t.external_ids",
    "album": "al.title",
    "upc": "al.upc",
}
_ALBUM_FIELDS = ("album", "upc")
CREDIT_FIELDS = ("track_id", "position", "artist_id", "role")
ARTIST_FIELDS = ("id", "name", "popularity", "followers")
ALBUM_FIELDS = ("id", "title", "upc", "popularity", "release_date", "total_tracks")
BATCH_ROWS = 1 << 18
_IN_CHUNK = 500  # ids per `IN (...)` look-up


def _literal(value: str | int) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"unsupported default {value!r}")
    return str(int(value)) if isinstance(value, int) else "'" + value.replace("'", "''") + "'"


def _select(
    names: Sequence[str], fields: Mapping[str, str], defaults: Mapping[str, str | int]
) -> str:
    parts = []
    for name in names:
        expr = fields.get(name)
        if expr is None:
            raise ValueError(f"unknown catalogue column {name!r}")
        if name in defaults:
            expr = f"coalesce({expr}, {_literal(defaults[name])})"
        parts.append(f"{expr} AS {name}")
    return ", ".join(parts)


def _simple_fields(prefix: str, names: Iterable[str]) -> dict[str, str]:
    return {n: f"{prefix}.{n}" for n in names}


def tracks_sql(
    columns: Sequence[str],
    *,
    defaults: Mapping[str, str | int] | None = None,
    above: int | None = None,
    upto: int | None = None,
) -> str:
    """The query a `ColumnReader` runs for `columns` of tracks with rowid in (above, upto]."""
    select = _select(columns, TRACK_FIELDS, defaults or {})
    sql = f"SELECT {select} FROM tracks t"
    if any(c in _ALBUM_FIELDS for c in columns):
        sql += " LEFT JOIN albums al ON al.id = t.album_id"
    where = []
    if upto is not None:
        where.append(f"t.rowid <= {int(upto)}")
    if above is not None:
        where.append(f"t.rowid > {int(above)}")
    return sql + (" WHERE " + " AND ".join(where) if where else "")


class ColumnReader:
    """Arrow columns of the catalogue on one ADBC connection (one read snapshot while a
    cursor is open). Use as a context manager; not shared between threads."""

    def __init__(self, path: Path) -> None:
        import adbc_driver_sqlite.dbapi as adbc

        path = Path(path)
        if not path.exists():
            raise CatalogError(f"no catalogue at {path}; create an archive with `musicark init`")
        self.path = path
        self._conn = adbc.connect(f"file:{path}?mode=ro")
        self._cur = self._conn.cursor()

    def __enter__(self) -> ColumnReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._cur.close()
        finally:
            self._conn.close()

    def _table(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        if params is None:
            self._cur.execute(sql)
        else:
            self._cur.execute(sql, params)
        table: pa.Table = self._cur.fetch_arrow_table()
        return table

    def _scalar(self, sql: str) -> int:
        return int(self._table(sql).column(0)[0].as_py() or 0)

    def track_count(self) -> int:
        return self._scalar("SELECT count(*) AS n FROM tracks")

    def max_rowid(self) -> int:
        """The highest rowid of tracks (0 when empty): where rowid ranges end."""
        return self._scalar("SELECT coalesce(max(rowid), 0) AS top FROM tracks")

    def min_rowid(self) -> int:
        """The lowest rowid of tracks (1 when empty): where rowid ranges start."""
        return self._scalar("SELECT coalesce(min(rowid), 1) AS low FROM tracks")

    def last_change(self) -> int:
        """The last `track_changes` sequence number (0 when none)."""
        return self._scalar("SELECT coalesce(max(seq), 0) AS seq FROM track_changes")

    def track_batches(
        self,
        columns: Sequence[str],
        *,
        above: int | None = None,
        upto: int | None = None,
        batch_rows: int = BATCH_ROWS,
    ) -> Iterator[pa.RecordBatch]:
        """`columns` (names of `TRACK_FIELDS`) of tracks with rowid in (above, upto], in
        rowid order, `batch_rows` at a time."""
        self._cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(batch_rows)})
        self._cur.execute(tracks_sql(columns, above=above, upto=upto))
        yield from self._cur.fetch_record_batch()

    def track_page(
        self,
        columns: Sequence[str],
        *,
        after_rowid: int,
        limit: int,
        defaults: Mapping[str, str | int] | None = None,
    ) -> pa.Table:
        """Up to `limit` tracks after `after_rowid`, in rowid order (include "rowid" in
        `columns` to page on); `defaults` replace NULLs in SQL."""
        sql = tracks_sql(columns, defaults=defaults) + " WHERE t.rowid > ? ORDER BY t.rowid LIMIT ?"
        return self._table(sql, (int(after_rowid), int(limit)))

    def credit_batches(
        self, columns: Sequence[str], *, batch_rows: int = BATCH_ROWS
    ) -> Iterator[pa.RecordBatch]:
        """Every credit (track to artist), in stored order, `batch_rows` at a time."""
        self._cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(batch_rows)})
        fields = _simple_fields("ta", CREDIT_FIELDS)
        self._cur.execute(f"SELECT {_select(columns, fields, {})} FROM track_artists ta")
        yield from self._cur.fetch_record_batch()

    def credit_rows_bound(self) -> int:
        """At least the number of credits: room to read them into. Their rowid span (no
        scan) unless rowids are too sparse for that to be sensible, then a count."""
        span = self._scalar(
            "SELECT coalesce(max(rowid) - min(rowid) + 1, 0) AS n FROM track_artists"
        )
        if span <= 1 << 32:
            return span
        return self._scalar("SELECT count(*) AS n FROM track_artists")

    def credits(self, columns: Sequence[str] = ("track_id", "artist_id")) -> pa.Table:
        """Every credit (track to artist), in stored order."""
        fields = _simple_fields("ta", CREDIT_FIELDS)
        return self._table(f"SELECT {_select(columns, fields, {})} FROM track_artists ta")

    def artists(
        self, columns: Sequence[str], *, defaults: Mapping[str, str | int] | None = None
    ) -> pa.Table:
        fields = _simple_fields("a", ARTIST_FIELDS)
        return self._table(f"SELECT {_select(columns, fields, defaults or {})} FROM artists a")

    def albums(
        self, columns: Sequence[str], *, defaults: Mapping[str, str | int] | None = None
    ) -> pa.Table:
        fields = _simple_fields("al", ALBUM_FIELDS)
        return self._table(f"SELECT {_select(columns, fields, defaults or {})} FROM albums al")


# ---------------------------------------------------------------- rows


@dataclass(frozen=True, slots=True)
class Credit:
    artist_id: int
    name: str
    role: str
    position: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class TrackRecord:
    """One catalogue track with its album's title and UPC, its source's name and credits."""

    id: int
    title: str
    source: str | None = None
    external_id: str | None = None
    album_id: int | None = None
    album: str | None = None
    upc: str | None = None
    isrc: str | None = None
    duration_ms: int | None = None
    popularity: int | None = None
    play_count: int | None = None
    track_number: int | None = None
    disc_number: int | None = None
    explicit: int | None = None
    rights: str | None = None
    license_url: str | None = None
    genres: str | None = None  # JSON array, as stored
    external_ids: str | None = None  # JSON object, as stored
    artists: tuple[Credit, ...] = field(default=())

    @property
    def artist_names(self) -> list[str]:
        return [c.name for c in self.artists]

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "artists"}
        out["artists"] = [c.to_dict() for c in self.artists]
        return out


@dataclass(frozen=True, slots=True)
class AlbumRecord:
    id: int
    title: str | None
    album_type: str | None = None
    upc: str | None = None
    label: str | None = None
    release_date: str | None = None
    popularity: int | None = None
    total_tracks: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ArtistRecord:
    id: int
    name: str
    popularity: int | None = None
    followers: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_TRACK_ROW = (
    "SELECT t.id, t.title, s.name, t.external_id, t.album_id, al.title, al.upc, t.isrc,"
    " t.duration_ms, t.popularity, t.play_count, t.track_number, t.disc_number, t.explicit,"
    " t.rights, t.license_url, t.genres, t.external_ids FROM tracks t"
    " LEFT JOIN albums al ON al.id = t.album_id LEFT JOIN sources s ON s.id = t.source_id"
)
_ALBUM_ROW = (
    "SELECT id, title, album_type, upc, label, release_date, popularity, total_tracks FROM albums"
)


def _chunks(ids: Sequence[int], n: int = _IN_CHUNK) -> Iterator[Sequence[int]]:
    for i in range(0, len(ids), n):
        yield ids[i : i + n]


class CatalogReader:
    """Row look-ups on a read-only `sqlite3` connection to catalog.sqlite.

    `CatalogReader.open(path)` owns its connection (close it, or use `with`);
    `CatalogReader(conn)` borrows one (the web UI keeps one per thread).
    """

    def __init__(self, conn: sqlite3.Connection, *, owned: bool = False) -> None:
        self.conn = conn
        self._owned = owned

    @classmethod
    def open(cls, path: Path) -> CatalogReader:
        from musicark.catalog.db import connect

        return cls(connect(Path(path), readonly=True), owned=True)

    def __enter__(self) -> CatalogReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owned:
            self.conn.close()

    # ------------------------------------------------------------ counts and changes

    def track_count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM tracks").fetchone()[0])

    def last_change(self) -> int:
        """The last `track_changes` sequence number (0 when none, or before the change log)."""
        try:
            row = self.conn.execute("SELECT max(seq) FROM track_changes").fetchone()
        except sqlite3.OperationalError:  # a catalogue from before the change log
            return 0
        return int(row[0] or 0)

    def change_summary(self) -> tuple[int, int]:
        """(number of changes, last sequence number): what changes when the catalogue does."""
        row = self.conn.execute(
            "SELECT count(*), COALESCE(max(seq), 0) FROM track_changes"
        ).fetchone()
        return int(row[0]), int(row[1])

    def pending_changes(self, since: int) -> int:
        """Changes recorded after sequence number `since`."""
        row = self.conn.execute("SELECT count(*) FROM track_changes WHERE seq > ?", (since,))
        return int(row.fetchone()[0])

    def changes_since(self, since: int, *, limit: int) -> list[tuple[int, int]]:
        """Up to `limit` (seq, track_id) changes after `since`, in order."""
        return [
            (int(s), int(t))
            for s, t in self.conn.execute(
                "SELECT seq, track_id FROM track_changes WHERE seq > ? ORDER BY seq LIMIT ?",
                (since, limit),
            )
        ]

    def titles(self, *, changed_since: int | None = None) -> sqlite3.Cursor:
        """A cursor over (id, title) of every track, or of the tracks changed after
        `changed_since` (a track changed twice comes twice); fetch with `fetchmany`."""
        if changed_since is None:
            return self.conn.execute("SELECT id, title FROM tracks")
        return self.conn.execute(
            "SELECT t.id, t.title FROM track_changes c JOIN tracks t ON t.id = c.track_id"
            " WHERE c.seq > ?",
            (changed_since,),
        )

    # ------------------------------------------------------------ tracks

    def credits(self, track_ids: Sequence[int]) -> dict[int, list[Credit]]:
        """Each track's credited artists in position order (tracks without credits absent)."""
        out: dict[int, list[Credit]] = {}
        for part in _chunks(sorted(set(track_ids))):
            marks = ",".join("?" * len(part))
            for tid, pos, role, aid, name in self.conn.execute(
                "SELECT ta.track_id, ta.position, ta.role, ar.id, ar.name FROM track_artists ta"
                f" JOIN artists ar ON ar.id = ta.artist_id WHERE ta.track_id IN ({marks})"
                " ORDER BY ta.track_id, ta.position",
                list(part),
            ):
                out.setdefault(tid, []).append(Credit(aid, name or "", role, pos))
        return out

    def _records(self, rows: list[tuple[Any, ...]]) -> list[TrackRecord]:
        credits = self.credits([r[0] for r in rows]) if rows else {}
        return [TrackRecord(*r, artists=tuple(credits.get(r[0], ()))) for r in rows]  # type: ignore[misc]

    def tracks(self, track_ids: Iterable[int]) -> dict[int, TrackRecord]:
        """The tracks of `track_ids` that exist, by id, with their credits."""
        rows: list[tuple[Any, ...]] = []
        for part in _chunks(sorted(set(track_ids))):
            marks = ",".join("?" * len(part))
            rows += self.conn.execute(f"{_TRACK_ROW} WHERE t.id IN ({marks})", list(part))
        return {r.id: r for r in self._records(rows)}

    def track(self, track_id: int) -> TrackRecord | None:
        return self.tracks([track_id]).get(track_id)

    def by_isrc(
        self, isrc: str, *, exclude: int | None = None, limit: int | None = None
    ) -> list[TrackRecord]:
        """Tracks with exactly this ISRC, most popular first."""
        sql = f"{_TRACK_ROW} WHERE t.isrc = ?"
        params: list[Any] = [isrc]
        if exclude is not None:
            sql += " AND t.id != ?"
            params.append(exclude)
        sql += " ORDER BY t.popularity DESC, t.id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return self._records(self.conn.execute(sql, params).fetchall())

    def by_external_id(self, kinds: Sequence[str], value: str) -> list[int]:
        """Ids of tracks with an external id of one of `kinds` equal to `value`, ascending."""
        marks = ",".join("?" * len(kinds))
        return [
            int(r[0])
            for r in self.conn.execute(
                "SELECT DISTINCT entity_id FROM external_ids WHERE entity = 'track'"
                f" AND kind IN ({marks}) AND value = ? ORDER BY entity_id",
                (*kinds, value),
            )
        ]

    def by_album(self, album_id: int, *, limit: int) -> list[TrackRecord]:
        """An album's tracks in disc, track number and title order."""
        rows = self.conn.execute(
            f"{_TRACK_ROW} WHERE t.album_id = ?"
            " ORDER BY t.disc_number, t.track_number, t.title LIMIT ?",
            (album_id, limit),
        ).fetchall()
        return self._records(rows)

    def by_artist(self, artist_id: int, *, limit: int) -> list[TrackRecord]:
        """Tracks crediting an artist, most popular first."""
        rows = self.conn.execute(
            f"{_TRACK_ROW} JOIN track_artists ta ON ta.track_id = t.id WHERE ta.artist_id = ?"
            " ORDER BY t.popularity DESC, t.id LIMIT ?",
            (artist_id, limit),
        ).fetchall()
        return self._records(rows)

    # ------------------------------------------------------------ albums and artists

    def album(self, album_id: int) -> AlbumRecord | None:
        row = self.conn.execute(f"{_ALBUM_ROW} WHERE id = ?", (album_id,)).fetchone()
        return None if row is None else AlbumRecord(*row)

    def artist(self, artist_id: int) -> ArtistRecord | None:
        row = self.conn.execute(
            "SELECT id, name, popularity, followers FROM artists WHERE id = ?", (artist_id,)
        ).fetchone()
        return None if row is None else ArtistRecord(*row)

    def albums_of_artist(self, artist_id: int, *, limit: int) -> list[AlbumRecord]:
        """Albums on which the artist is credited first on some track, newest first."""
        rows = self.conn.execute(
            "SELECT DISTINCT al.id, al.title, al.album_type, al.upc, al.label, al.release_date,"
            " al.popularity, al.total_tracks FROM track_artists ta"
            " JOIN tracks t ON t.id = ta.track_id JOIN albums al ON al.id = t.album_id"
            " WHERE ta.artist_id = ? AND ta.position = 0 ORDER BY al.release_date DESC LIMIT ?",
            (artist_id, limit),
        ).fetchall()
        return [AlbumRecord(*r) for r in rows]
