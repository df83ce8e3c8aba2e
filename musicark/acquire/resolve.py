"""Tying offers to catalogue tracks, and ordering them by the plan.

An offer names its track directly (a catalogue track id), or by ISRC, MusicBrainz id,
an id in another catalogue (`external_ids`), or artist + title: the same ladder ingest
climbs for a file's tags (`musicark.store.match`). For a plan-ordered run every offer of
every source goes into an on-disk index keyed by track, which the plan's selected tracks
are then looked up in, in rank order: memory stays flat whatever the number of offers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import orjson

from musicark.acquire.model import Offer
from musicark.archive import Archive
from musicark.catalog.reader import CatalogReader, TrackRecord
from musicark.sqlite import transaction
from musicark.store.match import EXTERNAL_KINDS, Matcher, clean_isrc

_MB_KINDS = EXTERNAL_KINDS["musicbrainz_trackid"]


class Resolver:
    """Offer -> catalogue track ids (several when an ISRC names several tracks)."""

    def __init__(self, archive: Archive, state: sqlite3.Connection) -> None:
        self.reader: CatalogReader | None = None
        self.matcher: Matcher | None = None
        if archive.catalog_path.exists():
            self.reader = CatalogReader.open(archive.catalog_path)
            self.matcher = Matcher(
                archive, state, tolerance_ms=archive.config.ingest.duration_tolerance_ms
            )

    def close(self) -> None:
        if self.matcher is not None:
            self.matcher.close()
        if self.reader is not None:
            self.reader.close()

    def tracks(self, offer: Offer) -> list[int]:
        reader = self.reader
        if reader is None:
            return []
        if offer.track_id is not None:
            return [offer.track_id] if reader.track(offer.track_id) is not None else []
        isrc = clean_isrc(offer.isrc)
        if isrc:
            ids = [t.id for t in reader.by_isrc(isrc)]
            if ids:
                return ids
        pairs: list[tuple[Sequence[str], str]] = []
        if offer.mbid:
            pairs.append((_MB_KINDS, offer.mbid.strip()))
        if offer.external:
            pairs.append(((offer.external[0],), offer.external[1]))
        for kinds, value in pairs:
            ids = reader.by_external_id(kinds, value)
            if ids:
                return ids
        if offer.title and offer.artist and self.matcher is not None:
            tags = {"title": [offer.title], "artist": [offer.artist]}
            m = self.matcher.match(tags, offer.duration_ms)
            if m is not None:
                return [m.track_id]
        return []

    def info(self, track_ids: Iterable[int]) -> dict[int, TrackRecord]:
        return self.reader.tracks(list(track_ids)) if self.reader is not None else {}

    def isrc_tracks(self, isrc: str) -> list[int]:
        return [t.id for t in self.reader.by_isrc(isrc)] if self.reader is not None else []


def offer_to_json(offer: Offer) -> bytes:
    data = {f: getattr(offer, f) for f in Offer.__slots__}
    data["checksums"] = dict(offer.checksums)
    return orjson.dumps(data)


def offer_from_json(raw: bytes | str) -> Offer:
    data = orjson.loads(raw)
    if data.get("external") is not None:
        data["external"] = tuple(data["external"])
    return Offer(**data)


class OfferIndex:
    """Every offer of every source by catalogue track, in a scratch SQLite file."""

    def __init__(self, folder: Path) -> None:
        # one run at a time (the run lock): a left-over index is a crashed run's, rebuilt
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "offers.sqlite"
        self.path.unlink(missing_ok=True)
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=OFF")
        self.conn.execute("PRAGMA synchronous=OFF")
        self.conn.execute(
            "CREATE TABLE offers (track_id INTEGER NOT NULL, rank INTEGER NOT NULL,"
            " seq INTEGER NOT NULL, offer BLOB NOT NULL)"
        )
        self.rows = 0

    def add(self, offers: Iterable[tuple[Offer, list[int]]], rank: int) -> int:
        """Index (offer, its track ids); returns the offers that matched no track."""
        unmatched = 0
        batch: list[tuple[int, int, int, bytes]] = []
        with transaction(self.conn, immediate=False):
            for offer, ids in offers:
                if not ids:
                    unmatched += 1
                    continue
                raw = offer_to_json(offer)
                for tid in ids:
                    batch.append((tid, rank, self.rows, raw))
                self.rows += 1
                if len(batch) >= 5000:
                    self.conn.executemany("INSERT INTO offers VALUES (?,?,?,?)", batch)
                    batch.clear()
            self.conn.executemany("INSERT INTO offers VALUES (?,?,?,?)", batch)
        return unmatched

    def finish(self) -> None:
        self.conn.execute("CREATE INDEX offers_track ON offers(track_id, rank, seq)")

    def distinct_tracks(self) -> int:
        return int(self.conn.execute("SELECT count(DISTINCT track_id) FROM offers").fetchone()[0])

    def lookup(self, track_ids: list[int]) -> dict[int, list[Offer]]:
        out: dict[int, list[Offer]] = {}
        for i in range(0, len(track_ids), 500):
            chunk = track_ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for tid, raw in self.conn.execute(
                f"SELECT track_id, offer FROM offers WHERE track_id IN ({marks})"
                " ORDER BY track_id, rank, seq",
                chunk,
            ):
                out.setdefault(tid, []).append(offer_from_json(raw))
        return out

    def close(self) -> None:
        self.conn.close()
        self.path.unlink(missing_ok=True)


def plan_track_ids(path: Path) -> Iterator[list[int]]:
    """The plan's selected track ids in rank order, one row group's worth at a time
    (a 256 M-track plan is never held whole)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from musicark.plan.io import read_plan_metadata

    read_plan_metadata(path)  # a plan file, or an error saying what it is
    for batch in pq.ParquetFile(path).iter_batches(
        batch_size=65536, columns=["track_id", "status"]
    ):
        mask = pc.equal(batch.column("status").cast(pa.string()), "selected")
        ids = batch.column("track_id").filter(mask).to_pylist()
        if ids:
            yield [int(i) for i in ids]


def chunks(values: Iterable[int], size: int) -> Iterator[list[int]]:
    batch: list[int] = []
    for v in values:
        batch.append(int(v))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
