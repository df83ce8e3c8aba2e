"""Bencoding (BEP 3): canonical encoding and strict, bounded decoding.

Decoded strings are `bytes` (dictionary keys too): a .torrent may hold binary keys
(v2 piece layers) and names in any encoding, so decoding stays lossless and callers
choose how to read text. `encode` accepts `str` as UTF-8 as a convenience.

The decoder accepts only canonical bencoding — integers without leading zeros or
`-0`, dictionary keys strictly ascending, nothing after the value — so that
re-encoding a decoded value gives back the same bytes (and so the same infohash).
It is bounded against bombs: nesting depth, total number of values, digits of an
integer, and every string's length is checked against the bytes that remain before
anything is allocated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from musicark.errors import TorrentError

Bencodable = int | bytes | str | list[Any] | tuple[Any, ...] | Mapping[Any, Any]

MAX_DEPTH = 64
MAX_ITEMS = 4_000_000
MAX_INT_DIGITS = 64
MAX_SIZE = 256 * 2**20


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds the decoder enforces; the defaults fit any torrent musicark makes or seeds."""

    max_depth: int = MAX_DEPTH
    max_items: int = MAX_ITEMS
    max_int_digits: int = MAX_INT_DIGITS
    max_size: int = MAX_SIZE


DEFAULT_LIMITS = Limits()


def _key_bytes(key: Any) -> bytes:
    if isinstance(key, bytes):
        return key
    if isinstance(key, str):
        return key.encode("utf-8")
    raise TorrentError(f"bencode: dictionary key {key!r} is not a string")


def _encode(obj: Any, out: list[bytes], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise TorrentError(f"bencode: value nested deeper than {MAX_DEPTH} levels")
    if isinstance(obj, bool):
        raise TorrentError("bencode: booleans have no encoding (use 0 or 1)")
    if isinstance(obj, int):
        out.append(b"i%de" % obj)
    elif isinstance(obj, bytes | bytearray | memoryview):
        raw = bytes(obj)
        out.append(b"%d:" % len(raw))
        out.append(raw)
    elif isinstance(obj, str):
        raw = obj.encode("utf-8")
        out.append(b"%d:" % len(raw))
        out.append(raw)
    elif isinstance(obj, list | tuple):
        out.append(b"l")
        for item in obj:
            _encode(item, out, depth + 1)
        out.append(b"e")
    elif isinstance(obj, Mapping):
        items = sorted((_key_bytes(k), v) for k, v in obj.items())
        out.append(b"d")
        previous: bytes | None = None
        for key, value in items:
            if key == previous:
                raise TorrentError(f"bencode: duplicate dictionary key {key!r}")
            previous = key
            out.append(b"%d:" % len(key))
            out.append(key)
            _encode(value, out, depth + 1)
        out.append(b"e")
    else:
        raise TorrentError(f"bencode: cannot encode a value of type {type(obj).__name__}")


def encode(obj: Bencodable) -> bytes:
    """The canonical bencoding of `obj` (dictionary keys sorted as raw bytes)."""
    out: list[bytes] = []
    _encode(obj, out, 0)
    return b"".join(out)


class _Decoder:
    __slots__ = ("data", "end", "items", "limits", "spans")

    def __init__(self, data: bytes, limits: Limits) -> None:
        self.data = data
        self.end = len(data)
        self.limits = limits
        self.items = 0
        self.spans: dict[bytes, tuple[int, int]] = {}

    def fail(self, pos: int, what: str) -> TorrentError:
        return TorrentError(f"bencode: {what} at byte {pos}")

    def count(self, pos: int) -> None:
        self.items += 1
        if self.items > self.limits.max_items:
            raise self.fail(pos, f"more than {self.limits.max_items} values")

    def integer(self, pos: int) -> tuple[int, int]:
        # pos is at 'i'
        end = self.data.find(b"e", pos + 1, pos + 2 + self.limits.max_int_digits + 1)
        if end < 0:
            if self.data.find(b"e", pos + 1) < 0:
                raise self.fail(pos, "unterminated integer")
            raise self.fail(pos, f"integer longer than {self.limits.max_int_digits} digits")
        text = self.data[pos + 1 : end]
        digits = text[1:] if text[:1] == b"-" else text
        if not digits or not digits.isdigit() or not digits.isascii():
            raise self.fail(pos, "malformed integer")
        if len(digits) > self.limits.max_int_digits:
            raise self.fail(pos, f"integer longer than {self.limits.max_int_digits} digits")
        if (digits[0:1] == b"0" and len(digits) > 1) or text == b"-0":
            raise self.fail(pos, "non-canonical integer (leading zero or -0)")
        return int(text), end + 1

    def string(self, pos: int) -> tuple[bytes, int]:
        colon = self.data.find(b":", pos, pos + 21)
        if colon < 0:
            raise self.fail(pos, "malformed string length")
        text = self.data[pos:colon]
        if not text.isdigit() or not text.isascii():
            raise self.fail(pos, "malformed string length")
        if text[0:1] == b"0" and len(text) > 1:
            raise self.fail(pos, "non-canonical string length (leading zero)")
        length = int(text)
        start = colon + 1
        if length > self.end - start:
            raise self.fail(pos, f"string of {length} bytes runs past the end of the data")
        return self.data[start : start + length], start + length

    def value(self, pos: int, depth: int) -> tuple[Any, int]:
        if pos >= self.end:
            raise self.fail(pos, "unexpected end of data")
        self.count(pos)
        lead = self.data[pos]
        if lead == 0x69:  # i
            return self.integer(pos)
        if 0x30 <= lead <= 0x39:
            return self.string(pos)
        if lead == 0x6C or lead == 0x64:  # l, d
            if depth >= self.limits.max_depth:
                raise self.fail(pos, f"nesting deeper than {self.limits.max_depth} levels")
            if lead == 0x6C:
                items: list[Any] = []
                pos += 1
                while True:
                    if pos >= self.end:
                        raise self.fail(pos, "unterminated list")
                    if self.data[pos] == 0x65:
                        return items, pos + 1
                    item, pos = self.value(pos, depth + 1)
                    items.append(item)
            result: dict[bytes, Any] = {}
            previous: bytes | None = None
            pos += 1
            while True:
                if pos >= self.end:
                    raise self.fail(pos, "unterminated dictionary")
                if self.data[pos] == 0x65:
                    return result, pos + 1
                if not 0x30 <= self.data[pos] <= 0x39:
                    raise self.fail(pos, "dictionary key is not a string")
                key_pos = pos
                key, pos = self.string(pos)
                if previous is not None and key <= previous:
                    what = "duplicate" if key == previous else "unsorted"
                    raise self.fail(key_pos, f"{what} dictionary key {key[:40]!r}")
                previous = key
                start = pos
                result[key], pos = self.value(pos, depth + 1)
                if depth == 0:
                    self.spans[key] = (start, pos)
        raise self.fail(pos, f"unexpected byte {bytes([lead])!r}")


def _prepare(data: bytes | bytearray | memoryview, limits: Limits) -> bytes:
    raw = bytes(data)
    if len(raw) > limits.max_size:
        raise TorrentError(f"bencode: {len(raw)} bytes is over the limit of {limits.max_size}")
    if not raw:
        raise TorrentError("bencode: empty data")
    return raw


def decode(data: bytes | bytearray | memoryview, *, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Decode one canonical bencoded value that fills `data` exactly."""
    value, _ = decode_with_spans(data, limits=limits)
    return value


def decode_with_spans(
    data: bytes | bytearray | memoryview, *, limits: Limits = DEFAULT_LIMITS
) -> tuple[Any, dict[bytes, tuple[int, int]]]:
    """Like `decode`, plus the byte span of each value of a top-level dictionary.

    `data[start:end]` of the `b"info"` span is the exact info dictionary that an
    infohash is computed over.
    """
    raw = _prepare(data, limits)
    decoder = _Decoder(raw, limits)
    value, pos = decoder.value(0, 0)
    if pos != len(raw):
        raise TorrentError(f"bencode: {len(raw) - pos} bytes of trailing data at byte {pos}")
    return value, decoder.spans
