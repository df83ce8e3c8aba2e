"""A release's workspace on disk: its folder, its lock, leftovers of an interrupted run,
and where a made torrent is placed. `pack` and `publish` share it.

```
releases/RELEASE/
  data/<folder>/        torrents/<folder>.torrent
  manifests/<folder>.jsonl.zst, <folder>.manifest-sha256.txt
  .building/            folders being built; removed by the next run
```
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from musicark.archive import Archive
from musicark.errors import ReleaseError, TorrentError, UsageError
from musicark.torrent.create import TRACKER_SCHEMES, CreatedTorrent, check_url
from musicark.torrent.magnet import magnet_link
from musicark.torrent.piece_size import check_piece_size
from musicark.units import parse_size


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
