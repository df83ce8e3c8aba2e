"""`catalog stats`: what the catalogue holds, in figures."""

from __future__ import annotations

from typing import Any

from musicark.archive import Archive
from musicark.units import format_size

DEFAULT_BITRATE = 160_000


def catalog_stats(archive: Archive, *, bitrate: int = DEFAULT_BITRATE) -> dict[str, Any]:
    """Counts by table, rights and source, and the audio bytes at `bitrate` bits/s."""
    conn = archive.connect_catalog(readonly=True)
    try:
        one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
        tracks = one("SELECT count(*) FROM tracks")
        duration_ms, with_duration = conn.execute(
            "SELECT coalesce(sum(duration_ms), 0), count(duration_ms) FROM tracks"
        ).fetchone()
        return {
            "tracks": tracks,
            "artists": one("SELECT count(*) FROM artists"),
            "albums": one("SELECT count(*) FROM albums"),
            "distinct_isrcs": one("SELECT count(DISTINCT isrc) FROM tracks"),
            "tracks_with_popularity": one("SELECT count(popularity) FROM tracks"),
            "tracks_with_play_count": one("SELECT count(play_count) FROM tracks"),
            "tracks_with_duration": with_duration,
            "by_rights": dict(
                conn.execute("SELECT rights, count(*) FROM tracks GROUP BY rights ORDER BY 2 DESC")
            ),
            "by_source": dict(
                conn.execute(
                    "SELECT s.name, count(*) FROM tracks t JOIN sources s ON s.id = t.source_id "
                    "GROUP BY s.name ORDER BY 2 DESC"
                )
            ),
            "bitrate": bitrate,
            "estimated_audio_bytes": int(duration_ms) * bitrate // 8000,
        }
    finally:
        conn.close()


def format_stats(stats: dict[str, Any]) -> str:
    lines = [
        f"tracks            {stats['tracks']:>14,}",
        f"artists           {stats['artists']:>14,}",
        f"albums            {stats['albums']:>14,}",
        f"distinct ISRCs    {stats['distinct_isrcs']:>14,}",
        f"with popularity   {stats['tracks_with_popularity']:>14,}",
        f"with play count   {stats['tracks_with_play_count']:>14,}",
        f"audio at {stats['bitrate'] // 1000} kbit/s  {format_size(stats['estimated_audio_bytes']):>13}"
        f"  (tracks with a duration: {stats['tracks_with_duration']:,})",
        "by rights:",
        *(f"  {k:<20} {v:>12,}" for k, v in stats["by_rights"].items()),
        "by source:",
        *(f"  {k:<20} {v:>12,}" for k, v in stats["by_source"].items()),
    ]
    return "\n".join(lines)
