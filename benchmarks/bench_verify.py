"""Full verification speed: `musicark verify --level full` vs libtorrent's own recheck.

Generates a folder of music-sized files (seeded, incompressible), makes a torrent of it
with musicark's creator, warms the page cache, then times in the same run, alternating,
best of --repeat:
  - libtorrent 2.1 checking the same data from scratch (add the torrent with no resume
    data, until `torrent_checked_alert`), with one hashing thread per core;
  - musicark's `verify_torrent(..., level="full")` (what `musicark verify` runs).
Both must find every piece good. Prints wall times, throughput and the ratio
(libtorrent time / musicark time: above 1 means musicark is faster), and how close
musicark comes to the all-core hash limit measured in the same round (one core's CPU
time to hash the bytes from memory, divided by the cores), with the load average.

With --cluster, also `musicark --executor dask://... verify` on a local Dask cluster
(`dask scheduler` and two one-thread `dask worker` processes on 127.0.0.1, started before
the clock starts, as a long-lived cluster would be; each run connects and checks that the
workers see the data): its time against the local workers' in the same run.

    .venv/bin/python benchmarks/bench_verify.py                       # ~300 MB, v1
    .venv/bin/python benchmarks/bench_verify.py --size 2GB --format hybrid
    .venv/bin/python benchmarks/bench_verify.py --size 1GB --cluster
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import libtorrent as lt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_torrent import (  # the same data generator and limit as the creator benchmark
    generate,
    hash_limit,
    limit_line,
    warm,
)

from musicark.swarm.pieces import local_executor
from musicark.swarm.session import SessionOptions, open_session
from musicark.swarm.targets import Selection, VerifyTarget, verify_selection
from musicark.swarm.verify import VerifyReport, verify_torrent
from musicark.torrent.create import create_torrent
from musicark.torrent.metainfo import load_torrent
from musicark.units import format_size, parse_size


def cpu_seconds() -> float:
    """User + system CPU time of this process (every thread) and its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def libtorrent_recheck(torrent_bytes: bytes, save_path: Path, threads: int) -> float:
    """Seconds libtorrent takes to check every piece of the torrent in `save_path`."""
    ses = open_session(SessionOptions(listen="127.0.0.1:0", hashing_threads=threads))
    atp = lt.add_torrent_params()
    make = lt.torrent_info
    atp.ti = make(lt.bdecode(torrent_bytes))
    atp.save_path = str(save_path)
    atp.flags = (atp.flags | lt.torrent_flags.upload_mode) & ~lt.torrent_flags.auto_managed
    atp.flags &= ~lt.torrent_flags.paused
    start = time.perf_counter()
    handle = ses.add_torrent(atp)
    while True:
        ses.wait_for_alert(50)
        if any(isinstance(a, lt.torrent_checked_alert) for a in ses.pop_alerts()):
            break
    elapsed = time.perf_counter() - start
    status = handle.status()  # libtorrent must have found every piece good
    if status.num_pieces != atp.ti.num_pieces():
        raise SystemExit(f"libtorrent found {status.num_pieces}/{atp.ti.num_pieces()} good pieces")
    ses.remove_torrent(handle)
    del ses
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="300MB", help="total data size (default 300MB)")
    parser.add_argument("--files", type=int, default=120, help="number of files")
    parser.add_argument("--format", default="v1", choices=["v1", "hybrid", "v2"])
    parser.add_argument("--piece-size", default="1MiB", help="piece size (default 1MiB)")
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs each")
    parser.add_argument("--jobs", type=int, default=0, help="musicark hashing workers (0: auto)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", type=Path, help="work folder (default: a temporary one)")
    parser.add_argument(
        "--cluster", action="store_true", help="also verify on a local 2-worker Dask cluster"
    )
    args = parser.parse_args()
    size = parse_size(args.size)
    piece = parse_size(args.piece_size)
    cores = os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="bench-verify-", dir=args.dir))
    stack = ExitStack()
    try:
        root = work / "Bench Release"
        generate(root, size, args.files, args.seed)
        created = create_torrent(root, format=args.format, piece_size=piece)
        torrent = load_torrent(created.data)
        total = torrent.total_size
        print(
            f"data: {format_size(total)} in {len(torrent.files)} files, {args.format},"
            f" {format_size(piece)} pieces ({torrent.num_pieces}), {cores} cores"
        )
        warm(root)
        where = None
        if args.cluster:
            sys.path.append(str(Path(__file__).resolve().parents[1]))  # tests.cluster
            from tests.cluster import local_cluster

            where = stack.enter_context(local_cluster(work / "dask", workers=2)).where
        lt_times, ma_times, lt_cpu, ma_cpu, limits, loads = [], [], [], [], [], []
        dask_times: list[float] = []
        for i in range(args.repeat):
            limits.append(hash_limit(total, piece, v2=args.format != "v1"))
            for who in ("libtorrent", "musicark") if i % 2 == 0 else ("musicark", "libtorrent"):
                c0, t0 = cpu_seconds(), time.perf_counter()
                if who == "libtorrent":
                    libtorrent_recheck(created.data, work, cores)
                    lt_times.append(time.perf_counter() - t0)
                    lt_cpu.append(cpu_seconds() - c0)
                    continue
                report = verify_torrent(torrent, work, level="full", jobs=args.jobs)
                ma_times.append(time.perf_counter() - t0)
                ma_cpu.append(cpu_seconds() - c0)
                check(report, torrent.num_pieces)
            if where is not None:
                t0 = time.perf_counter()
                target = VerifyTarget(torrent, work, None, "bench")
                outcome = verify_selection(Selection(targets=[target]), where=where)
                dask_times.append(time.perf_counter() - t0)
                check(outcome.reports[0], torrent.num_pieces)
            loads.append(os.getloadavg()[0])
        best_lt, best_ma = min(lt_times), min(ma_times)
        print(
            f"libtorrent recheck ({cores} hashing threads): {best_lt:.3f} s"
            f"  {format_size(total / best_lt)}/s   runs: {', '.join(f'{t:.3f}' for t in lt_times)}"
        )
        with local_executor(total, args.jobs) as local:  # what verify_torrent runs on
            workers = f"{local.jobs} {local.kind}"
        print(
            f"musicark verify --level full ({workers}): {best_ma:.3f} s"
            f"  {format_size(total / best_ma)}/s   runs: {', '.join(f'{t:.3f}' for t in ma_times)}"
        )
        print(
            f"ratio libtorrent/musicark: {best_lt / best_ma:.2f}x wall (above 1: musicark faster)"
        )
        med_lt, med_ma = statistics.median(lt_times), statistics.median(ma_times)
        print(
            f"median wall: libtorrent {med_lt:.3f} s, musicark {med_ma:.3f} s;"
            f" ratio {med_lt / med_ma:.2f}x"
        )
        print(
            f"CPU seconds (best): libtorrent {min(lt_cpu):.3f}, musicark {min(ma_cpu):.3f};"
            f" ratio {min(lt_cpu) / min(ma_cpu):.2f}x (above 1: musicark uses less CPU)"
        )
        print(limit_line("musicark verify", min(limits), cores, best_ma, total))
        rounds = zip(limits, ma_times, loads, strict=True)
        print(
            "  every round, limit / musicark wall (load): "
            + ", ".join(f"{lim / cores / w:.2f} ({ld:.1f})" for lim, w, ld in rounds)
            + f"; hash CPU / musicark CPU (best): {min(limits) / min(ma_cpu):.2f}"
        )
        if dask_times:
            best_dask = min(dask_times)
            print(
                f"musicark --executor dask://... verify (2 workers x 1 thread): {best_dask:.3f} s"
                f"  {format_size(total / best_dask)}/s   runs:"
                f" {', '.join(f'{t:.3f}' for t in dask_times)}"
            )
            print(
                f"ratio cluster/local workers: {best_ma / best_dask:.2f}x best wall,"
                f" {statistics.median(ma_times) / statistics.median(dask_times):.2f}x median"
                " (above 1: the cluster is faster)"
            )
        print(f"load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        stack.close()
        shutil.rmtree(work, ignore_errors=True)


def check(report: VerifyReport, pieces: int) -> None:
    if not report.ok or report.pieces_checked != pieces:
        raise SystemExit(f"musicark verify found problems: {report.problems()[:3]}")


if __name__ == "__main__":
    main()
