"""The whole pipeline at scale on this machine: generate → import → plan → index → search → publish.

    make bench-scale                     # N = 50 M tracks
    make bench-scale N=2000000
    .venv/bin/python benchmarks/bench_scale.py --n 2000000 [--workdir DIR] [--out FILE]
    .venv/bin/python benchmarks/bench_scale.py --n 50000000 --keep DIR [--redo plan ...]

With --keep DIR the files stay in DIR and each finished stage's figures are written to
DIR/results.json at once: a run that is stopped resumes at the first unfinished stage, and
--redo re-measures the named stages on the kept files.

Each stage runs in its own process, so its peak RSS (VmHWM, from wait4) and CPU time
(user + system, its children included) are its own:

- generate: a realistic catalogue (`generate_catalog(vocabulary="wordfreq")`) written as
  Parquet in chunks of 1 M tracks (ids offset per chunk);
- import:   `musicark catalog import` of those files (indexes included);
- plan:     `musicark plan` with the reference budget scaled to N (300 TB at 256 M);
- index:    `musicark index rebuild` (the search index);
- search:   1 000 top-20 queries of 1-3 catalogue words, the last one half typed;
- publish:  N x 86/256 files in ~57 000-file torrents written to the release tables, then
  `publish` (ledger, torrents.json, locate.sqlite, metadata torrent; the catalogue export
  is left out unless --publish-catalog) and `locate` p99 offline (benchmarks/bench_locate.py).

Prints a table per stage (wall, CPU, peak RSS, disk used after it) and writes it to
benchmarks/scale.md with each figure extrapolated linearly to 256 M tracks (86 M files
for publish). Not part of `make test`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TRACKS = 256_000_000
FILES = 86_000_000
CHUNK = 1_000_000
STAGES = ("generate", "import", "plan", "index", "search", "publish")


def _disk(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, f)).st_blocks * 512
    return total


def _run(cmd: list[str], env: dict[str, str], log: Path) -> dict[str, Any]:
    """Run `cmd`; wall, CPU (user+sys, children included) and peak RSS from wait4."""
    t0 = time.perf_counter()
    with open(log, "wb") as out, open(log.with_suffix(".err"), "wb") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err)
        _pid, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(log.with_suffix(".err").read_text(errors="replace")[-4000:])
        raise SystemExit(f"stage failed ({proc.returncode}): {' '.join(cmd)}")
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss": usage.ru_maxrss * 1024,
        "stdout": log.read_text(errors="replace"),
    }


def _stage_generate(work: Path, n: int, seed: int) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from musicark.archive import init_archive
    from musicark.catalog.synthetic import generate_catalog
    from musicark.config import CONFIG_NAME

    # the index stage builds the search index; the import must not do it as well
    config = init_archive(work / "archive").root / CONFIG_NAME
    text = config.read_text()
    config.write_text(text.replace("follow_catalog = true", "follow_catalog = false"))
    src = work / "catalogue"
    src.mkdir(exist_ok=True)
    for k, start in enumerate(range(0, n, CHUNK)):
        t = generate_catalog(min(CHUNK, n - start), seed=seed + k, vocabulary="wordfreq")
        tag = pa.scalar(f"c{k}-")

        def prefixed(a: pa.Array | pa.ChunkedArray, tag: pa.Scalar = tag) -> pa.Array:
            return pc.binary_join_element_wise(tag, a, "")

        ids = pc.add(pa.array(range(t.num_rows), pa.int64()), start).cast(pa.string())
        arts = t.column("artists").combine_chunks()
        flat = arts.values
        fields = [flat.field(i) for i in range(flat.type.num_fields)]
        fields[0] = prefixed(fields[0])
        names = [flat.type.field(i).name for i in range(flat.type.num_fields)]
        arts = pa.ListArray.from_arrays(arts.offsets, pa.StructArray.from_arrays(fields, names))
        for col, value in (
            ("id", pc.binary_join_element_wise("tr", ids, "")),
            ("album_id", prefixed(t.column("album_id").combine_chunks())),
            ("artists", arts),
        ):
            t = t.set_column(t.schema.get_field_index(col), col, value)
        pq.write_table(t, src / f"part-{k:04d}.parquet")
    return {}


def _stage_search(archive: Path, work: Path, queries: int, seed: int) -> dict[str, Any]:
    import random

    import numpy as np
    import pyarrow.parquet as pq

    from musicark.archive import open_archive
    from musicark.search import TrackIndex

    rng = random.Random(seed)
    part = pq.read_table(sorted((work / "catalogue").glob("*.parquet"))[0], columns=["title"])
    vocab = [w for t in part.column("title").to_pylist()[:20000] for w in t.split()]
    qs = []
    for _ in range(queries):
        chosen = [rng.choice(vocab) for _ in range(rng.randint(1, 3))]
        if len(chosen[-1]) > 3 and rng.random() < 0.5:
            chosen[-1] = chosen[-1][: rng.randint(2, len(chosen[-1]) - 1)]
        qs.append(" ".join(chosen))
    index = TrackIndex.open(open_archive(archive))
    for q in qs[:20]:
        index.search(q)
    times = []
    for q in qs:
        t = time.perf_counter()
        index.search(q, limit=20)
        times.append(time.perf_counter() - t)
    a = np.asarray(times) * 1000
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99))}


def _stage_publish(archive: Path, files: int, catalog: bool) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    import bench_locate as bl

    from musicark.archive import open_archive
    from musicark.release.publish import publish

    arc = open_archive(archive)
    torrents, setup_s = bl.build_release(arc, files)
    t0 = time.perf_counter()
    if catalog:
        summary = publish(arc, bl.RELEASE, catalog=True)
        folder = arc.root / summary.data_path
        lat: dict[str, dict[str, float]] = {}
        sizes: dict[str, int] = {p.name: p.stat().st_size for p in folder.iterdir() if p.is_file()}
        wall = time.perf_counter() - t0
    else:
        m: dict[str, Any] = bl.measure(arc, files, queries=300)
        lat = m["latency"]
        sizes = m["sizes"]
        wall = float(m["publish_s"])
    worst = max((v["p99"] for v in lat.values()), default=float("nan"))
    return {
        "files": files,
        "torrents": torrents,
        "setup_s": setup_s,
        "publish_s": wall,
        "sizes": sizes,
        "locate_p99_ms": worst,
    }


def child(args: argparse.Namespace) -> None:
    if args.stage == "generate":
        result = _stage_generate(args.work, args.n, args.seed)
    elif args.stage == "search":
        result = _stage_search(args.work / "archive", args.work, 1000, args.seed)
    else:
        result = _stage_publish(
            args.work / "archive", max(1, args.n * FILES // TRACKS), args.publish_catalog
        )
    print("RESULT " + json.dumps(result))


def _commands(args: argparse.Namespace, work: Path) -> dict[str, list[str]]:
    py, me, arc = sys.executable, str(Path(__file__).resolve()), str(work / "archive")
    cli = [py, "-m", "musicark"]
    base = [py, me, "--n", str(args.n), "--seed", str(args.seed), "--work", str(work)]
    if args.publish_catalog:
        base.append("--publish-catalog")
    parts = sorted(str(p) for p in (work / "catalogue").glob("*.parquet"))
    budget = f"{300_000 * args.n / TRACKS:.3f}GB"
    return {
        "generate": [*base, "--stage", "generate"],
        "import": [*cli, "catalog", "import", "--archive", arc, *parts],
        "plan": [*cli, "plan", "--archive", arc, "--budget", budget],
        "index": [*cli, "index", "rebuild", "--archive", arc],
        "search": [*base, "--stage", "search"],
        "publish": [*base, "--stage", "publish"],
    }


def _table(n: int, rows: dict[str, dict[str, Any]], base_rss: int) -> list[str]:
    """Measured figures, then 256 M / 86 M: time and disk grow linearly with the tracks
    (publish: files); memory only in `plan` (per-track columns), the other stages stream
    in chunks of a fixed size, so their peak stays what was measured."""
    files = max(1, n * FILES // TRACKS)
    gib = 2**30
    out = [
        "| stage | load after | wall | CPU | peak RSS | disk after | wall at 256 M | CPU at 256 M"
        " | peak RSS at 256 M | disk at 256 M |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    total_wall = total_cpu = 0.0
    for name, r in rows.items():
        f = (FILES / files) if name == "publish" else (TRACKS / n)
        # plan: the interpreter and libraries once, plus its per-track columns times f
        rss = base_rss + (r["rss"] - base_rss) * f if name == "plan" else r["rss"]
        if name == "search":  # a fixed number of queries: latency, not volume
            at_wall = at_cpu = "(latency below)"
        else:
            total_wall += r["wall"] * f
            total_cpu += r["cpu"] * f
            at_wall, at_cpu = f"{r['wall'] * f / 60:.0f} min", f"{r['cpu'] * f / 60:.0f} min"
        out.append(
            f"| {name} | {r.get('load', float('nan')):.1f} | {r['wall']:.0f} s | {r['cpu']:.0f} s | {r['rss'] / gib:.2f} GiB"
            f" | {r['disk'] / gib:.2f} GiB | {at_wall} | {at_cpu} | {rss / gib:.1f} GiB"
            f" | {r['disk'] * f / gib:.0f} GiB |"
        )
    out.append(
        f"| **total** | | {sum(r['wall'] for r in rows.values()):.0f} s"
        f" | {sum(r['cpu'] for r in rows.values()):.0f} s | | | {total_wall / 3600:.1f} h"
        f" | {total_cpu / 3600:.1f} h | | |"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=50_000_000, help="tracks (default 50 M)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=None, help="temporary files here")
    parser.add_argument("--keep", type=Path, default=None, help="work in DIR, keep it, resume")
    parser.add_argument("--redo", nargs="+", choices=STAGES, default=[], help="re-measure")
    parser.add_argument(
        "--report-only", action="store_true", help="with --keep: the report of the stages done"
    )
    parser.add_argument("--out", type=Path, default=HERE / "scale.md", help="the report")
    parser.add_argument("--publish-catalog", action="store_true", help="export it on publish")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage:
        child(args)
        return 0

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent), *filter(None, [env.get("PYTHONPATH")])])
    load0 = os.getloadavg()
    rows: dict[str, dict[str, Any]] = {}
    extra: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        if args.keep:
            work = args.keep.resolve()
            work.mkdir(parents=True, exist_ok=True)
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=args.workdir)))
        saved = work / "results.json"
        done: dict[str, Any] = json.loads(saved.read_text()) if saved.exists() else {}
        if done.get("n", args.n) != args.n:
            raise SystemExit(f"{work} holds a run at n={done['n']}, not {args.n}")
        for name in args.redo:
            done.get("stages", {}).pop(name, None)
        base = "import musicark.plan.make, musicark.cli, numpy, pyarrow.parquet, numba"
        base_rss = (
            (None if args.redo else done.get("base_rss"))  # libraries may have changed
            or _run([sys.executable, "-c", base], env, work / "base.log")["rss"]
        )
        for name in STAGES:
            if name in done.get("stages", {}):
                r = done["stages"][name]
                rows[name] = r
                extra[name] = r.get("extra", {})
                print(f"{name:<9} (kept from {saved})", flush=True)
                continue
            if args.report_only:
                continue
            cmd = _commands(args, work)[name]
            r = _run(cmd, env, work / f"{name}.log")
            r["disk"] = _disk(work)
            r["load"] = os.getloadavg()[0]
            for line in r["stdout"].splitlines():
                if line.startswith("RESULT "):
                    extra[name] = json.loads(line[7:])
            r["extra"] = extra.get(name, {})
            rows[name] = r
            if args.keep:
                done = {
                    "n": args.n,
                    "base_rss": base_rss,
                    "load0": done.get("load0", load0),
                    "stages": {
                        **done.get("stages", {}),
                        name: {k: v for k, v in r.items() if k != "stdout"},
                    },
                }
                saved.write_text(json.dumps(done, indent=1))
            print(
                f"{name:<9} wall {r['wall']:8.1f} s  CPU {r['cpu']:8.1f} s"
                f"  peak RSS {r['rss'] / 2**30:6.2f} GiB  disk {r['disk'] / 2**30:7.2f} GiB"
                f"  load {r['load']:.1f}  {json.dumps(extra.get(name, {}))}",
                flush=True,
            )
        load0 = tuple(done.get("load0", load0))
    load1 = os.getloadavg()
    table = _table(args.n, rows, base_rss)
    search = extra.get("search", {})
    pub = extra.get("publish", {})
    lines = [
        "# Scale: the whole pipeline on one machine",
        "",
        f"`make bench-scale N={args.n}` ({args.n:,} tracks; publish: {pub.get('files', 0):,}"
        f" files in {pub.get('torrents', 0)} torrents) on {os.cpu_count()} cores,"
        f" load average {load0[0]:.1f} at the start and {load1[0]:.1f} at the end"
        " (a shared, busy machine: read the figures as upper bounds).",
        "Each stage ran in its own process; CPU is user + system of the stage's processes,",
        "peak RSS is its VmHWM, disk is everything under the work directory after the stage.",
        "The last four columns extrapolate to 256 M tracks (publish: to 86 M files): time and",
        "disk linearly; peak RSS linearly for plan only (its per-track columns), as measured for",
        "the stages that stream in fixed-size chunks (generate, import, index, search, publish).",
        "",
        *table,
        "",
        f"Search (1 000 top-20 queries, 1-3 words, last half typed): p50"
        f" {search.get('p50_ms', float('nan')):.2f} ms, p99 {search.get('p99_ms', float('nan')):.2f} ms.",
        f"Locate offline (ISRC, sha256, sha256 prefix, track id): worst p99"
        f" {pub.get('locate_p99_ms', float('nan')):.2f} ms;"
        f" locate.sqlite {pub.get('sizes', {}).get('locate.sqlite', 0) / 2**20:.0f} MiB.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
