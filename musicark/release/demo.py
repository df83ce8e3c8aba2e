"""The demo's release stage: pack (in the plan's order when there is one), publish, then
locate one track offline from the published metadata alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from musicark.archive import Archive

RELEASE = "demo"


def _matched(archive: Archive) -> int:
    if not archive.state_path.exists():
        return 0
    conn = archive.connect_state(readonly=True)
    try:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "renditions" not in names:
            return 0
        return int(
            conn.execute("SELECT count(*) FROM renditions WHERE preferred = 1").fetchone()[0]
        )
    finally:
        conn.close()


def _latest_plan(archive: Archive) -> Path | None:
    from musicark.plan.io import plans_dir

    folder = plans_dir(archive)
    plans = sorted(folder.glob("*.parquet"), key=lambda p: (p.stat().st_mtime, p.name))
    return plans[-1] if plans else None


def run_release_demo(archive: Archive) -> Iterator[str]:
    """Pack the demo release, publish its metadata and locate one track offline."""
    from musicark.release.locate import locate
    from musicark.release.pack import pack
    from musicark.release.publish import publish

    if _matched(archive) == 0:
        yield "the store holds no audio matched to the catalogue: nothing to pack"
        return
    plan = _latest_plan(archive)
    summary = pack(archive, RELEASE, plan=plan, target_size="20MB", format="hybrid")
    if plan is not None:
        yield f"packing in the rank order of {plan.name}"
    yield summary.describe()
    for folder in summary.folders:
        yield f"  {folder.name}: {folder.files} files, infohash {folder.infohash_v1}"
    published = publish(archive, RELEASE)
    yield published.describe()
    metadata = archive.root / published.data_path
    ledger = archive.connect_state(readonly=True)
    try:
        row = ledger.execute(
            "SELECT isrc FROM release_files WHERE isrc IS NOT NULL ORDER BY serial LIMIT 1"
        ).fetchone()
    finally:
        ledger.close()
    if row:
        for loc in locate(metadata, row[0]):
            first, last = loc.byte_range
            yield (
                f"locate {row[0]} (offline, from {metadata.name}): {loc.full_path},"
                f" bytes {first}-{last}, pieces {loc.first_piece}-{loc.last_piece}"
            )
            yield f"  {loc.magnet}"
