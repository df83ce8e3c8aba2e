"""The demo's release stage: pack, publish, then locate one track offline.

When the demo's store holds no matched audio yet, a dozen short CC0 tones are made for
the most popular redistributable catalogue tracks (tagged with their ISRCs) and ingested,
so the stage runs on its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

from musicark.archive import Archive
from musicark.catalog.rights import REDISTRIBUTABLE

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


def _tone(path: Path, freq: float, seconds: float = 3.0) -> None:
    import av
    import numpy as np

    rate = 48000
    t = np.arange(int(rate * seconds)) / rate
    signal = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    with av.open(str(path), "w", format="ogg") as out:
        stream = out.add_stream("libopus", rate=rate)
        stream.layout = "mono"
        ctx = stream.codec_context
        resampler = av.AudioResampler(format=ctx.format.name, layout="mono", rate=rate)
        pts = 0
        for start in range(0, len(signal), 4096):
            frame = av.AudioFrame.from_ndarray(
                signal[None, start : start + 4096], format="flt", layout="mono"
            )
            frame.sample_rate = rate
            frame.time_base = Fraction(1, rate)
            for f in resampler.resample(frame):
                f.pts = pts
                pts += f.samples
                for packet in stream.encode(f):
                    out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def make_demo_audio(archive: Archive, folder: Path, *, count: int = 12) -> int:
    """Tagged CC0 tones for the `count` most popular redistributable tracks; ingested."""
    import mutagen

    from musicark.store.ingest import ingest

    folder.mkdir(parents=True, exist_ok=True)
    cat = archive.connect_catalog(readonly=True)
    marks = ",".join("?" * len(REDISTRIBUTABLE))
    try:
        rows = cat.execute(
            "SELECT t.id, t.title, t.isrc, (SELECT a.name FROM track_artists ta JOIN artists a"
            " ON a.id = ta.artist_id WHERE ta.track_id = t.id ORDER BY ta.position LIMIT 1)"
            f" FROM tracks t WHERE t.isrc IS NOT NULL AND t.rights IN ({marks})"
            " ORDER BY t.popularity DESC, t.id LIMIT ?",
            [*REDISTRIBUTABLE, count],
        ).fetchall()
    finally:
        cat.close()
    for i, (_tid, title, isrc, artist) in enumerate(rows):
        path = folder / f"{i:02d}.opus"
        _tone(path, 220.0 * 2 ** (i / 12))
        f = mutagen.File(str(path), easy=True)
        if f is not None:
            if f.tags is None:
                f.add_tags()
            f["title"] = [title]
            f["isrc"] = [isrc]
            if artist:
                f["artist"] = [artist]
            f.save()
    if rows:
        ingest(archive, [folder], jobs=1, fingerprint=False, source="demo")
    return len(rows)


def run_release_demo(archive: Archive, workdir: Path) -> Iterator[str]:
    """Pack the demo release, publish its metadata and locate one track offline."""
    from musicark.release.locate import locate
    from musicark.release.pack import pack
    from musicark.release.publish import publish

    if _matched(archive) == 0:
        made = make_demo_audio(archive, workdir / "demo-audio")
        yield f"made and ingested {made} short CC0 demo tones for catalogue tracks"
    summary = pack(archive, RELEASE, target_size="5MB", format="hybrid")
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
