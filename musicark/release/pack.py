"""`musicark pack`: lay stored, not yet released audio into data folders with torrents.

Each run takes the preferred rendition of every catalogue track that no release holds
yet and whose rights allow redistribution (or any rights with `include_restricted`),
orders it (plan rank, else collection, album, disc, track), cuts it into folders of at
most `target_size` bytes and `max_files` files, and for each folder writes: the data
folder (hard links into the store; copies where links are impossible), one
deterministic .torrent and two manifests. A folder is built under `.building/` and
renamed into place when complete, then recorded in one transaction; a crash leaves
nothing half-written (the next run removes what no table row owns and rebuilds it,
byte for byte). Packed files are never repacked: later runs add new folders only.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from musicark import events
from musicark.archive import Archive
from musicark.catalog.rights import REDISTRIBUTABLE
from musicark.errors import IntegrityError, ReleaseError, UsageError
from musicark.executor import make_executor, resolve_jobs
from musicark.progress import Progress, ProgressCallback, report
from musicark.release import schema
from musicark.release.candidates import Candidate, cut_folders, select_candidates
from musicark.release.manifest import bagit_name, jsonl_name, write_manifests
from musicark.release.names import check_release_name, extension, file_name, folder_name
from musicark.release.workspace import (
    clean_leftovers,
    lock_release,
    parse_piece_size,
    placed_torrent,
    release_dir,
    settle_urls,
)
from musicark.sqlite import transaction
from musicark.torrent.create import CreatedTorrent, create_torrent, write_torrent
from musicark.torrent.metainfo import load_torrent
from musicark.torrent.piece_size import FORMATS
from musicark.units import format_size, parse_size


@dataclass(frozen=True)
class FolderResult:
    name: str
    files: int
    size: int
    infohash_v1: str | None
    infohash_v2: str | None
    torrent_path: str
    magnet: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PackSummary:
    release: str
    folders: list[FolderResult] = field(default_factory=list)
    withheld_rights: int = 0  # restricted or unknown rights, left in the dark archive
    already_released: int = 0
    not_in_catalog: int = 0

    @property
    def files(self) -> int:
        return sum(f.files for f in self.folders)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.folders)

    def describe(self) -> str:
        made = (
            f"{len(self.folders)} new folder(s), {self.files} files, {format_size(self.size)}"
            if self.folders
            else "nothing new to pack"
        )
        notes = []
        if self.withheld_rights:
            notes.append(f"{self.withheld_rights} withheld for their rights (dark archive)")
        if self.already_released:
            notes.append(f"{self.already_released} already released")
        if self.not_in_catalog:
            notes.append(f"{self.not_in_catalog} not in the catalogue")
        return f"release {self.release}: {made}" + (f"; {', '.join(notes)}" if notes else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "files": self.files,
            "size": self.size,
            "withheld_rights": self.withheld_rights,
            "already_released": self.already_released,
            "not_in_catalog": self.not_in_catalog,
            "folders": [f.to_dict() for f in self.folders],
        }


@dataclass(frozen=True)
class ReleaseFile:
    """One file of a folder: its manifest record and its `release_files` row."""

    path: str  # relative to the torrent's folder
    serial: int
    size: int
    sha256: str
    track_id: int
    isrc: str | None
    artists: tuple[str, ...]
    title: str | None
    album: str | None
    rights: str | None
    offset: int
    first_piece: int
    last_piece: int

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["artists"] = list(self.artists)
        return out


@dataclass(frozen=True)
class FolderRecord:
    """A finished folder as its `torrents` row and its files' rows."""

    release: str
    name: str
    collection: str
    first_serial: int
    last_serial: int
    format: str
    piece_length: int
    infohash_v1: str | None
    infohash_v2: str | None
    magnet: str
    torrent_path: str  # relative to the archive root
    data_path: str  # relative to the archive root
    torrent_size: int
    data_size: int
    restricted: bool
    files: tuple[ReleaseFile, ...]


@dataclass(frozen=True)
class TorrentSettings:
    """How a pack makes each folder's torrent."""

    format: str
    piece_size: int | None
    trackers: Sequence[str]
    web_seeds: Sequence[str]
    jobs: int


def _place(source: Path, dest: Path) -> None:
    """Hard-link a blob into a data folder; copy it where a link is impossible."""
    try:
        os.link(source, dest)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
        shutil.copyfile(source, dest)


def _blob_hash(item: tuple[Path, str]) -> str | None:
    """A worker function: the sha256 a stored blob reads as, None when it is missing."""
    from musicark.store.blobs import hash_file

    try:
        return hash_file(item[0])[0]
    except FileNotFoundError:
        return None


def _verify(paths: Sequence[tuple[Path, str]], *, jobs: int) -> None:
    """Re-hash every blob about to be packed (threads: hashlib drops the GIL)."""
    with make_executor(jobs=jobs, kind="threads" if jobs > 1 else "inline") as executor:
        for out in executor.run(_blob_hash, paths):
            sha, actual = out.task[1], out.result
            if actual is None:
                raise IntegrityError(
                    f"store blob {sha} is missing; run `musicark audit` (nothing was packed)"
                )
            if actual != sha:
                raise IntegrityError(
                    f"store blob {sha} fails its hash (reads as {actual[:16]}...);"
                    " run `musicark audit` (nothing was packed)"
                )


def _lay_out(
    archive: Archive, data: Path, files: Sequence[Candidate], first_serial: int, jobs: int
) -> list[tuple[Candidate, str, int]]:
    """Verify every blob, then link it into `data`; returns (candidate, path, serial)."""
    from musicark.store.blobs import blob_path

    placed: list[tuple[Candidate, str, int]] = []
    sources: list[tuple[Path, str]] = []
    for i, c in enumerate(files):
        serial = first_serial + i
        rel = file_name(
            serial,
            artist=c.artists[0] if c.artists else None,
            title=c.title,
            ext=extension(c.codec, c.container),
        )
        (data / rel).parent.mkdir(exist_ok=True)
        sources.append((blob_path(archive, c.sha256), c.sha256))
        placed.append((c, rel, serial))
    _verify(sources, jobs=resolve_jobs(jobs))
    for (_c, rel, _), (source, _) in zip(placed, sources, strict=True):
        _place(source, data / rel)
    return placed


def _release_files(
    made: CreatedTorrent, placed: Sequence[tuple[Candidate, str, int]]
) -> tuple[ReleaseFile, ...]:
    """Each placed file with where the torrent puts it (offset, pieces)."""
    where = {f.path_str: f for f in load_torrent(made.data).files}
    return tuple(
        ReleaseFile(
            path=rel,
            serial=serial,
            size=c.size,
            sha256=c.sha256,
            track_id=c.track_id,
            isrc=c.isrc,
            artists=c.artists,
            title=c.title,
            album=c.album,
            rights=c.rights,
            offset=where[rel].offset,
            first_piece=where[rel].first_piece,
            last_piece=where[rel].last_piece,
        )
        for c, rel, serial in placed
    )


def _move_into_place(work: Path, base: Path, name: str) -> None:
    for sub in ("data", "torrents", "manifests"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    os.replace(work / "data" / name, base / "data" / name)
    os.replace(work / "torrents" / f"{name}.torrent", base / "torrents" / f"{name}.torrent")
    for fn in (jsonl_name(name), bagit_name(name)):
        os.replace(work / "manifests" / fn, base / "manifests" / fn)
    shutil.rmtree(work, ignore_errors=True)


def _build_folder(
    archive: Archive,
    conn: sqlite3.Connection,
    release: str,
    files: Sequence[Candidate],
    *,
    first_serial: int,
    torrent: TorrentSettings,
    include_restricted: bool,
    progress: ProgressCallback | None,
) -> FolderResult:
    base = release_dir(archive, release)
    last_serial = first_serial + len(files) - 1
    name = folder_name(release, files[0].collection, first_serial, last_serial)
    work = base / ".building" / name
    shutil.rmtree(work, ignore_errors=True)
    data = work / "data" / name
    data.mkdir(parents=True)
    placed = _lay_out(archive, data, files, first_serial, torrent.jobs)
    made = create_torrent(
        data,
        format=torrent.format,
        piece_size=torrent.piece_size,
        trackers=torrent.trackers,
        web_seeds=torrent.web_seeds,
        name=name,
        jobs=torrent.jobs,
        where=archive.config.ingest.executor,
        progress=progress,
    )
    records = _release_files(made, placed)
    (work / "manifests").mkdir()
    write_manifests([r.to_dict() for r in records], name, work / "manifests")
    (work / "torrents").mkdir()
    write_torrent(made.data, work / "torrents" / f"{name}.torrent")
    # complete: move into place, then record (a crash in between leaves files no row
    # owns, which the next run removes and rebuilds identically)
    _move_into_place(work, base, name)
    magnet, torrent_rel, data_rel = placed_torrent(
        archive, base, made, torrent.trackers, torrent.web_seeds
    )
    _record(
        conn,
        FolderRecord(
            release=release,
            name=name,
            collection=files[0].collection,
            first_serial=first_serial,
            last_serial=last_serial,
            format=torrent.format,
            piece_length=made.piece_length,
            infohash_v1=made.info_hash_v1,
            infohash_v2=made.info_hash_v2,
            magnet=magnet,
            torrent_path=torrent_rel,
            data_path=data_rel,
            torrent_size=len(made.data),
            data_size=made.total_size,
            restricted=include_restricted and any(c.rights not in REDISTRIBUTABLE for c in files),
            files=records,
        ),
    )
    return FolderResult(
        name=name,
        files=len(files),
        size=made.total_size,
        infohash_v1=made.info_hash_v1,
        infohash_v2=made.info_hash_v2,
        torrent_path=torrent_rel,
        magnet=magnet,
    )


def _record(conn: sqlite3.Connection, folder: FolderRecord) -> None:
    """The folder's `torrents`, `release_files` and `release_names` rows and the release's
    next serial, in one transaction."""
    from musicark.store.match import normalize

    f = folder
    with transaction(conn):
        conn.execute(
            "INSERT INTO torrents (name, release, kind, collection, first_serial, last_serial,"
            " format, piece_length, infohash_v1, infohash_v2, magnet, torrent_path, data_path,"
            " torrent_size, file_count, data_size, created, restricted)"
            " VALUES (?, ?, 'audio', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                f.name,
                f.release,
                f.collection,
                f.first_serial,
                f.last_serial,
                f.format,
                f.piece_length,
                f.infohash_v1,
                f.infohash_v2,
                f.magnet,
                f.torrent_path,
                f.data_path,
                f.torrent_size,
                len(f.files),
                f.data_size,
                schema.now(),
                int(f.restricted),
            ),
        )
        conn.executemany(
            "INSERT INTO release_files (torrent, path, serial, sha256, track_id, isrc, artists,"
            " title, album, rights, size, offset, first_piece, last_piece)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    f.name,
                    r.path,
                    r.serial,
                    r.sha256,
                    r.track_id,
                    r.isrc,
                    json.dumps(list(r.artists), ensure_ascii=False),
                    r.title,
                    r.album,
                    r.rights,
                    r.size,
                    r.offset,
                    r.first_piece,
                    r.last_piece,
                )
                for r in f.files
            ],
        )
        keys = set()
        for r in f.files:
            title = normalize(r.title or "")
            for artist in r.artists:
                keys.add((f"{normalize(artist)} - {title}", f.name, r.path))
        conn.executemany(
            "INSERT OR IGNORE INTO release_names (name_key, torrent, path) VALUES (?, ?, ?)",
            sorted(keys),
        )
        conn.execute(
            "UPDATE releases SET next_serial = ?, restricted = max(restricted, ?) WHERE name = ?",
            (f.last_serial + 1, int(f.restricted), f.release),
        )


def _limits(
    archive: Archive, target_size: int | str | None, max_files: int | None
) -> tuple[int, int]:
    """Folder limits: (bytes, files), as given or from the settings."""
    settings = archive.config.release
    target = target_size if target_size is not None else settings.target_size
    target_bytes = target if isinstance(target, int) else parse_size(target, what="target size")
    if target_bytes <= 0:
        raise UsageError("target size must be larger than zero")
    limit = max_files if max_files is not None else settings.max_files
    if limit < 1:
        raise UsageError("--max-files must be at least 1")
    return target_bytes, limit


def _torrent_settings(
    archive: Archive,
    *,
    format: str | None,
    piece_size: int | str | None,
    trackers: Sequence[str] | None,
    web_seeds: Sequence[str] | None,
    jobs: int,
) -> TorrentSettings:
    settings = archive.config.release
    fmt = format or settings.format
    if fmt not in FORMATS:
        raise UsageError(f"unknown torrent format {fmt!r} (one of: {', '.join(FORMATS)})")
    piece = parse_piece_size(
        piece_size if piece_size is not None else settings.piece_size, format=fmt
    )
    tracker_list, seed_list = settle_urls(archive, trackers, web_seeds)
    return TorrentSettings(fmt, piece, tracker_list, seed_list, jobs)


def _next_serial(conn: sqlite3.Connection, release: str) -> int:
    conn.execute(
        "INSERT OR IGNORE INTO releases (name, created) VALUES (?, ?)", (release, schema.now())
    )
    row = conn.execute("SELECT next_serial FROM releases WHERE name = ?", (release,)).fetchone()
    return int(row[0])


def pack(
    archive: Archive,
    release: str,
    *,
    plan: Path | None = None,
    target_size: int | str | None = None,
    max_files: int | None = None,
    format: str | None = None,
    piece_size: int | str | None = None,
    trackers: Sequence[str] | None = None,
    web_seeds: Sequence[str] | None = None,
    include_restricted: bool = False,
    jobs: int = 0,
    progress: ProgressCallback | None = None,
) -> PackSummary:
    """Pack new audio into `release` (see the module docstring); returns what was made."""
    release = check_release_name(release)
    torrent = _torrent_settings(
        archive,
        format=format,
        piece_size=piece_size,
        trackers=trackers,
        web_seeds=web_seeds,
        jobs=jobs,
    )
    target_bytes, limit = _limits(archive, target_size, max_files)
    if plan is not None and not Path(plan).is_file():
        raise UsageError(f"no plan at {plan}")

    lock = lock_release(archive, release)
    conn = schema.connect(archive)
    try:
        clean_leftovers(archive, conn, release)
        chosen = select_candidates(archive, conn, include_restricted=include_restricted, plan=plan)
        summary = PackSummary(
            release=release,
            withheld_rights=chosen.withheld_rights,
            already_released=chosen.already_released,
            not_in_catalog=chosen.not_in_catalog,
        )
        folders = cut_folders(chosen.candidates, target_size=target_bytes, max_files=limit)
        if not folders:
            return summary
        serial = _next_serial(conn, release)
        total = sum(len(f) for f in folders)
        done = 0
        report(progress, Progress("pack", 0, total, "files", release))
        for files in folders:
            result = _build_folder(
                archive,
                conn,
                release,
                files,
                first_serial=serial,
                torrent=torrent,
                include_restricted=include_restricted,
                progress=progress,
            )
            summary.folders.append(result)
            serial += len(files)
            done += len(files)
            report(progress, Progress("pack", done, total, "files", result.name))
        events.send("release.changed", archive=archive, release=release, stage="pack")
        return summary
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise ReleaseError(
            f"cannot write release {release}: {exc.strerror or exc}{where}; nothing half-written"
            " was kept, run the command again"
        ) from exc
    finally:
        shutil.rmtree(release_dir(archive, release) / ".building", ignore_errors=True)
        conn.close()
        os.close(lock)
