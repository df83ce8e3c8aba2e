"""Piece hashing in one read pass: v1 SHA-1 pieces and v2 SHA-256 merkle subtrees together.

The piece space is the files laid end to end, each followed by its padding (hybrid and
v2 torrents align every file to a piece boundary, BEP 47/52; v1 has no padding). A
range of pieces is hashed from memory-mapped files (no copy out of the page cache; a
plain read where mapping fails): the v1 SHA-1 is fed each piece's bytes in place,
across file boundaries and padding zeros, and the v2 hash of a piece is the root of its
16 KiB-block merkle subtree, from the same bytes. Ranges are independent, so
`hash_ranges` spreads them over worker threads.
"""

from __future__ import annotations

import hashlib
import mmap
import os
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from musicark.errors import TorrentError
from musicark.executor import make_executor

BLOCK = 16 * 1024
ZERO32 = bytes(32)


@dataclass(frozen=True, slots=True)
class Span:
    """One file in the piece space: `length` real bytes at `offset`, then `pad` zeros."""

    source: str  # path to read
    length: int
    offset: int
    pad: int


@dataclass(frozen=True, slots=True)
class Plan:
    spans: tuple[Span, ...]
    piece_length: int
    v1: bool
    v2: bool
    size: int  # bytes in the piece space, padding included

    def part(self, first: int, last: int) -> Plan:
        """The same plan with only the spans that pieces `first..last-1` touch."""
        starts = [s.offset for s in self.spans]
        lo = max(0, bisect_right(starts, first * self.piece_length) - 1)
        hi = bisect_right(starts, last * self.piece_length - 1)
        return Plan(self.spans[lo:hi], self.piece_length, self.v1, self.v2, self.size)

    @property
    def num_pieces(self) -> int:
        return -(-self.size // self.piece_length)


def zero_subtree(levels: int) -> bytes:
    """Root of a subtree of 2**levels zero leaves."""
    h = ZERO32
    for _ in range(levels):
        h = hashlib.sha256(h + h).digest()
    return h


def merkle_root(leaves: Sequence[bytes], width: int, pad: bytes = ZERO32) -> bytes:
    """Root over `leaves` padded with `pad` to `width` (a power of two) leaves."""
    layer = list(leaves)
    while width > 1:
        if len(layer) % 2:
            layer.append(pad)
        sha = hashlib.sha256
        layer = [sha(layer[i] + layer[i + 1]).digest() for i in range(0, len(layer), 2)]
        pad = sha(pad + pad).digest()
        width //= 2
    return layer[0] if layer else pad


def next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _map(source: str, lo: int, hi: int) -> tuple[memoryview, Any]:
    """Bytes `lo..hi` of a file, mapped (no copy) or, where mapping fails, read."""
    try:
        fd = os.open(source, os.O_RDONLY)
    except OSError as exc:
        raise TorrentError(f"cannot read {source}: {exc.strerror}") from exc
    try:
        if os.fstat(fd).st_size < hi:
            raise TorrentError(f"{source} is shorter than when it was listed")
        base = lo - lo % mmap.ALLOCATIONGRANULARITY
        try:
            # plain mapping: measured as fast as MAP_POPULATE, MADV_SEQUENTIAL or read()
            # into a buffer, and it spares the copy out of the page cache
            mapped = mmap.mmap(
                fd, hi - base, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ, offset=base
            )
            return memoryview(mapped)[lo - base :], mapped
        except (OSError, ValueError):
            buf = bytearray(hi - lo)
            view = memoryview(buf)
            got = 0
            while got < len(buf):
                n = os.preadv(fd, [view[got:]], lo + got)
                if n <= 0:
                    raise TorrentError(f"{source} shrank while it was hashed") from None
                got += n
            return view, None
    finally:
        os.close(fd)


def hash_range(plan: Plan, first: int, last: int) -> tuple[list[bytes], list[bytes | None]]:
    """SHA-1 hashes and v2 subtree roots of pieces `first..last-1` (None: no v2 root)."""
    p = plan.piece_length
    pos = first * p
    end = min(last * p, plan.size)
    zeros = memoryview(bytes(min(p, 4 * 2**20)) if plan.v1 else b"")
    leaves_per_piece = p // BLOCK
    sha1s: list[bytes] = []
    roots: list[bytes | None] = []
    sha1 = hashlib.sha1
    sha256 = hashlib.sha256
    h1 = sha1()
    in_piece = 0
    root: bytes | None = None

    def finish() -> None:
        nonlocal h1, in_piece, root
        if plan.v1:
            sha1s.append(h1.digest())
            h1 = sha1()
        roots.append(root)
        in_piece = 0
        root = None

    for span in plan.spans:
        span_end = span.offset + span.length
        if span.offset >= end:
            break
        lo, hi = max(pos, span.offset), min(end, span_end)
        if hi > lo:
            view, mapped = _map(span.source, lo - span.offset, hi - span.offset)
            try:
                i, n = 0, hi - lo
                while i < n:
                    take = min(p - in_piece, n - i)
                    chunk = view[i : i + take]
                    if plan.v1:
                        h1.update(chunk)
                    if plan.v2:
                        blocks = [
                            _leaf(sha256, chunk[b : b + BLOCK]) for b in range(0, take, BLOCK)
                        ]
                        width = leaves_per_piece if span.length > p else next_pow2(len(blocks))
                        root = merkle_root(blocks, width)
                    chunk.release()
                    in_piece += take
                    i += take
                    if in_piece == p:
                        finish()
            finally:
                view.release()
                if mapped is not None:
                    mapped.close()
        lo, hi = max(pos, span_end), min(end, span_end + span.pad)
        while hi > lo:
            take = min(p - in_piece, hi - lo, len(zeros) or hi - lo)
            if plan.v1:
                h1.update(zeros[:take])  # a view: no copy of the zeros
            in_piece += take
            lo += take
            if in_piece == p:
                finish()
    if in_piece:
        finish()
    if len(roots) != last - first:
        raise TorrentError(f"internal error: hashed {len(roots)} pieces of {last - first}")
    return sha1s, roots


def _leaf(sha256: Any, block: memoryview) -> bytes:
    # update() releases the GIL for a 16 KiB block; the constructor given the data does
    # not in every Python build (3.11 holds it), which serialised the hashing threads
    h = sha256()
    h.update(block)
    return h.digest()


def _ranges(num_pieces: int, piece_length: int, task_bytes: int) -> list[tuple[int, int]]:
    per = max(1, task_bytes // piece_length)
    return [(a, min(a + per, num_pieces)) for a in range(0, num_pieces, per)]


def hash_ranges(
    plan: Plan,
    *,
    jobs: int,
    task_bytes: int = 16 * 2**20,
    where: str = "local",
    shared: Sequence[str | os.PathLike[str]] = (),
) -> Iterator[tuple[int, int, list[bytes], list[bytes | None]]]:
    """Yield `(first, last, sha1s, roots)` for every range of pieces, in order.

    With `jobs` > 1 ranges are hashed on that many threads of the executor factory:
    hashlib releases the GIL while it hashes a buffer, so threads scale like processes
    here without forking or pickling (measured: the same wall time, 10-20 % less CPU).
    The executor keeps ranges queued ahead, so a worker never waits for the caller;
    ranges that finish early wait here until those before them are done.
    """
    ranges = _ranges(plan.num_pieces, plan.piece_length, task_bytes)
    if where != "local":  # a cluster (`where`, `shared`: see make_executor)
        yield from _hash_on(plan, ranges, where, shared)
        return
    if jobs <= 1 or len(ranges) <= 1:
        for first, last in ranges:
            yield (first, last, *hash_range(plan.part(first, last), first, last))
        return

    def work(piece_range: tuple[int, int]) -> tuple[list[bytes], list[bytes | None]]:
        first, last = piece_range
        return hash_range(plan.part(first, last), first, last)

    done: dict[int, tuple[int, list[bytes], list[bytes | None]]] = {}
    order = iter(ranges)
    wanted: tuple[int, int] | None = next(order)
    with make_executor(jobs=jobs, kind="threads") as executor:
        for outcome in executor.run(work, ranges):
            (first, last), result = outcome.task, outcome.result
            assert result is not None
            done[first] = (last, *result)
            while wanted is not None and wanted[0] in done:
                last, sha1s, roots = done.pop(wanted[0])
                yield (wanted[0], last, sha1s, roots)
                wanted = next(order, None)


def _hash_part(task: tuple[Plan, int, int]) -> tuple[list[bytes], list[bytes | None]]:
    part, first, last = task
    return hash_range(part, first, last)


def _hash_on(
    plan: Plan,
    ranges: list[tuple[int, int]],
    where: str,
    shared: Sequence[str | os.PathLike[str]],
) -> Iterator[tuple[int, int, list[bytes], list[bytes | None]]]:
    """Ranges hashed by a cluster's workers; each task carries only its own files."""
    done: dict[int, tuple[int, list[bytes], list[bytes | None]]] = {}
    order = iter(ranges)
    wanted: tuple[int, int] | None = next(order, None)
    tasks = ((plan.part(first, last), first, last) for first, last in ranges)
    with make_executor(jobs=1, kind="threads", where=where, shared=shared) as executor:
        for outcome in executor.run(_hash_part, tasks):
            _part, first, last = outcome.task
            assert outcome.result is not None
            done[first] = (last, *outcome.result)
            while wanted is not None and wanted[0] in done:
                last, sha1s, roots = done.pop(wanted[0])
                yield (wanted[0], last, sha1s, roots)
                wanted = next(order, None)
