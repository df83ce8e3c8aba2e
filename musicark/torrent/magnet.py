"""Magnet links (BEP 9, with BEP 52's btmh for v2) for torrents musicark makes."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from musicark.errors import TorrentError


def magnet_link(
    *,
    name: str,
    info_hash_v1: str | None,
    info_hash_v2: str | None,
    trackers: Sequence[str] = (),
    web_seeds: Sequence[str] = (),
    size: int | None = None,
) -> str:
    """`magnet:?xt=urn:btih:...&xt=urn:btmh:1220...&dn=...&tr=...&ws=...` (fixed order)."""
    parts: list[str] = []
    if info_hash_v1:
        parts.append(f"xt=urn:btih:{info_hash_v1}")
    if info_hash_v2:
        parts.append(f"xt=urn:btmh:1220{info_hash_v2}")
    if not parts:
        raise TorrentError("a magnet link needs a v1 or a v2 infohash")
    parts.append(f"dn={quote(name, safe='')}")
    if size is not None:
        parts.append(f"xl={size}")
    parts.extend(f"tr={quote(t, safe='')}" for t in trackers)
    parts.extend(f"ws={quote(w, safe='')}" for w in web_seeds)
    return "magnet:?" + "&".join(parts)
