"""`musicark locate`: where a track is in the published torrents.

A query is a track id (digits), an ISRC, a sha256 (or a prefix of at least 16 hex
digits) or `artist - title`. The answer names the torrent, the path inside it, its
magnet link and the byte and piece range, from an archive's release tables or, offline,
from a metadata release's `locate.sqlite` (the same tables, for one release).
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from musicark.archive import Archive
from musicark.errors import ReleaseError, UsageError

LOCATE_DB = "locate.sqlite"
_HEX = re.compile(r"^[0-9a-f]{16,64}$")
_ISRC = re.compile(r"^[A-Z]{2}[A-Z0-9]{3}\d{7}$")


@dataclass(frozen=True)
class Location:
    release: str
    torrent: str
    path: str  # inside the torrent's folder
    magnet: str
    sha256: str
    track_id: int | None
    isrc: str | None
    artists: list[str]
    title: str | None
    size: int
    offset: int  # first byte in the torrent's piece space
    first_piece: int
    last_piece: int
    piece_length: int
    infohash_v1: str | None
    infohash_v2: str | None
    obsolete: bool

    @property
    def byte_range(self) -> tuple[int, int]:
        """First and last byte of the file in the torrent's piece space (inclusive)."""
        return self.offset, self.offset + max(self.size, 1) - 1

    @property
    def full_path(self) -> str:
        return f"{self.torrent}/{self.path}"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["byte_range"] = list(self.byte_range)
        out["full_path"] = self.full_path
        out["track_id"] = str(self.track_id) if self.track_id is not None else None
        return out


def classify(query: str) -> tuple[str, Any]:
    """('track_id' | 'sha256' | 'isrc' | 'name', value) for a query string."""
    q = query.strip()
    if not q:
        raise UsageError("give a track id, an ISRC, a sha256 or 'artist - title'")
    if q.isdigit() and len(q) <= 19:
        return "track_id", int(q)
    compact = re.sub(r"[\s\-]", "", q).upper()
    if _ISRC.match(compact):
        return "isrc", compact
    if _HEX.match(q.lower()):
        return "sha256", q.lower()
    if " - " in q:
        return "name", q
    raise UsageError(
        f"cannot tell what {query!r} is: give a track id, an ISRC, a sha256 (16+ hex digits)"
        " or 'artist - title'"
    )


def _name_keys(query: str) -> list[str]:
    from musicark.store.match import normalize

    parts = query.split(" - ")
    keys = []
    for i in range(1, len(parts)):
        artist, title = " - ".join(parts[:i]), " - ".join(parts[i:])
        keys.append(f"{normalize(artist)} - {normalize(title)}")
    return keys


_SELECT = (
    "SELECT t.release, rf.torrent, rf.path, t.magnet, rf.sha256, rf.track_id, rf.isrc,"
    " rf.artists, rf.title, rf.size, rf.offset, rf.first_piece, rf.last_piece,"
    " t.piece_length, t.infohash_v1, t.infohash_v2, t.obsolete"
    " FROM release_files rf JOIN torrents t ON t.name = rf.torrent"
)


def _open(source: Archive | Path | str) -> sqlite3.Connection:
    if isinstance(source, Archive):
        if not source.state_path.exists():
            raise ReleaseError("the archive has no releases yet (`musicark pack RELEASE`)")
        conn = source.connect_state(readonly=True)
        where = "the archive"
    else:
        path = Path(source)
        db = path / LOCATE_DB if path.is_dir() else path
        if not db.is_file():
            raise ReleaseError(f"{path}: no {LOCATE_DB} here; is it a metadata release folder?")
        try:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            raise ReleaseError(f"{db}: cannot open ({exc})") from exc
        where = str(db)
    try:
        ok = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
            " AND name IN ('release_files', 'torrents', 'release_names')"
        ).fetchone()[0]
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise ReleaseError(f"{where}: not a locate index ({exc})") from exc
    if ok != 3:
        conn.close()
        raise ReleaseError(f"{where} has no releases yet (`musicark pack RELEASE`)")
    return conn


def locate(
    archive_or_metadata_dir: Archive | Path | str,
    query: str,
    *,
    release: str | None = None,
    limit: int = 100,
) -> list[Location]:
    """Every place `query` is found, current torrents first (see the module docstring)."""
    kind, value = classify(query)
    conn = _open(archive_or_metadata_dir)
    try:
        if kind == "track_id" and len(query.strip()) >= 16:
            # 16+ digits may also be a sha256 prefix (one in ~2 000 hashes starts so)
            prefix = query.strip()
            where = "(rf.track_id = ? OR (rf.sha256 >= ? AND rf.sha256 < ?))"
            params = [value, prefix, prefix + "g"]
        elif kind == "track_id":
            where, params = "rf.track_id = ?", [value]
        elif kind == "isrc":
            where, params = "rf.isrc = ?", [value]
        elif kind == "sha256":
            if len(value) == 64:
                where, params = "rf.sha256 = ?", [value]
            else:
                where, params = "rf.sha256 >= ? AND rf.sha256 < ?", [value, value + "g"]
        else:
            keys = _name_keys(value)
            marks = ",".join("?" * len(keys))
            where = (
                "EXISTS (SELECT 1 FROM release_names n WHERE n.torrent = rf.torrent"
                f" AND n.path = rf.path AND n.name_key IN ({marks}))"
            )
            params = list(keys)
        if release is not None:
            if not conn.execute(
                "SELECT 1 FROM torrents WHERE release = ? LIMIT 1", (release,)
            ).fetchone():
                raise ReleaseError(f"no release named {release!r} here")
            where += " AND t.release = ?"
            params.append(release)
        rows = conn.execute(
            f"{_SELECT} WHERE {where} ORDER BY t.obsolete, rf.torrent, rf.path LIMIT ?",
            [*params, limit],
        ).fetchall()
    finally:
        conn.close()
    return [
        Location(
            release=r[0],
            torrent=r[1],
            path=r[2],
            magnet=r[3],
            sha256=r[4],
            track_id=r[5],
            isrc=r[6],
            artists=json.loads(r[7]) if r[7] else [],
            title=r[8],
            size=r[9],
            offset=r[10],
            first_piece=r[11],
            last_piece=r[12],
            piece_length=r[13],
            infohash_v1=r[14],
            infohash_v2=r[15],
            obsolete=bool(r[16]),
        )
        for r in rows
    ]
