"""Compiled loops (numba, cached beside this module) for the per-row steps of reading a
plan's catalogue: looking ids up in a side table and reducing credits to one entry per
track, which as numpy steps cost several passes and a cache-missing binary search each.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

BUCKET_BITS = 2  # ~4 ids per bucket of the lookup index


@functools.cache
def _compiled() -> dict[str, Any]:
    from numba import njit

    @njit(nogil=True, cache=True)
    def find(ids, starts, base, shift, query, out):  # type: ignore[no-untyped-def]
        """out[i] = position of query[i] in the sorted `ids`, len(ids) where absent; a
        run of equal queries is looked up once. `starts[b]`: the first id whose offset
        from `base`, shifted right by `shift`, is at least b."""
        n = ids.shape[0]
        nb = starts.shape[0] - 1
        last_q = 0
        last_p = -1
        for i in range(query.shape[0]):
            q = query[i]
            if last_p >= 0 and q == last_q:
                out[i] = last_p
                continue
            p = n
            if n and base <= q <= ids[n - 1]:
                b = np.int64((np.uint64(q) - np.uint64(base)) >> np.uint64(shift))
                lo = starts[b]
                hi = starts[b + 1] if b < nb else n
                while lo < hi:  # first id >= q in the bucket
                    mid = (lo + hi) >> 1
                    if ids[mid] < q:
                        lo = mid + 1
                    else:
                        hi = mid
                if lo < n and ids[lo] == q:
                    p = lo
            out[i] = p
            last_q, last_p = q, p

    @njit(nogil=True, cache=True)
    def credit_runs(track, at, pop, fol, keys, pops, fols, n):  # type: ignore[no-untyped-def]
        """Append (track id, max popularity, max followers) per run of equal track ids
        to keys/pops/fols from position n (a run continuing keys[n - 1] merges into it);
        returns the new n. `at`: each credit's artist position (its values in pop/fol)."""
        for i in range(track.shape[0]):
            t = track[i]
            p = pop[at[i]]
            f = fol[at[i]]
            if n and keys[n - 1] == t:
                if p > pops[n - 1]:
                    pops[n - 1] = p
                if f > fols[n - 1]:
                    fols[n - 1] = f
            else:
                keys[n] = t
                pops[n] = p
                fols[n] = f
                n += 1
        return n

    return {"find": find, "credit_runs": credit_runs}


class Lookup:
    """Positions of ids in a sorted id array, through a bucket index over the id range
    (about 4 ids per bucket, then a binary search inside the bucket)."""

    def __init__(self, ids: np.ndarray) -> None:
        self.ids = np.ascontiguousarray(ids, dtype=np.int64)
        n = len(self.ids)
        self.base = int(self.ids[0]) if n else 0
        span = int(self.ids[-1]) - self.base if n else 0
        buckets = max(1, n >> BUCKET_BITS)
        self.shift = max(0, span.bit_length() - max(buckets.bit_length() - 1, 0))
        offset = (self.ids.view(np.uint64) - np.uint64(self.base & (2**64 - 1))) >> np.uint64(
            self.shift
        )
        top = int(offset[-1]) + 1 if n else 1
        self.starts = np.searchsorted(offset, np.arange(top, dtype=np.uint64)).astype(np.int64)

    def find(self, query: np.ndarray) -> np.ndarray:
        out = np.empty(len(query), dtype=np.int64)
        _compiled()["find"](
            self.ids, self.starts, self.base, self.shift, np.ascontiguousarray(query), out
        )
        return out


def credit_runs(
    track: np.ndarray,
    at: np.ndarray,
    values: tuple[np.ndarray, np.ndarray],
    out: tuple[np.ndarray, np.ndarray, np.ndarray],
    n: int,
) -> int:
    """See `_compiled`'s `credit_runs`: appends to `out` (keys, pops, fols) from n."""
    fn = _compiled()["credit_runs"]
    return int(fn(np.ascontiguousarray(track), at, values[0], values[1], *out, n))
