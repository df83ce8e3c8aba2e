"""Swarm history in state.sqlite (domain "swarm"): tracker scrapes and seeding resume data."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from musicark.sqlite import transaction
from musicark.state import migrate_domain
from musicark.units import now

MIGRATIONS = [
    """
CREATE TABLE swarm_scrapes (
    id INTEGER PRIMARY KEY,
    infohash TEXT NOT NULL,
    torrent TEXT NOT NULL,
    tracker TEXT NOT NULL,
    scraped_at TEXT NOT NULL,
    seeders INTEGER,
    leechers INTEGER,
    completed INTEGER,
    error TEXT
);
CREATE INDEX swarm_scrapes_by_hash ON swarm_scrapes (infohash, scraped_at);
CREATE TABLE seed_resume (
    infohash TEXT PRIMARY KEY,
    data BLOB NOT NULL,
    saved_at TEXT NOT NULL
)
""",
]


def migrate(conn: sqlite3.Connection) -> None:
    migrate_domain(conn, "swarm", MIGRATIONS)


@dataclass(frozen=True, slots=True)
class ScrapeRecord:
    infohash: str
    torrent: str
    tracker: str
    seeders: int | None
    leechers: int | None
    completed: int | None
    error: str = ""


@dataclass(frozen=True, slots=True)
class SwarmFigures:
    """The latest word on one torrent's swarm, over all its trackers."""

    seeders: int | None  # the most any tracker reported (trackers overlap)
    leechers: int | None
    completed: int | None
    scraped_at: str | None
    trackers_ok: int
    errors: tuple[str, ...] = ()


def record_scrapes(
    conn: sqlite3.Connection, records: Iterable[ScrapeRecord], *, at: str | None = None
) -> int:
    """Append scrape results; returns how many rows were written."""
    when = at or now()
    rows = [
        (
            r.infohash,
            r.torrent,
            r.tracker,
            when,
            r.seeders,
            r.leechers,
            r.completed,
            r.error or None,
        )
        for r in records
    ]
    with transaction(conn):
        conn.executemany(
            "INSERT INTO swarm_scrapes (infohash, torrent, tracker, scraped_at, seeders,"
            " leechers, completed, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    return len(rows)


def latest_figures(conn: sqlite3.Connection) -> dict[str, SwarmFigures]:
    """Per infohash: the latest scrape of each tracker, combined."""
    rows = conn.execute(
        "SELECT s.infohash, s.tracker, s.scraped_at, s.seeders, s.leechers, s.completed, s.error"
        " FROM swarm_scrapes s JOIN ("
        "   SELECT infohash, tracker, MAX(id) AS id FROM swarm_scrapes GROUP BY infohash, tracker"
        " ) last ON last.id = s.id"
    ).fetchall()
    grouped: dict[str, list[tuple[str, str, int | None, int | None, int | None, str | None]]] = {}
    for infohash, tracker, at, seeders, leechers, completed, error in rows:
        grouped.setdefault(infohash, []).append((tracker, at, seeders, leechers, completed, error))
    out: dict[str, SwarmFigures] = {}
    for infohash, items in grouped.items():
        good = [i for i in items if i[5] is None]

        def most(
            col: int,
            good: list[tuple[str, str, int | None, int | None, int | None, str | None]] = good,
        ) -> int | None:
            values = [v for v in (i[col] for i in good) if isinstance(v, int)]
            return max(values) if values else None

        out[infohash] = SwarmFigures(
            seeders=most(2),
            leechers=most(3),
            completed=most(4),
            scraped_at=max(i[1] for i in items),
            trackers_ok=len(good),
            errors=tuple(f"{i[0]}: {i[5]}" for i in items if i[5] is not None),
        )
    return out


def history(
    conn: sqlite3.Connection, infohash: str
) -> list[tuple[str, str, int | None, int | None]]:
    """(scraped_at, tracker, seeders, leechers) of every scrape of `infohash`, oldest first."""
    return [
        (r[0], r[1], r[2], r[3])
        for r in conn.execute(
            "SELECT scraped_at, tracker, seeders, leechers FROM swarm_scrapes"
            " WHERE infohash = ? ORDER BY id",
            (infohash,),
        )
    ]


class SqliteResumeStore:
    """Seeding resume data kept in state.sqlite, one row per infohash."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        migrate(conn)

    def load_resume(self, infohash: str) -> bytes | None:
        row = self.conn.execute(
            "SELECT data FROM seed_resume WHERE infohash = ?", (infohash,)
        ).fetchone()
        return bytes(row[0]) if row else None

    def save_resume(self, infohash: str, data: bytes) -> None:
        self.conn.execute(
            "INSERT INTO seed_resume (infohash, data, saved_at) VALUES (?, ?, ?)"
            " ON CONFLICT(infohash) DO UPDATE SET data = excluded.data,"
            " saved_at = excluded.saved_at",
            (infohash, data, now()),
        )
