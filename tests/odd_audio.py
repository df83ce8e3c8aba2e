"""Audio files other tools ship as test data, made here: DSD, headers of formats FFmpeg
cannot write, Theora beside Vorbis, Opus with a long pre-skip, MP3 gapless padding, WMA
with a codec FFmpeg lacks, and tags of every tag system (see docs/formats.md)."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np

from tests.audio import encode, song

# the leading bytes of formats that FFmpeg cannot write
HEADERS = {
    "ape": b"MAC " + struct.pack("<H", 3990),
    "mpc": b"MPCK",
    "tak": b"tBaK",
    "ofr": b"OFR ",
}


def dsf(
    path: Path,
    *,
    rate: int = 2822400,
    channels: int = 2,
    block: int = 4096,
    data: bytes | None = None,
    samples: int | None = None,
) -> Path:
    """A DSF (DSD stream file): DSD header, fmt chunk, data chunk."""
    if data is None:
        data = np.random.default_rng(1).integers(0, 256, block * channels * 8, np.uint8).tobytes()
    if samples is None:
        samples = len(data) * 8 // max(channels, 1)
    fmt = b"fmt " + struct.pack("<Q", 52)
    fmt += struct.pack("<IIIIIIQII", 1, 0, 2, channels, rate, 1, samples, block, 0)
    chunk = b"data" + struct.pack("<Q", 12 + len(data)) + data
    header = b"DSD " + struct.pack("<QQQ", 28, 28 + len(fmt) + len(chunk), 0)
    path.write_bytes(header + fmt + chunk)
    return path


def broken_dsf(path: Path) -> Path:
    """A DSF whose demuxing fails part-way: FFmpeg raises InvalidDataError mid-stream."""
    data = np.random.default_rng(2).integers(0, 256, 20000, np.uint8).tobytes()
    return dsf(path, rate=2**31, channels=2, block=1, data=data, samples=0)


def header_only(path: Path, kind: str) -> Path:
    """The start of a file of `kind` (ape, mpc, tak, ofr), without audio."""
    path.write_bytes(HEADERS[kind] + bytes(128))
    return path


def set_opus_preskip(path: Path, preskip: int) -> Path:
    """Rewrite the OpusHead pre-skip (samples at 48 kHz the decoder drops)."""
    from mutagen.ogg import OggPage

    raw = path.read_bytes()
    f = io.BytesIO(raw)
    first = OggPage(f)
    head = first.packets[0]
    first.packets[0] = head[:10] + struct.pack("<H", preskip) + head[12:]
    path.write_bytes(first.write() + raw[f.tell() :])
    return path


def set_mp3_padding(path: Path, padding: int) -> Path:
    """Rewrite the gapless padding of an MP3's LAME/Lavf Info tag."""
    raw = bytearray(path.read_bytes())
    info = raw.find(b"Info")
    if info < 0:
        info = raw.find(b"Xing")
    tag = info + 120  # Info/Xing, flags, frames, bytes, TOC, quality
    assert raw[tag : tag + 4] in (b"LAME", b"Lavf", b"Lavc"), raw[tag : tag + 4]
    d = raw[tag + 21 : tag + 24]
    delay = (d[0] << 4) | (d[1] >> 4)
    raw[tag + 21 : tag + 24] = bytes(
        [delay >> 4, ((delay & 15) << 4) | (padding >> 8), padding & 255]
    )
    path.write_bytes(bytes(raw))
    return path


def wma_with_codec(path: Path, codec_tag: int) -> Path:
    """A WMA whose stream claims `codec_tag` (FFmpeg lacks a decoder for some)."""
    raw = bytearray(path.read_bytes())
    at = raw.find(struct.pack("<H", 0x0161) + struct.pack("<H", 2))  # wmav2, 2 channels
    assert at > 0
    raw[at : at + 2] = struct.pack("<H", codec_tag)
    path.write_bytes(bytes(raw))
    return path


def theora_beside(vorbis: Path, out: Path, comments: dict[str, str]) -> Path:
    """`vorbis` with a Theora stream multiplexed in whose comment header holds `comments`."""
    from mutagen._vorbis import VCommentDict
    from mutagen.ogg import OggPage

    ident = b"\x80theora" + bytes([3, 2, 1]) + struct.pack(">HH", 2, 2)
    ident += (32).to_bytes(3, "big") + (32).to_bytes(3, "big") + bytes([0, 0])
    ident += struct.pack(">II", 25, 1) + (1).to_bytes(3, "big") * 2 + bytes([0])
    ident += (0).to_bytes(3, "big") + struct.pack(">H", 6 << 5)
    vc = VCommentDict()
    for key, value in comments.items():
        vc[key] = [value]
    comment = b"\x81theora" + vc.write(framing=False)
    setup = b"\x82theora" + bytes(16)

    def page(packets: list[bytes], seq: int, *, first: bool = False, last: bool = False) -> bytes:
        p = OggPage()
        p.serial, p.sequence, p.position = 0x7E0A, seq, 0
        p.first, p.last, p.packets = first, last, packets
        return p.write()

    f = io.BytesIO(vorbis.read_bytes())
    audio = []
    while f.tell() < len(f.getvalue()):
        audio.append(OggPage(f).write())
    out.write_bytes(
        page([ident], 0, first=True)
        + audio[0]
        + page([comment, setup], 1)
        + b"".join(audio[1:-1])
        + page([b""], 2, last=True)
        + audio[-1]
    )
    return out


def encoded(path: Path, *, seed: int = 1, seconds: float = 2.0, fmt: str | None = None) -> Path:
    return encode(path, song(seed, seconds), fmt=fmt)
