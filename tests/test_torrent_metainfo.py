"""load_torrent on torrents libtorrent makes, and refusal of dangerous or broken ones."""

from __future__ import annotations

import hashlib
from pathlib import Path

import libtorrent as lt
import pytest

from musicark.errors import TorrentError
from musicark.torrent.bencode import decode, encode
from musicark.torrent.metainfo import load_torrent

FLAGS = {"v1": 64, "v2": 32, "hybrid": 0}


def _data(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "a").mkdir(parents=True)
    (root / "a" / "one.bin").write_bytes(bytes(range(256)) * 300)  # 76 800 bytes
    (root / "b.bin").write_bytes(b"x" * 40_000)
    (root / "empty.txt").write_bytes(b"")
    return root


def _lt_torrent(root: Path, fmt: str, piece_length: int = 32768) -> bytes:
    entries = sorted(lt.list_files(str(root)), key=lambda e: e.filename)
    ct = lt.create_torrent(entries, piece_length, FLAGS[fmt])
    ct.add_tracker("http://127.0.0.1:6969/announce")
    ct.add_url_seed("http://127.0.0.1:8080/seed/")
    lt.set_piece_hashes(ct, str(root.parent))
    return bytes(lt.bencode(ct.generate()))


@pytest.mark.parametrize("fmt", ["v1", "v2", "hybrid"])
def test_loads_libtorrent_torrents(tmp_path: Path, fmt: str) -> None:
    data = _lt_torrent(_data(tmp_path), fmt)
    t = load_torrent(data)
    info = lt.torrent_info(data)
    assert t.name == "data"
    assert t.version == fmt
    paths = {f.path_str: f for f in t.files}
    assert set(paths) == {"a/one.bin", "b.bin", "empty.txt"}
    assert paths["a/one.bin"].length == 76_800
    assert t.piece_length == 32768
    assert t.trackers == (("http://127.0.0.1:6969/announce",),)
    assert t.web_seeds == ("http://127.0.0.1:8080/seed/",)
    hashes = info.info_hashes()
    if fmt != "v2":
        assert t.info_hash_v1 == str(hashes.v1)
        assert len(t.pieces) == info.num_pieces()
    if fmt != "v1":
        assert t.info_hash_v2 == hashlib.sha256(t.info_bytes).hexdigest()
        assert t.info_hash_v2 == str(hashes.v2)
        # v2 files start on piece boundaries
        assert all(f.offset % t.piece_length == 0 for f in t.files)
        assert all(f.pieces_root for f in t.files if f.length)
    # offsets agree with libtorrent's file storage (padding files skipped)
    storage = info.layout()
    lt_offsets = {
        storage.file_path(i).split("/", 1)[1]: storage.file_offset(i)
        for i in range(storage.num_files())
        if not storage.file_flags(i) & lt.file_storage.flag_pad_file
    }
    assert {p: f.offset for p, f in paths.items()} == lt_offsets
    one = paths["a/one.bin"]
    assert one.first_piece == one.offset // 32768
    assert one.last_piece == (one.offset + one.length - 1) // 32768


def test_single_file_and_from_path(tmp_path: Path) -> None:
    f = tmp_path / "song.ogg"
    f.write_bytes(b"o" * 50_000)
    ct = lt.create_torrent(lt.list_files(str(f)), 16384, 64)
    lt.set_piece_hashes(ct, str(tmp_path))
    path = tmp_path / "song.torrent"
    path.write_bytes(bytes(lt.bencode(ct.generate())))
    t = load_torrent(path)
    assert t.single_file and t.files[0].path == ("song.ogg",)
    assert t.location(t.files[0], tmp_path) == f
    assert len(t.pieces) == 4 and t.pieces[0] == hashlib.sha1(b"o" * 16384).digest()


def _v1(files: list[dict[str, object]], **info: object) -> bytes:
    total = sum(int(f["length"]) for f in files)  # type: ignore[call-overload]
    body: dict[str, object] = {
        "name": "x",
        "piece length": 16384,
        "pieces": bytes(20) * max(1, -(-total // 16384)),
        "files": files,
    }
    body.update(info)
    return encode({"info": body})


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        (["..", "etc"], "'..' path component"),
        (["."], "'.' path component"),
        (["a", ""], "empty path component"),
        (["/etc/passwd"], "slash"),
        (["a\x00b"], "NUL"),
        (["C:", "x"], "drive-letter"),
        (["a\\b"], "slash"),
        ([], "non-empty list"),
    ],
)
def test_refuses_dangerous_paths(path: list[str], fragment: str) -> None:
    with pytest.raises(TorrentError, match=fragment):
        load_torrent(_v1([{"length": 5, "path": path}]))


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"i1e", "not a torrent"),
        (encode({"announce": "x"}), "no info"),
        (_v1([{"length": 5, "path": ["a"]}], pieces=bytes(40)), "needs 1"),
        (_v1([{"length": 5, "path": ["a"]}], pieces=bytes(21)), "multiple of 20"),
        (_v1([{"length": 5, "path": ["a"]}, {"length": 1, "path": ["a"]}]), "duplicate"),
        (_v1([{"length": 5, "path": ["a"], "attr": "l"}]), "symlink"),
        (_v1([{"length": -1, "path": ["a"]}]), "length"),
        (_v1([{"length": 5, "path": ["a"]}], name=".."), "info.name"),
        (encode({"info": {"name": "x", "piece length": 16384, "pieces": b""}}), "info.length"),
        (b"d4:infod4:name1:xee", "piece length"),
        (b"garbage", "unexpected byte"),
    ],
)
def test_refuses_broken(data: bytes, fragment: str) -> None:
    with pytest.raises(TorrentError, match=fragment):
        load_torrent(data)


def test_v2_piece_layer_must_hash_to_root(tmp_path: Path) -> None:
    data = _lt_torrent(_data(tmp_path), "v2", piece_length=16384)
    meta = decode(data)
    layers = meta[b"piece layers"]
    root = next(iter(layers))
    layers[root] = bytes(len(layers[root]))
    with pytest.raises(TorrentError, match="does not hash"):
        load_torrent(encode(meta))
    del layers[root]
    with pytest.raises(TorrentError, match="missing"):
        load_torrent(encode(meta))


def test_hybrid_lists_must_agree(tmp_path: Path) -> None:
    meta = decode(_lt_torrent(_data(tmp_path), "hybrid"))
    meta[b"info"][b"files"][0][b"length"] += 1
    with pytest.raises(TorrentError):
        load_torrent(encode(meta))


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(TorrentError, match="cannot read"):
        load_torrent(tmp_path / "missing.torrent")
