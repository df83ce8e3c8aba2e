"""A `catalog import` killed with SIGKILL mid-way resumes to the same catalogue."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from musicark.archive import init_archive, open_archive
from musicark.catalog.importer import import_catalog
from musicark.catalog.synthetic import generate_catalog
from tests.catalog_data import dump_catalog


def _committed_line(catalog: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True, timeout=0.1)
        row = conn.execute("SELECT max(done_line) FROM imports").fetchone()
        conn.close()
        return int(row[0] or 0)
    except sqlite3.Error:
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("bulk_min_rows", [1, 10**9], ids=["bulk", "upsert"])
def test_kill_mid_import_then_resume(tmp_path: Path, bulk_min_rows: int) -> None:
    src = tmp_path / "cat.parquet"
    pq.write_table(generate_catalog(40_000, seed=11), src)
    archive = init_archive(tmp_path / "ark")
    config = archive.root / "musicark.toml"
    text = config.read_text().replace("batch_rows = 200000", "batch_rows = 2000")
    config.write_text(text.replace("bulk_min_rows = 500000", f"bulk_min_rows = {bulk_min_rows}"))

    cmd = [sys.executable, "-m", "musicark", "catalog", "import", str(src)]
    proc = subprocess.Popen(cmd, env={**os.environ, "MUSICARK_ARCHIVE": str(archive.root)})
    deadline = time.monotonic() + 120
    while _committed_line(archive.catalog_path) < 6000:
        assert proc.poll() is None, "the import finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    archive = open_archive(archive.root)
    summary = import_catalog(archive, [src])
    assert summary.imported + summary.unchanged < 40_000  # resumed, not restarted
    fresh = init_archive(tmp_path / "fresh")
    import_catalog(fresh, [src])
    assert dump_catalog(archive) == dump_catalog(fresh)


@pytest.mark.slow
def test_kill_mid_bulk_load_of_several_files_then_resume(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    files = []
    for k in range(3):  # ids apart per file, as a catalogue split in parts has them
        t = generate_catalog(15_000, seed=20 + k)
        ids = pc.binary_join_element_wise(pa.scalar(f"p{k}-"), t["id"], "")
        t = t.set_column(t.schema.get_field_index("id"), "id", ids)
        pq.write_table(t, tmp_path / f"part{k}.parquet")
        files.append(tmp_path / f"part{k}.parquet")
    archive = init_archive(tmp_path / "ark")
    config = archive.root / "musicark.toml"
    text = config.read_text().replace("batch_rows = 200000", "batch_rows = 1500")
    config.write_text(text.replace("bulk_min_rows = 500000", "bulk_min_rows = 1"))

    cmd = [sys.executable, "-m", "musicark", "catalog", "import", *map(str, files)]
    proc = subprocess.Popen(cmd, env={**os.environ, "MUSICARK_ARCHIVE": str(archive.root)})
    deadline = time.monotonic() + 180
    while _rows(archive.catalog_path) < 2:  # the second file under way
        assert proc.poll() is None, "the import finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    archive = open_archive(archive.root)
    summary = import_catalog(archive, files)
    assert summary.imported + summary.unchanged < 45_000  # resumed, not restarted
    fresh = init_archive(tmp_path / "fresh")
    for f in files:
        import_catalog(fresh, [f])
    assert dump_catalog(archive) == dump_catalog(fresh)


def _rows(catalog: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True, timeout=0.1)
        row = conn.execute("SELECT count(*) FROM imports WHERE done_line > 0").fetchone()
        conn.close()
        return int(row[0])
    except sqlite3.Error:
        return 0
