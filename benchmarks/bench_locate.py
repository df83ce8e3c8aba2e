"""Locate at scale: publish's locate index and torrents.json for N files, and `locate` latency.

    .venv/bin/python benchmarks/bench_locate.py                  # 1 M files
    .venv/bin/python benchmarks/bench_locate.py --n 5000000      # extrapolated to 86 M

Writes a release of N files in ~N/57 000 torrents (the reference effort's first torrents
held ~60 000 files each) straight into an archive's release tables, as `musicark pack`
leaves them (each torrent's .torrent is a small placeholder: publish only copies it),
then runs `publish` itself (catalogue export off: the catalogue is measured elsewhere) and
reports its time, the size of `locate.sqlite`, `files.jsonl.zst` and `torrents.json`,
and `locate` latency offline against the metadata folder, by ISRC, sha256 (full and a
16-digit prefix) and track id. Build time and size are extrapolated linearly to 86 M
files; lookups are B-tree searches, one level deeper at most.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from musicark.archive import Archive, init_archive
from musicark.release import schema
from musicark.release.locate import LOCATE_DB, locate
from musicark.release.publish import publish
from musicark.sqlite import transaction

TARGET_FILES = 86_000_000
FILES_PER_TORRENT = 57_000
PIECE = 4 * 2**20
TARGET_P99_MS = 10.0
RELEASE = "bench"


@dataclass(frozen=True)
class Samples:
    isrc: list[str]
    sha256: list[str]
    track_id: list[int]


def _isrc(serial: int) -> str:
    return f"Q{chr(65 + serial // 10**7 % 26)}K7Q{serial % 10**7:07d}"


def _rows(n: int, seed: int) -> Iterator[tuple[str, list[tuple], list[tuple], int, int]]:
    """Per torrent: its name, release_files rows, release_names rows, data size, files."""
    rng = np.random.default_rng(seed)
    serial = 0
    t = 0
    while serial < n:
        t += 1
        name = f"{RELEASE}-{t:05d}"
        count = min(FILES_PER_TORRENT, n - serial)
        sizes = rng.integers(2_000_000, 9_000_000, count)
        offsets = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        digests = rng.bytes(32 * count)
        files, names = [], []
        for i in range(count):
            s = serial + i + 1
            size, off = int(sizes[i]), int(offsets[i])
            artist, title = f"Artist {s % 997_003}", f"Song {s}"
            path = f"{s // 1000:06d}/{s:09d}.ogg"
            files.append(
                (
                    name,
                    path,
                    s,
                    digests[32 * i : 32 * i + 32].hex(),
                    s * 3,
                    _isrc(s),
                    orjson.dumps([artist]).decode(),
                    title,
                    f"Album {s // 12}",
                    "cc0",
                    size,
                    off,
                    off // PIECE,
                    (off + size - 1) // PIECE,
                )
            )
            names.append((f"{artist.lower()} - {title.lower()}", name, path))
        serial += count
        yield name, files, names, int(sizes.sum()), count


def build_release(archive: Archive, n: int, *, seed: int = 0) -> tuple[int, float]:
    """N files in the release tables (secondary indexes built after the load); torrents."""
    t0 = time.perf_counter()
    conn = schema.connect(archive)
    base = archive.releases_dir / RELEASE
    (base / "torrents").mkdir(parents=True, exist_ok=True)
    conn.execute("PRAGMA cache_size=-262144")
    saved = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'release_files'"
        " AND sql IS NOT NULL"
    ).fetchall()
    torrents = 0
    with transaction(conn):
        for (sql,) in saved:
            conn.execute(f"DROP INDEX {sql.split()[2]}")
        conn.execute("INSERT INTO releases (name, created) VALUES (?, ?)", (RELEASE, schema.now()))
        for name, files, names, data_size, count in _rows(n, seed):
            conn.executemany(f"INSERT INTO release_files VALUES ({','.join('?' * 14)})", files)
            conn.executemany("INSERT INTO release_names VALUES (?, ?, ?)", names)
            torrent_rel = f"releases/{RELEASE}/torrents/{name}.torrent"
            (archive.root / torrent_rel).write_bytes(
                b"d4:infod4:name" + str(len(name)).encode() + b":" + name.encode() + b"ee"
            )
            ih = os.urandom(20).hex()
            conn.execute(
                "INSERT INTO torrents (name, release, kind, first_serial, last_serial, format,"
                " piece_length, infohash_v1, magnet, torrent_path, data_path, torrent_size,"
                " file_count, data_size, created) VALUES (?, ?, 'audio', ?, ?, 'v1', ?, ?, ?,"
                " ?, ?, 100, ?, ?, ?)",
                (
                    name,
                    RELEASE,
                    files[0][2],
                    files[-1][2],
                    PIECE,
                    ih,
                    f"magnet:?xt=urn:btih:{ih}&dn={name}",
                    torrent_rel,
                    f"releases/{RELEASE}/data/{name}",
                    count,
                    data_size,
                    schema.now(),
                ),
            )
            torrents += 1
        for (sql,) in saved:
            conn.execute(sql)
    conn.close()
    return torrents, time.perf_counter() - t0


def samples(n: int, k: int, *, seed: int = 0) -> Samples:
    """`k` existing ISRCs, sha256s and track ids, read back from the release (random rows)."""
    rng = random.Random(seed)
    return Samples(
        [_isrc(rng.randint(1, n)) for _ in range(k)],
        [],
        [rng.randint(1, n) * 3 for _ in range(k)],
    )


def timed(folder: Path, queries: list[str]) -> dict[str, float]:
    times = []
    for q in queries:
        t = time.perf_counter()
        found = locate(folder, q)
        times.append(time.perf_counter() - t)
        assert found, q
    a = np.asarray(times) * 1000
    return {"p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99))}


def measure(archive: Archive, n: int, *, queries: int = 1000) -> dict[str, object]:
    """Publish the release, then time `locate` offline against its metadata folder."""
    t0, c0 = time.perf_counter(), time.process_time()
    summary = publish(archive, RELEASE, catalog=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    folder = archive.root / summary.data_path
    sizes = {
        f: (folder / f).stat().st_size for f in (LOCATE_DB, "files.jsonl.zst", "torrents.json")
    }
    s = samples(n, queries)
    with __import__("sqlite3").connect(f"file:{folder / LOCATE_DB}?mode=ro", uri=True) as db:
        rng = random.Random(1)
        picks = [rng.randint(1, n) for _ in range(queries)]
        sha = [
            db.execute("SELECT sha256 FROM release_files WHERE serial = ?", (p,)).fetchone()
            for p in picks[: min(queries, 200)]
        ]
    sha256 = [r[0] for r in sha if r]
    s = Samples(s.isrc, sha256 * (queries // max(len(sha256), 1)), s.track_id)
    for q in s.isrc[:20]:  # warm the page cache as a running service would be
        locate(folder, q)
    lat = {
        "isrc": timed(folder, s.isrc),
        "sha256": timed(folder, s.sha256),
        "sha256 prefix": timed(folder, [h[:16] for h in s.sha256]),
        "track id": timed(folder, [str(t) for t in s.track_id]),
    }
    return {"publish_s": wall, "publish_cpu_s": cpu, "sizes": sizes, "latency": lat}


def report(n: int, torrents: int, setup_s: float, m: dict[str, object]) -> list[str]:
    f = TARGET_FILES / n
    sizes: dict[str, int] = m["sizes"]  # type: ignore[assignment]
    lat: dict[str, dict[str, float]] = m["latency"]  # type: ignore[assignment]
    pub = float(m["publish_s"])  # type: ignore[arg-type]
    lines = [
        f"{n:,} files in {torrents} torrents (release tables written in {setup_s:.1f} s);"
        f" load average {os.getloadavg()[0]:.1f}",
        f"publish (ledger + torrents.json + locate.sqlite + metadata torrent): {pub:.1f} s wall,"
        f" {float(m['publish_cpu_s']):.1f} s CPU",  # type: ignore[arg-type]
    ]
    for name, size in sizes.items():
        lines.append(f"  {name:<16} {size / 1e6:10.1f} MB  -> 86 M files: {size * f / 1e9:8.1f} GB")
    lines.append(f"  extrapolated publish at 86 M files: {pub * f / 60:.0f} min (linear)")
    worst = max(v["p99"] for v in lat.values())
    for kind, v in lat.items():
        lines.append(f"  locate by {kind:<14} p50 {v['p50']:6.2f} ms  p99 {v['p99']:6.2f} ms")
    lines.append(
        f"target: locate p99 < {TARGET_P99_MS:.0f} ms offline -> "
        f"{'met' if worst < TARGET_P99_MS else 'MISSED'} (worst p99 {worst:.2f} ms)"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1_000_000, help="files (default 1 M)")
    parser.add_argument("--queries", type=int, default=1000, help="lookups per kind")
    parser.add_argument("--workdir", type=Path, default=None, help="keep files here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        archive = init_archive(Path(tmp) / "archive")
        torrents, setup_s = build_release(archive, args.n)
        m = measure(archive, args.n, queries=args.queries)
        print("\n".join(report(args.n, torrents, setup_s, m)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
