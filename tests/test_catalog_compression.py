"""Every catalogue format × compression, both ways, checked on the bytes written."""

from __future__ import annotations

import gzip
import lzma
import sqlite3
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import zstandard

from musicark.archive import Archive
from musicark.catalog.export import export_catalog
from musicark.catalog.importer import import_catalog
from tests.catalog_data import dump_catalog, track, write_jsonl

MAGIC = {"zst": b"\x28\xb5\x2f\xfd", "gz": b"\x1f\x8b", "xz": b"\xfd7zXZ\x00"}
KINDS = ["", "gz", "xz", "zst"]


def compress(data: bytes, kind: str) -> bytes:
    if kind == "gz":
        return gzip.compress(data)
    if kind == "xz":
        return lzma.compress(data)
    if kind == "zst":
        return zstandard.ZstdCompressor().compress(data)
    return data


def decompress(data: bytes, kind: str) -> bytes:
    if kind == "gz":
        return gzip.decompress(data)
    if kind == "xz":
        return lzma.decompress(data)
    if kind == "zst":
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


def _suffix(kind: str) -> str:
    return f".{kind}" if kind else ""


def _check_magic(path: Path, kind: str) -> None:
    head = path.read_bytes()[:6]
    if kind:
        assert head.startswith(MAGIC[kind]), f"{path.name} is not {kind}: {head!r}"
    else:
        assert not any(head.startswith(m) for m in MAGIC.values())


@pytest.mark.parametrize("kind", KINDS)
def test_jsonl_import_every_compression(archive: Archive, tmp_path: Path, kind: str) -> None:
    rows = [track(i) for i in range(50)]
    plain = write_jsonl(tmp_path / "plain.jsonl", rows)
    src = tmp_path / f"cat.jsonl{_suffix(kind)}"
    src.write_bytes(compress(plain.read_bytes(), kind))
    summary = import_catalog(archive, [src])
    assert (summary.imported, summary.rejected) == (50, 0)


@pytest.mark.parametrize("kind", KINDS)
def test_musicbrainz_lines_import_every_compression(
    archive: Archive, tmp_path: Path, kind: str
) -> None:
    line = (
        b'{"id": "0f1d8a5e-0000-4000-8000-00000000000%d", "title": "Song %d", "length": 1000, '
        b'"isrcs": [], "artist-credit": [{"name": "A", "artist": {"id": "x", "name": "A"}}]}\n'
    )
    data = b"".join(line % (i, i) for i in range(5))
    src = tmp_path / f"recording{_suffix(kind)}"
    src.write_bytes(compress(data, kind))
    assert import_catalog(archive, [src]).imported == 5


@pytest.mark.parametrize("kind", KINDS)
def test_jsonl_export_every_compression(archive: Archive, tmp_path: Path, kind: str) -> None:
    import_catalog(archive, [write_jsonl(tmp_path / "in.jsonl", [track(i) for i in range(30)])])
    out = tmp_path / f"out.jsonl{_suffix(kind)}"
    assert export_catalog(archive, out) == 30
    _check_magic(out, kind)
    lines = decompress(out.read_bytes(), kind).splitlines()
    assert len(lines) == 30 and lines[0].startswith(b"{")
    assert not list(tmp_path.glob(".*partial*"))


@pytest.mark.parametrize("kind", KINDS)
def test_sqlite_export_every_compression(archive: Archive, tmp_path: Path, kind: str) -> None:
    import_catalog(archive, [write_jsonl(tmp_path / "in.jsonl", [track(i) for i in range(30)])])
    out = tmp_path / f"out.sqlite{_suffix(kind)}"
    assert export_catalog(archive, out) == 30
    _check_magic(out, kind)
    plain = tmp_path / "plain.sqlite"
    plain.write_bytes(decompress(out.read_bytes(), kind))
    assert plain.read_bytes().startswith(b"SQLite format 3\x00")
    conn = sqlite3.connect(plain)
    assert conn.execute("SELECT count(*) FROM tracks").fetchone() == (30,)
    conn.close()
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == sorted(
        ["in.jsonl", out.name, "plain.sqlite"]
    )


def test_parquet_export_is_parquet_and_outer_compression_is_refused(
    archive: Archive,
    run,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    import_catalog(archive, [write_jsonl(tmp_path / "in.jsonl", [track(i) for i in range(30)])])
    out = tmp_path / "out.parquet"
    export_catalog(archive, out)
    assert out.read_bytes()[:4] == b"PAR1" and out.read_bytes()[-4:] == b"PAR1"
    assert pq.ParquetFile(out).metadata.num_rows == 30
    for kind in ("gz", "xz", "zst"):
        bad = run("catalog", "export", tmp_path / f"out.parquet.{kind}", check=False)
        assert bad.exit_code == 2 and "compressed inside" in bad.output
        packed = tmp_path / f"in.parquet.{kind}"
        packed.write_bytes(compress(out.read_bytes(), kind))
        res = run("catalog", "import", packed, check=False)
        assert res.exit_code == 1 and len(res.output.strip().splitlines()) == 1
        assert f"{kind}-compressed Parquet" in res.output


@pytest.mark.parametrize("kind", KINDS)
def test_jsonl_round_trip_through_every_compression(
    archive: Archive, tmp_path: Path, kind: str
) -> None:
    from musicark.archive import init_archive

    import_catalog(archive, [write_jsonl(tmp_path / "in.jsonl", [track(i) for i in range(40)])])
    out = tmp_path / f"out.jsonl{_suffix(kind)}"
    export_catalog(archive, out)
    second = init_archive(tmp_path / "second")
    assert import_catalog(second, [out]).rejected == 0
    assert dump_catalog(second) == dump_catalog(archive)
