"""Catalogue import speed: musicark from Parquet vs the sqlite3 shell's `.import` of CSV.

Generates N synthetic tracks (Zipf popularity, realistic names, ISRCs) as Parquet and
as CSV, then in the same run:

* musicark: `import_catalog` of the Parquet file into a new archive, indexes included;
* baseline: `sqlite3` shell `.import` of the CSV into one table of the same columns,
  then the same indexes (unique id, source + external id, ISRC, album).

Prints wall times, rows/s, the ratio, musicark's peak memory, 256 M extrapolated, and the
load average before and after (the machine may be shared: compare ratios, not seconds).

    .venv/bin/python benchmarks/bench_import.py --n 1000000
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from musicark.catalog.synthetic import generate_catalog

BASELINE_INDEXES = (
    "CREATE UNIQUE INDEX t_id ON tracks(source, id)",
    "CREATE INDEX t_isrc ON tracks(isrc)",
    "CREATE INDEX t_album ON tracks(album_id)",
)


def write_csv(table: pa.Table, path: Path) -> None:
    """The table as CSV, nested values as JSON text, a batch at a time (bounded memory)."""
    nested = [
        f.name for f in table.schema if pa.types.is_list(f.type) or pa.types.is_struct(f.type)
    ]
    writer = None
    for batch in table.to_batches(max_chunksize=200_000):
        part = pa.Table.from_batches([batch])
        for name in nested:
            values = [
                None if v is None else orjson.dumps(v).decode() for v in part[name].to_pylist()
            ]
            part = part.set_column(
                part.schema.get_field_index(name), name, pa.array(values, pa.string())
            )
        if writer is None:
            writer = pacsv.CSVWriter(str(path), part.schema)
        writer.write_table(part)
    if writer is not None:
        writer.close()


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (robust on a busy machine)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def baseline(csv_path: Path, db: Path) -> tuple[float, float]:
    indexes = "".join(f"{sql};\n" for sql in BASELINE_INDEXES)
    script = f".mode csv\n.import {csv_path} tracks\n{indexes}"
    start, cpu = time.perf_counter(), cpu_seconds()
    subprocess.run(["sqlite3", str(db)], input=script.encode(), check=True)
    return time.perf_counter() - start, cpu_seconds() - cpu


_IMPORT = """
import os, sys, threading, time
from musicark.archive import init_archive
from musicark.catalog.importer import import_catalog


def hwm(pid):
    # VmHWM: the peak RSS of this program image (ru_maxrss would also count the pages a
    # forked child shares with its parent before exec).
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(l.split()[1]) // 1024 for l in f if l.startswith("VmHWM"))
    except (OSError, StopIteration):
        return 0


def watch(peak):
    me = os.getpid()
    while True:
        for task in os.listdir(f"/proc/{me}/task"):
            try:
                kids = open(f"/proc/{me}/task/{task}/children").read().split()
            except OSError:
                continue
            for kid in kids:
                peak[0] = max(peak[0], hwm(kid))
        time.sleep(0.1)


if __name__ == "__main__":
    peak = [0]
    threading.Thread(target=watch, args=(peak,), daemon=True).start()
    summary = import_catalog(
        init_archive(sys.argv[1]).with_settings({"search.follow_catalog": False}), [sys.argv[2]]
    )
    print(summary.imported, hwm(os.getpid()), peak[0])
"""


def musicark_import(parquet: Path, root: Path, n: int) -> tuple[float, float, int, int]:
    """The import in a process of its own, which reports its own peak memory (and its
    staging process's): a forked child's RSS would also count pages it shares with us."""
    start, cpu = time.perf_counter(), cpu_seconds()
    script = root.parent / "import_run.py"
    script.write_text(_IMPORT)
    out = subprocess.run(
        [sys.executable, str(script), str(root), str(parquet)], check=True, capture_output=True
    ).stdout.split()
    elapsed, used = time.perf_counter() - start, cpu_seconds() - cpu
    imported, main_mb, stage_mb = (int(x) for x in out[-3:])
    if imported != n:
        raise SystemExit(f"imported {imported} of {n} tracks")
    return elapsed, used, main_mb, stage_mb


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="tracks to generate")
    parser.add_argument(
        "--dir", type=Path, default=None, help="work folder (default: a temp folder)"
    )
    args = parser.parse_args()
    if not shutil.which("sqlite3"):
        print("sqlite3 shell not found", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="bench-import-", dir=args.dir))
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    try:
        t = time.perf_counter()
        table = generate_catalog(args.n, seed=42)
        pq.write_table(table, work / "tracks.parquet")
        write_csv(table, work / "tracks.csv")
        del table
        print(f"generated {args.n:,} tracks in {time.perf_counter() - t:.1f} s")

        ours, ours_cpu, main_mb, stage_mb = musicark_import(
            work / "tracks.parquet", work / "archive", args.n
        )
        theirs, theirs_cpu = baseline(work / "tracks.csv", work / "baseline.sqlite")
        rate = args.n / ours
        print(
            f"musicark (Parquet, 4 tables + 6 indexes): {ours:7.1f} s wall {ours_cpu:7.1f} s CPU {rate:9,.0f} rows/s"
        )
        rate = args.n / theirs
        print(
            f"sqlite3 .import (CSV, 1 table + 3 idx):   {theirs:7.1f} s wall {theirs_cpu:7.1f} s CPU {rate:9,.0f} rows/s"
        )
        print(
            f"ratio musicark / baseline: {theirs / ours:.2f}x wall (>= 1 meets the goal), {theirs_cpu / ours_cpu:.2f}x CPU"
        )
        print(
            f"musicark peak RSS: {main_mb:,} MB (merging) + {stage_mb:,} MB (reading, "
            f"normalizing) = {main_mb + stage_mb:,} MB (goal < 2048 MB at 10 M)"
        )
        print(f"extrapolated 256 M tracks: {ours * 256e6 / args.n / 60:.1f} min (goal < 30 min)")
        print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
