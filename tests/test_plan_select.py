"""Plan selection properties on generated catalogue columns (no database involved)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicark.errors import CatalogError, UsageError
from musicark.plan.isrc import isrc_keys
from musicark.plan.load import CatalogColumns
from musicark.plan.select import PlanOptions, make_plan


def columns(n: int, seed: int, *, isrc_pool: int | None = None) -> CatalogColumns:
    rng = np.random.default_rng(seed)
    pop = rng.integers(-1, 101, n)
    pop[rng.random(n) < 0.4] = 0
    plays = np.where(rng.random(n) < 0.5, rng.integers(0, 10**6, n), -1)
    pool = isrc_pool or max(1, n // 2)
    isrc = rng.integers(0, pool, n) + 1
    isrc[rng.random(n) < 0.2] = 0
    duration = rng.integers(30_000, 600_000, n)
    duration[rng.random(n) < 0.05] = -1
    held = np.where(rng.random(n) < 0.1, rng.integers(0, 10**7, n), -1)
    return CatalogColumns(
        track_id=rng.permutation(10 * n)[:n].astype(np.int64) * 7919 + 1,
        duration_ms=duration,
        popularity=pop,
        play_count=plays,
        isrc_key=isrc.astype(np.int64),
        redistributable=rng.random(n) < 0.5,
        artist_popularity=rng.integers(-1, 101, n),
        artist_followers=rng.integers(-1, 10**7, n),
        album_popularity=rng.integers(-1, 101, n),
        held_size=held,
    )


def _take(cols: CatalogColumns, idx: np.ndarray) -> CatalogColumns:
    return CatalogColumns(**{k: v[idx] for k, v in vars(cols).items()})


def _status(plan_table: pa.Table) -> np.ndarray:
    return np.asarray(plan_table.column("status").cast(pa.string()).to_pylist(), dtype=object)


def _selected(plan_table: pa.Table) -> pa.Table:
    return plan_table.filter(
        pa.compute.equal(plan_table.column("status").cast(pa.string()), "selected")
    )


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(
    n=st.integers(1, 300),
    seed=st.integers(0, 2**32 - 1),
    budget=st.integers(1, 10**10),
    strategy=st.sampled_from(["per-byte", "popularity"]),
    tracks=st.one_of(st.none(), st.integers(1, 400)),
)
def test_selection_is_a_prefix_that_fits(
    n: int, seed: int, budget: int, strategy: str, tracks: int | None
) -> None:
    cols = columns(n, seed)
    plan = make_plan(
        cols, PlanOptions(budget_bytes=budget, budget_tracks=tracks, strategy=strategy)
    )
    t = plan.table
    assert t.num_rows == n
    assert sorted(t.column("track_id").to_pylist()) == sorted(cols.track_id.tolist())
    status = _status(t)
    sel = status == "selected"
    k = int(sel.sum())
    assert sel[:k].all(), "the selection is the head of the ranking"
    nbytes = np.asarray(t.column("expected_bytes").fill_null(-1).to_numpy())
    assert nbytes[sel].sum() <= budget
    assert tracks is None or k <= tracks
    assert plan.summary["selected"]["bytes"] == nbytes[sel].sum()
    over = np.flatnonzero(status == "skipped_over_budget")
    if over.size and (tracks is None or k < tracks):
        assert over[0] == k and nbytes[sel].sum() + nbytes[k] > budget
    cum = np.asarray(t.column("cumulative_bytes").fill_null(-1).to_numpy())
    ranked = (status == "selected") | (status == "skipped_over_budget")
    assert np.array_equal(cum[ranked], np.cumsum(nbytes[ranked]))
    assert not ranked[int(ranked.sum()) :].any(), "ranked candidates come first"
    assert (status[nbytes < 0] == "skipped_unknown_size").all()
    assert plan.summary["catalogue"]["unknown_size"] == int((nbytes < 0).sum())


@SETTINGS
@given(n=st.integers(1, 300), seed=st.integers(0, 2**32 - 1), budget=st.integers(1, 10**10))
def test_per_byte_covers_at_least_popularity(n: int, seed: int, budget: int) -> None:
    """At the budget per-byte fills, no popularity ranking covers more listens."""
    cols = columns(n, seed)
    per_byte = make_plan(cols, PlanOptions(budget_bytes=budget, strategy="per-byte"))
    spent = per_byte.summary["selected"]["bytes"]
    if spent == 0:
        return
    popular = make_plan(cols, PlanOptions(budget_bytes=spent, strategy="popularity"))
    a = per_byte.summary["selected"]["expected_listens"]
    b = popular.summary["selected"]["expected_listens"]
    assert a >= b * (1 - 1e-6) - 1e-9


def test_per_byte_beats_popularity_when_sizes_differ() -> None:
    n = 2000
    cols = columns(n, 3)
    cols.held_size[:] = -1
    cols.duration_ms[:] = np.random.default_rng(1).integers(30_000, 900_000, n)
    budget = int(0.3 * make_plan(cols, PlanOptions(budget_tracks=n)).summary["selected"]["bytes"])
    per_byte = make_plan(cols, PlanOptions(budget_bytes=budget, strategy="per-byte"))
    popular = make_plan(cols, PlanOptions(budget_bytes=budget, strategy="popularity"))
    assert per_byte.summary["selected"]["pct_listens"] > popular.summary["selected"]["pct_listens"]


@SETTINGS
@given(n=st.integers(2, 300), seed=st.integers(0, 2**32 - 1), pool=st.integers(1, 50))
def test_one_track_per_isrc(n: int, seed: int, pool: int) -> None:
    cols = columns(n, seed, isrc_pool=pool)
    plan = make_plan(cols, PlanOptions(budget_bytes=10**12, rights="public"))
    t = plan.table
    status = _status(t)
    key_of = dict(zip(cols.track_id.tolist(), cols.isrc_key.tolist(), strict=True))
    keys = np.array([key_of[i] for i in t.column("track_id").to_pylist()])
    planned = (status == "selected") | (status == "skipped_over_budget")
    with_isrc = keys != 0
    assert len(set(keys[planned & with_isrc])) == int((planned & with_isrc).sum())
    for key in set(keys[(status == "skipped_isrc_has_download")]):
        assert ((keys == key) & planned).sum() == 1
    # the listens of every copy count once, through the planned copy
    covered = np.asarray(t.column("covered_listens").to_numpy())
    own = np.asarray(t.column("expected_listens").to_numpy())
    for key in set(keys[planned & with_isrc]):
        group = keys == key
        assert covered[group & planned].sum() == pytest.approx(own[group].sum())
    pub = dict(zip(cols.track_id.tolist(), cols.redistributable.tolist(), strict=True))
    for tid in t.filter(pa.array(planned)).column("track_id").to_pylist():
        assert pub[tid]


def test_every_isrc_copy_when_asked() -> None:
    cols = columns(200, 5, isrc_pool=10)
    plan = make_plan(cols, PlanOptions(budget_bytes=10**12, one_per_isrc=False))
    assert plan.summary["statuses"]["skipped_isrc_has_download"] == 0


@SETTINGS
@given(n=st.integers(1, 200), seed=st.integers(0, 2**32 - 1), budget=st.integers(1, 10**9))
def test_row_order_does_not_change_the_plan(n: int, seed: int, budget: int) -> None:
    cols = columns(n, seed, isrc_pool=max(1, n // 3))
    cols.duration_ms[:] = 200_000  # many exact ties: broken by track id
    shuffled = _take(cols, np.random.default_rng(seed).permutation(n))
    for strategy in ("per-byte", "popularity"):
        a = make_plan(cols, PlanOptions(budget_bytes=budget, strategy=strategy))
        b = make_plan(shuffled, PlanOptions(budget_bytes=budget, strategy=strategy))
        assert a.table.equals(b.table)
        assert a.summary == b.summary


def test_ties_break_by_track_id() -> None:
    n = 50
    cols = columns(n, 1)
    cols.popularity[:] = 40
    cols.play_count[:] = -1
    cols.duration_ms[:] = 180_000
    cols.held_size[:] = -1
    cols.isrc_key[:] = 0
    plan = make_plan(cols, PlanOptions(budget_tracks=n))
    assert plan.table.column("track_id").to_pylist() == sorted(cols.track_id.tolist())


def test_zero_listen_tracks_follow_secondary_score_and_threshold() -> None:
    n = 100
    cols = columns(n, 2)
    cols.popularity[:] = 0
    cols.play_count[:] = -1
    cols.isrc_key[:] = 0
    cols.duration_ms[:] = 200_000
    cols.held_size[:] = -1
    cols.artist_followers[:] = -1
    cols.album_popularity[:] = -1
    plan = make_plan(cols, PlanOptions(budget_tracks=n, min_zero_score=10.0))
    pop_of = dict(zip(cols.track_id.tolist(), cols.artist_popularity.tolist(), strict=True))
    t = plan.table
    status = _status(t)
    ranked = [
        pop_of[i]
        for i, s in zip(t.column("track_id").to_pylist(), status, strict=True)
        if s == "selected"
    ]
    assert ranked == sorted(ranked, reverse=True)
    low = [
        pop_of[i]
        for i, s in zip(t.column("track_id").to_pylist(), status, strict=True)
        if s == "skipped_low_priority"
    ]
    assert low and max(low) < 20  # score = artist popularity / 2 here
    assert min(ranked) >= 20
    assert set(t.column("tier").cast(pa.string()).to_pylist()) == {"zero"}


def test_held_files_use_their_real_size_and_tiers_their_bitrate() -> None:
    cols = columns(10, 4)
    cols.duration_ms[:] = 8_000  # 8 s
    cols.held_size[:] = -1
    cols.held_size[0] = 12345
    cols.popularity[:] = 50
    cols.popularity[1] = 0
    plan = make_plan(cols, PlanOptions(budget_tracks=10, bitrate=160_000, bitrate_zero=75_000))
    size = dict(
        zip(
            plan.table.column("track_id").to_pylist(),
            plan.table.column("expected_bytes").to_pylist(),
            strict=True,
        )
    )
    assert size[int(cols.track_id[0])] == 12345
    assert size[int(cols.track_id[1])] == 75_000  # 8 s x 75 kbit/s / 8
    assert size[int(cols.track_id[2])] == 160_000


def test_calibrated_model_matches_play_counts() -> None:
    rng = np.random.default_rng(0)
    n = 5000
    cols = columns(n, 6)
    cols.popularity[:] = rng.integers(1, 101, n)
    cols.play_count[:] = np.round(50 * 2000 ** (cols.popularity / 100)).astype(np.int64) - 50
    plan = make_plan(cols, PlanOptions(budget_tracks=10))
    model = plan.summary["model"]
    assert model["calibrated_from"] == n
    assert model["scale"] == pytest.approx(50, rel=0.05)
    assert model["base"] == pytest.approx(2000, rel=0.05)
    fixed = make_plan(cols, PlanOptions(budget_tracks=10, listens_calibrate=False))
    assert fixed.summary["model"]["calibrated_from"] == 0


def test_bad_options_and_empty_catalogue() -> None:
    with pytest.raises(UsageError):
        PlanOptions()
    with pytest.raises(UsageError):
        PlanOptions(budget_bytes=0)
    with pytest.raises(UsageError):
        PlanOptions(budget_bytes=10, strategy="random")
    with pytest.raises(CatalogError):
        make_plan(columns(0, 0), PlanOptions(budget_bytes=10))


def test_isrc_keys_are_exact_and_ignore_case() -> None:
    values = pa.array(
        [
            *("USABC2300001", "usabc2300001", " USABC2300001 ", "USABC2300002", "GBABC2300001"),
            *(None, "", "not an isrc", "NOT AN ISRC", "ÜSABC2300001"),
        ]
    )
    k = isrc_keys(values)
    assert k[0] == k[1] == k[2] != 0
    assert len({k[0], k[3], k[4]}) == 3
    assert k[5] == 0 and k[6] == 0
    assert k[7] == k[8] != 0
    assert len(set(k[[0, 3, 4, 7, 9]].tolist())) == 5


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=12, max_size=12),
        min_size=2,
        max_size=40,
    )
)
def test_isrc_keys_equal_iff_isrcs_equal(values: list[str]) -> None:
    k = isrc_keys(pa.array(values))
    for i in range(len(values)):
        for j in range(len(values)):
            assert (k[i] == k[j]) == (values[i] == values[j])


@pytest.mark.parametrize("seed", [1, 2])
def test_ranking_by_key_ranges_gives_the_order_of_one_sort(seed: int) -> None:
    from musicark.plan.rank import order_by_key, ranked

    rng = np.random.default_rng(seed)
    m = 20_000
    key = rng.integers(0, 50, m) << 40  # many equal keys: ties by track id
    some = rng.random(m) < 0.5
    key[some] |= rng.integers(0, 1 << 30, int(some.sum()))
    track_id = rng.permutation(np.arange(10**9, 10**9 + 3 * m, 3))[:m].astype(np.int64)
    index = np.sort(rng.choice(3 * m, m, replace=False)).astype(np.int32)
    tid = np.zeros(3 * m, dtype=np.int64)
    tid[index] = track_id
    expect = index[order_by_key(key.copy(), tid, index)]
    got = ranked(key.copy(), tid, index, part_size=1500)
    assert got.dtype == index.dtype
    assert np.array_equal(got, expect)


def test_grouping_isrcs_by_parts_gives_the_same_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    from musicark.plan import select

    cols = columns(20_000, 7, isrc_pool=4_000)
    options = PlanOptions(budget_bytes=10**10)
    whole = make_plan(_take(cols, np.arange(len(cols))), options, consume=True)
    monkeypatch.setattr(select, "ISRC_PART", 1_000)  # 16 parts
    assert select._isrc_parts(cols.isrc_key)[1] == 16
    parted = make_plan(cols, options, consume=True)
    assert parted.summary == whole.summary
    assert parted.summary["catalogue"]["isrc_groups"] > 1_000
    assert parted.table.equals(whole.table)


def test_knee_a_chunk_at_a_time_is_the_knee_of_the_whole_curve() -> None:
    from musicark.plan.curve import Stored, knee

    rng = np.random.default_rng(3)
    m = (1 << 21) + 12345  # three chunks
    cum_bytes = np.cumsum(rng.integers(1, 10**7, m))
    cum_listens = np.cumsum(np.sort(rng.pareto(1.5, m))[::-1])
    gain = cum_listens / cum_listens[-1] - cum_bytes / float(cum_bytes[-1])
    found = knee(
        Stored(cum_bytes, cum_listens), total_tracks=m, total_listens=float(cum_listens[-1])
    )
    assert found is not None and found["tracks"] == int(np.argmax(gain)) + 1


@pytest.mark.parametrize("step", [1, 7, 1000])
def test_running_totals_a_chunk_at_a_time_equal_one_cumsum(step: int) -> None:
    from musicark.plan.curve import Running

    rng = np.random.default_rng(step)
    m = 5_000
    nbytes = rng.integers(0, 10**7, m)
    listens = rng.pareto(1.2, m) * rng.random(m)
    order = rng.permutation(m)
    cum = Running(order, lambda i: nbytes[i], lambda i: listens[i], step=step)
    whole_b, whole_l = np.cumsum(nbytes[order]), np.cumsum(listens[order])
    got_b, got_l = cum.span(0, m)
    assert np.array_equal(got_b, whole_b) and got_l.tobytes() == whole_l.tobytes()
    b, ll = cum.span(step + 3, 3 * step + 11)
    assert np.array_equal(b, whole_b[step + 3 : 3 * step + 11])
    assert ll.tobytes() == whole_l[step + 3 : 3 * step + 11].tobytes()
    at = rng.integers(0, m, 50)
    assert np.array_equal(cum.at(at)[0], whole_b[at]) and np.array_equal(cum.at(at)[1], whole_l[at])
    xs = np.r_[-1, 0, rng.integers(0, int(whole_b[-1]) + 10, 200), whole_b[::97]]
    assert np.array_equal(cum.count_upto(xs), np.searchsorted(whole_b, xs, side="right"))


def test_plans_computed_in_small_chunks_are_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    from musicark.plan import curve

    cols = columns(5_000, 11, isrc_pool=1_000)
    options = PlanOptions(budget_bytes=5 * 10**9)
    whole = make_plan(_take(cols, np.arange(len(cols))), options)
    monkeypatch.setattr(curve, "STEP", 97)
    chunked = make_plan(cols, options, consume=True)
    assert chunked.summary == whole.summary and chunked.curve == whole.curve
    assert chunked.table.equals(whole.table)
    assert 0 < chunked.summary["selected"]["tracks"] < chunked.candidates


def test_covered_listens_stored_for_groups_only_read_as_dense() -> None:
    from musicark.plan.rank import Covered

    rng = np.random.default_rng(5)
    listens = rng.random(1_000)
    dense, before = listens.copy(), listens.copy()
    cov = Covered(listens)
    at = [rng.choice(1_000, 60, replace=False), np.array([1_000 - 1, 0])]
    at[0] = at[0][~np.isin(at[0], at[1])]
    values = [rng.random(len(at[0])), np.array([0.0, 7.5])]
    for a, v in zip(at, values, strict=True):
        dense[a] = v
    cov.set_groups(at, values)
    assert np.array_equal(cov[0:1_000], dense) and np.array_equal(cov[990:995], dense[990:995])
    idx = rng.integers(0, 1_000, 300)
    assert np.array_equal(cov[idx], dense[idx]) and np.array_equal(listens, before)


def test_sizes_computed_when_read_equal_the_dense_sizes() -> None:
    from musicark.plan.model import TIER_ZERO, Sizes
    from musicark.plan.sparse import Overrides

    rng = np.random.default_rng(8)
    n = 5_000
    duration = rng.integers(-1, 400_000, n).astype(np.int32)
    tier = rng.integers(0, 2, n).astype(np.int8)
    at = rng.choice(n, 300, replace=False)
    held = rng.integers(0, 10**10, 300)  # sizes beyond 32 bits too
    sizes = Sizes(duration, tier, Overrides(n, at, held), bitrate=160_000, bitrate_zero=75_000)
    rate = np.where(tier == TIER_ZERO, 75_000, 160_000)
    dense = np.where(duration > 0, (duration.astype(np.int64) * rate + 7999) // 8000, -1)
    dense[at] = held
    assert np.array_equal(sizes[0:n], dense) and np.array_equal(sizes[17:40], dense[17:40])
    idx = rng.integers(0, n, 2_000)
    assert np.array_equal(sizes[idx], dense[idx])
    assert np.array_equal(sizes.held.mask(idx), np.isin(idx, at))
    assert np.array_equal(sizes.held.mask(slice(100, 900)), np.isin(np.arange(100, 900), at))


def test_plan_batches_made_ahead_keep_order_errors_and_stop_early() -> None:
    from musicark.plan.io import _ahead

    assert list(_ahead(iter(range(50)))) == list(range(50))

    def failing():  # type: ignore[no-untyped-def]
        yield 1
        raise ValueError("broken batch")

    with pytest.raises(ValueError, match="broken batch"):
        list(_ahead(failing()))
    it = _ahead(iter(range(1000)))
    assert next(it) == 0
    it.close()  # the writer gave up: the thread ends, nothing blocks
