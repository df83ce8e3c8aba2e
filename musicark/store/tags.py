"""Tags with mutagen: title, artists, album, ISRC, MusicBrainz ids, track number, ...

Every format is read through mutagen's "easy" interface, so ID3, Vorbis comments and MP4
atoms come back under one set of lowercase keys. Values are lists of strings, each cut
to `MAX_VALUE` characters (a 10 MB tag does not end up in the database).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

MAX_VALUE = 1000
MAX_VALUES = 20
KEYS = (
    "title",
    "artist",
    "artists",
    "albumartist",
    "album",
    "isrc",
    "musicbrainz_trackid",
    "musicbrainz_releasetrackid",
    "musicbrainz_albumid",
    "musicbrainz_artistid",
    "tracknumber",
    "discnumber",
    "date",
    "genre",
    "acoustid_id",
    "barcode",
    "label",
    "organization",
)
_registered = False
MAX_ID3 = 1 << 20
# FFmpeg's metadata keys -> ours
_FFMPEG_KEYS = {
    "title": "title",
    "artist": "artist",
    "album": "album",
    "album_artist": "albumartist",
    "tsrc": "isrc",
    "isrc": "isrc",
    "track": "tracknumber",
    "disc": "discnumber",
    "date": "date",
    "genre": "genre",
    "musicbrainz_trackid": "musicbrainz_trackid",
    "musicbrainz track id": "musicbrainz_trackid",
    "musicbrainz_albumid": "musicbrainz_albumid",
    "musicbrainz album id": "musicbrainz_albumid",
    "acoustid id": "acoustid_id",
}


def _id3_size(path: Path, head: bytes | None = None) -> int:
    """Size of a leading ID3v2 tag (0 when there is none)."""
    if head is None or len(head) < 10:
        with open(path, "rb") as f:
            head = f.read(10)
    if len(head) < 10 or not head.startswith(b"ID3"):
        return 0
    b = head[6:10]
    return (b[0] & 0x7F) << 21 | (b[1] & 0x7F) << 14 | (b[2] & 0x7F) << 7 | (b[3] & 0x7F)


def _tags_from_ffmpeg(path: Path) -> dict[str, list[str]]:
    import av

    out: dict[str, list[str]] = {}
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            metadata = dict(container.metadata)
            for stream in container.streams.audio[:1]:
                metadata.update(stream.metadata)
    except (av.error.FFmpegError, UnicodeDecodeError):
        return out
    for key, value in metadata.items():
        ours = _FFMPEG_KEYS.get(key.lower())
        if ours and str(value).strip():
            out[ours] = [str(value)[:MAX_VALUE]]
    return out


def _register_mp4_keys() -> None:
    global _registered
    from mutagen.easymp4 import EasyMP4Tags

    for key, name in (("isrc", "ISRC"), ("barcode", "BARCODE"), ("label", "LABEL")):
        if key not in EasyMP4Tags.Get:
            EasyMP4Tags.RegisterFreeformKey(key, name)
    _registered = True


def _mutagen_class(container: str | None, codec: str | None) -> Any:
    """The mutagen class for a format PyAV identified (skips mutagen's format scoring)."""
    if container == "mp3":
        from mutagen.id3 import ID3

        return ID3  # the tag alone: no scan of the MPEG frames
    if container == "flac":
        from mutagen.flac import FLAC

        return FLAC
    if container == "ogg" and codec == "vorbis":
        from mutagen.oggvorbis import OggVorbis

        return OggVorbis
    if container == "ogg" and codec == "opus":
        from mutagen.oggopus import OggOpus

        return OggOpus
    if container and container.startswith("mov"):
        from mutagen.easymp4 import EasyMP4

        return EasyMP4
    return None


def read_tags(
    path: Path,
    *,
    container: str | None = None,
    codec: str | None = None,
    head: bytes | None = None,
) -> tuple[dict[str, list[str]], str | None]:
    """(tags, problem): the known tags of `path`; problem says why none could be read.

    `container` and `codec` (PyAV's names, when known) pick mutagen's class directly.
    """
    import mutagen

    if not _registered:
        _register_mp4_keys()
    big = _id3_size(path, head)
    if big > MAX_ID3:
        # mutagen decodes UTF-16 text frames a character at a time (a minute for 10 MB)
        tags = _tags_from_ffmpeg(path)
        return tags, f"ID3 tag of {big / 1e6:.1f} MB read by FFmpeg"
    try:
        cls = _mutagen_class(container, codec)
        f = None
        if cls is not None:
            try:
                f = cls(str(path))
            except mutagen.MutagenError:
                f = None
        if f is None:
            f = mutagen.File(str(path), easy=True)
    except mutagen.MutagenError as exc:
        return {}, f"tags unreadable: {exc}"
    except (ValueError, KeyError, IndexError, OverflowError, EOFError, UnicodeError) as exc:
        return {}, f"tags unreadable: {type(exc).__name__}"
    found = getattr(f, "tags", f)  # an ID3 is itself the tags
    if f is None or found is None:
        return {}, None
    out: dict[str, list[str]] = {}
    try:
        if _is_id3(found):
            present = _from_id3(found)
        elif hasattr(found, "as_dict"):  # Vorbis comments: one pass over the list
            present = found.as_dict()
        else:
            wanted = set(KEYS)
            present = {k: found[k] for k in found if k in wanted}
    except (ValueError, KeyError, UnicodeError):
        return {}, "tags unreadable"
    for key in KEYS:
        values = present.get(key)
        if not values:
            continue
        if isinstance(values, str):
            values = [values]
        clean = [str(v)[:MAX_VALUE] for v in list(values)[:MAX_VALUES] if str(v).strip()]
        if clean:
            out[key] = clean
    return out, None


_ID3_TEXT = {
    "TIT2": "title",
    "TPE1": "artist",
    "TPE2": "albumartist",
    "TALB": "album",
    "TSRC": "isrc",
    "TRCK": "tracknumber",
    "TPOS": "discnumber",
    "TDRC": "date",
    "TCON": "genre",
    "TPUB": "label",
}
_ID3_TXXX = {
    "musicbrainz release track id": "musicbrainz_releasetrackid",
    "musicbrainz album id": "musicbrainz_albumid",
    "musicbrainz artist id": "musicbrainz_artistid",
    "acoustid id": "acoustid_id",
    "barcode": "barcode",
    "artists": "artists",
}


def _is_id3(tags: Any) -> bool:
    from mutagen.id3 import ID3

    return isinstance(tags, ID3)


def _from_id3(tags: Any) -> dict[str, list[str]]:
    """Our keys from ID3 frames (as EasyID3 maps them, without its per-key lookups)."""
    out: dict[str, list[str]] = {}
    for frame in tags.values():
        fid = frame.FrameID
        if fid in _ID3_TEXT:
            out.setdefault(_ID3_TEXT[fid], []).extend(str(t) for t in frame.text)
        elif fid == "TXXX":
            key = _ID3_TXXX.get(frame.desc.lower())
            if key:
                out.setdefault(key, []).extend(str(t) for t in frame.text)
        elif fid == "UFID" and frame.owner == "http://musicbrainz.org":
            out["musicbrainz_trackid"] = [frame.data.decode("ascii", "replace")]
    return out


def first(tags: dict[str, list[str]], key: str) -> str | None:
    values = tags.get(key)
    return values[0].strip() if values else None


def artists(tags: dict[str, list[str]]) -> list[str]:
    """Artist names from `artists` (multi-valued) or `artist` (maybe joined with ; or /)."""
    names = list(tags.get("artists") or tags.get("artist") or [])
    out: list[str] = []
    for name in names:
        for part in name.replace(" / ", ";").split(";"):
            if part.strip():
                out.append(part.strip())
    return out


def track_number(tags: dict[str, list[str]]) -> int | None:
    value = first(tags, "tracknumber")
    if not value:
        return None
    head = value.split("/")[0].strip()
    return int(head) if head.isdigit() else None
