"""Torrent creation speed: musicark vs mktorrent (v1) and libtorrent (v1 and hybrid).

Generates a folder of music-sized files (seeded, incompressible), warms the page cache,
then times in the same run:
  - musicark v1 and `mktorrent -t 2` with the same piece size: wall time, and the piece
    hashes must be identical;
  - musicark hybrid and libtorrent's creator (Python binding, sorted file list,
    `set_piece_hashes`) for v1 and hybrid at libtorrent's default piece size, and at
    musicark's piece size;
  - the all-core hash limit: one core's CPU time to hash the same bytes from memory
    (SHA-1 per piece; hybrid: also SHA-256 per 16 KiB block), divided by the cores.
Every run is printed with the load average after it; ratios compare runs of one round.

    .venv/bin/python benchmarks/bench_torrent.py                     # ~400 MB
    .venv/bin/python benchmarks/bench_torrent.py --size 3GB --files 2000
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libtorrent as lt
import numpy as np

from musicark.torrent.create import create_torrent
from musicark.torrent.metainfo import load_torrent
from musicark.units import format_size, parse_size


def generate(root: Path, size: int, files: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    # music-like sizes: log-normal around the mean, at least 64 KiB
    weights = rng.lognormal(0.0, 0.5, files)
    lengths = np.maximum(65536, (weights / weights.sum() * size).astype(np.int64))
    block = rng.integers(0, 256, 8 * 2**20, dtype=np.uint8).tobytes()
    for i, length in enumerate(lengths):
        folder = root / f"{i % 64:02x}"
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"track-{i:06d}.ogg", "wb") as fh:
            left = int(length)
            shift = i * 7919 % len(block)
            while left:
                chunk = (block[shift:] + block[:shift])[:left]
                fh.write(chunk)
                left -= len(chunk)


def warm(root: Path) -> None:
    for dirpath, _, names in os.walk(root):
        for n in names:
            with open(os.path.join(dirpath, n), "rb") as fh:
                while fh.read(8 * 2**20):
                    pass


REPEAT = 5
_LIMIT_BUFFER = np.random.default_rng(7).integers(0, 256, 64 * 2**20, dtype=np.uint8).tobytes()


def hash_limit(total: int, piece: int, *, v2: bool) -> float:
    """CPU seconds one core needs to hash `total` bytes from memory, piece by piece
    (SHA-1), and with `v2` also every 16 KiB block (SHA-256), as a torrent needs; no
    file, no mapping, no Python beyond the calls. The all-core hash limit is this time
    divided by the cores: the wall time no creator or verifier can beat on this machine.
    Measured as the hashing thread's CPU time, so other users' load barely moves it."""
    view = memoryview(_LIMIT_BUFFER)
    sha1, sha256 = hashlib.sha1, hashlib.sha256
    done = 0
    start = time.thread_time()
    while done < total:
        for i in range(0, len(view) - piece + 1, piece):
            h = sha1()
            h.update(view[i : i + piece])
            h.digest()
            for j in range(i, i + piece, 16384) if v2 else ():
                leaf = sha256()
                leaf.update(view[j : j + 16384])
                leaf.digest()
            done += piece
            if done >= total:
                break
    return time.thread_time() - start


def limit_line(what: str, per_core: float, cores: int, ours: float, total: int) -> str:
    """How close `ours` (wall seconds) comes to the all-core limit (`per_core` / `cores`)."""
    limit = per_core / cores
    return (
        f"{what}: {total / ours / 1e6:.0f} MB/s, all-core limit {total / limit / 1e6:.0f} MB/s"
        f" ({cores} x {total / per_core / 1e6:.0f}), {limit / ours:.2f} of the limit (goal 0.85)"
    )


@dataclass
class Timing:
    """Every run's wall time, CPU time (this process and its reaped children), the
    1-minute load average after it, and its result; the best wall and CPU."""

    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)

    @property
    def result(self) -> Any:
        return self.results[-1]

    @property
    def wall(self) -> float:
        return min(self.walls)

    @property
    def cpu(self) -> float:
        return min(self.cpus)


def _cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def interleaved(tools: dict[str, Callable[[], Any]]) -> dict[str, Timing]:
    """Run every tool REPEAT times, round-robin (so load from other users hits all alike)."""
    out = {name: Timing() for name in tools}
    for _ in range(REPEAT):
        for name, fn in tools.items():
            c0, t0 = _cpu(), time.perf_counter()
            result = fn()
            wall, cpu = time.perf_counter() - t0, _cpu() - c0
            t = out[name]
            t.walls.append(wall)
            t.cpus.append(cpu)
            t.loads.append(os.getloadavg()[0])
            t.results.append(result)
    return out


def hy_wall(t: dict[str, Timing]) -> float:
    return t["musicark hybrid"].wall


def libtorrent_create(root: Path, piece_size: int, flags: int) -> bytes:
    entries = sorted(lt.list_files(str(root)), key=lambda e: tuple(e.filename.split("/")))
    ct = lt.create_torrent(entries, piece_size, flags)
    lt.set_piece_hashes(ct, str(root.parent))
    return bytes(lt.bencode(ct.generate()))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="400MB", help="total data size (default 400MB)")
    parser.add_argument("--files", type=int, default=300, help="number of files (default 300)")
    parser.add_argument("--jobs", type=int, default=2, help="hashing threads (default 2)")
    parser.add_argument("--dir", type=Path, default=None, help="work folder (default: a temp dir)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--repeat", type=int, default=5, help="runs per tool, best kept (default 5)"
    )
    args = parser.parse_args()
    global REPEAT
    REPEAT = max(1, args.repeat)
    size = parse_size(args.size)
    work = Path(tempfile.mkdtemp(prefix="bench-torrent-", dir=args.dir))
    try:
        root = work / "data"
        root.mkdir()
        generate(root, size, args.files, args.seed)
        warm(root)
        total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        print(
            f"data: {format_size(total)} in {args.files} files, {args.jobs} jobs, "
            f"best of {REPEAT} runs each, warm cache"
        )

        mk_out = work / "mk.torrent"
        piece = create_torrent(root, format="v1", jobs=args.jobs).piece_length

        def run_mktorrent() -> Path:
            mk_out.unlink(missing_ok=True)
            subprocess.run(
                [
                    "mktorrent",
                    "-t",
                    str(args.jobs),
                    "-d",
                    "-l",
                    str(piece.bit_length() - 1),
                    "-a",
                    "http://127.0.0.1:6969/announce",
                    "-o",
                    str(mk_out),
                    str(root),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            return mk_out

        hy_piece = create_torrent(root, format="hybrid", jobs=args.jobs).piece_length
        t = interleaved(
            {
                "musicark v1": lambda: create_torrent(root, format="v1", jobs=args.jobs),
                f"mktorrent -t {args.jobs}": run_mktorrent,
                "musicark hybrid": lambda: create_torrent(root, format="hybrid", jobs=args.jobs),
                "libtorrent hybrid (default piece)": lambda: libtorrent_create(root, 0, 0),
                "libtorrent hybrid (same piece)": lambda: libtorrent_create(root, hy_piece, 0),
                "libtorrent v1 (default piece)": lambda: libtorrent_create(root, 0, 64),
                "hash limit v1 (one core)": lambda: hash_limit(total, piece, v2=False),
                "hash limit hybrid (one core)": lambda: hash_limit(total, hy_piece, v2=True),
            }
        )
        ours_v1 = load_torrent(t["musicark v1"].result.data)
        mk = load_torrent(mk_out)
        same = mk.pieces == ours_v1.pieces and mk.info_hash_v1 == ours_v1.info_hash_v1
        hy = t["musicark hybrid"].result
        lt.torrent_info(hy.data)
        lt_piece = lt.torrent_info(t["libtorrent hybrid (default piece)"].result).piece_length()
        print(
            f"v1 piece size {piece // 1024} KiB, {len(ours_v1.pieces)} pieces; "
            f"piece hashes and infohash identical to mktorrent: {same}"
        )
        print(
            f"hybrid: musicark {hy_piece // 1024} KiB pieces (padding {hy.padding / total:.1%}), "
            f"libtorrent default {lt_piece // 1024} KiB"
        )
        print(f"{'tool':36s} {'wall s':>7s} {'cpu s':>7s} {'MB/s':>7s}  every run's wall s (load)")
        for name, timing in t.items():
            runs = "  ".join(
                f"{w:.2f} ({ld:.1f})" for w, ld in zip(timing.walls, timing.loads, strict=True)
            )
            print(
                f"{name:36s} {timing.wall:7.2f} {timing.cpu:7.2f}"
                f" {total / timing.wall / 1e6:7.0f}  {runs}"
            )
        v1, mkt = t["musicark v1"], t[f"mktorrent -t {args.jobs}"]
        lt_def = t["libtorrent hybrid (default piece)"]
        lt_same = t["libtorrent hybrid (same piece)"]
        print(
            f"ratio mktorrent/musicark v1, wall: {mkt.wall / v1.wall:.2f}x  cpu: {mkt.cpu / v1.cpu:.2f}x"
        )
        print(
            f"ratio libtorrent/musicark hybrid (libtorrent default piece), wall: "
            f"{lt_def.wall / hy_wall(t):.2f}x  cpu: {lt_def.cpu / t['musicark hybrid'].cpu:.2f}x"
        )
        print(
            f"ratio libtorrent/musicark hybrid (same piece), wall: "
            f"{lt_same.wall / hy_wall(t):.2f}x  cpu: {lt_same.cpu / t['musicark hybrid'].cpu:.2f}x"
        )
        cores = os.cpu_count() or 1
        for what, ours, limit in (
            ("musicark v1", v1, t["hash limit v1 (one core)"]),
            ("musicark hybrid", t["musicark hybrid"], t["hash limit hybrid (one core)"]),
        ):
            per_core = min(limit.results)
            print(limit_line(what, per_core, cores, ours.wall, total))
            fractions = [lim / cores / w for lim, w in zip(limit.results, ours.walls, strict=True)]
            # the fraction is (hash CPU / our CPU) x (our CPU / (cores x wall)): the cost of
            # each byte beyond hashing it, and how busy the cores were (other users' load
            # lowers the second, barely the first)
            busy = [c / (cores * w) for c, w in zip(ours.cpus, ours.walls, strict=True)]
            print(
                f"  every run (limit of the same round / wall): "
                f"{', '.join(f'{x:.2f}' for x in fractions)};"
                f" hash CPU / our CPU (best): {per_core / ours.cpu:.2f};"
                f" our CPU / (cores x wall): {', '.join(f'{x:.2f}' for x in busy)}"
            )
        print(f"load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
        ok = same and v1.wall <= mkt.wall and lt_def.wall / hy_wall(t) >= 2.0
        print(
            f"goals (v1 wall <= mktorrent, identical hashes, hybrid >= 2x libtorrent wall): "
            f"{'met' if ok else 'NOT met'}"
        )
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
