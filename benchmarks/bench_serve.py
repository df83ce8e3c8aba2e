"""`musicark serve` under load: search requests per second and latency, measured by wrk.

    .venv/bin/python benchmarks/bench_serve.py                  # 1 M tracks
    .venv/bin/python benchmarks/bench_serve.py --n 200000 --duration 10
    .venv/bin/python benchmarks/bench_serve.py --archive DIR    # an existing archive

Builds an archive from a seeded catalogue (`catalog import`, which builds the index),
starts the real server on a free 127.0.0.1 port, and drives it with wrk: first
/api/search with varied 1-3 word queries (real words from the catalogue, half cut short
as while typing, common words included), then the same server's smallest static file,
the framework's ceiling on this machine, in the same run; then a mixed run with many
connections (`--mixed-connections`, default 200): searches (API and page), track, album
and artist pages and their JSON, coverage, releases, health and static files, in the
proportions of a visitor browsing. Prints requests/s, latency percentiles, non-2xx
answers and socket errors (time-outs included), the server's CPU time per request (its
processes' user + system time: steady on a shared machine where requests/s are not), and
the ratio search / static.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow.parquet as pq

from musicark.archive import init_archive, open_archive
from musicark.catalog.synthetic import generate_catalog

TARGET_RPS = 680.0  # search at 16 connections
TARGET_P99_MS = 100.0
TARGET_MIXED_P99_MS = 300.0  # every route, 200 connections, no time-outs, no errors


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_archive(root: Path, n: int, seed: int) -> Path:
    from musicark.catalog.importer import import_catalog
    from musicark.search import update_index

    archive = init_archive(root / "archive")
    t0 = time.perf_counter()
    pq.write_table(generate_catalog(n, seed=seed), root / "catalogue.parquet")
    import_catalog(archive, [root / "catalogue.parquet"])
    t1 = time.perf_counter()
    update_index(archive)
    print(
        f"archive of {n:,} tracks: import {t1 - t0:.1f} s, index {time.perf_counter() - t1:.1f} s"
    )
    return archive.root


def queries(archive_root: Path, count: int, seed: int) -> list[str]:
    import sqlite3

    conn = sqlite3.connect(f"file:{archive_root / 'catalog.sqlite'}?mode=ro", uri=True)
    titles = [r[0] for r in conn.execute("SELECT title FROM tracks LIMIT 5000")]
    names = [r[0] for r in conn.execute("SELECT name FROM artists LIMIT 2000")]
    conn.close()
    vocab = [w for text in titles + names for w in text.split()]
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        chosen = [rng.choice(vocab) for _ in range(rng.randint(1, 3))]
        if rng.random() < 0.5 and len(chosen[-1]) > 3:
            chosen[-1] = chosen[-1][: rng.randint(2, len(chosen[-1]) - 1)]
        out.append(" ".join(chosen))
    return out


def lua_script(paths: list[str]) -> str:
    items = ",\n".join(f'  "{p}"' for p in paths)
    return (
        f"local paths = {{\n{items}\n}}\nlocal i = 0\n"
        "request = function()\n  i = i + 1\n"
        '  return wrk.format("GET", paths[(i % #paths) + 1])\nend\n'
    )


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def run_wrk(
    url: str,
    script: Path | None,
    *,
    threads: int,
    connections: int,
    duration: int,
    server_pid: int | None = None,
) -> dict[str, float]:
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency"]
    if script is not None:
        cmd += ["-s", str(script)]
    cpu_before = cpu_seconds(server_pid) if server_pid else 0.0
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    figures: dict[str, float] = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    figures["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"(\d+) requests in", out)
    requests = int(m.group(1)) if m else 0
    cpu = cpu_seconds(server_pid) - cpu_before if server_pid else 0.0
    figures["cpu_ms"] = cpu / requests * 1000 if requests else float("nan")
    for pct in ("50", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        figures[f"p{pct}"] = float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    figures["errors"] = float(m.group(1)) if m else 0.0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    figures["socket_errors"] = float(sum(int(g) for g in m.groups()[:3])) if m else 0.0
    figures["timeouts"] = float(m.group(4)) if m else 0.0
    return figures


def mixed_paths(base: str, search_paths: list[str], seed: int) -> list[str]:
    """A visitor's mix of routes, ids found through the API itself (as a browser would)."""
    rng = random.Random(seed)
    tracks: list[str] = []
    albums: list[str] = []
    artists: list[str] = []
    with httpx.Client(base_url=base, timeout=30) as client:
        for p in search_paths[:120]:
            for hit in client.get(p).json().get("hits", [])[:3]:
                tracks.append(hit["id"])
                if hit.get("album_id"):
                    albums.append(hit["album_id"])
        for tid in tracks[:150]:
            artists += [a["id"] for a in client.get(f"/api/tracks/{tid}").json()["artists"][:1]]
    if not (tracks and albums and artists):
        raise SystemExit("the searches found no tracks to visit")
    words = [urllib.parse.parse_qs(urllib.parse.urlsplit(p).query)["q"][0] for p in search_paths]
    routes = [  # (weight, make one path)
        (40, lambda: rng.choice(search_paths)),
        (10, lambda: "/search?" + urllib.parse.urlencode({"q": rng.choice(words)})),
        (10, lambda: f"/tracks/{rng.choice(tracks)}"),
        (8, lambda: f"/api/tracks/{rng.choice(tracks)}"),
        (8, lambda: f"/albums/{rng.choice(albums)}"),
        (7, lambda: f"/artists/{rng.choice(artists)}"),
        (3, lambda: "/coverage"),
        (3, lambda: "/releases"),
        (3, lambda: "/health"),
        (3, lambda: "/"),
        (5, lambda: rng.choice(["/static/style.css", "/static/search.js"])),
    ]
    makers = [make for weight, make in routes for _ in range(weight)]
    return [rng.choice(makers)() for _ in range(4000)]


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of process `pid` and every process below it, from /proc:
    the cost per request it gives hardly depends on what else the machine runs."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError, IndexError):
            continue
    return total


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1_000_000, help="tracks (default 1 M)")
    parser.add_argument("--archive", type=Path, default=None, help="use this archive as it is")
    parser.add_argument("--duration", type=int, default=15, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--workers", type=int, default=2, help="musicark serve --workers (default 2)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--serve-threads", type=int, default=None, help="musicark serve --threads (default its own)"
    )
    parser.add_argument("--mixed-connections", type=int, default=200)
    parser.add_argument("--mixed-duration", type=int, default=20)
    return parser.parse_args(argv)


@contextlib.contextmanager
def serving(root: Path, args: argparse.Namespace, probe: str) -> Iterator[tuple[str, int]]:
    """`musicark serve` on a free port, answering `probe`: (base URL, server pid)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    options = ["--port", str(port), "--log-level", "warning", "--workers", str(args.workers)]
    if args.serve_threads:
        options += ["--threads", str(args.serve_threads)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "musicark", "serve", *options],
        env={**os.environ, "MUSICARK_ARCHIVE": str(root)},
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + probe, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the server did not start")
            time.sleep(0.2)
        yield base, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def report(args: argparse.Namespace, runs: list[tuple[str, dict[str, float]]], loads: str) -> None:
    print(
        f"\nwrk -t{args.threads} -c{args.connections} -d{args.duration}s (mixed:"
        f" -c{args.mixed_connections} -d{args.mixed_duration}s), musicark serve"
        f" --workers {args.workers}, 2000 distinct search queries; load average {loads}"
    )
    for name, f in runs:
        print(
            f"  {name:<30} {f['rps']:8.0f} req/s  p50 {f['p50']:7.2f} ms  p90 {f['p90']:7.2f} ms"
            f"  p99 {f['p99']:7.2f} ms  non-2xx {int(f['errors'])}"
            f"  socket errors {int(f['socket_errors'])}  time-outs {int(f['timeouts'])}"
            f"  server CPU {f['cpu_ms']:.2f} ms/request"
        )
    search, static, mixed = (f for _, f in runs)
    print(f"ratio search / static: {search['rps'] / static['rps']:.2f} of the requests/s")
    cores = os.cpu_count() or 1
    print(
        f"search CPU per request -> at most {cores / search['cpu_ms'] * 1000:.0f} req/s on"
        f" {cores} idle cores"
    )
    ok = search["rps"] >= TARGET_RPS and search["p99"] < TARGET_P99_MS and search["errors"] == 0
    print(
        f"search targets: >= {TARGET_RPS:.0f} req/s and p99 < {TARGET_P99_MS:.0f} ms"
        f" -> {'met' if ok else 'MISSED'}"
    )
    mixed_ok = mixed["p99"] < TARGET_MIXED_P99_MS and not (
        mixed["errors"] or mixed["timeouts"] or mixed["socket_errors"]
    )
    print(
        f"mixed targets: p99 < {TARGET_MIXED_P99_MS:.0f} ms, no errors, no time-outs"
        f" -> {'met' if mixed_ok else 'MISSED'}"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian package wrk)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        root = (
            open_archive(args.archive).root
            if args.archive
            else build_archive(Path(tmp), args.n, args.seed)
        )
        paths = [
            "/api/search?" + urllib.parse.urlencode({"q": q, "limit": 20})
            for q in queries(root, 2000, args.seed)
        ]
        script = Path(tmp) / "search.lua"
        script.write_text(lua_script(paths), encoding="utf-8")
        with serving(root, args, paths[0]) as (base, pid):
            for p in paths[:200]:  # warm caches
                httpx.get(base + p, timeout=5)
            kw = {"threads": args.threads, "server_pid": pid}
            load_before = load_average()
            search = run_wrk(
                base + "/", script, connections=args.connections, duration=args.duration, **kw
            )
            static = run_wrk(
                base + "/static/track.js",
                None,
                connections=args.connections,
                duration=args.duration,
                **kw,
            )
            mixed_script = Path(tmp) / "mixed.lua"
            mixed_script.write_text(lua_script(mixed_paths(base, paths, args.seed)), "utf-8")
            mixed = run_wrk(
                base + "/",
                mixed_script,
                connections=args.mixed_connections,
                duration=args.mixed_duration,
                **kw,
            )
            load_after = load_average()
    runs = [
        ("GET /api/search (top 20)", search),
        ("GET /static/track.js (ceiling)", static),
        (f"mixed routes, {args.mixed_connections} conns", mixed),
    ]
    report(args, runs, f"before {load_before}, after {load_after}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
