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
import fcntl
import json
import os
import shutil
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musicark import events
from musicark.archive import Archive
from musicark.catalog.reader import CatalogReader
from musicark.catalog.rights import REDISTRIBUTABLE
from musicark.errors import IntegrityError, ReleaseError, TorrentError, UsageError
from musicark.progress import Progress, ProgressCallback, report
from musicark.release import schema
from musicark.release.manifest import bagit_name, jsonl_name, write_manifests
from musicark.release.names import (
    check_release_name,
    collection_name,
    extension,
    file_name,
    folder_name,
)
from musicark.sqlite import transaction
from musicark.torrent.create import (
    TRACKER_SCHEMES,
    CreatedTorrent,
    check_url,
    create_torrent,
    write_torrent,
)
from musicark.torrent.magnet import magnet_link
from musicark.torrent.metainfo import load_torrent
from musicark.torrent.piece_size import FORMATS, check_piece_size
from musicark.units import format_size, parse_size


@dataclass(frozen=True)
class Candidate:
    sha256: str
    size: int
    track_id: int
    codec: str | None
    container: str | None
    title: str | None = None
    isrc: str | None = None
    rights: str | None = None
    album: str | None = None
    collection: str = "unmatched"
    artists: tuple[str, ...] = ()
    order: tuple[Any, ...] = ()


@dataclass(frozen=True)
class FolderResult:
    name: str
    files: int
    size: int
    infohash_v1: str | None
    infohash_v2: str | None
    torrent_path: str
    magnet: str


@dataclass
class PackSummary:
    release: str
    folders: list[FolderResult] = field(default_factory=list)
    withheld_rights: int = 0  # restricted or unknown rights, left in the dark archive
    already_released: int = 0
    not_in_catalogue: int = 0

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
        if self.not_in_catalogue:
            notes.append(f"{self.not_in_catalogue} not in the catalogue")
        return f"release {self.release}: {made}" + (f"; {', '.join(notes)}" if notes else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "files": self.files,
            "size": self.size,
            "withheld_rights": self.withheld_rights,
            "already_released": self.already_released,
            "not_in_catalogue": self.not_in_catalogue,
            "folders": [f.__dict__ for f in self.folders],
        }


def release_dir(archive: Archive, release: str) -> Path:
    return archive.releases_dir / release


def parse_piece_size(text: str | int | None, *, format: str) -> int | None:
    """`auto` (None) or a size such as `4MiB`; refuses sizes clients cannot use."""
    if text is None or (isinstance(text, str) and text.strip().lower() == "auto"):
        return None
    value = text if isinstance(text, int) else parse_size(text, what="piece size")
    try:
        return check_piece_size(value, format=format)
    except TorrentError as exc:
        raise UsageError(str(exc)) from exc


def lock_release(archive: Archive, release: str) -> int:
    """Hold `releases/.RELEASE.lock` (one pack or publish of a release at a time); returns
    the descriptor to close when done."""
    archive.releases_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(archive.releases_dir / f".{release}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ReleaseError(
            f"release {release} is being packed or published by another process;"
            " run the command again when it ends"
        ) from None
    return fd


def settle_urls(
    archive: Archive, trackers: Sequence[str] | None, web_seeds: Sequence[str] | None
) -> tuple[list[str], list[str]]:
    """Trackers and web seeds as given, else from the settings; each must be a URL."""
    settings = archive.config.release
    try:
        return (
            [
                check_url(u, what="tracker", schemes=TRACKER_SCHEMES)
                for u in (trackers if trackers is not None else settings.trackers)
            ],
            [
                check_url(u, what="web seed")
                for u in (web_seeds if web_seeds is not None else settings.web_seeds)
            ],
        )
    except TorrentError as exc:
        raise UsageError(str(exc)) from exc


def placed_torrent(
    archive: Archive,
    base: Path,
    made: CreatedTorrent,
    trackers: Sequence[str],
    web_seeds: Sequence[str],
) -> tuple[str, str, str]:
    """Magnet link, .torrent path and data folder (relative to the archive) of `made`."""
    magnet = magnet_link(
        name=made.name,
        info_hash_v1=made.info_hash_v1,
        info_hash_v2=made.info_hash_v2,
        trackers=trackers,
        web_seeds=web_seeds,
    )
    torrent = (base / "torrents" / f"{made.name}.torrent").relative_to(archive.root)
    data = (base / "data" / made.name).relative_to(archive.root)
    return magnet, torrent.as_posix(), data.as_posix()


def _store_ready(conn: sqlite3.Connection) -> bool:
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return {"blobs", "renditions"} <= names


def _plan_ranks(plan: Path) -> dict[int, int]:
    from musicark.plan.io import read_plan

    table = read_plan(Path(plan), columns=["rank", "track_id"])
    ranks = table.column("rank").to_pylist()
    ids = table.column("track_id").to_pylist()
    return {int(t): int(r) for t, r in zip(ids, ranks, strict=True) if t is not None}


def select_candidates(
    archive: Archive,
    conn: sqlite3.Connection,
    summary: PackSummary,
    *,
    include_restricted: bool,
    plan: Path | None,
) -> list[Candidate]:
    """The files this pack takes, in release order (see the module docstring)."""
    if not _store_ready(conn):
        raise ReleaseError("the store is empty: ingest audio first (`musicark ingest DIR`)")
    rows = conn.execute(
        "SELECT r.sha256, b.size, r.track_id, b.codec, b.container FROM renditions r"
        " JOIN blobs b ON b.sha256 = r.sha256"
        " WHERE r.preferred = 1 AND r.track_id IS NOT NULL ORDER BY r.sha256"
    ).fetchall()
    if not rows:
        raise ReleaseError(
            "the store holds no audio matched to the catalogue: ingest audio first"
            " (`musicark ingest DIR`)"
        )
    released_sha = {r[0] for r in conn.execute("SELECT DISTINCT sha256 FROM release_files")}
    released_tracks = {
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT track_id FROM release_files WHERE track_id IS NOT NULL"
        )
    }
    fresh = [r for r in rows if r[0] not in released_sha and r[2] not in released_tracks]
    summary.already_released = len(rows) - len(fresh)
    with CatalogReader.open(archive.catalog_path) as reader:
        meta = reader.tracks(r[2] for r in fresh)
    ranks = _plan_ranks(plan) if plan is not None else {}
    out: list[Candidate] = []
    seen_tracks: set[int] = set()
    for sha, size, track_id, codec, container in fresh:
        m = meta.get(track_id)
        if m is None:
            summary.not_in_catalogue += 1
            continue
        if track_id in seen_tracks:  # two preferred renditions of one track: keep one
            continue
        if m.rights not in REDISTRIBUTABLE and not include_restricted:
            summary.withheld_rights += 1
            continue
        seen_tracks.add(track_id)
        collection = collection_name(m.source)
        if ranks:
            order: tuple[Any, ...] = (ranks.get(track_id, 1 << 62), track_id)
        else:
            order = (m.album_id or 0, m.disc_number or 0, m.track_number or 0, track_id)
        out.append(
            Candidate(
                sha256=sha,
                size=size,
                track_id=track_id,
                codec=codec,
                container=container,
                title=m.title,
                isrc=m.isrc,
                rights=m.rights,
                album=m.album,
                collection=collection,
                artists=tuple(m.artist_names),
                order=order,
            )
        )
    out.sort(key=lambda c: (c.collection, c.order))
    return out


def cut_folders(
    candidates: Sequence[Candidate], *, target_size: int, max_files: int
) -> list[list[Candidate]]:
    """Consecutive runs of one collection, each within the size and file limits."""
    folders: list[list[Candidate]] = []
    current: list[Candidate] = []
    size = 0
    for c in candidates:
        if c.size > target_size:
            raise UsageError(
                f"target size {format_size(target_size)} is smaller than one file"
                f" ({c.sha256[:12]}..., {format_size(c.size)}); raise --target-size"
            )
        if current and (
            size + c.size > target_size
            or len(current) >= max_files
            or current[0].collection != c.collection
        ):
            folders.append(current)
            current, size = [], 0
        current.append(c)
        size += c.size
    if current:
        folders.append(current)
    return folders


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def clean_leftovers(archive: Archive, conn: sqlite3.Connection, release: str) -> int:
    """Remove what an interrupted pack left: `.building/` and folders no row owns."""
    base = release_dir(archive, release)
    removed = 0
    building = base / ".building"
    if building.exists():
        shutil.rmtree(building, ignore_errors=True)
        removed += 1
    known = {r[0] for r in conn.execute("SELECT name FROM torrents WHERE release = ?", (release,))}
    for sub, suffixes in (
        ("data", ("",)),
        ("torrents", (".torrent",)),
        ("manifests", (".jsonl.zst", ".manifest-sha256.txt")),
    ):
        folder = base / sub
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            name = entry.name
            for suffix in suffixes:
                if suffix and name.endswith(suffix):
                    name = name[: -len(suffix)]
                    break
            if name not in known:
                _remove(entry)
                removed += 1
    return removed


def _place(source: Path, dest: Path) -> None:
    """Hard-link a blob into a data folder; copy it where a link is impossible."""
    try:
        os.link(source, dest)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
        shutil.copyfile(source, dest)


def _verify(paths: Sequence[tuple[Path, str]], *, jobs: int) -> None:
    from musicark.store.blobs import hash_file

    def check(item: tuple[Path, str]) -> None:
        path, sha = item
        try:
            actual, _ = hash_file(path)
        except FileNotFoundError:
            raise IntegrityError(
                f"store blob {sha} is missing; run `musicark audit` (nothing was packed)"
            ) from None
        if actual != sha:
            raise IntegrityError(
                f"store blob {sha} fails its hash (reads as {actual[:16]}...);"
                " run `musicark audit` (nothing was packed)"
            )

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for _ in pool.map(check, paths):
            pass


def _build_folder(
    archive: Archive,
    conn: sqlite3.Connection,
    release: str,
    files: Sequence[Candidate],
    *,
    first_serial: int,
    format: str,
    piece_size: int | None,
    trackers: Sequence[str],
    web_seeds: Sequence[str],
    include_restricted: bool,
    jobs: int,
    progress: ProgressCallback | None,
) -> FolderResult:
    from musicark.store.blobs import blob_path

    base = release_dir(archive, release)
    last_serial = first_serial + len(files) - 1
    name = folder_name(release, files[0].collection, first_serial, last_serial)
    building = base / ".building"
    work = building / name
    shutil.rmtree(work, ignore_errors=True)
    data = work / "data" / name
    data.mkdir(parents=True)
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
        dest = data / rel
        dest.parent.mkdir(exist_ok=True)
        source = blob_path(archive, c.sha256)
        sources.append((source, c.sha256))
        placed.append((c, rel, serial))
    _verify(sources, jobs=jobs or (os.cpu_count() or 1))
    for (_c, rel, _), (source, _) in zip(placed, sources, strict=True):
        _place(source, data / rel)

    made = create_torrent(
        data,
        format=format,
        piece_size=piece_size,
        trackers=trackers,
        web_seeds=web_seeds,
        name=name,
        jobs=jobs,
        progress=progress,
    )
    torrent = load_torrent(made.data)
    where = {f.path_str: f for f in torrent.files}
    records = []
    for c, rel, serial in placed:
        tf = where[rel]
        records.append(
            {
                "path": rel,
                "serial": serial,
                "size": c.size,
                "sha256": c.sha256,
                "track_id": c.track_id,
                "isrc": c.isrc,
                "artists": list(c.artists),
                "title": c.title,
                "album": c.album,
                "rights": c.rights,
                "offset": tf.offset,
                "first_piece": tf.first_piece,
                "last_piece": tf.last_piece,
            }
        )
    (work / "manifests").mkdir()
    write_manifests(records, name, work / "manifests")
    (work / "torrents").mkdir()
    write_torrent(made.data, work / "torrents" / f"{name}.torrent")

    # complete: move into place, then record (a crash in between leaves files no row
    # owns, which the next run removes and rebuilds identically)
    for sub in ("data", "torrents", "manifests"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    os.replace(data, base / "data" / name)
    os.replace(work / "torrents" / f"{name}.torrent", base / "torrents" / f"{name}.torrent")
    for fn in (jsonl_name(name), bagit_name(name)):
        os.replace(work / "manifests" / fn, base / "manifests" / fn)
    shutil.rmtree(work, ignore_errors=True)

    magnet, torrent_rel, data_rel = placed_torrent(archive, base, made, trackers, web_seeds)
    _record(
        conn,
        release,
        name=name,
        collection=files[0].collection,
        first_serial=first_serial,
        last_serial=last_serial,
        made_format=format,
        piece_length=made.piece_length,
        infohash_v1=made.info_hash_v1,
        infohash_v2=made.info_hash_v2,
        magnet=magnet,
        torrent_path=torrent_rel,
        data_path=data_rel,
        torrent_size=len(made.data),
        data_size=made.total_size,
        restricted=include_restricted and any(c.rights not in REDISTRIBUTABLE for c in files),
        records=records,
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


def _record(
    conn: sqlite3.Connection,
    release: str,
    *,
    name: str,
    collection: str,
    first_serial: int,
    last_serial: int,
    made_format: str,
    piece_length: int,
    infohash_v1: str | None,
    infohash_v2: str | None,
    magnet: str,
    torrent_path: str,
    data_path: str,
    torrent_size: int,
    data_size: int,
    restricted: bool,
    records: Sequence[dict[str, Any]],
) -> None:
    from musicark.store.match import normalise

    with transaction(conn):
        conn.execute(
            "INSERT INTO torrents (name, release, kind, collection, first_serial, last_serial,"
            " format, piece_length, infohash_v1, infohash_v2, magnet, torrent_path, data_path,"
            " torrent_size, file_count, data_size, created, restricted)"
            " VALUES (?, ?, 'audio', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                name,
                release,
                collection,
                first_serial,
                last_serial,
                made_format,
                piece_length,
                infohash_v1,
                infohash_v2,
                magnet,
                torrent_path,
                data_path,
                torrent_size,
                len(records),
                data_size,
                schema.now(),
                int(restricted),
            ),
        )
        conn.executemany(
            "INSERT INTO release_files (torrent, path, serial, sha256, track_id, isrc, artists,"
            " title, album, rights, size, offset, first_piece, last_piece)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    name,
                    r["path"],
                    r["serial"],
                    r["sha256"],
                    r["track_id"],
                    r["isrc"],
                    json.dumps(r["artists"], ensure_ascii=False),
                    r["title"],
                    r["album"],
                    r["rights"],
                    r["size"],
                    r["offset"],
                    r["first_piece"],
                    r["last_piece"],
                )
                for r in records
            ],
        )
        keys = set()
        for r in records:
            title = normalise(r["title"] or "")
            for artist in r["artists"]:
                keys.add((f"{normalise(artist)} - {title}", name, r["path"]))
        conn.executemany(
            "INSERT OR IGNORE INTO release_names (name_key, torrent, path) VALUES (?, ?, ?)",
            sorted(keys),
        )
        conn.execute(
            "UPDATE releases SET next_serial = ?, restricted = max(restricted, ?) WHERE name = ?",
            (last_serial + 1, int(restricted), release),
        )


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
    settings = archive.config.release
    release = check_release_name(release)
    fmt = format or settings.format
    if fmt not in FORMATS:
        raise UsageError(f"unknown torrent format {fmt!r} (one of: {', '.join(FORMATS)})")
    target = target_size if target_size is not None else settings.target_size
    target_bytes = target if isinstance(target, int) else parse_size(target, what="target size")
    if target_bytes <= 0:
        raise UsageError("target size must be larger than zero")
    limit = max_files if max_files is not None else settings.max_files
    if limit < 1:
        raise UsageError("--max-files must be at least 1")
    piece = parse_piece_size(
        piece_size if piece_size is not None else settings.piece_size, format=fmt
    )
    tracker_list, seed_list = settle_urls(archive, trackers, web_seeds)
    if plan is not None and not Path(plan).is_file():
        raise UsageError(f"no plan at {plan}")

    lock = lock_release(archive, release)
    conn = schema.connect(archive)
    try:
        summary = PackSummary(release=release)
        clean_leftovers(archive, conn, release)
        candidates = select_candidates(
            archive, conn, summary, include_restricted=include_restricted, plan=plan
        )
        folders = cut_folders(candidates, target_size=target_bytes, max_files=limit)
        if not folders:
            return summary
        conn.execute(
            "INSERT OR IGNORE INTO releases (name, created) VALUES (?, ?)",
            (release, schema.now()),
        )
        serial = conn.execute(
            "SELECT next_serial FROM releases WHERE name = ?", (release,)
        ).fetchone()[0]
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
                format=fmt,
                piece_size=piece,
                trackers=tracker_list,
                web_seeds=seed_list,
                include_restricted=include_restricted,
                jobs=jobs,
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
