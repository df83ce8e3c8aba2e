"""A small archive for the web tests: hostile strings in the catalogue, the index built."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from musicark.archive import Archive, init_archive
from musicark.catalog.importer import import_catalog
from musicark.catalog.synthetic import generate_catalog

XSS = "<script>window.__xss=1</script>\"'&"
RTL = "abc\u202edcba.mp3"
LONG = "Ω" * 10_000


def make_web_archive(root: Path) -> Archive:
    """400 tracks, the first three titled XSS, RTL and LONG; the import builds the index."""
    archive = init_archive(root / "archive")
    table = generate_catalog(400, seed=5)
    titles = table.column("title").to_pylist()
    titles[0], titles[1], titles[2] = XSS, RTL, LONG
    table = table.set_column(table.schema.get_field_index("title"), "title", pa.array(titles))
    path = root / "cat.parquet"
    pq.write_table(table, path)
    import_catalog(archive, [path])
    return archive
