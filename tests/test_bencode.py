"""Bencoding: canonical round-trips, strict decoding and limits against bombs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicark.errors import TorrentError
from musicark.torrent.bencode import Encoded, Limits, decode, decode_with_spans, encode

values = st.recursive(
    st.integers(min_value=-(10**30), max_value=10**30) | st.binary(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.binary(max_size=12), inner, max_size=6)
    ),
    max_leaves=40,
)


@given(values)
@settings(max_examples=150, deadline=None)
def test_round_trip(value: object) -> None:
    data = encode(value)  # type: ignore[arg-type]
    assert decode(data) == value
    assert encode(decode(data)) == data


@given(st.binary(max_size=200))
@settings(max_examples=150, deadline=None)
def test_arbitrary_bytes_decode_or_raise_torrent_error(data: bytes) -> None:
    try:
        value = decode(data)
    except TorrentError:
        return
    assert encode(value) == data  # whatever is accepted is canonical


@given(values, values)
@settings(max_examples=100, deadline=None)
def test_an_encoded_value_is_placed_as_it_is(inner: object, other: object) -> None:
    whole = {b"info": inner, b"other": [other]}
    spliced = {b"info": Encoded(encode(inner)), b"other": [other]}  # type: ignore[arg-type]
    assert encode(spliced) == encode(whole)  # type: ignore[arg-type]


def test_known_encodings() -> None:
    assert encode({"b": 1, "a": [b"x", "é", -3]}) == b"d1:al1:x2:\xc3\xa9i-3ee1:bi1ee"
    assert encode(0) == b"i0e"
    assert decode(b"d3:cow3:moo4:spam4:eggse") == {b"cow": b"moo", b"spam": b"eggs"}


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"i03e", "non-canonical integer"),
        (b"i-0e", "non-canonical integer"),
        (b"ie", "malformed integer"),
        (b"i1x2e", "malformed integer"),
        (b"03:abc", "leading zero"),
        (b"d1:bi1e1:ai2ee", "unsorted dictionary key"),
        (b"d1:ai1e1:ai2ee", "duplicate dictionary key"),
        (b"di1ei2ee", "key is not a string"),
        (b"i1ei2e", "trailing data"),
        (b"l", "unterminated list"),
        (b"d1:a", "unexpected end"),
        (b"5:abc", "runs past the end"),
        (b"x", "unexpected byte"),
        (b"", "empty data"),
        (b"i" + b"9" * 100 + b"e", "longer than"),
    ],
)
def test_rejects_malformed(data: bytes, fragment: str) -> None:
    with pytest.raises(TorrentError, match=fragment):
        decode(data)


def test_string_length_bomb_allocates_nothing() -> None:
    with pytest.raises(TorrentError, match="runs past the end"):
        decode(b"99999999999999999999:abc")


def test_depth_and_item_limits() -> None:
    with pytest.raises(TorrentError, match="nesting deeper"):
        decode(b"l" * 100 + b"e" * 100)
    decode(b"l" * 30 + b"e" * 30)
    with pytest.raises(TorrentError, match="more than 100 values"):
        decode(b"l" + b"i1e" * 200 + b"e", limits=Limits(max_items=100))
    with pytest.raises(TorrentError, match="over the limit"):
        decode(b"i1e", limits=Limits(max_size=2))


def test_encode_refuses_unencodable() -> None:
    with pytest.raises(TorrentError):
        encode(True)
    with pytest.raises(TorrentError):
        encode({1: 2})  # type: ignore[dict-item]
    with pytest.raises(TorrentError):
        encode(1.5)  # type: ignore[arg-type]


def test_spans_of_top_level_values() -> None:
    data = encode({"announce": "http://x", "info": {"name": "a", "length": 3}})
    value, spans = decode_with_spans(data)
    start, end = spans[b"info"]
    assert decode(data[start:end]) == value[b"info"]
