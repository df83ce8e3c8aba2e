"""Stable, safe names for releases, data folders and the files inside them.

Every name is ASCII `[a-z0-9._-]`, so v1 (full-path) and v2 (per-component) file orders
agree and every filesystem and client accepts it. A file's name starts with its serial
number in the release (unique, so names never collide) and goes into a sub-folder of
`FANOUT` serials: `00003/00003141-anna-berg-silver-moon.ogg`. A folder's name says what
it holds: `<release>-<collection>-<first serial>-<last serial>`.
"""

from __future__ import annotations

import re
import unicodedata

from musicark.errors import UsageError

FANOUT = 1000
SERIAL_WIDTH = 8
MAX_SLUG = 60
_RELEASE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_NON_SLUG = re.compile(r"[^a-z0-9]+")

# (codec, container) -> extension, most specific first
_EXTENSIONS = {
    "opus": "opus",
    "vorbis": "ogg",
    "flac": "flac",
    "mp3": "mp3",
    "aac": "m4a",
    "alac": "m4a",
    "wavpack": "wv",
    "pcm_s16le": "wav",
    "pcm_s24le": "wav",
}
_CONTAINERS = {"ogg": "ogg", "mp3": "mp3", "flac": "flac", "mov,mp4,m4a,3gp,3g2,mj2": "m4a"}


def check_release_name(name: str) -> str:
    """A release name: lowercase letters, digits, `.`, `_`, `-`; at most 64 characters."""
    if not _RELEASE.match(name or ""):
        raise UsageError(
            f"release name {name!r} must be 1-64 characters of a-z, 0-9, '.', '_' or '-',"
            " starting with a letter or digit"
        )
    return name


def slug(text: str | None, *, limit: int = MAX_SLUG) -> str:
    """ASCII, lowercase, hyphen-separated; accents folded; '' for nothing usable."""
    if not text:
        return ""
    folded = unicodedata.normalize("NFKD", text)
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    folded = folded.replace("ß", "ss").replace("ø", "o").replace("Ø", "o").replace("æ", "ae")
    out = _NON_SLUG.sub("-", folded.lower()).strip("-")
    if len(out) > limit:
        out = out[:limit].rstrip("-")
    return out


def extension(codec: str | None, container: str | None) -> str:
    if codec and codec.lower() in _EXTENSIONS:
        return _EXTENSIONS[codec.lower()]
    if container and container.lower() in _CONTAINERS:
        return _CONTAINERS[container.lower()]
    return "bin"


def file_name(serial: int, *, artist: str | None, title: str | None, ext: str) -> str:
    """`00003/00003141-anna-berg-silver-moon.ogg` (sub-folder, then the name)."""
    words = "-".join(p for p in (slug(artist, limit=30), slug(title, limit=40)) if p)
    stem = f"{serial:0{SERIAL_WIDTH}d}" + (f"-{words}" if words else "")
    return f"{serial // FANOUT:05d}/{stem}.{ext}"


def folder_name(release: str, collection: str, first: int, last: int) -> str:
    return f"{release}-{collection}-{first:0{SERIAL_WIDTH}d}-{last:0{SERIAL_WIDTH}d}"


def collection_name(source: str | None) -> str:
    """The catalogue source a file belongs to, as a name part (`unmatched` for none)."""
    return slug(source, limit=24) or "unmatched"
