"""Which torrents a volunteer should seed: scrape the trackers, keep the history, choose.

Choice: every byte of a volunteer's space helps a torrent in proportion to how few
seeders it has, so torrents are taken least-seeded first (more leechers, then larger
size, break ties: a big torrent at risk puts more bytes at risk), each one that still
fits in the space; a torrent that does not fit is passed over for smaller ones.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from musicark.errors import SwarmError
from musicark.progress import Progress, ProgressCallback, report
from musicark.swarm.history import (
    ScrapeRecord,
    SwarmFigures,
    latest_figures,
    migrate,
    record_scrapes,
)
from musicark.swarm.scrape import scrape
from musicark.swarm.sources import SwarmTorrent


@dataclass(frozen=True, slots=True)
class Candidate:
    torrent: SwarmTorrent
    figures: SwarmFigures | None

    @property
    def seeders(self) -> int | None:
        return self.figures.seeders if self.figures else None

    @property
    def leechers(self) -> int | None:
        return self.figures.leechers if self.figures else None

    def to_dict(self) -> dict[str, object]:
        f = self.figures
        return {
            "name": self.torrent.name,
            "release": self.torrent.release,
            "infohash": self.torrent.infohash,
            "size": self.torrent.size,
            "seeders": self.seeders,
            "leechers": self.leechers,
            "completed": f.completed if f else None,
            "scraped_at": f.scraped_at if f else None,
            "errors": list(f.errors) if f else [],
            "magnet": self.torrent.magnet,
            "torrent_path": str(self.torrent.torrent_path) if self.torrent.torrent_path else None,
        }


@dataclass(frozen=True)
class SeedList:
    chosen: tuple[Candidate, ...]
    passed_over: tuple[Candidate, ...]
    max_size: int
    errors: tuple[str, ...] = ()

    @property
    def total_size(self) -> int:
        return sum(c.torrent.size for c in self.chosen)

    def to_dict(self) -> dict[str, object]:
        return {
            "max_size": self.max_size,
            "total_size": self.total_size,
            "chosen": [c.to_dict() for c in self.chosen],
            "passed_over": [c.to_dict() for c in self.passed_over],
            "errors": list(self.errors),
        }


def scrape_torrents(
    conn: sqlite3.Connection,
    torrents: Sequence[SwarmTorrent],
    *,
    timeout: float = 10.0,
    progress: ProgressCallback | None = None,
) -> list[str]:
    """Scrape every tracker of `torrents` and record the results; returns the errors."""
    migrate(conn)
    by_tracker: dict[str, list[SwarmTorrent]] = {}
    for t in torrents:
        for url in t.trackers:
            by_tracker.setdefault(url, []).append(t)
    errors: list[str] = []
    records: list[ScrapeRecord] = []
    for done, (tracker, items) in enumerate(sorted(by_tracker.items()), start=1):
        try:
            figures = scrape(tracker, [t.infohash for t in items], timeout=timeout)
        except SwarmError as exc:
            errors.append(str(exc))
            records.extend(
                ScrapeRecord(t.infohash, t.name, tracker, None, None, None, str(exc)) for t in items
            )
        else:
            for t in items:
                f = figures[t.infohash]
                records.append(
                    ScrapeRecord(t.infohash, t.name, tracker, f.seeders, f.leechers, f.completed)
                )
        report(progress, Progress("scrape", done, len(by_tracker), "trackers", tracker))
    record_scrapes(conn, records)
    return errors


def rank(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Least-seeded first; an unscraped torrent counts as having no seeders."""
    return sorted(
        candidates,
        key=lambda c: (c.seeders or 0, -(c.leechers or 0), -c.torrent.size, c.torrent.name),
    )


def propose(candidates: Sequence[Candidate], *, max_size: int) -> SeedList:
    chosen: list[Candidate] = []
    passed: list[Candidate] = []
    used = 0
    for c in rank(candidates):
        if used + c.torrent.size <= max_size:
            chosen.append(c)
            used += c.torrent.size
        else:
            passed.append(c)
    return SeedList(chosen=tuple(chosen), passed_over=tuple(passed), max_size=max_size)


def seedlist(
    conn: sqlite3.Connection,
    torrents: Sequence[SwarmTorrent],
    *,
    max_size: int,
    scrape_first: bool = True,
    timeout: float = 10.0,
    progress: ProgressCallback | None = None,
) -> SeedList:
    """Scrape (unless told not to), record the figures, and propose what to seed."""
    errors: list[str] = []
    if scrape_first:
        errors = scrape_torrents(conn, torrents, timeout=timeout, progress=progress)
    else:
        migrate(conn)
    figures = latest_figures(conn)
    proposal = propose([Candidate(t, figures.get(t.infohash)) for t in torrents], max_size=max_size)
    return SeedList(
        chosen=proposal.chosen,
        passed_over=proposal.passed_over,
        max_size=max_size,
        errors=tuple(errors),
    )


def listing(conn: sqlite3.Connection, torrents: Sequence[SwarmTorrent]) -> list[Candidate]:
    """Each torrent with its latest recorded swarm figures (no scraping)."""
    migrate(conn)
    figures = latest_figures(conn)
    return [Candidate(t, figures.get(t.infohash)) for t in torrents]
