"""What the web pages and the JSON API show, read from the archive without changing it.

Every database is opened read-only (`mode=ro`), one connection per thread. Tables owned by
other parts of the pipeline (store, release, swarm, plan) may not exist yet: a missing
database, table or column reads as "nothing yet" (an empty list or None), never an error.
Identifiers are returned as strings: track ids are 63-bit and JavaScript numbers are not.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson

from musicark.archive import Archive
from musicark.catalog.reader import CatalogReader, TrackRecord

MAX_LIST = 200  # rows on any one page of a list (tracks of an album, an artist, ...)
SUMMARY_TTL = 10.0  # seconds whole-archive counts (holdings, verification) are reused


def sid(value: Any) -> str | None:
    return None if value is None else str(value)


def safe_magnet(value: Any) -> str | None:
    """A magnet link fit to put in a page (a `magnet:?` URI of sane length), else None."""
    if isinstance(value, str) and value.startswith("magnet:?") and len(value) <= 8192:
        return value
    return None


def _json(text: Any, default: Any) -> Any:
    if not isinstance(text, str | bytes) or not text:
        return default
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return default


class ArchiveReader:
    """Read-only access to catalog.sqlite and state.sqlite, safe to share across threads."""

    def __init__(self, archive: Archive) -> None:
        self.archive = archive
        self._local = threading.local()
        self._cache: dict[str, tuple[float, Any]] = {}
        self._cache_lock = threading.Lock()

    def cached(self, key: str, compute: Callable[[], Any], *, ttl: float = SUMMARY_TTL) -> Any:
        """`compute()`, reused for `ttl` seconds and computed by one thread at a time: whole-
        table counts take seconds on a catalogue of hundreds of millions of tracks, and a
        busy health or coverage page must not start one per request."""
        found = self._cache.get(key)
        if found is not None and time.monotonic() - found[0] < ttl:
            return found[1]
        with self._cache_lock:
            found = self._cache.get(key)
            if found is not None and time.monotonic() - found[0] < ttl:
                return found[1]
            value = compute()
            self._cache[key] = (time.monotonic(), value)
            return value

    # ------------------------------------------------------------ connections

    def _connect(self, path: Path) -> sqlite3.Connection | None:
        cache: dict[Path, sqlite3.Connection] = self._local.__dict__.setdefault("conns", {})
        conn = cache.get(path)
        if conn is not None:
            return conn
        if not path.is_file():
            return None
        try:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute("PRAGMA query_only=ON")
        except sqlite3.DatabaseError:
            return None
        cache[path] = conn
        return conn

    def catalog(self) -> sqlite3.Connection | None:
        return self._connect(self.archive.catalog_path)

    def state(self) -> sqlite3.Connection | None:
        return self._connect(self.archive.state_path)

    @staticmethod
    def columns(conn: sqlite3.Connection | None, table: str) -> set[str]:
        """The columns of `table` (empty when the table does not exist)."""
        if conn is None:
            return set()
        try:
            return {r[1] for r in conn.execute("SELECT * FROM pragma_table_info(?)", (table,))}
        except sqlite3.DatabaseError:
            return set()

    @staticmethod
    def rows(
        conn: sqlite3.Connection | None, sql: str, params: Iterable[Any] = ()
    ) -> list[dict[str, Any]]:
        """Rows as dicts; a table or column that is not there yet gives no rows."""
        if conn is None:
            return []
        try:
            cur = conn.execute(sql, tuple(params))
            names = [d[0] for d in cur.description or ()]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        except sqlite3.OperationalError:
            return []

    # ------------------------------------------------------------ catalogue

    def reader(self) -> CatalogReader | None:
        """The catalogue reader on this thread's connection (None without a catalogue)."""
        conn = self.catalog()
        return None if conn is None else CatalogReader(conn)

    @staticmethod
    def _track_list(tracks: list[TrackRecord], *, album: bool = True) -> list[dict[str, Any]]:
        return [
            {
                "id": sid(t.id),
                "title": t.title,
                "artists": _artists(t),
                "album_id": sid(t.album_id),
                "album": t.album if album else None,
                "popularity": t.popularity,
                "duration_ms": t.duration_ms,
                "isrc": t.isrc,
                "track_number": t.track_number,
                "disc_number": t.disc_number,
                "rights": t.rights,
            }
            for t in tracks
        ]

    def track(self, track_id: int) -> dict[str, Any] | None:
        reader = self.reader()
        if reader is None:
            return None
        try:
            t = reader.track(track_id)
            if t is None:
                return None
            a = reader.album(t.album_id) if t.album_id is not None else None
            same = reader.by_isrc(t.isrc, exclude=track_id, limit=50) if t.isrc else []
        except sqlite3.OperationalError:
            return None
        album = None
        if a is not None:
            album = {
                "id": sid(a.id),
                "title": a.title,
                "upc": a.upc,
                "label": a.label,
                "release_date": a.release_date,
                "album_type": a.album_type,
            }
        renditions = self.renditions(track_id)
        locations = self.locations(track_id, [r["sha256"] for r in renditions])
        ext = _json(t.external_ids, {})
        return {
            "id": sid(t.id),
            "title": t.title,
            "source": t.source,
            "external_id": t.external_id,
            "isrc": t.isrc,
            "duration_ms": t.duration_ms,
            "popularity": t.popularity,
            "play_count": t.play_count,
            "track_number": t.track_number,
            "disc_number": t.disc_number,
            "explicit": None if t.explicit is None else bool(t.explicit),
            "rights": t.rights,
            "license_url": t.license_url,
            "genres": [str(g) for g in _json(t.genres, []) if isinstance(g, str | int)],
            "external_ids": {str(k): str(v) for k, v in ext.items() if v is not None}
            if isinstance(ext, dict)
            else {},
            "album": album,
            "artists": _artists(t),
            "same_isrc": self._track_list(same),
            "renditions": renditions,
            "duplicates": self.duplicates(track_id, renditions),
            "held": bool(renditions),
            "locations": locations,
            "released": bool(locations),
        }

    def album(self, album_id: int) -> dict[str, Any] | None:
        reader = self.reader()
        if reader is None:
            return None
        try:
            a = reader.album(album_id)
            if a is None:
                return None
            tracks = reader.by_album(album_id, limit=MAX_LIST)
        except sqlite3.OperationalError:
            return None
        return {
            "id": sid(a.id),
            "title": a.title,
            "album_type": a.album_type,
            "upc": a.upc,
            "label": a.label,
            "release_date": a.release_date,
            "popularity": a.popularity,
            "total_tracks": a.total_tracks,
            "tracks": self._track_list(tracks, album=False),
        }

    def artist(self, artist_id: int) -> dict[str, Any] | None:
        reader = self.reader()
        if reader is None:
            return None
        try:
            a = reader.artist(artist_id)
            if a is None:
                return None
            tracks = reader.by_artist(artist_id, limit=MAX_LIST)
            albums = reader.albums_of_artist(artist_id, limit=MAX_LIST)
        except sqlite3.OperationalError:
            return None
        return {
            "id": sid(a.id),
            "name": a.name,
            "popularity": a.popularity,
            "followers": a.followers,
            "albums": [
                {"id": sid(r.id), "title": r.title, "release_date": r.release_date} for r in albums
            ],
            "tracks": self._track_list(tracks),
        }

    # ------------------------------------------------------------ store

    def renditions(self, track_id: int) -> list[dict[str, Any]]:
        conn = self.state()
        if not {"sha256", "track_id"} <= self.columns(conn, "renditions"):
            return []
        rows = self.rows(
            conn,
            "SELECT b.*, r.match_method, r.confidence, r.preferred, r.preferred_reason"
            " FROM renditions r JOIN blobs b ON b.sha256 = r.sha256 WHERE r.track_id = ?"
            " ORDER BY r.preferred DESC, b.bitrate DESC LIMIT 100",
            (track_id,),
        )
        return [
            {
                "sha256": r["sha256"],
                "size": r.get("size"),
                "container": r.get("container"),
                "codec": r.get("codec"),
                "bitrate": r.get("bitrate"),
                "sample_rate": r.get("sample_rate"),
                "channels": r.get("channels"),
                "lossless": None if r.get("lossless") is None else bool(r["lossless"]),
                "duration_ms": r.get("duration_ms"),
                "preferred": bool(r.get("preferred")),
                "preferred_reason": r.get("preferred_reason"),
                "match_method": r.get("match_method"),
                "confidence": r.get("confidence"),
            }
            for r in rows
        ]

    def duplicates(self, track_id: int, renditions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Held audio elsewhere in the archive that sounds the same as this track's
        renditions (the store's Chromaprint index; read-only look-ups)."""
        conn = self.state()
        if not renditions or not {"id", "sha256", "fp"} <= self.columns(conn, "fingerprints"):
            return []
        assert conn is not None
        try:
            from musicark.store.acoustic import near_duplicates_of
            from musicark.store.fingerprint import from_bytes
        except ImportError:
            return []
        out: list[dict[str, Any]] = []
        own = {r["sha256"] for r in renditions}
        try:
            for r in renditions[:8]:
                row = conn.execute(
                    "SELECT id, fp FROM fingerprints WHERE sha256 = ?", (r["sha256"],)
                ).fetchone()
                if row is None:
                    continue
                for other, ber, _offset, _overlap in near_duplicates_of(
                    conn, row[0], from_bytes(row[1])
                ):
                    found = conn.execute(
                        "SELECT f.sha256, r.track_id FROM fingerprints f"
                        " LEFT JOIN renditions r ON r.sha256 = f.sha256 WHERE f.id = ?",
                        (other,),
                    ).fetchone()
                    if found is None or found[0] in own:
                        continue
                    out.append(
                        {
                            "sha256": found[0],
                            "track_id": sid(found[1]),
                            "of": r["sha256"],
                            "bit_error_rate": round(float(ber), 4),
                        }
                    )
                    if len(out) >= 50:
                        return out
        except (sqlite3.Error, ValueError):
            return out
        return out

    def rendition(self, track_id: int, sha256: str) -> dict[str, Any] | None:
        """The stored file `sha256` if it is a rendition of `track_id` (container, codec)."""
        found = self.rows(
            self.state(),
            "SELECT b.sha256, b.size, b.container, b.codec FROM renditions r"
            " JOIN blobs b ON b.sha256 = r.sha256 WHERE r.sha256 = ? AND r.track_id = ?",
            (sha256, track_id),
        )
        return found[0] if found else None

    def track_rights(self, track_id: int) -> str | None:
        reader = self.reader()
        found = reader.track(track_id) if reader is not None else None
        return found.rights if found is not None else None

    def rights_of(self, track_ids: list[int]) -> dict[str, str | None]:
        reader = self.reader()
        if reader is None:
            return {}
        return {str(k): t.rights for k, t in reader.tracks(track_ids).items()}

    def held(self, track_ids: list[str | None]) -> dict[str, dict[str, Any]]:
        """Per listed track held in the store: its preferred (else best) rendition and the
        torrent and release that carry the track, if any."""
        ids = [int(t) for t in track_ids if t is not None]
        conn = self.state()
        out: dict[str, dict[str, Any]] = {}
        if not ids or not {"sha256", "track_id"} <= self.columns(conn, "renditions"):
            return out
        released = "track_id" in self.columns(conn, "release_files")
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            marks = ",".join("?" * len(part))
            for r in self.rows(
                conn,
                "SELECT r.track_id, r.sha256, b.container, b.codec FROM renditions r"
                f" JOIN blobs b ON b.sha256 = r.sha256 WHERE r.track_id IN ({marks})"
                " ORDER BY r.track_id, r.preferred DESC, b.bitrate DESC",
                part,
            ):
                out.setdefault(
                    str(r["track_id"]),
                    {"sha256": r["sha256"], "container": r["container"], "codec": r["codec"]},
                )
            if not released:
                continue
            for r in self.rows(
                conn,
                "SELECT rf.track_id, rf.torrent, t.release FROM release_files rf"
                f" LEFT JOIN torrents t ON t.name = rf.torrent WHERE rf.track_id IN ({marks})",
                part,
            ):
                entry = out.get(str(r["track_id"]))
                if entry is not None and "torrent" not in entry:
                    entry.update(torrent=r["torrent"], release=r["release"])
        return out

    # ------------------------------------------------------------ releases

    def torrent_named(self, name: str) -> dict[str, Any] | None:
        found = self.rows(self.state(), "SELECT * FROM torrents WHERE name = ?", (name,))
        return found[0] if found else None

    def latest_metadata(self, release: str) -> dict[str, Any] | None:
        """The release's newest published metadata torrent."""
        found = self.rows(
            self.state(),
            "SELECT * FROM torrents WHERE release = ? AND kind = 'metadata'"
            " ORDER BY created DESC, name DESC LIMIT 1",
            (release,),
        )
        return found[0] if found else None

    def locations(self, track_id: int, shas: list[str]) -> list[dict[str, Any]]:
        """Where the track's files are in the published torrents."""
        conn = self.state()
        rf = self.columns(conn, "release_files")
        if not rf or "path" not in rf:
            return []
        where: list[str] = []
        params: list[Any] = []
        if "track_id" in rf:
            where.append("rf.track_id = ?")
            params.append(track_id)
        if "sha256" in rf and shas:
            where.append(f"rf.sha256 IN ({','.join('?' * len(shas))})")
            params.extend(shas)
        if not where:
            return []
        files = self.rows(
            conn, f"SELECT rf.* FROM release_files rf WHERE {' OR '.join(where)} LIMIT 50", params
        )
        out = []
        for f in files:
            torrent = self._torrent(conn, f.get("torrent"))
            out.append(
                {
                    "path": f.get("path"),
                    "size": f.get("size"),
                    "sha256": f.get("sha256"),
                    "torrent": torrent.get("name") if torrent else sid(f.get("torrent")),
                    "release": sid(torrent.get("release")) if torrent else None,
                    "magnet": safe_magnet(torrent.get("magnet")) if torrent else None,
                    "infohash": (torrent.get("infohash_v1") or torrent.get("infohash_v2"))
                    if torrent
                    else None,
                    "first_piece": f.get("first_piece"),
                    "last_piece": f.get("last_piece"),
                }
            )
        return out

    def _torrent(self, conn: sqlite3.Connection | None, key: Any) -> dict[str, Any] | None:
        if key is None:
            return None
        cols = self.columns(conn, "torrents")
        for col in ("id", "name", "infohash_v1"):
            if col in cols:
                found = self.rows(conn, f"SELECT * FROM torrents WHERE {col} = ?", (key,))
                if found:
                    return found[0]
        return None

    def releases(self) -> dict[str, Any]:
        conn = self.state()
        releases = self.rows(
            conn, "SELECT * FROM releases ORDER BY rowid DESC LIMIT ?", (MAX_LIST,)
        )
        torrents = self.rows(conn, "SELECT * FROM torrents ORDER BY rowid LIMIT 2000")
        health = self.swarm_health()
        out_t = []
        for t in torrents:
            ih = t.get("infohash_v1") or t.get("infohash_v2")
            out_t.append(
                {
                    "name": t.get("name"),
                    "kind": t.get("kind"),
                    "format": t.get("format"),
                    "torrent_size": t.get("torrent_size"),
                    "restricted": bool(t.get("restricted")),
                    "release": sid(t.get("release") if "release" in t else t.get("release_id")),
                    "magnet": safe_magnet(t.get("magnet")),
                    "infohash": ih,
                    "file_count": t.get("file_count"),
                    "data_size": t.get("data_size"),
                    "created": t.get("created"),
                    "obsolete": bool(t.get("obsolete")),
                    "embargo": t.get("embargo"),
                    "swarm": health.get(str(t.get("infohash_v1") or "").lower())
                    or health.get(str(t.get("infohash_v2") or "").lower())
                    or health.get(str(t.get("infohash_v2") or "")[:40].lower()),
                }
            )
        safe = {"name", "created", "restricted", "published", "next_serial"}
        return {
            "releases": [{k: v for k, v in r.items() if k in safe} for r in releases],
            "torrents": out_t,
        }

    def swarm_health(self) -> dict[str, dict[str, Any]]:
        """The latest tracker figures per infohash (the swarm part's scrape history)."""
        conn = self.state()
        if conn is None or not self.columns(conn, "swarm_scrapes"):
            return {}
        try:
            from musicark.swarm.history import latest_figures

            figures = latest_figures(conn)
        except (ImportError, sqlite3.Error):
            return {}
        return {
            str(infohash).lower(): {
                "seeders": f.seeders,
                "leechers": f.leechers,
                "completed": f.completed,
                "at": f.scraped_at,
                "trackers_ok": f.trackers_ok,
                "errors": [str(e)[:300] for e in f.errors[:10]],
            }
            for infohash, f in figures.items()
        }

    # ------------------------------------------------------------ health and coverage

    def last_audit(self, *, level: str | None = None) -> dict[str, Any] | None:
        """The latest audit (of `level` only, when given)."""
        conn = self.state()
        where, params = ("WHERE level = ?", (level,)) if level else ("", ())
        rows = self.rows(conn, f"SELECT * FROM audits {where} ORDER BY id DESC LIMIT 1", params)
        if not rows:
            return None
        a = rows[0]
        result = _json(a.get("result"), {})
        return {
            "started": a.get("started"),
            "finished": a.get("finished"),
            "level": a.get("level"),
            "ok": bool(a.get("ok")),
            "checked": a.get("checked"),
            "bytes": a.get("bytes"),
            "changed": a.get("changed"),
            "missing": a.get("missing"),
            "untracked": a.get("untracked"),
            "examples": _examples(result),
        }

    def holdings(self) -> dict[str, Any]:
        """How many catalogue tracks the store holds a rendition of (a fresh copy of figures
        at most `SUMMARY_TTL` seconds old)."""
        return dict(self.cached("holdings", self._count_holdings))

    def _count_holdings(self) -> dict[str, Any]:
        reader, st = self.reader(), self.state()
        try:
            tracks = reader.track_count() if reader is not None else 0
        except sqlite3.OperationalError:
            tracks = 0
        held = self.rows(
            st,
            "SELECT count(DISTINCT track_id) AS n, count(*) AS renditions FROM renditions"
            " WHERE track_id IS NOT NULL",
        )
        blobs = self.rows(st, "SELECT count(*) AS n, coalesce(sum(size), 0) AS bytes FROM blobs")
        return {
            "tracks": tracks,
            "tracks_held": held[0]["n"] if held else 0,
            "renditions": held[0]["renditions"] if held else 0,
            "blobs": blobs[0]["n"] if blobs else 0,
            "bytes": blobs[0]["bytes"] if blobs else 0,
        }


def _artists(track: TrackRecord) -> list[dict[str, Any]]:
    return [{"id": sid(c.artist_id), "name": c.name, "role": c.role} for c in track.artists]


def _examples(result: Any) -> dict[str, list[str]]:
    """A few paths per audit finding (changed, missing, untracked), as strings."""
    out: dict[str, list[str]] = {}
    if not isinstance(result, dict):
        return out
    for key in ("changed", "missing", "untracked"):
        value = result.get(key)
        if isinstance(value, list):
            out[key] = [str(v if not isinstance(v, dict) else v.get("path", v)) for v in value[:20]]
    return out
