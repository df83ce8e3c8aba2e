"""Per-track values that differ from a computed default on a few tracks only.

`Overrides` stores those tracks' positions (sorted) and values, and one bit per track
marking them, so that reading a slice or any positions costs a bit test per position
and a search per overridden one, never a search per track.
"""

from __future__ import annotations

import numpy as np


class Overrides:
    """Values at some positions of an `n`-track column; `apply` writes them over a default."""

    def __init__(self, n: int, at: np.ndarray, values: np.ndarray) -> None:
        """`at`: distinct positions, any order (taken in, not copied when sorted)."""
        self.n = n
        pos = at.astype(np.int32, copy=False) if n < 2**31 else at.astype(np.int64, copy=False)
        if len(pos) > 1 and not (pos[1:] > pos[:-1]).all():
            order = np.argsort(pos)
            pos, values = pos[order], values[order]
        self.at, self.values = pos, values
        self.bits = np.zeros(n // 8 + 1 if len(pos) else 0, dtype=np.uint8)
        if len(pos):
            byte = pos >> 3
            starts = np.flatnonzero(np.r_[True, byte[1:] != byte[:-1]])
            bit = np.left_shift(1, pos & 7).astype(np.uint8)
            self.bits[byte[starts]] = np.add.reduceat(bit, starts)  # distinct bits: sum is or

    @classmethod
    def none(cls, n: int, dtype: type[np.generic]) -> Overrides:
        return cls(n, np.zeros(0, np.int64), np.zeros(0, dtype))

    def __len__(self) -> int:
        return len(self.at)

    def mask(self, idx: slice | np.ndarray) -> np.ndarray:
        """Which of the positions `idx` (a slice with step 1, or an array) are overridden."""
        if isinstance(idx, slice):
            start, stop, _ = idx.indices(self.n)
            out = np.zeros(max(stop - start, 0), dtype=bool)
            lo, hi = np.searchsorted(self.at, [start, stop])
            out[self.at[lo:hi] - start] = True
            return out
        if not len(self.at):
            return np.zeros(len(idx), dtype=bool)
        return ((self.bits[idx >> 3] >> (idx & 7).astype(np.uint8)) & 1).astype(bool)

    def apply(self, out: np.ndarray, idx: slice | np.ndarray) -> np.ndarray:
        """`out` (the default values at `idx`) with the overridden ones written in."""
        if not len(self.at) or not len(out):
            return out
        if isinstance(idx, slice):
            start, stop, _ = idx.indices(self.n)
            lo, hi = np.searchsorted(self.at, [start, stop])
            out[self.at[lo:hi] - start] = self.values[lo:hi]
            return out
        maybe = np.flatnonzero((self.bits[idx >> 3] >> (idx & 7).astype(np.uint8)) & 1)
        pos = np.searchsorted(self.at, idx[maybe])  # overridden positions only: always found
        out[maybe] = self.values[pos]
        return out
