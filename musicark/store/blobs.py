"""Content-addressed blobs: a file named by its full sha256 in hex, fanned out in sub-folders.

`store/ab/cd/abcd...` with the default fan-out of 2. A blob is only ever created by
renaming a complete, synced temporary file from `staging/`, so the store never holds a
partial blob; a crash leaves at most a stray temporary file in `staging/`.
"""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

from musicark.archive import Archive
from musicark.errors import StoreError
from musicark.paths import sync_filesystem as sync_filesystem  # its home before

CHUNK = 4 * 1024 * 1024
SMALL_FILE = 64 * 1024 * 1024  # read in one go below this size

_HEX = frozenset("0123456789abcdef")


def is_sha256(text: str) -> bool:
    return len(text) == 64 and set(text) <= _HEX


def relative_blob_path(sha256: str, fanout: int = 2) -> Path:
    if not is_sha256(sha256):
        raise StoreError(f"{sha256!r} is not a sha256 in lowercase hex")
    parts = [sha256[2 * i : 2 * i + 2] for i in range(fanout)]
    return Path(*parts, sha256)


def blob_path(archive: Archive, sha256: str) -> Path:
    """Where the blob with this sha256 lives (whether or not it is there)."""
    return archive.store_dir / relative_blob_path(sha256, archive.config.store.fanout)


def blob_path_in(store_dir: Path, sha256: str, fanout: int) -> Path:
    return store_dir / relative_blob_path(sha256, fanout)


def blob_file_in(store_dir: str, sha256: str, fanout: int) -> str:
    """`blob_path_in` as a string, for a sha256 computed here (no validation, no Path objects:
    ingest builds one per file)."""
    parts = [sha256[2 * i : 2 * i + 2] for i in range(fanout)]
    return os.path.join(store_dir, *parts, sha256)


def hash_file(path: Path | str, *, chunk: int = CHUNK) -> tuple[str, int]:
    """(sha256 hex, size) of a file, read in `chunk`-byte blocks (hashlib drops the GIL)."""
    h = hashlib.sha256()
    size = 0
    fd = os.open(path, os.O_RDONLY)
    try:
        # a buffer no larger than the file: zeroing 4 MiB per small file costs more than hashing it
        chunk = max(65536, min(chunk, os.fstat(fd).st_size + 1))
        with memoryview(bytearray(chunk)) as buf:
            while True:
                n = os.readv(fd, [buf])
                if not n:
                    break
                h.update(buf[:n])
                size += n
    finally:
        os.close(fd)
    return h.hexdigest(), size


def write_new(tmp: Path, data: bytes | memoryview) -> None:
    """Write `data` to a new temporary file (O_EXCL); on any failure no file is left."""
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)


def replace_durably(tmp: Path, dest: Path) -> None:
    """Rename a complete file over `dest` (same filesystem: atomic) with its bytes synced
    before and the rename synced after."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, dest)
    fd = os.open(dest.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_disk_full(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


def process_alive(pid: int) -> bool:
    """Whether a process of this machine with that id exists (whoever's it is)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
