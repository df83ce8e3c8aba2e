"""Probing with real codecs (PyAV): container, codec, duration, bit rate, rate, channels.

`analyse` opens a file once and, when asked, decodes up to two minutes of it into a
Chromaprint fingerprint. It also checks that the audio reaches the end its header
declares (a seek to the last seconds; the decode itself when fingerprinting) and, for
Ogg, that the stream ends with an end-of-stream page: truncated or partly corrupt
audio is kept, with the damage described.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from musicark.store.fingerprint import MAX_SECONDS, Fingerprinter
from musicark.store.ledger import Rejected

LOSSLESS_CODECS = frozenset(
    {
        "flac",
        "alac",
        "wavpack",
        "ape",
        "tta",
        "mlp",
        "truehd",
        "shorten",
        "tak",
        "wmalossless",
        "ralf",
        "als",
    }
)


def is_lossless(codec: str | None) -> bool:
    """FFmpeg's codec name of a lossless codec: FLAC, ALAC, WavPack, APE, TAK, PCM, DSD, ..."""
    if not codec:
        return False
    name = codec.lower()
    return name in LOSSLESS_CODECS or name.startswith(("pcm_", "dsd_")) or "lossless" in name


# Leading bytes of audio formats: a file that starts like audio but cannot be opened is
# corrupt, anything else is not audio at all.
_MAGIC = (
    b"ID3",
    b"fLaC",
    b"OggS",
    b"RIFF",
    b"RF64",
    b"FORM",
    b"FRM8",  # DSDIFF
    b"DSD ",  # DSF
    b"MAC ",  # Monkey's Audio
    b"wvpk",
    b"TTA1",
    b"tBaK",
    b"MPCK",  # Musepack SV8
    b"MP+",  # Musepack SV7
    b"OFR ",  # OptimFROG
    b"#!AMR",
    b"\x30\x26\xb2\x75\x8e\x66\xcf\x11",  # ASF (WMA)
)
_ASF = b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"
# Shortfall between declared and present audio we accept as rounding (frame padding).
_TOLERANCE_S = 0.5
_TOLERANCE_LOSSLESS_S = 0.01  # lossless formats declare their exact length
_TAIL_SEEK_S = 0.5  # without decoding: a packet must start within this of the declared end
_TAIL_TOLERANCE_S = 1.0
# a stream the demuxer gives up on before this much audio holds nothing worth keeping
_MIN_AUDIO_S = 1.0
# Chromaprint resamples to 11 kHz; a nonsense header rate would make that take minutes
_MAX_FP_RATE = 768_000


@dataclass
class Analysis:
    container: str
    codec: str
    duration_ms: int | None
    bitrate: int | None
    sample_rate: int | None
    channels: int | None
    lossless: bool
    damaged: str | None = None
    fingerprint: np.ndarray | None = None
    fingerprint_ms: int | None = None
    note: str | None = None  # e.g. the codec cannot be decoded here (the audio is unchecked)
    extra: dict[str, Any] = field(default_factory=dict)


def _looks_like_audio(head: bytes) -> bool:
    if head.startswith(_MAGIC):
        return True
    if len(head) >= 8 and head[4:8] == b"ftyp":
        return True
    return len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0  # MPEG sync


def _ogg_ends_cleanly(path: Path, size: int, data: bytes | None = None) -> bool:
    """True when the last Ogg page is complete and flagged end-of-stream."""
    start = max(0, size - 65536 - 282)
    if data is not None:
        tail = data[start:]
    else:
        with open(path, "rb") as f:
            f.seek(start)
            tail = f.read()
    i = tail.rfind(b"OggS")
    while i >= 0:
        if len(tail) - i >= 27:
            header_type = tail[i + 5]
            nseg = tail[i + 26]
            if len(tail) - i >= 27 + nseg:
                body = sum(tail[i + 27 : i + 27 + nseg])
                if i + 27 + nseg + body == len(tail):
                    return bool(header_type & 0x04)
                if i + 27 + nseg + body < len(tail):
                    return False  # trailing garbage after the last page
        i = tail.rfind(b"OggS", 0, i)
    return False


# FFmpeg's full demuxer names, as an unhinted open reports them
_CANONICAL = {"mov": "mov,mp4,m4a,3gp,3g2,mj2"}


def _format_hint(head: bytes) -> str | None:
    """The demuxer the leading bytes name (skips FFmpeg's probing of every format)."""
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"OggS"):
        return "ogg"
    if len(head) >= 8 and head[4:8] == b"ftyp":
        return "mov"
    if head.startswith(b"ID3") or (
        len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0 and (head[1] & 0x06)
    ):
        return "mp3"
    return None


def _open(path: Path, head: bytes) -> Any:
    import av

    hint = _format_hint(head)
    if hint is not None:
        try:
            container = av.open(str(path), format=hint, metadata_errors="ignore")
            audio = container.streams.audio
            # an ID3 tag starts other formats too (TTA, AAC): no sample rate, wrong guess
            if audio and audio[0].codec_context and audio[0].codec_context.sample_rate:
                return container
            container.close()
        except (av.error.FFmpegError, UnicodeDecodeError, ValueError):
            pass
    return av.open(str(path), metadata_errors="ignore")


class _Undecodable(Exception):
    """The container is readable but this FFmpeg has no working decoder for its codec."""


def _from_mutagen(path: Path, why: str) -> Analysis | None:
    """What mutagen's own parser says of a file FFmpeg cannot decode (None: nothing)."""
    import mutagen

    try:
        f = mutagen.File(str(path))
    except Exception:  # mutagen raises more than MutagenError on hostile input
        return None
    info = getattr(f, "info", None)
    length = getattr(info, "length", None)
    if f is None or not length or length <= 0:
        return None
    codec = str(getattr(info, "codec_name", "") or type(f).__name__.lower())
    container = type(f).__name__.lower()
    return Analysis(
        container=container,
        codec=codec,
        duration_ms=round(length * 1000),
        bitrate=int(getattr(info, "bitrate", 0) or 0) or None,
        sample_rate=int(getattr(info, "sample_rate", 0) or 0) or None,
        channels=int(getattr(info, "channels", 0) or 0) or None,
        lossless=is_lossless(codec),
        note=f"{why}: the audio was not checked, the tags were kept",
    )


def analyse(
    path: Path,
    *,
    fingerprint: bool = True,
    size: int | None = None,
    head: bytes | None = None,
    data: bytes | None = None,
) -> Analysis:
    """Probe (and optionally fingerprint) one file; raise `Rejected` if it is not usable audio.

    `size`, `head` (its first bytes) and `data` (all of them), when the caller has them,
    save re-reading.
    """
    import av

    if size is None:
        size = os.stat(path).st_size
    if size == 0:
        raise Rejected("error_empty", "zero-byte file")
    if head is None:
        with open(path, "rb") as f:
            head = f.read(16)
    try:
        container = _open(path, head)
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        if head.startswith(_ASF):
            found = _from_mutagen(path, "its codec cannot be decoded here")
            if found is not None:
                return found
        if _looks_like_audio(head):
            raise Rejected("error_corrupt", f"starts like audio but cannot be read: {exc}") from exc
        raise Rejected("error_not_audio", "not an audio file (no known audio format)") from exc
    try:
        return _analyse_open(container, path, size, fingerprint=fingerprint, data=data)
    except _Undecodable as exc:
        found = _from_mutagen(path, f"the {exc} codec cannot be decoded here")
        if found is None:
            raise Rejected("error_corrupt", f"the {exc} codec cannot be decoded here") from exc
        return found
    finally:
        container.close()


def _declared(container: Any, stream: Any) -> float | None:
    """The length the headers declare, in seconds: never negative, without the encoder
    delay a decoder skips (Opus pre-skip)."""
    declared = None
    if container.duration is not None and container.duration > 0:
        declared = container.duration / 1_000_000
    elif stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        declared = float(stream.duration * stream.time_base)
    extradata = getattr(stream.codec_context, "extradata", None) or b""
    if declared and extradata[:8] == b"OpusHead" and len(extradata) >= 12:
        # granule positions count the pre-skip samples (at 48 kHz) that playback drops
        declared -= int.from_bytes(extradata[10:12], "little") / 48000
    return declared if declared and declared > 0 else None


def _analyse_open(
    container: Any, path: Path, size: int, *, fingerprint: bool, data: bytes | None = None
) -> Analysis:
    if not container.streams.audio:
        if container.streams.video:
            raise Rejected("error_not_audio", "video without an audio stream")
        raise Rejected("error_not_audio", f"no audio stream in {container.format.name} data")
    stream = container.streams.audio[0]
    ctx = stream.codec_context
    if ctx is None:
        raise _Undecodable(f"{container.format.name} audio")
    codec = ctx.name
    if codec in {"mjpeg", "png"} or container.format.name in {"image2", "tty", "txt"}:
        raise Rejected("error_not_audio", "not an audio file")
    if not ctx.sample_rate and not getattr(ctx, "channels", 0):
        raise Rejected("error_corrupt", f"{codec} stream without audio parameters")
    declared = _declared(container, stream)
    bitrate = stream.bit_rate or container.bit_rate or None
    sample_rate = ctx.sample_rate or None
    channels = getattr(ctx, "channels", None) or (ctx.layout.nb_channels if ctx.layout else None)
    out = Analysis(
        container=_CANONICAL.get(container.format.name, container.format.name),
        codec=codec,
        duration_ms=round(declared * 1000) if declared else None,
        bitrate=int(bitrate) if bitrate else None,
        sample_rate=sample_rate,
        channels=channels,
        lossless=is_lossless(codec),
    )
    out.extra["video"] = bool(container.streams.video)
    problems: list[str] = []
    reached = 0.0
    if fingerprint and sample_rate:
        reached = _decode_check(container, stream, out, problems)
    is_ogg = container.format.name == "ogg"
    if declared and ((fingerprint and sample_rate) or not is_ogg):
        if fingerprint and sample_rate:  # decoding ran to the end
            end: float | None = reached
            tolerance = _TOLERANCE_LOSSLESS_S if out.lossless else _TOLERANCE_S
        else:  # seek near the declared end (not for Ogg: its declared length is its last
            # page, so a cut shows in the end-of-stream check below instead)
            tolerance = _TAIL_TOLERANCE_S
            end = None
            if container.format.name == "flac":  # a FLAC seek reads dozens of frames
                end = flac_tail_end(path, size, data)
            if end is None or end < declared - tolerance:  # confirm with the demuxer
                end = _tail_end(container, stream, declared)
        if end is None or end < declared - tolerance:
            have = 0.0 if end is None else end
            problems.append(f"truncated: audio ends at {have:.1f} s of {declared:.1f} s declared")
            out.extra["present_ms"] = round(have * 1000)
    if is_ogg and not _ogg_ends_cleanly(path, size, data):
        problems.append("truncated: the Ogg stream has no end-of-stream page")
    if problems:
        out.damaged = "; ".join(problems)
    return out


def _decode_check(container: Any, stream: Any, out: Analysis, problems: list[str]) -> float:
    """Decode into the fingerprint; returns the seconds of audio reached."""
    ctx = stream.codec_context
    if out.lossless:
        # check every frame's CRC and drop bad frames: the shortfall shows the damage
        ctx.options = {"err_detect": "crccheck+explode"}
    failure: list[str] = []
    reached, errors, values = _decode(container, stream, ctx.sample_rate, failure)
    out.fingerprint = values
    out.fingerprint_ms = round(min(reached, MAX_SECONDS) * 1000)
    if errors:
        problems.append(f"{errors} undecodable packet{'s' if errors > 1 else ''}")
    if reached == 0 and errors and container.format.name == "asf":
        raise _Undecodable(out.codec)  # WMA profiles FFmpeg lacks decode to nothing
    if reached == 0 or (failure and reached < _MIN_AUDIO_S):
        why = f": {failure[0]}" if failure else ""
        raise Rejected("error_corrupt", f"{out.codec} stream holds no decodable audio{why}")
    if failure:
        problems.append(f"unreadable after {reached:.1f} s: {failure[0]}")
    if out.duration_ms is None:
        out.duration_ms = round(reached * 1000)
    return reached


def _packets(container: Any, stream: Any, failure: list[str]) -> Iterator[Any]:
    """The stream's packets until the demuxer fails (the failure is appended)."""
    import av

    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except (av.error.FFmpegError, ValueError, OverflowError) as exc:
            failure.append(str(exc).strip()[:200] or type(exc).__name__)
            return
        yield packet


_Chunk = bytes | memoryview

_DTYPES = {
    "u8": np.uint8,
    "s16": np.int16,
    "s32": np.int32,
    "s64": np.int64,
    "flt": np.float32,
    "dbl": np.float64,
}


def _pcm16(planes: list[list[_Chunk]], fmt: str) -> bytes:
    """Raw plane bytes of decoded frames -> interleaved signed 16-bit PCM bytes.

    `planes[c]` holds channel c's bytes (planar formats) or, for packed formats, one list
    with the interleaved bytes.
    """
    base = fmt.rstrip("p")
    if base == "s16" and len(planes) == 1:
        return b"".join(planes[0])  # already what Chromaprint wants
    dtype = _DTYPES.get(base, np.int16)
    columns = [np.frombuffer(b"".join(chunks), dtype=dtype) for chunks in planes]
    if columns[0].dtype.kind == "f":
        # one interleaved float buffer, clipped and scaled in place: two passes fewer
        # than stack + clip + multiply, the same values
        data = np.empty((len(columns[0]), len(columns)), dtype=columns[0].dtype)
        for c, column in enumerate(columns):
            data[:, c] = column
        np.clip(data, -1.0, 1.0, out=data)
        data *= 32767.0
        return data.astype("<i2").tobytes()
    data = np.stack(columns, axis=1) if len(columns) > 1 else columns[0]
    if data.dtype == np.int16:
        return np.ascontiguousarray(data).tobytes()
    if data.dtype == np.uint8:
        return ((data.astype(np.int16) - 128) << 8).astype("<i2").tobytes()
    shift = 8 * (data.dtype.itemsize - 2)
    return (data >> shift).astype("<i2").tobytes()


def _decode(
    container: Any, stream: Any, sample_rate: int, failure: list[str]
) -> tuple[float, int, np.ndarray | None]:
    """Decode up to MAX_SECONDS into a fingerprint: (seconds decoded, errors, values).

    Frames are collected as raw plane bytes, converted to 16-bit PCM in chunks of about a
    second and fed to Chromaprint with the source's channels (it downmixes and resamples).
    """
    import av

    fp: Fingerprinter | None = None
    limit = MAX_SECONDS * sample_rate
    samples = 0
    errors = 0
    planes: list[list[_Chunk]] = []
    pending = 0
    layout: tuple[str, int] | None = None

    def flush() -> None:
        nonlocal pending
        if pending and fp is not None and layout is not None:
            fp.feed(_pcm16(planes, layout[0]))
        for chunks in planes:
            chunks.clear()
        pending = 0

    for packet in _packets(container, stream, failure):
        try:
            frames = packet.decode()
        except av.error.FFmpegError:
            errors += 1
            continue
        for frame in frames:
            n = frame.samples
            if not n or frame.sample_rate != sample_rate:
                continue
            kind = (frame.format.name, frame.layout.nb_channels)
            if kind != layout:
                flush()
                if fp is None and layout is None and sample_rate <= _MAX_FP_RATE:
                    fp = Fingerprinter.reuse(sample_rate, kind[1])
                elif layout is not None and kind[1] != layout[1]:
                    continue  # a channel-count change mid-stream: keep the first layout
                layout = kind
                planar = frame.format.is_planar
                planes = [[] for _ in range(kind[1] if planar else 1)]
                width = frame.format.bytes * (1 if planar else kind[1])
            take = min(n, limit - samples)
            if take > 0:
                nbytes = take * width
                for chunks, plane in zip(planes, frame.planes, strict=False):
                    # a view, not two copies (the plane is padded past the samples)
                    chunks.append(memoryview(plane)[:nbytes])
                pending += take
            samples += n
            if pending >= sample_rate:
                flush()
        if samples >= limit:
            flush()
            # keep demuxing (cheaply) to find where the audio ends
            end = _demux_end(container, stream, failure)
            seconds = max(samples / sample_rate, end or 0.0)
            return seconds, errors, fp.finish() if fp else None
    flush()
    values = fp.finish() if fp is not None and samples else None
    return samples / sample_rate, errors, values


def _demux_end(container: Any, stream: Any, failure: list[str]) -> float | None:
    end = None
    for packet in _packets(container, stream, failure):
        pts = packet.pts
        if pts is not None:
            e = pts + (packet.duration or 0)
            if end is None or e > end:
                end = e
    return None if end is None else float(end * stream.time_base)


def _crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = _CRC8[crc ^ byte]
    return crc


def _crc8_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = ((c << 1) ^ 0x07 if c & 0x80 else c << 1) & 0xFF
        table.append(c)
    return table


_CRC8 = _crc8_table()
_FLAC_TAIL = 65536


def _flac_block_size(code: int, extra: bytes) -> int | None:
    if code == 1:
        return 192
    if 2 <= code <= 5:
        return 576 << (code - 2)
    if code == 6:
        return extra[0] + 1
    if code == 7:
        return int.from_bytes(extra[:2], "big") + 1
    if code >= 8:
        return 256 << (code - 8)
    return None


def _flac_frame_end(buf: bytes, i: int, block: int) -> int | None:
    """The sample just after the frame whose header starts at `buf[i]` (None: no valid,
    CRC-checked frame header there). `block`: the stream's fixed block size."""
    if len(buf) - i < 6 or buf[i + 2] >> 4 == 0 or buf[i + 2] & 0x0F == 0x0F:
        return None
    if buf[i + 3] & 0x01 or buf[i + 3] >> 4 > 10:
        return None
    first = buf[i + 4]
    extra_bytes = 0
    while extra_bytes < 7 and first & (0x80 >> extra_bytes):
        extra_bytes += 1
    if extra_bytes == 1 or first == 0xFF or (extra_bytes == 7 and not buf[i + 1] & 1):
        return None  # a continuation byte cannot start the number
    n = max(0, extra_bytes - 1)
    value = first & (0x7F >> extra_bytes)
    j = i + 5
    for _ in range(n):
        if j >= len(buf) or buf[j] & 0xC0 != 0x80:
            return None
        value = value << 6 | buf[j] & 0x3F
        j += 1
    code, rate = buf[i + 2] >> 4, buf[i + 2] & 0x0F
    j += (code == 6) + 2 * (code == 7)
    j += (rate == 12) + 2 * (rate in (13, 14))
    if j >= len(buf) or _crc8(buf[i:j]) != buf[j]:
        return None
    size = _flac_block_size(code, buf[i + 5 + n : j])
    if size is None:
        return None
    start = value if buf[i + 1] & 1 else value * block
    return start + size


def flac_tail_end(path: Path, size: int, data: bytes | None = None) -> float | None:
    """Where a FLAC file's audio ends, in seconds, from the last frame header in its last
    64 KiB (None: none found). Cheaper than a demuxer seek, which reads many frames."""
    if data is not None:
        head, tail = data[:42], data[max(0, size - _FLAC_TAIL) :]
    else:
        with open(path, "rb") as f:
            head = f.read(42)
            f.seek(max(0, size - _FLAC_TAIL))
            tail = f.read()
    if len(head) < 42 or head[:4] != b"fLaC" or head[4] & 0x7F != 0:
        return None
    block = int.from_bytes(head[10:12], "big")  # STREAMINFO's maximum block size
    rate = int.from_bytes(head[18:21], "big") >> 4
    total = int.from_bytes(head[21:26], "big") & 0xFFFFFFFFF
    if not rate or not block:
        return None
    i = len(tail)
    while True:
        i = tail.rfind(b"\xff", 0, i)
        if i < 0:
            return None
        if i + 1 < len(tail) and tail[i + 1] in (0xF8, 0xF9):
            end = _flac_frame_end(tail, i, block)
            if end is not None and (not total or end <= total + block):
                return end / rate


def _tail_end(container: Any, stream: Any, declared: float) -> float | None:
    """Roughly where the audio ends: seek just before the declared end, read one packet.

    A complete file has a packet there; a truncated one seeks short (or fails).
    """
    import av

    tb = stream.time_base
    try:
        container.seek(int(max(0.0, declared - _TAIL_SEEK_S) / tb), stream=stream, backward=True)
        for packet in container.demux(stream):
            if packet.pts is not None:
                return float((packet.pts + (packet.duration or 0)) * tb)
    except (av.error.FFmpegError, OverflowError, ZeroDivisionError):
        return None
    return None
