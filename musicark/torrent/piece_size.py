"""Choosing a piece size: stable across versions, with the file sizes in view.

`auto_piece_size` starts from the power of two that gives about `TARGET_PIECES` pieces
(16 KiB to 16 MiB) and, for hybrid torrents, steps down while the BEP 47 padding (every
file padded to a piece boundary, the v1 side hashes those zeros) exceeds
`MAX_PADDING_SHARE` of the data — but never so far that the .torrent would pass
`MAX_TORRENT_BYTES`. When both limits cannot hold, the .torrent limit wins (clients
refuse large .torrent files) and the padding is what it must be.
"""

from __future__ import annotations

from collections.abc import Sequence

from musicark.errors import TorrentError

MIN_PIECE = 16 * 1024
MAX_PIECE = 16 * 2**20
TARGET_PIECES = 8192
MAX_TORRENT_BYTES = 4 * 10**6
MAX_PADDING_SHARE = 0.05
FORMATS = ("v1", "v2", "hybrid")


def check_piece_size(piece_length: int, *, format: str) -> int:
    """Refuse piece sizes clients cannot use (v2 needs a power of two >= 16 KiB)."""
    if piece_length < MIN_PIECE or piece_length & (piece_length - 1):
        raise TorrentError(f"piece size {piece_length} must be a power of two of at least 16 KiB")
    if piece_length > 128 * 2**20:
        raise TorrentError(f"piece size {piece_length} is over 128 MiB")
    return piece_length


def padding(sizes: Sequence[int], piece_length: int) -> int:
    """Bytes of BEP 47 padding a hybrid or v2 layout adds after each non-empty file."""
    return sum(-s % piece_length for s in sizes if s)


def estimate_torrent_bytes(
    sizes: Sequence[int], path_bytes: int, piece_length: int, *, format: str
) -> int:
    """An upper estimate of the .torrent's size for files of `sizes` (paths: `path_bytes`)."""
    n = len(sizes)
    total = sum(sizes)
    estimate = 1024 + path_bytes
    if format in ("v1", "hybrid"):
        padded = total + (padding(sizes, piece_length) if format == "hybrid" else 0)
        estimate += 20 * -(-padded // piece_length) + 40 * n
        if format == "hybrid":
            estimate += 40 * n  # padding file entries
    if format in ("v2", "hybrid"):
        estimate += 70 * n + path_bytes  # file tree: roots, lengths, keys
        estimate += sum(32 * -(-s // piece_length) + 40 for s in sizes if s > piece_length)
    return estimate


def auto_piece_size(sizes: Sequence[int], *, format: str = "v1", path_bytes: int = 0) -> int:
    """The piece size musicark uses when none is given (see the module docstring)."""
    if format not in FORMATS:
        raise TorrentError(f"unknown torrent format {format!r} (one of: {', '.join(FORMATS)})")
    total = sum(sizes)
    size = MIN_PIECE
    while size < MAX_PIECE and total > size * TARGET_PIECES:
        size *= 2

    def fits(p: int) -> bool:
        return estimate_torrent_bytes(sizes, path_bytes, p, format=format) <= MAX_TORRENT_BYTES

    while size < MAX_PIECE and not fits(size):
        size *= 2
    if format == "hybrid":
        while (
            size > MIN_PIECE
            and padding(sizes, size) > MAX_PADDING_SHARE * max(total, 1)
            and fits(size // 2)
        ):
            size //= 2
    return size
