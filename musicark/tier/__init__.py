"""The long-tail tier: derived renditions (re-encodes) of held audio, each one checked.

`transcode.transcode(archive, ...)` derives, for every selected track of a plan tier, a
rendition of its preferred held rendition (`encode.py` runs in worker processes, `check.py`
compares the result with its source) and stores it by its own sha256 with its provenance
(`schema.py`, domain "tier" of state.sqlite).
"""
