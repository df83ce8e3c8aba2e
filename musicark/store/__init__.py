"""The content-addressed audio store: ingest, probing, matching, dedupe and fixity audits.

Public entry points: `musicark.store.ingest.ingest`, `musicark.store.dupes.find_dupes`,
`musicark.store.audit.audit`, and `musicark.store.blobs.blob_path`.
"""
