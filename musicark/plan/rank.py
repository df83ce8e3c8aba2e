"""Ordering: one representative per ISRC, then every candidate by its strategy key.

Orders are built from single int64 sort keys (no multi-key lexsort over the whole
catalogue) and ties are broken by track id, so the same catalogue always gives the same
order, whatever order its rows are stored in.
"""

from __future__ import annotations

import numpy as np

from musicark.plan.sparse import Overrides

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
    if len(isrc_key) < 2**31:
        has = has.astype(np.int32)
    empty = np.zeros(0, dtype=np.int64)
    if has.size < 2:
        return empty, empty, np.zeros(0, dtype=bool)
    sk = isrc_key[has]
    order = np.argsort(sk)
    sk = sk[order]
    same = sk[1:] == sk[:-1]
    if not same.any():
        return empty, empty, np.zeros(0, dtype=bool)
    in_dup = np.r_[same, False] | np.r_[False, same]
    del same
    members = has[order[in_dup]].astype(np.int64)
    del has, order
    gk = sk[in_dup]
    del sk, in_dup
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
    """Non-negative floats to int64 with the same order (float32 precision, 31 bits)."""
    return np.maximum(x, 0.0).astype(np.float32).view(np.uint32).astype(np.int64)


def _value_bits(value: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """32 bits: ``1 | float32(value)`` where value > 0, else ``0 | secondary score``.

    Every track with a value ranks above every track without one; the latter rank by
    their 0-100 secondary score in steps of 1/600.
    """
    sec = np.clip(np.rint(secondary * 600.0), 0, 65535).astype(np.int64)
    return np.where(value > 0, (1 << 31) | _float_bits(value), sec)


def strategy_keys(
    strategy: str,
    *,
    covered: np.ndarray,
    nbytes: np.ndarray,
    popularity: np.ndarray,
    secondary: np.ndarray,
    track_id: np.ndarray,
) -> np.ndarray:
    """One non-negative int64 per track; higher ranks first.

    per-byte: expected listens per byte, then (for tracks without listens) secondary score.
    popularity: popularity, then expected listens, then secondary score.
    The low bits hold the complement of the track id's top bits, so most ties between
    equal values are already broken by track id (`order_by_key` settles the rest).
    """
    if strategy == "per-byte":
        ratio = covered / np.maximum(nbytes, 1).astype(np.float64)
        value, id_bits = _value_bits(ratio, secondary), 31
    elif strategy == "popularity":
        pop = np.clip(popularity, 0, 100).astype(np.int64)
        value, id_bits = (pop << 32) | _value_bits(covered, secondary), 24
    else:
        raise ValueError(f"unknown strategy {strategy!r}")
    top = np.where(track_id > 0, track_id >> (63 - id_bits), 0).astype(np.int64)
    return (value << id_bits) | (((1 << id_bits) - 1) - top)


def order_by_key(
    key: np.ndarray, track_id: np.ndarray, index: np.ndarray | None = None
) -> np.ndarray:
    """Positions in `key` by `key` descending, ties by track id ascending.

    The track id of position i is ``track_id[index[i]]`` (``track_id[i]`` without `index`).
    Overwrites `key`.
    """
    np.invert(key, out=key)  # ~k reverses the order, in place
    order = np.argsort(key)
    same = np.empty(max(len(key) - 1, 0), dtype=bool)
    step = 1 << 20
    for start in range(0, len(same), step):  # key[order] a piece at a time
        ks = key[order[start : start + step + 1]]
        same[start : start + step] = ks[1:] == ks[:-1]
    if same.any():
        tied = np.flatnonzero(np.r_[same, False] | np.r_[False, same])
        run = np.cumsum(~np.r_[False, same][tied])  # numbers the runs of equal keys
        at = order[tied] if index is None else index[order[tied]]
        fix = np.lexsort((track_id[at], run))
        order[tied] = order[tied][fix]
    return order


def ranked(
    key: np.ndarray, track_id: np.ndarray, index: np.ndarray, *, part_size: int = 1 << 20
) -> np.ndarray:
    """`index` reordered by `key` descending, ties by track id ascending (as `order_by_key`),
    sorting about `part_size` keys at a time (key ranges cut at a sample's quantiles), so
    that the sort's temporaries stay a fraction of `key`. Overwrites `key`.
    """
    m = len(key)
    parts = -(-m // max(part_size, 1))
    if parts <= 1:
        return index[order_by_key(key, track_id, index)]
    np.invert(key, out=key)  # ascending ~key is descending key
    sample = np.sort(key[:: max(1, m // 65536)])
    bounds = np.unique(sample[(np.arange(1, parts) * len(sample)) // parts])
    out = np.empty(m, dtype=index.dtype)
    done = 0
    step = 1 << 20
    for lo, hi in zip(np.r_[[None], bounds], np.r_[bounds, [None]], strict=True):
        pieces = []
        for start in range(0, m, step):  # the positions in [lo, hi), a chunk at a time
            k = key[start : start + step]
            mask = np.ones(len(k), dtype=bool) if lo is None else k >= lo
            if hi is not None:
                mask &= k < hi
            pieces.append(np.flatnonzero(mask).astype(index.dtype) + start)
        at = np.concatenate(pieces)
        del pieces
        sub = ~key[at]  # back to the original keys, which order_by_key inverts
        got = index[at[order_by_key(sub, track_id, index[at])]]
        out[done : done + len(got)] = got
        done += len(got)
    return out


class Covered:
    """The listens each track covers: its own expected listens, except in ISRC groups (the
    group's sum on its representative, 0 on the others). Only the groups' members are
    stored (`sparse.Overrides`); read with ``covered[slice or positions]``.
    """

    def __init__(self, listens: np.ndarray) -> None:
        self.listens = listens
        self.groups = Overrides.none(len(listens), np.float64)

    def set_groups(self, at: list[np.ndarray], values: list[np.ndarray]) -> None:
        """The members of every group (positions, any order) and what each covers; the
        lists are emptied as they are taken in."""
        if not at:
            return
        pos = np.concatenate(at)
        at.clear()
        vals = np.concatenate(values)
        values.clear()
        self.groups = Overrides(len(self.listens), pos, vals)

    def __len__(self) -> int:
        return len(self.listens)

    def __getitem__(self, idx: slice | np.ndarray) -> np.ndarray:
        out = self.listens[idx]
        if isinstance(idx, slice):
            out = out.copy()
        return self.groups.apply(out, idx)
