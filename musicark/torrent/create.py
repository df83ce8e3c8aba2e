"""Deterministic .torrent creation: v1 (BEP 3), v2 (BEP 52) and hybrid (BEP 47 padding).

The same files and options always give the same bytes: paths are sorted (v1 in
full-path byte order, as mktorrent does; v2 and hybrid component by component, the order
of the v2 file tree, which a hybrid's v1 file list must follow: libtorrent refuses a
hybrid whose lists differ in order, and its own creator makes such hybrids when a name
holds a byte below `/`, such as `-` or a space), the piece size is explicit or chosen by a stable rule, and
there is no creation date and no `private` key unless asked for. Trackers become one
tier each (announce + announce-list, BEP 12); web seeds become `url-list` (BEP 19).

Hashing reads every byte once: v1 SHA-1 pieces and v2 SHA-256 merkle trees are computed
from the same buffer, by worker threads over ranges of pieces (see hashing.py).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from musicark.errors import TorrentError
from musicark.executor import cpu_count
from musicark.progress import Progress, ProgressCallback, report
from musicark.torrent.bencode import Encoded, encode
from musicark.torrent.hashing import (
    BLOCK,
    Plan,
    Span,
    hash_ranges,
    merkle_root,
    next_pow2,
    zero_subtree,
)
from musicark.torrent.metainfo import check_component
from musicark.torrent.piece_size import FORMATS, auto_piece_size, check_piece_size

CREATED_BY = "musicark"
ONE_THREAD_BYTES = 8 * 2**20  # below this, one thread hashes everything
TRACKER_SCHEMES = ("http", "https", "udp", "ws", "wss")


@dataclass(frozen=True, slots=True)
class DataFile:
    """A file to put in a torrent: its path inside the torrent and where to read it."""

    path: tuple[str, ...]
    source: Path
    length: int


@dataclass(frozen=True)
class CreatedTorrent:
    data: bytes  # the .torrent file
    name: str
    format: str
    info_hash_v1: str | None
    info_hash_v2: str | None
    piece_length: int
    num_pieces: int
    total_size: int
    padding: int
    file_count: int


def check_url(url: str, *, what: str, schemes: Sequence[str] = ("http", "https")) -> str:
    """Refuse a tracker or web seed that is not an absolute URL of an allowed scheme."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in schemes or not parts.netloc or any(c.isspace() for c in url):
        raise TorrentError(f"{what} {url!r} is not a URL (expected {'/'.join(schemes)}://host/...)")
    return url


def list_files(root: Path) -> list[DataFile]:
    """The regular files under folder `root`, paths relative to it (unsorted)."""
    out: list[DataFile] = []

    def walk(folder: Path, prefix: tuple[str, ...]) -> None:
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            raise TorrentError(f"cannot list {folder}: {exc.strerror}") from exc
        for entry in entries:
            try:
                name = entry.name.encode("utf-8").decode("utf-8")
            except UnicodeEncodeError:
                raise TorrentError(f"{entry.path}: file name is not valid UTF-8") from None
            check_component(name, "file name", entry.path)
            if entry.is_symlink():
                raise TorrentError(f"{entry.path} is a symbolic link; torrents hold files only")
            if entry.is_dir():
                walk(Path(entry.path), (*prefix, name))
            elif entry.is_file():
                out.append(DataFile((*prefix, name), Path(entry.path), entry.stat().st_size))
            else:
                raise TorrentError(f"{entry.path} is not a regular file")

    walk(root, ())
    return out


def sort_files(files: Sequence[DataFile], *, format: str) -> list[DataFile]:
    """v1: full-path byte order, as mktorrent; v2 and hybrid: the v2 file tree's order."""
    if format == "v1":
        return sorted(files, key=lambda f: "/".join(f.path).encode("utf-8"))
    return sorted(files, key=lambda f: tuple(p.encode("utf-8") for p in f.path))


def _layout(files: Sequence[DataFile], piece_length: int, padded: bool) -> Plan:
    spans = []
    offset = 0
    for f in files:
        pad = -f.length % piece_length if padded and f.length else 0
        spans.append(Span(str(f.source), f.length, offset, pad))
        offset += f.length + pad
    return Plan(tuple(spans), piece_length, v1=True, v2=padded, size=offset)


def create_torrent(
    root: Path | str,
    *,
    format: str = "v1",
    piece_size: int | None = None,
    trackers: Sequence[str] = (),
    web_seeds: Sequence[str] = (),
    name: str | None = None,
    private: bool = False,
    comment: str | None = None,
    jobs: int = 0,
    where: str = "local",
    progress: ProgressCallback | None = None,
) -> CreatedTorrent:
    """Hash the file or folder `root` into a deterministic .torrent (see module docstring).

    `where`: "local", or a cluster (dask://HOST:PORT) whose workers hash the pieces; they
    must see `root` at the same path."""
    if format not in FORMATS:
        raise TorrentError(f"unknown torrent format {format!r} (one of: {', '.join(FORMATS)})")
    root = Path(root)
    trackers = [check_url(u, what="tracker", schemes=TRACKER_SCHEMES) for u in trackers]
    web_seeds = [check_url(u, what="web seed") for u in web_seeds]
    name = check_component(name or root.name, "torrent name", str(root))
    files, single = _data_files(root, name, format)
    sizes = [f.length for f in files]
    total = sum(sizes)
    if piece_size is None:
        path_bytes = sum(len("/".join(f.path).encode()) for f in files)
        piece_length = auto_piece_size(sizes, format=format, path_bytes=path_bytes)
    else:
        piece_length = check_piece_size(piece_size, format=format)

    plan = _layout(files, piece_length, format != "v1" and not single)
    if format == "v2":
        plan = Plan(plan.spans, piece_length, v1=False, v2=True, size=plan.size)
    elif format == "hybrid" and single:
        plan = Plan(plan.spans, piece_length, v1=True, v2=True, size=plan.size)
    info: dict[str, Any] = {"name": name, "piece length": piece_length}
    if private:
        info["private"] = 1
    tree = _V2Tree(files, plan) if format != "v1" else None

    def meanwhile() -> None:
        """What does not depend on the hashes, done while the workers hash."""
        if format != "v2" and not single:
            info["files"] = Encoded(encode(_v1_entries(files, plan)))
        if tree is not None:
            tree.skeleton()

    sha1s = _hash(
        plan,
        name,
        total,
        jobs=jobs,
        progress=progress,
        where=where,
        shared=(root.parent,),
        tree=tree,
        meanwhile=meanwhile,
    )
    meta: dict[str, Any] = {"created by": CREATED_BY}
    if format != "v2":
        info["pieces"] = b"".join(sha1s)
        if single:
            info["length"] = total
    if tree is not None:
        info["meta version"] = 2
        info["file tree"], layers = tree.finish()
        if layers:
            meta["piece layers"] = layers
    info_bytes = encode(info)
    meta["info"] = Encoded(info_bytes)
    if trackers:
        meta["announce"] = trackers[0]
        if len(trackers) > 1:
            meta["announce-list"] = [[t] for t in trackers]
    if web_seeds:
        meta["url-list"] = list(web_seeds)
    if comment:
        meta["comment"] = comment
    data = encode(meta)
    return CreatedTorrent(
        data=data,
        name=name,
        format=format,
        info_hash_v1=hashlib.sha1(info_bytes).hexdigest() if format != "v2" else None,
        info_hash_v2=hashlib.sha256(info_bytes).hexdigest() if format != "v1" else None,
        piece_length=piece_length,
        num_pieces=plan.num_pieces,
        total_size=total,
        padding=plan.size - total if format != "v1" else 0,
        file_count=len(files),
    )


def _data_files(root: Path, name: str, format: str) -> tuple[list[DataFile], bool]:
    """The files to put in the torrent, in torrent order, and whether `root` is one file."""
    if root.is_symlink():
        raise TorrentError(f"{root} is a symbolic link; torrents hold files only")
    if root.is_file():
        files = [DataFile((name,), root, root.stat().st_size)]
    elif root.is_dir():
        files = sort_files(list_files(root), format=format)
    else:
        raise TorrentError(f"{root}: no such file or folder")
    if not files:
        raise TorrentError(f"{root} holds no files to put in a torrent")
    if not any(f.length for f in files):
        raise TorrentError(f"{root}: all files are empty; a torrent needs data")
    return files, root.is_file()


def _hash(
    plan: Plan,
    name: str,
    total: int,
    *,
    jobs: int,
    progress: ProgressCallback | None,
    where: str = "local",
    shared: Sequence[Path] = (),
    tree: _V2Tree | None = None,
    meanwhile: Callable[[], None] | None = None,
) -> list[bytes]:
    """Every piece's SHA-1 (v1), in order; `tree` gets the v2 roots as they come in.

    `meanwhile` runs once the workers have their first ranges: this process's own work
    then overlaps their hashing instead of adding to it."""
    workers = jobs if jobs > 0 else cpu_count()
    if total < ONE_THREAD_BYTES:
        workers = 1
    # ranges of up to 32 MiB keep the per-range cost (a hand-off to a worker process)
    # negligible; hash_ranges shrinks them towards the end so the workers finish together
    task_bytes = min(32 * 2**20, max(2 * 2**20, plan.size // (workers * 8)))
    sha1s: list[bytes] = []
    report(progress, Progress("hash", 0, plan.size, "bytes", name))
    ranges = hash_ranges(plan, jobs=workers, task_bytes=task_bytes, where=where, shared=shared)
    for _first, last, s1, r2 in ranges:
        sha1s.extend(s1)
        if tree is not None:
            tree.feed(r2)
        if meanwhile is not None:
            meanwhile()
            meanwhile = None
        done = min(plan.size, last * plan.piece_length)
        report(progress, Progress("hash", done, plan.size, "bytes", name))
    if meanwhile is not None:
        meanwhile()
    return sha1s


def _v1_entries(files: Sequence[DataFile], plan: Plan) -> list[dict[str, Any]]:
    """`info.files`, with a BEP 47 padding file after each padded file."""
    entries: list[dict[str, Any]] = []
    for f, span in zip(files, plan.spans, strict=True):
        entries.append({"length": f.length, "path": list(f.path)})
        if span.pad:
            entries.append({"attr": "p", "length": span.pad, "path": [".pad", str(span.pad)]})
    return entries


class _V2Tree:
    """`info.file tree` and the piece layers of files longer than a piece (BEP 52); each
    file's root is computed as soon as its pieces' roots are in, while the rest hash."""

    def __init__(self, files: Sequence[DataFile], plan: Plan) -> None:
        self.files = files
        self.piece_length = pl = plan.piece_length
        self.pad_root = zero_subtree((pl // BLOCK).bit_length() - 1)
        # (file index, first piece, pieces) of every non-empty file, in piece order
        self.todo = [
            (i, span.offset // pl, -(-f.length // pl))
            for i, (f, span) in enumerate(zip(files, plan.spans, strict=True))
            if f.length
        ]
        self.next = 0
        self.roots: list[bytes | None] = []
        self.file_roots: dict[int, bytes] = {}
        self.layers: dict[bytes, bytes] = {}
        self.tree: dict[str, Any] = {}
        self.entries: list[dict[str, Any]] = []

    def feed(self, roots: list[bytes | None]) -> None:
        """The next pieces' roots, in order."""
        self.roots.extend(roots)
        while self.next < len(self.todo):
            index, first, count = self.todo[self.next]
            if first + count > len(self.roots):
                return
            piece_roots = [r for r in self.roots[first : first + count] if r is not None]
            if len(piece_roots) != count:
                raise TorrentError(
                    f"internal error: missing v2 hashes for {self.files[index].source}"
                )
            if count == 1:
                self.file_roots[index] = piece_roots[0]
            else:
                file_root = merkle_root(piece_roots, next_pow2(count), self.pad_root)
                self.file_roots[index] = file_root
                self.layers[file_root] = b"".join(piece_roots)
            self.next += 1

    def skeleton(self) -> None:
        """The tree's folders and each file's entry, without its root yet."""
        for f in self.files:
            node = self.tree
            for part in f.path:
                node = node.setdefault(part, {})
            node[""] = entry = {"length": f.length}
            self.entries.append(entry)

    def finish(self) -> tuple[dict[str, Any], dict[bytes, bytes]]:
        if not self.entries:
            self.skeleton()
        if self.next != len(self.todo):
            raise TorrentError("internal error: v2 hashes missing at the end")
        for index, root in self.file_roots.items():
            self.entries[index]["pieces root"] = root
        return self.tree, self.layers


def write_torrent(data: bytes, path: Path) -> None:
    """Write a .torrent atomically (a temporary file renamed into place)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise TorrentError(f"cannot write {path}: {exc.strerror}") from exc
