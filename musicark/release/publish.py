"""`musicark publish`: a release's metadata, packed into its own torrent.

The metadata folder `<release>-metadata-<n>` holds:

- `catalog.sqlite.zst`, `catalog.parquet`, `catalog.jsonl.zst`: the catalogue export;
- `files.jsonl.zst`: the file ledger, one record per released file (seekable zstd);
- `torrents.json`: per torrent its name, infohashes, magnet link, .torrent size, file
  count, data size, created, obsolete and embargo;
- `locate.sqlite`: the release's `torrents`, `release_files` and `release_names` tables,
  so `musicark locate --metadata DIR` answers offline;
- `release.json`: the release's summary (including whether restricted rights were packed);
- `torrents/` and `manifests/`: every .torrent and manifest of the release.

Publishing again after a new pack makes the next `-metadata-<n>` and marks the previous
metadata torrent obsolete; publishing with nothing new changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from musicark import events
from musicark.archive import Archive
from musicark.catalog.reader import CatalogReader
from musicark.errors import ReleaseError
from musicark.progress import ProgressCallback
from musicark.release import schema
from musicark.release.locate import LOCATE_DB
from musicark.release.manifest import FIELDS, bagit_name, jsonl_name, write_jsonl_zst
from musicark.release.names import check_release_name
from musicark.release.workspace import (
    clean_leftovers,
    lock_release,
    placed_torrent,
    release_dir,
    settle_urls,
)
from musicark.sqlite import transaction
from musicark.torrent.create import CreatedTorrent, create_torrent, write_torrent

CATALOG_FILES = (
    ("catalog.sqlite.zst", "sqlite"),
    ("catalog.parquet", "parquet"),
    ("catalog.jsonl.zst", "jsonl"),
)
TORRENT_FIELDS = (
    "name",
    "release",
    "kind",
    "collection",
    "first_serial",
    "last_serial",
    "format",
    "piece_length",
    "infohash_v1",
    "infohash_v2",
    "magnet",
    "torrent_size",
    "file_count",
    "data_size",
    "created",
    "obsolete",
    "embargo",
    "restricted",
)


@dataclass(frozen=True)
class PublishSummary:
    release: str
    name: str
    unchanged: bool
    torrents: int
    files: int
    infohash_v1: str | None
    infohash_v2: str | None
    magnet: str
    torrent_path: str
    data_path: str

    def describe(self) -> str:
        if self.unchanged:
            return f"release {self.release}: already published as {self.name}; nothing new"
        return (
            f"release {self.release}: published {self.name} ({self.torrents} torrents,"
            f" {self.files} files); magnet {self.magnet}"
        )

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def known_release(conn: sqlite3.Connection, release: str) -> None:
    check_release_name(release)
    if (
        schema.has_tables(conn)
        and conn.execute("SELECT 1 FROM releases WHERE name = ?", (release,)).fetchone()
    ):
        return
    names = (
        [r[0] for r in conn.execute("SELECT name FROM releases ORDER BY name")]
        if schema.has_tables(conn)
        else []
    )
    hint = f" (releases: {', '.join(names)})" if names else " (pack one with `musicark pack`)"
    raise ReleaseError(f"no release named {release!r}{hint}")


def _torrent_rows(conn: sqlite3.Connection, release: str) -> list[dict[str, Any]]:
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute(
            "SELECT * FROM torrents WHERE release = ? AND kind = 'audio' ORDER BY name",
            (release,),
        ).fetchall()
        return [dict(r) for r in rows]
    finally:
        conn.row_factory = None


def _state_key(archive: Archive, torrents: Sequence[dict[str, Any]]) -> str:
    catalog_state: list[Any] = []
    try:
        with CatalogReader.open(archive.catalog_path) as reader:
            catalog_state = list(reader.change_summary())
    except Exception:  # an archive without a catalogue publishes without one
        catalog_state = []
    data = [
        [t["name"], t["infohash_v1"], t["infohash_v2"], t["obsolete"], t["embargo"]]
        for t in torrents
    ]
    return hashlib.sha256(orjson.dumps([data, catalog_state])).hexdigest()


def _locate_db(conn_path: Path, out: Path, release: str, names: Sequence[str]) -> None:
    out.unlink(missing_ok=True)
    db = sqlite3.connect(out)
    statements = [s.strip() for s in (schema.TORRENTS_DDL + ";" + schema.FILES_DDL).split(";")]
    # tables first, indexes after the copy: building an index once over 86 M rows is
    # several times faster than keeping it up to date row by row (and leaves it compact)
    indexes = [s for s in statements if s.upper().startswith("CREATE INDEX")]
    try:
        db.execute("PRAGMA cache_size=-262144")
        for statement in statements:
            if statement and statement not in indexes:
                db.execute(statement)
        db.execute("ATTACH DATABASE ? AS src", (f"file:{conn_path}?mode=ro",))
        marks = ",".join("?" * len(names))
        with transaction(db, immediate=False):
            db.execute(
                f"INSERT INTO torrents SELECT * FROM src.torrents WHERE name IN ({marks})", names
            )
            db.execute(
                f"INSERT INTO release_files SELECT * FROM src.release_files WHERE torrent IN ({marks})"
                " ORDER BY torrent, path",
                names,
            )
            db.execute(
                f"INSERT INTO release_names SELECT * FROM src.release_names WHERE torrent IN ({marks})"
                " ORDER BY name_key, torrent, path",
                names,
            )
            for statement in indexes:
                db.execute(statement)
        db.execute("DETACH DATABASE src")
    finally:
        db.close()


def _ledger(conn: sqlite3.Connection, names: Sequence[str], out: Path) -> int:
    marks = ",".join("?" * len(names))
    keys = ("torrent", *FIELDS)
    cursor = conn.execute(
        f"SELECT {', '.join(keys)} FROM release_files WHERE torrent IN ({marks}) ORDER BY serial",
        list(names),
    )
    count = 0

    def records() -> Iterator[dict[str, Any]]:  # streamed: 86 M records never fit in memory
        nonlocal count
        for r in cursor:
            rec = dict(zip(keys, r, strict=True))
            rec["artists"] = json.loads(rec["artists"]) if rec["artists"] else []
            rec["status"] = "released"
            count += 1
            yield rec

    write_jsonl_zst(records(), out)
    return count


def _unchanged(
    archive: Archive,
    conn: sqlite3.Connection,
    release: str,
    key: str,
    torrents: list[dict[str, Any]],
) -> PublishSummary | None:
    """The last publication of this very state, when its torrent is still there."""
    last = conn.execute(
        "SELECT p.torrent, t.infohash_v1, t.infohash_v2, t.magnet, t.torrent_path,"
        " t.data_path FROM publications p JOIN torrents t ON t.name = p.torrent"
        " WHERE p.release = ? AND p.state_key = ? ORDER BY p.id DESC LIMIT 1",
        (release, key),
    ).fetchone()
    if not last or not (archive.root / last[4]).is_file():
        return None
    return PublishSummary(
        release=release,
        name=last[0],
        unchanged=True,
        torrents=len(torrents),
        files=sum(t["file_count"] for t in torrents),
        infohash_v1=last[1],
        infohash_v2=last[2],
        magnet=last[3],
        torrent_path=last[4],
        data_path=last[5],
    )


def _write_metadata(
    archive: Archive,
    conn: sqlite3.Connection,
    folder: Path,
    *,
    release: str,
    name: str,
    torrents: list[dict[str, Any]],
    catalog: bool,
    progress: ProgressCallback | None,
) -> None:
    """Fill the metadata folder (see the module docstring)."""
    base = release_dir(archive, release)
    (folder / "torrents").mkdir(parents=True)
    (folder / "manifests").mkdir()
    names = [t["name"] for t in torrents]
    for t in torrents:
        shutil.copyfile(
            archive.root / t["torrent_path"], folder / "torrents" / f"{t['name']}.torrent"
        )
        for fn in (jsonl_name(t["name"]), bagit_name(t["name"])):
            src = base / "manifests" / fn
            if src.is_file():
                shutil.copyfile(src, folder / "manifests" / fn)
    if catalog:
        _export_catalog(archive, folder, progress=progress)
    _ledger(conn, names, folder / "files.jsonl.zst")
    (folder / "torrents.json").write_bytes(
        orjson.dumps(
            [{k: t.get(k) for k in TORRENT_FIELDS} for t in torrents],
            option=orjson.OPT_INDENT_2,
        )
    )
    _locate_db(archive.state_path, folder / LOCATE_DB, release, names)
    (folder / "release.json").write_bytes(
        orjson.dumps(
            {
                "release": release,
                "metadata": name,
                "published": schema.now(),
                "torrents": len(torrents),
                "files": sum(t["file_count"] for t in torrents),
                "data_size": sum(t["data_size"] for t in torrents),
                "formats": sorted({t["format"] for t in torrents}),
                "restricted_rights_included": any(t["restricted"] for t in torrents),
            },
            option=orjson.OPT_INDENT_2,
        )
    )


@dataclass(frozen=True)
class _Made:
    """A metadata torrent placed in the release: what its `torrents` row holds."""

    name: str
    format: str
    torrent: CreatedTorrent
    magnet: str
    torrent_path: str
    data_path: str
    restricted: bool


def _record(conn: sqlite3.Connection, release: str, key: str, m: _Made) -> None:
    """The metadata torrent's row (earlier ones made obsolete) and the publication."""
    now = schema.now()
    with transaction(conn):
        conn.execute(
            "UPDATE torrents SET obsolete = 1 WHERE release = ? AND kind = 'metadata'",
            (release,),
        )
        conn.execute(
            "INSERT INTO torrents (name, release, kind, format, piece_length, infohash_v1,"
            " infohash_v2, magnet, torrent_path, data_path, torrent_size, file_count,"
            " data_size, created, restricted)"
            " VALUES (?, ?, 'metadata', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                m.name,
                release,
                m.format,
                m.torrent.piece_length,
                m.torrent.info_hash_v1,
                m.torrent.info_hash_v2,
                m.magnet,
                m.torrent_path,
                m.data_path,
                len(m.torrent.data),
                m.torrent.file_count,
                m.torrent.total_size,
                now,
                int(m.restricted),
            ),
        )
        conn.execute(
            "INSERT INTO publications (release, torrent, state_key, created) VALUES (?, ?, ?, ?)",
            (release, m.name, key, now),
        )
        conn.execute("UPDATE releases SET published = ? WHERE name = ?", (now, release))


def publish(
    archive: Archive,
    release: str,
    *,
    format: str | None = None,
    trackers: Sequence[str] | None = None,
    web_seeds: Sequence[str] | None = None,
    catalog: bool = True,
    jobs: int = 0,
    progress: ProgressCallback | None = None,
) -> PublishSummary:
    """Write `release`'s metadata and pack it into a torrent (see the module docstring)."""
    fmt = format or archive.config.release.format
    tracker_list, seed_list = settle_urls(archive, trackers, web_seeds)
    conn = schema.connect(archive)
    lock: int | None = None
    try:
        known_release(conn, release)
        lock = lock_release(archive, release)
        clean_leftovers(archive, conn, release)
        torrents = _torrent_rows(conn, release)
        if not torrents:
            raise ReleaseError(f"release {release!r} has no torrents yet (`musicark pack`)")
        key = _state_key(archive, torrents)
        same = _unchanged(archive, conn, release, key, torrents)
        if same is not None:
            return same
        seq = conn.execute(
            "SELECT count(*) FROM torrents WHERE release = ? AND kind = 'metadata'", (release,)
        ).fetchone()[0]
        name = f"{release}-metadata-{seq + 1:04d}"
        base = release_dir(archive, release)
        work = base / ".building" / name
        shutil.rmtree(work, ignore_errors=True)
        folder = work / name
        _write_metadata(
            archive,
            conn,
            folder,
            release=release,
            name=name,
            torrents=torrents,
            catalog=catalog,
            progress=progress,
        )
        made = create_torrent(
            folder,
            format=fmt,
            trackers=tracker_list,
            web_seeds=seed_list,
            jobs=jobs,
            progress=progress,
        )
        torrent_file = work / f"{name}.torrent"
        write_torrent(made.data, torrent_file)
        for sub in ("data", "torrents"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        os.replace(folder, base / "data" / name)
        os.replace(torrent_file, base / "torrents" / f"{name}.torrent")
        shutil.rmtree(work, ignore_errors=True)
        magnet, torrent_rel, data_rel = placed_torrent(archive, base, made, tracker_list, seed_list)
        restricted = any(t["restricted"] for t in torrents)
        _record(
            conn,
            release,
            key,
            _Made(name, fmt, made, magnet, torrent_rel, data_rel, restricted),
        )
        events.send("release.changed", archive=archive, release=release, stage="publish")
        return PublishSummary(
            release=release,
            name=name,
            unchanged=False,
            torrents=len(torrents),
            files=sum(t["file_count"] for t in torrents),
            infohash_v1=made.info_hash_v1,
            infohash_v2=made.info_hash_v2,
            magnet=magnet,
            torrent_path=torrent_rel,
            data_path=data_rel,
        )
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise ReleaseError(
            f"cannot write the metadata of {release}: {exc.strerror or exc}{where};"
            " run the command again"
        ) from exc
    finally:
        if lock is not None:
            shutil.rmtree(release_dir(archive, release) / ".building", ignore_errors=True)
            os.close(lock)
        conn.close()


def _export_catalog(archive: Archive, folder: Path, *, progress: ProgressCallback | None) -> None:
    from musicark.catalog.export import export_catalog

    for filename, fmt in CATALOG_FILES:
        export_catalog(archive, folder / filename, format=fmt, progress=progress)
