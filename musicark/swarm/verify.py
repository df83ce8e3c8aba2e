"""Verify a torrent's data folder: presence, size, or full piece hashes (v1 and v2).

The report names every file `ok`, `missing`, `corrupt` (wrong size, failing pieces or
a sha256 that differs from the manifest) or `unexpected` (in the folder, not in the
torrent). A present file whose pieces could not all be checked, because a v1 piece it
shares with a neighbour lacks the neighbour's bytes, is `unverified`.

Speed: files are memory-mapped and hashed in place from the page cache (a piece that
spans files is fed to the hash file by file: nothing is copied), in tasks of several
pieces, on two threads per core: `hashlib`'s `update()` releases the GIL on large
buffers, so threads hash in parallel without copying data between processes.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import mmap
import os
import queue
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musicark.errors import SwarmError
from musicark.progress import Progress, ProgressCallback, report
from musicark.torrent.hashing import merkle_root, next_pow2
from musicark.torrent.metainfo import BLOCK_SIZE, Torrent, TorrentFile

LEVELS = ("presence", "size", "full")
STATUSES = ("ok", "missing", "corrupt", "unexpected", "unverified")
UNIT_BYTES = 8 * 2**20  # bytes read and hashed per task
POPULATE_BYTES = 256 * 2**20  # files up to this size are read in whole when mapped
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
        data.joinpath(*f.path).exists() for f in torrent.files[:64]
    ):
        return data
    return data / torrent.name


def _file_path(torrent: Torrent, root: Path, file: TorrentFile) -> Path:
    return root if torrent.single_file else root.joinpath(*file.path)


def _display(torrent: Torrent, file: TorrentFile) -> str:
    return torrent.name if torrent.single_file else file.path_str


def _unexpected(torrent: Torrent, root: Path) -> list[FileResult]:
    if torrent.single_file or not root.is_dir():
        return []
    expected = {f.path_str for f in torrent.files}
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
class _Plan:
    """What the full check hashes: piece runs and, with a manifest, whole files."""

    torrent: Torrent
    root: Path
    paths: list[Path]
    starts: list[int]  # each file's offset, in torrent order (ascending)
    checkable: list[bool]  # per file: present with the right size
    sha256: dict[int, str] = field(default_factory=dict)  # file index -> manifest hash

    def files_of_piece(self, piece: int) -> range:
        return _files_of_piece(self.torrent, piece, self.starts)


def _files_of_piece(torrent: Torrent, piece: int, starts: list[int] | None = None) -> range:
    """Indices of the files holding a byte of `piece`."""
    starts = starts if starts is not None else [f.offset for f in torrent.files]
    pl = torrent.piece_length
    lo, hi = piece * pl, (piece + 1) * pl
    first = max(bisect.bisect_right(starts, lo) - 1, 0)
    last = first
    files = torrent.files
    while last + 1 < len(files) and files[last + 1].offset < hi:
        last += 1
    while first < last and files[first].offset + files[first].length <= lo:
        first += 1
    return range(first, last + 1)


class _Hasher:
    """Checks piece runs and whole-file sha256s from memory-mapped files.

    A file stays mapped while pieces (or its sha256) touching it are still to be checked,
    and is unmapped after the last one, so a large torrent is never mapped all at once.
    """

    def __init__(self, plan: _Plan, piece_ok: list[bool]) -> None:
        self.plan = plan
        self.maps: dict[int, memoryview] = {}
        self.mmaps: dict[int, mmap.mmap] = {}
        self.leftover: list[mmap.mmap] = []
        self.lock = threading.Lock()
        t = plan.torrent
        self.pending = [
            sum(1 for p in range(f.first_piece, f.last_piece + 1) if piece_ok[p]) if f.length else 0
            for f in t.files
        ]
        for i in plan.sha256:
            self.pending[i] += 1
        self.v1 = bool(t.pieces)
        self.v2 = bool(t.info_hash_v2)
        self.leaves_per_piece = max(t.piece_length // BLOCK_SIZE, 1)
        self.leaf = _leaf_holding_gil if self.v1 else _leaf_releasing_gil
        # piece index -> (file index, piece index within the file) for v2
        self.v2_owner: dict[int, int] = {}
        if self.v2:
            for i, f in enumerate(t.files):
                if f.length:
                    self.v2_owner[f.first_piece] = i

    def _map(self, index: int) -> memoryview:
        """The whole file `index`, memory-mapped read-only (hashing reads the page cache
        in place, as libtorrent does)."""
        view = self.maps.get(index)
        if view is not None:
            return view
        size = self.plan.torrent.files[index].length
        flags = mmap.MAP_SHARED
        if size <= POPULATE_BYTES:  # fault the whole (music-sized) file in at once
            flags |= getattr(mmap, "MAP_POPULATE", 0)
        with open(self.plan.paths[index], "rb") as fh:  # outside the lock: mapping reads
            mm = mmap.mmap(fh.fileno(), 0, flags=flags, prot=mmap.PROT_READ)
        if len(mm) != size:
            mm.close()
            raise SwarmError(f"{self.plan.paths[index]}: changed size while being verified")
        with contextlib.suppress(AttributeError, OSError):
            mm.madvise(mmap.MADV_SEQUENTIAL)
        with self.lock:
            view = self.maps.get(index)
            if view is not None:  # another thread mapped it meanwhile
                mm.close()
                return view
            self.mmaps[index] = mm
            view = memoryview(mm)
            self.maps[index] = view
            return view

    def _done(self, index: int) -> None:
        """One more piece (or the sha256) of file `index` checked; unmap it after the last."""
        with self.lock:
            self.pending[index] -= 1
            if self.pending[index] > 0 or index not in self.maps:
                return
            view, mm = self.maps.pop(index), self.mmaps.pop(index)
        try:
            view.release()
            mm.close()
        except BufferError:  # still referenced: unmapped at close()
            self.leftover.append(mm)

    def close(self) -> None:
        for view in self.maps.values():
            view.release()
        for mm in [*self.mmaps.values(), *self.leftover]:
            with contextlib.suppress(BufferError):
                mm.close()
        self.maps.clear()
        self.mmaps.clear()
        self.leftover.clear()

    def _segments(self, lo: int, hi: int, files: list[int]) -> list[memoryview | int]:
        """The piece-space bytes [lo, hi) as views into the files' mappings, in order; an
        int is that many zero bytes of padding. Nothing is copied. The indices of the
        files read are appended to `files`."""
        t = self.plan.torrent
        i = max(bisect.bisect_right(self.plan.starts, lo) - 1, 0)
        out: list[memoryview | int] = []
        pos = lo
        while pos < hi:
            f = t.files[i] if i < len(t.files) else None
            if f is None or f.offset >= hi:
                out.append(hi - pos)
                break
            if f.offset > pos:  # padding before this file
                out.append(f.offset - pos)
                pos = f.offset
            end = min(f.offset + f.length, hi)
            if end > pos:
                out.append(self._map(i)[pos - f.offset : end - f.offset])
                files.append(i)
                pos = end
            i += 1
        return out

    def _piece_ok(self, piece: int, files: list[int]) -> bool:
        t = self.plan.torrent
        lo = piece * t.piece_length
        segments = self._segments(lo, min(lo + t.piece_length, t.padded_size), files)
        if self.v1:
            h = hashlib.sha1()
            for seg in segments:
                # update() releases the GIL on large buffers; hashlib.sha1(data) does not
                # in every Python build, which would serialise the hashing threads
                h.update(seg if isinstance(seg, memoryview) else _zeros(seg))
            if h.digest() != t.pieces[piece]:
                return False
        # v2 pieces never span files: the first segment is the file's part of the piece
        head = segments[0]
        return not self.v2 or (isinstance(head, memoryview) and self._check_v2(piece, head))

    def check(self, first: int, last: int) -> tuple[list[int], int]:
        """Hash pieces first..last (inclusive); returns the failing ones and bytes read."""
        t = self.plan.torrent
        bad: list[int] = []
        for piece in range(first, last + 1):
            files: list[int] = []
            if not self._piece_ok(piece, files):
                bad.append(piece)
            for i in files:  # the piece's views are gone: its files may be unmapped
                self._done(i)
        return bad, min((last + 1) * t.piece_length, t.padded_size) - first * t.piece_length

    def _check_v2(self, piece: int, chunk: memoryview) -> bool:
        t = self.plan.torrent
        owner = self.v2_owner.get(piece)
        if owner is None:  # a later piece of a file: find the file that starts before
            keys = self._owner_keys()
            owner = self.v2_owner[keys[bisect.bisect_right(keys, piece) - 1]]
        f = t.files[owner]
        k = piece - f.first_piece
        length = min(t.piece_length, f.length - k * t.piece_length)
        data = chunk[:length]
        leaf = self.leaf
        leaves = [leaf(data[i : i + BLOCK_SIZE]) for i in range(0, length, BLOCK_SIZE)]
        assert f.pieces_root is not None
        if f.length <= t.piece_length:
            return merkle_root(leaves, next_pow2(len(leaves))) == f.pieces_root
        expected = t.piece_layers[f.pieces_root][k * 32 : (k + 1) * 32]
        return merkle_root(leaves, self.leaves_per_piece) == expected

    def _owner_keys(self) -> list[int]:
        keys: list[int] | None = getattr(self, "_keys", None)
        if keys is None:
            keys = sorted(self.v2_owner)
            self._keys = keys
        return keys

    def file_sha256(self, index: int) -> str:
        size = self.plan.torrent.files[index].length
        digest = self._sha256(index, size) if size else hashlib.sha256().hexdigest()
        self._done(index)
        return digest

    def _sha256(self, index: int, size: int) -> str:
        h = hashlib.sha256()
        view = self._map(index)
        for pos in range(0, size, UNIT_BYTES):
            h.update(view[pos : pos + UNIT_BYTES])
        return h.hexdigest()


_ZEROS = bytes(4 * 2**20)


def _zeros(n: int) -> memoryview:
    """A view of `n` zero bytes (padding), from one shared buffer when it is big enough."""
    return memoryview(_ZEROS)[:n] if n <= len(_ZEROS) else memoryview(bytes(n))


def _leaf_holding_gil(data: memoryview) -> bytes:
    # hybrid: a 16 KiB v2 leaf is hashed without releasing the GIL (the constructor keeps
    # it in some Python builds): tens of thousands of GIL hand-offs per GB between threads
    # cost more than they save, and the other threads meanwhile hash their SHA-1 pieces
    return hashlib.sha256(data).digest()


def _leaf_releasing_gil(data: memoryview) -> bytes:
    # v2 only: nothing else to overlap with, so release the GIL for every leaf
    h = hashlib.sha256()
    h.update(data)
    return h.digest()


def _piece_runs(checkable_pieces: list[bool], per_unit: int) -> Iterator[tuple[int, int]]:
    """Consecutive checkable pieces in runs of at most `per_unit`."""
    i, n = 0, len(checkable_pieces)
    while i < n:
        if not checkable_pieces[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and checkable_pieces[j + 1] and j + 1 - i < per_unit:
            j += 1
        yield i, j
        i = j + 1


def verify_torrent(
    torrent: Torrent,
    data: Path,
    *,
    level: str = "full",
    manifest: Mapping[str, str] | None = None,
    jobs: int = 0,
    progress: ProgressCallback | None = None,
) -> VerifyReport:
    """Check `data` (the torrent's folder or the folder holding it) against `torrent`.

    `manifest` maps file paths (as in the torrent, relative to its root) to sha256 hex;
    at level `full` each listed file's sha256 is checked too. `jobs` threads hash in
    parallel (0: two per core).
    """
    if level not in LEVELS:
        raise SwarmError(f"unknown level {level!r} (choose {', '.join(LEVELS)})")
    started = time.monotonic()
    root = data_root(torrent, Path(data))
    infohash = torrent.info_hash_v1 or torrent.info_hash_v2 or ""
    sizes: list[int | None] = []
    paths = []
    for f in torrent.files:
        path = _file_path(torrent, root, f)
        paths.append(path)
        try:
            st = path.stat()
            sizes.append(st.st_size if path.is_file() else None)
        except OSError:
            sizes.append(None)

    checkable = [
        size is not None and (level == "presence" or size == f.length)
        for f, size in zip(torrent.files, sizes, strict=True)
    ]
    expected_sha: dict[int, str] = {}
    if level == "full" and manifest:
        for i, f in enumerate(torrent.files):
            digest = manifest.get(_display(torrent, f)) or manifest.get(f.path_str)
            if digest and checkable[i]:
                expected_sha[i] = digest.lower()
    bad_by_file: dict[int, set[int]] = {}
    unchecked: set[int] = set()
    sha_results: dict[int, str] = {}
    pieces_checked = pieces_failed = hashed = 0
    if level == "full":
        plan = _Plan(
            torrent=torrent,
            root=root,
            paths=paths,
            starts=[f.offset for f in torrent.files],
            checkable=checkable,
            sha256=expected_sha,
        )
        piece_ok = [True] * torrent.num_pieces
        for i, f in enumerate(torrent.files):
            if not checkable[i] and f.length:
                for p in range(f.first_piece, f.last_piece + 1):
                    piece_ok[p] = False
                    unchecked.add(p)
        per_unit = max(UNIT_BYTES // torrent.piece_length, 1)
        hasher = _Hasher(plan, piece_ok)
        pl, padded = torrent.piece_length, torrent.padded_size
        total = sum(min(pl, padded - p * pl) for p, ok in enumerate(piece_ok) if ok)
        total += sum(torrent.files[i].length for i in expected_sha)
        try:
            pieces_checked, pieces_failed, hashed = _run(
                hasher,
                plan,
                _piece_runs(piece_ok, per_unit),
                jobs=jobs,
                total=total,
                progress=progress,
                bad_by_file=bad_by_file,
                sha_results=sha_results,
            )
        except OSError as exc:
            raise SwarmError(f"cannot read {exc.filename or root}: {exc.strerror}") from exc
        finally:
            hasher.close()

    results: list[FileResult] = []
    starts = [f.offset for f in torrent.files]
    for i, f in enumerate(torrent.files):
        name = _display(torrent, f)
        size = sizes[i]
        if size is None:
            odd = paths[i].exists() or paths[i].is_symlink()
            reason = "not a regular file" if odd else ""
            results.append(FileResult(name, "missing", None, f.length, reason=reason))
            continue
        if level != "presence" and size != f.length:
            reason = f"size {size}, expected {f.length}"
            results.append(FileResult(name, "corrupt", size, f.length, reason=reason))
            continue
        bad = tuple(sorted(bad_by_file.get(i, ())))
        if i in expected_sha:
            # a failing piece it shares with a neighbour may be the neighbour's fault; one
            # of its own cannot be, whatever the manifest says
            own = [p for p in bad if len(_files_of_piece(torrent, p, starts)) == 1]
            if sha_results.get(i) != expected_sha[i]:
                reason = "sha256 differs from the manifest"
                results.append(FileResult(name, "corrupt", size, f.length, bad, reason))
            elif own:
                reason = "pieces fail although the sha256 matches the manifest"
                results.append(FileResult(name, "corrupt", size, f.length, tuple(own), reason))
            else:
                results.append(FileResult(name, "ok", size, f.length))
        elif bad:
            results.append(FileResult(name, "corrupt", size, f.length, bad, "pieces fail"))
        elif f.length and any(p in unchecked for p in range(f.first_piece, f.last_piece + 1)):
            reason = "shares a piece with a missing or wrong-sized file"
            results.append(FileResult(name, "unverified", size, f.length, reason=reason))
        else:
            results.append(FileResult(name, "ok", size, f.length))
    results.extend(_unexpected(torrent, root))
    return VerifyReport(
        torrent=torrent.name,
        infohash=infohash,
        data=str(root),
        level=level,
        files=tuple(results),
        pieces_checked=pieces_checked,
        pieces_failed=pieces_failed,
        bytes_hashed=hashed,
        seconds=time.monotonic() - started,
    )


def _run(
    hasher: _Hasher,
    plan: _Plan,
    runs: Iterator[tuple[int, int]],
    *,
    jobs: int,
    total: int,
    progress: ProgressCallback | None,
    bad_by_file: dict[int, set[int]],
    sha_results: dict[int, str],
) -> tuple[int, int, int]:
    """Hash every run and manifest file on `jobs` threads.

    Workers pull tasks from one shared iterator and push results to a queue, so a busy
    machine that delays this (collecting) thread never leaves the workers idle.
    """
    # two threads per core: a thread that finished hashing waits for the GIL (and, on a
    # busy machine, for the scheduler) before its next piece; a second one keeps the core busy
    workers = jobs or 2 * (os.cpu_count() or 1)
    tasks = _tasks(runs, plan)
    take = threading.Lock()
    stop = threading.Event()
    results: queue.SimpleQueue[tuple[str, Any, Any]] = queue.SimpleQueue()

    def worker() -> None:
        while not stop.is_set():
            with take:
                task = next(tasks, None)
            if task is None:
                break
            kind, arg = task
            try:
                out = hasher.check(*arg) if kind == "pieces" else hasher.file_sha256(arg)
            except BaseException as exc:  # handed to the collecting thread
                results.put(("error", arg, exc))
                break
            results.put((kind, arg, out))
        results.put(("done", None, None))

    threads = [
        threading.Thread(target=worker, name=f"verify-{i}", daemon=True) for i in range(workers)
    ]
    for th in threads:
        th.start()
    checked = failed = done = 0
    running = workers
    try:
        while running:
            kind, arg, out = results.get()
            if kind == "done":
                running -= 1
                continue
            if kind == "error":
                raise out
            done += _collect(plan, kind, arg, out, bad_by_file, sha_results)
            checked += arg[1] - arg[0] + 1 if kind == "pieces" else 0
            failed += len(out[0]) if kind == "pieces" else 0
            report(progress, Progress("verify", done, total, "bytes"))
    finally:
        stop.set()
        for th in threads:
            th.join()
    return checked, failed, done


def _collect(
    plan: _Plan,
    kind: str,
    arg: Any,
    out: Any,
    bad_by_file: dict[int, set[int]],
    sha_results: dict[int, str],
) -> int:
    """Record one task's result; returns the bytes it hashed."""
    if kind == "pieces":
        bad, nbytes = out
        for piece in bad:
            for i in plan.files_of_piece(piece):
                bad_by_file.setdefault(i, set()).add(piece)
        return int(nbytes)
    sha_results[arg] = out
    return plan.torrent.files[arg].length


def _tasks(runs: Iterator[tuple[int, int]], plan: _Plan) -> Iterator[tuple[str, Any]]:
    yield from (("pieces", run) for run in runs)
    yield from (("sha256", index) for index in sorted(plan.sha256))
