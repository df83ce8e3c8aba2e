"""The torrents the swarm commands act on: an archive's releases, or .torrent files."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from musicark.archive import Archive
from musicark.errors import SwarmError
from musicark.torrent.magnet import magnet_link
from musicark.torrent.metainfo import Torrent, load_torrent


@dataclass(frozen=True, slots=True)
class SwarmTorrent:
    name: str
    infohash: str  # hex v1 infohash; the v2 one for a v2-only torrent
    infohash_v2: str | None
    size: int
    trackers: tuple[str, ...]
    magnet: str
    torrent_path: Path | None = None
    data_path: Path | None = None
    release: str | None = None


def from_torrent(
    torrent: Torrent,
    *,
    torrent_path: Path | None = None,
    data_path: Path | None = None,
    release: str | None = None,
    extra_trackers: Sequence[str] = (),
) -> SwarmTorrent:
    trackers = [url for tier in torrent.trackers for url in tier]
    trackers += [u for u in extra_trackers if u not in trackers]
    return SwarmTorrent(
        name=torrent.name,
        infohash=torrent.info_hash_v1 or torrent.info_hash_v2 or "",
        infohash_v2=torrent.info_hash_v2,
        size=torrent.total_size,
        trackers=tuple(trackers),
        magnet=magnet_link(
            name=torrent.name,
            info_hash_v1=torrent.info_hash_v1,
            info_hash_v2=torrent.info_hash_v2,
            trackers=trackers,
            web_seeds=torrent.web_seeds,
        ),
        torrent_path=torrent_path,
        data_path=data_path,
        release=release,
    )


def torrent_files(paths: Iterable[Path]) -> list[Path]:
    """`.torrent` files given directly or found (recursively) in the given folders.

    A path that is neither a folder nor missing is kept whatever it is (a device, a
    FIFO): loading it says what it is.
    """
    out: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            out.extend(sorted(path.rglob("*.torrent")))
        elif path.exists() or path.is_symlink():
            out.append(path)
        else:
            raise SwarmError(f"{path}: no such file or folder")
    return out


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


@dataclass(frozen=True, slots=True)
class ReleaseRow:
    """One release torrent as the release tables record it (paths resolved)."""

    name: str
    torrent_path: Path
    data_path: Path | None
    release: str | None


def release_rows(
    archive: Archive, releases: Sequence[str] = (), *, include_obsolete: bool = False
) -> list[ReleaseRow]:
    """The archive's release torrents (from the release tables in state.sqlite), those of
    `releases` (release or torrent names) when given; an unknown name is an error."""
    if not archive.state_path.exists():
        return []
    conn = archive.connect_state(readonly=True)
    try:
        cols = _columns(conn, "torrents")
        if not {"name", "torrent_path"} <= cols:
            return []
        release_col = next((c for c in ("release", "release_name") if c in cols), None)
        select = ["name", "torrent_path", "data_path" if "data_path" in cols else "NULL"]
        select.append(f'"{release_col}"' if release_col else "NULL")
        where = []
        if "obsolete" in cols and not include_obsolete:
            where.append("COALESCE(obsolete, 0) = 0")
        sql = f"SELECT {', '.join(select)} FROM torrents"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = conn.execute(sql + " ORDER BY name").fetchall()
    except sqlite3.DatabaseError as exc:
        raise SwarmError(f"cannot read the release tables: {exc}") from exc
    finally:
        conn.close()
    wanted = set(releases)
    out: list[ReleaseRow] = []
    found: set[str] = set()
    for name, torrent_path, data_path, release in rows:
        if wanted and release not in wanted and name not in wanted:
            continue
        found.update(x for x in (release, name) if x in wanted)
        tpath = _in_archive(archive, torrent_path)
        dpath = _in_archive(archive, data_path) if data_path else None
        out.append(ReleaseRow(name, tpath, dpath, release))
    missing = wanted - found
    if missing:
        raise SwarmError(f"no release or torrent named {', '.join(sorted(missing))} in the archive")
    return out


def archive_torrents(
    archive: Archive, releases: Sequence[str] = (), *, include_obsolete: bool = False
) -> list[SwarmTorrent]:
    """The archive's release torrents, loaded (a torrent that cannot be is an error)."""
    return [
        from_torrent(
            load_torrent(row.torrent_path),
            torrent_path=row.torrent_path,
            data_path=row.data_path,
            release=row.release,
            extra_trackers=archive.config.release.trackers,
        )
        for row in release_rows(archive, releases, include_obsolete=include_obsolete)
    ]


def _in_archive(archive: Archive, path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else archive.root / p


def _release_files(conn: sqlite3.Connection, torrent_name: str) -> dict[str, str]:
    try:
        rows = conn.execute(
            "SELECT path, sha256 FROM release_files WHERE torrent = ? AND sha256 IS NOT NULL",
            (torrent_name,),
        ).fetchall()
    except sqlite3.DatabaseError:
        return {}
    prefix = f"{torrent_name}/"
    return {(p[len(prefix) :] if p.startswith(prefix) else p): sha for p, sha in rows}


def archive_manifest(archive: Archive, torrent_name: str) -> dict[str, str]:
    """path -> sha256 of a torrent's files from the archive's release tables."""
    if not archive.state_path.exists():
        return {}
    conn = archive.connect_state(readonly=True)
    try:
        return _release_files(conn, torrent_name)
    finally:
        conn.close()


def metadata_manifest(metadata: Path, torrent_name: str) -> dict[str, str]:
    """path -> sha256 of a torrent's files from a downloaded metadata release: its
    `locate.sqlite`, else the torrent's `manifest-sha256.txt`."""
    from musicark.release.locate import LOCATE_DB
    from musicark.release.manifest import bagit_name

    db = metadata / LOCATE_DB
    if db.is_file():
        try:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        except sqlite3.DatabaseError:
            conn = None
        if conn is not None:
            try:
                found = _release_files(conn, torrent_name)
            finally:
                conn.close()
            if found:
                return found
    for text in metadata.rglob(bagit_name(torrent_name)):
        out: dict[str, str] = {}
        for line in text.read_text(encoding="utf-8", errors="replace").splitlines():
            sha, _, path = line.partition("  ")
            if len(sha) == 64 and path:
                out[path] = sha.lower()
        return out
    return {}
