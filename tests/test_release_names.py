"""Release naming and folder cutting: pure functions, checked at a realistic scale."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicark.errors import UsageError
from musicark.release.candidates import Candidate, cut_folders
from musicark.release.names import (
    check_release_name,
    collection_name,
    extension,
    file_name,
    folder_name,
    slug,
)


@given(st.text(max_size=80), st.text(max_size=80), st.integers(1, 99_999_999))
@settings(max_examples=150, deadline=None)
def test_file_names_are_safe_ascii(artist: str, title: str, serial: int) -> None:
    name = file_name(serial, artist=artist, title=title, ext="ogg")
    sub, leaf = name.split("/")
    assert name.isascii() and len(name) < 120
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789-./")
    assert leaf.startswith(f"{serial:08d}") and leaf.endswith(".ogg")
    assert sub == f"{serial // 1000:05d}" and ".." not in name


def test_names_sort_alike_in_v1_and_v2_order() -> None:
    titles = ["a", "a b", "a-b", "ab", "", "Ünïcödé", "x" * 200, "!!!"]
    names = [
        file_name(s, artist=t, title=titles[s % len(titles)], ext="flac")
        for s, t in enumerate(titles * 300, start=1)
    ]
    assert len(set(names)) == len(names)
    by_string = sorted(names, key=lambda n: n.encode())
    by_parts = sorted(names, key=lambda n: tuple(p.encode() for p in n.split("/")))
    assert by_string == by_parts == names  # serial order, whichever rule a client uses


def test_slug_folder_and_collection() -> None:
    assert slug("Björk — Jóga (Remix)") == "bjork-joga-remix"
    assert slug("Straße Øresund") == "strasse-oresund"
    assert slug("!!!") == ""
    assert collection_name(None) == "unmatched"
    assert collection_name("Free Music Archive") == "free-music-archive"
    assert folder_name("2026a", "fma", 1, 10_000) == "2026a-fma-00000001-00010000"
    assert extension("opus", "ogg") == "opus" and extension(None, "flac") == "flac"
    assert extension("weird", None) == "bin"
    for bad in ("", "Big", "a b", "../x", "-a", "x" * 65):
        with pytest.raises(UsageError):
            check_release_name(bad)
    assert check_release_name("2026a.v1_final-2") == "2026a.v1_final-2"


def _c(i: int, size: int, collection: str = "demo") -> Candidate:
    return Candidate(
        sha256=f"{i:064x}",
        size=size,
        track_id=i,
        codec="vorbis",
        container="ogg",
        collection=collection,
    )


def test_cut_folders_respects_size_files_and_collections() -> None:
    items = [_c(i, 3_000_000 + (i % 7) * 100_000) for i in range(25_000)]
    items += [_c(10**6 + i, 1000, "other") for i in range(10)]
    folders = cut_folders(items, target_size=10_000_000_000, max_files=2_000)
    assert sum(len(f) for f in folders) == len(items)
    assert [c for f in folders for c in f] == items  # order kept
    for f in folders:
        assert len(f) <= 2_000 and sum(c.size for c in f) <= 10_000_000_000
        assert len({c.collection for c in f}) == 1
    assert folders[-1][0].collection == "other" and len(folders[-1]) == 10
    by_size = cut_folders(items[:100], target_size=10_000_000, max_files=10_000)
    assert all(sum(c.size for c in f) <= 10_000_000 for f in by_size) and len(by_size) > 30
    with pytest.raises(UsageError, match="smaller than one file"):
        cut_folders(items[:3], target_size=1_000, max_files=10)
