"""The worker side of ingest: one batch of files in, one result record per file out.

`process_batch` is pure in the executor's sense: it reads the given files, writes
temporary copies into `staging/` and returns what it found; it never opens a database
and never renames into the store (the main process does both, in one step, in
`ingest.py`). Any exception from probing, decoding, tagging or fingerprinting becomes
that file's outcome (`error_corrupt` with the reason), so one bad file never stops a run.

Stages per file: `store_stage` (sha256 while copying to a temporary file) ->
`analyse_stage` (probe + tags + fingerprint of the copy).
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from musicark.store.blobs import (
    CHUNK,
    SMALL_FILE,
    blob_file_in,
    hash_file,
    is_disk_full,
    write_new,
)
from musicark.store.ledger import Rejected


@dataclass(frozen=True)
class FileEntry:
    """A file to ingest, as the walk found it."""

    path: str
    key: bytes
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Task:
    """One batch of files for a worker, with everything the worker needs to know."""

    entries: tuple[FileEntry, ...]
    mode: str
    fingerprint: bool
    store_dir: str
    staging_dir: str
    fanout: int
    # False: analyse even when the blob file is already in the store (an untracked one)
    skip_stored: bool = True


@dataclass(frozen=True)
class AudioInfo:
    """What probing found (the `blobs` row's columns)."""

    container: str | None
    codec: str | None
    duration_ms: int | None
    bitrate: int | None
    sample_rate: int | None
    channels: int | None
    lossless: bool
    damaged: str | None = None
    note: str | None = None  # a remark for the ledger (tags read by FFmpeg, codec not decodable)

    def to_dict(self) -> dict[str, Any]:
        return {
            "container": self.container,
            "codec": self.codec,
            "duration_ms": self.duration_ms,
            "bitrate": self.bitrate,
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "lossless": self.lossless,
            "damaged": self.damaged,
            "note": self.note,
        }


@dataclass
class FileResult:
    """One file's outcome. `status`: "new" (a temporary copy waits in `tmp`), "stored"
    (its blob is already in the store), or a ledger error status."""

    entry: FileEntry
    status: str
    size: int
    mtime_ns: int
    sha256: str | None = None
    reason: str | None = None
    tmp: str | None = None
    info: AudioInfo | None = None
    tags: dict[str, list[str]] = field(default_factory=dict)
    fingerprint: bytes | None = None
    fingerprint_ms: int | None = None
    verified: bool = False  # --mode move: the copy re-hashed to sha256

    @property
    def path(self) -> str:
        return self.entry.path

    @property
    def key(self) -> bytes:
        return self.entry.key


@dataclass(frozen=True)
class StoredCopy:
    """What `store_stage` did with one file."""

    sha256: str
    size: int
    mtime_ns: int
    tmp: Path | None  # None: the blob is in the store already
    head: bytes  # the first bytes (format sniffing without another read)
    data: bytes | None = None  # a small file's bytes: its tags are parsed without a re-read


def split(task: Task) -> list[Task]:
    """One task per file (to find the file whose worker crashes)."""
    return [replace(task, entries=(e,)) for e in task.entries]


def process_batch(task: Task) -> list[FileResult]:
    """Store and analyse one batch of files (worker side; see the module docstring)."""
    staging = Path(task.staging_dir)
    results = []
    for entry in task.entries:
        results.append(_process_one(task, entry, staging))
    return results


def _process_one(task: Task, entry: FileEntry, staging: Path) -> FileResult:
    res = FileResult(entry=entry, status="new", size=entry.size, mtime_ns=entry.mtime_ns)
    copy: StoredCopy | None = None
    try:
        copy = store_stage(task, entry.path, staging)
        res.sha256, res.size, res.mtime_ns = copy.sha256, copy.size, copy.mtime_ns
        if copy.tmp is None:
            res.status = "stored"
            if task.mode == "move":
                final = blob_file_in(task.store_dir, copy.sha256, task.fanout)
                res.verified = _hash_or_none(final) == copy.sha256
            return res
        res.tmp = str(copy.tmp)
        res.info, res.tags, res.fingerprint, res.fingerprint_ms = analyse_stage(
            copy.tmp, fingerprint=task.fingerprint, size=copy.size, head=copy.head, data=copy.data
        )
        if task.mode == "move":
            res.verified = _hash_or_none(copy.tmp) == copy.sha256
            if not res.verified:
                res.reason = "kept the original: the stored copy did not verify"
    except Rejected as exc:
        res.status, res.reason = exc.status, exc.reason
    except OSError as exc:  # the temporary copy vanished or could not be read back
        res.status, res.reason = "error_io", f"{exc.strerror or exc}"
    except Exception as exc:  # a codec or tag library failing on this file's bytes
        res.status, res.reason = "error_corrupt", f"cannot be read: {_describe(exc)}"
    if res.status != "new" and copy is not None and copy.tmp is not None:
        copy.tmp.unlink(missing_ok=True)
        res.tmp = None
    return res


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _hash_or_none(path: Path | str) -> str | None:
    try:
        return hash_file(path)[0]
    except OSError:
        return None


def _tmp_name(staging: Path, original: str) -> Path:
    """`<pid>-<random>.<ext>.tmp`: the process id tells a later run whose file it was."""
    ext = os.path.splitext(original)[1][1:9].lower()
    if not (ext.isascii() and ext.isalnum()):
        ext = "".join(c for c in ext if c.isascii() and c.isalnum())
    return staging / f"{os.getpid()}-{secrets.token_hex(8)}{'.' + ext if ext else ''}.tmp"


def _changed(before: os.stat_result, after: os.stat_result, read: int) -> bool:
    return (
        before.st_size != after.st_size
        or before.st_mtime_ns != after.st_mtime_ns
        or after.st_size != read
    )


def _in_store(task: Task, sha: str) -> bool:
    """The blob is in the store already (a file named by its hash holds these bytes)."""
    return task.skip_stored and os.path.exists(blob_file_in(task.store_dir, sha, task.fanout))


def store_stage(task: Task, path: str, staging: Path) -> StoredCopy:
    """Hash while copying to a temporary file (hard-linking it with `--mode hardlink`)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise Rejected("error_unreadable", f"cannot open: {exc.strerror}") from exc
    tmp: Path | None = None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Rejected("error_not_regular", "not a regular file")
        if st.st_size <= SMALL_FILE:
            data = _read_all(fd, st.st_size)
            if _changed(st, os.fstat(fd), len(data)):
                raise Rejected("error_changed", "the file changed while being read")
            sha = hashlib.sha256(data).hexdigest()
            if _in_store(task, sha):
                return StoredCopy(sha, len(data), st.st_mtime_ns, None, data[:16])
            tmp = _tmp_name(staging, path)
            if task.mode == "hardlink":
                _link(path, tmp, st)
            else:
                write_new(tmp, data)
            return StoredCopy(sha, len(data), st.st_mtime_ns, tmp, data[:16], data)
        tmp = _tmp_name(staging, path)
        sha, read, head = _stream_copy(fd, None if task.mode == "hardlink" else tmp)
        if _changed(st, os.fstat(fd), read):
            raise Rejected("error_changed", "the file changed while being read")
        if _in_store(task, sha):
            tmp.unlink(missing_ok=True)
            return StoredCopy(sha, read, st.st_mtime_ns, None, head)
        if task.mode == "hardlink":
            _link(path, tmp, st)
        return StoredCopy(sha, read, st.st_mtime_ns, tmp, head)
    except OSError as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if is_disk_full(exc):
            raise Rejected("error_disk_full", "no space left in the archive") from exc
        if exc.errno == errno.EXDEV:
            raise Rejected(
                "error_io", "--mode hardlink needs the file on the archive's filesystem"
            ) from exc
        raise Rejected("error_io", f"read or write failed: {exc.strerror or exc}") from exc
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)


def _stream_copy(fd: int, tmp: Path | None) -> tuple[str, int, bytes]:
    """(sha256, bytes read, first bytes) of a large file, copied to `tmp` unless None."""
    h = hashlib.sha256()
    read = 0
    head = b""
    out = None if tmp is None else os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with memoryview(bytearray(CHUNK)) as buf:
            while True:
                n = os.readv(fd, [buf])
                if not n:
                    break
                h.update(buf[:n])
                if not read:
                    head = bytes(buf[:16])
                read += n
                if out is not None:
                    view = buf[:n]
                    while view:
                        view = view[os.write(out, view) :]
    finally:
        if out is not None:
            os.close(out)
    return h.hexdigest(), read, head


def _read_all(fd: int, size: int) -> bytes:
    parts = []
    remaining = size + 1  # one byte more: a file that grew shows up as changed
    while remaining > 0:
        chunk = os.read(fd, min(remaining, CHUNK))
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


def _link(path: str, tmp: Path, st: os.stat_result) -> None:
    os.link(path, tmp, follow_symlinks=True)
    lst = os.stat(tmp)
    if (lst.st_dev, lst.st_ino) != (st.st_dev, st.st_ino):
        tmp.unlink(missing_ok=True)
        raise Rejected("error_changed", "the file was replaced while being linked")


def analyse_stage(
    tmp: Path,
    *,
    fingerprint: bool,
    size: int | None = None,
    head: bytes | None = None,
    data: bytes | None = None,
) -> tuple[AudioInfo, dict[str, list[str]], bytes | None, int | None]:
    """Probe, tags and fingerprint of a stored temporary file (`data`: its bytes, if the
    caller holds them)."""
    from musicark.store.fingerprint import to_bytes
    from musicark.store.probe import analyse
    from musicark.store.tags import read_tags

    a = analyse(tmp, fingerprint=fingerprint, size=size, head=head, data=data)
    tags, problem = read_tags(
        tmp,
        container=a.container,
        codec=a.codec,
        head=head,
        video=a.extra.get("video"),
        data=data,
    )
    notes = [n for n in (a.note, problem) if n]
    info = AudioInfo(
        container=a.container,
        codec=a.codec,
        duration_ms=a.duration_ms,
        bitrate=a.bitrate,
        sample_rate=a.sample_rate,
        channels=a.channels,
        lossless=a.lossless,
        damaged=a.damaged,
        note="; ".join(notes) or None,
    )
    fp = to_bytes(a.fingerprint) if a.fingerprint is not None and len(a.fingerprint) else None
    return info, tags, fp, a.fingerprint_ms


__all__ = [
    "AudioInfo",
    "FileEntry",
    "FileResult",
    "StoredCopy",
    "Task",
    "analyse_stage",
    "process_batch",
    "split",
    "store_stage",
]
