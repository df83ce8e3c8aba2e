"""Which stored files a pack takes, in which order, and how they are cut into folders.

A candidate is the preferred rendition of a catalogue track that no release holds yet and
whose rights allow redistribution (any rights with `include_restricted`). Candidates are
ordered by collection, then plan rank when a plan is given, else album, disc and track
number; a folder is a consecutive run of one collection within the size and file limits.
With a plan, a track of the plan's `zero` tier is packed as its derived rendition (made by
`musicark transcode` at `[plan] bitrate_zero_popularity`) when there is one; the original
stays in the store.

Rights come from the catalogue; where it has none (missing or `unknown`), the licence the
acquiring source stated for the file (`musicark acquire`) sets them, and the candidate
carries the rights that were used.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musicark.archive import Archive
from musicark.catalog.reader import CatalogReader
from musicark.catalog.rights import REDISTRIBUTABLE
from musicark.errors import ReleaseError, UsageError
from musicark.release.names import collection_name
from musicark.units import format_size


@dataclass(frozen=True)
class Candidate:
    sha256: str
    size: int
    track_id: int
    codec: str | None
    container: str | None
    title: str | None = None
    isrc: str | None = None
    rights: str | None = None
    album: str | None = None
    collection: str = "unmatched"
    artists: tuple[str, ...] = ()
    order: tuple[Any, ...] = ()


@dataclass
class Selection:
    """The candidates of one pack, in release order, and what was left out and why."""

    candidates: list[Candidate] = field(default_factory=list)
    withheld_rights: int = 0  # restricted or unknown rights, left in the dark archive
    already_released: int = 0
    not_in_catalog: int = 0


def _store_ready(conn: sqlite3.Connection) -> bool:
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return {"blobs", "renditions"} <= names


def _plan_ranks(plan: Path) -> tuple[dict[int, int], set[int]]:
    """(track id -> plan rank, track ids of the plan's zero tier)."""
    import pyarrow.parquet as pq

    from musicark.plan.io import read_plan

    has_tier = "tier" in pq.read_schema(Path(plan)).names if Path(plan).exists() else False
    table = read_plan(Path(plan), columns=["rank", "track_id"] + (["tier"] if has_tier else []))
    ranks = table.column("rank").to_pylist()
    ids = table.column("track_id").to_pylist()
    zero: set[int] = set()
    if has_tier:
        tiers = table.column("tier").cast("string").to_pylist()
        zero = {
            int(t) for t, tier in zip(ids, tiers, strict=True) if t is not None and tier == "zero"
        }
    return {int(t): int(r) for t, r in zip(ids, ranks, strict=True) if t is not None}, zero


def _tier_renditions(
    archive: Archive, conn: sqlite3.Connection, rows: list[Any], zero: set[int]
) -> list[Any]:
    """Rows of zero-tier tracks swapped for their derived rendition, where one exists."""
    from musicark.tier.transcode import derived_for

    key = f"opus-{archive.config.plan.bitrate_zero_popularity}"
    derived = derived_for(conn, [r[0] for r in rows if r[2] in zero], key)
    out = []
    for sha, size, track_id, codec, container in rows:
        if track_id in zero and sha in derived:
            sha, size = derived[sha]
            codec, container = "opus", "ogg"
        out.append((sha, size, track_id, codec, container))
    return out


def select_candidates(
    archive: Archive,
    conn: sqlite3.Connection,
    *,
    include_restricted: bool,
    plan: Path | None,
) -> Selection:
    """The files this pack takes, in release order (see the module docstring)."""
    if not _store_ready(conn):
        raise ReleaseError("the store is empty: ingest audio first (`musicark ingest DIR`)")
    rows = conn.execute(
        "SELECT r.sha256, b.size, r.track_id, b.codec, b.container FROM renditions r"
        " JOIN blobs b ON b.sha256 = r.sha256"
        " WHERE r.preferred = 1 AND r.track_id IS NOT NULL ORDER BY r.sha256"
    ).fetchall()
    if not rows:
        raise ReleaseError(
            "the store holds no audio matched to the catalogue: ingest audio first"
            " (`musicark ingest DIR`)"
        )
    released_sha = {r[0] for r in conn.execute("SELECT DISTINCT sha256 FROM release_files")}
    released_tracks = {
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT track_id FROM release_files WHERE track_id IS NOT NULL"
        )
    }
    fresh = [r for r in rows if r[0] not in released_sha and r[2] not in released_tracks]
    summary = Selection(already_released=len(rows) - len(fresh))
    with CatalogReader.open(archive.catalog_path) as reader:
        meta = reader.tracks(r[2] for r in fresh)
    from musicark.acquire.state import acquired_rights

    # per row, taken before the tier swap so that a derived rendition keeps its original's
    by_sha = acquired_rights(conn, [r[0] for r in fresh])
    acquired = [by_sha.get(r[0]) for r in fresh]
    ranks, zero = _plan_ranks(plan) if plan is not None else ({}, set())
    if zero:
        fresh = _tier_renditions(archive, conn, fresh, zero)
    out: list[Candidate] = []
    seen_tracks: set[int] = set()
    for (sha, size, track_id, codec, container), licensed in zip(fresh, acquired, strict=True):
        m = meta.get(track_id)
        if m is None:
            summary.not_in_catalog += 1
            continue
        if track_id in seen_tracks:  # two preferred renditions of one track: keep one
            continue
        rights = m.rights
        if rights in (None, "unknown"):  # the catalogue says nothing: the source's licence
            rights = licensed or rights
        if rights not in REDISTRIBUTABLE and not include_restricted:
            summary.withheld_rights += 1
            continue
        seen_tracks.add(track_id)
        collection = collection_name(m.source)
        if ranks:
            order: tuple[Any, ...] = (ranks.get(track_id, 1 << 62), track_id)
        else:
            order = (m.album_id or 0, m.disc_number or 0, m.track_number or 0, track_id)
        out.append(
            Candidate(
                sha256=sha,
                size=size,
                track_id=track_id,
                codec=codec,
                container=container,
                title=m.title,
                isrc=m.isrc,
                rights=rights,
                album=m.album,
                collection=collection,
                artists=tuple(m.artist_names),
                order=order,
            )
        )
    out.sort(key=lambda c: (c.collection, c.order))
    summary.candidates = out
    return summary


def cut_folders(
    candidates: Sequence[Candidate], *, target_size: int, max_files: int
) -> list[list[Candidate]]:
    """Consecutive runs of one collection, each within the size and file limits."""
    folders: list[list[Candidate]] = []
    current: list[Candidate] = []
    size = 0
    for c in candidates:
        if c.size > target_size:
            raise UsageError(
                f"target size {format_size(target_size)} is smaller than one file"
                f" ({c.sha256[:12]}..., {format_size(c.size)}); raise --target-size"
            )
        if current and (
            size + c.size > target_size
            or len(current) >= max_files
            or current[0].collection != c.collection
        ):
            folders.append(current)
            current, size = [], 0
        current.append(c)
        size += c.size
    if current:
        folders.append(current)
    return folders
