"""Acquisition sources: the protocol, the registry and the simple built-ins (`urls:`, `dir:`).

A source is named on the command line as `NAME:ARGUMENT` (`urls:list.csv`, `ia:QUERY`).
It is a class registered under NAME with:

- `name`, `needs` (what ARGUMENT is) and `summary` (one line for `musicark sources`);
- `__init__(argument, *, context)`; raise `UsageError` for an argument it cannot use;
- `offers()`: every file it can deliver, lazily, as `Offer`s, with the hints that tie
  each one to a catalogue track (track id, ISRC, MusicBrainz id, an external id, artist +
  title); acquire resolves them against the catalogue and orders them by the plan;
- `fetch(offer, part, downloader)`: bring one offer's bytes into `part` (resuming what
  `part` holds) and return a `Transfer`; `BaseSource.fetch` does it for `offer.url`
  (HTTP) and `offer.path` (a local file), so most sources only write `offers()`.

Third-party sources register through the `musicark.sources` entry-point group (the entry
point loads the class; its `name` is the prefix).
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import orjson

from musicark.acquire.http import Downloader, Transfer
from musicark.acquire.model import CHECKSUMS, FetchFailed, Offer
from musicark.catalog.licences import licence_rights
from musicark.errors import MusicarkError, UsageError
from musicark.registry import Registry

AUDIO_SUFFIXES = (".mp3", ".flac", ".ogg", ".opus", ".m4a", ".oga", ".wav", ".aac", ".wv")
ENTRY_POINT_GROUP = "musicark.sources"


@dataclass
class SourceContext:
    """What a source may use: the HTTP client (through the downloader's host gate)."""

    downloader: Downloader | None = None
    ia_base_url: str = "https://archive.org"
    want_hints: bool = False  # plan mode: offers need track hints (dir: reads tags)
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        if len(self.problems) < 1000:
            self.problems.append(text)


class Source(Protocol):
    name: ClassVar[str]
    needs: ClassVar[str]
    summary: ClassVar[str]

    def offers(self) -> Iterator[Offer]: ...

    def fetch(self, offer: Offer, part: Path, downloader: Downloader) -> Transfer: ...


class BaseSource:
    name: ClassVar[str] = ""
    needs: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    def __init__(self, argument: str, *, context: SourceContext) -> None:
        self.argument = argument
        self.context = context

    def offers(self) -> Iterator[Offer]:
        raise NotImplementedError

    def shared_files(self) -> list[Path]:
        """A file of each local folder `fetch` reads (none for HTTP): every cluster worker
        must see it as the coordinator does (checked without writing into the folder)."""
        return []

    def fetch(self, offer: Offer, part: Path, downloader: Downloader) -> Transfer:
        if offer.url is not None:
            return downloader.download(offer, part)
        if offer.path is not None:
            return copy_local(offer, part)
        raise FetchFailed("error_not_available", "the offer names neither a URL nor a file")


def copy_local(offer: Offer, part: Path) -> Transfer:
    assert offer.path is not None
    try:
        with open(offer.path, "rb") as src, open(part, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except FileNotFoundError:
        raise FetchFailed("error_not_available", "the file is gone") from None
    except OSError as exc:
        raise FetchFailed("error_io", f"cannot copy: {exc.strerror or exc}") from exc
    return Transfer(part.stat().st_size, None, None, offer.path, False)


# ---------------------------------------------------------------- registry


def _is_source(obj: object) -> bool:
    return isinstance(obj, type) and issubclass(obj, BaseSource)


SOURCES: Registry[type[BaseSource]] = Registry("source", check=_is_source)


def register(cls: type[BaseSource]) -> type[BaseSource]:
    """Register a source class under `cls.name` (usable as a decorator)."""
    if not cls.name or ":" in cls.name:
        raise UsageError(f"a source needs a name without ':' (got {cls.name!r})")
    SOURCES.register(cls.name, cls, replace=True)
    return cls


def source_classes() -> dict[str, type[BaseSource]]:
    """Every registered source by name: the built-ins, then `musicark.sources` plugins."""
    from musicark.acquire import fma, ia  # noqa: F401  (register the built-ins)

    SOURCES.load_entry_points(ENTRY_POINT_GROUP)
    return {name: SOURCES.get(name) for name in sorted(SOURCES.names())}


def open_source(spec: str, *, context: SourceContext) -> BaseSource:
    name, sep, argument = spec.partition(":")
    classes = source_classes()
    if not sep or name not in classes:
        raise UsageError(
            f"unknown source {spec!r}: write NAME:ARGUMENT with NAME one of "
            f"{', '.join(classes)} (see `musicark sources`)"
        )
    if not argument:
        raise UsageError(f"source {name}: needs {classes[name].needs}")
    return classes[name](argument, context=context)


# ---------------------------------------------------------------- urls:


def _int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    return int(text) if text.isdigit() else None


@register
class UrlsSource(BaseSource):
    name = "urls"
    needs = "FILE: a CSV (with a header) or JSONL list of url, track_id|isrc|mbid, size, sha256|md5|sha1, licence"
    summary = "URLs the operator is entitled to fetch, each tied to a track"

    def __init__(self, argument: str, *, context: SourceContext) -> None:
        super().__init__(argument, context=context)
        self.path = Path(argument)
        if not self.path.is_file():
            raise UsageError(f"urls: no such file {argument}")

    def _rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        with open(self.path, "rb") as fh:
            head = fh.read(4096).lstrip()
        if head.startswith(b"{") or self.path.suffix in (".jsonl", ".ndjson"):
            with open(self.path, "rb") as fh:
                for number, line in enumerate(fh, start=1):
                    if not line.strip():
                        continue
                    try:
                        row = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        self.context.problem(f"{self.path}:{number}: not a JSON object")
                        continue
                    if isinstance(row, dict):
                        yield number, row
                    else:
                        self.context.problem(f"{self.path}:{number}: not a JSON object")
        elif b"\0" in head:
            raise MusicarkError(f"urls: {self.path} is not a CSV or JSONL list (binary content)")
        else:
            try:
                with open(self.path, encoding="utf-8", newline="") as text:
                    reader = csv.DictReader(text)
                    for number, row in enumerate(reader, start=2):
                        yield number, {k.strip().lower(): v for k, v in row.items() if k}
            except UnicodeDecodeError as exc:
                raise MusicarkError(f"urls: {self.path} is not UTF-8 text") from exc
            except csv.Error as exc:
                raise MusicarkError(f"urls: {self.path}: not CSV ({exc})") from exc

    def offers(self) -> Iterator[Offer]:
        for number, row in self._rows():
            url = str(row.get("url") or "").strip()
            if not url.startswith(("http://", "https://")):
                self.context.problem(f"{self.path}:{number}: no http(s) url")
                continue
            sums = {k: str(row[k]).strip().lower() for k in CHECKSUMS if row.get(k)}
            licence = str(row.get("licence") or row.get("license") or "") or None
            track = _int(row.get("track_id") or row.get("track"))
            isrc = str(row.get("isrc") or "").strip() or None
            mbid = str(row.get("mbid") or row.get("musicbrainz") or "").strip() or None
            suffix = os.path.splitext(url.split("?", 1)[0])[1][:8].lower()
            yield Offer(
                source=self.name,
                key=url,
                url=url,
                size=_int(row.get("size")),
                checksums=sums,
                licence=licence,
                rights=licence_rights(licence) if licence else None,
                track_id=track,
                isrc=isrc,
                mbid=mbid,
                title=str(row.get("title") or "") or None,
                artist=str(row.get("artist") or "") or None,
                duration_ms=_int(row.get("duration_ms")),
                suffix=suffix if suffix in AUDIO_SUFFIXES else "",
                crawled=True,
            )


# ---------------------------------------------------------------- dir:


def walk_audio(root: Path) -> Iterator[Path]:
    """Audio files under `root` in a stable (sorted) order, lazily."""
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith(AUDIO_SUFFIXES):
                yield Path(folder) / name


def tag_hints(path: Path) -> dict[str, str]:
    """ISRC, MusicBrainz id, title and artist from a file's tags (for plan-ordered runs)."""
    import mutagen

    try:
        f: Any = mutagen.File(path, easy=True)
    except (mutagen.MutagenError, OSError, ValueError):
        return {}
    if f is None or f.tags is None:
        return {}
    out = {}
    for key in ("isrc", "musicbrainz_trackid", "title", "artist"):
        try:
            values = f.tags.get(key)
        except (KeyError, ValueError):
            values = None
        if values:
            out[key] = str(values[0])
    return out


@register
class DirSource(BaseSource):
    name = "dir"
    needs = "PATH: a local or mounted folder of audio files (a mirror)"
    summary = "a local or mounted mirror, matched to the catalogue as ingest does"

    def __init__(self, argument: str, *, context: SourceContext) -> None:
        super().__init__(argument, context=context)
        self.root = Path(argument)
        if not self.root.is_dir():
            raise UsageError(f"dir: no such folder {argument}")

    def shared_files(self) -> list[Path]:
        first = next(walk_audio(self.root), None)
        return [first] if first is not None else []

    def offers(self) -> Iterator[Offer]:
        for path in walk_audio(self.root):
            try:
                size = path.stat().st_size
            except OSError as exc:
                self.context.problem(f"{path}: {exc.strerror}")
                continue
            hints = tag_hints(path) if self.context.want_hints else {}
            yield Offer(
                source=self.name,
                key=str(path.resolve()),
                path=str(path),
                size=size,
                isrc=hints.get("isrc"),
                mbid=hints.get("musicbrainz_trackid"),
                title=hints.get("title"),
                artist=hints.get("artist"),
                suffix=path.suffix.lower(),
            )
