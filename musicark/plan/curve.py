"""The coverage curve: share of listens and of tracks against storage, its knee, its slope.

The curve is read from a `Cumulative`: the cumulative bytes and listens down the ranking.
`Running` computes them a chunk at a time from the per-track values (16 bytes per
candidate never stored); `Stored` wraps arrays already computed.

The knee is the point of the curve farthest above the straight line from nothing to the
whole candidate list (both axes scaled to 0-1, the "Kneedle" definition): past it, each
further byte buys less than the average byte. The marginal value at the budget is the
listens per extra terabyte of the tracks that would come next (the next 1 % of the
budget's bytes, at least one track).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

CURVE_POINTS = 400
STEP = 1 << 20  # cumulative values computed this many at a time


class Cumulative:
    """Cumulative bytes (int64) and listens (float64) of a ranking, a chunk at a time.

    `ends_b[c]`, `ends_l[c]`: the values at the end of chunk c (chunks of `step`).
    """

    size: int
    step: int
    ends_b: np.ndarray
    ends_l: np.ndarray

    def __len__(self) -> int:
        return self.size

    def chunk(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def chunks(self) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        for c in range(len(self.ends_b)):
            yield (c * self.step, *self.chunk(c))

    def span(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """The values of positions [start, stop)."""
        stop = min(stop, self.size)
        parts_b, parts_l = [], []
        for c in range(start // self.step, -(-stop // self.step)):
            b, ll = self.chunk(c)
            lo, hi = max(start - c * self.step, 0), min(stop - c * self.step, len(b))
            parts_b.append(b[lo:hi])
            parts_l.append(ll[lo:hi])
        if not parts_b:
            return np.zeros(0, np.int64), np.zeros(0, np.float64)
        return np.concatenate(parts_b), np.concatenate(parts_l)

    def at(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The values at `positions` (each chunk computed once)."""
        positions = np.asarray(positions, dtype=np.int64)
        b = np.zeros(len(positions), np.int64)
        ll = np.zeros(len(positions), np.float64)
        which = positions // self.step
        for c in np.unique(which):
            cb, cl = self.chunk(int(c))
            sel = which == c
            b[sel] = cb[positions[sel] - c * self.step]
            ll[sel] = cl[positions[sel] - c * self.step]
        return b, ll

    def count_upto(self, xs: np.ndarray) -> np.ndarray:
        """How many cumulative byte values are <= each of `xs` (they never decrease)."""
        xs = np.asarray(xs)
        which = np.searchsorted(self.ends_b, xs, side="right")  # first chunk ending above x
        out = np.full(len(xs), self.size, dtype=np.int64)
        for c in np.unique(which[which < len(self.ends_b)]):
            sel = which == c
            cb, _ = self.chunk(int(c))
            out[sel] = c * self.step + np.searchsorted(cb, xs[sel], side="right")
        return out

    @property
    def total_bytes(self) -> int:
        return int(self.ends_b[-1]) if self.size else 0

    @property
    def total_listens(self) -> float:
        return float(self.ends_l[-1]) if self.size else 0.0


class Stored(Cumulative):
    """Cumulative values held in arrays."""

    def __init__(self, cum_bytes: np.ndarray, cum_listens: np.ndarray, step: int = 0):
        self.cum_b, self.cum_l = cum_bytes, cum_listens
        self.size, self.step = len(cum_bytes), step or STEP
        step = self.step
        last = np.minimum(np.arange(step, self.size + step, step), self.size) - 1
        self.ends_b, self.ends_l = cum_bytes[last], cum_listens[last]

    def chunk(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        sl = slice(c * self.step, (c + 1) * self.step)
        return self.cum_b[sl], self.cum_l[sl]


class Running(Cumulative):
    """Cumulative values of `order` computed when asked, a chunk at a time.

    Each chunk starts from the totals before it (kept per chunk), so any chunk is computed
    alone, with the same additions in the same order as one `np.cumsum` of everything.
    """

    def __init__(
        self,
        order: np.ndarray,
        bytes_of: Callable[[np.ndarray], np.ndarray],
        listens_of: Callable[[np.ndarray], np.ndarray],
        step: int = 0,
    ):
        self.order, self.bytes_of, self.listens_of = order, bytes_of, listens_of
        self._last: tuple[int, np.ndarray, np.ndarray] | None = None
        self.size, self.step = len(order), step or STEP
        step = self.step
        chunks = -(-self.size // step)
        self.ends_b = np.zeros(chunks, np.int64)
        self.ends_l = np.zeros(chunks, np.float64)
        for c in range(chunks):
            b, ll = self.chunk(c)
            self.ends_b[c], self.ends_l[c] = b[-1], ll[-1]

    def chunk(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        if self._last is not None and self._last[0] == c:  # point queries near one place
            return self._last[1], self._last[2]
        idx = self.order[c * self.step : (c + 1) * self.step]
        b = np.asarray(self.bytes_of(idx), dtype=np.int64)
        ll = np.asarray(self.listens_of(idx), dtype=np.float64)
        if c:  # start from the totals so far: carry + x0, then + x1, ... as one cumsum
            b[0] += self.ends_b[c - 1]
            ll[0] += self.ends_l[c - 1]
        np.cumsum(b, out=b)
        np.cumsum(ll, out=ll)
        b.flags.writeable = ll.flags.writeable = False  # shared by the cache
        self._last = (c, b, ll)
        return b, ll


def coverage_curve(
    cum: Cumulative,
    *,
    total_tracks: int,
    total_listens: float,
    budget_bytes: int | None,
    points: int = CURVE_POINTS,
) -> dict[str, list[float]]:
    """Points (evenly spaced in bytes, plus the budget) of the cumulative candidate curve."""
    if len(cum) == 0:
        return {"bytes": [0], "tracks": [0], "pct_listens": [0.0], "pct_tracks": [0.0]}
    top = cum.total_bytes
    xs = np.linspace(0, float(top), points + 1)
    if budget_bytes is not None and budget_bytes < top:
        xs = np.unique(np.r_[xs, float(budget_bytes)])
    counts = cum.count_upto(xs)
    at_b, at_l = cum.at(np.maximum(counts - 1, 0))
    listens = np.where(counts > 0, at_l, 0.0)
    stored = np.where(counts > 0, at_b, 0)
    denom_l = total_listens if total_listens > 0 else 1.0
    return {
        "bytes": [int(b) for b in stored],
        "tracks": [int(c) for c in counts],
        "pct_listens": [round(float(v), 6) for v in 100.0 * listens / denom_l],
        "pct_tracks": [round(float(v), 6) for v in 100.0 * counts / max(total_tracks, 1)],
    }


def knee(cum: Cumulative, *, total_tracks: int, total_listens: float) -> dict[str, Any] | None:
    """The knee of the curve (see the module docstring); None for an empty curve."""
    if len(cum) == 0 or cum.total_bytes <= 0 or cum.total_listens <= 0:
        return None
    # argmax of the gain over the diagonal, a chunk at a time (bounded temporaries)
    i, best = 0, -np.inf
    top_l, top_b = cum.total_listens, float(cum.total_bytes)
    at_b, at_l = 0, 0.0
    for start, cb, cl in cum.chunks():
        gain = cl / top_l - cb / top_b
        j = int(np.argmax(gain))
        if gain[j] > best:
            i, best, at_b, at_l = start + j, gain[j], int(cb[j]), float(cl[j])
    return {
        "tracks": i + 1,
        "bytes": at_b,
        "pct_listens": round(100.0 * at_l / max(total_listens, 1e-300), 4),
        "pct_tracks": round(100.0 * (i + 1) / max(total_tracks, 1), 4),
    }


def marginal_listens_per_tb(cum: Cumulative, *, selected: int, budget_bytes: int | None) -> float:
    """Listens per extra TB of the tracks right after the selection (0 when none are left)."""
    m = len(cum)
    if selected >= m:
        return 0.0
    b0, l0 = 0, 0.0
    if selected:
        got_b, got_l = cum.at(np.array([selected - 1]))
        b0, l0 = int(got_b[0]), float(got_l[0])
    step = max(1, int(0.01 * (budget_bytes if budget_bytes else b0)))
    j = int(cum.count_upto(np.array([b0 + step]))[0])
    j = max(j, selected + 1)
    end_b, end_l = cum.at(np.array([j - 1]))
    db = int(end_b[0]) - b0
    dl = float(end_l[0]) - l0
    return dl / db * 1e12 if db > 0 else 0.0
