"""`musicark transcode` (checks included) against `ffmpeg -i IN -c:a libopus -b:a 75k OUT`.

    .venv/bin/python benchmarks/bench_transcode.py [--files 6] [--seconds 150-240] [--jobs N]
        [--cluster]

Builds an archive whose catalogue has --files popularity-0 tracks, with audio for each (seeded
synthetic songs, Ogg Vorbis 160 kbit/s as in the reference effort, durations spread over
--seconds) ingested as usual (so the store holds their Chromaprint fingerprints), and a plan.
Then times, in the same run, alternating --rounds times on fresh copies of the archive:

1. ffmpeg (the Debian binary) on every source blob, --jobs at a time (xargs -P style)
2. `transcode(archive, jobs=--jobs)`: decode, encode, decode again, fingerprint check, store

Throughput is seconds of audio per wall-clock second; each contender's best round counts,
and the CPU seconds of that round are printed too (on a shared, loaded machine the CPU
ratio is the steadier figure). Goal: transcode >= 0.9x ffmpeg.

With --cluster, each round also times 3. `musicark --executor dask://... transcode` on a
local Dask cluster of --jobs single-threaded workers (started before the clock, as a
long-lived cluster would be), and prints its wall-clock ratio to (2) and whether it
derived the same bytes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from musicark.archive import init_archive, open_archive
from musicark.store.blobs import blob_path


def build(root: Path, files: int, lo: float, hi: float) -> Path:
    from audio import import_catalog_rows, make_file, track

    archive = init_archive(root / "archive")
    src = root / "in"
    src.mkdir()
    rows = []
    for i in range(files):
        seconds = lo + (hi - lo) * i / max(1, files - 1)
        row = track(f"b{i}", f"Bench {i}", "Bench Artist", isrc=f"USBEN25{i:05d}")
        row["popularity"] = 0
        row["duration_ms"] = int(seconds * 1000)
        rows.append(row)
        tags = {"title": f"Bench {i}", "artist": "Bench Artist", "isrc": f"USBEN25{i:05d}"}
        make_file(src / f"{i}.ogg", seed=900 + i, seconds=seconds, tags=tags)
    import_catalog_rows(archive, rows, root)
    return archive.root


FFMPEG = ("ffmpeg", "-nostdin", "-v", "error", "-y", "-i")


def _cli(archive: Path, *args: str) -> None:
    env = {**os.environ, "MUSICARK_ARCHIVE": str(archive)}
    subprocess.run([sys.executable, "-m", "musicark", *args], check=True, env=env)


def _sources(archive: Path) -> list[tuple[Path, float]]:
    a = open_archive(archive)
    conn = a.connect_state(readonly=True)
    rows = conn.execute(
        "SELECT b.sha256, b.duration_ms FROM renditions r JOIN blobs b ON b.sha256 = r.sha256"
        " WHERE r.preferred = 1"
    ).fetchall()
    conn.close()
    return [(blob_path(a, sha), ms / 1000) for sha, ms in rows]


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime


def run_ffmpeg(sources: list[tuple[Path, float]], out: Path, jobs: int) -> tuple[float, float]:
    out.mkdir(parents=True, exist_ok=True)

    def one(i: int) -> None:
        subprocess.run(
            [*FFMPEG, str(sources[i][0]), "-c:a", "libopus", "-b:a", "75k", str(out / f"{i}.opus")],
            check=True,
        )

    cpu0, t0 = _children_cpu(), time.perf_counter()
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, range(len(sources))))
    return time.perf_counter() - t0, _children_cpu() - cpu0


def run_musicark(
    template: Path, work: Path, jobs: int, where: str = "local"
) -> tuple[float, float, dict]:
    from musicark.tier.transcode import transcode

    root = work / "archive"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(template, root)
    archive = open_archive(root).with_settings({"ingest.executor": where})
    cpu0, t0 = _self_cpu(), time.perf_counter()
    summary = transcode(archive, jobs=jobs)
    wall = time.perf_counter() - t0
    if summary.failed or not summary.transcoded:
        raise SystemExit(f"transcode failed: {summary.to_dict()}")
    return wall, _self_cpu() - cpu0, summary.to_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=6)
    parser.add_argument("--seconds", default="150-240", help="duration range of the tracks")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cluster", action="store_true", help="also on a local Dask cluster")
    args = parser.parse_args()
    lo, _, hi = args.seconds.partition("-")
    if shutil.which("ffmpeg") is None:
        raise SystemExit("ffmpeg is not installed")
    with tempfile.TemporaryDirectory(prefix="bench-transcode-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        template = build(root, args.files, float(lo), float(hi or lo))
        _cli(template, "ingest", str(root / "in"), "--jobs", str(args.jobs))
        _cli(template, "plan", "--budget", "1TB")
        sources = _sources(template)
        audio = sum(s for _, s in sources)
        print(
            f"{len(sources)} tracks, {audio:.0f} s of audio (Ogg Vorbis 160k), built in"
            f" {time.perf_counter() - t0:.0f} s; jobs={args.jobs}"
        )
        with contextlib.ExitStack() as stack:
            where = "local"
            if args.cluster:
                from tests.cluster import local_cluster

                c = stack.enter_context(local_cluster(root / "dask", workers=args.jobs))
                where = c.where
            best = rounds(args, template, sources, root, audio, where)
        (fw, fc), (mw, mc) = best["ffmpeg"], best["musicark"]
        print(
            f"best: ffmpeg {audio / fw:.0f}x realtime, musicark {audio / mw:.0f}x realtime;"
            f" throughput ratio musicark/ffmpeg = {fw / mw:.2f} (goal >= 0.9),"
            f" CPU ratio ffmpeg/musicark = {fc / mc:.2f}"
        )
        if "cluster" in best:
            cw = best["cluster"][0]
            print(f"best: cluster {audio / cw:.0f}x realtime, {mw / cw:.2f}x the local run")
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def rounds(
    args: argparse.Namespace,
    template: Path,
    sources: list[tuple[Path, float]],
    root: Path,
    audio: float,
    where: str,
) -> dict[str, tuple[float, float]]:
    best: dict[str, tuple[float, float]] = {}
    for r in range(args.rounds):
        fw, fc = run_ffmpeg(sources, root / f"ff{r}", args.jobs)
        mw, mc, data = run_musicark(template, root / "mk", args.jobs)
        print(
            f"round {r + 1}: ffmpeg {audio / fw:.0f}x realtime ({fw:.2f} s wall,"
            f" {fc:.2f} s CPU); musicark transcode {audio / mw:.0f}x realtime"
            f" ({mw:.2f} s wall, {mc:.2f} s CPU; {data['transcoded']} checked and stored);"
            f" load {os.getloadavg()[0]:.2f}"
        )
        timed = [("ffmpeg", (fw, fc)), ("musicark", (mw, mc))]
        if where != "local":
            cw, _, _ = run_musicark(template, root / "cl", args.jobs, where)
            same = _derived(root / "cl") == _derived(root / "mk")
            print(
                f"round {r + 1}: cluster transcode {audio / cw:.0f}x realtime ({cw:.2f} s"
                f" wall, {mw / cw:.2f}x the local run; same derived bytes: {same});"
                f" load {os.getloadavg()[0]:.2f}"
            )
            timed.append(("cluster", (cw, 0.0)))
        for name, (w, c) in timed:
            if name not in best or w < best[name][0]:
                best[name] = (w, c)
    return best


def _derived(work: Path) -> list[tuple[str, str]]:
    conn = open_archive(work / "archive").connect_state(readonly=True)
    rows = conn.execute("SELECT source_sha256, sha256 FROM derived ORDER BY 1").fetchall()
    conn.close()
    return rows


if __name__ == "__main__":
    main()
