"""create_torrent: byte-identical to libtorrent's info dict, mktorrent's pieces, loadable."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import libtorrent as lt
import numpy as np
import pytest

from musicark.errors import TorrentError
from musicark.torrent.bencode import decode
from musicark.torrent.create import _layout, create_torrent, list_files, sort_files
from musicark.torrent.hashing import hash_ranges, hash_runs
from musicark.torrent.magnet import magnet_link
from musicark.torrent.metainfo import load_torrent
from musicark.torrent.piece_size import auto_piece_size, estimate_torrent_bytes, padding

FLAGS = {"v1": 64, "v2": 32, "hybrid": 0}


def _tree(root: Path, seed: int = 3, *, tricky: bool = False) -> Path:
    """Files of awkward sizes; `tricky` adds names whose v1 and v2 orders differ."""
    rng = np.random.default_rng(seed)
    sizes = {
        "a/one.ogg": 100_000,
        "ab/two.ogg": 16_384,
        "a/sub/three.opus": 70_001,
        "b.flac": 1,
        "empty.txt": 0,
        "cd/é.mp3": 300_000,
        "z.bin": 32_768 * 3,
    }
    if tricky:
        sizes["a-b/four.ogg"] = 20_000
        sizes["c d/five.ogg"] = 40_000
    for rel, n in sizes.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
    return root


def _libtorrent(root: Path, fmt: str, piece: int) -> bytes:
    entries = sorted(lt.list_files(str(root)), key=lambda e: e.filename.encode())
    # (libtorrent lays out files in the order given; for names in this tree v1 and v2
    # orders agree)
    ct = lt.create_torrent(entries, piece, FLAGS[fmt])
    lt.set_piece_hashes(ct, str(root.parent))
    return bytes(lt.bencode(ct.generate()))


@pytest.mark.parametrize("fmt", ["v1", "v2", "hybrid"])
@pytest.mark.parametrize("piece", [16384, 65536])
def test_info_dict_identical_to_libtorrent(tmp_path: Path, fmt: str, piece: int) -> None:
    root = _tree(tmp_path / "album")
    made = create_torrent(root, format=fmt, piece_size=piece)
    theirs = decode(_libtorrent(root, fmt, piece))
    ours = decode(made.data)
    assert ours[b"info"] == theirs[b"info"]
    assert ours.get(b"piece layers") == theirs.get(b"piece layers")
    info = lt.torrent_info(made.data)
    if fmt != "v2":
        assert made.info_hash_v1 == str(info.info_hashes().v1)
    if fmt != "v1":
        assert made.info_hash_v2 == str(info.info_hashes().v2)
    t = load_torrent(made.data)
    assert t.version == fmt and len(t.files) == 7
    assert b"created by" in ours
    assert made.padding == (padding([f.length for f in t.files], piece) if fmt != "v1" else 0)


@pytest.mark.parametrize("fmt", ["v1", "v2", "hybrid"])
def test_single_file(tmp_path: Path, fmt: str) -> None:
    f = tmp_path / "song.ogg"
    f.write_bytes(os.urandom(50_000))
    made = create_torrent(f, format=fmt, piece_size=16384)
    fs = lt.list_files(str(f))
    ct = lt.create_torrent(fs, 16384, FLAGS[fmt])
    lt.set_piece_hashes(ct, str(tmp_path))
    assert decode(made.data)[b"info"] == decode(bytes(lt.bencode(ct.generate())))[b"info"]
    assert load_torrent(made.data).single_file


@pytest.mark.parametrize("fmt", ["v1", "v2", "hybrid"])
def test_names_ordered_differently_by_v1_and_v2(tmp_path: Path, fmt: str) -> None:
    root = _tree(tmp_path / "album", tricky=True)
    made = create_torrent(root, format=fmt, piece_size=16384)
    lt.torrent_info(made.data)  # libtorrent refuses a hybrid with lists in different orders
    paths = load_torrent(made.data).file_paths()
    if fmt == "v1":
        assert paths.index("a-b/four.ogg") < paths.index("a/one.ogg")
    else:
        assert paths.index("a-b/four.ogg") > paths.index("a/sub/three.opus")


def test_pieces_identical_to_mktorrent(tmp_path: Path) -> None:
    root = _tree(tmp_path / "album", tricky=True)
    out = tmp_path / "mk.torrent"
    subprocess.run(
        [
            "mktorrent",
            "-d",
            "-l",
            "15",
            "-a",
            "http://127.0.0.1:1/announce",
            "-o",
            str(out),
            str(root),
        ],
        check=True,
        capture_output=True,
    )
    mk = load_torrent(out)
    ours = load_torrent(
        create_torrent(root, piece_size=32768, trackers=["http://127.0.0.1:1/announce"]).data
    )
    assert ours.pieces == mk.pieces
    assert ours.file_paths() == mk.file_paths()
    assert ours.info_hash_v1 == mk.info_hash_v1  # same keys, same order: same infohash


def test_deterministic_and_minimal(tmp_path: Path) -> None:
    root = _tree(tmp_path / "album")
    a = create_torrent(root, format="hybrid", piece_size=16384, trackers=["udp://127.0.0.1:9/"])
    time.sleep(1.1)
    os.utime(root / "b.flac", (1, 1))
    b = create_torrent(root, format="hybrid", piece_size=16384, trackers=["udp://127.0.0.1:9/"])
    assert a.data == b.data
    meta = decode(a.data)
    assert b"creation date" not in meta and b"private" not in meta[b"info"]
    assert meta[b"announce"] == b"udp://127.0.0.1:9/" and b"announce-list" not in meta
    private = decode(create_torrent(root, piece_size=16384, private=True).data)
    assert private[b"info"][b"private"] == 1


def test_trackers_web_seeds_magnet(tmp_path: Path) -> None:
    root = _tree(tmp_path / "album")
    trackers = ["http://127.0.0.1:6969/announce", "udp://127.0.0.1:6970"]
    seeds = ["http://127.0.0.1:8080/files/"]
    made = create_torrent(
        root, format="hybrid", piece_size=16384, trackers=trackers, web_seeds=seeds
    )
    t = load_torrent(made.data)
    assert t.trackers == ((trackers[0],), (trackers[1],))
    assert t.web_seeds == tuple(seeds)
    link = magnet_link(
        name=t.name, info_hash_v1=t.info_hash_v1, info_hash_v2=t.info_hash_v2, trackers=trackers
    )
    params = lt.parse_magnet_uri(link)
    assert str(params.info_hashes.v1) == t.info_hash_v1
    assert str(params.info_hashes.v2) == t.info_hash_v2
    assert params.name == "album" and list(params.trackers) == trackers


def test_worker_threads_and_processes_give_the_same_hashes(tmp_path: Path) -> None:
    root = _tree(tmp_path / "album")
    for fmt in ("v1", "hybrid"):
        plan = _layout(sort_files(list_files(root), format=fmt), 16384, fmt == "hybrid")
        one = list(hash_ranges(plan, jobs=1, task_bytes=16384 * 3))
        assert len(one) > 4
        assert [r[:2] for r in one] == [
            (a, min(a + 3, plan.num_pieces)) for a in range(0, plan.num_pieces, 3)
        ]
        runs = [(r[0], r[1]) for r in one]
        for kind in ("threads", "processes"):
            assert list(hash_runs(plan, runs, jobs=2, kind=kind)) == one


def test_a_file_that_shrinks_under_a_worker_process_is_a_clear_error(tmp_path: Path) -> None:
    root = _tree(tmp_path / "album")
    plan = _layout(sort_files(list_files(root), format="hybrid"), 16384, True)
    (root / "cd" / "é.mp3").write_bytes(b"short")
    runs = [(a, min(a + 2, plan.num_pieces)) for a in range(0, plan.num_pieces, 2)]
    with pytest.raises(TorrentError, match=r"é\.mp3 is shorter than when it was listed"):
        list(hash_runs(plan, runs, jobs=2, kind="processes"))


@pytest.mark.parametrize("fmt", ["v1", "v2", "hybrid"])
def test_libtorrent_finds_every_piece(tmp_path: Path, fmt: str) -> None:
    root = _tree(tmp_path / "data" / "album")
    made = create_torrent(root, format=fmt, piece_size=16384)
    ses = lt.session(
        {
            "listen_interfaces": "127.0.0.1:0",
            "enable_dht": False,
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
        }
    )
    handle = ses.add_torrent(
        {"ti": lt.torrent_info(made.data), "save_path": str(tmp_path / "data")}
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status = handle.status()
        if status.state == lt.torrent_status.seeding:
            break
        time.sleep(0.05)
    assert status.state == lt.torrent_status.seeding
    assert status.num_pieces == made.num_pieces
    # a changed byte is found
    ses.remove_torrent(handle)
    p = root / "a" / "one.ogg"
    data = bytearray(p.read_bytes())
    data[5] ^= 1
    p.write_bytes(bytes(data))
    handle = ses.add_torrent(
        {"ti": lt.torrent_info(made.data), "save_path": str(tmp_path / "data")}
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status = handle.status()
        if status.state in (lt.torrent_status.downloading, lt.torrent_status.seeding):
            break
        time.sleep(0.05)
    assert status.state != lt.torrent_status.seeding
    assert status.num_pieces < made.num_pieces


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"format": "v3"}, "unknown torrent format"),
        ({"piece_size": 30000}, "power of two"),
        ({"piece_size": 8192}, "power of two"),
        ({"trackers": ["not a url"]}, "tracker 'not a url' is not a URL"),
        ({"web_seeds": ["ftp://x/y"]}, "web seed"),
        ({"web_seeds": ["http:///nohost"]}, "web seed"),
    ],
)
def test_refuses_bad_options(tmp_path: Path, kwargs: dict[str, object], fragment: str) -> None:
    root = _tree(tmp_path / "album")
    with pytest.raises(TorrentError, match=fragment):
        create_torrent(root, **kwargs)  # type: ignore[arg-type]


def test_refuses_bad_folders(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(TorrentError, match="holds no files"):
        create_torrent(tmp_path / "empty")
    with pytest.raises(TorrentError, match="no such file"):
        create_torrent(tmp_path / "missing")
    (tmp_path / "links").mkdir()
    (tmp_path / "links" / "x").symlink_to("/etc/passwd")
    with pytest.raises(TorrentError, match="symbolic link"):
        create_torrent(tmp_path / "links")
    (tmp_path / "zero").mkdir()
    (tmp_path / "zero" / "a").write_bytes(b"")
    with pytest.raises(TorrentError, match="empty"):
        create_torrent(tmp_path / "zero")


def test_auto_piece_size_limits() -> None:
    rng = np.random.default_rng(1)
    # 10 000 music files, ~100 GB
    sizes = [int(s) for s in rng.lognormal(np.log(10e6), 0.5, 10_000)]
    for fmt in ("v1", "v2", "hybrid"):
        piece = auto_piece_size(sizes, format=fmt, path_bytes=40 * len(sizes))
        assert estimate_torrent_bytes(sizes, 40 * len(sizes), piece, format=fmt) <= 4_000_000
        assert piece & (piece - 1) == 0
    # smaller releases: hybrid padding stays under 5 %
    small = sizes[:2000]
    piece = auto_piece_size(small, format="hybrid")
    assert padding(small, piece) <= 0.05 * sum(small)
    assert auto_piece_size(small, format="hybrid") == piece  # stable
    assert auto_piece_size([1000], format="v1") == 16384


@pytest.mark.parametrize("fmt", ["v1", "v2", "hybrid"])
def test_size_estimate_is_an_upper_bound(tmp_path: Path, fmt: str) -> None:
    root = _tree(tmp_path / "album", tricky=True)
    files = list_files(root)
    sizes = [f.length for f in files]
    path_bytes = sum(len("/".join(f.path).encode()) for f in files)
    for piece in (16384, 65536):
        made = create_torrent(root, format=fmt, piece_size=piece, trackers=["http://127.0.0.1:1/a"])
        estimate = estimate_torrent_bytes(sizes, path_bytes, piece, format=fmt)
        assert len(made.data) <= estimate <= 4 * len(made.data) + 2048
