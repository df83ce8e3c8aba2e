"""Answering queries: exact identifier lookups, then ranked full-text search.

A query that looks like an identifier (an ISRC, a UPC, `musicbrainz:...`, a source's
track id) is first looked up exactly in the `keys` field; when that finds tracks they
are the answer. Otherwise every word must match the title, artists or album (folded,
case-insensitive), the last one as a prefix while it is being typed, and hits are
ranked by BM25 (title matches count extra) multiplied by log2(2 + popularity).

The page is found band by band, most popular first, stopping when no track of the bands
left can reach it (see tiers.py): common words no longer score every match. `total` is
exact up to `COUNT_UP_TO`; past it `total_exact` is false and `total` a lower bound.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import tantivy

from musicark.archive import Archive
from musicark.errors import QueryError, SearchError
from musicark.search.analysis import ParsedQuery, parse_query
from musicark.search.index import index_root, open_index, read_state
from musicark.search.tiers import MARGIN, TIERS, ceiling_weight, documents_bound, term_bound

MAX_LIMIT = 100
MAX_OFFSET = 10_000
TITLE_BOOST = 1.5
PREFIX_SCORE = 1.0  # what a half-typed last word adds (tantivy scores a term range 1)
# A query with a word in fewer documents than this is scored whole, in one pass.
EXHAUSTIVE_BELOW = 50_000
# Title words in at most this many documents have their matches ranked apart.
RARE_TITLE_WORD = 20_000
# Matches are counted exactly up to here (enough to page to the last offset); past it,
# `total` is the number counted in the bands scored, a lower bound.
COUNT_UP_TO = MAX_OFFSET + MAX_LIMIT
REFRESH_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class SearchHit:
    id: int
    title: str
    artists: str
    album: str
    album_id: int | None
    popularity: int
    isrc: str | None
    duration_ms: int | None
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "artists": self.artists,
            "album": self.album,
            "album_id": self.album_id,
            "popularity": self.popularity,
            "isrc": self.isrc,
            "duration_ms": self.duration_ms,
            "score": round(self.score, 4),
        }


@dataclass(frozen=True, slots=True)
class SearchResults:
    query: str
    mode: str  # "id": exact identifier match; "text": ranked full-text search
    total: int
    offset: int
    limit: int
    hits: list[SearchHit]
    # False: more than `total` tracks match (counting them all would cost a full scan)
    total_exact: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "mode": self.mode,
            "total": self.total,
            "total_exact": self.total_exact,
            "offset": self.offset,
            "limit": self.limit,
            "hits": [h.to_dict() for h in self.hits],
        }


def check_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError(f"limit must be between 1 and {MAX_LIMIT}, not {limit}")
    if not 0 <= offset <= MAX_OFFSET:
        raise QueryError(f"offset must be between 0 and {MAX_OFFSET}, not {offset}")


class TrackIndex:
    """A read-only handle on the live search index; reopens it when it is rebuilt."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._generation = ""
        self._index: tantivy.Index | None = None
        # searcher, schema, tiers.documents_bound: replaced whole, so that a search running
        # meanwhile sees one consistent view
        self._view: tuple[tantivy.Searcher, tantivy.Schema, int] | None = None
        self._checked = 0.0
        self.refresh(force=True)

    @classmethod
    def open(cls, archive: Archive) -> TrackIndex:
        return cls(index_root(archive))

    def refresh(self, *, force: bool = False) -> None:
        """Pick up commits and rebuilds made since the last look (at most once a second)."""
        now = time.monotonic()
        if not force and now - self._checked < REFRESH_SECONDS:
            return
        with self._lock:
            self._checked = now
            state = read_state(self.root)
            if state is None:
                if self._index is None:
                    raise SearchError(
                        "there is no search index yet; build it with `musicark index rebuild`"
                    )
                return
            if state.generation != self._generation or self._index is None:
                index = open_index(self.root, state.generation)
                self._index = index
                self._generation = state.generation
            else:
                self._index.reload()
            searcher = self._index.searcher()
            self._view = (searcher, self._index.schema, documents_bound(searcher))

    @property
    def num_docs(self) -> int:
        assert self._view is not None
        return int(self._view[0].num_docs)

    def search(self, query: str, *, limit: int = 20, offset: int = 0) -> SearchResults:
        """Top `limit` tracks for `query` after skipping `offset`; see the module docstring."""
        check_page(limit, offset)
        parsed = parse_query(query)
        self.refresh()
        assert self._view is not None
        searcher, schema, documents = self._view
        if parsed.keys:
            q = tantivy.Query.term_set_query(schema, "keys", list(parsed.keys))
            found = self._run(searcher, q, parsed, "id", limit, offset)
            if found.total:
                return found
        if not parsed.words:
            return SearchResults(parsed.text, "text", 0, offset, limit, [])
        q = self._text_query(schema, parsed)
        try:
            plan = _plan(searcher, parsed, documents)
            ranked, total, exact = _ranked(searcher, schema, q, plan, offset + limit)
        except ValueError as exc:
            raise SearchError(f"the search index could not answer ({exc})") from exc
        hits = [self._hit(searcher, score, address) for score, address in ranked[offset:]]
        return SearchResults(parsed.text, "text", total, offset, limit, hits, exact)

    def _text_query(self, schema: tantivy.Schema, parsed: ParsedQuery) -> tantivy.Query:
        Q, Must, Should = tantivy.Query, tantivy.Occur.Must, tantivy.Occur.Should
        clauses: list[tuple[tantivy.Occur, tantivy.Query]] = []
        last = len(parsed.words) - 1
        for i, word in enumerate(parsed.words):
            if i == last and parsed.prefix:
                # one term: tantivy runs it as a term range, a constant score of 1
                clauses.append((Must, Q.phrase_prefix_query(schema, "all", [word])))
            else:
                clauses.append((Must, Q.term_query(schema, "all", word)))
            clauses.append(
                (Should, Q.boost_query(Q.term_query(schema, "title", word), TITLE_BOOST))
            )
        return Q.boolean_query(clauses)

    def _run(
        self,
        searcher: tantivy.Searcher,
        q: tantivy.Query,
        parsed: ParsedQuery,
        mode: str,
        limit: int,
        offset: int,
    ) -> SearchResults:
        """Every match scored: identifier look-ups, and the reference the bands must equal."""
        try:
            result = searcher.search(
                q, limit, count=True, offset=offset, weight_by_field="popularity"
            )
        except ValueError as exc:
            raise SearchError(f"the search index could not answer ({exc})") from exc
        hits = [self._hit(searcher, score, address) for score, address in result.hits]
        return SearchResults(
            parsed.text, mode, int(getattr(result, "count", 0) or 0), offset, limit, hits
        )

    def _hit(
        self, searcher: tantivy.Searcher, score: float, address: tantivy.DocAddress
    ) -> SearchHit:
        doc = searcher.doc(address)
        tid: Any = doc.get_first("id")
        shown: Any = doc.get_first("show")
        title, artists, album, album_id, isrc, duration = orjson.loads(shown)
        return SearchHit(
            id=int(tid),
            title=title,
            artists=artists,
            album=album,
            album_id=album_id,
            popularity=int(doc.get_first("popularity") or 0),
            isrc=isrc,
            duration_ms=duration,
            score=float(score),
        )


@dataclass(frozen=True, slots=True)
class _Plan:
    """How to rank one text query without scoring every match (see tiers.py)."""

    bound: float  # above the score any document can reach, the `rare` words' bonus aside
    rare: tuple[str, ...]  # title words so rare that their matches are ranked apart
    exhaustive: bool  # few matches: score them all in one pass


def _plan(searcher: tantivy.Searcher, parsed: ParsedQuery, documents: int) -> _Plan:
    bound, rare, smallest = 0.0, [], documents
    last = len(parsed.words) - 1
    for i, word in enumerate(parsed.words):
        if i == last and parsed.prefix:
            bound += PREFIX_SCORE
        else:
            smallest = min(smallest, int(searcher.doc_freq("all", word)))
            bound += term_bound(searcher, "all", word, documents)
        title_freq = int(searcher.doc_freq("title", word))
        if 0 < title_freq <= RARE_TITLE_WORD:
            rare.append(word)  # a rare word's big bonus would make the bound useless
        else:
            bound += TITLE_BOOST * term_bound(searcher, "title", word, documents)
    return _Plan(bound * (1.0 + MARGIN), tuple(rare), smallest <= EXHAUSTIVE_BELOW)


Hits = list[tuple[float, tantivy.DocAddress]]


def _ranked(
    searcher: tantivy.Searcher, schema: tantivy.Schema, q: tantivy.Query, plan: _Plan, want: int
) -> tuple[Hits, int, bool]:
    """The `want` best (score, address), the matches counted and whether that count is
    all of them. Popularity bands are scored in turn until no document of the bands left
    can beat the last one kept; the matches of rare title words are ranked beforehand,
    since the bound leaves their bonus out."""
    Q, Must, Should = tantivy.Query, tantivy.Occur.Must, tantivy.Occur.Should

    def only(values: tantivy.Query) -> tantivy.Query:  # a filter: adds 0 to the score
        return Q.boolean_query([(Must, q), (Must, Q.const_score_query(values, 0.0))])

    if plan.exhaustive:
        found = searcher.search(q, want, count=True, weight_by_field="popularity")
        return _merge([], found.hits, want), int(getattr(found, "count", 0) or 0), True
    best: Hits = []
    if plan.rare:
        titles = [(Should, Q.term_query(schema, "title", w)) for w in plan.rare]
        found = searcher.search(
            only(Q.boolean_query(titles)), want, count=False, weight_by_field="popularity"
        )
        best = _merge(best, found.hits, want)
    counted, tier = 0, 0
    while tier < TIERS and not (
        len(best) >= want and best[want - 1][0] > plan.bound * ceiling_weight(tier)
    ):
        found = searcher.search(
            only(Q.term_query(schema, "tier", tier)), want, count=True, weight_by_field="popularity"
        )
        counted += int(getattr(found, "count", 0) or 0)
        best = _merge(best, found.hits, want)
        tier += 1
    # the page is ranked; the bands left are only counted, until paging has enough
    while tier < TIERS and counted < COUNT_UP_TO:
        counted += _count(searcher, only(Q.term_query(schema, "tier", tier)))
        tier += 1
    return best, counted, tier == TIERS


def _merge(best: Hits, found: list[tuple[Any, tantivy.DocAddress]], want: int) -> Hits:
    """Two ranked lists as one, best first, each document once; equal scores in document
    order, as tantivy ranks them."""
    merged: dict[tuple[int, int], tuple[float, tantivy.DocAddress]] = {
        (a.segment_ord, a.doc): (s, a) for s, a in best
    }
    for score, address in found:
        merged[(address.segment_ord, address.doc)] = (float(score), address)
    ranked = sorted(merged.items(), key=lambda kv: (-kv[1][0], kv[0]))
    return [hit for _, hit in ranked[:want]]


def _count(searcher: tantivy.Searcher, q: tantivy.Query) -> int:
    """How many documents match (a constant score: no BM25, no popularity read)."""
    found = searcher.search(tantivy.Query.const_score_query(q, 1.0), 1, count=True)
    return int(getattr(found, "count", 0) or 0)


def search(archive: Archive, query: str, *, limit: int = 20, offset: int = 0) -> SearchResults:
    """One search against the archive's index (open, ask, done)."""
    return TrackIndex.open(archive).search(query, limit=limit, offset=offset)
