"""Torrents from elsewhere: refuse what libtorrent refuses, read what it reads (checked
against real libtorrent), bounded reads of odd files, and memory on huge file lists."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import tracemalloc
from pathlib import Path
from typing import Any

import libtorrent as lt
import pytest

from musicark.errors import TorrentError
from musicark.torrent.bencode import encode
from musicark.torrent.metainfo import MAX_TORRENT_BYTES, load_torrent, parse_torrent

PIECE = 16384
ROOT = hashlib.sha256(b"some file").digest()  # any non-zero root: only loading is tested


def _lt(data: bytes) -> Any:
    return lt.torrent_info(data, {"max_buffer_size": 100_000_000, "max_decode_tokens": 10**7})


def _v1(length: int = 5, piece_length: int = PIECE, **top: object) -> bytes:
    info = {
        "name": "x",
        "piece length": piece_length,
        "length": length,
        "pieces": bytes(20) * max(1, -(-length // piece_length)),
    }
    return encode({"info": info, **top})


def _v2(leaf: dict[str, object], piece_length: int = PIECE) -> bytes:
    info = {"name": "x", "piece length": piece_length, "meta version": 2}
    info["file tree"] = {"a.flac": {"": leaf}, "b.flac": {"": {"length": 9, "pieces root": ROOT}}}
    return encode({"info": info})


REFUSED = {
    "v1-single-empty": (_v1(length=0), "no data"),
    "v1-files-empty": (
        encode(
            {
                "info": {
                    "name": "x",
                    "piece length": PIECE,
                    "pieces": b"",
                    "files": [{"length": 0, "path": ["a"]}, {"length": 0, "path": ["b"]}],
                }
            }
        ),
        "no data",
    ),
    "v2-empty": (
        encode(
            {
                "info": {
                    "name": "x",
                    "piece length": PIECE,
                    "meta version": 2,
                    "file tree": {"a": {"": {"length": 0}}},
                }
            }
        ),
        "no data",
    ),
    "v2-no-root": (_v2({"length": 100}), "pieces root"),
    "v2-zero-root": (_v2({"length": 100, "pieces root": bytes(32)}), "pieces root"),
    "v2-pad-attr": (_v2({"length": 100, "pieces root": ROOT, "attr": "p"}), "pad attribute"),
    "v2-piece-3x16k": (_v2({"length": 100, "pieces root": ROOT}, 3 * PIECE), "power of two"),
    "v2-piece-8k": (_v2({"length": 100, "pieces root": ROOT}, 8192), "power of two"),
    "v1-piece-2^29": (_v1(piece_length=2**29), "piece length"),
    "v1-piece-2^31": (_v1(piece_length=2**31), "piece length"),
    "v1-piece-2^62": (_v1(piece_length=2**62), "piece length"),
    "v1-piece-10^40-1": (_v1(piece_length=10**40 - 1), "piece length"),
}


@pytest.mark.parametrize(("data", "fragment"), REFUSED.values(), ids=REFUSED.keys())
def test_refuses_what_libtorrent_refuses(data: bytes, fragment: str) -> None:
    with pytest.raises(RuntimeError):
        _lt(data)
    with pytest.raises(TorrentError, match=fragment):
        load_torrent(data)


def test_largest_piece_libtorrent_loads_is_read() -> None:
    largest = 2**29 - PIECE
    _lt(_v1(piece_length=largest))
    assert load_torrent(_v1(piece_length=largest)).piece_length == largest


INFO = b"d6:lengthi5e4:name1:x12:piece lengthi16384e6:pieces20:" + bytes(20) + b"e"
UNSORTED_INFO = b"d4:name1:x6:lengthi5e12:piece lengthi16384e6:pieces20:" + bytes(20) + b"e"
LENIENT = {
    "unsorted-info": (b"d4:info" + UNSORTED_INFO + b"e", "unsorted dictionary key"),
    "unsorted-top": (b"d4:info" + INFO + b"8:announce9:http://t/e", "unsorted dictionary key"),
    "leading-zero": (b"d4:info" + INFO.replace(b"i5e", b"i05e") + b"e", "leading zero"),
    "minus-zero": (b"d4:info" + INFO + b"7:privatei-0ee", "-0"),
    "trailing": (b"d4:info" + INFO + b"e\n\n", "trailing data"),
    "url-list-int": (_v1(**{"url-list": ["http://a/", 5, ["x"], "http://b/"]}), "url-list"),
    "url-list-scalar": (_v1(**{"url-list": 5}), "url-list"),
    "announce-list-junk": (
        _v1(**{"announce-list": [["http://a/announce", 7], 3]}),
        "announce-list",
    ),
}


@pytest.mark.parametrize(("data", "fragment"), LENIENT.values(), ids=LENIENT.keys())
def test_reads_what_libtorrent_reads_with_a_warning(data: bytes, fragment: str) -> None:
    info = _lt(data)
    t = load_torrent(data)
    assert any(fragment in w for w in t.warnings), t.warnings
    # the infohash is over the info dictionary's bytes as stored, as libtorrent takes it
    assert t.info_hash_v1 == str(info.info_hashes().v1)
    assert t.info_hash_v1 == hashlib.sha1(t.info_bytes).hexdigest()
    seeds = [ws["url"] for ws in info.web_seeds()]
    assert list(t.web_seeds) == seeds
    trackers = [tr.url for tr in info.trackers()]
    assert [u for tier in t.trackers for u in tier] == trackers


def test_canonical_torrent_has_no_warnings() -> None:
    t = load_torrent(_v1(**{"url-list": ["http://a/"]}))
    assert t.warnings == ()


def test_duplicate_keys_stay_refused() -> None:
    # libtorrent takes the first of two values; another reader may take the last
    data = b"d4:info" + INFO.replace(b"6:lengthi5e", b"6:lengthi5e6:lengthi7e") + b"e"
    _lt(data)
    with pytest.raises(TorrentError, match="duplicate dictionary key"):
        load_torrent(data)
    unsorted_dup = b"d4:infod4:name1:x6:lengthi5e4:name1:y12:piece lengthi16384e6:pieces20:"
    with pytest.raises(TorrentError, match="duplicate dictionary key b'name'"):
        load_torrent(unsorted_dup + bytes(20) + b"ee")


def _refuses_quickly(path: Path, fragment: str) -> None:
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            load_torrent(path)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), f"loading {path} hangs"
    assert isinstance(outcome[0], TorrentError), outcome
    assert fragment in str(outcome[0]) and str(path) in str(outcome[0])


def test_devices_fifos_and_folders_are_named_not_read(tmp_path: Path) -> None:
    _refuses_quickly(Path("/dev/zero"), "is a character device")
    fifo = tmp_path / "pipe.torrent"
    os.mkfifo(fifo)
    _refuses_quickly(fifo, "is a FIFO")
    folder = tmp_path / "folder.torrent"
    folder.mkdir()
    _refuses_quickly(folder, "is a directory")
    huge = tmp_path / "huge.torrent"
    with huge.open("wb") as fh:  # sparse: a size to refuse, nothing to read
        fh.truncate(MAX_TORRENT_BYTES + 1)
    _refuses_quickly(huge, "too large")


def _many_files(count: int) -> bytes:
    files = [
        {
            "length": 3_000_000 + i,
            "path": [f"Artist {i // 1000:04d}", f"Album {i // 20:06d}", f"{i % 20:02d} Track.ogg"],
        }
        for i in range(count)
    ]
    pl = 16 * 2**20
    total = sum(int(f["length"]) for f in files)  # type: ignore[call-overload]
    info = {
        "name": "big",
        "piece length": pl,
        "files": files,
        "pieces": bytes(20) * -(-total // pl),
    }
    return encode({"info": info})


def test_memory_of_a_big_file_list_is_a_small_multiple_of_its_size() -> None:
    data = _many_files(5_000)
    parse_torrent(_many_files(2))  # one-time imports (numpy, for duplicates) are no torrent's
    tracemalloc.start()
    try:
        t = parse_torrent(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(t.files) == 5_000
    assert t.files[4_999].path == ("Artist 0004", "Album 000249", "19 Track.ogg")
    assert t.files[4_999].offset == sum(3_000_000 + i for i in range(4_999))
    assert peak < 3 * len(data), f"{peak} bytes to load {len(data)}"


def test_plain_entries_read_as_the_general_decoder_reads_them() -> None:
    plain = _many_files(300)
    general = plain.replace(b"d6:lengthi", b"d4:attr0:6:lengthi")  # no longer the plain form
    a, b = parse_torrent(plain), parse_torrent(general)
    assert [(f.path, f.length, f.offset) for f in a.files] == [
        (f.path, f.length, f.offset) for f in b.files
    ]
    assert a.info_hash_v1 == str(_lt(plain).info_hashes().v1) != b.info_hash_v1
    hostile = plain.replace(b"4:pathl11:Artist 0000", b"4:pathl2:..11:Artist 0000", 1)
    with pytest.raises(TorrentError, match=r"'\.\.' path component"):
        parse_torrent(hostile)


def test_unknown_bulk_is_checked_not_kept() -> None:
    # many tiny values under keys no reader uses: validated (a hostile one is still
    # refused) but never built, so memory stays a small multiple of the file
    junk = [b"%02d" % (i % 100) for i in range(20_000)]
    data = _v1(**{"x-junk": junk, "x-more": {"deep": [junk[:1000]] * 10}})
    tracemalloc.start()
    try:
        t = parse_torrent(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert t.total_size == 5 and t.info_hash_v1 == str(_lt(data).info_hashes().v1)
    assert peak < 3 * len(data), f"{peak} bytes to load {len(data)}"
    with pytest.raises(TorrentError, match="bencode"):
        parse_torrent(data.replace(b"6:x-junkl", b"6:x-junkli1x2e"))


@pytest.mark.slow
def test_memory_of_500k_files(tmp_path: Path) -> None:
    path = tmp_path / "big.torrent"
    path.write_bytes(_many_files(500_000))
    code = (
        "import resource, sys\n"
        "from musicark.torrent.metainfo import load_torrent\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "t = load_torrent(sys.argv[1])\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(len(t.files), (after - before) * 1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert int(out[0]) == 500_000
    assert int(out[1]) < 4 * path.stat().st_size, out
