"""Reading .torrent files: v1 (BEP 3), v2 (BEP 52) and hybrid, validated before use.

`load_torrent` refuses anything a seeder or verifier could be tricked by: paths with
`..`, `.`, empty, absolute or slash-bearing components, NUL bytes, duplicate paths,
symlink entries, piece counts that do not match the data, v2 piece layers that do not
hash to their file's root, and hybrids whose v1 and v2 file lists disagree. Every
refusal is one `TorrentError` line naming the torrent and the offending field.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musicark.errors import TorrentError
from musicark.torrent.bencode import decode_with_spans

BLOCK_SIZE = 16 * 1024  # v2 merkle leaf size (BEP 52)
MAX_TORRENT_BYTES = 64 * 2**20


@dataclass(frozen=True, slots=True)
class TorrentFile:
    """One file of a torrent: its place in the piece space and, for v2, its merkle root."""

    path: tuple[str, ...]  # relative path parts, the torrent name not included
    length: int
    offset: int  # first byte in the torrent's piece space (v1 stream; piece-aligned in v2)
    attr: str = ""
    pieces_root: bytes | None = None  # v2 only; None for empty files
    piece_length: int = 0

    @property
    def path_str(self) -> str:
        return "/".join(self.path)

    @property
    def first_piece(self) -> int:
        return self.offset // self.piece_length

    @property
    def last_piece(self) -> int:
        """Last piece holding a byte of the file (== first_piece for an empty file)."""
        if self.length == 0:
            return self.first_piece
        return (self.offset + self.length - 1) // self.piece_length


@dataclass(frozen=True)
class Torrent:
    name: str
    files: tuple[TorrentFile, ...]  # real files, in torrent order (padding files left out)
    piece_length: int
    pieces: tuple[bytes, ...]  # v1 SHA-1 piece hashes; empty for v2-only torrents
    piece_layers: dict[bytes, bytes]  # v2: pieces root -> concatenated SHA-256 piece hashes
    info_hash_v1: str | None  # hex SHA-1 of the info dict, when the torrent has v1 pieces
    info_hash_v2: str | None  # hex SHA-256 of the info dict, when it is v2 or hybrid
    trackers: tuple[tuple[str, ...], ...]  # announce tiers
    web_seeds: tuple[str, ...]
    private: bool
    single_file: bool
    info_bytes: bytes
    padded_size: int  # bytes in the v1 piece space, padding files included
    comment: str | None = None
    created_by: str | None = None
    creation_date: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        if self.info_hash_v1 and self.info_hash_v2:
            return "hybrid"
        return "v2" if self.info_hash_v2 else "v1"

    @property
    def total_size(self) -> int:
        return sum(f.length for f in self.files)

    @property
    def num_pieces(self) -> int:
        if self.pieces:
            return len(self.pieces)
        return -(-self.padded_size // self.piece_length) if self.padded_size else 0

    def file_paths(self) -> list[str]:
        """Each file's path as stored: under `name` for multi-file torrents, `name` itself
        for a single-file torrent."""
        return [f.path_str for f in self.files]

    def location(self, file: TorrentFile, save_path: Path) -> Path:
        """Where a client that saves into `save_path` keeps `file`."""
        if self.single_file:
            return save_path / self.name
        return save_path.joinpath(self.name, *file.path)


def _text(value: Any, where: str, source: str) -> str:
    if not isinstance(value, bytes):
        raise TorrentError(f"{source}: {where} is not a string")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise TorrentError(f"{source}: {where} is not valid UTF-8") from None


def _int(value: Any, where: str, source: str, *, minimum: int = 0) -> int:
    if not isinstance(value, int) or value < minimum:
        raise TorrentError(f"{source}: {where} must be an integer >= {minimum}")
    return value


def check_component(part: str, where: str, source: str) -> str:
    """Refuse a path component that could escape or confuse the data folder."""
    if part == "":
        raise TorrentError(f"{source}: {where} has an empty path component")
    if part in (".", ".."):
        raise TorrentError(f"{source}: {where} has a {part!r} path component")
    if "\x00" in part:
        raise TorrentError(f"{source}: {where} contains a NUL byte")
    if "/" in part or "\\" in part:
        raise TorrentError(f"{source}: {where} has a path component with a slash: {part!r}")
    if len(part) >= 2 and part[1] == ":" and part[0].isalpha():
        raise TorrentError(f"{source}: {where} looks like a drive-letter path: {part!r}")
    return part


def _v1_files(
    info: dict[bytes, Any], name: str, source: str
) -> list[tuple[tuple[str, ...], int, str]]:
    if b"files" not in info:
        length = _int(info.get(b"length"), "info.length", source)
        return [((name,), length, "")]
    if b"length" in info:
        raise TorrentError(f"{source}: info has both length and files")
    files = info[b"files"]
    if not isinstance(files, list) or not files:
        raise TorrentError(f"{source}: info.files must be a non-empty list")
    out = []
    for i, entry in enumerate(files):
        where = f"info.files[{i}]"
        if not isinstance(entry, dict):
            raise TorrentError(f"{source}: {where} is not a dictionary")
        length = _int(entry.get(b"length"), f"{where}.length", source)
        parts = entry.get(b"path")
        if not isinstance(parts, list) or not parts:
            raise TorrentError(f"{source}: {where}.path must be a non-empty list")
        path = tuple(
            check_component(_text(p, f"{where}.path", source), f"{where}.path", source)
            for p in parts
        )
        attr = _text(entry.get(b"attr", b""), f"{where}.attr", source)
        out.append((path, length, attr))
    return out


def _walk_tree(
    tree: Any,
    prefix: tuple[str, ...],
    out: list[tuple[tuple[str, ...], int, str, bytes | None]],
    source: str,
    depth: int = 0,
) -> None:
    where = "info.file tree" + ("/" + "/".join(prefix) if prefix else "")
    if not isinstance(tree, dict) or not tree:
        raise TorrentError(f"{source}: {where} must be a non-empty dictionary")
    for key, sub in tree.items():
        if key == b"":
            if not prefix:
                raise TorrentError(f"{source}: info.file tree has a file without a name")
            if len(tree) != 1:
                raise TorrentError(f"{source}: {where} is both a file and a folder")
            if not isinstance(sub, dict):
                raise TorrentError(f"{source}: {where} file entry is not a dictionary")
            length = _int(sub.get(b"length"), f"{where}.length", source)
            attr = _text(sub.get(b"attr", b""), f"{where}.attr", source)
            root = sub.get(b"pieces root")
            if length > 0:
                if not isinstance(root, bytes) or len(root) != 32:
                    raise TorrentError(f"{source}: {where} needs a 32-byte pieces root")
            elif root is not None:
                raise TorrentError(f"{source}: {where} is empty but has a pieces root")
            out.append((prefix, length, attr, root if length > 0 else None))
            continue
        part = check_component(_text(key, f"{where} key", source), where, source)
        _walk_tree(sub, (*prefix, part), out, source, depth + 1)


def _merkle_root(leaves: list[bytes], pad: bytes) -> bytes:
    """Root of a tree over `leaves`, padded to a power of two with `pad` subtrees."""
    width = 1
    while width < len(leaves):
        width *= 2
    layer = leaves + [pad] * (width - len(leaves))
    while len(layer) > 1:
        pad = hashlib.sha256(pad + pad).digest()
        layer = [hashlib.sha256(layer[i] + layer[i + 1]).digest() for i in range(0, len(layer), 2)]
    return layer[0]


def _pad_hash(piece_length: int) -> bytes:
    """Root of an all-zero subtree covering one piece (BEP 52: leaves of zero hashes)."""
    h = bytes(32)
    for _ in range((piece_length // BLOCK_SIZE).bit_length() - 1):
        h = hashlib.sha256(h + h).digest()
    return h


def _trackers(meta: dict[bytes, Any], source: str) -> tuple[tuple[str, ...], ...]:
    tiers: list[tuple[str, ...]] = []
    announce_list = meta.get(b"announce-list")
    if announce_list is not None:
        if not isinstance(announce_list, list):
            raise TorrentError(f"{source}: announce-list must be a list of lists")
        for i, tier in enumerate(announce_list):
            if not isinstance(tier, list):
                raise TorrentError(f"{source}: announce-list[{i}] must be a list")
            urls = tuple(_text(u, f"announce-list[{i}]", source) for u in tier)
            if urls:
                tiers.append(urls)
    if not tiers and b"announce" in meta:
        tiers.append((_text(meta[b"announce"], "announce", source),))
    return tuple(tiers)


def _web_seeds(meta: dict[bytes, Any], source: str) -> tuple[str, ...]:
    urls = meta.get(b"url-list")
    if urls is None:
        return ()
    if isinstance(urls, bytes):
        return (_text(urls, "url-list", source),) if urls else ()
    if not isinstance(urls, list):
        raise TorrentError(f"{source}: url-list must be a string or a list")
    return tuple(_text(u, "url-list", source) for u in urls)


def parse_torrent(data: bytes, *, source: str = "torrent") -> Torrent:
    """Decode and validate the bytes of a .torrent (see the module docstring)."""
    if len(data) > MAX_TORRENT_BYTES:
        raise TorrentError(f"{source}: {len(data)} bytes is too large for a .torrent")
    try:
        meta, spans = decode_with_spans(data)
    except TorrentError as exc:
        raise TorrentError(f"{source}: {exc}") from exc
    if not isinstance(meta, dict):
        raise TorrentError(f"{source}: not a torrent (top level is not a dictionary)")
    info = meta.get(b"info")
    if not isinstance(info, dict):
        raise TorrentError(f"{source}: not a torrent (no info dictionary)")
    start, end = spans[b"info"]
    info_bytes = data[start:end]

    name = check_component(_text(info.get(b"name"), "info.name", source), "info.name", source)
    piece_length = _int(info.get(b"piece length"), "info.piece length", source, minimum=1)
    meta_version = info.get(b"meta version")
    has_v2 = meta_version is not None
    has_v1 = b"pieces" in info
    if has_v2 and meta_version != 2:
        raise TorrentError(f"{source}: unsupported meta version {meta_version!r}")
    if not has_v1 and not has_v2:
        raise TorrentError(f"{source}: info has neither pieces (v1) nor a file tree (v2)")
    if has_v2 and (piece_length < BLOCK_SIZE or piece_length & (piece_length - 1)):
        raise TorrentError(
            f"{source}: a v2 piece length must be a power of two >= 16 KiB, not {piece_length}"
        )

    files: list[TorrentFile] = []
    padded = 0
    pieces: tuple[bytes, ...] = ()
    single = b"files" not in info and (not has_v2 or has_v1)
    v1_real: list[tuple[tuple[str, ...], int]] = []
    if has_v1:
        raw = info[b"pieces"]
        if not isinstance(raw, bytes) or len(raw) % 20:
            raise TorrentError(f"{source}: info.pieces must be a multiple of 20 bytes")
        pieces = tuple(raw[i : i + 20] for i in range(0, len(raw), 20))
        seen: set[tuple[str, ...]] = set()
        for path, length, attr in _v1_files(info, name, source):
            if path in seen:
                raise TorrentError(f"{source}: duplicate file path {'/'.join(path)!r}")
            seen.add(path)
            if "l" in attr:
                raise TorrentError(f"{source}: symlink entry {'/'.join(path)!r} is not supported")
            if "p" not in attr:
                files.append(
                    TorrentFile(
                        path=path,
                        length=length,
                        offset=padded,
                        attr=attr,
                        piece_length=piece_length,
                    )
                )
                v1_real.append((path, length))
            padded += length
        expected = -(-padded // piece_length)
        if len(pieces) != expected:
            raise TorrentError(
                f"{source}: info.pieces holds {len(pieces)} hashes, the data needs {expected}"
            )

    layers: dict[bytes, bytes] = {}
    if has_v2:
        tree_entries: list[tuple[tuple[str, ...], int, str, bytes | None]] = []
        _walk_tree(info.get(b"file tree"), (), tree_entries, source)
        if not has_v1 and len(tree_entries) == 1 and tree_entries[0][0] == (name,):
            single = True  # a single-file v2 torrent: the tree holds {name: {"": ...}}
        v2_files: list[TorrentFile] = []
        offset = 0
        raw_layers = meta.get(b"piece layers", {})
        if not isinstance(raw_layers, dict):
            raise TorrentError(f"{source}: piece layers must be a dictionary")
        pad = _pad_hash(piece_length)
        for path, length, attr, root in tree_entries:
            if "l" in attr:
                raise TorrentError(f"{source}: symlink entry {'/'.join(path)!r} is not supported")
            v2_files.append(
                TorrentFile(
                    path=path,
                    length=length,
                    offset=offset,
                    attr=attr,
                    pieces_root=root,
                    piece_length=piece_length,
                )
            )
            if length > piece_length:
                assert root is not None
                layer = raw_layers.get(root)
                count = -(-length // piece_length)
                where = f"piece layer of {'/'.join(path)!r}"
                if not isinstance(layer, bytes) or len(layer) != 32 * count:
                    raise TorrentError(f"{source}: {where} is missing or not {count} hashes")
                leaves = [layer[i : i + 32] for i in range(0, len(layer), 32)]
                if _merkle_root(leaves, pad) != root:
                    raise TorrentError(f"{source}: {where} does not hash to the file's root")
                layers[root] = layer
            offset += -(-length // piece_length) * piece_length
        if has_v1:
            # same files in the same order (libtorrent refuses anything else)
            if [(f.path, f.length) for f in v2_files] != v1_real:
                raise TorrentError(f"{source}: hybrid torrent's v1 and v2 file lists differ")
            by_path = {f.path: f for f in v2_files}
            for f in files:
                if f.length and f.offset % piece_length:
                    raise TorrentError(
                        f"{source}: hybrid file {f.path_str!r} is not aligned to a piece"
                    )
            files = [
                TorrentFile(
                    path=f.path,
                    length=f.length,
                    offset=f.offset,
                    attr=f.attr,
                    pieces_root=by_path[f.path].pieces_root,
                    piece_length=piece_length,
                )
                for f in files
            ]
        else:
            files = v2_files
            padded = offset

    private = info.get(b"private", 0) == 1

    def optional_text(key: bytes) -> str | None:
        value = meta.get(key)
        return _text(value, key.decode(), source) if isinstance(value, bytes) else None

    created = meta.get(b"creation date")
    return Torrent(
        name=name,
        files=tuple(files),
        piece_length=piece_length,
        pieces=pieces,
        piece_layers=layers,
        info_hash_v1=hashlib.sha1(info_bytes).hexdigest() if has_v1 else None,
        info_hash_v2=hashlib.sha256(info_bytes).hexdigest() if has_v2 else None,
        trackers=_trackers(meta, source),
        web_seeds=_web_seeds(meta, source),
        private=private,
        single_file=single,
        info_bytes=info_bytes,
        padded_size=padded,
        comment=optional_text(b"comment"),
        created_by=optional_text(b"created by"),
        creation_date=created if isinstance(created, int) else None,
    )


def load_torrent(path_or_bytes: str | Path | bytes) -> Torrent:
    """A validated `Torrent` from a .torrent file's path or its bytes."""
    if isinstance(path_or_bytes, bytes | bytearray):
        return parse_torrent(bytes(path_or_bytes))
    path = Path(path_or_bytes)
    try:
        size = path.stat().st_size
        if size > MAX_TORRENT_BYTES:
            raise TorrentError(f"{path}: {size} bytes is too large for a .torrent")
        data = path.read_bytes()
    except OSError as exc:
        raise TorrentError(f"{path}: cannot read ({exc.strerror})") from exc
    return parse_torrent(data, source=str(path))
