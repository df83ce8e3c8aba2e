"""Bencoding (BEP 3): canonical encoding, bounded decoding, strict or as lenient as libtorrent.

Decoded strings are `bytes` (dictionary keys too): a .torrent may hold binary keys
(v2 piece layers) and names in any encoding, so decoding stays lossless and callers
choose how to read text. `encode` accepts `str` as UTF-8 as a convenience.

Strict decoding accepts only canonical bencoding: integers without leading zeros or
`-0`, dictionary keys strictly ascending, nothing after the value, so that re-encoding
a decoded value gives back the same bytes. Lenient decoding (`strict=False`) accepts
what libtorrent accepts — unsorted keys, leading zeros, `-0`, trailing bytes — and
reports each kind once as a warning; whoever hashes such data must hash the original
bytes (see `decode_with_spans`). Duplicate keys are refused either way: two readers
could take different values from one dictionary.

Every decode is bounded against bombs: nesting depth, total number of values, digits
of an integer, and every string's length is checked against the bytes that remain
before anything is allocated. `Decoder.iter_list` and `Decoder.walk_dict` let a caller
visit a huge list or dictionary one entry at a time instead of building it whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from musicark.errors import TorrentError

Bencodable = int | bytes | str | list[Any] | tuple[Any, ...] | Mapping[Any, Any]


class Encoded(bytes):
    """A value already bencoded, placed by `encode` as it is (a torrent's info dict, so
    it is encoded once for both the file and the infohash)."""


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
    elif isinstance(obj, Encoded):
        out.append(obj)
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


class Decoder:
    """Decodes values out of one buffer; positions are byte offsets into it."""

    __slots__ = (
        "_warned",
        "data",
        "end",
        "items",
        "limits",
        "list_end",
        "source",
        "strict",
        "warnings",
    )

    def __init__(
        self,
        data: bytes | bytearray | memoryview,
        *,
        limits: Limits = DEFAULT_LIMITS,
        strict: bool = True,
        source: str = "",
    ) -> None:
        self.source = source  # named in error messages
        raw = bytes(data)
        if len(raw) > limits.max_size:
            raise self.fail(0, f"{len(raw)} bytes, over the limit of {limits.max_size},")
        if not raw:
            raise self.fail(0, "empty data")
        self.data = raw
        self.end = len(raw)
        self.limits = limits
        self.strict = strict
        self.items = 0
        self.warnings: list[str] = []  # lenient mode: one line per kind of irregularity
        self._warned: set[str] = set()
        self.list_end = 0  # end of the list `iter_list` last finished

    def fail(self, pos: int, what: str) -> TorrentError:
        prefix = f"{self.source}: " if self.source else ""
        return TorrentError(f"{prefix}bencode: {what} at byte {pos}")

    def irregular(self, pos: int, kind: str, what: str) -> None:
        """Non-canonical but unambiguous: refused when strict, else warned about once."""
        if self.strict:
            raise self.fail(pos, what)
        if kind not in self._warned:
            self._warned.add(kind)
            self.warnings.append(f"non-canonical bencoding: {what} at byte {pos}")

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
            self.irregular(pos, "int", "non-canonical integer (leading zero or -0)")
        return int(text), end + 1

    def string(self, pos: int) -> tuple[bytes, int]:
        colon = self.data.find(b":", pos, pos + 21)
        if colon < 0:
            raise self.fail(pos, "malformed string length")
        text = self.data[pos:colon]
        if not text.isdigit() or not text.isascii():
            raise self.fail(pos, "malformed string length")
        if text[0:1] == b"0" and len(text) > 1:
            self.irregular(pos, "len", "non-canonical string length (leading zero)")
        length = int(text)
        start = colon + 1
        if length > self.end - start:
            raise self.fail(pos, f"string of {length} bytes runs past the end of the data")
        return self.data[start : start + length], start + length

    def value(self, pos: int, depth: int = 0) -> tuple[Any, int]:
        """The value at `pos` and the position after it."""
        if pos >= self.end:
            raise self.fail(pos, "unexpected end of data")
        self.count(pos)
        lead = self.data[pos]
        if lead == 0x69:  # i
            return self.integer(pos)
        if 0x30 <= lead <= 0x39:
            return self.string(pos)
        if lead == 0x6C:  # l
            items: list[Any] = []
            it = self.iter_list(pos, depth, counted=True)
            items.extend(it)
            return items, self.list_end
        if lead == 0x64:  # d
            result: dict[bytes, Any] = {}

            def store(key: bytes, at: int) -> int:
                result[key], after = self.value(at, depth + 1)
                return after

            return result, self.walk_dict(pos, depth, store, counted=True)
        raise self.fail(pos, f"unexpected byte {bytes([lead])!r}")

    def _open(self, pos: int, depth: int, lead: int, what: str, counted: bool) -> None:
        if pos >= self.end or self.data[pos] != lead:
            raise self.fail(pos, f"expected a {what}")
        if not counted:
            self.count(pos)
        self.check_depth(pos, depth)

    def check_depth(self, pos: int, depth: int) -> None:
        """Refuse a list or dictionary at `depth` beyond the limit."""
        if depth >= self.limits.max_depth:
            raise self.fail(pos, f"nesting deeper than {self.limits.max_depth} levels")

    def iter_list(self, pos: int, depth: int = 0, *, counted: bool = False) -> Iterator[Any]:
        """Each item of the list at `pos`, decoded one at a time; when the iterator is
        exhausted, `self.list_end` is the position after the list."""
        self._open(pos, depth, 0x6C, "list", counted)
        pos += 1
        data, end = self.data, self.end
        while True:
            if pos >= end:
                raise self.fail(pos, "unterminated list")
            if data[pos] == 0x65:
                self.list_end = pos + 1
                return
            item, pos = self.value(pos, depth + 1)
            yield item

    def walk_dict(
        self,
        pos: int,
        depth: int,
        visit: Callable[[bytes, int], int],
        *,
        counted: bool = False,
    ) -> int:
        """Call `visit(key, value_pos)` for each entry of the dictionary at `pos`; `visit`
        reads the value and returns the position after it. Returns the position after
        the dictionary.

        Sorted keys cannot repeat unseen, so keys are remembered (to refuse a duplicate)
        only once a dictionary turns out to be unsorted, in lenient mode.
        """
        self._open(pos, depth, 0x64, "dictionary", counted)
        data, end = self.data, self.end
        start = pos
        seen: set[bytes] | None = None
        previous: bytes | None = None
        pos += 1
        while True:
            if pos >= end:
                raise self.fail(pos, "unterminated dictionary")
            if data[pos] == 0x65:
                return pos + 1
            if not 0x30 <= data[pos] <= 0x39:
                raise self.fail(pos, "dictionary key is not a string")
            key_pos = pos
            key, pos = self.string(pos)
            if seen is None and previous is not None and key <= previous:
                if key == previous:
                    raise self.fail(key_pos, f"duplicate dictionary key {key[:40]!r}")
                self.irregular(key_pos, "order", f"unsorted dictionary key {key[:40]!r}")
                seen = self._keys(start, key_pos)
            if seen is not None:
                if key in seen:
                    raise self.fail(key_pos, f"duplicate dictionary key {key[:40]!r}")
                seen.add(key)
            previous = key
            pos = visit(key, pos)

    def _keys(self, start: int, stop: int) -> set[bytes]:
        """The keys of the (already decoded) dictionary entries between `start` and `stop`."""
        keys: set[bytes] = set()
        pos = start + 1
        while pos < stop:
            key, pos = self.string(pos)
            keys.add(key)
            pos = self.skip(pos)
        return keys

    def check(self, pos: int, depth: int = 0) -> int:
        """Validate the value at `pos` as `value` does, without keeping it (what a reader
        has no use for costs no memory); returns the position after it."""
        if pos >= self.end:
            raise self.fail(pos, "unexpected end of data")
        lead = self.data[pos]
        if lead == 0x6C:  # l
            self.count(pos)
            self._open(pos, depth, 0x6C, "list", True)
            pos += 1
            while True:
                if pos >= self.end:
                    raise self.fail(pos, "unterminated list")
                if self.data[pos] == 0x65:
                    return pos + 1
                pos = self.check(pos, depth + 1)
        if lead == 0x64:  # d
            self.count(pos)
            return self.walk_dict(
                pos, depth, lambda _k, at: self.check(at, depth + 1), counted=True
            )
        return self.value(pos, depth)[1]  # a string or an integer: small, or bounded by the data

    def skip(self, pos: int) -> int:
        """The position after the value at `pos`, which was already decoded once."""
        data = self.data
        depth = 0
        while True:
            lead = data[pos]
            if lead == 0x6C or lead == 0x64:  # l, d
                depth += 1
                pos += 1
                continue
            if lead == 0x65:  # e
                depth -= 1
                pos += 1
            elif lead == 0x69:  # i
                pos = data.index(b"e", pos) + 1
            else:
                colon = data.index(b":", pos)
                pos = colon + 1 + int(data[pos:colon])
            if depth == 0:
                return pos

    def finish(self, pos: int) -> None:
        """Check that the top-level value at 0 ended at `pos`, the end of the data."""
        if pos != self.end:
            self.irregular(pos, "trailing", f"{self.end - pos} bytes of trailing data")


def decode(
    data: bytes | bytearray | memoryview,
    *,
    limits: Limits = DEFAULT_LIMITS,
    strict: bool = True,
    warnings: list[str] | None = None,
) -> Any:
    """Decode one bencoded value that fills `data`; lenient decoding appends what it
    let pass to `warnings`."""
    value, _ = decode_with_spans(data, limits=limits, strict=strict, warnings=warnings)
    return value


def decode_with_spans(
    data: bytes | bytearray | memoryview,
    *,
    limits: Limits = DEFAULT_LIMITS,
    strict: bool = True,
    warnings: list[str] | None = None,
) -> tuple[Any, dict[bytes, tuple[int, int]]]:
    """Like `decode`, plus the byte span of each value of a top-level dictionary.

    `data[start:end]` of the `b"info"` span is the exact info dictionary that an
    infohash is computed over.
    """
    decoder = Decoder(data, limits=limits, strict=strict)
    spans: dict[bytes, tuple[int, int]] = {}
    if decoder.data[0] == 0x64:
        value: dict[bytes, Any] = {}

        def store(key: bytes, at: int) -> int:
            value[key], after = decoder.value(at, 1)
            spans[key] = (at, after)
            return after

        decoder.count(0)
        result: Any = value
        pos = decoder.walk_dict(0, 0, store, counted=True)
    else:
        result, pos = decoder.value(0, 0)
    decoder.finish(pos)
    if warnings is not None:
        warnings.extend(decoder.warnings)
    return result, spans
