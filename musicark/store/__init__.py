"""The content-addressed audio store: ingest, probing, matching, dedupe and fixity audits.

Public entry points: `musicark.store.ingest.ingest`, `musicark.store.dupes.find_dupes`,
`musicark.store.audit.audit`, and `musicark.store.blobs.blob_path`.
"""

from musicark import events


def _follow_catalog(event: events.CatalogChanged) -> None:
    # Imported here: the matcher pulls in the catalogue reader, which most store users
    # (blob paths, audits) never need.
    from musicark.store.rematch import rematch_unmatched

    rematch_unmatched(event.archive, progress=event.progress)


events.listen("catalog.changed", _follow_catalog)
