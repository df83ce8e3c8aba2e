"""Paths as the ledger keeps them: exact bytes as the key, one printable line for people."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from musicark.errors import StoreError
from musicark.store.blobs import is_sha256, relative_blob_path
from musicark.store.ledger import display, path_key

names = st.binary(min_size=1, max_size=60).filter(lambda b: b"/" not in b and b"\0" not in b)


@given(names)
def test_path_key_keeps_the_exact_bytes(name: bytes) -> None:
    path = os.path.join(b"/music", name)
    key = path_key(os.fsdecode(path))
    assert key == os.path.abspath(path)


@given(names)
def test_display_is_one_printable_line(name: bytes) -> None:
    text = display(os.path.join(b"/music", name))
    assert "\n" not in text and "\r" not in text
    assert text.isprintable()
    if name.isascii() and bytes(name).decode().isprintable():
        assert text == "/music/" + name.decode()


@given(st.binary(min_size=32, max_size=32))
def test_blob_paths_fan_out_by_the_hash(digest: bytes) -> None:
    sha = digest.hex()
    assert is_sha256(sha)
    rel = relative_blob_path(sha, 2)
    assert rel.parts == (sha[:2], sha[2:4], sha)


def test_blob_path_refuses_what_is_not_a_sha256() -> None:
    for bad in ("../../etc/passwd", "ABC", "g" * 64, "A" * 64):
        with pytest.raises(StoreError):
            relative_blob_path(bad)
