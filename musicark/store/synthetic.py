"""Seeded synthetic audio: short "songs" encoded with real codecs (PyAV), tagged with mutagen.

Used by the demo, the tests and the benchmarks; nothing here is read from the network.

A song is a melody of seeded notes over a seeded bass line with a little noise, so two
seeds give different recordings (and different Chromaprint fingerprints) while one seed
encoded twice gives two renditions of the same recording.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

# extension -> (container format, codec, codec options, sample rate)
FORMATS: dict[str, tuple[str, str, dict[str, str], int]] = {
    "mp3": ("mp3", "libmp3lame", {}, 44100),
    "flac": ("flac", "flac", {}, 44100),
    "ogg": ("ogg", "vorbis", {"strict": "experimental"}, 44100),
    "opus": ("ogg", "libopus", {}, 48000),
    "m4a": ("ipod", "aac", {}, 44100),
    "wma": ("asf", "wmav2", {"b": "128000"}, 44100),
    "aiff": ("aiff", "pcm_s16be", {}, 44100),
    "wav": ("wav", "pcm_s16le", {}, 44100),
    "wv": ("wv", "wavpack", {}, 44100),
    "tta": ("tta", "tta", {}, 44100),
    "alac": ("ipod", "alac", {}, 44100),  # written to a .m4a path with fmt="alac"
    "oga": ("ogg", "flac", {}, 44100),  # FLAC in Ogg
}


def song(seed: int, seconds: float, rate: int = 44100) -> np.ndarray:
    """A seeded stereo float32 signal, shape (2, samples), in [-1, 1]."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    out = np.zeros(n, dtype=np.float64)
    pos = 0
    while pos < n:
        length = int(rate * rng.uniform(0.15, 0.5))
        freq = 110.0 * 2 ** (rng.integers(0, 36) / 12)
        seg = slice(pos, min(n, pos + length))
        env = np.minimum(1.0, np.linspace(4, 0, seg.stop - seg.start))
        out[seg] += 0.35 * env * np.sin(2 * np.pi * freq * t[seg])
        out[seg] += 0.15 * env * np.sin(2 * np.pi * 2 * freq * t[seg])
        pos += length
    bass = 55.0 * 2 ** (rng.integers(0, 12) / 12)
    out += 0.2 * np.sin(2 * np.pi * bass * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))
    out += 0.02 * rng.standard_normal(n)
    out = np.clip(out, -1, 1).astype(np.float32)
    right = np.roll(out, 7) * 0.9
    return np.stack([out, right])


def encode(
    path: Path,
    signal: np.ndarray,
    *,
    rate: int = 44100,
    bitrate: int | None = None,
    fmt: str | None = None,
) -> Path:
    """Encode a (2, samples) float32 signal at `rate` to `path` (format from its suffix)."""
    ext = fmt or path.suffix.lstrip(".").lower()
    container_format, codec, options, codec_rate = FORMATS[ext]
    if codec_rate != rate:
        resampled = av.AudioResampler(format="fltp", layout="stereo", rate=codec_rate)
    else:
        resampled = None
    # bitexact: no encoder version strings and no random Ogg serial numbers, so the same
    # seed gives the same bytes (and the demo the same torrents) on every run.
    with av.open(str(path), "w", format=container_format, options={"fflags": "+bitexact"}) as out:
        stream: Any = out.add_stream(
            codec, rate=codec_rate, options={**options, "flags": "+bitexact"}
        )
        stream.layout = "stereo"
        if bitrate:
            stream.bit_rate = bitrate
        ctx = stream.codec_context
        resampler = av.AudioResampler(
            format=ctx.format.name,
            layout="stereo",
            rate=codec_rate,
            frame_size=ctx.frame_size or 1024,
        )
        step = 4096
        pts = 0
        for start in range(0, signal.shape[1], step):
            chunk = np.ascontiguousarray(signal[:, start : start + step])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = Fraction(1, rate)
            frames = [frame]
            if resampled is not None:
                frames = resampled.resample(frame)
            for f in frames:
                for g in resampler.resample(f):
                    g.pts = pts
                    pts += g.samples
                    for packet in stream.encode(g):
                        out.mux(packet)
        tail = [] if resampled is None else resampled.resample(None)
        for f in tail:
            for g in resampler.resample(f):
                g.pts = pts
                pts += g.samples
                for packet in stream.encode(g):
                    out.mux(packet)
        for g in resampler.resample(None):
            g.pts = pts
            pts += g.samples
            for packet in stream.encode(g):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def tag(path: Path, tags: Mapping[str, str | Sequence[str]]) -> Path:
    """Write easy tags (title, artist, album, isrc, musicbrainz_trackid, tracknumber ...)."""
    import mutagen
    from mutagen.easymp4 import EasyMP4Tags

    if "isrc" not in EasyMP4Tags.Get:
        EasyMP4Tags.RegisterFreeformKey("isrc", "ISRC")
    f = mutagen.File(str(path), easy=True)
    if f is None:
        raise ValueError(f"{path}: mutagen cannot tag this file")
    if f.tags is None:
        f.add_tags()
    for key, value in tags.items():
        f[key] = [value] if isinstance(value, str) else list(value)
    f.save()
    return path


def make_file(
    path: Path,
    *,
    seed: int,
    seconds: float = 8.0,
    bitrate: int | None = None,
    tags: Mapping[str, str | Sequence[str]] | None = None,
    trim_start: float = 0.0,
) -> Path:
    """One tagged file of song `seed` (optionally with its first `trim_start` seconds cut)."""
    signal = song(seed, seconds)
    if trim_start:
        signal = signal[:, int(trim_start * 44100) :]
    encode(path, signal, bitrate=bitrate)
    if tags:
        tag(path, tags)
    return path


def demo_files(folder: Path, tracks: Any, *, seed: int = 7) -> list[Path]:
    """A handful of tagged files for catalogue `tracks` (an interchange-format Arrow table).

    Two renditions (FLAC and MP3) of the most popular track, tagged with its ISRC; one Ogg
    tagged with another track's ISRC; one Opus of the shortest track tagged only with its
    artist and title (at its catalogue length, so artist + title + duration matches); an
    untagged M4A that matches nothing; and a byte-for-byte copy of the MP3.
    """
    import pyarrow.compute as pc

    folder.mkdir(parents=True, exist_ok=True)
    rows = tracks.take(pc.sort_indices(tracks, [("popularity", "descending")])).to_pylist()
    top, second = rows[0], rows[1]
    shortest = min(rows[2:200], key=lambda r: r["duration_ms"])

    def names(row: dict[str, Any]) -> dict[str, str]:
        return {"title": row["title"], "artist": row["artists"][0]["name"]}

    out = [
        make_file(
            folder / "top.flac", seed=seed, seconds=10, tags={**names(top), "isrc": top["isrc"]}
        ),
        make_file(
            folder / "top.mp3",
            seed=seed,
            seconds=10,
            bitrate=128_000,
            tags={**names(top), "isrc": top["isrc"]},
        ),
        make_file(
            folder / "second.ogg",
            seed=seed + 1,
            seconds=10,
            tags={**names(second), "isrc": second["isrc"]},
        ),
        make_file(
            folder / "by-name.opus",
            seed=seed + 2,
            seconds=shortest["duration_ms"] / 1000,
            tags=names(shortest),
        ),
        make_file(folder / "unknown.m4a", seed=seed + 3, seconds=6),
    ]
    copy = folder / "copies" / "top-again.mp3"
    copy.parent.mkdir(exist_ok=True)
    copy.write_bytes(out[1].read_bytes())
    return [*out, copy]
