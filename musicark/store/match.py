"""Matching a file to a catalogue track: ISRC, then an external id, then artist + title + duration.

Artist + title matching uses `match_titles` in state.sqlite, an index of normalised
catalogue titles kept up to date from the catalogue's `track_changes` log (a full scan
the first time). Every match carries its method and a confidence in [0, 1].
"""

from __future__ import annotations

import re
import sqlite3
import unicodedata
from dataclasses import dataclass

from musicark.archive import Archive
from musicark.catalog.ids import stable_hash
from musicark.catalog.reader import CatalogReader, TrackRecord
from musicark.sqlite import transaction
from musicark.store import tags as T

# external-id kinds, as catalogue sources spell them, per tag
EXTERNAL_KINDS: dict[str, tuple[str, ...]] = {
    "musicbrainz_trackid": (
        "musicbrainz",
        "musicbrainz_recording",
        "musicbrainz_recording_id",
        "mbid",
    ),
    "musicbrainz_releasetrackid": ("musicbrainz_track", "musicbrainz_releasetrack"),
    "acoustid_id": ("acoustid",),
}
_BRACKETS = re.compile(r"\s*[\(\[][^\)\]]*[\)\]]")
_FEAT = re.compile(r"\s+(?:feat\.?|ft\.?|featuring)\s.*$")
_NON_WORD = re.compile(r"[\W_]+")
_ISRC = re.compile(r"^[A-Z]{2}[A-Z0-9]{3}\d{7}$")


def normalize(text: str, *, strip_brackets: bool = True) -> str:
    """Lowercase, accents and punctuation removed, `(remastered)` and `feat. X` dropped."""
    t = unicodedata.normalize("NFKD", text)
    t = "".join(c for c in t if not unicodedata.combining(c)).casefold()
    if strip_brackets:
        stripped = _FEAT.sub("", _BRACKETS.sub(" ", t))
        if _NON_WORD.sub("", stripped):
            t = stripped
    return _NON_WORD.sub(" ", t).strip()


def title_key(title: str) -> int:
    return stable_hash(normalize(title))


def clean_isrc(value: str | None) -> str | None:
    if not value:
        return None
    v = re.sub(r"[\s\-]", "", value).upper()
    return v if _ISRC.match(v) else None


@dataclass(frozen=True)
class Match:
    track_id: int
    method: str
    confidence: float


def refresh_title_index(state: sqlite3.Connection, catalog: CatalogReader) -> int:
    """Bring `match_titles` up to date with the catalogue; returns the titles added."""
    row = state.execute("SELECT catalog_seq FROM match_state WHERE id = 1").fetchone()
    top = catalog.last_change()
    if row is None:
        cursor = catalog.titles()
    elif top > row[0]:
        cursor = catalog.titles(changed_since=row[0])
    else:
        return 0
    added = 0
    with transaction(state):
        while True:
            rows = cursor.fetchmany(50_000)
            if not rows:
                break
            state.executemany(
                "INSERT OR IGNORE INTO match_titles (title_key, track_id) VALUES (?, ?)",
                [(title_key(title or ""), tid) for tid, title in rows],
            )
            added += len(rows)
        state.execute(
            "INSERT INTO match_state (id, catalog_seq) VALUES (1, ?)"
            " ON CONFLICT(id) DO UPDATE SET catalog_seq = excluded.catalog_seq",
            (top,),
        )
    return added


class Matcher:
    """Matches probed, tagged files to catalogue tracks (one per ingest, in the main process).

    Catalogue rows come through the one catalogue reader (`musicark.catalog.reader`)."""

    def __init__(self, archive: Archive, state: sqlite3.Connection, *, tolerance_ms: int) -> None:
        self.state = state
        self.tolerance_ms = tolerance_ms
        self.catalog: CatalogReader | None = None
        if archive.catalog_path.exists():
            self.catalog = CatalogReader(archive.connect_catalog(readonly=True), owned=True)
            refresh_title_index(state, self.catalog)

    def close(self) -> None:
        if self.catalog is not None:
            self.catalog.close()

    def match(self, tags: dict[str, list[str]], duration_ms: int | None) -> Match | None:
        if self.catalog is None or not tags:
            return None
        return (
            self._by_isrc(tags, duration_ms)
            or self._by_external_id(tags)
            or self._by_artist_title(tags, duration_ms)
        )

    def _duration_ok(self, a: int | None, b: int | None) -> bool | None:
        if a is None or b is None:
            return None
        return abs(a - b) <= self.tolerance_ms

    def _by_isrc(self, tags: dict[str, list[str]], duration_ms: int | None) -> Match | None:
        isrc = clean_isrc(T.first(tags, "isrc"))
        if not isrc or self.catalog is None:
            return None
        found = self.catalog.by_isrc(isrc)
        if not found:
            return None
        title = normalize(T.first(tags, "title") or "")

        def score(t: TrackRecord) -> tuple[int, int, int]:
            same_title = int(bool(title) and normalize(t.title or "") == title)
            diff = (
                abs((t.duration_ms or 0) - duration_ms) if duration_ms and t.duration_ms else 10**9
            )
            return (-same_title, diff, t.id)

        best = min(found, key=score)
        confidence = 1.0 if len(found) == 1 else 0.9
        if self._duration_ok(best.duration_ms, duration_ms) is False:
            confidence -= 0.2
        return Match(best.id, "isrc", round(confidence, 3))

    def _by_external_id(self, tags: dict[str, list[str]]) -> Match | None:
        assert self.catalog is not None
        for tag, kinds in EXTERNAL_KINDS.items():
            value = T.first(tags, tag)
            if not value:
                continue
            ids = self.catalog.by_external_id(kinds, value.strip())
            if ids:
                return Match(ids[0], f"external_id:{kinds[0]}", 1.0 if len(ids) == 1 else 0.9)
        return None

    def _by_artist_title(self, tags: dict[str, list[str]], duration_ms: int | None) -> Match | None:
        assert self.catalog is not None
        title = T.first(tags, "title")
        names = {normalize(a, strip_brackets=False) for a in T.artists(tags)}
        names.discard("")
        if not title or not names:
            return None
        ids = [
            r[0]
            for r in self.state.execute(
                "SELECT track_id FROM match_titles WHERE title_key = ? LIMIT 200",
                (title_key(title),),
            )
        ]
        if not ids:
            return None
        wanted = normalize(title)
        best: tuple[int, int] | None = None  # (duration difference, track id)
        for tid, t in sorted(self.catalog.tracks(ids).items()):
            if normalize(t.title or "") != wanted:
                continue
            credited = {normalize(n, strip_brackets=False) for n in t.artist_names}
            if not names & credited:
                continue
            ok = self._duration_ok(t.duration_ms, duration_ms)
            if ok is False:
                continue
            diff = abs((t.duration_ms or 0) - (duration_ms or 0)) if ok else self.tolerance_ms
            if best is None or (diff, tid) < best:
                best = (diff, tid)
        if best is None:
            return None
        confidence = 0.9 - 0.2 * min(1.0, best[0] / max(1, self.tolerance_ms))
        return Match(best[1], "artist_title_duration", round(confidence, 3))
