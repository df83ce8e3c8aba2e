"""The worker side of `transcode`: decode a source once, encode it, check the result.

`render(job)` is pure (a file in, a temporary file and a result record out; no SQLite, no
renames into the store): it decodes the source with PyAV, feeds the encoder and, from the
same decoded frames, a Chromaprint fingerprint of the source; then it decodes the file it
wrote and compares duration and fingerprint (`check.py`). The file is written under a name
of its own (`*.part`, unique per attempt) and only a checked file, synced, is renamed to
`job.tmp_path`: that name never holds a partial file, even when a task is run twice on a
cluster or its worker is killed mid-write (only a `.part` stays, removed by the run). A
failed check deletes the file. `render_batch` runs one task's batch (the unit of a
cluster task).

Determinism: every encoder and muxer setting is given explicitly, and both the codec and
the muxer run with FFmpeg's `bitexact` flag (no version strings, Ogg serial numbers from
the stream index instead of a random seed), so one source and one set of settings give the
same bytes with the same libraries on the same CPU family (libopus picks SIMD code paths
at run time, and floating point may round differently on another one).
"""

from __future__ import annotations

import ctypes
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from musicark.store.blobs import hash_file
from musicark.store.fingerprint import MAX_SECONDS, Fingerprinter, from_bytes
from musicark.tier.check import compare

SETTINGS_VERSION = 1  # bump when the meaning of a settings key changes


@dataclass(frozen=True)
class Codec:
    name: str
    encoder: str  # FFmpeg encoder
    container: str  # FFmpeg muxer
    extension: str
    sample_rate: int
    sample_format: str
    options: tuple[tuple[str, str], ...]


CODECS: dict[str, Codec] = {
    "opus": Codec(
        name="opus",
        encoder="libopus",
        container="ogg",
        extension="opus",
        sample_rate=48000,
        sample_format="flt",
        # libopus's own defaults, pinned: a later FFmpeg changing one would change the bytes
        options=(
            ("application", "audio"),
            ("vbr", "on"),
            ("compression_level", "10"),
            ("frame_duration", "20"),
            ("packet_loss", "0"),
            ("mapping_family", "-1"),
        ),
    ),
}


@dataclass(frozen=True)
class Settings:
    codec: str
    bitrate: int

    @property
    def key(self) -> str:
        """What a derived rendition answers: the same key means an interchangeable file."""
        return f"{self.codec}-{self.bitrate}"

    def describe(self) -> dict[str, Any]:
        c = CODECS[self.codec]
        return {
            "settings_version": SETTINGS_VERSION,
            "codec": c.name,
            "encoder": c.encoder,
            "container": c.container,
            "bitrate": self.bitrate,
            "sample_rate": c.sample_rate,
            "sample_format": c.sample_format,
            "channels": "mono stays mono, anything else becomes stereo",
            "options": dict(c.options),
            "bitexact": True,
            "tags": "the source's container and stream tags",
        }


@dataclass(frozen=True)
class Job:
    source_sha256: str
    source_path: str
    tmp_path: str
    settings: Settings
    source_fp: bytes | None = None  # the source's stored fingerprint (first two minutes)


@dataclass(frozen=True)
class Rendered:
    """What `render` did: `ok` with the derived file's hash, or the reason it failed."""

    source_sha256: str
    ok: bool
    tmp_path: str
    reason: str | None = None
    sha256: str | None = None
    size: int = 0
    channels: int = 0
    duration_ms: int = 0
    source_duration_ms: int = 0
    ber: float | None = None
    offset: int = 0
    tags: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("tmp_path")
        return out


def library_versions() -> dict[str, str]:
    """PyAV, the FFmpeg libraries it carries, and the encoder library."""
    import av

    out = {"pyav": av.__version__}
    for name, version in sorted(av.library_versions.items()):
        out[name] = ".".join(str(v) for v in version)
    out["libopus"] = _libopus_version()
    return out


def _libopus_version() -> str:
    """libopus's own version string, from the copy loaded into this process."""
    import av  # noqa: F401  # loads FFmpeg and the codec libraries it links

    try:
        with open("/proc/self/maps", encoding="utf-8") as f:
            paths = {line.split()[-1] for line in f if "libopus" in line or "libavcodec" in line}
    except OSError:
        paths = set()
    for path in sorted(paths, key=lambda p: "libopus" not in p):
        try:
            fn = ctypes.CDLL(path).opus_get_version_string
        except (OSError, AttributeError):
            continue
        fn.restype = ctypes.c_char_p
        value = fn()
        if isinstance(value, bytes):
            return value.decode("ascii", "replace")
    return "unknown"


FP_RATE = 11025  # Chromaprint's working rate: swresample converts faster than it does


class _Feed:
    """Collects s16 mono PCM at FP_RATE up to a limit; feeds Chromaprint in ~1 s chunks
    (one call per decoded frame costs more than the fingerprint itself). Chromaprint
    downmixes and resamples to 11025 Hz itself, more slowly than swresample; the values
    come out the same (or within a few bits) as from stereo audio at its own rate."""

    def __init__(self, rate: int, limit_seconds: float) -> None:
        self.fp = Fingerprinter.reuse(rate, 1)
        self.rate = rate
        self.left = int(limit_seconds * rate)
        self.chunks: list[bytes] = []
        self.pending = 0

    def add(self, frame: Any) -> None:
        take = min(frame.samples, self.left)
        if take <= 0:
            return
        self.chunks.append(bytes(frame.planes[0])[: take * 2])
        self.left -= take
        self.pending += take
        if self.pending >= self.rate:
            self.flush()

    def flush(self) -> None:
        if self.chunks:
            self.fp.feed(b"".join(self.chunks))
        self.chunks.clear()
        self.pending = 0

    @property
    def full(self) -> bool:
        return self.left <= 0

    def finish(self) -> np.ndarray:
        self.flush()
        return self.fp.finish()


def render_batch(jobs: tuple[Job, ...]) -> list[Rendered]:
    """`render` for each job of one task, in order."""
    return [render(job) for job in jobs]


def split_batch(jobs: tuple[Job, ...]) -> list[tuple[Job, ...]]:
    """Halves of a batch whose worker died, to find the one source that kills it."""
    half = len(jobs) // 2
    return [jobs[:half], jobs[half:]] if len(jobs) > 1 else [jobs]


def render(job: Job) -> Rendered:
    """Encode `job.source_path` to `job.tmp_path` and check it (see the module docstring)."""
    part = f"{job.tmp_path}.{secrets.token_hex(4)}.part"
    try:
        return _render(job, part)
    finally:
        _unlink(part)  # renamed when it passed; otherwise nothing of it is wanted


def _render(job: Job, part: str) -> Rendered:
    import av

    try:
        source = _encode(job, part)
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        return Rendered(job.source_sha256, False, job.tmp_path, reason=f"encode: {exc}")
    if source is None:
        return Rendered(job.source_sha256, False, job.tmp_path, reason="no decodable audio")
    seconds, channels, source_fp, tags = source
    try:
        derived_seconds, derived_fp = decode_fingerprint(part)
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        return Rendered(job.source_sha256, False, job.tmp_path, reason=f"decode: {exc}")
    verdict = compare(
        source_seconds=seconds,
        derived_seconds=derived_seconds,
        source_fp=source_fp,
        derived_fp=derived_fp,
    )
    measured: dict[str, Any] = {
        "duration_ms": round(derived_seconds * 1000),
        "source_duration_ms": round(seconds * 1000),
        "ber": None if verdict.ber is None else round(verdict.ber, 5),
        "offset": verdict.offset,
        "channels": channels,
    }
    if not verdict.ok:
        return Rendered(job.source_sha256, False, job.tmp_path, reason=verdict.reason, **measured)
    sha, size = hash_file(part)
    try:
        _publish(part, job.tmp_path)
    except OSError as exc:
        why = f"cannot write {job.tmp_path}: {exc.strerror}"
        return Rendered(job.source_sha256, False, job.tmp_path, reason=why, **measured)
    return Rendered(
        job.source_sha256, True, job.tmp_path, sha256=sha, size=size, tags=tags, **measured
    )


def _publish(part: str, tmp_path: str) -> None:
    """Sync the checked file and rename it to its final temporary name (atomic within the
    staging folder, which may be a shared filesystem the coordinator reads)."""
    fd = os.open(part, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(part, tmp_path)


def _unlink(path: str) -> None:
    Path(path).unlink(missing_ok=True)


def _encode(job: Job, output: str) -> tuple[float, int, np.ndarray | None, dict[str, str]] | None:
    """Decode the source once into the encoder (writing `output`) and a fingerprint:
    (seconds, channels, fingerprint values, tags), or None when the source holds no audio."""
    import av

    codec = CODECS[job.settings.codec]
    with av.open(job.source_path, metadata_errors="ignore") as src:
        if not src.streams.audio:
            return None
        ist = src.streams.audio[0]
        rate = ist.codec_context.sample_rate
        if not rate:
            return None
        layout_in = ist.codec_context.layout
        channels = 1 if layout_in is not None and layout_in.nb_channels == 1 else 2
        layout = "mono" if channels == 1 else "stereo"
        tags = {**dict(src.metadata), **dict(ist.metadata)}
        with av.open(output, "w", format=codec.container, options={"fflags": "+bitexact"}) as out:
            ost: Any = out.add_stream(
                codec.encoder,
                rate=codec.sample_rate,
                options={**dict(codec.options), "flags": "+bitexact"},
            )
            ost.layout = layout
            ost.format = codec.sample_format  # PyAV would pick the first it lists (s16)
            ost.bit_rate = job.settings.bitrate
            for key, value in tags.items():
                ost.metadata[key] = value
            to_print = av.AudioResampler(format="s16", layout="mono", rate=FP_RATE)
            # a stored fingerprint saves computing it again
            feed = _Feed(FP_RATE, 0 if job.source_fp else MAX_SECONDS)
            samples = 0
            for frame in src.decode(ist):
                samples += frame.samples
                # the stream converts rate, format and frame size itself (one resampling pass)
                out.mux(ost.encode(frame))
                if not feed.full:
                    for f in to_print.resample(frame):
                        feed.add(f)
            if not samples:
                return None
            for packet in ost.encode(None):
                out.mux(packet)
            values = from_bytes(job.source_fp) if job.source_fp else feed.finish()
    return samples / rate, channels, values, tags


def decode_fingerprint(path: str | Path) -> tuple[float, np.ndarray | None]:
    """(seconds of audio, fingerprint of the first two minutes) of a written file.

    The first two minutes are decoded for the fingerprint; an Ogg Opus file's length is
    then its last granule position less the pre-skip (exactly what a decoder outputs, by
    RFC 7845), so the rest is not decoded again. Other files are decoded to the end.
    """
    import av

    with av.open(str(path)) as c:
        st = c.streams.audio[0]
        rate = st.codec_context.sample_rate
        opus_end = _ogg_opus_seconds(Path(path)) if c.format.name == "ogg" else None
        to_print = av.AudioResampler(format="s16", layout="mono", rate=FP_RATE)
        feed = _Feed(FP_RATE, MAX_SECONDS)
        samples = 0
        for frame in c.decode(st):
            samples += frame.samples
            if feed.full:
                if opus_end is not None:
                    break
                continue
            for f in to_print.resample(frame):
                feed.add(f)
        values = feed.finish() if samples else None
    if opus_end is not None and feed.full:
        return opus_end, values
    return samples / rate if rate else 0.0, values


def _ogg_opus_seconds(path: Path) -> float | None:
    """Length of a single-stream Ogg Opus file from its pages (None if it is not one)."""
    with open(path, "rb") as f:
        head = f.read(64)
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - 65536))
        tail = f.read()
    at = head.find(b"OpusHead")
    if at < 0:
        return None
    # the last page: the one whose header, lacing and body end exactly at the end of the file
    # (b"OggS" may also occur inside packet data)
    i = tail.rfind(b"OggS")
    while i >= 0:
        if len(tail) - i >= 27 and tail[i + 4] == 0:
            nseg = tail[i + 26]
            if len(tail) - i >= 27 + nseg:
                body = sum(tail[i + 27 : i + 27 + nseg])
                if i + 27 + nseg + body == len(tail):
                    if not tail[i + 5] & 0x04:
                        return None  # no end-of-stream page: decode to the end instead
                    pre_skip = int.from_bytes(head[at + 10 : at + 12], "little")
                    granule = int.from_bytes(tail[i + 6 : i + 14], "little", signed=True)
                    return max(0, granule - pre_skip) / 48000
        i = tail.rfind(b"OggS", 0, i)
    return None
