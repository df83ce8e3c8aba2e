"""`musicark verify` through the CLI: reports, exit status, and hostile input."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import orjson
import pytest

from musicark.torrent.bencode import encode
from musicark.torrent.create import create_torrent

PIECE = 32 * 1024


def make_data(root: Path, seed: int = 5) -> Path:
    rng = random.Random(seed)
    for i, size in enumerate((70_000, 9_000, 130_000)):
        path = root / f"cd{i % 2}" / f"{i:02d}.opus"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
    return root


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def torrent(tmp_path: Path) -> tuple[Path, Path]:
    root = make_data(tmp_path / "downloads" / "Album")
    path = tmp_path / "album.torrent"
    path.write_bytes(create_torrent(root, format="hybrid", piece_size=PIECE).data)
    return path, root


def test_verify_ok_and_corrupt(run, torrent: tuple[Path, Path]) -> None:  # type: ignore[no-untyped-def]
    path, root = torrent
    result = run("verify", path, "--data", root.parent)
    assert result.output.startswith("OK Album [full]")
    before = snapshot(root)
    victim = root / "cd0" / "02.opus"
    raw = bytearray(victim.read_bytes())
    raw[2 * PIECE + 7] ^= 0x80
    victim.write_bytes(bytes(raw))
    result = run("verify", path, "--data", root, check=False)
    assert result.exit_code == 1
    lines = [ln for ln in result.output.splitlines() if ln.startswith("  ")]
    assert len(lines) == 1 and "corrupt" in lines[0] and "cd0/02.opus" in lines[0]
    # a hybrid torrent pads files to pieces: 00.opus takes 3 pieces, 02.opus starts at piece 3
    assert lines[0].endswith("(failing pieces 5)")
    data = orjson.loads(run("verify", path, "--data", root, "--json", check=False).output)
    assert data["ok"] is False
    bad = [f for f in data["torrents"][0]["files"] if f["status"] != "ok"]
    assert bad == [
        {
            "path": "cd0/02.opus",
            "status": "corrupt",
            "size": 130_000,
            "expected_size": 130_000,
            "bad_pieces": [5],
            "reason": "pieces fail",
        }
    ]
    after = snapshot(root)
    assert set(after) == set(before)  # verify never writes into the data folder


def test_verify_partial_download_and_levels(run, torrent: tuple[Path, Path]) -> None:  # type: ignore[no-untyped-def]
    path, root = torrent
    (root / "cd1" / "01.opus").unlink()
    (root / "notes.txt").write_text("hello")
    for level in ("presence", "size", "full"):
        result = run("verify", path, "--data", root, "--level", level, check=False)
        assert result.exit_code == 1
        assert "missing    cd1/01.opus" in result.output
        assert "unexpected notes.txt" in result.output
        assert "2 ok" in result.output


def test_verify_metadata_folder(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    meta = tmp_path / "meta"
    meta.mkdir()
    data = tmp_path / "data"
    for name in ("A", "B"):
        root = make_data(tmp_path / "src" / name, seed=ord(name))
        (meta / f"{name}.torrent").write_bytes(create_torrent(root, piece_size=PIECE).data)
    os.rename(tmp_path / "src" / "A", data.mkdir() or data / "A")
    result = run("verify", "--metadata", meta, "--data", data)
    assert "OK A [full]" in result.output
    assert "1 torrent(s) have no data" in result.output
    out = orjson.loads(run("verify", "--metadata", meta, "--data", data, "--json").output)
    assert out["ok"] is True and out["absent"] == ["B"]


def _info(files: list[dict[str, object]]) -> bytes:
    total = sum(int(f["length"]) for f in files)  # type: ignore[call-overload]
    pieces = b"\0" * 20 * max(1, -(-total // PIECE))
    return encode({"info": {"name": "x", "piece length": PIECE, "pieces": pieces, "files": files}})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not bencode", "torrent"),
        (b"l" * 100_000 + b"e" * 100_000, "nest"),
        (b"d4:infod4:name999999999999:xee", "past the end"),
        (_info([{"length": 5, "path": ["..", "etc", "passwd"]}]), "'..'"),
        (_info([{"length": 5, "path": ["/etc/passwd"]}]), "slash"),
        (_info([{"length": 5, "path": ["a\x00b"]}]), "NUL"),
        (_info([{"length": 5, "path": []}]), "path"),
    ],
    ids=["not-bencode", "deep-nesting", "huge-length", "dotdot", "absolute", "nul", "empty-path"],
)
def test_hostile_torrents_are_one_line_errors(  # type: ignore[no-untyped-def]
    run, tmp_path: Path, content: bytes, message: str
) -> None:
    bad = tmp_path / "bad.torrent"
    bad.write_bytes(content)
    data = tmp_path / "data"
    data.mkdir()
    result = run("verify", bad, "--data", data, check=False)
    assert result.exit_code == 1
    assert result.output.startswith("musicark: error: ")
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert list(tmp_path.parent.rglob("passwd")) == []
    assert list(data.iterdir()) == []


def test_usage_errors(run, torrent: tuple[Path, Path], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path, _ = torrent
    result = run("verify", path, check=False)
    assert result.exit_code == 2 and "--data" in result.output
    result = run("verify", path, "--data", tmp_path / "nowhere", check=False)
    assert result.exit_code == 2 and "does not exist" in result.output
    result = run("verify", check=False)  # an archive without releases
    assert result.exit_code == 1 and "no release torrents" in result.output
