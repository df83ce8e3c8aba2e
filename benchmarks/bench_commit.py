"""The coordinator's commit rate of result records, against the size of the archive.

    .venv/bin/python benchmarks/bench_commit.py [--sizes 10000,100000,1000000] [--window 20000]
        [--modes fp,nofp] [--workdir DIR] [--profile]

On a cluster the workers return one result record per file and the coordinator (the one
`musicark` process that writes state.sqlite) commits them. This feeds synthetic, realistic
result records (a Vorbis file's probe, its tags, a full-length Chromaprint fingerprint of
967 values: the first 120 s) through the recorder ingest uses (`Recorder`: ledger look-up,
blob look-up, pending marks, then ledger, blob, provenance, rendition, fingerprint and
inverted-index rows; batches of 200 files, one transaction each, as `ingest` commits) into
a real archive, grown to each size in turn. At each size it times a window of new records
(the end of a run included, so whatever a run defers is paid for) and prints records/s and
what that rate means for 86 M files (hours of coordinator time). The figures of each fill
between sizes are printed too: they are the average rate over that stretch of the load.

No catalogue is loaded, so matching costs nothing here (it is a read of catalog.sqlite
by ISRC, external id or title, each through an index). The fingerprint values are random
32-bit values, spread over the whole range as real ones are.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import os
import pstats
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from musicark.archive import init_archive  # noqa: E402
from musicark.store import schema  # noqa: E402
from musicark.store.match import Matcher  # noqa: E402
from musicark.store.recorder import IngestSummary, Recorder  # noqa: E402
from musicark.store.walk import Entry  # noqa: E402
from musicark.store.worker import AudioInfo, FileEntry, FileResult  # noqa: E402

FILES_86M = 86_000_000
BATCH = 200  # files per transaction, as ingest.BATCH_FILES
FP_VALUES = 967  # 120 s / 0.1241 s per value
WORDS = [
    "night",
    "river",
    "golden",
    "blue",
    "heart",
    "road",
    "fire",
    "city",
    "dream",
    "shadow",
    "light",
    "rain",
]


def _load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def make_result(i: int, rng: np.random.Generator, *, fingerprint: bool) -> FileResult:
    """File number i of a synthetic collection, as a worker returns it (status "new")."""
    artist = f"{WORDS[i % 12].title()} {WORDS[(i // 12) % 12].title()} {i // 144 % 997}"
    title = f"{WORDS[(i * 7) % 12].title()} {WORDS[(i * 5 + 3) % 12]} {i % 89}"
    path = f"/srv/incoming/{artist}/{i // 12:07d} Album/{i % 12 + 1:02d} {title}.ogg"
    size = 2_400_000 + (i * 7919) % 2_000_000
    duration = 150_000 + (i * 104_729) % 120_000
    tags = {
        "artist": [artist],
        "albumartist": [artist],
        "title": [title],
        "album": [f"{WORDS[(i // 12) % 12].title()} {i // 12}"],
        "date": [str(1960 + i % 60)],
        "tracknumber": [str(i % 12 + 1)],
        "genre": ["Rock"],
        "isrc": [f"GB{'ABCDEFGH'[i % 8]}{i % 100:02d}{i % 10_000_000:07d}"],
        "musicbrainz_trackid": [str(hashlib.md5(b"%d" % i).hexdigest())],
    }
    fp = rng.integers(0, 2**32, FP_VALUES, dtype=np.uint32) if fingerprint else None
    return FileResult(
        entry=FileEntry(path, os.fsencode(path), size, 1_700_000_000_000_000_000 + i),
        status="new",
        size=size,
        mtime_ns=1_700_000_000_000_000_000 + i,
        sha256=hashlib.sha256(b"musicark-bench-%d" % i).hexdigest(),
        info=AudioInfo("ogg", "vorbis", duration, 160_000, 44_100, 2, False),
        tags=tags,
        fingerprint=fp.astype("<u4").tobytes() if fp is not None else None,
        fingerprint_ms=120_000 if fp is not None else None,
    )


def batches(first: int, last: int, seed: int, *, fingerprint: bool) -> Iterator[list[FileResult]]:
    rng = np.random.default_rng(seed)
    for start in range(first, last, BATCH):
        yield [
            make_result(i, rng, fingerprint=fingerprint)
            for i in range(start, min(start + BATCH, last))
        ]


class Coordinator:
    """One ingest run's database side, as `ingest` drives the recorder per batch."""

    def __init__(self, archive_path: Path, run: int) -> None:
        self.archive = init_archive(archive_path)
        self.conn = schema.connect(self.archive)
        self.matcher = Matcher(self.archive, self.conn, tolerance_ms=3000)
        self.recorder = Recorder(
            self.conn, self.matcher, IngestSummary(run_id=run), run_id=run, source=None
        )

    def commit(self, results: list[FileResult]) -> None:
        rec = self.recorder
        rec.skip_known([Entry(r.path, r.key, r.size, r.mtime_ns) for r in results])
        shas = {r.sha256 for r in results if r.sha256}
        fresh = shas - rec.has_blobs(shas)
        rec.mark_pending(fresh, pid=1)
        rec.record(results, placed=fresh, pid=1)

    def close(self) -> None:
        self.recorder.finish()
        self.matcher.close()
        self.conn.close()


def run_records(
    archive: Path, first: int, last: int, *, fingerprint: bool, run: int
) -> tuple[float, float]:
    """Commit records first..last-1 as one ingest run; (wall, CPU) seconds spent in the
    coordinator (generating the records is not counted)."""
    coord = Coordinator(archive, run)
    wall = cpu = 0.0
    for results in batches(first, last, seed=run, fingerprint=fingerprint):
        t, c = time.perf_counter(), time.process_time()
        coord.commit(results)
        wall, cpu = wall + time.perf_counter() - t, cpu + time.process_time() - c
    t, c = time.perf_counter(), time.process_time()
    coord.close()
    return wall + time.perf_counter() - t, cpu + time.process_time() - c


def _levels(archive: Path) -> str:
    """The fingerprint index's segments per level (merges done so far)."""
    conn = sqlite3.connect(archive / "state.sqlite")
    try:
        rows = conn.execute(
            "SELECT level, count(*) FROM fp_segments WHERE live GROUP BY level"
        ).fetchall()
    except sqlite3.Error:
        return ""
    finally:
        conn.close()
    return (
        "; index segments per level: " + ", ".join(f"{lv}: {n}" for lv, n in rows) if rows else ""
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000,1000000", help="archive sizes (files)")
    parser.add_argument("--window", type=int, default=20000, help="records timed at each size")
    parser.add_argument("--modes", default="fp,nofp", help="fp (fingerprints) and/or nofp")
    parser.add_argument("--workdir", type=Path, default=None, help="where the archives go")
    parser.add_argument("--profile", action="store_true", help="cProfile the last window")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="musicark-bench-commit-", dir=args.workdir))
    print(f"load average at start: {_load()}; archives under {work}", flush=True)
    try:
        for mode in args.modes.split(","):
            fingerprint = mode == "fp"
            archive = work / mode
            have, run = 0, 1
            what = "with fingerprints" if fingerprint else "without fingerprints"
            for size in sizes:
                if size > have:
                    spent, cpu = run_records(archive, have, size, fingerprint=fingerprint, run=run)
                    print(
                        f"{mode:>4}: filled {have:>9,} -> {size:>9,} files at "
                        f"{(size - have) / spent:7.0f} records/s, "
                        f"{(size - have) / cpu:7.0f} per CPU-second (load {_load()})",
                        flush=True,
                    )
                    have, run = size, run + 1
                prof = cProfile.Profile() if args.profile and size == sizes[-1] else None
                if prof:
                    prof.enable()
                spent, cpu = run_records(
                    archive, have, have + args.window, fingerprint=fingerprint, run=run
                )
                if prof:
                    prof.disable()
                    out = io.StringIO()
                    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(25)
                    print(out.getvalue())
                have, run = have + args.window, run + 1
                rate = args.window / spent
                mb = (archive / "state.sqlite").stat().st_size / 1e6
                levels = _levels(archive)
                print(
                    f"{mode:>4}: at {size:>9,} files ({mb:6.0f} MB): {rate:6.0f} records/s, "
                    f"{args.window / cpu:6.0f} per CPU-second, {what} ({args.window} records);"
                    f" 86 M files: {FILES_86M / rate / 3600:5.1f} h of coordinator time"
                    f" (load {_load()}){levels}",
                    flush=True,
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average at end: {_load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
