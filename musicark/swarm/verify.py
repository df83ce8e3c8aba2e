"""Verify a torrent's data folder: presence, size, or full piece hashes (v1 and v2).

The report names every file `ok`, `missing`, `corrupt` (wrong size, failing pieces or
a sha256 that differs from the manifest) or `unexpected` (in the folder, not in the
torrent). A present file whose pieces could not all be checked, because a v1 piece it
shares with a neighbour lacks the neighbour's bytes, is `unverified`. The hashing itself
(batches of pieces hashed by worker processes here or a cluster's workers) is in
`swarm.pieces`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musicark.errors import SwarmError
from musicark.executor import Executor
from musicark.progress import ProgressCallback
from musicark.swarm.pieces import PiecePlan, files_of_piece, layout, local_executor, run_checks
from musicark.torrent.metainfo import Torrent, TorrentFile

LEVELS = ("presence", "size", "full")
STATUSES = ("ok", "missing", "corrupt", "unexpected", "unverified")
PAD_FOLDER = ".pad"  # BEP 47 padding files some clients write


@dataclass(frozen=True, slots=True)
class FileResult:
    path: str  # relative to the torrent's root folder (the file name for a single file)
    status: str
    size: int | None  # bytes on disk, None when missing
    expected_size: int | None  # None for an unexpected file
    bad_pieces: tuple[int, ...] = ()
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "status": self.status,
            "size": self.size,
            "expected_size": self.expected_size,
            "bad_pieces": list(self.bad_pieces),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class VerifyReport:
    torrent: str
    infohash: str
    data: str  # the folder (or file) verified
    level: str
    files: tuple[FileResult, ...]
    pieces_checked: int = 0
    pieces_failed: int = 0
    bytes_hashed: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(f.status == "ok" for f in self.files)

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATUSES, 0)
        for f in self.files:
            out[f.status] += 1
        return out

    def problems(self) -> list[FileResult]:
        return [f for f in self.files if f.status != "ok"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "torrent": self.torrent,
            "infohash": self.infohash,
            "data": self.data,
            "level": self.level,
            "ok": self.ok,
            "counts": self.counts(),
            "pieces_checked": self.pieces_checked,
            "pieces_failed": self.pieces_failed,
            "bytes_hashed": self.bytes_hashed,
            "seconds": round(self.seconds, 3),
            "files": [f.to_dict() for f in self.files],
        }


def data_root(torrent: Torrent, data: Path) -> Path:
    """Where the torrent's content lives given `data`: the torrent's own folder (or file),
    or the folder that holds it; both are accepted."""
    data = Path(data)
    if not data.exists():
        raise SwarmError(f"data folder {data} does not exist")
    if torrent.single_file:
        if data.is_file():
            return data
        return data / torrent.name
    if (data / torrent.name).is_dir():
        return data / torrent.name
    if data.name == torrent.name or any(
        _exists(data.joinpath(*f.path)) for f in torrent.files[:64]
    ):
        return data
    return data / torrent.name


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a name too long for the file system, ...: not there
        return False


def _file_path(torrent: Torrent, root: Path, file: TorrentFile) -> Path:
    return root if torrent.single_file else root.joinpath(*file.path)


def _display(torrent: Torrent, file: TorrentFile) -> str:
    return torrent.name if torrent.single_file else file.path_str


def _unexpected(torrent: Torrent, root: Path) -> list[FileResult]:
    if torrent.single_file or not root.is_dir():
        return []
    expected = set(torrent.file_paths())
    out = []
    for folder, dirs, names in os.walk(root):
        rel_folder = Path(folder).relative_to(root).as_posix()
        if rel_folder == ".":
            dirs[:] = [d for d in dirs if d != PAD_FOLDER]
        for name in names:
            rel = name if rel_folder == "." else f"{rel_folder}/{name}"
            if rel not in expected:
                try:
                    size: int | None = os.lstat(os.path.join(folder, name)).st_size
                except OSError:
                    size = None
                out.append(FileResult(rel, "unexpected", size, None, reason="not in the torrent"))
    return sorted(out, key=lambda r: r.path)


@dataclass
class _Findings:
    """What the full check found, by file index."""

    expected_sha: dict[int, str] = field(default_factory=dict)  # from the manifest
    sha_results: dict[int, str] = field(default_factory=dict)
    bad_by_file: dict[int, set[int]] = field(default_factory=dict)
    unchecked: set[int] = field(default_factory=set)  # pieces not read (missing neighbours)
    pieces_checked: int = 0
    pieces_failed: int = 0
    hashed: int = 0


def witnesses(torrent: Torrent, data: Path) -> list[Path]:
    """The first and the last of the torrent's files present under `data`: what a
    cluster's workers must see as this machine does before they hash the rest."""
    try:
        root = data_root(torrent, data)
    except SwarmError:
        return []
    files = torrent.files
    found: list[Path] = []
    for order in (range(len(files)), range(len(files) - 1, -1, -1)):
        for i in order:
            path = _file_path(torrent, root, files[i])
            if files.lengths[i] and _is_file(path):
                found.append(path)
                break
    return list(dict.fromkeys(found))


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False


def _stat_files(
    torrent: Torrent, files: list[TorrentFile], root: Path
) -> tuple[list[Path], list[int | None]]:
    """Each file's path and size on disk (None: missing or not a regular file)."""
    paths: list[Path] = []
    sizes: list[int | None] = []
    for f in files:
        path = _file_path(torrent, root, f)
        paths.append(path)
        try:
            st = path.stat()
            sizes.append(st.st_size if path.is_file() else None)
        except OSError:
            sizes.append(None)
    return paths, sizes


def _full_check(
    torrent: Torrent,
    files: list[TorrentFile],
    paths: list[Path],
    checkable: list[bool],
    findings: _Findings,
    *,
    jobs: int,
    executor: Executor | None,
    progress: ProgressCallback | None,
) -> None:
    """Hash every piece whose files are all present with the right size, and the
    manifest's files, on `executor` (None: `jobs` workers here, see `local_executor`)."""
    piece_ok = [True] * torrent.num_pieces
    for i, f in enumerate(files):
        if not checkable[i] and f.length:
            for p in range(f.first_piece, f.last_piece + 1):
                piece_ok[p] = False
                findings.unchecked.add(p)
    plan = PiecePlan(torrent, layout(torrent, paths), piece_ok, findings.expected_sha)
    if executor is None:
        with local_executor(plan.total, jobs) as local:
            tally = run_checks(plan, local, progress=progress)
    else:
        tally = run_checks(plan, executor, progress=progress)
    if tally.errors:
        raise SwarmError(tally.errors[0])
    findings.bad_by_file = tally.bad_by_file
    findings.sha_results = tally.sha_results
    findings.pieces_checked = tally.pieces_checked
    findings.pieces_failed = tally.pieces_failed
    findings.hashed = tally.hashed


def _file_result(
    torrent: Torrent,
    f: TorrentFile,
    index: int,
    size: int | None,
    path: Path,
    level: str,
    findings: _Findings,
) -> FileResult:
    name = _display(torrent, f)
    if size is None:
        odd = _exists(path) or path.is_symlink()
        return FileResult(
            name, "missing", None, f.length, reason="not a regular file" if odd else ""
        )
    if level != "presence" and size != f.length:
        return FileResult(
            name, "corrupt", size, f.length, reason=f"size {size}, expected {f.length}"
        )
    bad = tuple(sorted(findings.bad_by_file.get(index, ())))
    if index in findings.expected_sha:
        # a failing piece it shares with a neighbour may be the neighbour's fault; one
        # of its own cannot be, whatever the manifest says
        own = tuple(p for p in bad if len(files_of_piece(torrent, p)) == 1)
        if findings.sha_results.get(index) != findings.expected_sha[index]:
            reason = "sha256 differs from the manifest"
            return FileResult(name, "corrupt", size, f.length, bad, reason)
        if own:
            reason = "pieces fail although the sha256 matches the manifest"
            return FileResult(name, "corrupt", size, f.length, own, reason)
        return FileResult(name, "ok", size, f.length)
    if bad:
        return FileResult(name, "corrupt", size, f.length, bad, "pieces fail")
    if f.length and any(p in findings.unchecked for p in range(f.first_piece, f.last_piece + 1)):
        reason = "shares a piece with a missing or wrong-sized file"
        return FileResult(name, "unverified", size, f.length, reason=reason)
    return FileResult(name, "ok", size, f.length)


def verify_torrent(
    torrent: Torrent,
    data: Path,
    *,
    level: str = "full",
    manifest: Mapping[str, str] | None = None,
    jobs: int = 0,
    executor: Executor | None = None,
    progress: ProgressCallback | None = None,
) -> VerifyReport:
    """Check `data` (the torrent's folder or the folder holding it) against `torrent`.

    `manifest` maps file paths (as in the torrent, relative to its root) to sha256 hex;
    at level `full` each listed file's sha256 is checked too. `jobs` workers hash in
    parallel (0: one process per core; two threads per core for a small check), or the
    workers of `executor` (a cluster's: they read the
    data at the same path).
    """
    if level not in LEVELS:
        raise SwarmError(f"unknown level {level!r} (choose {', '.join(LEVELS)})")
    started = time.monotonic()
    root = data_root(torrent, Path(data))
    files = list(torrent.files)  # made once: a FileTable makes a TorrentFile per access
    paths, sizes = _stat_files(torrent, files, root)
    checkable = [
        size is not None and (level == "presence" or size == length)
        for length, size in zip(torrent.files.lengths, sizes, strict=True)
    ]
    findings = _Findings()
    if level == "full":
        for i, f in enumerate(files if manifest else ()):
            digest = manifest.get(_display(torrent, f)) or manifest.get(f.path_str)  # type: ignore[union-attr]
            if digest and checkable[i]:
                findings.expected_sha[i] = digest.lower()
        _full_check(
            torrent,
            files,
            paths,
            checkable,
            findings,
            jobs=jobs,
            executor=executor,
            progress=progress,
        )
    results = [
        _file_result(torrent, files[i], i, sizes[i], paths[i], level, findings)
        for i in range(len(torrent.files))
    ]
    results.extend(_unexpected(torrent, root))
    return VerifyReport(
        torrent=torrent.name,
        infohash=torrent.info_hash_v1 or torrent.info_hash_v2 or "",
        data=str(root),
        level=level,
        files=tuple(results),
        pieces_checked=findings.pieces_checked,
        pieces_failed=findings.pieces_failed,
        bytes_hashed=findings.hashed,
        seconds=time.monotonic() - started,
    )
