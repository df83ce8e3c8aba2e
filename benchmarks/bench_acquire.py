"""Acquisition speed against aria2c, and memory against the number of offers, in one run.

    .venv/bin/python benchmarks/bench_acquire.py [--files 2000] [--offers 100000] [--corpus DIR]
        [--cluster]

1. A loopback HTTP server (uvicorn + Starlette StaticFiles, its own process) serves
   --files MP3 files of 1-5 MB (seeded songs, each made unique by an ID3v1 trailer).
2. `aria2c -i LIST -j 16` fetches them all, checking each sha256 (`checksum=` per URI).
3. `musicark acquire urls:LIST --concurrency 16 --per-host 16 --no-fingerprint` fetches the
   same list into a fresh archive: size and sha256 verified, decode probe, ingested.
   goal: >= 0.8x aria2c's throughput.
4. `musicark ingest --no-fingerprint` of aria2c's downloads into another fresh archive:
   the per-file overhead of acquisition over plain ingest is (3 - 4) / files.
5. Memory: `musicark acquire` over a list of --offers URLs the server answers 404 for
   (the whole pipeline: offers, resolve, skip, fetch, ledger), and over a tenth of it;
   peak RSS should not grow with the list.
6. With --cluster: (3) again as `musicark --executor dask://... acquire` on a local Dask
   cluster of two workers of --cluster-threads threads (started before the clock): its
   time against (3), and whether it stored the same blobs.

Figures are printed with the load average; compare ratios, the machine is shared.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
BASE_SECONDS = (64.0, 128.0, 192.0, 256.0, 316.0)  # ~1-5 MB at 128 kbit/s

SERVER = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.staticfiles import StaticFiles
app = Starlette()
app.mount("/", StaticFiles(directory=sys.argv[1]))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
"""


def corpus(folder: Path, files: int) -> list[Path]:
    from tests.audio import make_file

    bases = []
    for i, seconds in enumerate(BASE_SECONDS):
        path = folder / "bases" / f"base{i}.mp3"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            make_file(path, seed=900 + i, seconds=seconds, bitrate=128000)
        bases.append(path.read_bytes())
    out = []
    for i in range(files):
        path = folder / "files" / f"{i // 1000:03d}" / f"f{i:05d}.mp3"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            trailer = b"TAG" + f"bench file {i}".encode().ljust(30, b"\0") + b"\0" * 94 + b"\xff"
            path.write_bytes(bases[i % len(bases)] + trailer)
        out.append(path)
    return out


def start_server(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    from tests.e2e.harness import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(root), str(port)])
    import httpx

    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/nothing")
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    return proc, f"http://127.0.0.1:{port}"


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (KiB, GNU time) and stdout of a command."""
    started = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if r.returncode not in (0, 1):
        raise SystemExit(f"{cmd[0]} failed ({r.returncode}): {r.stderr[-2000:]}")
    rss = int(r.stderr.strip().splitlines()[-1])
    return seconds, rss, r.stdout


def init(path: Path, env: dict[str, str]) -> None:
    cmd = [str(BIN / "python"), "-m", "musicark", "init", str(path)]
    subprocess.run(cmd, check=True, env=env, capture_output=True)


def musicark(*args: str, archive: Path) -> list[str]:
    return [str(BIN / "python"), "-m", "musicark", "--archive", str(archive), *args]


def blobs_of(archive: Path) -> list[str]:
    return sorted(p.name for p in (archive / "store").rglob("*") if p.is_file())


def on_cluster(
    work: Path, url_list: Path, env: dict[str, str], t_local: float, threads: int
) -> dict:
    from tests.cluster import local_cluster

    init(work / "a3", env)
    with local_cluster(work / "dask", threads=threads) as c:
        args = ["--concurrency", "16", "--per-host", "16", "--no-fingerprint", "--json"]
        t, _, out = timed(
            [
                *musicark("--executor", c.where, archive=work / "a3"),
                *("acquire", f"urls:{url_list}", "--plan", "none", *args),
            ],
            env,
        )
    summary = json.loads(out)
    n = len(blobs_of(work / "a1"))
    blobs = [blobs_of(work / "a1"), blobs_of(work / "a3")]
    return {
        "cluster_acquire_seconds": round(t, 2),
        "cluster_vs_local_acquire": round(t_local / t, 2),
        "cluster_same_blobs": blobs[0] == blobs[1] and summary["counts"] == {"success": n},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--offers", type=int, default=100_000)
    ap.add_argument("--corpus", type=Path, default=Path(tempfile.gettempdir()) / "bench-acquire")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--cluster", action="store_true", help="also acquire on a local cluster")
    ap.add_argument(
        "--cluster-threads", type=int, default=1, help="threads of each of its two workers"
    )
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    paths = corpus(args.corpus, args.files)
    total = sum(p.stat().st_size for p in paths)
    work = Path(tempfile.mkdtemp(prefix="bench-acquire-", dir=args.corpus))
    server, base = start_server(args.corpus / "files")
    results: dict[str, object] = {"files": len(paths), "bytes": total}
    try:
        rel = [p.relative_to(args.corpus / "files").as_posix() for p in paths]
        sums = [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
        aria_list = work / "aria2.txt"
        aria_list.write_text(
            "".join(
                f"{base}/{r}\n  out={r}\n  checksum=sha-256={s}\n"
                for r, s in zip(rel, sums, strict=True)
            )
        )
        url_list = work / "urls.csv"
        url_list.write_text(
            "url,size,sha256\n"
            + "".join(
                f"{base}/{r},{p.stat().st_size},{s}\n"
                for r, p, s in zip(rel, paths, sums, strict=True)
            )
        )
        # 1. aria2c
        aria_dir = work / "aria2"
        t_aria, rss_aria, _ = timed(
            [
                "aria2c",
                "-i",
                str(aria_list),
                "-j",
                "16",
                "-d",
                str(aria_dir),
                "-q",
                "--file-allocation=none",
                "--auto-file-renaming=false",
                "--allow-overwrite=true",
                "--check-integrity=true",
            ]
        )
        # 2. musicark acquire
        init(work / "a1", env)
        t_acq, rss_acq, out = timed(
            musicark(
                "acquire",
                f"urls:{url_list}",
                "--plan",
                "none",
                "--concurrency",
                "16",
                "--per-host",
                "16",
                "--no-fingerprint",
                "--json",
                archive=work / "a1",
            ),
            env,
        )
        summary = json.loads(out)
        assert summary["counts"].get("success") == len(paths), summary["counts"]
        if args.cluster:
            results.update(on_cluster(work, url_list, env, t_acq, args.cluster_threads))
        # 3. plain ingest of the same files
        init(work / "a2", env)
        t_ing, _, _ = timed(
            musicark("ingest", str(aria_dir), "--no-fingerprint", "--json", archive=work / "a2"),
            env,
        )
        results.update(
            aria2c_seconds=round(t_aria, 2),
            acquire_seconds=round(t_acq, 2),
            ingest_seconds=round(t_ing, 2),
            aria2c_mb_s=round(total / t_aria / 1e6, 1),
            acquire_mb_s=round(total / t_acq / 1e6, 1),
            throughput_ratio=round(t_aria / t_acq, 2),
            overhead_ms_per_file_over_ingest=round((t_acq - t_ing) / len(paths) * 1000, 1),
            rss_mib_aria2c=round(rss_aria / 1024, 1),
            rss_mib_acquire=round(rss_acq / 1024, 1),
        )
        # 4. memory against the number of offers
        for n in (args.offers // 10, args.offers):
            listing = work / f"missing-{n}.csv"
            listing.write_text(
                "url,size\n" + "".join(f"{base}/missing/{i}.mp3,1000\n" for i in range(n))
            )
            arch = work / f"m{n}"
            init(arch, env)
            t, rss, out = timed(
                musicark(
                    "acquire",
                    f"urls:{listing}",
                    "--plan",
                    "none",
                    "--concurrency",
                    "16",
                    "--per-host",
                    "16",
                    "--json",
                    archive=arch,
                ),
                env,
            )
            counts = json.loads(out)["counts"]
            assert counts.get("error_not_available") == n, counts
            results[f"offers_{n}_rss_mib"] = round(rss / 1024, 1)
            results[f"offers_{n}_per_second"] = round(n / t, 1)
    finally:
        server.terminate()
        server.wait()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    results["loadavg"] = os.getloadavg()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
