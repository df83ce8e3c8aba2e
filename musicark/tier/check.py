"""Is a derived rendition the same recording as its source, complete?

Two measurements, both from decoded audio:

- duration: the derived file decodes to the source's duration within `DURATION_TOLERANCE_S`
  (Opus: a 6.5 ms pre-skip plus at most one 20 ms frame of padding, rounded up to 50 ms);
- Chromaprint: the fingerprints of the first two minutes (as `fpcalc`) differ in at most
  `MAX_BER` of their bits at the best alignment within `MAX_SHIFT` values. Two renditions of
  one recording differ in ~0-6 % of bits, different recordings in ~42-51 %: 10 % leaves room
  for a low bit rate and none for a different or broken recording.

Audio shorter than `MIN_VALUES` fingerprint values (~3 s) cannot be compared and fails.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from musicark.store.acoustic import bit_error_rate

DURATION_TOLERANCE_S = 0.05
MAX_BER = 0.10
MAX_SHIFT = 2  # fingerprint values (~0.12 s each) either way
MIN_VALUES = 24


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str | None
    ber: float | None
    offset: int


def compare(
    *,
    source_seconds: float,
    derived_seconds: float,
    source_fp: np.ndarray | None,
    derived_fp: np.ndarray | None,
) -> Verdict:
    """The check of the module docstring."""
    gap = derived_seconds - source_seconds
    if abs(gap) > DURATION_TOLERANCE_S:
        return Verdict(
            False,
            f"decodes to {derived_seconds:.3f} s, the source to {source_seconds:.3f} s",
            None,
            0,
        )
    if source_fp is None or derived_fp is None or min(len(source_fp), len(derived_fp)) < MIN_VALUES:
        return Verdict(False, "too short to compare by Chromaprint fingerprint", None, 0)
    trials = [
        (*bit_error_rate(derived_fp, source_fp, shift), shift)
        for shift in range(-MAX_SHIFT, MAX_SHIFT + 1)
    ]
    ber, _overlap, offset = min(trials, key=lambda t: (t[0], abs(t[2])))
    if ber > MAX_BER:
        return Verdict(
            False,
            f"Chromaprint fingerprint differs from the source's in {ber:.1%} of bits"
            f" (at most {MAX_BER:.0%} allowed)",
            ber,
            offset,
        )
    return Verdict(True, None, ber, offset)
