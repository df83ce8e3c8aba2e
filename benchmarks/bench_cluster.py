"""Ingest on a Dask cluster against the local process executor, in the same run.

    .venv/bin/python benchmarks/bench_cluster.py [--files 400] [--seconds 5] [--records 20000]

On this machine, with the seeded corpus of benchmarks/bench_ingest.py:

1. `musicark ingest --jobs 2` (fingerprints on, local worker processes, fresh archive)
2. `musicark --executor dask://... ingest` on a local cluster: `dask scheduler` and two
   `dask worker --nthreads 1` processes on 127.0.0.1 (fresh archive; the cluster is
   started before the clock starts, as a long-lived cluster would be)   goal: >= 0.8x (1)
3. the cluster's overhead: seconds per task for an empty task, and per file of ingest
   ((2) - (1)) / files
4. the coordinator's commit rate: result records (with fingerprints and their inverted
   index) written by the recorder into state.sqlite, records/s, and what that means for
   86 M files

Figures are ratios and rates measured in this run; the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_ingest import corpus  # noqa: E402

from tests.cluster import local_cluster  # noqa: E402

FILES_86M = 86_000_000


CPU: dict[str, float] = {}


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def ingest_cli(
    src: Path, archive: Path, *args: str, extra: tuple[str, ...] = ()
) -> tuple[float, dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    shutil.rmtree(archive, ignore_errors=True)
    mk = [sys.executable, "-m", "musicark"]
    subprocess.run([*mk, "init", str(archive)], check=True, capture_output=True, env=env)
    cmd = [*mk, *args, "ingest", str(src), "--archive", str(archive), "--json", *extra]
    t, cpu = time.perf_counter(), _children_cpu()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - t
    CPU[args[-1]] = _children_cpu() - cpu  # the command and its worker processes
    if done.returncode not in (0, 1) or not done.stdout:
        raise SystemExit(f"{' '.join(cmd[:6])} ... failed ({done.returncode}):\n{done.stderr}")
    return elapsed, json.loads(done.stdout)


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def workers_cpu(cluster: Any) -> float:
    """CPU seconds the cluster's worker processes have used so far."""
    client = cluster.client()
    try:
        return float(sum(client.run(_self_cpu).values()))
    finally:
        client.close()


def _noop(x: int) -> int:
    return x


def task_overhead(where: str, tasks: int) -> float:
    """Seconds per empty task through the executor (submit, run, gather)."""
    from musicark.executor import make_executor

    with make_executor(jobs=1, where=where) as ex:
        list(ex.run(_noop, range(50)))  # warm: functions shipped, connections open
        t = time.perf_counter()
        n = sum(1 for _ in ex.run(_noop, range(tasks)))
        return (time.perf_counter() - t) / n


def commit_rate(src: Path, work: Path, records: int, *, fingerprints: bool = True) -> float:
    """Records/s the coordinator's recorder commits: real worker results (one batch of the
    corpus, fingerprints included) copied with fresh hashes, paths and fingerprint values,
    recorded 200 per transaction as ingest does."""
    import numpy as np

    from musicark.archive import init_archive
    from musicark.store import schema
    from musicark.store.fingerprint import MAX_SECONDS
    from musicark.store.match import Matcher
    from musicark.store.recorder import IngestSummary, Recorder
    from musicark.store.worker import FileEntry, Task, process_batch

    archive = init_archive(work / f"commit-{fingerprints}")
    staging = archive.staging_dir / "ingest"
    staging.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in src.rglob("*") if p.is_file())[:20]
    entries = tuple(
        FileEntry(str(p), os.fsencode(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files
    )
    task = Task(entries, "copy", True, str(archive.store_dir), str(staging), 2)
    samples = [r for r in process_batch(task) if r.status == "new"]
    for r in samples:
        Path(r.tmp or "").unlink(missing_ok=True)
    # a full-length track's fingerprint: the first MAX_SECONDS, one value per ~0.124 s
    fp_values = int(MAX_SECONDS / 0.124)
    conn = schema.connect(archive)
    matcher = Matcher(archive, conn, tolerance_ms=3000)
    recorder = Recorder(conn, matcher, IngestSummary(run_id=1), run_id=1, source=None)
    rng = np.random.default_rng(7)
    batch, done, t = 200, 0, time.perf_counter()
    while done < records:
        results = []
        for i in range(done, min(done + batch, records)):
            proto = samples[i % len(samples)]
            fp = rng.integers(0, 2**32, fp_values, dtype=np.uint32)
            path = f"/archive/in/{i // 1000:05d}/{i:09d}.ogg"
            results.append(
                replace(
                    proto,
                    entry=FileEntry(path, path.encode(), proto.size, proto.mtime_ns),
                    sha256=secrets.token_hex(32),
                    tmp=None,
                    fingerprint=fp.astype("<u4").tobytes() if fingerprints else None,
                    fingerprint_ms=MAX_SECONDS * 1000 if fingerprints else None,
                )
            )
        recorder.record(results, placed={r.sha256 for r in results if r.sha256}, pid=0)
        done += len(results)
    recorder.finish()  # the end of a run: the buffered fingerprint postings are written
    elapsed = time.perf_counter() - t
    matcher.close()
    conn.close()
    return records / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=400, help="corpus size")
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="length of each file (fingerprinted)"
    )
    parser.add_argument("--tasks", type=int, default=1000, help="empty tasks for the overhead")
    parser.add_argument("--records", type=int, default=20000, help="records for the commit rate")
    parser.add_argument("--corpus", type=Path, default=None, help="corpus folder (kept)")
    args = parser.parse_args()
    corpus_dir = (
        args.corpus
        or Path(tempfile.gettempdir()) / f"musicark-bench-corpus-{args.files}-{args.seconds:g}"
    )
    paths = corpus(corpus_dir, args.files, args.seconds, 2)
    n = len(paths)
    print(f"corpus: {n} files, {sum(p.stat().st_size for p in paths) / 1e6:.1f} MB")
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()), flush=True)
    with tempfile.TemporaryDirectory(prefix="musicark-bench-") as tmp:
        work = Path(tmp)
        for p in paths:
            p.read_bytes()  # the page cache warm for both contenders
        with local_cluster(work / "dask", workers=2) as cluster:
            t_local, s_local = ingest_cli(corpus_dir, work / "local", "--executor", "local")
            print(f"local processes, --jobs 2: {t_local:.2f} s, {n / t_local:.1f} files/s")
            before = workers_cpu(cluster)
            t_dask, s_dask = ingest_cli(corpus_dir, work / "dask-a", "--executor", cluster.where)
            per_file = (workers_cpu(cluster) - before) / n
            print(
                f"dask, 2 workers x 1 thread: {t_dask:.2f} s, {n / t_dask:.1f} files/s, "
                f"CPU-ms/file: workers {per_file * 1000:.1f}, "
                f"coordinator {CPU[cluster.where] * 1000 / n:.1f}"
                f"   ratio {t_local / t_dask:.2f}x local (goal >= 0.8x)"
            )
            if s_local["counts"] != s_dask["counts"]:
                print(f"  DIFFERENT outcomes: {s_local['counts']} vs {s_dask['counts']}")
            before = workers_cpu(cluster)
            ingest_cli(
                corpus_dir,
                work / "dask-b",
                "--executor",
                cluster.where,
                extra=("--no-fingerprint",),
            )
            plain = (workers_cpu(cluster) - before) / n
            print(
                f"  the same with --no-fingerprint: workers {plain * 1000:.1f} CPU-ms/file; "
                f"fingerprinting {(per_file - plain) * 1000 / args.seconds:.1f} CPU-ms per "
                "second of audio"
            )
            per_task = task_overhead(cluster.where, args.tasks)
            print(
                f"cluster overhead: {per_task * 1000:.2f} ms per empty task (round trip, "
                f"{args.tasks} tasks); ingest {(t_dask - t_local) / n * 1000:+.2f} ms per file "
                "against local (connect + probe included)"
            )
        fp_values = int(120 / 0.124)
        for fingerprints in (True, False):
            rate = commit_rate(corpus_dir, work, args.records, fingerprints=fingerprints)
            what = f"{fp_values} fingerprint values each, indexed" if fingerprints else "no fp"
            print(
                f"coordinator commit rate: {rate:.0f} records/s ({args.records} records, "
                f"{what}); 86 M files: {FILES_86M / rate / 3600:.1f} hours of commits, "
                f"{FILES_86M / rate / 86400 / 30 * 100:.0f} % of 30 days"
            )
    print("load average at end:   {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
