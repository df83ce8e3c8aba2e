"""Torrents users bring in numbers: one bad torrent among good ones, and file names the
file system cannot hold, through `verify`, `seed` and `torrents`."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import orjson
import pytest

from musicark.torrent.bencode import encode
from musicark.torrent.create import create_torrent

PIECE = 16384
LONG = "a" * 250 + " — very long title.flac"  # over ext4's 255 bytes
LONG_BYTES = f"{len(LONG.encode())} bytes"


def _album(root: Path, seed: int) -> Path:
    rng = random.Random(seed)
    for i, size in enumerate((40_000, 9_000)):
        path = root / f"{i:02d}.flac"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
    return root


def _long_name_torrent(path: Path, data: Path) -> None:
    """A torrent whose second file has a name over 255 bytes; its first file is in `data`."""
    body = b"y" * 1000
    (data / "Long").mkdir(parents=True, exist_ok=True)
    (data / "Long" / "ok.flac").write_bytes(body)
    info = {
        "name": "Long",
        "piece length": PIECE,
        "files": [{"length": 1000, "path": ["ok.flac"]}, {"length": 1000, "path": [LONG]}],
        "pieces": hashlib.sha1(body + body).digest(),
    }
    path.write_bytes(encode({"info": info}))


def _one_line_error(output: str, *fragments: str) -> None:
    assert "Traceback" not in output
    errors = [ln for ln in output.splitlines() if ln.startswith("musicark: error: ")]
    assert len(errors) == 1, output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def test_names_over_the_file_system_limit(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    torrent = tmp_path / "long.torrent"
    _long_name_torrent(torrent, data)
    for where in (data, data / "Long"):
        result = run("verify", torrent, "--data", where, check=False)
        assert result.exit_code == 1
        _one_line_error(result.output, str(torrent), "a" * 40, LONG_BYTES, "255")
    args = ["seed", "--torrent", torrent, "--data", data, "--listen", "127.0.0.1:0"]
    result = run(*args, "--seconds", "0.5", check=False)
    assert result.exit_code == 1
    _one_line_error(result.output, str(torrent), LONG_BYTES)
    result = run("torrents", "--torrent", torrent)  # listed, with a warning
    assert "Long" in result.output and "musicark: warning:" in result.output
    assert LONG_BYTES in result.output and "Traceback" not in result.output


@pytest.fixture
def folder(tmp_path: Path) -> tuple[Path, Path]:
    """A folder of torrents: two good ones with data, garbage, a FIFO-free hostile one,
    and one with a name too long to store."""
    meta, data = tmp_path / "torrents", tmp_path / "data"
    meta.mkdir()
    for name in ("A", "B"):
        root = _album(data / name, seed=ord(name))
        (meta / f"{name}.torrent").write_bytes(create_torrent(root, piece_size=PIECE).data)
    (meta / "garbage.torrent").write_bytes(b"<html>not a torrent</html>")
    hostile = {"name": "x", "piece length": PIECE, "pieces": bytes(20)}
    hostile["files"] = [{"length": 5, "path": ["..", "etc", "passwd"]}]
    (meta / "hostile.torrent").write_bytes(encode({"info": hostile}))
    _long_name_torrent(meta / "long.torrent", data)
    return meta, data


BAD = ("garbage.torrent", "hostile.torrent", "long.torrent")


def test_verify_a_folder_with_bad_torrents(run, folder: tuple[Path, Path]) -> None:  # type: ignore[no-untyped-def]
    meta, data = folder
    result = run("verify", "--metadata", meta, "--data", data, check=False)
    assert result.exit_code == 1
    assert "OK A [full]" in result.output and "OK B [full]" in result.output
    errors = [ln for ln in result.output.splitlines() if ln.startswith("musicark: error: ")]
    assert sorted(e.split(": ")[2].rsplit("/", 1)[1] for e in errors) == list(BAD)
    assert "Traceback" not in result.output
    out = orjson.loads(
        run("verify", "--metadata", meta, "--data", data, "--json", check=False).stdout
    )
    assert out["ok"] is False
    assert [t["torrent"] for t in out["torrents"]] == ["A", "B"]
    assert all(t["ok"] for t in out["torrents"])
    assert sorted(Path(f["torrent"]).name for f in out["failed"]) == list(BAD)


def test_seed_and_list_a_folder_with_bad_torrents(run, folder: tuple[Path, Path]) -> None:  # type: ignore[no-untyped-def]
    meta, data = folder
    args = ["seed", "--torrent", meta, "--data", data, "--listen", "127.0.0.1:0"]
    result = run(*args, "--seconds", "1", check=False)
    assert result.exit_code == 1
    assert "seeding 2 torrent(s)" in result.output
    assert "2 seeding" in result.output or "2 torrents" in result.output
    assert result.output.count("musicark: error: ") == 3 and "Traceback" not in result.output
    result = run("torrents", "--torrent", meta, check=False)
    assert result.exit_code == 1
    listed = [ln.split()[-1] for ln in result.output.splitlines() if "never scraped" in ln]
    assert listed == ["A", "B", "Long"]  # the long names are listed, with a warning
    assert result.output.count("musicark: error: ") == 2


def test_devices_and_fifos_given_as_torrents(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fifo = tmp_path / "pipe.torrent"
    os.mkfifo(fifo)
    data = tmp_path / "data"
    data.mkdir()
    for path, what in ((Path("/dev/zero"), "character device"), (fifo, "FIFO")):
        result = run("verify", path, "--data", data, check=False)
        assert result.exit_code == 1
        _one_line_error(result.output, str(path), what)
        args = ["seed", "--torrent", path, "--data", data, "--listen", "127.0.0.1:0"]
        result = run(*args, "--seconds", "0.2", check=False)
        assert result.exit_code == 1
        _one_line_error(result.output, str(path), what)


def test_lenient_torrents_are_verified_with_warnings(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    body = b"z" * 5000
    (tmp_path / "song.flac").write_bytes(body)
    info = (  # keys out of order: read as libtorrent reads it, infohash over these bytes
        b"d4:name9:song.flac6:lengthi5000e12:piece lengthi16384e6:pieces20:"
        + hashlib.sha1(body).digest()
        + b"e"
    )
    torrent = tmp_path / "song.torrent"
    torrent.write_bytes(b"d4:info" + info + b"8:url-listli5eee")
    result = run("verify", torrent, "--data", tmp_path)
    assert result.output.count("musicark: warning: ") == 2
    assert "unsorted dictionary key" in result.output and "url-list" in result.output
    assert "OK song.flac [full]" in result.output
    out = orjson.loads(run("verify", torrent, "--data", tmp_path, "--json").stdout)
    assert out["ok"] is True and len(out["warnings"]) == 2
    assert out["torrents"][0]["infohash"] == hashlib.sha1(info).hexdigest()
