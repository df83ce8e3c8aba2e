"""Ranking by popularity bands (search/tiers.py) gives exactly the page that scoring every
match gives: same tracks, same scores, same order, on a seeded realistic catalogue."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
import tantivy

from musicark.catalog.synthetic import generate_catalog
from musicark.search import query as query_module
from musicark.search.analysis import parse_query, words
from musicark.search.index import IndexState, Row, _write_state, make_document, write_index
from musicark.search.query import SearchResults, TrackIndex, _plan
from musicark.search.tiers import FLOORS, TIERS, ceiling_weight, tier_of, weight


def _rows(table: pa.Table) -> list[Row]:
    # more popular tracks than the generator makes at this size, so that common words
    # fill a page from the first band and the bands stop early
    rng = random.Random(4)
    pops = [
        rng.randint(50, 100) if rng.random() < 0.05 else p
        for p in table.column("popularity").to_pylist()
    ]
    artists = [", ".join(a["name"] for a in names) for names in table.column("artists").to_pylist()]
    return [
        (i, title, artists[i], None, album, pop, isrc, None, [isrc.lower()])
        for i, (title, album, pop, isrc) in enumerate(
            zip(
                table.column("title").to_pylist(),
                table.column("album_title").to_pylist(),
                pops,
                table.column("isrc").to_pylist(),
                strict=True,
            )
        )
    ]


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Row]]:
    rows = _rows(generate_catalog(20_000, seed=5, vocabulary="wordfreq"))
    root = tmp_path_factory.mktemp("bands") / "tracks"
    root.mkdir()
    write_index(root / "g000001", [rows])
    _write_state(root, IndexState("g000001", 0, "test"))
    return root, rows


def _queries(rows: list[Row]) -> list[str]:
    """Common words, pairs of them, one- to three-letter prefixes, rare words."""
    rng = random.Random(3)
    counts = Counter(w for r in rows[:5000] for w in words(f"{r[1]} {r[2]} {r[4]}"))
    common = [w for w, _ in counts.most_common(25)]
    everything = list(counts)
    out = [f"{w} " for w in common]
    out += [f"{rng.choice(common)} {rng.choice(common)} " for _ in range(25)]
    out += [w[:n] for w in common[:15] for n in (1, 2, 3) if len(w) > n]
    out += [f"{rng.choice(common)} {rng.choice(everything)[:3]}" for _ in range(25)]
    out += [f"{rng.choice(everything)} " for _ in range(25)]
    return out


def _exhaustive(index: TrackIndex, text: str, limit: int, offset: int) -> SearchResults:
    assert index._view is not None
    searcher, schema, _ = index._view
    parsed = parse_query(text)
    return index._run(searcher, index._text_query(schema, parsed), parsed, "text", limit, offset)


def _equal_pages(got: SearchResults, want: SearchResults) -> bool:
    """Same scores in the same order, and the same tracks, except that tracks tied with
    the page's last score may be others of that score (tantivy breaks such ties by
    segment layout, which updates and merges change)."""
    scores = [h.score for h in got.hits]
    if scores != [h.score for h in want.hits]:
        return False
    last = scores[-1] if scores else math.inf

    def above(r: SearchResults) -> list[tuple[float, int]]:
        return sorted((h.score, h.id) for h in r.hits if h.score > last)

    return above(got) == above(want)


def _same(index: TrackIndex, texts: list[str], *, limit: int = 20, offset: int = 0) -> list[str]:
    """The queries whose banded answer differs from the exhaustive one."""
    wrong = []
    for text in texts:
        got = index.search(text, limit=limit, offset=offset)
        want = _exhaustive(index, text, limit, offset)
        counted = got.total == want.total if got.total_exact else got.total < want.total
        if not (_equal_pages(got, want) and counted):
            wrong.append(text)
    return wrong


@pytest.fixture
def banded(
    indexed: tuple[Path, list[Row]], monkeypatch: pytest.MonkeyPatch
) -> Iterator[TrackIndex]:
    # small catalogue: no shortcut to one exhaustive pass, exact counts only up to 50
    monkeypatch.setattr(query_module, "EXHAUSTIVE_BELOW", 0)
    monkeypatch.setattr(query_module, "COUNT_UP_TO", 50)
    yield TrackIndex(indexed[0])


def test_bands_give_the_exhaustive_page(
    banded: TrackIndex, indexed: tuple[Path, list[Row]], monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = _queries(indexed[1])
    assert _same(banded, texts) == []
    assert _same(banded, texts[:40], limit=7, offset=30) == []
    # the rare-title-word pass on and off
    monkeypatch.setattr(query_module, "RARE_TITLE_WORD", 0)
    assert _same(banded, texts) == []
    # and the bands did stop early: some totals are only lower bounds
    stopped = [t for t in texts if not banded.search(t).total_exact]
    assert len(stopped) >= 10 and any(t.endswith(" ") for t in stopped), stopped


def test_a_wrong_bound_is_caught(
    banded: TrackIndex, indexed: tuple[Path, list[Row]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The comparison above can fail: stopping after the most popular band, whatever the
    scores, returns other pages."""
    monkeypatch.setattr(query_module, "ceiling_weight", lambda tier: math.inf if tier == 0 else 0.0)
    assert len(_same(banded, _queries(indexed[1]))) >= 5


def test_bound_is_above_every_score(
    banded: TrackIndex, indexed: tuple[Path, list[Row]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(query_module, "RARE_TITLE_WORD", 0)
    assert banded._view is not None
    searcher, schema, documents = banded._view
    for text in _queries(indexed[1]):
        parsed = parse_query(text)
        best = searcher.search(banded._text_query(schema, parsed), 1)  # unweighted BM25
        if best.hits:
            top = best.hits[0][0]
            bound = _plan(searcher, parsed, documents).bound
            assert top <= bound, text


def test_bands_after_updates(
    indexed: tuple[Path, list[Row]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deleted documents still count in BM25's statistics until merged away: the bound
    must hold on an index that was updated in place (delete by id, add again)."""
    rows = indexed[1]
    updated = tmp_path / "tracks"
    updated.mkdir()
    write_index(updated / "g000001", [rows])
    _write_state(updated, IndexState("g000001", 0, "test"))
    index = tantivy.Index.open(str(updated / "g000001"))
    from musicark.search.analysis import register_analyzer

    register_analyzer(index)
    writer = index.writer(heap_size=50_000_000, num_threads=1)
    rng = random.Random(8)
    gone = 0
    for tid in rng.sample(range(len(rows)), 3000):
        row = rows[tid]
        writer.delete_documents_by_term("id", tid)
        gone += tid % 3 == 0
        if tid % 3:  # most come back, with another popularity
            writer.add_document(make_document((*row[:5], rng.choice([0, 3, 25, 70]), *row[6:])))  # type: ignore[arg-type]
    writer.commit()
    writer.wait_merging_threads()
    monkeypatch.setattr(query_module, "EXHAUSTIVE_BELOW", 0)
    monkeypatch.setattr(query_module, "COUNT_UP_TO", 50)
    handle = TrackIndex(updated)
    assert handle.num_docs == len(rows) - gone
    assert _same(handle, _queries(rows)) == []


def test_bands_cover_every_popularity() -> None:
    assert tier_of(100) == 0 and tier_of(FLOORS[0]) == 0 and tier_of(0) == TIERS - 1
    assert tier_of(-5) == TIERS - 1 and tier_of(10**6) == 0
    for pop in range(0, 101):
        t = tier_of(pop)
        assert weight(pop) <= ceiling_weight(t)
        if t + 1 < TIERS:
            assert weight(pop) > ceiling_weight(t + 1)
