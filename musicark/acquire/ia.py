"""`ia:QUERY`: items of the Internet Archive found by an advanced-search query.

Through the public API, in plain HTTP (`--ia-base-url` points at a mirror or a test
server): `advancedsearch.php` gives item identifiers, `/metadata/ID` the item's
`licenseurl` and its files (name, format, size, md5, sha1, source), and files download
from `/download/ID/NAME`. Audio originals are offered; a derivative (an MP3 made from a
FLAC) only when the item has no audio original. The item's licence sets `rights`; an
item whose licence does not allow redistribution stays dark, as everything else does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from musicark.acquire.model import FetchFailed, Offer
from musicark.acquire.sources import AUDIO_SUFFIXES, BaseSource, SourceContext, register
from musicark.catalog.licences import licence_rights
from musicark.errors import MusicarkError, UsageError

ROWS = 100
AUDIO_FORMATS = ("mp3", "flac", "ogg", "opus", "m4a", "aac", "wave", "wav", "vorbis")
_PREFERENCE = ("flac", "ogg", "opus", "mp3")


def _is_audio(f: dict[str, Any]) -> bool:
    fmt = str(f.get("format", "")).lower()
    name = str(f.get("name", "")).lower()
    if "spectrogram" in fmt or "image" in fmt or "png" in fmt:
        return False
    return any(a in fmt for a in AUDIO_FORMATS) or name.endswith(AUDIO_SUFFIXES)


def _rank(f: dict[str, Any]) -> int:
    name = str(f.get("name", "")).lower()
    for i, ext in enumerate(_PREFERENCE):
        if name.endswith("." + ext):
            return i
    return len(_PREFERENCE)


def pick_files(files: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Audio originals; else, per original, the preferred audio derivative."""
    audio = [f for f in files if isinstance(f, dict) and f.get("name") and _is_audio(f)]
    originals = [f for f in audio if f.get("source") != "derivative"]
    if originals:
        return sorted(originals, key=lambda f: str(f["name"]))
    groups: dict[str, dict[str, Any]] = {}
    for f in audio:
        key = str(f.get("original") or f["name"])
        if key not in groups or _rank(f) < _rank(groups[key]):
            groups[key] = f
    return [groups[k] for k in sorted(groups)]


def _first(value: Any) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    return str(value) if value not in (None, "") else None


def _length_ms(value: Any) -> int | None:
    """`length` of an IA file: seconds ("187.43") or minutes:seconds ("3:07")."""
    if value in (None, ""):
        return None
    try:
        parts = [float(p) for p in str(value).split(":")]
    except ValueError:
        return None
    seconds = 0.0
    for p in parts:
        seconds = seconds * 60 + p
    return int(seconds * 1000)


@register
class IaSource(BaseSource):
    name = "ia"
    needs = "QUERY: an Internet Archive advanced-search query (e.g. collection:georgeblood)"
    summary = "Internet Archive items (search, /metadata, /download); licence URL -> rights"

    def __init__(self, argument: str, *, context: SourceContext) -> None:
        super().__init__(argument, context=context)
        if context.downloader is None:
            raise UsageError("ia: needs HTTP")
        self.base = context.ia_base_url.rstrip("/")

    def identifiers(self) -> Iterator[str]:
        assert self.context.downloader is not None
        page = 1
        seen = 0
        while True:
            try:
                data = self.context.downloader.get_json(
                    f"{self.base}/advancedsearch.php",
                    params={
                        "q": self.argument,
                        "fl[]": "identifier",
                        "sort[]": "identifier asc",
                        "rows": str(ROWS),
                        "page": str(page),
                        "output": "json",
                    },
                )
            except FetchFailed as exc:
                # without the search there is nothing to offer: say so rather than run empty
                raise MusicarkError(f"ia:{self.argument}: search failed: {exc.reason}") from exc
            response = data.get("response", {}) if isinstance(data, dict) else {}
            response = response if isinstance(response, dict) else {}
            docs = response.get("docs") or []
            for doc in docs:
                ident = doc.get("identifier") if isinstance(doc, dict) else None
                if ident:
                    yield str(ident)
            seen += len(docs)
            found = response.get("numFound")
            if not docs or seen >= (int(str(found)) if str(found).isdigit() else 0):
                return
            page += 1

    def offers(self) -> Iterator[Offer]:
        assert self.context.downloader is not None
        for ident in self.identifiers():
            try:
                item = self.context.downloader.get_json(f"{self.base}/metadata/{quote(ident)}")
            except FetchFailed as exc:
                self.context.problem(f"ia:{ident}: {exc.reason}")
                continue
            if not isinstance(item, dict) or not item.get("files") or item.get("is_dark"):
                self.context.problem(f"ia:{ident}: no files (dark or removed item)")
                continue
            meta = item.get("metadata") or {}
            licence = _first(meta.get("licenseurl"))
            rights = licence_rights(licence)
            for f in pick_files(item["files"]):
                name = str(f["name"])
                size = str(f.get("size") or "")
                sums = {k: str(f[k]).lower() for k in ("md5", "sha1") if f.get(k)}
                suffix = "." + name.rsplit(".", 1)[1].lower() if "." in name else ""
                yield Offer(
                    source=self.name,
                    key=f"{ident}/{name}",
                    url=f"{self.base}/download/{quote(ident)}/{quote(name)}",
                    size=int(size) if size.isdigit() else None,
                    checksums=sums,
                    licence=licence,
                    rights=rights,
                    title=_first(f.get("title")) or _first(meta.get("title")),
                    artist=_first(f.get("creator") or f.get("artist"))
                    or _first(meta.get("creator")),
                    external=("internetarchive", f"{ident}/{name}"),
                    duration_ms=_length_ms(f.get("length")),
                    suffix=suffix if suffix in AUDIO_SUFFIXES else "",
                )
