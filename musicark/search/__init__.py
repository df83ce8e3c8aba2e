"""Search over the catalogue: a tantivy index kept up to date from `track_changes`.

Public API::

    update_index(archive, *, progress=None) -> IndexSummary   # catch up (builds if missing)
    rebuild_index(archive, *, progress=None) -> IndexSummary  # full rebuild
    search(archive, query, *, limit=20, offset=0) -> SearchResults
    TrackIndex.open(archive)                                  # a reusable read-only handle

Importing this package subscribes the index to "catalog.changed" (see musicark.events), so
every catalogue import, from the CLI or the library, leaves the index up to date unless the
archive's `search.follow_catalog` setting is off.
"""

from __future__ import annotations

from musicark import events
from musicark.search.index import IndexSummary, index_status, rebuild_index, update_index
from musicark.search.query import SearchHit, SearchResults, TrackIndex, search


def _follow_catalog(event: events.CatalogChanged) -> None:
    if event.archive.config.search.follow_catalog:
        update_index(event.archive, progress=event.progress)


events.listen("catalog.changed", _follow_catalog)

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
