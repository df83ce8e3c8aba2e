"""Piece hashing in one read pass: v1 SHA-1 pieces and v2 SHA-256 merkle subtrees together.

The piece space is the files laid end to end, each followed by its padding (hybrid and
v2 torrents align every file to a piece boundary, BEP 47/52; v1 has no padding). A
range of pieces is hashed from memory-mapped files (no copy out of the page cache; a
plain read where mapping fails): the v1 SHA-1 is fed each piece's bytes in place,
across file boundaries and padding zeros, and the v2 hash of a piece is the root of its
16 KiB-block merkle subtree, from the same bytes. Ranges are independent, so
`hash_runs` spreads them over worker processes or threads.
"""

from __future__ import annotations

import hashlib
import mmap
import os
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from musicark.errors import TorrentError
from musicark.executor import make_executor

BLOCK = 16 * 1024
ZERO32 = bytes(32)
PROCESS_BYTES = 64 * 2**20  # below this, local hashing runs on threads (see local_kind)


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
        # a bisect on the spans themselves: no list of offsets per part of a large torrent
        lo = max(0, bisect_right(self.spans, first * self.piece_length, key=_offset) - 1)
        hi = bisect_right(self.spans, last * self.piece_length - 1, key=_offset)
        return Plan(self.spans[lo:hi], self.piece_length, self.v1, self.v2, self.size)

    @property
    def num_pieces(self) -> int:
        return -(-self.size // self.piece_length)


def _offset(span: Span) -> int:
    return span.offset


def zero_subtree(levels: int) -> bytes:
    """Root of a subtree of 2**levels zero leaves."""
    h = ZERO32
    for _ in range(levels):
        h = hashlib.sha256(h + h).digest()
    return h


def merkle_root(leaves: Sequence[bytes], width: int, pad: bytes = ZERO32) -> bytes:
    """Root over `leaves` padded with `pad` to `width` (a power of two) leaves."""
    sha = hashlib.sha256
    layer = list(leaves)
    while width > 1:
        if len(layer) % 2:
            layer.append(pad)
        layer = [sha(layer[i] + layer[i + 1]).digest() for i in range(0, len(layer), 2)]
        width //= 2
        if width > len(layer):  # the padding's own subtree is needed only when it is used
            pad = sha(pad + pad).digest()
    return layer[0] if layer else pad


def next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def map_range(source: str, lo: int, hi: int) -> tuple[memoryview, Any]:
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
            view, mapped = map_range(span.source, lo - span.offset, hi - span.offset)
            try:
                i, n = 0, hi - lo
                while i < n:
                    take = min(p - in_piece, n - i)
                    chunk = view[i : i + take]
                    if plan.v1:
                        h1.update(chunk)
                    if plan.v2:
                        blocks = []
                        for b in range(0, take, BLOCK):
                            # update(), not the constructor: it releases the GIL for a
                            # 16 KiB block (3.11's constructor does not)
                            leaf = sha256()
                            leaf.update(chunk[b : b + BLOCK])
                            blocks.append(leaf.digest())
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


def _ranges(
    num_pieces: int, piece_length: int, task_bytes: int, jobs: int = 1
) -> list[tuple[int, int]]:
    """Runs of at most `task_bytes`, shrinking towards the end (to half of each worker's
    share of what is left, down to 4 MiB) so that the workers finish together; few
    enough that handing them to worker processes costs little."""
    most = max(1, task_bytes // piece_length)
    least = min(most, max(1, 4 * 2**20 // piece_length))
    out = []
    first = 0
    while first < num_pieces:
        per = max(least, min(most, (num_pieces - first) // (2 * jobs)))
        out.append((first, min(first + per, num_pieces)))
        first += per
    return out


def hash_ranges(
    plan: Plan,
    *,
    jobs: int,
    task_bytes: int = 16 * 2**20,
    where: str = "local",
    shared: Sequence[str | os.PathLike[str]] = (),
) -> Iterator[tuple[int, int, list[bytes], list[bytes | None]]]:
    """Yield `(first, last, sha1s, roots)` for every range of pieces (at most `task_bytes`
    each), in order."""
    ranges = _ranges(plan.num_pieces, plan.piece_length, task_bytes, jobs)
    return hash_runs(plan, ranges, jobs=jobs, where=where, shared=shared)


def hash_runs(
    plan: Plan,
    runs: Iterable[tuple[int, int]],
    *,
    jobs: int,
    where: str = "local",
    shared: Sequence[str | os.PathLike[str]] = (),
    kind: str | None = None,
) -> Iterator[tuple[int, int, list[bytes], list[bytes | None]]]:
    """Yield `(first, last, sha1s, roots)` for each run of pieces `first..last-1`, in the
    order given.

    Each task carries only its own part of the plan, so it runs the same on this
    machine's workers and on a cluster's (`where`, `shared`: see make_executor). Locally,
    with `jobs` > 1, on worker processes or threads (`kind`; by default `local_kind`).
    The executor keeps tasks queued ahead, so a worker never waits for the
    caller; runs that finish early wait here until those before them are done.
    """
    if where == "local" and jobs <= 1:
        for first, last in runs:
            yield (first, last, *hash_range(plan.part(first, last), first, last))
        return
    if where != "local":
        kind = "threads"
    elif kind is None:
        kind = local_kind(plan)
    done: dict[int, tuple[int, list[bytes], list[bytes | None]]] = {}
    order = deque[tuple[int, int]]()

    def tasks() -> Iterator[tuple[Plan, int, int]]:
        for first, last in runs:
            order.append((first, last))
            yield plan.part(first, last), first, last

    options = {"preload": ["musicark.torrent.hashing"]} if kind == "processes" else {}
    with make_executor(jobs=jobs, kind=kind, where=where, shared=shared, **options) as executor:
        for outcome in executor.run(_hash_part, tasks()):
            _part, first, last = outcome.task
            if outcome.result is None:
                raise TorrentError(f"hashing pieces {first}-{last - 1}: {outcome.crashed}")
            done[first] = (last, *outcome.result)
            while order and order[0][0] in done:
                first, _last = order.popleft()
                last, sha1s, roots = done.pop(first)
                yield (first, last, sha1s, roots)


def local_kind(plan: Plan) -> str:
    """The local executor kind for hashing `plan`'s pieces: processes, unless the plan
    is too small to repay forking them.

    Threads share the GIL between `update()` calls: the Python around every v1 piece,
    every v2 16 KiB leaf and merkle node. Measured per task (scheduler statistics), 1 GB
    on 2 threads: hybrid workers blocked (off-CPU, not runnable) 12-21 % of their time, v1
    22-30 %; as processes 2-4 % (page faults). A pool costs ~20-50 ms to start.
    """
    return "processes" if plan.size >= PROCESS_BYTES else "threads"


def _hash_part(task: tuple[Plan, int, int]) -> tuple[list[bytes], list[bytes | None]]:
    part, first, last = task
    return hash_range(part, first, last)
