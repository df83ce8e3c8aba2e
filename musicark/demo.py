"""`make demo`: build a small demo archive end to end from generated, CC0 metadata.

Each stage is a function `stage(archive, ctx) -> None`; later parts of the pipeline
append theirs to STAGES. The demo never touches the network.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musicark.archive import Archive, init_archive
from musicark.errors import MusicarkError


@dataclass
class DemoContext:
    workdir: Path
    tracks: int
    seed: int
    say: Callable[[str], None]
    data: dict[str, Any] = field(default_factory=dict)


def generate_catalog(archive: Archive, ctx: DemoContext) -> None:
    import pyarrow.parquet as pq

    from musicark.catalog import synthetic

    path = ctx.workdir / "demo-catalogue.parquet"
    pq.write_table(synthetic.generate_catalog(ctx.tracks, seed=ctx.seed, source="demo"), path)
    ctx.data["catalogue_file"] = path
    ctx.say(f"generated {ctx.tracks} tracks of CC0 demo metadata: {path.name}")


def import_catalog(archive: Archive, ctx: DemoContext) -> None:
    from musicark.catalog import importer

    summary = importer.import_catalog(archive, [ctx.data["catalogue_file"]])
    ctx.say(f"imported: {summary.describe()}")


def summarize_catalog(archive: Archive, ctx: DemoContext) -> None:
    from musicark.catalog.stats import catalog_stats, format_stats

    ctx.say(format_stats(catalog_stats(archive)))


def ingest_audio(archive: Archive, ctx: DemoContext) -> None:
    from musicark.catalog.synthetic import generate_catalog
    from musicark.store.dupes import find_dupes
    from musicark.store.ingest import ingest
    from musicark.store.synthetic import demo_files

    tracks = generate_catalog(ctx.tracks, seed=ctx.seed, source="demo")
    files = demo_files(ctx.workdir / "audio", tracks, seed=ctx.seed)
    summary = ingest(archive, [files[0].parent], jobs=1)
    counts = ", ".join(f"{n} {status}" for status, n in sorted(summary.counts.items()))
    ctx.say(f"ingested {summary.files} generated audio files: {counts}")
    for group in find_dupes(archive).same_recording:
        best = group.preferred
        if best is not None:
            ctx.say(f"track {group.track_id}: preferred {best.codec} ({best.preferred_reason})")


def plan_budget(archive: Archive, ctx: DemoContext) -> None:
    from musicark.plan import PlanOptions, plan_archive

    options = PlanOptions.from_config(archive.config, budget_bytes=2_000_000_000)
    png = ctx.workdir.parent / "coverage.png"
    result = plan_archive(archive, options, plot=png)
    sel = result.plan.summary["selected"]
    ctx.say(
        f"plan (per-byte, 2 GB budget): {sel['tracks']} tracks, {sel['pct_tracks']:.1f} % of"
        f" tracks, {sel['pct_listens']:.1f} % of expected listens; coverage curve: {png}"
    )


def pack_publish_locate(archive: Archive, ctx: DemoContext) -> None:
    from musicark.release.demo import run_release_demo

    for line in run_release_demo(archive):
        ctx.say(line)


def verify_release(archive: Archive, ctx: DemoContext) -> None:
    from musicark.swarm.sources import archive_manifest, archive_torrents
    from musicark.swarm.verify import verify_torrent
    from musicark.torrent.metainfo import load_torrent

    for item in archive_torrents(archive):
        if item.torrent_path is None or item.data_path is None:
            continue
        torrent = load_torrent(item.torrent_path)
        rep = verify_torrent(
            torrent, item.data_path, manifest=archive_manifest(archive, torrent.name)
        )
        counts = ", ".join(f"{n} {status}" for status, n in rep.counts().items() if n)
        ctx.say(
            f"verify {rep.torrent}: {'OK' if rep.ok else 'PROBLEMS'} ({counts},"
            f" {rep.pieces_checked} pieces checked)"
        )


def search_catalog(archive: Archive, ctx: DemoContext) -> None:
    from musicark.search import search, update_index

    ctx.say(update_index(archive).describe())
    results = search(archive, "love nig", limit=3)
    ctx.say(f"search 'love nig': {results.total} tracks match; the first {len(results.hits)}:")
    for hit in results.hits:
        ctx.say(f"  {hit.title} — {hit.artists} — {hit.album} (popularity {hit.popularity})")


def _title(stage: Callable[..., None]) -> str:
    """`import_catalog` -> "import catalogue": code names say catalog, prose catalogue."""
    return stage.__name__.replace("_", " ").replace("catalog", "catalogue")


STAGES: list[Callable[[Archive, DemoContext], None]] = [
    generate_catalog,
    import_catalog,
    summarize_catalog,
    ingest_audio,
    plan_budget,
    search_catalog,
    pack_publish_locate,
    verify_release,
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m musicark.demo", description=__doc__)
    parser.add_argument("--dir", type=Path, default=Path("demo-archive"), help="demo folder")
    parser.add_argument("--tracks", type=int, default=5000, help="catalogue size")
    parser.add_argument("--seed", type=int, default=7, help="random seed")
    args = parser.parse_args(argv)
    if args.dir.exists():
        shutil.rmtree(args.dir)
    workdir = args.dir / "inputs"
    workdir.mkdir(parents=True)
    try:
        archive = init_archive(args.dir / "archive")
        ctx = DemoContext(workdir=workdir, tracks=args.tracks, seed=args.seed, say=print)
        print(f"demo archive: {archive.root}")
        for stage in STAGES:
            print(f"== {_title(stage)}")
            stage(archive, ctx)
    except MusicarkError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    print(f"done. Try: MUSICARK_ARCHIVE={archive.root} .venv/bin/musicark catalog stats")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
