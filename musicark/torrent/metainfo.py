"""Reading .torrent files: v1 (BEP 3), v2 (BEP 52) and hybrid, validated before use.

`load_torrent` refuses anything a seeder or verifier could be tricked by: paths with
`..`, `.`, empty, absolute or slash-bearing components, NUL bytes, duplicate paths,
symlink entries, piece counts that do not match the data, v2 piece layers that do not
hash to their file's root, and hybrids whose v1 and v2 file lists disagree. It also
refuses what libtorrent refuses (no data, a v2 file without a root or with the pad
attribute, piece lengths libtorrent cannot use), and reads what libtorrent reads when
that is no safety question: non-canonical bencoding (the infohash is taken over the
info dictionary's original bytes), tracker or web seed entries of the wrong type
(skipped). Each such leniency is one line in `Torrent.warnings`; every refusal is one
`TorrentError` line naming the torrent and the field. docs/torrent-compatibility.md
lists where musicark deliberately differs from libtorrent.

Memory: the file list is walked entry by entry into a compact `FileTable`, so loading
a torrent takes a small multiple of its size, whatever its number of files.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musicark.errors import TorrentError
from musicark.torrent.bencode import Decoder
from musicark.torrent.files import (
    ZERO_ROOT,
    FileTable,
    FileTableBuilder,
    PieceHashes,
    TorrentFile,
)

__all__ = [
    "BLOCK_SIZE",
    "MAX_TORRENT_BYTES",
    "MAX_V1_PIECE_LENGTH",
    "FileTable",
    "Torrent",
    "TorrentFile",
    "check_component",
    "describe_file_type",
    "load_torrent",
    "parse_torrent",
    "read_torrent_file",
]

BLOCK_SIZE = 16 * 1024  # v2 merkle leaf size (BEP 52)
_PLAIN_ENTRY = re.compile(rb"d6:lengthi(0|[1-9][0-9]{0,18})e4:pathl")
# keys read; any other is validated and dropped, so unknown bulk costs no memory
TOP_KEYS = frozenset(
    {b"announce", b"announce-list", b"comment", b"created by", b"creation date"}
    | {b"piece layers", b"url-list"}
)
INFO_KEYS = frozenset({b"length", b"meta version", b"name", b"piece length", b"pieces", b"private"})
MAX_TORRENT_BYTES = 64 * 2**20
MAX_V1_PIECE_LENGTH = 2**29 - BLOCK_SIZE  # the largest piece libtorrent 2.1 loads


@dataclass(frozen=True)
class Torrent:
    name: str
    files: FileTable  # real files, in torrent order (padding files left out)
    piece_length: int
    pieces: PieceHashes  # v1 SHA-1 piece hashes; empty for v2-only torrents
    piece_layers: dict[bytes, bytes]  # v2: pieces root -> concatenated SHA-256 piece hashes
    info_hash_v1: str | None  # hex SHA-1 of the info dict, when the torrent has v1 pieces
    info_hash_v2: str | None  # hex SHA-256 of the info dict, when it is v2 or hybrid
    trackers: tuple[tuple[str, ...], ...]  # announce tiers
    web_seeds: tuple[str, ...]
    private: bool
    single_file: bool
    padded_size: int  # bytes in the v1 piece space, padding files included
    comment: str | None = None
    created_by: str | None = None
    creation_date: int | None = None
    warnings: tuple[str, ...] = ()  # what was read leniently (see the module docstring)
    raw: bytes = field(default=b"", repr=False, compare=False)  # the .torrent's bytes
    info_span: tuple[int, int] = (0, 0)

    @property
    def info_bytes(self) -> bytes:
        """The info dictionary exactly as stored (what the infohashes are taken over)."""
        return self.raw[self.info_span[0] : self.info_span[1]]

    @property
    def version(self) -> str:
        if self.info_hash_v1 and self.info_hash_v2:
            return "hybrid"
        return "v2" if self.info_hash_v2 else "v1"

    @property
    def total_size(self) -> int:
        return sum(self.files.lengths)

    @property
    def num_pieces(self) -> int:
        if self.pieces:
            return len(self.pieces)
        return -(-self.padded_size // self.piece_length) if self.padded_size else 0

    def file_paths(self) -> list[str]:
        """Each file's path as stored: under `name` for multi-file torrents, `name` itself
        for a single-file torrent."""
        return [self.files.path_str(i) for i in range(len(self.files))]

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


class _Reader:
    """Walks a .torrent's dictionaries, the file lists entry by entry."""

    def __init__(self, decoder: Decoder, source: str) -> None:
        self.dec = decoder
        self.source = source
        self.meta: dict[bytes, Any] = {}
        self.info: dict[bytes, Any] | None = None
        self.info_span = (0, 0)
        self.v1_files: FileTableBuilder | None = None
        self.v2_files: FileTableBuilder | None = None
        self.warnings: list[str] = []

    def warn(self, text: str) -> None:
        self.warnings.append(text)

    def top(self, key: bytes, pos: int) -> int:
        if key == b"info" and self.dec.data[pos] == 0x64:
            self.info = {}
            end = self.dec.walk_dict(pos, 1, self._info_entry)
            self.info_span = (pos, end)
            return end
        if key not in TOP_KEYS:
            return self.dec.check(pos, 1)
        self.meta[key], end = self.dec.value(pos, 1)
        return end

    def _info_entry(self, key: bytes, pos: int) -> int:
        assert self.info is not None
        lead = self.dec.data[pos]
        if key == b"files" and lead == 0x6C:
            self.v1_files = FileTableBuilder(self.source)
            self.info[key] = True
            return self._v1_list(pos)
        if key == b"file tree" and lead == 0x64:
            self.v2_files = FileTableBuilder(self.source, v2=True)
            self.info[key] = True
            return self._tree(pos, 2, b"", self.v2_files)
        if key not in INFO_KEYS and key not in (b"files", b"file tree"):
            return self.dec.check(pos, 2)
        self.info[key], end = self.dec.value(pos, 2)
        return end

    def _v1_list(self, pos: int) -> int:
        builder = self.v1_files
        assert builder is not None
        source, dec = self.source, self.dec
        dec.count(pos)
        dec.check_depth(pos, 2)
        pos += 1
        i = 0
        while True:
            if pos >= dec.end:
                raise dec.fail(pos, "unterminated list")
            if dec.data[pos] == 0x65:
                return pos + 1
            where = f"info.files[{i}]"
            fast = self._plain_entry(pos)
            parts: Any
            if fast is not None:
                length, parts, pos = fast
                attr = ""
            else:
                entry, pos = dec.value(pos, 3)
                if not isinstance(entry, dict):
                    raise TorrentError(f"{source}: {where} is not a dictionary")
                length = _int(entry.get(b"length"), f"{where}.length", source)
                parts = entry.get(b"path")
                if not isinstance(parts, list) or not parts:
                    raise TorrentError(f"{source}: {where}.path must be a non-empty list")
                attr = _text(entry.get(b"attr", b""), f"{where}.attr", source)
            for p in parts:
                check_component(_text(p, f"{where}.path", source), f"{where}.path", source)
            path = b"/".join(parts)
            if "l" in attr:
                raise TorrentError(f"{source}: symlink entry {path.decode()!r} is not supported")
            if "p" in attr:  # BEP 47 padding: room in the piece space, no file
                builder.skip(length)
            else:
                builder.add(path, length, attr=attr)
            i += 1

    def _plain_entry(self, pos: int) -> tuple[int, list[bytes], int] | None:
        """The common file entry, `{length, path}` canonically encoded, read without the
        general decoder (most of a big torrent's loading time); None for anything else,
        which the general decoder then reads (or refuses) as usual."""
        dec = self.dec
        data, end = dec.data, dec.end
        match = _PLAIN_ENTRY.match(data, pos)
        if match is None:
            return None
        p = match.end()
        parts: list[bytes] = []
        while p < end and data[p] != 0x65:
            colon = data.find(b":", p, p + 21)
            text = data[p:colon]
            if colon < 0 or not text.isdigit() or (text[0] == 0x30 and len(text) > 1):
                return None
            start = colon + 1
            n = int(text)
            if n > end - start:
                return None
            parts.append(data[start : start + n])
            p = start + n
        if not parts or data[p + 1 : p + 2] != b"e":
            return None
        dec.items += 2 + len(parts)  # the values the general decoder would count
        dec.count(pos)
        return int(match.group(1)), parts, p + 2

    def _tree(self, pos: int, depth: int, prefix: bytes, builder: FileTableBuilder) -> int:
        source = self.source
        where = "info.file tree" + ("/" + prefix.decode() if prefix else "")
        entries = 0
        is_file = False

        def visit(key: bytes, at: int) -> int:
            nonlocal entries, is_file
            entries += 1
            if key == b"":
                if not prefix:
                    raise TorrentError(f"{source}: info.file tree has a file without a name")
                is_file = True
                leaf, end = self.dec.value(at, depth + 1)
                self._leaf(leaf, prefix, where, builder)
                return end
            check_component(_text(key, f"{where} key", source), where, source)
            sub = prefix + b"/" + key if prefix else key
            if self.dec.data[at] != 0x64:
                raise TorrentError(
                    f"{source}: info.file tree/{sub.decode()} must be a non-empty dictionary"
                )
            return self._tree(at, depth + 1, sub, builder)

        end = self.dec.walk_dict(pos, depth, visit)
        if not entries:
            raise TorrentError(f"{source}: {where} must be a non-empty dictionary")
        if is_file and entries != 1:
            raise TorrentError(f"{source}: {where} is both a file and a folder")
        return end

    def _leaf(self, leaf: Any, path: bytes, where: str, builder: FileTableBuilder) -> None:
        source = self.source
        if not isinstance(leaf, dict):
            raise TorrentError(f"{source}: {where} file entry is not a dictionary")
        length = _int(leaf.get(b"length"), f"{where}.length", source)
        attr = _text(leaf.get(b"attr", b""), f"{where}.attr", source)
        if "l" in attr:
            raise TorrentError(f"{source}: symlink entry {path.decode()!r} is not supported")
        if "p" in attr:
            raise TorrentError(f"{source}: v2 file {path.decode()!r} has the pad attribute")
        root = leaf.get(b"pieces root")
        if length > 0:
            if not isinstance(root, bytes) or len(root) != 32 or root == ZERO_ROOT:
                raise TorrentError(f"{source}: {where} needs a 32-byte pieces root")
        elif root is not None:
            raise TorrentError(f"{source}: {where} is empty but has a pieces root")
        builder.add(path, length, attr=attr, root=root if length > 0 else None)


def _trackers(meta: dict[bytes, Any], warn: Any) -> tuple[tuple[str, ...], ...]:
    tiers: list[tuple[str, ...]] = []
    announce_list = meta.get(b"announce-list")
    if announce_list is not None and not isinstance(announce_list, list):
        warn("announce-list is not a list: ignored")
        announce_list = None
    for i, tier in enumerate(announce_list or ()):
        if not isinstance(tier, list):
            warn(f"announce-list[{i}] is not a list: ignored")
            continue
        urls = tuple(u for u in (_url(x, f"announce-list[{i}]", warn) for x in tier) if u)
        if urls:
            tiers.append(urls)
    if not tiers and b"announce" in meta:
        url = _url(meta[b"announce"], "announce", warn)
        if url:
            tiers.append((url,))
    return tuple(tiers)


def _url(value: Any, where: str, warn: Any) -> str | None:
    """A tracker or web seed URL; one that is not a UTF-8 string is skipped, as libtorrent
    skips it."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8") or None
        except UnicodeDecodeError:
            warn(f"{where} has a URL that is not valid UTF-8: skipped")
            return None
    warn(f"{where} has an entry that is not a string: skipped")
    return None


def _web_seeds(meta: dict[bytes, Any], warn: Any) -> tuple[str, ...]:
    urls = meta.get(b"url-list")
    if urls is None:
        return ()
    if not isinstance(urls, list):
        urls = [urls]
    return tuple(u for u in (_url(x, "url-list", warn) for x in urls) if u)


def _optional_text(value: Any) -> str | None:
    # informational fields: never a reason to refuse a torrent
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else None


def _decode(data: bytes, source: str) -> _Reader:
    if len(data) > MAX_TORRENT_BYTES:
        raise TorrentError(f"{source}: {len(data)} bytes is too large for a .torrent")
    dec = Decoder(data, strict=False, source=source)
    reader = _Reader(dec, source)
    if dec.data[0] != 0x64:
        dec.value(0)  # a bencoding error if it is not even bencoded
        raise TorrentError(f"{source}: not a torrent (top level is not a dictionary)")
    dec.count(0)
    dec.finish(dec.walk_dict(0, 0, reader.top, counted=True))
    reader.warnings[:0] = dec.warnings
    return reader


def _piece_length(info: dict[bytes, Any], has_v1: bool, has_v2: bool, source: str) -> int:
    piece_length = _int(info.get(b"piece length"), "info.piece length", source, minimum=1)
    if has_v2 and (piece_length < BLOCK_SIZE or piece_length & (piece_length - 1)):
        raise TorrentError(
            f"{source}: a v2 piece length must be a power of two >= 16 KiB, not {piece_length}"
        )
    if has_v1 and piece_length > MAX_V1_PIECE_LENGTH:
        raise TorrentError(
            f"{source}: info.piece length {piece_length} is over the {MAX_V1_PIECE_LENGTH}"
            " bytes BitTorrent clients accept"
        )
    return piece_length


def _v2_layers(
    files: FileTable, meta: dict[bytes, Any], piece_length: int, source: str
) -> dict[bytes, bytes]:
    raw_layers = meta.get(b"piece layers", {})
    if not isinstance(raw_layers, dict):
        raise TorrentError(f"{source}: piece layers must be a dictionary")
    layers: dict[bytes, bytes] = {}
    pad = _pad_hash(piece_length)
    for i, length in enumerate(files.lengths):
        if length <= piece_length:
            continue
        root = files[i].pieces_root
        assert root is not None
        layer = raw_layers.get(root)
        count = -(-length // piece_length)
        where = f"piece layer of {files.path_str(i)!r}"
        if not isinstance(layer, bytes) or len(layer) != 32 * count:
            raise TorrentError(f"{source}: {where} is missing or not {count} hashes")
        leaves = [layer[j : j + 32] for j in range(0, len(layer), 32)]
        if _merkle_root(leaves, pad) != root:
            raise TorrentError(f"{source}: {where} does not hash to the file's root")
        layers[root] = layer
    return layers


def parse_torrent(data: bytes, *, source: str = "torrent") -> Torrent:
    """Decode and validate the bytes of a .torrent (see the module docstring)."""
    reader = _decode(data, source)
    meta, info = reader.meta, reader.info
    if info is None:
        raise TorrentError(f"{source}: not a torrent (no info dictionary)")
    name = check_component(_text(info.get(b"name"), "info.name", source), "info.name", source)
    _int(info.get(b"piece length"), "info.piece length", source, minimum=1)
    meta_version = info.get(b"meta version")
    has_v2 = meta_version is not None
    has_v1 = b"pieces" in info
    if has_v2 and meta_version != 2:
        raise TorrentError(f"{source}: unsupported meta version {meta_version!r}")
    if not has_v1 and not has_v2:
        raise TorrentError(f"{source}: info has neither pieces (v1) nor a file tree (v2)")
    piece_length = _piece_length(info, has_v1, has_v2, source)

    files: FileTable | None = None
    pieces = PieceHashes(b"")
    padded = 0
    single = b"files" not in info and (not has_v2 or has_v1)
    if has_v1:
        files, pieces, padded = _v1_table(info, reader, name, piece_length, source)
    if has_v2:
        if reader.v2_files is None:
            raise TorrentError(f"{source}: info.file tree must be a non-empty dictionary")
        v2 = reader.v2_files.build(piece_length, aligned=True)
        if not has_v1 and len(v2) == 1 and v2.path_bytes(0) == name.encode():
            single = True  # a single-file v2 torrent: the tree holds {name: {"": ...}}
        layers = _v2_layers(v2, meta, piece_length, source)
        if files is not None:
            # same files in the same order (libtorrent refuses anything else)
            if not files.same_files(v2):
                raise TorrentError(f"{source}: hybrid torrent's v1 and v2 file lists differ")
            for i, (offset, length) in enumerate(zip(files.offsets, files.lengths, strict=True)):
                if length and offset % piece_length:
                    raise TorrentError(
                        f"{source}: hybrid file {files.path_str(i)!r} is not aligned to a piece"
                    )
            files = files.with_roots(v2)
        else:
            files, padded = v2, reader.v2_files.size
    else:
        layers = {}
    assert files is not None
    if not any(files.lengths):
        raise TorrentError(f"{source}: the torrent holds no data (total length 0)")

    created = meta.get(b"creation date")
    info_bytes = memoryview(data)[reader.info_span[0] : reader.info_span[1]]
    return Torrent(
        name=name,
        files=files,
        piece_length=piece_length,
        pieces=pieces,
        piece_layers=layers,
        info_hash_v1=hashlib.sha1(info_bytes).hexdigest() if has_v1 else None,
        info_hash_v2=hashlib.sha256(info_bytes).hexdigest() if has_v2 else None,
        trackers=_trackers(meta, reader.warn),
        web_seeds=_web_seeds(meta, reader.warn),
        private=info.get(b"private", 0) == 1,
        single_file=single,
        padded_size=padded,
        comment=_optional_text(meta.get(b"comment")),
        created_by=_optional_text(meta.get(b"created by")),
        creation_date=created if isinstance(created, int) else None,
        warnings=tuple(f"{source}: {w}" for w in reader.warnings),
        raw=bytes(data),
        info_span=reader.info_span,
    )


def _v1_table(
    info: dict[bytes, Any], reader: _Reader, name: str, piece_length: int, source: str
) -> tuple[FileTable, PieceHashes, int]:
    raw = info[b"pieces"]
    if not isinstance(raw, bytes) or len(raw) % 20:
        raise TorrentError(f"{source}: info.pieces must be a multiple of 20 bytes")
    if b"files" in info:
        if b"length" in info:
            raise TorrentError(f"{source}: info has both length and files")
        builder = reader.v1_files
        if builder is None or not builder.entries:
            raise TorrentError(f"{source}: info.files must be a non-empty list")
    else:
        builder = FileTableBuilder(source)
        builder.add(name.encode(), _int(info.get(b"length"), "info.length", source))
    files = builder.build(piece_length)
    if not any(files.lengths):
        raise TorrentError(f"{source}: the torrent holds no data (total length 0)")
    expected = -(-builder.size // piece_length)
    if len(raw) // 20 != expected:
        raise TorrentError(
            f"{source}: info.pieces holds {len(raw) // 20} hashes, the data needs {expected}"
        )
    return files, PieceHashes(raw), builder.size


def describe_file_type(mode: int) -> str:
    """What a non-regular file is, for an error message ("a directory", "a FIFO", ...)."""
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((what for test, what in kinds if test(mode)), "not a regular file")


def read_torrent_file(path: Path, *, limit: int = MAX_TORRENT_BYTES) -> bytes:
    """The bytes of a .torrent file: a regular file of at most `limit` bytes, read in
    bounded memory (a device, a FIFO or a directory is refused before any read)."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise TorrentError(f"{path}: is {describe_file_type(st.st_mode)}, not a .torrent file")
        if st.st_size > limit:
            raise TorrentError(f"{path}: {st.st_size} bytes is too large for a .torrent")
        flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | os.O_CLOEXEC
        fd = os.open(path, flags)
        try:
            st = os.fstat(fd)  # what was opened, not what was looked at
            if not stat.S_ISREG(st.st_mode):
                raise TorrentError(
                    f"{path}: is {describe_file_type(st.st_mode)}, not a .torrent file"
                )
            # one read of the size stat gave (no copies of a large file); more only if
            # the file grew meanwhile, never beyond the limit
            chunks = [os.read(fd, min(st.st_size, limit) + 1)]
            total = len(chunks[0])
            while chunks[-1] and total <= limit:
                chunks.append(os.read(fd, min(limit + 1 - total, 1 << 20)))
                total += len(chunks[-1])
        finally:
            os.close(fd)
    except OSError as exc:
        raise TorrentError(f"{path}: cannot read ({exc.strerror})") from exc
    if total > limit:
        raise TorrentError(f"{path}: more than {limit} bytes is too large for a .torrent")
    chunks = [c for c in chunks if c]
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def load_torrent(path_or_bytes: str | Path | bytes) -> Torrent:
    """A validated `Torrent` from a .torrent file's path or its bytes."""
    if isinstance(path_or_bytes, bytes | bytearray):
        return parse_torrent(bytes(path_or_bytes))
    path = Path(path_or_bytes)
    return parse_torrent(read_torrent_file(path), source=str(path))
