"""A torrent's file list, stored compactly: a few bytes per file beyond its path.

A torrent of 500 000 files decoded into dictionaries, lists and per-file objects takes
more than ten times its own size; `FileTable` keeps every path in one UTF-8 buffer and
lengths, offsets and v2 roots in flat arrays, and makes a `TorrentFile` only when one
is asked for.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import overload

from musicark.errors import TorrentError

ZERO_ROOT = bytes(32)


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


class FileTableBuilder:
    """Collects files in torrent order; refuses a path given twice."""

    def __init__(self, source: str, *, v2: bool = False) -> None:
        self.source = source
        self.v2 = v2
        self.paths = bytearray()
        self.starts = array("q", [0])
        self.lengths = array("q")
        self.offsets = array("q")
        self.roots = bytearray()
        self.attrs: dict[int, str] = {}
        self.size = 0  # bytes in the piece space so far, padding included
        self.entries = 0  # files and padding files
        self.hashes = array("q")  # of each path, to find duplicates when the list is complete

    def add(self, path: bytes, length: int, *, attr: str = "", root: bytes | None = None) -> None:
        """A real file: `path` is its UTF-8 parts joined by '/' (parts never hold '/')."""
        self.hashes.append(hash(path))
        index = len(self.lengths)
        self.entries += 1
        self.paths += path
        self.paths += b"\0"  # parts never hold NUL either: a separator no path contains
        self.starts.append(len(self.paths))
        self.lengths.append(length)
        self.offsets.append(self.size)
        if self.v2:
            self.roots += root or ZERO_ROOT
        if attr:
            self.attrs[index] = attr
        self.size += length

    def skip(self, length: int) -> None:
        """A padding file: bytes in the piece space that belong to no real file."""
        self.entries += 1
        self.size += length

    def _check_duplicates(self) -> None:
        """Refuse a path given twice: equal hashes found by sorting 8 bytes per file (a
        set of Python ints would take eight times that), confirmed byte for byte."""
        import numpy as np  # only here: loading a torrent rarely gets this far

        hashes = np.frombuffer(self.hashes, dtype=np.int64)
        order = np.argsort(hashes, kind="stable")
        same = np.flatnonzero(hashes[order][1:] == hashes[order][:-1])
        for k in same:
            a, b = int(order[k]), int(order[k + 1])
            path = self._path(a)
            if path == self._path(b):
                raise TorrentError(f"{self.source}: duplicate file path {path.decode()!r}")

    def _path(self, index: int) -> bytes:
        return bytes(self.paths[self.starts[index] : self.starts[index + 1] - 1])

    def build(self, piece_length: int, *, aligned: bool = False) -> FileTable:
        """The table; `aligned` starts every file on a piece boundary (v2), which only
        the piece length, known last, decides."""
        if len(self.hashes) > 1:
            self._check_duplicates()
        if aligned:
            offset = 0
            for i, length in enumerate(self.lengths):
                self.offsets[i] = offset
                offset += -(-length // piece_length) * piece_length
            self.size = offset
        return FileTable(
            self.paths,  # not copied: the builder is done with it
            self.starts,
            self.lengths,
            self.offsets,
            bytes(self.roots),
            self.attrs,
            piece_length,
        )


class FileTable(Sequence[TorrentFile]):
    """The real files of a torrent (padding files left out), in torrent order."""

    __slots__ = ("_attrs", "_lengths", "_offsets", "_paths", "_roots", "_starts", "piece_length")

    def __init__(
        self,
        paths: bytes | bytearray,
        starts: array[int],
        lengths: array[int],
        offsets: array[int],
        roots: bytes,
        attrs: dict[int, str],
        piece_length: int,
    ) -> None:
        self._paths = paths
        self._starts = starts
        self._lengths = lengths
        self._offsets = offsets
        self._roots = roots
        self._attrs = attrs
        self.piece_length = piece_length

    def __len__(self) -> int:
        return len(self._lengths)

    @overload
    def __getitem__(self, index: int) -> TorrentFile: ...

    @overload
    def __getitem__(self, index: slice) -> list[TorrentFile]: ...

    def __getitem__(self, index: int | slice) -> TorrentFile | list[TorrentFile]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        length = self._lengths[index]
        root = self._roots[32 * index : 32 * index + 32] if self._roots and length else None
        return TorrentFile(
            path=tuple(self.path_str(index).split("/")),
            length=length,
            offset=self._offsets[index],
            attr=self._attrs.get(index, ""),
            pieces_root=root,
            piece_length=self.piece_length,
        )

    def __iter__(self) -> Iterator[TorrentFile]:
        for i in range(len(self)):
            yield self[i]

    def path_bytes(self, index: int) -> bytes:
        return bytes(self._paths[self._starts[index] : self._starts[index + 1] - 1])

    def path_str(self, index: int) -> str:
        return self.path_bytes(index).decode("utf-8")

    @property
    def lengths(self) -> Sequence[int]:
        return self._lengths

    @property
    def offsets(self) -> Sequence[int]:
        return self._offsets

    def same_files(self, other: FileTable) -> bool:
        """The same paths with the same lengths, in the same order."""
        return self._paths == other._paths and self._lengths == other._lengths

    def with_roots(self, other: FileTable) -> FileTable:
        """These files (offsets included) with `other`'s v2 roots (a hybrid's two lists)."""
        return FileTable(
            self._paths,
            self._starts,
            self._lengths,
            self._offsets,
            other._roots,
            self._attrs,
            self.piece_length,
        )

    def nbytes(self) -> int:
        """Memory held by the table's buffers."""
        return (
            len(self._paths)
            + len(self._roots)
            + 8 * (len(self._starts) + len(self._lengths) + len(self._offsets))
        )


class PieceHashes(Sequence[bytes]):
    """v1 piece hashes as 20-byte slices of one buffer."""

    __slots__ = ("_raw",)

    def __init__(self, raw: bytes) -> None:
        self._raw = raw

    def __len__(self) -> int:
        return len(self._raw) // 20

    @overload
    def __getitem__(self, index: int) -> bytes: ...

    @overload
    def __getitem__(self, index: slice) -> list[bytes]: ...

    def __getitem__(self, index: int | slice) -> bytes | list[bytes]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._raw[20 * index : 20 * index + 20]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PieceHashes):
            return self._raw == other._raw
        if isinstance(other, Sequence):
            return list(self) == list(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._raw)
