"""Ordering: one representative per ISRC, then every candidate by its strategy key.

Orders are built from single int64 sort keys (no multi-key lexsort over the whole
catalogue) and ties are broken by track id, so the same catalogue always gives the same
order, whatever order its rows are stored in.
"""

from __future__ import annotations

import numpy as np

STRATEGIES = ("per-byte", "popularity")


def isrc_representatives(
    isrc_key: np.ndarray,
    eligible: np.ndarray,
    *,
    held: np.ndarray,
    listens: np.ndarray,
    popularity: np.ndarray,
    described: np.ndarray,
    track_id: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tracks that share an ISRC with another track: (members, group, is_representative).

    `members` index the tracks in groups of two or more (sorted by group), `group` numbers
    their group, and the representative of a group is its first eligible member by: a held
    file first, then most expected listens, highest popularity, best described, lowest id.
    A group with no eligible member has no representative.
    """
    has = np.flatnonzero(isrc_key != 0)
    empty = np.zeros(0, dtype=np.int64)
    if has.size < 2:
        return empty, empty, np.zeros(0, dtype=bool)
    keys = isrc_key[has]
    order = np.argsort(keys)
    sk = keys[order]
    same = sk[1:] == sk[:-1]
    if not same.any():
        return empty, empty, np.zeros(0, dtype=bool)
    in_dup = np.r_[same, False] | np.r_[False, same]
    members = has[order[in_dup]]
    gk = sk[in_dup]
    group = np.cumsum(np.r_[True, gk[1:] != gk[:-1]]) - 1
    # Order each group's members: eligible, held, listens, popularity, described, id.
    sub = np.lexsort(
        (
            track_id[members],
            -described[members],
            -popularity[members],
            -listens[members],
            ~held[members],
            ~eligible[members],
            group,
        )
    )
    members, group = members[sub], group[sub]
    first = np.r_[True, group[1:] != group[:-1]]
    is_rep = first & eligible[members]
    return members, group, is_rep


def _float_bits(x: np.ndarray) -> np.ndarray:
    """Non-negative floats to int64 with the same order (float32 precision)."""
    return np.maximum(x, 0.0).astype(np.float32).view(np.uint32).astype(np.int64)


def _score_bits(secondary: np.ndarray) -> np.ndarray:
    """A 0-100 score to 16 bits (steps of 1/600)."""
    return np.clip(np.rint(secondary * 600.0), 0, 65535).astype(np.int64)


def strategy_keys(
    strategy: str,
    *,
    covered: np.ndarray,
    nbytes: np.ndarray,
    popularity: np.ndarray,
    secondary: np.ndarray,
) -> np.ndarray:
    """One int64 per track; higher ranks first.

    per-byte: expected listens per byte, then (for tracks without listens) secondary score.
    popularity: popularity, then expected listens, then secondary score.
    """
    sec = np.where(covered > 0, 0, _score_bits(secondary))
    if strategy == "per-byte":
        ratio = covered / np.maximum(nbytes, 1).astype(np.float64)
        return (_float_bits(ratio) << 16) | sec
    if strategy == "popularity":
        pop = np.clip(popularity, 0, 100).astype(np.int64)
        return (pop << 47) | (_float_bits(covered) << 16) | sec
    raise ValueError(f"unknown strategy {strategy!r}")


def order_by_key(key: np.ndarray, track_id: np.ndarray) -> np.ndarray:
    """Indices by `key` descending, ties by `track_id` ascending."""
    order = np.argsort(-key)
    ks = key[order]
    same = ks[1:] == ks[:-1]
    if same.any():
        tied = np.flatnonzero(np.r_[same, False] | np.r_[False, same])
        run = np.cumsum(np.r_[True, ~same])[tied]
        fix = np.lexsort((track_id[order[tied]], run))
        order[tied] = order[tied][fix]
    return order
