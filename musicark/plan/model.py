"""What a plan assumes about each track: expected listens, a secondary score, a tier and a size.

Expected listens
    A track's play count where the catalogue has one. Otherwise an estimate from its 0-100
    popularity ``p`` by an exponential model, which is how streaming popularity scores behave
    (a fixed step in popularity is a fixed *factor* in listens)::

        listens(p) = scale * base ** (p / 100) - scale          (0 at p = 0)

    With ``listens_calibrate`` (the default) ``scale`` and ``base`` are fitted to the
    catalogue itself: a least-squares line through ``(p / 100, ln(play_count + scale))`` over
    the tracks that carry both a popularity above 0 and a play count, so estimates and real
    counts are on one scale. With fewer than `MIN_CALIBRATION` such tracks the configured
    ``[plan] listens_scale`` / ``listens_base`` are used.

Secondary score (0-100)
    Orders the tracks with no expected listens (popularity 0, no play count): they carry no
    signal of their own, so they borrow their credits'::

        0.5 * artist popularity + 0.25 * album popularity + 0.25 * followers score
        followers score = min(100, 100 * log10(1 + followers) / 8)   (1e8 followers = 100)

    Artist popularity and followers are the highest over the track's credited artists; a
    missing value counts as 0. ``--min-zero-score`` skips zero-listen tracks below a score.

Tier
    ``zero`` for popularity-0 tracks (and tracks with neither popularity nor listens), which
    are planned at ``bitrate_zero_popularity``; ``main`` for the others, at ``bitrate``.

Size
    The stored file's real size where the archive holds the track's preferred rendition;
    otherwise ``duration_ms * tier bit rate / 8000`` bytes, rounded up. A track with neither
    a duration nor a held file has an unknown size: it is counted and reported, never planned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from musicark.plan.sparse import Overrides

TIERS = ("main", "zero")
TIER_MAIN, TIER_ZERO = 0, 1
MIN_CALIBRATION = 1000


@dataclass(frozen=True, slots=True)
class ListensModel:
    """``listens(p) = scale * base ** (p / 100) - scale``."""

    scale: float
    base: float
    calibrated_from: int = 0  # tracks the fit used; 0 = the configured values

    def estimate(self, popularity: np.ndarray) -> np.ndarray:
        p = np.clip(popularity.astype(np.float64), 0.0, 100.0)
        out: np.ndarray = self.scale * np.power(self.base, p / 100.0) - self.scale
        return np.maximum(out, 0.0)

    def describe(self) -> dict[str, float | int | str]:
        return {
            "formula": "scale * base ** (popularity / 100) - scale",
            "scale": round(self.scale, 6),
            "base": round(self.base, 6),
            "calibrated_from": self.calibrated_from,
        }


def calibrate_listens(
    popularity: np.ndarray,
    play_count: np.ndarray,
    *,
    scale: float,
    base: float,
    calibrate: bool = True,
) -> ListensModel:
    """Fit the model to tracks with both a popularity above 0 and a play count (-1 = none)."""
    if scale <= 0 or base <= 1:
        from musicark.errors import UsageError

        raise UsageError("[plan] listens_scale must be > 0 and listens_base > 1")
    if not calibrate:
        return ListensModel(scale, base)
    pops, counts = [], []
    for start in range(0, len(popularity), 1 << 20):  # no catalogue-wide masks
        sl = slice(start, start + (1 << 20))
        both = (popularity[sl] > 0) & (play_count[sl] >= 0)
        pops.append(popularity[sl][both])
        counts.append(play_count[sl][both])
    n = sum(len(p) for p in pops)
    if n < MIN_CALIBRATION:
        return ListensModel(scale, base)
    x = np.concatenate(pops).astype(np.float64) / 100.0
    plays = np.concatenate(counts).astype(np.float64)
    del pops, counts
    # Fit ln(plays + s) = ln(s) + x ln(b); s enters both sides, so iterate a few times
    # from the configured scale (converges in a handful of steps on real-shaped data).
    # x - mean(x) and its variance do not change between steps; y is worked in place.
    xm = x.mean()
    dx = x
    dx -= xm
    del x
    var = float((dx**2).mean())
    y = np.empty_like(plays)
    s = scale
    slope = np.log(base)
    for _ in range(8):
        np.add(plays, s, out=y)
        np.log(y, out=y)
        ym = y.mean()
        if var <= 0:
            return ListensModel(scale, base)
        y -= ym
        y *= dx
        slope = float(y.mean() / var)
        new_s = float(np.exp(ym - slope * xm))
        if not np.isfinite(new_s) or new_s <= 0 or slope <= 0:
            return ListensModel(scale, base)
        if abs(new_s - s) <= 1e-6 * s:
            s = new_s
            break
        s = new_s
    # Rounded to 9 digits: the fit's last bits depend on the catalogue's row order.
    return ListensModel(_round9(s), _round9(float(np.exp(slope))), calibrated_from=n)


def _round9(x: float) -> float:
    return float(f"{x:.9g}")


def expected_listens(
    popularity: np.ndarray, play_count: np.ndarray, model: ListensModel
) -> np.ndarray:
    """Play count where known (>= 0), else the model's estimate from popularity (-1 = none)."""
    listens = model.estimate(popularity)
    known = play_count >= 0
    listens[known] = play_count[known]
    listens[(popularity < 0) & ~known] = 0.0
    return listens


def secondary_score(
    artist_popularity: np.ndarray, album_popularity: np.ndarray, followers: np.ndarray
) -> np.ndarray:
    """The 0-100 score of the module docstring (inputs -1 where unknown)."""
    a = np.clip(artist_popularity.astype(np.float64), 0.0, 100.0)
    b = np.clip(album_popularity.astype(np.float64), 0.0, 100.0)
    f = np.minimum(100.0, 12.5 * np.log10(1.0 + np.maximum(followers, 0).astype(np.float64)))
    out: np.ndarray = 0.5 * a + 0.25 * b + 0.25 * f
    return out


def tiers(popularity: np.ndarray, listens: np.ndarray) -> np.ndarray:
    """`TIER_ZERO` for popularity 0 (or no popularity and no listens), else `TIER_MAIN`."""
    zero = (popularity == 0) | ((popularity < 0) & (listens <= 0))
    return np.where(zero, TIER_ZERO, TIER_MAIN).astype(np.int8)


class Sizes:
    """The expected bytes of every track, computed when read (``sizes[slice or positions]``)
    from the durations and tiers, with the held files' sizes stored for the held tracks
    only (`held`): 8 bytes per track never stored."""

    def __init__(
        self,
        duration_ms: np.ndarray,
        tier: np.ndarray,
        held: Overrides,
        *,
        bitrate: int,
        bitrate_zero: int,
    ) -> None:
        self.duration_ms, self.tier, self.held = duration_ms, tier, held
        self.bitrate, self.bitrate_zero = bitrate, bitrate_zero

    def __len__(self) -> int:
        return len(self.duration_ms)

    def __getitem__(self, idx: slice | np.ndarray) -> np.ndarray:
        d = self.duration_ms[idx]
        rate = np.array([0, 0], dtype=np.int64)
        rate[TIER_MAIN], rate[TIER_ZERO] = self.bitrate, self.bitrate_zero
        out = rate[self.tier[idx]]  # a new array: worked in place from here
        out *= d
        out += 7999
        out //= 8000
        out[d <= 0] = -1
        return self.held.apply(out, idx)
