"""Ingest speed against beets and against decoding alone, in the same run.

    .venv/bin/python benchmarks/bench_ingest.py [--files 2000] [--seconds 2] [--jobs N]

A seeded corpus of short tagged files in MP3, FLAC, Ogg Vorbis, Opus and M4A (cached
under --corpus) is ingested by:

1. `musicark ingest --no-fingerprint` (fresh archive)        goal: >= 10x beets files/s
2. `beet import -A -q` (beets, no autotagging, own config)
3. `musicark ingest` with Chromaprint fingerprints (fresh)    goal: >= 0.8x decoding alone
4. decoding alone: `ffmpeg -f null` on every file, `--jobs` at a time (and, for reference,
   PyAV decoding in --jobs processes, with no start-up per file)

Figures are files per second; the goals are ratios measured in this run. `--stages`
adds the worker's CPU-ms per file and format for each stage (store: hash + copy; probe:
PyAV open + damage checks; tags: mutagen), measured in this process (best of 3): steadier
than whole runs on a busy machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
BIN = Path(sys.executable).parent
EXTS = ("mp3", "flac", "ogg", "opus", "m4a")


def _make(args: tuple[Path, int, float]) -> None:
    from audio import make_file

    path, seed, seconds = args
    make_file(
        path,
        seed=seed,
        seconds=seconds,
        tags={
            "title": f"Track {seed}",
            "artist": f"Artist {seed % 97}",
            "album": f"Album {seed % 211}",
            "tracknumber": str(seed % 15 + 1),
            "isrc": f"SEXYZ24{seed:05d}",
        },
    )


def corpus(folder: Path, files: int, seconds: float, jobs: int) -> list[Path]:
    paths = [folder / f"{i // 100:03d}" / f"f{i:05d}.{EXTS[i % len(EXTS)]}" for i in range(files)]
    todo = [(p, i, seconds) for i, p in enumerate(paths) if not p.exists()]
    for p in {p.parent for p, _, _ in todo}:
        p.mkdir(parents=True, exist_ok=True)
    if todo:
        print(f"generating {len(todo)} files in {folder} ...", flush=True)
        t = time.perf_counter()
        with ProcessPoolExecutor(jobs) as pool:
            list(pool.map(_make, todo, chunksize=16))
        print(f"  {time.perf_counter() - t:.1f} s", flush=True)
    return paths


CPU: dict[str, float] = {}


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd: list[str], **kw: object) -> tuple[float, subprocess.CompletedProcess[str]]:
    t = time.perf_counter()
    cpu = _children_cpu()
    done = subprocess.run(cmd, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    elapsed = time.perf_counter() - t
    CPU[" ".join(cmd[:2])] = _children_cpu() - cpu
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(cmd[:3])} ... failed ({done.returncode}):\n{done.stderr[-2000:]}"
        )
    return elapsed, done


def musicark_ingest(src: Path, work: Path, jobs: int, *, fingerprint: bool) -> tuple[float, dict]:
    archive = work / ("archive-fp" if fingerprint else "archive")
    shutil.rmtree(archive, ignore_errors=True)
    subprocess.run([str(BIN / "musicark"), "init", str(archive)], check=True, capture_output=True)
    cmd = [
        str(BIN / "musicark"),
        "ingest",
        str(src),
        "--archive",
        str(archive),
        "--jobs",
        str(jobs),
        "--json",
    ]
    if not fingerprint:
        cmd.append("--no-fingerprint")
    elapsed, done = timed(cmd)
    return elapsed, json.loads(done.stdout)


def beets_import(src: Path, work: Path) -> float | None:
    beet = BIN / "beet"
    if not beet.exists():
        print("beets is not installed: .venv/bin/pip install beets (the `bench` extra)")
        return None
    home = work / "beets"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir()
    (home / "config.yaml").write_text(
        f"directory: {home / 'music'}\nlibrary: {home / 'library.db'}\nplugins: []\n"
        "import:\n  copy: no\n  write: no\n  move: no\n  log: null\n"
    )
    elapsed, _ = timed(
        [str(beet), "import", "-A", "-q", str(src)], env={**os.environ, "BEETSDIR": str(home)}
    )
    return elapsed


def decode_alone(paths: list[Path], jobs: int) -> float:
    def one(p: Path) -> None:
        subprocess.run(
            ["ffmpeg", "-v", "error", "-nostdin", "-i", str(p), "-f", "null", "-"], check=True
        )

    t = time.perf_counter()
    cpu = _children_cpu()
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, paths))
    CPU["ffmpeg"] = _children_cpu() - cpu
    return time.perf_counter() - t


def _pyav_decode(paths: list[str]) -> int:
    import av

    for p in paths:
        with av.open(p) as container:
            for _frame in container.decode(audio=0):
                pass
    return len(paths)


def decode_in_process(paths: list[Path], jobs: int) -> float:
    """PyAV decoding of every file in `jobs` processes: decoding without any process start-up."""
    chunks = [[str(p) for p in paths[i::jobs]] for i in range(jobs)]
    t = time.perf_counter()
    cpu = _children_cpu()
    with ProcessPoolExecutor(jobs) as pool:  # its workers are reaped (counted) on exit
        assert sum(pool.map(_pyav_decode, chunks)) == len(paths)
    CPU["pyav"] = _children_cpu() - cpu
    return time.perf_counter() - t


def _best_ms(fn: Callable[[Path], object], paths: list[Path], reps: int = 3) -> float:
    best = float("inf")
    for _ in range(reps):
        cpu = time.process_time()
        for p in paths:
            fn(p)
        best = min(best, time.process_time() - cpu)
    return best * 1000 / len(paths)


def _format_stages(some: list[Path], work: Path) -> tuple[float, float, float]:
    """(store, probe, tags) CPU-ms per file of files of one format."""
    from musicark.store.probe import analyse
    from musicark.store.tags import read_tags
    from musicark.store.worker import Task, store_stage

    staging = work / "stages"
    staging.mkdir(exist_ok=True)
    task = Task((), "copy", False, str(work / "no-store"), str(staging), 2)
    data = {p: p.read_bytes() for p in some}
    found = {p: analyse(p, fingerprint=False, data=data[p]) for p in some}

    def store(p: Path) -> None:
        copy = store_stage(task, str(p), staging)
        if copy.tmp is not None:
            copy.tmp.unlink()

    def probe(p: Path) -> None:
        analyse(p, fingerprint=False, size=len(data[p]), head=data[p][:16], data=data[p])

    def tags(p: Path) -> None:
        a = found[p]
        read_tags(
            p,
            container=a.container,
            codec=a.codec,
            head=data[p][:16],
            video=a.extra.get("video"),
            data=data[p],
        )

    return _best_ms(store, some), _best_ms(probe, some), _best_ms(tags, some)


def stages(paths: list[Path], work: Path) -> None:
    """The worker's CPU-ms per file for each stage and format (no fingerprints)."""
    print("worker CPU-ms per file (best of 3):  store  probe  tags")
    for ext in EXTS:
        some = [p for p in paths if p.suffix == f".{ext}"]
        if some:
            store, probe, tags = _format_stages(some, work)
            print(f"  {ext:<5} {store:30.3f} {probe:6.3f} {tags:5.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=2000, help="corpus size")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each file")
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="parallel workers for every contender"
    )
    parser.add_argument(
        "--corpus", type=Path, default=None, help="corpus folder (kept between runs)"
    )
    parser.add_argument("--skip-beets", action="store_true", help="do not run beets")
    parser.add_argument(
        "--stages", action="store_true", help="also the worker's CPU-ms per stage and format"
    )
    parser.add_argument(
        "--no-fingerprint-only",
        action="store_true",
        help="only musicark --no-fingerprint and beets",
    )
    args = parser.parse_args()
    corpus_dir = (
        args.corpus
        or Path(tempfile.gettempdir()) / f"musicark-bench-corpus-{args.files}-{args.seconds:g}"
    )
    paths = corpus(corpus_dir, args.files, args.seconds, args.jobs)
    n = len(paths)
    total_bytes = sum(p.stat().st_size for p in paths)
    print(
        f"corpus: {n} files, {total_bytes / 1e6:.1f} MB, {args.seconds:g} s each; jobs={args.jobs}"
    )
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    with tempfile.TemporaryDirectory(prefix="musicark-bench-") as tmp:
        work = Path(tmp)
        for p in paths[:50]:  # warm the page cache the same way for everyone
            p.read_bytes()
        t_plain, s_plain = musicark_ingest(corpus_dir, work, args.jobs, fingerprint=False)
        cpu_plain = CPU[f"{BIN / 'musicark'} ingest"]
        print(
            f"musicark ingest --no-fingerprint: {t_plain:.2f} s, {n / t_plain:.0f} files/s,"
            f" {cpu_plain * 1000 / n:.1f} CPU-ms/file  {s_plain['counts']}"
        )
        t_beets = None if args.skip_beets else beets_import(corpus_dir, work)
        if t_beets:
            cpu_beets = CPU[f"{BIN / 'beet'} import"]
            print(
                f"beet import -A -q:                {t_beets:.2f} s, {n / t_beets:.0f} files/s,"
                f" {cpu_beets * 1000 / n:.1f} CPU-ms/file"
            )
        t_fp = t_dec = None
        t_pyav = 0.0
        if not args.no_fingerprint_only:
            t_fp, s_fp = musicark_ingest(corpus_dir, work, args.jobs, fingerprint=True)
            cpu_fp = CPU[f"{BIN / 'musicark'} ingest"]
            print(
                f"musicark ingest (fingerprints):   {t_fp:.2f} s, {n / t_fp:.0f} files/s,"
                f" {cpu_fp * 1000 / n:.1f} CPU-ms/file  {s_fp['counts']}"
            )
            t_dec = decode_alone(paths, args.jobs)
            print(
                f"ffmpeg -f null (decode alone):    {t_dec:.2f} s, {n / t_dec:.0f} files/s,"
                f" {CPU['ffmpeg'] * 1000 / n:.1f} CPU-ms/file"
            )
            t_pyav = decode_in_process(paths, args.jobs)
            print(
                f"PyAV decode, in-process:          {t_pyav:.2f} s, {n / t_pyav:.0f} files/s,"
                f" {CPU['pyav'] * 1000 / n:.1f} CPU-ms/file"
            )
        if args.stages:
            stages(paths, work)
    print("load average at end:   {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    print()
    ok = True
    if t_beets:
        ratio = t_beets / t_plain
        ok &= ratio >= 10
        print(
            f"ingest without fingerprints / beets: {ratio:.1f}x  (goal >= 10x) {'ok' if ratio >= 10 else 'MISSED'}"
        )
        print(f"  (CPU time per file, beets / musicark: {cpu_beets / cpu_plain:.1f}x)")
    if t_fp and t_dec:
        ratio = t_dec / t_fp
        ok &= ratio >= 0.8
        print(
            f"ingest with fingerprints / decoding alone: {ratio:.2f}x  (goal >= 0.8x)"
            f" {'ok' if ratio >= 0.8 else 'MISSED'}"
        )
        print(
            f"  (against PyAV decoding in-process, without ffmpeg's start-up per file:"
            f" {t_pyav / t_fp:.2f}x; in CPU time per file {CPU['pyav'] / cpu_fp:.2f}x,"
            f" against ffmpeg {CPU['ffmpeg'] / cpu_fp:.2f}x)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
