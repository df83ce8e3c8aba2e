"""The coverage curve: share of listens and of tracks against storage, its knee, its slope.

The knee is the point of the curve farthest above the straight line from nothing to the
whole candidate list (both axes scaled to 0-1, the "Kneedle" definition): past it, each
further byte buys less than the average byte. The marginal value at the budget is the
listens per extra terabyte of the tracks that would come next (the next 1 % of the
budget's bytes, at least one track).
"""

from __future__ import annotations

from typing import Any

import numpy as np

CURVE_POINTS = 400


def coverage_curve(
    cum_bytes: np.ndarray,
    cum_listens: np.ndarray,
    *,
    total_tracks: int,
    total_listens: float,
    budget_bytes: int | None,
    points: int = CURVE_POINTS,
) -> dict[str, list[float]]:
    """Points (evenly spaced in bytes, plus the budget) of the cumulative candidate curve."""
    if len(cum_bytes) == 0:
        return {"bytes": [0], "tracks": [0], "pct_listens": [0.0], "pct_tracks": [0.0]}
    xs = np.linspace(0, float(cum_bytes[-1]), points + 1)
    if budget_bytes is not None and budget_bytes < cum_bytes[-1]:
        xs = np.unique(np.r_[xs, float(budget_bytes)])
    counts = np.searchsorted(cum_bytes, xs, side="right")
    listens = np.where(counts > 0, cum_listens[np.maximum(counts - 1, 0)], 0.0)
    stored = np.where(counts > 0, cum_bytes[np.maximum(counts - 1, 0)], 0)
    denom_l = total_listens if total_listens > 0 else 1.0
    return {
        "bytes": [int(b) for b in stored],
        "tracks": [int(c) for c in counts],
        "pct_listens": [round(float(v), 6) for v in 100.0 * listens / denom_l],
        "pct_tracks": [round(float(v), 6) for v in 100.0 * counts / max(total_tracks, 1)],
    }


def knee(
    cum_bytes: np.ndarray, cum_listens: np.ndarray, *, total_tracks: int, total_listens: float
) -> dict[str, Any] | None:
    """The knee of the curve (see the module docstring); None for an empty curve."""
    if len(cum_bytes) == 0 or cum_bytes[-1] <= 0 or cum_listens[-1] <= 0:
        return None
    # argmax of the gain over the diagonal, a chunk at a time (bounded temporaries)
    i, best, step = 0, -np.inf, 1 << 20
    top_l, top_b = cum_listens[-1], float(cum_bytes[-1])
    for start in range(0, len(cum_bytes), step):
        gain = cum_listens[start : start + step] / top_l - cum_bytes[start : start + step] / top_b
        j = int(np.argmax(gain))
        if gain[j] > best:
            i, best = start + j, gain[j]
    return {
        "tracks": i + 1,
        "bytes": int(cum_bytes[i]),
        "pct_listens": round(100.0 * float(cum_listens[i]) / max(total_listens, 1e-300), 4),
        "pct_tracks": round(100.0 * (i + 1) / max(total_tracks, 1), 4),
    }


def marginal_listens_per_tb(
    cum_bytes: np.ndarray, cum_listens: np.ndarray, *, selected: int, budget_bytes: int | None
) -> float:
    """Listens per extra TB of the tracks right after the selection (0 when none are left)."""
    m = len(cum_bytes)
    if selected >= m:
        return 0.0
    b0 = int(cum_bytes[selected - 1]) if selected else 0
    l0 = float(cum_listens[selected - 1]) if selected else 0.0
    step = max(1, int(0.01 * (budget_bytes if budget_bytes else b0)))
    j = int(np.searchsorted(cum_bytes, b0 + step, side="right"))
    j = max(j, selected + 1)
    db = int(cum_bytes[j - 1]) - b0
    dl = float(cum_listens[j - 1]) - l0
    return dl / db * 1e12 if db > 0 else 0.0
