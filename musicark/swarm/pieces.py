"""The full check's hashing, in batches that any worker can hash on its own.

A `PieceBatch` is plain data: runs of pieces, the hashes the torrent expects for them
(v1 SHA-1s, v2 subtree roots) and the spans of the files they touch (paths, offsets,
padding: pack's `torrent.hashing.Plan`). `check_batch` hashes it from the files' paths with
pack's own `hash_range` (memory-mapped, v1 and v2 in one read) and returns a small
`BatchResult`: the failing pieces and the bytes read. Manifest files come as `FileBatch`es,
hashed whole (sha256). The same function runs on worker processes of this machine (threads
for a small check), which read the page cache in place, or on a cluster's workers, which
read the same paths; the coordinator only compares the records, so both find the same.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from musicark.errors import MusicarkError
from musicark.executor import KINDS, Executor, Outcome, cpu_count, make_executor
from musicark.progress import Progress, ProgressCallback, report
from musicark.torrent.hashing import PROCESS_BYTES, Plan, Span, hash_range, map_range
from musicark.torrent.metainfo import Torrent

UNIT_BYTES = 8 * 2**20  # bytes per batch on this machine's threads
# On a cluster a task costs ~2 ms of scheduling (brief), 1-3 % of hashing 8 MiB on a busy
# core and nothing against a GiB: about eight batches per worker thread (all finish
# together), between those bounds. Only a small job gets small batches, and it is short.
CLUSTER_BYTES = (UNIT_BYTES, 2**30)
PER_WORKER = 8
PROCESS_BATCH_BYTES = 32 * 2**20


@dataclass(frozen=True, slots=True)
class PieceRun:
    """Pieces `first..last-1`, with the hashes the torrent gives them."""

    first: int
    last: int
    sha1s: bytes  # 20 bytes per piece; empty for a v2-only torrent
    roots: tuple[bytes | None, ...]  # v2 subtree root per piece; empty for a v1 torrent


@dataclass(frozen=True, slots=True)
class PieceBatch:
    """One task: runs of pieces and the spans (files) they touch."""

    plan: Plan
    runs: tuple[PieceRun, ...]

    @property
    def pieces(self) -> int:
        return sum(run.last - run.first for run in self.runs)


@dataclass(frozen=True, slots=True)
class FileBatch:
    """One task: manifest files to hash whole, by torrent file index."""

    files: tuple[tuple[int, str, int], ...]  # (index, path, length)


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What a worker found: failing pieces, bytes read, the files' sha256s; or why it
    could not read them (`error`)."""

    bad: tuple[int, ...] = ()
    nbytes: int = 0
    digests: tuple[str, ...] = ()
    error: str = ""


def check_batch(batch: PieceBatch | FileBatch) -> BatchResult:
    """On a worker: hash the batch from its paths and compare."""
    try:
        if isinstance(batch, FileBatch):
            digests = tuple(_sha256(path, length) for _index, path, length in batch.files)
            return BatchResult(nbytes=sum(f[2] for f in batch.files), digests=digests)
        plan, pl = batch.plan, batch.plan.piece_length
        bad = [piece for run in batch.runs for piece in _failing(plan, run)]
        nbytes = sum(min(run.last * pl, plan.size) - run.first * pl for run in batch.runs)
        return BatchResult(bad=tuple(bad), nbytes=nbytes)
    except MusicarkError as exc:  # a file that vanished or shrank since it was listed
        return BatchResult(error=str(exc))
    except OSError as exc:
        return BatchResult(error=f"cannot read {exc.filename}: {exc.strerror}")


def _sha256(path: str, length: int) -> str:
    """The sha256 of a file's `length` bytes, read from its mapping (no copy out of the
    page cache, as its pieces are read)."""
    h = hashlib.sha256()
    if not length:
        return h.hexdigest()
    view, mapped = map_range(path, 0, length)
    try:
        for pos in range(0, length, UNIT_BYTES):
            h.update(view[pos : pos + UNIT_BYTES])  # releases the GIL on a large buffer
    finally:
        view.release()
        if mapped is not None:
            mapped.close()
    return h.hexdigest()


def _failing(plan: Plan, run: PieceRun) -> Iterator[int]:
    """The pieces of `run` whose v1 hash or v2 root is not the torrent's."""
    sha1s, roots = hash_range(plan.part(run.first, run.last), run.first, run.last)
    for k in range(run.last - run.first):
        v1_bad = plan.v1 and sha1s[k] != run.sha1s[20 * k : 20 * k + 20]
        if v1_bad or (plan.v2 and roots[k] != run.roots[k]):
            yield run.first + k


@dataclass
class PiecePlan:
    """What the full check hashes: the torrent's pieces laid over the files on disk, which
    of them can be checked, and the manifest's files."""

    torrent: Torrent
    layout: Plan  # every file of the torrent at its path on disk
    piece_ok: list[bool]  # per piece: every file it touches is present with the right size
    sha256: dict[int, str] = field(default_factory=dict)  # file index -> manifest hash

    @property
    def total(self) -> int:
        """Bytes the check reads: checkable pieces (padding included) and manifest files."""
        t = self.torrent
        pl, padded = t.piece_length, t.padded_size
        pieces = sum(min(pl, padded - p * pl) for p, ok in enumerate(self.piece_ok) if ok)
        return pieces + sum(t.files.lengths[i] for i in self.sha256)


def layout(torrent: Torrent, paths: Sequence[Path]) -> Plan:
    """The torrent's piece space over `paths` (its files on disk): each file at its offset,
    followed by the padding up to the next one."""
    offsets, lengths = torrent.files.offsets, torrent.files.lengths
    ends = [*offsets[1:], torrent.padded_size]
    spans = tuple(
        Span(str(path), length, offset, end - offset - length)
        for path, length, offset, end in zip(paths, lengths, offsets, ends, strict=True)
    )
    v1, v2 = bool(torrent.pieces), bool(torrent.info_hash_v2)
    return Plan(spans, torrent.piece_length, v1=v1, v2=v2, size=torrent.padded_size)


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


def expected_roots(torrent: Torrent, first: int, last: int) -> tuple[bytes | None, ...]:
    """The v2 subtree root the torrent gives each of pieces `first..last-1` (a file of one
    piece or less: its pieces root; a longer one: its piece layer's entry)."""
    out: list[bytes | None] = [None] * (last - first)
    files, pl = torrent.files, torrent.piece_length
    i = max(bisect.bisect_right(files.offsets, first * pl) - 1, 0)
    while i < len(files) and files.offsets[i] < last * pl:
        f = files[i]
        i += 1
        if not f.length or f.pieces_root is None:
            continue
        layer = torrent.piece_layers.get(f.pieces_root, b"") if f.length > pl else b""
        for piece in range(max(f.first_piece, first), min(f.last_piece + 1, last)):
            k = piece - f.first_piece
            out[piece - first] = layer[32 * k : 32 * k + 32] if layer else f.pieces_root
    return tuple(out)


def piece_runs(checkable_pieces: list[bool], per_unit: int) -> Iterator[tuple[int, int]]:
    """Consecutive checkable pieces in runs of at most `per_unit` (first, last inclusive)."""
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


def batch_bytes(total: int, executor: Executor) -> int:
    """Bytes per batch: UNIT_BYTES on this machine's threads, up to 32 MiB on its worker
    processes (each hand-off costs this process ~0.5 ms: 1 GB in 8 MiB batches took 0.09
    CPU-s here, in 32 MiB 0.04); on a cluster enough for the scheduling to vanish; and
    small enough that every worker gets several."""
    if executor.kind == "processes":
        return max(UNIT_BYTES, min(PROCESS_BATCH_BYTES, total // (PER_WORKER * executor.jobs)))
    if executor.kind in KINDS:
        return UNIT_BYTES
    lo, hi = CLUSTER_BYTES
    return max(lo, min(hi, total // (PER_WORKER * max(executor.jobs, 1))))


def batches(plan: PiecePlan, unit: int) -> Iterator[PieceBatch | FileBatch]:
    """The check's tasks: runs of checkable pieces grouped into batches of about `unit`
    bytes, then the manifest's files in batches of about `unit` bytes."""
    t = plan.torrent
    per_unit = max(unit // t.piece_length, 1)
    runs: list[PieceRun] = []
    count = 0
    for first, last in piece_runs(plan.piece_ok, per_unit):
        runs.append(_run(t, first, last + 1))
        count += last + 1 - first
        if count >= per_unit:
            yield _batch(plan.layout, runs)
            runs, count = [], 0
    if runs:
        yield _batch(plan.layout, runs)
    lengths = t.files.lengths
    files: list[tuple[int, str, int]] = []
    size = 0
    for index in sorted(plan.sha256):
        files.append((index, plan.layout.spans[index].source, lengths[index]))
        size += lengths[index]
        if size >= unit:  # a task per small file costs more in hand-offs than its hashing
            yield FileBatch(tuple(files))
            files, size = [], 0
    if files:
        yield FileBatch(tuple(files))


def _run(torrent: Torrent, first: int, last: int) -> PieceRun:
    sha1s = b"".join(torrent.pieces[first:last]) if torrent.pieces else b""
    roots = expected_roots(torrent, first, last) if torrent.info_hash_v2 else ()
    return PieceRun(first, last, sha1s, roots)


def _batch(layout: Plan, runs: list[PieceRun]) -> PieceBatch:
    """A batch carrying only the spans its runs touch."""
    spans = dict.fromkeys(s for run in runs for s in layout.part(run.first, run.last).spans)
    part = Plan(tuple(spans), layout.piece_length, layout.v1, layout.v2, layout.size)
    return PieceBatch(part, tuple(runs))


@dataclass
class Tally:
    """What the batches found, by torrent file index."""

    bad_by_file: dict[int, set[int]] = field(default_factory=dict)
    sha_results: dict[int, str] = field(default_factory=dict)
    pieces_checked: int = 0
    pieces_failed: int = 0
    hashed: int = 0
    errors: list[str] = field(default_factory=list)


def local_executor(total: int, jobs: int) -> Executor:
    """This machine's workers for a check that reads `total` bytes: `jobs` (0: one per
    core) worker processes, or for a check too small to repay forking them, `jobs` (0:
    two per core) threads. Processes, because threads share the GIL between `update()`
    calls (see `torrent.hashing.local_kind`, the same choice for pack)."""
    if total >= PROCESS_BYTES:
        return make_executor(
            jobs=jobs or cpu_count(), kind="processes", preload=["musicark.swarm.pieces"]
        )
    return make_executor(jobs=jobs or 2 * cpu_count(), kind="threads")


def run_checks(
    plan: PiecePlan,
    executor: Executor,
    *,
    progress: ProgressCallback | None,
    tasks: Iterable[PieceBatch | FileBatch] | None = None,
) -> Tally:
    """Hash every batch of `plan` (or `tasks`) on `executor` and tally the results.

    Locally the executor is `local_executor`'s; on a cluster, its workers. Either keeps
    batches queued ahead, so a collecting thread that the machine delays never leaves
    workers idle.
    """
    total = plan.total
    tally = Tally()
    if tasks is None:
        tasks = batches(plan, batch_bytes(total, executor))
    for outcome in executor.run(check_batch, tasks):
        _collect(plan, outcome, tally)
        report(progress, Progress("verify", tally.hashed, total, "bytes"))
        if tally.errors:
            break  # the data changed under the check: its report would not hold
    return tally


def _collect(
    plan: PiecePlan, outcome: Outcome[PieceBatch | FileBatch, BatchResult], tally: Tally
) -> None:
    task, out = outcome.task, outcome.result
    if out is None:  # a batch that killed every worker it ran on: reading files does not
        tally.errors.append(f"hashing killed its worker ({outcome.crashed})")
        return
    if out.error:
        tally.errors.append(out.error)
        return
    tally.hashed += out.nbytes
    if isinstance(task, FileBatch):
        tally.sha_results.update(zip((f[0] for f in task.files), out.digests, strict=True))
        return
    tally.pieces_checked += task.pieces
    tally.pieces_failed += len(out.bad)
    for piece in out.bad:
        for i in files_of_piece(plan.torrent, piece):
            tally.bad_by_file.setdefault(i, set()).add(piece)
