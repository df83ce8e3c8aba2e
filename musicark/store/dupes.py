"""Duplicates: exact (one blob, many provenance records), same recording, acoustic.

Several blobs matched to one catalogue track are renditions of it; one is preferred
(`renditions.preferred = 1`): lossless over lossy, then the higher bit rate, then the
complete one over a damaged one, then the longer one; the reason is kept in
`preferred_reason`. An operator's choice (`prefer`) outranks the rule until undone.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from musicark.archive import Archive
from musicark.errors import StoreError, UsageError
from musicark.sqlite import transaction
from musicark.store import schema
from musicark.store.blobs import is_sha256
from musicark.store.probe import is_lossless


@dataclass(frozen=True)
class Rendition:
    sha256: str
    codec: str | None
    lossless: bool
    bitrate: int | None
    damaged: str | None
    duration_ms: int | None
    by_operator: bool

    def rank(self) -> tuple[int, int, int, int, str]:
        return (
            0 if self.lossless else 1,
            -(self.bitrate or 0),
            1 if self.damaged else 0,
            -(self.duration_ms or 0),
            self.sha256,
        )

    def describe(self) -> str:
        kbps = f" {round(self.bitrate / 1000)} kbit/s" if self.bitrate else ""
        return f"{self.codec or 'unknown'}{kbps}"


def _reason(best: Rendition, runner_up: Rendition | None) -> str:
    if best.by_operator:
        return "chosen by the operator"
    if runner_up is None:
        return "the only rendition"
    if best.lossless and not runner_up.lossless:
        return f"lossless ({best.describe()}) over lossy ({runner_up.describe()})"
    if (best.bitrate or 0) > (runner_up.bitrate or 0):
        return f"higher bit rate ({best.describe()} over {runner_up.describe()})"
    if runner_up.damaged and not best.damaged:
        return f"complete, where the other is damaged ({runner_up.damaged})"
    if (best.duration_ms or 0) > (runner_up.duration_ms or 0):
        return "the longest of equal-quality renditions"
    return "equal renditions: the first by sha256"


def _renditions(conn: sqlite3.Connection, track_id: int) -> list[Rendition]:
    return [
        Rendition(
            sha,
            codec,
            bool(lossless) or is_lossless(codec),  # rows from before a codec was known lossless
            bitrate,
            damaged,
            duration,
            by == "operator",
        )
        for sha, codec, lossless, bitrate, damaged, duration, by in conn.execute(
            "SELECT r.sha256, b.codec, b.lossless, b.bitrate, b.damaged, b.duration_ms,"
            " r.preferred_by FROM renditions r JOIN blobs b ON b.sha256 = r.sha256"
            " WHERE r.track_id = ?",
            (track_id,),
        )
    ]


def update_preferred(conn: sqlite3.Connection, track_ids: Iterable[int]) -> int:
    """Re-mark the preferred rendition of each track; returns the tracks looked at."""
    n = 0
    ids = sorted(set(track_ids))
    for i in range(0, len(ids), 1000):
        with transaction(conn):
            for track_id in ids[i : i + 1000]:
                found = _renditions(conn, track_id)
                if not found:
                    continue
                chosen = [r for r in found if r.by_operator]
                ranked = sorted(found, key=Rendition.rank)
                best = chosen[0] if chosen else ranked[0]
                others = [r for r in ranked if r.sha256 != best.sha256]
                reason = _reason(best, others[0] if others else None)
                conn.execute(
                    "UPDATE renditions SET preferred = 0, preferred_reason = NULL"
                    " WHERE track_id = ? AND sha256 != ?",
                    (track_id, best.sha256),
                )
                conn.execute(
                    "UPDATE renditions SET preferred = 1, preferred_reason = ? WHERE sha256 = ?",
                    (reason, best.sha256),
                )
                n += 1
    return n


@dataclass(frozen=True)
class Preferred:
    """An operator's choice of rendition for a track."""

    sha256: str
    track_id: int
    preferred_reason: str = "chosen by the operator"

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def prefer(archive: Archive, sha256: str) -> Preferred:
    """Make `sha256` the preferred rendition of its track (an operator's override)."""
    sha256 = sha256.strip().lower()
    if not is_sha256(sha256):
        raise UsageError(f"--prefer needs a full sha256 in hex, not {sha256!r}")
    conn = schema.connect(archive)
    try:
        row = conn.execute("SELECT track_id FROM renditions WHERE sha256 = ?", (sha256,)).fetchone()
        if row is None:
            raise StoreError(f"no blob {sha256} in the store")
        if row[0] is None:
            raise StoreError(
                f"blob {sha256} is not matched to a catalogue track; nothing to prefer"
            )
        with transaction(conn):
            conn.execute(
                "UPDATE renditions SET preferred_by = NULL WHERE track_id = ? AND sha256 != ?",
                (row[0], sha256),
            )
            conn.execute(
                "UPDATE renditions SET preferred_by = 'operator' WHERE sha256 = ?", (sha256,)
            )
        update_preferred(conn, [row[0]])
        return Preferred(sha256, row[0])
    finally:
        conn.close()


@dataclass(frozen=True)
class ExactCopies:
    """One blob ingested from several paths."""

    sha256: str
    copies: int
    paths: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "copies": self.copies, "paths": self.paths}


@dataclass(frozen=True)
class RenditionInfo:
    """One rendition of a track, as `dupes` lists it."""

    sha256: str
    codec: str | None
    bitrate: int | None
    lossless: bool
    damaged: str | None
    preferred: bool
    preferred_reason: str | None
    match_method: str | None
    confidence: float | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class SameRecording:
    """A catalogue track with several renditions (the preferred one first)."""

    track_id: int
    renditions: list[RenditionInfo]

    @property
    def preferred(self) -> RenditionInfo | None:
        return next((r for r in self.renditions if r.preferred), None)

    def to_dict(self) -> dict[str, Any]:
        return {"track_id": self.track_id, "renditions": [r.to_dict() for r in self.renditions]}


@dataclass(frozen=True)
class AcousticPair:
    a: str
    b: str
    ber: float
    offset_s: float
    overlap_s: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class DupesReport:
    """What `musicark dupes` reports (`to_dict()` is its JSON)."""

    blobs: int
    exact: list[ExactCopies]
    same_recording: list[SameRecording]
    derived: list[dict[str, Any]]
    acoustic: list[AcousticPair] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "blobs": self.blobs,
            "exact": [e.to_dict() for e in self.exact],
            "same_recording": [g.to_dict() for g in self.same_recording],
            "derived": self.derived,
        }
        if self.acoustic is not None:
            out["acoustic"] = [a.to_dict() for a in self.acoustic]
        return out


def find_dupes(archive: Archive, *, acoustic: bool = False, limit: int = 1000) -> DupesReport:
    """Exact duplicates, same-recording groups (with the preferred one), derived renditions
    (`musicark transcode`) with their source and, if asked, acoustic near-duplicates."""
    from musicark.tier.transcode import derived_renditions

    conn = schema.connect(archive)
    try:
        report = DupesReport(
            blobs=conn.execute("SELECT count(*) FROM blobs").fetchone()[0],
            exact=_exact(conn, limit),
            same_recording=_same_recording(conn, limit),
            derived=derived_renditions(conn, limit=limit),
        )
        if acoustic:
            from musicark.store.acoustic import find_near_duplicates
            from musicark.store.fpindex import index_all

            index_all(conn)  # what a killed ingest left unindexed
            report.acoustic = [
                AcousticPair(d.a, d.b, d.ber, d.offset_s, d.overlap_s)
                for d in find_near_duplicates(conn)
            ]
        return report
    finally:
        conn.close()


def _exact(conn: sqlite3.Connection, limit: int) -> list[ExactCopies]:
    out = []
    for sha, n in conn.execute(
        "SELECT sha256, count(*) FROM provenance GROUP BY sha256 HAVING count(*) > 1"
        " ORDER BY count(*) DESC, sha256 LIMIT ?",
        (limit,),
    ).fetchall():
        paths = [
            p
            for (p,) in conn.execute(
                "SELECT path FROM provenance WHERE sha256 = ? ORDER BY path LIMIT 20", (sha,)
            )
        ]
        out.append(ExactCopies(sha, n, paths))
    return out


def _same_recording(conn: sqlite3.Connection, limit: int) -> list[SameRecording]:
    tracks = conn.execute(
        "SELECT track_id FROM renditions WHERE track_id IS NOT NULL"
        " GROUP BY track_id HAVING count(*) > 1 ORDER BY track_id LIMIT ?",
        (limit,),
    ).fetchall()
    out = []
    for (track_id,) in tracks:
        rows = conn.execute(
            "SELECT r.sha256, b.codec, b.bitrate, b.lossless, b.damaged, r.preferred,"
            " r.preferred_reason, r.match_method, r.confidence FROM renditions r"
            " JOIN blobs b ON b.sha256 = r.sha256 WHERE r.track_id = ?"
            " ORDER BY r.preferred DESC, r.sha256",
            (track_id,),
        ).fetchall()
        out.append(
            SameRecording(
                track_id,
                [
                    RenditionInfo(
                        r[0],
                        r[1],
                        r[2],
                        bool(r[3]) or is_lossless(r[1]),
                        r[4],
                        bool(r[5]),
                        r[6],
                        r[7],
                        r[8],
                    )
                    for r in rows
                ],
            )
        )
    return out
