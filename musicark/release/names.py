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

# FFmpeg's container (demuxer) name -> the usual extension of such files
_CONTAINERS = {
    "mp3": "mp3",
    "flac": "flac",
    "mov,mp4,m4a,3gp,3g2,mj2": "m4a",
    "mov": "m4a",
    "mp4": "m4a",
    "aiff": "aiff",
    "wav": "wav",
    "w64": "w64",
    "dsf": "dsf",
    "iff": "dff",
    "wv": "wv",
    "ape": "ape",
    "mpc": "mpc",
    "mpc8": "mpc",
    "tak": "tak",
    "asf": "wma",
    "tta": "tta",
    "aac": "aac",
    "ac3": "ac3",
    "eac3": "eac3",
    "truehd": "thd",
    "mlp": "mlp",
    "dts": "dts",
    "amr": "amr",
    "au": "au",
    "caf": "caf",
    "shn": "shn",
    "matroska,webm": "mka",
}
# Ogg holds several codecs, each with its own usual extension
_OGG = {"opus": "opus", "vorbis": "ogg", "flac": "oga", "speex": "spx"}
# a codec alone (when the container is unknown) -> extension
_CODECS = {
    "opus": "opus",
    "vorbis": "ogg",
    "flac": "flac",
    "mp3": "mp3",
    "mp3float": "mp3",
    "aac": "m4a",
    "alac": "m4a",
    "wavpack": "wv",
    "ape": "ape",
    "tak": "tak",
    "tta": "tta",
    "musepack7": "mpc",
    "musepack8": "mpc",
    "wmav1": "wma",
    "wmav2": "wma",
    "wmapro": "wma",
    "wmalossless": "wma",
    "wmavoice": "wma",
    "pcm_s16le": "wav",
    "pcm_s24le": "wav",
    "pcm_s32le": "wav",
    "pcm_f32le": "wav",
    "pcm_s16be": "aiff",
    "pcm_s24be": "aiff",
    "dsd_lsbf_planar": "dsf",
    "dsd_msbf": "dff",
}


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
    """The usual extension of a file in `container` holding `codec` (FFmpeg's names);
    `bin` only for what is not known at all."""
    c = (container or "").lower()
    k = (codec or "").lower()
    if c == "ogg":
        return _OGG.get(k, "ogg")
    if c in _CONTAINERS:
        return _CONTAINERS[c]
    if k in _CODECS:
        return _CODECS[k]
    if k.startswith("pcm_"):
        return "wav"
    if k.startswith("dsd_"):
        return "dsf"
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
