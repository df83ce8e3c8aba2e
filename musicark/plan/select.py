"""Ranking every catalogue track and selecting the prefix that fits a storage budget.

Statuses, in the order they are decided:

``skipped_unknown_size``       no duration and no held file: counted, never planned
``skipped_rights``             ``--rights public`` and the track may not be redistributed
``skipped_isrc_has_download``  another track with the same ISRC is the one planned
``skipped_low_priority``       no expected listens and a secondary score under the threshold
``selected``                   in the ranked prefix that fits the budget
``skipped_over_budget``        ranked, but after the budget ran out

The plan lists every track: candidates first in rank order (with cumulative bytes and
listens), then the skipped ones grouped by status, each group by track id.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from musicark.catalog.rights import REDISTRIBUTABLE
from musicark.config import Config
from musicark.errors import CatalogError, UsageError
from musicark.plan.curve import coverage_curve, knee, marginal_listens_per_tb
from musicark.plan.io import METADATA_KEY
from musicark.plan.load import CatalogColumns
from musicark.plan.model import (
    TIERS,
    ListensModel,
    calibrate_listens,
    expected_bytes,
    expected_listens,
    secondary_score,
    tiers,
)
from musicark.plan.rank import STRATEGIES, isrc_representatives, order_by_key, strategy_keys
from musicark.progress import Progress, ProgressCallback, report

STATUSES = (
    "selected",
    "skipped_over_budget",
    "skipped_isrc_has_download",
    "skipped_low_priority",
    "skipped_rights",
    "skipped_unknown_size",
)
SELECTED, OVER_BUDGET, ISRC_DUP, LOW_PRIORITY, RIGHTS, UNKNOWN_SIZE = range(6)
CANDIDATE = -1
SIZE_SOURCES = ("held", "estimated", "unknown")
RIGHTS_CHOICES = ("all", "public")
PLAN_FORMAT = 1
CHUNK = 1 << 18
_DROPPED = np.zeros(0, dtype=np.int8)  # a column `make_plan(consume=True)` no longer needs


@dataclass(frozen=True)
class PlanOptions:
    """Everything a plan depends on besides the catalogue; see docs/cli.md `musicark plan`."""

    budget_bytes: int | None = None
    budget_tracks: int | None = None
    strategy: str = "per-byte"
    bitrate: int = 160_000
    bitrate_zero: int = 75_000
    listens_scale: float = 1.0
    listens_base: float = 1_000_000.0
    listens_calibrate: bool = True
    one_per_isrc: bool = True
    rights: str = "all"
    min_zero_score: float = 0.0

    def __post_init__(self) -> None:
        if self.budget_bytes is None and self.budget_tracks is None:
            raise UsageError("give a budget: --budget SIZE and/or --budget-tracks N")
        if self.budget_bytes is not None and self.budget_bytes <= 0:
            raise UsageError("the budget must be larger than zero")
        if self.budget_tracks is not None and self.budget_tracks <= 0:
            raise UsageError("--budget-tracks must be at least 1")
        if self.strategy not in STRATEGIES:
            raise UsageError(
                f"unknown strategy {self.strategy!r} (one of: {', '.join(STRATEGIES)})"
            )
        if self.rights not in RIGHTS_CHOICES:
            raise UsageError(f"--rights must be one of: {', '.join(RIGHTS_CHOICES)}")
        if self.bitrate <= 0 or self.bitrate_zero <= 0:
            raise UsageError("bit rates must be larger than zero")

    @classmethod
    def from_config(cls, config: Config, **overrides: Any) -> PlanOptions:
        """Defaults from the archive's [plan] settings; `overrides` that are not None win."""
        s = config.plan
        values: dict[str, Any] = {
            "strategy": s.strategy,
            "bitrate": s.bitrate,  # parsed when the settings were loaded
            "bitrate_zero": s.bitrate_zero_popularity,
            "listens_scale": s.listens_scale,
            "listens_base": s.listens_base,
            "listens_calibrate": s.listens_calibrate,
            "one_per_isrc": s.one_per_isrc,
            "min_zero_score": s.min_zero_score,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass
class Plan:
    """A ranked plan: rows are produced on demand (`batches`, `table`) from per-track arrays.

    `perm` lists track indices in plan order; the per-track arrays are in catalogue order.
    """

    summary: dict[str, Any]
    curve: dict[str, list[float]]
    perm: np.ndarray
    candidates: int  # the first `candidates` entries of `perm` are ranked
    cum_bytes: np.ndarray
    cum_listens: np.ndarray
    arrays: dict[str, np.ndarray] = field(repr=False)

    def metadata(self) -> dict[str, Any]:
        return {"format": PLAN_FORMAT, "summary": self.summary, "curve": self.curve}

    def schema(self) -> pa.Schema:
        meta = orjson.dumps(self.metadata(), option=orjson.OPT_SORT_KEYS)
        return plan_schema().with_metadata({METADATA_KEY: meta})

    def batches(self, rows: int = 1 << 20) -> Iterator[pa.RecordBatch]:
        """The plan's rows in rank order, `rows` at a time."""
        a, n, m = self.arrays, len(self.perm), self.candidates
        schema = self.schema()
        for start in range(0, max(n, 1), rows):
            stop = min(n, start + rows)
            idx = self.perm[start:stop]
            nbytes = a["nbytes"][idx]
            ranked = max(0, min(stop, m) - start)
            cum_b = np.zeros(stop - start, dtype=np.int64)
            cum_b[:ranked] = self.cum_bytes[start : start + ranked]
            cum_l = np.zeros(stop - start, dtype=np.float64)
            cum_l[:ranked] = self.cum_listens[start : start + ranked]
            unranked = np.zeros(stop - start, dtype=bool)
            unranked[ranked:] = True
            source = (nbytes < 0).astype(np.int8) + np.int8(1)  # estimated 1, unknown 2
            source[a["held"][idx]] = 0
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array(np.arange(start + 1, stop + 1, dtype=np.int64)),
                    pa.array(a["track_id"][idx]),
                    _dict(a["status"][idx], STATUSES),
                    _dict(a["tier"][idx], TIERS),
                    _dict(source, SIZE_SOURCES),
                    pa.array(nbytes, mask=nbytes < 0),
                    pa.array(a["listens"][idx]),
                    pa.array(a["covered"][idx]),
                    pa.array(cum_b, mask=unranked),
                    pa.array(cum_l, mask=unranked),
                    pa.array(a["public"][idx]),
                ],
                schema=schema,
            )

    @property
    def table(self) -> pa.Table:
        """All rows at once (small plans, tests); large plans are written by batches."""
        return pa.Table.from_batches(list(self.batches()), schema=self.schema())


def plan_schema() -> pa.Schema:
    status = pa.dictionary(pa.int8(), pa.string())
    return pa.schema(
        [
            ("rank", pa.int64()),
            ("track_id", pa.int64()),
            ("status", status),
            ("tier", status),
            ("size_source", status),
            ("expected_bytes", pa.int64()),
            ("expected_listens", pa.float64()),
            ("covered_listens", pa.float64()),
            ("cumulative_bytes", pa.int64()),
            ("cumulative_listens", pa.float64()),
            ("redistributable", pa.bool_()),
        ]
    )


def _dict(codes: np.ndarray, vocab: tuple[str, ...]) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(
        pa.array(codes.astype(np.int8, copy=False)), pa.array(vocab)
    )


def exact_sum(x: np.ndarray) -> float:
    """A sum that does not depend on the order of `x` (fixed point, 1/1024 steps)."""
    total = 0
    for start in range(0, len(x), CHUNK):  # integer sums are exact in any grouping
        total += int(np.rint(x[start : start + CHUNK] * 1024.0).astype(np.int64).sum())
    return float(total) / 1024.0


def _share(mask: np.ndarray, nbytes: np.ndarray, covered: np.ndarray) -> dict[str, float | int]:
    tracks, nb, fixed = 0, 0, 0
    for start in range(0, len(mask), CHUNK):
        m = mask[start : start + CHUNK]
        tracks += int(np.count_nonzero(m))
        nb += int(np.maximum(nbytes[start : start + CHUNK][m], 0).sum())
        part = covered[start : start + CHUNK][m]
        fixed += int(np.rint(part * 1024.0).astype(np.int64).sum())
    return {"tracks": tracks, "bytes": nb, "listens": float(fixed) / 1024.0}


def _masked_sum(values: np.ndarray, *masks: np.ndarray, invert_last: bool = False) -> int:
    """Sum of `values` where every mask holds (the last one negated with `invert_last`)."""
    total = 0
    for start in range(0, len(values), CHUNK):
        sl = slice(start, start + CHUNK)
        m = masks[0][sl].copy()
        for extra in masks[1:-1]:
            m &= extra[sl]
        if len(masks) > 1:
            last = masks[-1][sl]
            m &= ~last if invert_last else last
        total += int(values[sl][m].sum())
    return total


def _chunked(n: int) -> range:
    return range(0, n, CHUNK)


def make_plan(
    cols: CatalogColumns,
    options: PlanOptions,
    *,
    progress: ProgressCallback | None = None,
    consume: bool = False,
) -> Plan:
    """Rank every track of `cols` and select the prefix that fits `options`' budget.

    With `consume`, the columns of `cols` that the plan does not keep are dropped from it
    as soon as they are used (less memory; `cols` is unusable afterwards).
    """
    n = len(cols)
    if n == 0:
        raise CatalogError("the catalogue has no tracks; import one with `musicark catalog import`")
    stage = "plan: rank"
    report(progress, Progress(stage, 0, 4, "steps"))
    model: ListensModel = calibrate_listens(
        cols.popularity,
        cols.play_count,
        scale=options.listens_scale,
        base=options.listens_base,
        calibrate=options.listens_calibrate,
    )
    listens = np.empty(n, dtype=np.float64)
    tier = np.empty(n, dtype=np.int8)
    nbytes = np.empty(n, dtype=np.int64)
    described = np.empty(n, dtype=np.int8)  # how many of five fields are known
    secondary = np.empty(n, dtype=np.float32)  # kept below for no-listen candidates only
    for start in _chunked(n):  # bounded temporaries
        sl = slice(start, start + CHUNK)
        described[sl] = (
            (cols.duration_ms[sl] > 0).astype(np.int8)
            + (cols.popularity[sl] >= 0)
            + (cols.play_count[sl] >= 0)
            + (cols.album_popularity[sl] >= 0)
            + (cols.artist_popularity[sl] >= 0)
        )
        secondary[sl] = secondary_score(
            cols.artist_popularity[sl], cols.album_popularity[sl], cols.artist_followers[sl]
        )
        listens[sl] = expected_listens(cols.popularity[sl], cols.play_count[sl], model)
        tier[sl] = tiers(cols.popularity[sl], listens[sl])
        nbytes[sl] = expected_bytes(
            cols.duration_ms[sl],
            cols.held_size[sl],
            tier[sl],
            bitrate=options.bitrate,
            bitrate_zero=options.bitrate_zero,
        )
    held = cols.held_size >= 0
    if consume:
        cols.held_size = cols.duration_ms = cols.play_count = _DROPPED
        cols.artist_popularity = cols.album_popularity = cols.artist_followers = _DROPPED
    status = np.full(n, CANDIDATE, dtype=np.int8)
    status[nbytes < 0] = UNKNOWN_SIZE
    if options.rights == "public":
        status[(status == CANDIDATE) & ~cols.redistributable] = RIGHTS
    covered = listens.copy()
    dup_groups = 0
    if options.one_per_isrc:
        members, group, is_rep = isrc_representatives(
            cols.isrc_key,
            status == CANDIDATE,
            held=held,
            listens=listens,
            popularity=cols.popularity,
            described=described,
            track_id=cols.track_id,
        )
        if members.size:
            dup_groups = int(group[-1]) + 1
            sums = np.add.reduceat(listens[members], np.flatnonzero(np.r_[True, np.diff(group)]))
            covered[members] = 0.0
            reps = members[is_rep]
            covered[reps] = sums[group[is_rep]]
            others = members[~is_rep]
            status[others[status[others] == CANDIDATE]] = ISRC_DUP
        del members, group, is_rep
    del described
    if consume:
        cols.isrc_key = _DROPPED
    report(progress, Progress(stage, 1, 4, "steps"))

    nolisten = (covered <= 0) & (status == CANDIDATE)
    secondary[~nolisten] = 0.0
    if options.min_zero_score > 0:
        status[nolisten & (secondary < options.min_zero_score)] = LOW_PRIORITY
    del nolisten

    index = np.int32 if n < 2**31 else np.int64
    cand = np.flatnonzero(status == CANDIDATE).astype(index)
    key = np.empty(len(cand), dtype=np.int64)
    for start in range(0, len(cand), CHUNK):  # bounded temporaries
        part = cand[start : start + CHUNK]
        key[start : start + CHUNK] = strategy_keys(
            options.strategy,
            covered=covered[part],
            nbytes=nbytes[part],
            popularity=cols.popularity[part],
            secondary=secondary[part],
            track_id=cols.track_id[part],
        )
    del secondary
    if consume:
        cols.popularity = _DROPPED
    order = order_by_key(key, cols.track_id, cand)
    del key
    cand = cand[order]
    del order
    report(progress, Progress(stage, 2, 4, "steps"))

    cum_bytes = nbytes[cand]
    np.cumsum(cum_bytes, out=cum_bytes)
    cum_listens = covered[cand]
    np.cumsum(cum_listens, out=cum_listens)
    k = len(cand)
    if options.budget_bytes is not None:
        k = int(np.searchsorted(cum_bytes, options.budget_bytes, side="right"))
    if options.budget_tracks is not None:
        k = min(k, options.budget_tracks)
    status[cand[:k]] = SELECTED
    status[cand[k:]] = OVER_BUDGET

    rest = np.flatnonzero(status > OVER_BUDGET).astype(index)
    if rest.size:
        rest = rest[np.argsort(cols.track_id[rest])]
        rest = rest[np.argsort(status[rest], kind="stable")]
    perm = np.concatenate([cand, rest])
    del rest
    report(progress, Progress(stage, 3, 4, "steps"))

    m = len(cand)
    del cand
    public = cols.redistributable
    total_listens = exact_sum(listens)
    sel = status == SELECTED
    sel_bytes = int(cum_bytes[k - 1]) if k else 0
    sel_listens = float(cum_listens[k - 1]) if k else 0.0
    counts = np.bincount(status, minlength=len(STATUSES))
    curve = coverage_curve(
        cum_bytes,
        cum_listens,
        total_tracks=n,
        total_listens=total_listens,
        budget_bytes=options.budget_bytes,
    )
    summary: dict[str, Any] = {
        "options": asdict(options),
        "model": model.describe(),
        "catalogue": {
            "tracks": n,
            "expected_listens": total_listens,
            "redistributable": _share(public, nbytes, listens),
            "held": int(np.count_nonzero(held)),
            "unknown_size": int(counts[UNKNOWN_SIZE]),
            "isrc_groups": dup_groups,
            "candidates": m,
            "candidate_bytes": int(cum_bytes[-1]) if m else 0,
        },
        "statuses": {name: int(c) for name, c in zip(STATUSES, counts, strict=True)},
        "selected": {
            "tracks": k,
            "bytes": sel_bytes,
            "expected_listens": sel_listens,
            "pct_tracks": round(100.0 * k / n, 4),
            "pct_listens": round(100.0 * sel_listens / total_listens, 4) if total_listens else 0.0,
            "bytes_held": _masked_sum(nbytes, sel, held),
            "bytes_to_acquire": _masked_sum(nbytes, sel, held, invert_last=True),
            "tiers": {
                name: _share(sel & (tier == code), nbytes, covered)
                for code, name in enumerate(TIERS)
            },
            "redistributable": _share(sel & public, nbytes, covered),
            "dark": _share(sel & ~public, nbytes, covered),
        },
        "marginal_listens_per_tb": round(
            marginal_listens_per_tb(
                cum_bytes, cum_listens, selected=k, budget_bytes=options.budget_bytes
            ),
            3,
        ),
        "knee": knee(cum_bytes, cum_listens, total_tracks=n, total_listens=total_listens),
        "rights_values_redistributable": list(REDISTRIBUTABLE),
    }
    report(progress, Progress(stage, 4, 4, "steps"))
    arrays = {
        "track_id": cols.track_id,
        "status": status,
        "tier": tier,
        "held": held,
        "nbytes": nbytes,
        "listens": listens,
        "covered": covered,
        "public": public,
    }
    return Plan(
        summary=summary,
        curve=curve,
        perm=perm,
        candidates=m,
        cum_bytes=cum_bytes,
        cum_listens=cum_listens,
        arrays=arrays,
    )
