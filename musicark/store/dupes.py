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


def prefer(archive: Archive, sha256: str) -> dict[str, Any]:
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
        return {"sha256": sha256, "track_id": row[0], "preferred_reason": "chosen by the operator"}
    finally:
        conn.close()


def find_dupes(archive: Archive, *, acoustic: bool = False, limit: int = 1000) -> dict[str, Any]:
    """Exact duplicates, same-recording groups (with the preferred one), derived renditions
    (`musicark transcode`) with their source and, if asked, acoustic near-duplicates."""
    from musicark.tier.transcode import derived_renditions

    conn = schema.connect(archive)
    try:
        exact = []
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
            exact.append({"sha256": sha, "copies": n, "paths": paths})
        tracks = conn.execute(
            "SELECT track_id FROM renditions WHERE track_id IS NOT NULL"
            " GROUP BY track_id HAVING count(*) > 1 ORDER BY track_id LIMIT ?",
            (limit,),
        ).fetchall()
        recordings = []
        for (track_id,) in tracks:
            rows = conn.execute(
                "SELECT r.sha256, b.codec, b.bitrate, b.lossless, b.damaged, r.preferred,"
                " r.preferred_reason, r.match_method, r.confidence FROM renditions r"
                " JOIN blobs b ON b.sha256 = r.sha256 WHERE r.track_id = ?"
                " ORDER BY r.preferred DESC, r.sha256",
                (track_id,),
            ).fetchall()
            recordings.append(
                {
                    "track_id": track_id,
                    "renditions": [
                        {
                            "sha256": r[0],
                            "codec": r[1],
                            "bitrate": r[2],
                            "lossless": bool(r[3]),
                            "damaged": r[4],
                            "preferred": bool(r[5]),
                            "preferred_reason": r[6],
                            "match_method": r[7],
                            "confidence": r[8],
                        }
                        for r in rows
                    ],
                }
            )
        out: dict[str, Any] = {
            "blobs": conn.execute("SELECT count(*) FROM blobs").fetchone()[0],
            "exact": exact,
            "same_recording": recordings,
            "derived": derived_renditions(conn, limit=limit),
        }
        if acoustic:
            from musicark.store.acoustic import find_near_duplicates

            out["acoustic"] = [
                {"a": d.a, "b": d.b, "ber": d.ber, "offset_s": d.offset_s, "overlap_s": d.overlap_s}
                for d in find_near_duplicates(conn)
            ]
        return out
    finally:
        conn.close()
