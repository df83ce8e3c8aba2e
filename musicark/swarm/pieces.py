"""The full check's hashing: piece runs and whole-file sha256s from memory-mapped files.

Files are memory-mapped and hashed in place from the page cache (a piece that spans
files is fed to the hash file by file: nothing is copied), in tasks of several pieces,
on threads of the executor factory: `hashlib`'s `update()` releases the GIL on large
buffers, so threads hash in parallel without copying data between processes.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import mmap
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musicark.errors import SwarmError
from musicark.executor import cpu_count, make_executor
from musicark.progress import Progress, ProgressCallback, report
from musicark.torrent.hashing import merkle_root, next_pow2
from musicark.torrent.metainfo import BLOCK_SIZE, Torrent

UNIT_BYTES = 8 * 2**20  # bytes read and hashed per task
POPULATE_BYTES = 256 * 2**20  # files up to this size are read in whole when mapped


@dataclass
class PiecePlan:
    """What the full check hashes: piece runs and, with a manifest, whole files."""

    torrent: Torrent
    root: Path
    paths: list[Path]
    starts: Sequence[int]  # each file's offset, in torrent order (ascending)
    checkable: list[bool]  # per file: present with the right size
    sha256: dict[int, str] = field(default_factory=dict)  # file index -> manifest hash

    def files_of_piece(self, piece: int) -> range:
        return files_of_piece(self.torrent, piece)


def files_of_piece(torrent: Torrent, piece: int) -> range:
    """Indices of the files holding a byte of `piece`."""
    starts, lengths = torrent.files.offsets, torrent.files.lengths
    pl = torrent.piece_length
    lo, hi = piece * pl, (piece + 1) * pl
    first = max(bisect.bisect_right(starts, lo) - 1, 0)
    last = first
    while last + 1 < len(starts) and starts[last + 1] < hi:
        last += 1
    while first < last and starts[first] + lengths[first] <= lo:
        first += 1
    return range(first, last + 1)


class Hasher:
    """Checks piece runs and whole-file sha256s from memory-mapped files.

    A file stays mapped while pieces (or its sha256) touching it are still to be checked,
    and is unmapped after the last one, so a large torrent is never mapped all at once.
    """

    def __init__(self, plan: PiecePlan, piece_ok: list[bool]) -> None:
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
        self.leaf = _leaf
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
        starts, lengths = self.plan.starts, self.plan.torrent.files.lengths
        i = max(bisect.bisect_right(starts, lo) - 1, 0)
        out: list[memoryview | int] = []
        pos = lo
        while pos < hi:
            if i >= len(starts) or starts[i] >= hi:
                out.append(hi - pos)
                break
            offset = starts[i]
            if offset > pos:  # padding before this file
                out.append(offset - pos)
                pos = offset
            end = min(offset + lengths[i], hi)
            if end > pos:
                out.append(self._map(i)[pos - offset : end - offset])
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

    def files_sha256(self, indices: Sequence[int]) -> list[str]:
        return [self.file_sha256(i) for i in indices]

    def file_sha256(self, index: int) -> str:
        size = self.plan.torrent.files.lengths[index]
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


def _leaf(data: memoryview) -> bytes:
    # update() releases the GIL for a 16 KiB leaf; the constructor given the data keeps it
    # in some builds (3.11), which serialised a hybrid's SHA-256 half across the threads
    # (measured in one run, 300 MB hybrid, alternating: 1.09 s against 1.34 s best wall)
    h = hashlib.sha256()
    h.update(data)
    return h.digest()


def piece_runs(checkable_pieces: list[bool], per_unit: int) -> Iterator[tuple[int, int]]:
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


def run_checks(
    hasher: Hasher,
    plan: PiecePlan,
    runs: Iterator[tuple[int, int]],
    *,
    jobs: int,
    total: int,
    progress: ProgressCallback | None,
    bad_by_file: dict[int, set[int]],
    sha_results: dict[int, str],
) -> tuple[int, int, int]:
    """Hash every run and manifest file on `jobs` threads (0: two per core) of the
    executor factory; returns pieces checked, pieces failed and bytes hashed.

    Threads, not processes: `update()` releases the GIL and the files are mapped once, in
    this process. Two per core: a thread that finished hashing waits for the GIL (and, on a
    busy machine, for the scheduler) before its next piece; a second one keeps the core
    busy. The executor keeps tasks queued ahead, so a collecting thread that the machine
    delays never leaves the workers idle.
    """
    workers = jobs or 2 * cpu_count()

    def work(task: tuple[str, Any]) -> Any:
        kind, arg = task
        return hasher.check(*arg) if kind == "pieces" else hasher.files_sha256(arg)

    checked = failed = done = 0
    with make_executor(jobs=workers, kind="threads") as executor:
        for outcome in executor.run(work, _tasks(runs, plan)):
            kind, arg = outcome.task
            out: Any = outcome.result
            done += _collect(plan, kind, arg, out, bad_by_file, sha_results)
            if kind == "pieces":
                checked += arg[1] - arg[0] + 1
                failed += len(out[0])
            report(progress, Progress("verify", done, total, "bytes"))
    return checked, failed, done


def _collect(
    plan: PiecePlan,
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
    lengths = plan.torrent.files.lengths
    sha_results.update(zip(arg, out, strict=True))
    return sum(lengths[i] for i in arg)


def _tasks(runs: Iterator[tuple[int, int]], plan: PiecePlan) -> Iterator[tuple[str, Any]]:
    yield from (("pieces", run) for run in runs)
    # manifest files in batches of about UNIT_BYTES: a task per small file costs more in
    # hand-offs between threads than its hashing
    lengths = plan.torrent.files.lengths
    batch: list[int] = []
    size = 0
    for index in sorted(plan.sha256):
        batch.append(index)
        size += lengths[index]
        if size >= UNIT_BYTES:
            yield ("sha256", tuple(batch))
            batch, size = [], 0
    if batch:
        yield ("sha256", tuple(batch))
