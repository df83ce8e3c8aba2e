"""Search over the catalogue: a tantivy index kept up to date from `track_changes`.

Public API::

    update_index(archive, *, progress=None) -> IndexSummary   # catch up (builds if missing)
    rebuild_index(archive, *, progress=None) -> IndexSummary  # full rebuild
    search(archive, query, *, limit=20, offset=0) -> SearchResults
    TrackIndex.open(archive)                                  # a reusable read-only handle
"""

from __future__ import annotations

from musicark.search.index import IndexSummary, index_status, rebuild_index, update_index
from musicark.search.query import SearchHit, SearchResults, TrackIndex, search

__all__ = [
    "IndexSummary",
    "SearchHit",
    "SearchResults",
    "TrackIndex",
    "index_status",
    "rebuild_index",
    "search",
    "update_index",
]
