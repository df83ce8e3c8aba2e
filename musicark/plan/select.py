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

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from musicark.catalog.rights import REDISTRIBUTABLE
from musicark.config import Config
from musicark.errors import CatalogError, UsageError
from musicark.plan.curve import Cumulative, Running, coverage_curve, knee, marginal_listens_per_tb
from musicark.plan.load import CatalogColumns
from musicark.plan.model import (
    TIERS,
    ListensModel,
    Sizes,
    calibrate_listens,
    expected_listens,
    secondary_score,
    tiers,
)
from musicark.plan.rank import STRATEGIES, Covered, isrc_representatives, ranked, strategy_keys
from musicark.plan.sparse import Overrides
from musicark.plan.table import (
    CANDIDATE,
    ISRC_DUP,
    LOW_PRIORITY,
    OVER_BUDGET,
    RIGHTS,
    SELECTED,
    STATUSES,
    UNKNOWN_SIZE,
    Plan,
)
from musicark.progress import Progress, ProgressCallback, report

RIGHTS_CHOICES = ("all", "public")
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


class _Share:
    """Tracks, bytes and listens (fixed point, 1/1024 steps: exact in any grouping)."""

    def __init__(self) -> None:
        self.tracks, self.bytes, self.fixed = 0, 0, 0

    def add(self, mask: np.ndarray, nbytes: np.ndarray, fixed: np.ndarray) -> None:
        self.tracks += int(np.count_nonzero(mask))
        self.bytes += int(nbytes[mask].sum())
        self.fixed += int(fixed[mask].sum())

    def out(self) -> dict[str, float | int]:
        return {"tracks": self.tracks, "bytes": self.bytes, "listens": float(self.fixed) / 1024.0}


def _tally(w: _Work, public: np.ndarray) -> tuple[float, dict[str, _Share]]:
    """Total listens and every share the summary reports, in one pass a chunk at a time
    (sizes and covered listens computed once per chunk)."""
    names = ["catalogue_public", "public", "dark", "held", "to_acquire"]
    shares = {name: _Share() for name in [*names, *TIERS]}
    total = 0
    for start in _chunked(w.n):
        sl = slice(start, start + CHUNK)
        nb = np.maximum(w.nbytes[sl], 0)
        own = np.rint(w.listens[sl] * 1024.0).astype(np.int64)
        total += int(own.sum())
        pub = public[sl]
        shares["catalogue_public"].add(pub, nb, own)
        sel = w.status[sl] == SELECTED
        if not sel.any():
            continue
        cov = np.rint(w.covered[sl] * 1024.0).astype(np.int64)
        held = w.held.mask(sl)
        shares["public"].add(sel & pub, nb, cov)
        shares["dark"].add(sel & ~pub, nb, cov)
        shares["held"].add(sel & held, nb, cov)
        shares["to_acquire"].add(sel & ~held, nb, cov)
        tier = w.tier[sl]
        for code, name in enumerate(TIERS):
            shares[name].add(sel & (tier == code), nb, cov)
    return float(total) / 1024.0, shares


def _chunked(n: int) -> range:
    return range(0, n, CHUNK)


@dataclass
class _Work:
    """Per-track arrays (catalogue order) that the phases of `make_plan` fill in turn."""

    n: int
    model: ListensModel
    listens: np.ndarray  # float64
    tier: np.ndarray  # int8
    nbytes: Sizes  # int64 when read, -1 unknown
    held: Overrides  # the held tracks' sizes
    status: np.ndarray  # int8, CANDIDATE until decided
    covered: Covered  # listens of the whole ISRC group on its representative
    secondary: np.ndarray  # float32, for no-listen candidates only
    described: np.ndarray  # int16: how many of five fields are known
    dup_groups: int = 0


def _describe(cols: CatalogColumns, *, consume: bool) -> tuple[np.ndarray, np.ndarray]:
    """How described each track is (0-5 known fields) and its secondary score (float32).

    With `consume` they are written over the artist popularity and followers columns
    (same widths, a chunk at a time once read) and the album popularity is dropped, so
    the step allocates nothing per track.
    """
    n = len(cols)
    reuse = (
        consume
        and cols.artist_popularity.dtype == np.int16
        and cols.artist_followers.dtype == np.int32
    )
    described = cols.artist_popularity if reuse else np.empty(n, dtype=np.int16)
    secondary = cols.artist_followers.view(np.float32) if reuse else np.empty(n, np.float32)
    for start in _chunked(n):
        sl = slice(start, start + CHUNK)
        score = secondary_score(
            cols.artist_popularity[sl], cols.album_popularity[sl], cols.artist_followers[sl]
        )
        described[sl] = (
            (cols.duration_ms[sl] > 0).astype(np.int16)
            + (cols.popularity[sl] >= 0)
            + (cols.play_count[sl] >= 0)
            + (cols.album_popularity[sl] >= 0)
            + (cols.artist_popularity[sl] >= 0)
        )
        secondary[sl] = score
    if consume:
        cols.artist_popularity = cols.album_popularity = cols.artist_followers = _DROPPED
    return described, secondary


def _measure(cols: CatalogColumns, options: PlanOptions, *, consume: bool) -> _Work:
    """Expected listens, tier and bytes of every track; statuses known from them alone."""
    n = len(cols)
    model: ListensModel = calibrate_listens(
        cols.popularity,
        cols.play_count,
        scale=options.listens_scale,
        base=options.listens_base,
        calibrate=options.listens_calibrate,
    )
    described, secondary = _describe(cols, consume=consume)
    # With `consume`, listens take the place of play counts (same width), chunk by chunk
    # once each chunk has been read; sizes are computed when read (`Sizes`).
    reuse = consume and cols.play_count.dtype == np.int64
    listens = cols.play_count.view(np.float64) if reuse else np.empty(n, dtype=np.float64)
    tier = np.empty(n, dtype=np.int8)
    for start in _chunked(n):  # bounded temporaries
        sl = slice(start, start + CHUNK)
        chunk_listens = expected_listens(cols.popularity[sl], cols.play_count[sl], model)
        listens[sl] = chunk_listens
        tier[sl] = tiers(cols.popularity[sl], chunk_listens)
    held = cols.held()
    nbytes = Sizes(
        cols.duration_ms, tier, held, bitrate=options.bitrate, bitrate_zero=options.bitrate_zero
    )
    if consume:
        cols.held_size = cols.duration_ms = cols.play_count = _DROPPED
    status = np.full(n, CANDIDATE, dtype=np.int8)
    for start in _chunked(n):
        sl = slice(start, start + CHUNK)
        status[sl][nbytes[sl] < 0] = UNKNOWN_SIZE
    if options.rights == "public":
        status[(status == CANDIDATE) & ~cols.redistributable] = RIGHTS
    return _Work(
        n=n,
        model=model,
        listens=listens,
        tier=tier,
        nbytes=nbytes,
        held=held,
        status=status,
        covered=Covered(listens),
        secondary=secondary,
        described=described,
    )


ISRC_PART = 1 << 18  # tracks with an ISRC grouped at a time (bounds the sort's temporaries)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _isrc_parts(isrc_key: np.ndarray) -> tuple[np.ndarray | None, int]:
    """A part number per track (255: no ISRC) such that equal ISRCs share a part, and the
    number of parts; (None, 1) when one part holds them all."""
    count = 0
    for start in _chunked(len(isrc_key)):
        count += int(np.count_nonzero(isrc_key[start : start + CHUNK]))
    parts = min(64, -(-count // ISRC_PART))
    if parts <= 1:
        return None, 1
    out = np.empty(len(isrc_key), dtype=np.uint8)
    for start in _chunked(len(isrc_key)):
        k = isrc_key[start : start + CHUNK]
        h = ((k.view(np.uint64) * _GOLDEN) >> np.uint64(40)) % np.uint64(parts)
        out[start : start + CHUNK] = np.where(k != 0, h, 255)
    return out, parts


def _in_part(part_of: np.ndarray, p: int) -> np.ndarray:
    """Positions of part `p`'s tracks (found a chunk at a time: no catalogue-wide mask)."""
    pieces = [
        np.flatnonzero(part_of[start : start + CHUNK] == p) + start
        for start in _chunked(len(part_of))
    ]
    return np.concatenate(pieces) if pieces else np.zeros(0, np.int64)


def _one_per_isrc(w: _Work, cols: CatalogColumns) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Keep one candidate per ISRC; it covers the listens of its whole group. Returns the
    groups' members and what each covers, for `Covered.set_groups` once the ISRC keys
    are dropped.

    Large catalogues are grouped a part at a time (an ISRC's tracks are all in one part),
    so the sort's temporaries stay a fraction of the catalogue.
    """
    part_of, parts = _isrc_parts(cols.isrc_key)
    at_all: list[np.ndarray] = []
    values: list[np.ndarray] = []
    for p in range(parts):
        at = None if part_of is None else _in_part(part_of, p)

        def take(a: np.ndarray, at: np.ndarray | None = at) -> np.ndarray:
            return a if at is None else a[at]

        members, group, is_rep = isrc_representatives(
            take(cols.isrc_key),
            take(w.status) == CANDIDATE,
            held=w.held.mask(slice(0, w.n) if at is None else at),
            listens=take(w.listens),
            popularity=take(cols.popularity),
            described=take(w.described),
            track_id=take(cols.track_id),
        )
        if not members.size:
            continue
        if at is not None:
            members = at[members]
        w.dup_groups += int(group[-1]) + 1
        sums = np.add.reduceat(w.listens[members], np.flatnonzero(np.r_[True, np.diff(group)]))
        covered = np.zeros(len(members), dtype=np.float64)
        covered[is_rep] = sums[group[is_rep]]
        at_all.append(members.astype(np.int32) if w.n < 2**31 else members)
        values.append(covered)
        others = members[~is_rep]
        w.status[others[w.status[others] == CANDIDATE]] = ISRC_DUP
    return at_all, values


def _low_priority(w: _Work, options: PlanOptions) -> None:
    """The secondary score counts only for candidates without expected listens."""
    for start in _chunked(w.n):  # bounded temporaries
        sl = slice(start, start + CHUNK)
        nolisten = (w.covered[sl] <= 0) & (w.status[sl] == CANDIDATE)
        w.secondary[sl][~nolisten] = 0.0
        if options.min_zero_score > 0:
            low = nolisten & (w.secondary[sl] < options.min_zero_score)
            w.status[sl][low] = LOW_PRIORITY


def _rank(w: _Work, cols: CatalogColumns, options: PlanOptions, *, consume: bool) -> np.ndarray:
    """The candidates' indices in rank order (best first).

    Once the keys are made, the secondary score (and with `consume` the popularity) are
    dropped: the sort's own arrays are the plan's peak.
    """
    index = np.int32 if w.n < 2**31 else np.int64
    cand = np.flatnonzero(w.status == CANDIDATE).astype(index)
    key = np.empty(len(cand), dtype=np.int64)
    for start in range(0, len(cand), CHUNK):  # bounded temporaries
        part = cand[start : start + CHUNK]
        key[start : start + CHUNK] = strategy_keys(
            options.strategy,
            covered=w.covered[part],
            nbytes=w.nbytes[part],
            popularity=cols.popularity[part],
            secondary=w.secondary[part],
            track_id=cols.track_id[part],
        )
    w.secondary = _DROPPED
    if consume:
        cols.popularity = _DROPPED
    return ranked(key, cols.track_id, cand)


def _select(
    w: _Work, cand: np.ndarray, track_id: np.ndarray, options: PlanOptions
) -> tuple[Cumulative, int, np.ndarray]:
    """Cumulative bytes and listens down the ranking (computed a chunk at a time when
    read), how many fit the budget, and the skipped tracks in plan order (by status, then
    track id)."""
    nbytes, covered = w.nbytes, w.covered
    cum = Running(cand, lambda idx: nbytes[idx], lambda idx: covered[idx])
    k = len(cand)
    if options.budget_bytes is not None:
        k = int(cum.count_upto(np.array([options.budget_bytes]))[0])
    if options.budget_tracks is not None:
        k = min(k, options.budget_tracks)
    w.status[cand[:k]] = SELECTED
    w.status[cand[k:]] = OVER_BUDGET
    rest = np.flatnonzero(w.status > OVER_BUDGET).astype(cand.dtype)
    if rest.size:
        rest = rest[np.argsort(track_id[rest])]
        rest = rest[np.argsort(w.status[rest], kind="stable")]
    return cum, k, rest


def _summary(
    w: _Work,
    public: np.ndarray,
    options: PlanOptions,
    *,
    cum: Cumulative,
    k: int,
) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """The plan's summary and coverage curve."""
    n, m = w.n, len(cum)
    total_listens, shares = _tally(w, public)
    sel_bytes, sel_listens = 0, 0.0
    if k:
        at_b, at_l = cum.at(np.array([k - 1]))
        sel_bytes, sel_listens = int(at_b[0]), float(at_l[0])
    counts = np.bincount(w.status, minlength=len(STATUSES))
    curve = coverage_curve(
        cum,
        total_tracks=n,
        total_listens=total_listens,
        budget_bytes=options.budget_bytes,
    )
    summary: dict[str, Any] = {
        "options": asdict(options),
        "model": w.model.describe(),
        "catalogue": {
            "tracks": n,
            "expected_listens": total_listens,
            "redistributable": shares["catalogue_public"].out(),
            "held": len(w.held),
            "unknown_size": int(counts[UNKNOWN_SIZE]),
            "isrc_groups": w.dup_groups,
            "candidates": m,
            "candidate_bytes": cum.total_bytes,
        },
        "statuses": {name: int(c) for name, c in zip(STATUSES, counts, strict=True)},
        "selected": {
            "tracks": k,
            "bytes": sel_bytes,
            "expected_listens": sel_listens,
            "pct_tracks": round(100.0 * k / n, 4),
            "pct_listens": round(100.0 * sel_listens / total_listens, 4) if total_listens else 0.0,
            "bytes_held": shares["held"].bytes,
            "bytes_to_acquire": shares["to_acquire"].bytes,
            "tiers": {name: shares[name].out() for name in TIERS},
            "redistributable": shares["public"].out(),
            "dark": shares["dark"].out(),
        },
        "marginal_listens_per_tb": round(
            marginal_listens_per_tb(cum, selected=k, budget_bytes=options.budget_bytes),
            3,
        ),
        "knee": knee(cum, total_tracks=n, total_listens=total_listens),
        "rights_values_redistributable": list(REDISTRIBUTABLE),
    }
    return summary, curve


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
    if len(cols) == 0:
        raise CatalogError("the catalogue has no tracks; import one with `musicark catalog import`")
    stage = "plan: rank"
    report(progress, Progress(stage, 0, 4, "steps"))
    w = _measure(cols, options, consume=consume)
    groups: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
    if options.one_per_isrc:
        groups = _one_per_isrc(w, cols)
    w.described = _DROPPED
    if consume:
        cols.isrc_key = _DROPPED
    w.covered.set_groups(*groups)
    report(progress, Progress(stage, 1, 4, "steps"))
    _low_priority(w, options)
    cand = _rank(w, cols, options, consume=consume)
    report(progress, Progress(stage, 2, 4, "steps"))
    cum, k, rest = _select(w, cand, cols.track_id, options)
    report(progress, Progress(stage, 3, 4, "steps"))
    summary, curve = _summary(w, cols.redistributable, options, cum=cum, k=k)
    report(progress, Progress(stage, 4, 4, "steps"))
    arrays = {
        "track_id": cols.track_id,
        "status": w.status,
        "tier": w.tier,
        "held": w.held,
        "nbytes": w.nbytes,
        "listens": w.listens,
        "covered": w.covered,
        "public": cols.redistributable,
    }
    return Plan(summary=summary, curve=curve, ranked=cand, rest=rest, cum=cum, arrays=arrays)
