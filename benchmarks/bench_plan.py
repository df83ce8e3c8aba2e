"""Plan benchmark: ranking + budget selection + coverage curve, numpy vs one DuckDB query.

    .venv/bin/python benchmarks/bench_plan.py                 # 1 M tracks
    .venv/bin/python benchmarks/bench_plan.py --n 10000000    # the issue's setting

Builds a catalogue with `generate_catalog(n)` written as Parquet and imported with
`musicark catalog import` (kept in --workdir and reused when it already holds n tracks),
then runs each contender in its own process, on the same data:

- numpy:   read: `load_catalog` (catalog.sqlite -> compact numpy columns through
           `catalog.scan.Scanner`, credits and albums joined); plan: `make_plan` with
           `consume`, as the CLI runs it (per-byte, one per ISRC, every track ranked
           with its cumulative bytes and listens) + coverage curve, knee and summary
- duckdb:  read: the same catalogue columns as Arrow tables through the same reader;
           plan: the same selection as ONE DuckDB SQL query over them (joins included),
           then the same curve points from its result
- end to end: `plan_archive` as the CLI runs it (read + plan + Parquet/JSON written)

and reports times, ratios, peak RSS per process and a linear (n log n for time)
extrapolation to 256 M tracks. It also plans the same budget with the popularity strategy
and reports the share of listens both cover.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_TRACKS = 256_000_000


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _peak_mb() -> float:
    """This process's peak RSS (VmHWM: unlike ru_maxrss, not inherited from the parent)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


# ---- building the catalogue ------------------------------------------------------------


def build(workdir: Path, n: int, seed: int) -> tuple[Path, float]:
    import pyarrow.parquet as pq

    from musicark.archive import init_archive, is_archive, open_archive
    from musicark.catalog.importer import import_catalog
    from musicark.catalog.reader import CatalogReader
    from musicark.catalog.synthetic import generate_catalog

    root = workdir / f"archive-{n}-{seed}"
    if is_archive(root):
        with CatalogReader.open(open_archive(root).catalog_path) as reader:
            have = reader.track_count()
        if have == n:
            return root, 0.0
        shutil.rmtree(root)
    archive = init_archive(root).with_settings({"search.follow_catalog": False})
    src = workdir / f"catalogue-{n}-{seed}.parquet"
    if not src.exists():
        pq.write_table(generate_catalog(n, seed=seed), src)
    t0 = time.perf_counter()
    import_catalog(archive, [src])
    return root, time.perf_counter() - t0


# ---- contenders (each in its own process) ---------------------------------------------

DUCKDB_SQL = """
WITH art AS (
    SELECT c.track_id, max(a.popularity) AS apop, max(a.followers) AS afol
    FROM credits c JOIN artists a ON a.id = c.artist_id
    GROUP BY c.track_id
), t AS (
    SELECT t.id, t.duration_ms, t.popularity, t.play_count,
           NULLIF(upper(trim(t.isrc)), '') AS isrc,
           coalesce(art.apop, -1) AS apop, coalesce(art.afol, -1) AS afol,
           coalesce(al.popularity, -1) AS alpop
    FROM tracks t
    LEFT JOIN art ON art.track_id = t.id
    LEFT JOIN albums al ON al.id = t.album_id
), m AS (
    SELECT *,
        CASE WHEN play_count IS NOT NULL THEN play_count::DOUBLE
             WHEN popularity IS NULL THEN 0.0
             ELSE greatest({scale} * pow({base}, least(greatest(popularity, 0), 100) / 100.0)
                           - {scale}, 0.0)
        END AS listens
    FROM t
), b AS (
    SELECT *,
        CASE WHEN duration_ms > 0 THEN
            (duration_ms * (CASE WHEN popularity = 0 OR (popularity IS NULL AND listens <= 0)
                            THEN {bitrate_zero} ELSE {bitrate} END) + 7999) // 8000
        ELSE -1 END AS nbytes,
        (duration_ms > 0)::INT + (popularity IS NOT NULL)::INT + (play_count IS NOT NULL)::INT
            + (alpop >= 0)::INT + (apop >= 0)::INT AS described
    FROM m
), g AS (
    SELECT *,
        CASE WHEN isrc IS NULL THEN 1 ELSE row_number() OVER (
            PARTITION BY isrc ORDER BY (nbytes < 0), listens DESC,
            coalesce(popularity, -1) DESC, described DESC, id) END AS rn,
        CASE WHEN isrc IS NULL THEN listens ELSE sum(listens) OVER (PARTITION BY isrc) END
            AS covered
    FROM b
), c AS (
    SELECT id, nbytes, covered,
        covered / greatest(nbytes, 1) AS ratio,
        CASE WHEN covered > 0 THEN 0.0 ELSE
            0.5 * least(greatest(apop, 0), 100) + 0.25 * least(greatest(alpop, 0), 100)
            + 0.25 * least(100.0, 12.5 * log10(1 + greatest(afol, 0))) END AS sec
    FROM g WHERE rn = 1 AND nbytes >= 0
)
SELECT id, nbytes, covered,
    sum(nbytes) OVER w AS cum_bytes,
    sum(covered) OVER w AS cum_listens
FROM c
WINDOW w AS (ORDER BY ratio DESC, sec DESC, id ROWS UNBOUNDED PRECEDING)
ORDER BY cum_bytes, id
"""


def _load_compiled_loops(catalog: Path) -> None:
    """numba and the read's compiled loops (from their cache): libraries, ~140 MB of them,
    part of the baseline rather than of the bytes per track."""
    import numpy as np

    from musicark.catalog.scan import Scanner
    from musicark.plan.kernels import Lookup, credit_runs

    with Scanner(catalog) as scan:
        scan.ints("SELECT 1", 1)
    one = np.zeros(1, np.int64)
    Lookup(one).find(one)
    out = (np.zeros(1, np.int64), np.zeros(1, np.int16), np.zeros(1, np.int32))
    credit_runs(one, one, (out[1], out[2]), out, 0)


def phase(name: str, root: Path, budget: int, out: Path) -> dict[str, Any]:
    import numpy as np

    from musicark.archive import open_archive
    from musicark.plan.curve import Stored, coverage_curve, knee, marginal_listens_per_tb
    from musicark.plan.load import TRACK_COLUMNS, load_catalog
    from musicark.plan.make import plan_archive
    from musicark.plan.model import calibrate_listens, expected_listens
    from musicark.plan.select import PlanOptions, make_plan

    archive = open_archive(root)
    options = PlanOptions.from_config(archive.config, budget_bytes=budget)
    if name == "numpy":
        # Memory as `plan_archive` (the CLI) runs: system allocator, freed buffers given
        # back (DuckDB keeps its own allocator).
        import pyarrow as pa

        from musicark.plan.load import map_large_allocations

        pa.set_memory_pool(pa.system_memory_pool())
        map_large_allocations()
    _load_compiled_loops(archive.catalog_path)
    base = _rss_mb()
    res: dict[str, Any] = {"baseline_mb": base}
    if name == "end-to-end":
        t0, c0 = time.perf_counter(), time.process_time()
        r = plan_archive(archive, options, out=out)
        res["seconds"] = time.perf_counter() - t0
        res["cpu_seconds"] = time.process_time() - c0
        res["selected"] = r.plan.summary["selected"]
    elif name == "numpy":
        t0 = time.perf_counter()
        cols = load_catalog(archive, held=False)
        res["read_seconds"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        plan = make_plan(cols, options, consume=True)  # as `plan_archive` (the CLI) runs
        res["seconds"] = time.perf_counter() - t0
        res["selected"] = plan.summary["selected"]
        res["model"] = plan.summary["model"]
        res["peak_mb"] = _peak_mb()  # before the second plan below
        del plan, cols
        popular = make_plan(
            load_catalog(archive, held=False),
            PlanOptions.from_config(archive.config, budget_bytes=budget, strategy="popularity"),
            consume=True,
        )
        res["popularity_selected"] = popular.summary["selected"]
    else:
        import duckdb
        import pyarrow as pa

        from musicark.catalog.reader import ColumnReader

        # The listens model is fitted by musicark (the fit is part of numpy's time);
        # the query uses the fitted constants.
        cols = load_catalog(archive, held=False)
        model = calibrate_listens(
            cols.popularity,
            cols.play_count,
            scale=options.listens_scale,
            base=options.listens_base,
        )
        total = float(expected_listens(cols.popularity, cols.play_count, model).sum())
        del cols
        t0 = time.perf_counter()
        with ColumnReader(archive.catalog_path) as reader:
            tables = {
                "tracks": pa.Table.from_batches(reader.track_batches(TRACK_COLUMNS)),
                "credits": reader.credits(("track_id", "artist_id")),
                "artists": reader.artists(("id", "popularity", "followers")),
                "albums": reader.albums(("id", "popularity")),
            }
        res["read_seconds"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        con = duckdb.connect()
        con.execute(f"SET threads = {os.cpu_count() or 1}")
        for tname, table in tables.items():
            con.register(tname, table)
        sql = DUCKDB_SQL.format(
            scale=repr(model.scale),
            base=repr(model.base),
            bitrate=options.bitrate,
            bitrate_zero=options.bitrate_zero,
        )
        ranked = con.sql(sql).to_arrow_table()  # no extra copy of the rows
        cb = ranked.column("cum_bytes").to_numpy().astype(np.int64)
        cl = ranked.column("cum_listens").to_numpy().astype(np.float64)
        k = int(np.searchsorted(cb, budget, side="right"))
        n = tables["tracks"].num_rows
        cum = Stored(cb, cl)
        coverage_curve(cum, total_tracks=n, total_listens=total, budget_bytes=budget)
        knee(cum, total_tracks=n, total_listens=total)
        marginal_listens_per_tb(cum, selected=k, budget_bytes=budget)
        res["seconds"] = time.perf_counter() - t0
        res["selected"] = {
            "tracks": k,
            "bytes": int(cb[k - 1]) if k else 0,
            "pct_listens": round(100 * float(cl[k - 1]) / total, 4) if k else 0.0,
        }
    res.setdefault("peak_mb", _peak_mb())
    return res


def run_phase(name: str, root: Path, budget: int, out: Path) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--phase",
        name,
        "--root",
        str(root),
        "--budget-bytes",
        str(budget),
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"phase {name} failed:\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1_000_000, help="catalogue tracks")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--budget-share",
        type=float,
        default=0.3,
        help="budget as a share of the whole catalogue's estimated bytes",
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep the generated archive here and reuse it"
    )
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--budget-bytes", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, args.root, args.budget_bytes, args.out)))
        return

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-plan-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        print(f"catalogue: {args.n:,} generated tracks (seed {args.seed}) in {workdir}")
        root, import_s = build(workdir, args.n, args.seed)
        if import_s:
            print(
                f"  imported with `catalog import` in {import_s:.1f} s"
                f" ({args.n / import_s:,.0f} tracks/s)"
            )
        import sqlite3

        with sqlite3.connect(root / "catalog.sqlite") as conn:
            ms = conn.execute(
                "SELECT sum(CASE WHEN popularity = 0 THEN duration_ms * 75 ELSE"
                " duration_ms * 160 END) / 8 FROM tracks WHERE duration_ms > 0"
            ).fetchone()[0]
        budget = int(ms * args.budget_share)
        print(f"budget: {budget / 1e9:,.1f} GB ({args.budget_share:.0%} of the catalogue's bytes)")
        out = workdir / "plan.parquet"
        res = {
            name: run_phase(name, root, budget, out) for name in ("numpy", "duckdb", "end-to-end")
        }
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    npy, ddb, e2e = res["numpy"], res["duckdb"], res["end-to-end"]
    n = args.n
    print()
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"read, numpy  (load_catalog: SQLite -> numpy columns, joins): {npy['read_seconds']:.2f} s"
    )
    print(f"read, DuckDB (the same columns as Arrow tables): {ddb['read_seconds']:.2f} s")
    print(f"plan + curve, numpy  : {npy['seconds']:.2f} s   peak RSS {npy['peak_mb']:,.0f} MB")
    print(f"plan + curve, DuckDB : {ddb['seconds']:.2f} s   peak RSS {ddb['peak_mb']:,.0f} MB")
    both_n = npy["read_seconds"] + npy["seconds"]
    both_d = ddb["read_seconds"] + ddb["seconds"]
    print(
        f"  DuckDB / numpy time, read + plan: {both_d / both_n:.2f}x;"
        f" plan only (numpy's joins are in its read): {ddb['seconds'] / npy['seconds']:.2f}x"
        "  (> 1: musicark is faster)"
    )
    print(
        f"end to end (plan_archive: read, plan, write Parquet + JSON): {e2e['seconds']:.2f} s"
        f"   peak RSS {e2e['peak_mb']:,.0f} MB"
        f" ({(e2e['peak_mb'] - e2e['baseline_mb']) * 2**20 / n:.1f} bytes per track"
        f" over the {e2e['baseline_mb']:,.0f} MB after imports)"
    )
    print(
        f"  end to end per million tracks: {e2e['seconds'] / n * 1e6:.2f} s wall,"
        f" {e2e['cpu_seconds'] / n * 1e6:.2f} CPU-s (both cores);"
        f" linear to 256 M: {e2e['seconds'] * TARGET_TRACKS / n / 60:.1f} min wall"
    )
    s_n, s_d = npy["selected"], ddb["selected"]
    print(
        f"selected  numpy : {s_n['tracks']:,} tracks, {s_n['bytes'] / 1e9:,.2f} GB,"
        f" {s_n['pct_listens']:.4f} % of listens"
    )
    print(
        f"selected  DuckDB: {s_d['tracks']:,} tracks, {s_d['bytes'] / 1e9:,.2f} GB,"
        f" {s_d['pct_listens']:.4f} % of listens"
    )
    pop = npy["popularity_selected"]
    print(
        f"strategies at this budget: per-byte {s_n['pct_listens']:.3f} % of listens"
        f" ({s_n['tracks']:,} tracks), popularity {pop['pct_listens']:.3f} %"
        f" ({pop['tracks']:,} tracks)"
    )
    scale = TARGET_TRACKS / n
    logf = math.log(TARGET_TRACKS) / math.log(n)
    for label, r, secs in (
        ("plan + curve", npy, npy["seconds"]),
        ("read + plan + curve", npy, npy["seconds"] + npy["read_seconds"]),
        ("end to end", e2e, e2e["seconds"]),
    ):
        t = secs * scale * logf
        mem = (r["baseline_mb"] + (r["peak_mb"] - r["baseline_mb"]) * scale) / 1024
        print(
            f"extrapolated to {TARGET_TRACKS / 1e6:.0f} M tracks, {label}: {t:,.0f} s,"
            f" {mem:,.1f} GB"
        )


if __name__ == "__main__":
    main()
