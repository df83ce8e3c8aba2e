"""One exception tree for the whole library; the CLI turns these into one-line errors."""

from __future__ import annotations


class MusicarkError(Exception):
    """Base of every error musicark raises on purpose."""


class UsageError(MusicarkError):
    """An option or argument that cannot be acted on (a budget of `lots`, ...)."""


class ArchiveError(MusicarkError):
    """No archive where one was expected, or an archive in a state we cannot use."""


class CatalogError(MusicarkError):
    """The catalogue database cannot be read or written as asked."""


class FormatError(CatalogError):
    """An input file that is not of the format it claims (or of any format we read)."""


class StoreError(MusicarkError):
    """The content-addressed store refused or failed an operation."""


class IntegrityError(StoreError):
    """Bytes that do not hash to what they should."""


class TorrentError(MusicarkError):
    """A .torrent that cannot be made, parsed or trusted."""


class ReleaseError(MusicarkError):
    """A release that cannot be packed, published or located."""


class SwarmError(MusicarkError):
    """Seeding, scraping or verification against the swarm failed."""


class SearchError(MusicarkError):
    """The search index cannot answer or be built."""


class QueryError(SearchError, UsageError):
    """A search query, page size or offset that cannot be answered as given."""


class ClusterError(MusicarkError):
    """A cluster executor that cannot be reached, was lost, or whose workers cannot see
    the archive's shared folders."""


class Cancelled(MusicarkError):
    """A long job stopped because its progress callback asked it to."""
