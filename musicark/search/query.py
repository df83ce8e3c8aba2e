"""Answering queries: exact identifier lookups, then ranked full-text search.

A query that looks like an identifier (an ISRC, a UPC, `musicbrainz:...`, a source's
track id) is first looked up exactly in the `keys` field; when that finds tracks they
are the answer. Otherwise every word must match the title, artists or album (folded,
case-insensitive), the last one as a prefix while it is being typed, and hits are
ranked by BM25 (title matches count extra) multiplied by log2(2 + popularity).
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

MAX_LIMIT = 100
MAX_OFFSET = 10_000
# Terms a half-typed last word may expand to (tantivy's phrase-prefix expansion bound).
TITLE_BOOST = 1.5
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "mode": self.mode,
            "total": self.total,
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
        self._schema: tantivy.Schema | None = None
        self._searcher: tantivy.Searcher | None = None
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
                self._index, self._schema = index, index.schema
                self._generation = state.generation
            else:
                self._index.reload()
            self._searcher = self._index.searcher()

    @property
    def num_docs(self) -> int:
        assert self._searcher is not None
        return int(self._searcher.num_docs)

    def search(self, query: str, *, limit: int = 20, offset: int = 0) -> SearchResults:
        """Top `limit` tracks for `query` after skipping `offset`; see the module docstring."""
        check_page(limit, offset)
        parsed = parse_query(query)
        self.refresh()
        searcher, schema = self._searcher, self._schema
        assert searcher is not None and schema is not None
        if parsed.keys:
            q = tantivy.Query.term_set_query(schema, "keys", list(parsed.keys))
            found = self._run(searcher, q, parsed, "id", limit, offset)
            if found.total:
                return found
        if not parsed.words:
            return SearchResults(parsed.text, "text", 0, offset, limit, [])
        return self._run(searcher, self._text_query(schema, parsed), parsed, "text", limit, offset)

    def _text_query(self, schema: tantivy.Schema, parsed: ParsedQuery) -> tantivy.Query:
        Q, Must, Should = tantivy.Query, tantivy.Occur.Must, tantivy.Occur.Should
        clauses: list[tuple[tantivy.Occur, tantivy.Query]] = []
        last = len(parsed.words) - 1
        for i, word in enumerate(parsed.words):
            if i == last and parsed.prefix:
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
        try:
            result = searcher.search(
                q, limit, count=True, offset=offset, weight_by_field="popularity"
            )
        except ValueError as exc:
            raise SearchError(f"the search index could not answer ({exc})") from exc
        hits = []
        for score, address in result.hits:
            doc = searcher.doc(address)
            tid: Any = doc.get_first("id")
            shown: Any = doc.get_first("show")
            title, artists, album, album_id, isrc, duration = orjson.loads(shown)
            hits.append(
                SearchHit(
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
            )
        return SearchResults(
            parsed.text, mode, int(getattr(result, "count", 0) or 0), offset, limit, hits
        )


def search(archive: Archive, query: str, *, limit: int = 20, offset: int = 0) -> SearchResults:
    """One search against the archive's index (open, ask, done)."""
    return TrackIndex.open(archive).search(query, limit=limit, offset=offset)
