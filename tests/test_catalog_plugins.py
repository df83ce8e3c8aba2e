"""A new catalogue format is one module registered through the format protocol."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from musicark.archive import Archive
from musicark.catalog.formats import FORMATS, format_names, get_format
from musicark.catalog.formats import base as format_base
from musicark.catalog.importer import import_catalog
from musicark.errors import UsageError

# The whole of a toy format: tab-separated values with a `#tsv` first line.
TOY_MODULE = """
from musicark.catalog.formats.base import estimate_by_size, register_format
from musicark.catalog.formats.compression import bounded_lines, open_decompressed
from musicark.catalog.formats.readers import chunked


class TsvFormat:
    name = "tsv"
    summary = "tab-separated id, title, isrc after a #tsv line"
    source = "toy"

    def sniff(self, sample):
        return 100 if sample.head.startswith(b"#tsv\\n") else 0

    def read(self, path, options):
        def parse(raw):
            fields = raw.decode("utf-8").split("\\t")
            return dict(zip(("id", "title", "isrc"), fields))

        with open_decompressed(path) as stream:
            lines = ((n, line) for n, line in bounded_lines(stream, options.max_line_bytes)
                     if n > 1 and line != b"")
            yield from chunked(lines, parse, options)

    def estimate_rows(self, path):
        return estimate_by_size(path, 30)


FORMAT = TsvFormat()
"""


@pytest.fixture
def toy_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "plugin"
    folder.mkdir()
    (folder / "toy_tsv.py").write_text(TOY_MODULE)
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    FORMATS.unregister("tsv")
    sys.modules.pop("toy_tsv", None)


def _tsv(path: Path, n: int) -> Path:
    rows = [f"t{i}\tSong {i}\tUSABC{i:07d}" for i in range(n)]
    path.write_text("#tsv\n" + "\n".join(rows) + "\nbad\n")
    return path


def test_a_registered_module_adds_a_format(
    archive: Archive, toy_module: Path, tmp_path: Path
) -> None:
    import toy_tsv  # type: ignore[import-not-found]

    format_base.register_format(toy_tsv.FORMAT)
    assert "tsv" in format_names()
    src = _tsv(tmp_path / "cat.txt", 30)
    summary = import_catalog(archive, [src])  # detected by its sniff
    assert (summary.imported, summary.rejected, summary.files[0].format) == (30, 1, "tsv")
    conn = archive.connect_catalog(readonly=True)
    assert conn.execute("SELECT name FROM sources").fetchall() == [("toy",)]
    assert conn.execute("SELECT count(*) FROM tracks WHERE isrc LIKE 'USABC%'").fetchone() == (30,)
    conn.close()


def test_a_plugin_format_is_read_in_the_staging_process(
    archive: Archive, toy_module: Path, tmp_path: Path
) -> None:
    import toy_tsv  # type: ignore[import-not-found]

    format_base.register_format(toy_tsv.FORMAT)
    config = archive.root / "musicark.toml"
    config.write_text(config.read_text().replace("batch_rows = 200000", "batch_rows = 100"))
    from musicark.archive import open_archive

    src = _tsv(tmp_path / "big.tsv", 1000)  # estimate > 2 batches: a staging process reads
    summary = import_catalog(open_archive(archive.root), [src], format="tsv")
    assert (summary.imported, summary.rejected) == (1000, 1)


def test_an_entry_point_adds_a_format(
    archive: Archive,
    run,
    toy_module: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    info = toy_module / "toy_tsv-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-tsv\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[musicark.formats]\ntsv = toy_tsv:FORMAT\n")
    monkeypatch.setattr(format_base, "_plugins_loaded", False)
    assert "tsv" in format_names()
    assert get_format("tsv").summary.startswith("tab-separated")
    out = run("catalog", "import", _tsv(tmp_path / "cat.tsv", 5)).output
    assert "(tsv): 5 imported" in out and "1 rejected" in out


def test_unknown_format_lists_the_registered_ones(archive: Archive, tmp_path: Path) -> None:
    src = tmp_path / "x.jsonl"
    src.write_text('{"id": "1", "title": "a"}\n')
    with pytest.raises(UsageError, match=r"unknown catalogue format 'nope' \(one of: parquet"):
        import_catalog(archive, [src], format="nope")


def test_builtin_formats_follow_the_protocol() -> None:
    assert format_names()[:4] == ("parquet", "musicbrainz", "jsonl", "csv")
    for name in format_names():
        fmt = get_format(name)
        assert isinstance(fmt, format_base.CatalogFormat) and fmt.summary
