"""Chromaprint fingerprints of decoded audio, in-process (libchromaprint through pyacoustid).

PCM from PyAV, resampled to signed 16-bit stereo at the native rate, gives the same
fingerprint as `fpcalc` without a subprocess. A fingerprint is one 32-bit value per
~0.124 s of audio; we keep the raw values (uint32, little-endian bytes).
"""

from __future__ import annotations

import numpy as np

MAX_SECONDS = 120  # as fpcalc and AcoustID: the first two minutes
SECONDS_PER_VALUE = 0.1238  # 4096 / 3 samples per item at 11025 Hz


_cache: dict[None, Fingerprinter] = {}


class Fingerprinter:
    """Feed s16 interleaved PCM; `finish()` returns the raw values as uint32."""

    def __init__(self, sample_rate: int, channels: int) -> None:
        import chromaprint

        self._fp = chromaprint.Fingerprinter()
        self._fp.start(sample_rate, channels)
        self._bytes_per_second = sample_rate * channels * 2
        self.fed_seconds = 0.0

    @classmethod
    def reuse(cls, sample_rate: int, channels: int) -> Fingerprinter:
        """A started fingerprinter, reusing this process's Chromaprint context."""
        fp = _cache.get(None)
        if fp is None:
            fp = _cache[None] = cls(sample_rate, channels)
        else:
            fp.restart(sample_rate, channels)
        return fp

    def restart(self, sample_rate: int, channels: int) -> None:
        self._fp.start(sample_rate, channels)
        self._bytes_per_second = sample_rate * channels * 2
        self.fed_seconds = 0.0

    def feed(self, pcm: bytes) -> None:
        self._fp.feed(pcm)
        self.fed_seconds += len(pcm) / self._bytes_per_second

    def finish(self) -> np.ndarray:
        import chromaprint

        encoded = self._fp.finish()
        values, _algorithm = chromaprint.decode_fingerprint(encoded)
        return np.asarray(values, dtype=np.uint32)


def to_bytes(values: np.ndarray) -> bytes:
    return values.astype("<u4").tobytes()


def from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<u4").astype(np.uint32)


def encode(values: np.ndarray) -> str:
    """The compressed base64 form fpcalc prints and AcoustID accepts."""
    import chromaprint

    out = chromaprint.encode_fingerprint([int(v) for v in values], 1)
    return out.decode("ascii") if isinstance(out, bytes) else str(out)
