"""What `verify`, `seed`, `torrents` and `seedlist` act on: the torrents and data folders,
decided here so that the CLI only parses and prints.

Each torrent is judged on its own. One that cannot be loaded (not a torrent, hostile,
a device or FIFO given as one), or whose files this file system cannot hold (a name
over 255 bytes), becomes a `Failure` naming it, and the others are verified, seeded or
listed all the same; the caller reports the failures and exits non-zero. What a
torrent was read leniently for (see `torrent.metainfo`) comes back as warnings.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from musicark.archive import Archive
from musicark.errors import Cancelled, ClusterError, MusicarkError, SwarmError
from musicark.executor import Executor, make_executor, parse_where
from musicark.progress import ProgressCallback
from musicark.swarm.seed import SeedItem
from musicark.swarm.sources import (
    ReleaseRow,
    SwarmTorrent,
    archive_manifest,
    from_torrent,
    metadata_manifest,
    release_rows,
    torrent_files,
)
from musicark.swarm.verify import VerifyReport, data_root, verify_torrent, witnesses
from musicark.torrent.metainfo import Torrent, load_torrent

T = TypeVar("T")
NAME_MAX = 255  # when the file system does not say (ext4, XFS, Btrfs, ZFS all allow 255)
PATH_MAX = 4096


@dataclass(frozen=True, slots=True)
class Failure:
    """A torrent that could not be acted on: where it came from and why, in one line."""

    source: str
    error: str

    def to_dict(self) -> dict[str, str]:
        return {"torrent": self.source, "error": self.error}


@dataclass
class Selection(Generic[T]):
    """The targets of a command, and the torrents left out (absent data, failures)."""

    targets: list[T] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)  # torrents with no data where told
    failures: list[Failure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def attempt(self, source: str, action: Callable[[], T | None]) -> None:
        """Run `action` for one torrent; a musicark error becomes that torrent's failure."""
        try:
            target = action()
        except MusicarkError as exc:
            self.failures.append(Failure(source, str(exc)))
            return
        if target is not None:
            self.targets.append(target)

    def load(self, path: Path) -> Torrent:
        torrent = load_torrent(path)
        self.warnings.extend(torrent.warnings)
        return torrent


@dataclass(frozen=True, slots=True)
class VerifyTarget:
    torrent: Torrent
    data: Path  # the torrent's folder, or the folder holding it
    manifest: dict[str, str] | None  # path -> sha256, when one is known
    source: str  # the .torrent file, for messages


# ---------------------------------------------------------------- file system limits


def _limit(folder: Path, name: str, default: int) -> int:
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return int(os.pathconf(probe, name))
    except (OSError, ValueError):
        return default


def check_storable(torrent: Torrent, folder: Path, *, source: str) -> None:
    """Refuse a torrent whose files the file system under `folder` cannot hold: a name
    longer than it allows (NAME_MAX) or a path longer than PATH_MAX."""
    name_max = _limit(folder, "PC_NAME_MAX", NAME_MAX)
    path_max = _limit(folder, "PC_PATH_MAX", PATH_MAX)
    base = len(os.fsencode(Path(folder).absolute())) + 1
    top = torrent.name.encode()
    if len(top) > name_max:
        raise SwarmError(
            f"{source}: the torrent's name {torrent.name[:60]!r}... has {len(top)} bytes,"
            f" over the {name_max} the file system of {folder} allows"
        )
    files = torrent.files
    for i in range(len(files)):
        path = files.path_bytes(i)
        longest = max(path.split(b"/"), key=len)
        if len(longest) > name_max:
            raise SwarmError(
                f"{source}: file {files.path_str(i)[:80]!r}... has a name of {len(longest)}"
                f" bytes, over the {name_max} the file system of {folder} allows:"
                " it cannot be stored here"
            )
        if base + len(top) + 1 + len(path) >= path_max:
            raise SwarmError(
                f"{source}: file {files.path_str(i)[:80]!r}... would have a path over the"
                f" {path_max} bytes the file system of {folder} allows"
            )


def name_warnings(torrent: Torrent, folder: Path, *, source: str) -> list[str]:
    """`check_storable` as a warning, for listings."""
    try:
        check_storable(torrent, folder, source=source)
    except SwarmError as exc:
        return [f"{exc}; it cannot be verified or seeded there"]
    return []


# ---------------------------------------------------------------- verify


def verify_files(
    torrent: Path | None, metadata: Path | None, data: Path
) -> Selection[VerifyTarget]:
    """One .torrent (`torrent`) or every .torrent of a downloaded metadata release
    (`metadata`), each against its data under `data`."""
    selection: Selection[VerifyTarget] = Selection()
    if metadata is not None:
        paths = torrent_files([metadata])
        if not paths:
            raise SwarmError(f"no .torrent files in {metadata}")
    else:
        assert torrent is not None
        paths = [torrent]

    def target(path: Path) -> VerifyTarget | None:
        t = selection.load(path)
        if metadata is not None and not _present(t, data):
            selection.absent.append(t.name)
            return None
        check_storable(t, data, source=str(path))
        sums = metadata_manifest(metadata, t.name) if metadata is not None else {}
        return VerifyTarget(t, data, sums or None, str(path))

    for path in paths:
        selection.attempt(str(path), lambda path=path: target(path))  # type: ignore[misc]
    return selection


def verify_archive(
    archive: Archive, releases: Sequence[str], data: Path | None
) -> Selection[VerifyTarget]:
    """The archive's release torrents (those of `releases`, else all) against their data
    folders, or against `data`."""
    rows = release_rows(archive, releases)
    if not rows:
        raise SwarmError("the archive has no release torrents to verify")
    selection: Selection[VerifyTarget] = Selection()
    for row in rows:

        def target(row: ReleaseRow = row) -> VerifyTarget:
            t = selection.load(row.torrent_path)
            where = data or row.data_path
            if where is None:
                raise SwarmError(f"{row.name}: the release tables name no data folder")
            if not where.exists() and where.parent.is_dir():
                where = where.parent  # the folder is gone: report its files missing
            check_storable(t, where, source=str(row.torrent_path))
            manifest = archive_manifest(archive, t.name) or None
            return VerifyTarget(t, where, manifest, str(row.torrent_path))

        selection.attempt(str(row.torrent_path), target)
    return selection


def _present(torrent: Torrent, data: Path) -> bool:
    """Whether any of `torrent`'s data is under `data`."""
    try:
        return data_root(torrent, data).exists()
    except OSError:
        return False


@dataclass(frozen=True)
class VerifyOutcome:
    reports: tuple[VerifyReport, ...]
    absent: tuple[str, ...]
    failures: tuple[Failure, ...]
    warnings: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.failures and all(r.ok for r in self.reports)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "torrents": [r.to_dict() for r in self.reports],
            "absent": list(self.absent),
            "failed": [f.to_dict() for f in self.failures],
            "warnings": list(self.warnings),
        }


def verify_selection(
    selection: Selection[VerifyTarget],
    *,
    level: str = "full",
    jobs: int = 0,
    where: str = "local",
    progress: ProgressCallback | None = None,
) -> VerifyOutcome:
    """Verify each target; one whose data cannot be read is a failure, not the end.

    `where`: "local" (`jobs` threads), or a cluster (dask://HOST:PORT) whose workers hash
    the pieces of the full check, reading the data at the same paths (checked first)."""
    reports: list[VerifyReport] = []
    failures = list(selection.failures)
    with _hashing_executor(selection.targets, level=level, where=where) as executor:
        for target in selection.targets:
            try:
                reports.append(
                    verify_torrent(
                        target.torrent,
                        target.data,
                        level=level,
                        manifest=target.manifest,
                        jobs=jobs,
                        executor=executor,
                        progress=progress,
                    )
                )
            except (Cancelled, ClusterError):
                raise  # the whole run stops, not this torrent's check
            except MusicarkError as exc:
                failures.append(Failure(target.source, str(exc)))
    return VerifyOutcome(
        reports=tuple(reports),
        absent=tuple(selection.absent),
        failures=tuple(failures),
        warnings=tuple(selection.warnings),
    )


@contextmanager
def _hashing_executor(
    targets: Sequence[VerifyTarget], *, level: str, where: str
) -> Iterator[Executor | None]:
    """One cluster executor for every target's full check (None: threads here), its
    workers checked first to see the targets' data as this machine does."""
    if level != "full" or parse_where(where) == "local":
        yield None
        return
    seen = [path for t in targets for path in witnesses(t.torrent, t.data)]
    if not seen:  # no data to hash anywhere: nothing for a cluster to do
        yield None
        return
    with make_executor(jobs=1, kind="threads", where=where, shared=seen) as executor:
        yield executor


# ---------------------------------------------------------------- seed


def seed_files(paths: Sequence[Path], data: Path) -> Selection[SeedItem]:
    """The .torrent files (or folders of them) in `paths` whose data is under `data`."""
    selection: Selection[SeedItem] = Selection()

    def item(path: Path) -> SeedItem | None:
        t = selection.load(path)
        root = data_root(t, data)
        if not root.exists():  # a volunteer holds some of a release's torrents
            selection.absent.append(t.name)
            return None
        check_storable(t, root.parent, source=str(path))
        return SeedItem(t.name, t.raw, root.parent)

    for path in torrent_files(paths):
        selection.attempt(str(path), lambda path=path: item(path))  # type: ignore[misc]
    return selection


def seed_archive(archive: Archive, releases: Sequence[str]) -> Selection[SeedItem]:
    """The archive's release torrents (those of `releases`, else all) from their folders."""
    selection: Selection[SeedItem] = Selection()
    for row in release_rows(archive, releases):

        def item(row: ReleaseRow = row) -> SeedItem:
            if row.data_path is None:
                raise SwarmError(f"{row.name}: the release tables name no data folder")
            t = selection.load(row.torrent_path)
            root = data_root(t, row.data_path)
            check_storable(t, root.parent, source=str(row.torrent_path))
            return SeedItem(row.name, t.raw, root.parent)

        selection.attempt(str(row.torrent_path), item)
    return selection


# ---------------------------------------------------------------- torrents / seedlist


def listed_torrents(archive: Archive, paths: Sequence[Path]) -> Selection[SwarmTorrent]:
    """The archive's release torrents and the .torrent files in `paths`, once each."""
    selection: Selection[SwarmTorrent] = Selection()
    known: set[str] = set()
    trackers = archive.config.release.trackers
    sources: list[tuple[Path, Path | None, str | None]] = [
        (row.torrent_path, row.data_path, row.release) for row in release_rows(archive)
    ]
    sources += [(p, None, None) for p in torrent_files(paths)]
    for path, data_path, release in sources:

        def listed(
            path: Path = path, data_path: Path | None = data_path, release: str | None = release
        ) -> SwarmTorrent | None:
            t = selection.load(path)
            selection.warnings.extend(name_warnings(t, archive.root, source=str(path)))
            st = from_torrent(
                t,
                torrent_path=path,
                data_path=data_path,
                release=release,
                extra_trackers=trackers,
            )
            if st.infohash in known:
                return None
            known.add(st.infohash)
            return st

        selection.attempt(str(path), listed)
    return selection
