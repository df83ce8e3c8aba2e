"""Tags with mutagen: title, artists, album, ISRC, MusicBrainz ids, track number, ...

Every format is read through mutagen's "easy" interface, so ID3, Vorbis comments and MP4
atoms come back under one set of lowercase keys. Values are lists of strings, each cut
to `MAX_VALUE` characters (a 10 MB tag does not end up in the database).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import IO, Any

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

    for key, name in (
        ("isrc", "ISRC"),
        ("barcode", "BARCODE"),
        ("label", "LABEL"),
        ("acoustid_id", "Acoustid Id"),
        ("musicbrainz_releasetrackid", "MusicBrainz Release Track Id"),
        ("artists", "ARTISTS"),
    ):
        if key not in EasyMP4Tags.Get:
            EasyMP4Tags.RegisterFreeformKey(key, name)
    _registered = True


# PyAV's (container, codec) -> mutagen module and class: skips mutagen's format scoring
_CLASSES = {
    ("mp3", None): ("mutagen.id3", "ID3"),  # the tag alone: no scan of the MPEG frames
    ("flac", None): ("mutagen.flac", "FLAC"),
    ("ogg", "vorbis"): ("mutagen.oggvorbis", "OggVorbis"),
    ("ogg", "opus"): ("mutagen.oggopus", "OggOpus"),
    ("ogg", "flac"): ("mutagen.oggflac", "OggFLAC"),
    ("ogg", "speex"): ("mutagen.oggspeex", "OggSpeex"),
    ("mov", None): ("mutagen.easymp4", "EasyMP4"),
    ("asf", None): ("mutagen.asf", "ASF"),
    ("ape", None): ("mutagen.monkeysaudio", "MonkeysAudio"),
    ("wv", None): ("mutagen.wavpack", "WavPack"),
    ("mpc", None): ("mutagen.musepack", "Musepack"),
    ("mpc8", None): ("mutagen.musepack", "Musepack"),
    ("tak", None): ("mutagen.tak", "TAK"),
    ("tta", None): ("mutagen.trueaudio", "TrueAudio"),
    ("aiff", None): ("mutagen.aiff", "AIFF"),
    ("wav", None): ("mutagen.wave", "WAVE"),
    ("dsf", None): ("mutagen.dsf", "DSF"),
    ("iff", None): ("mutagen.dsdiff", "DSDIFF"),
}


def _mutagen_class(container: str | None, codec: str | None) -> Any:
    """The mutagen class for a format PyAV identified (None: let mutagen find out)."""
    if not container:
        return None
    name = "mov" if container.startswith("mov") else container
    found = _CLASSES.get((name, codec)) or _CLASSES.get((name, None))
    if found is None:
        return None
    module = __import__(found[0], fromlist=[found[1]])
    return getattr(module, found[1])


# Ogg codec -> its identification header's start and mutagen's comment reader
_OGG_COMMENTS = {
    "vorbis": (b"\x01vorbis", "mutagen.oggvorbis", "OggVCommentDict"),
    "opus": (b"OpusHead", "mutagen.oggopus", "OggOpusVComment"),
}
_MAX_BOS_PAGES = 32


def _source(path: Path, data: bytes | None) -> IO[bytes]:
    """The file's bytes to parse: in memory when the caller holds them (no re-read)."""
    return io.BytesIO(data) if data is not None else open(path, "rb")


def _ogg_comments(path: Path, codec: str, data: bytes | None = None) -> Any:
    """The comment header of an Ogg Vorbis/Opus stream, read from the first pages only
    (mutagen's file classes also seek to the last page for the length, not needed here)."""
    from types import SimpleNamespace

    from mutagen.ogg import OggPage

    marker, module, name = _OGG_COMMENTS[codec]
    reader = getattr(__import__(module, fromlist=[name]), name)
    with _source(path, data) as f:
        for _ in range(_MAX_BOS_PAGES):
            page = OggPage(f)
            if page.first and page.packets and page.packets[0].startswith(marker):
                return reader(f, SimpleNamespace(serial=page.serial))
    raise ValueError("no identification header in the first pages")


def _open_tags(
    path: Path, container: str | None, codec: str | None, data: bytes | None = None
) -> Any:
    """The file's tag object (mutagen's), or None."""
    import mutagen
    from mutagen.apev2 import APEv2

    if container == "ogg" and codec in _OGG_COMMENTS:
        try:
            return _ogg_comments(path, codec, data)
        except Exception:  # an odd stream layout: mutagen's full parse below
            pass
    cls = _mutagen_class(container, codec)
    f = None
    if cls is not None:
        try:
            f = cls(str(path)) if data is None else cls(io.BytesIO(data))
        except Exception:  # a header mutagen's parser refuses: let it score the file
            f = None
    if f is None:
        try:
            f = mutagen.File(str(path))
        except Exception:  # an audio header mutagen cannot parse: the tag may still be fine
            f = None
        if type(f).__name__ == "MP4":
            from mutagen.easymp4 import EasyMP4

            f = EasyMP4(str(path))
    found = f if f is None else getattr(f, "tags", f)  # an ID3 is itself the tags
    if found is None:
        try:  # an APEv2 tag at the end of a file whose header mutagen cannot parse
            return APEv2(str(path))
        except mutagen.MutagenError:
            return None
    return found


def read_tags(
    path: Path,
    *,
    container: str | None = None,
    codec: str | None = None,
    head: bytes | None = None,
    video: bool | None = None,
    data: bytes | None = None,
) -> tuple[dict[str, list[str]], str | None]:
    """(tags, problem): the known tags of `path`; problem says why none could be read.

    `container` and `codec` (PyAV's names, when known) pick mutagen's class directly;
    `video` False (PyAV found no video stream) skips looking for Theora comments;
    `data` (the file's bytes, when the caller holds them) is parsed instead of re-reading.
    Keys are compared case-insensitively (APEv2, ASF and Vorbis comments all allow
    any case); every format mutagen reads is covered (see docs/formats.md).
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
        found = _open_tags(path, container, codec, data)
        present = _present(found) if found is not None else {}
        if container == "ogg" and video is not False:
            for key, extra in _other_ogg_streams(path, data).items():
                present.setdefault(key, extra)
    except mutagen.MutagenError as exc:
        return {}, f"tags unreadable: {exc}"
    except Exception as exc:  # mutagen raises many kinds on hostile input
        return {}, f"tags unreadable: {type(exc).__name__}"
    out: dict[str, list[str]] = {}
    for key in KEYS:
        values = present.get(key)
        if not values:
            continue
        clean = [str(v)[:MAX_VALUE] for v in values[:MAX_VALUES] if str(v).strip()]
        if clean:
            out[key] = clean
    return out, None


def _present(found: Any) -> dict[str, list[str]]:
    """Our keys from any of mutagen's tag objects."""
    from mutagen.apev2 import APEv2
    from mutagen.asf import ASFTags

    if _is_id3(found):
        return _from_id3(found)
    if isinstance(found, APEv2):
        return _mapped(((k, list(v)) for k, v in found.items() if v.kind == 0), _APE)
    if isinstance(found, ASFTags):
        return _mapped(((k, [str(x) for x in v]) for k, v in found.as_dict().items()), _ASF)
    if hasattr(found, "as_dict"):  # Vorbis comments: one pass over the list
        return _mapped(found.as_dict().items(), {})
    return _mapped(((k, found[k]) for k in found), {})


def _mapped(items: Any, names: dict[str, str]) -> dict[str, list[str]]:
    """Lower-cased keys, renamed by `names`; values as lists of strings."""
    out: dict[str, list[str]] = {}
    for key, values in items:
        lower = str(key).lower()
        ours = names.get(lower, lower)
        if isinstance(values, str):
            values = [values]
        out.setdefault(ours, []).extend(str(v) for v in values)
    return out


def _other_ogg_streams(path: Path, data: bytes | None = None) -> dict[str, list[str]]:
    """Comments of a Theora stream beside the audio (video files often carry them there)."""
    if data is not None:
        start = data[:65536]
    else:
        with open(path, "rb") as f:
            start = f.read(65536)
    if b"\x80theora" not in start:
        return {}
    from mutagen.oggtheora import OggTheora

    tags = OggTheora(str(path)).tags
    return _mapped(tags.as_dict().items(), {}) if tags is not None else {}


# APEv2 keys (any case; used by APE, WavPack, Musepack, TAK, OptimFROG) -> ours
_APE = {
    "album artist": "albumartist",
    "track": "tracknumber",
    "disc": "discnumber",
    "year": "date",
    "musicbrainz_albumartistid": "musicbrainz_albumartistid",
}
# ASF (WMA) attribute names, lower-cased -> ours
_ASF = {
    "author": "artist",
    "wm/artists": "artists",
    "wm/albumtitle": "album",
    "wm/albumartist": "albumartist",
    "wm/isrc": "isrc",
    "wm/tracknumber": "tracknumber",
    "wm/partofset": "discnumber",
    "wm/year": "date",
    "wm/genre": "genre",
    "wm/barcode": "barcode",
    "wm/publisher": "label",
    "musicbrainz/track id": "musicbrainz_trackid",
    "musicbrainz/release track id": "musicbrainz_releasetrackid",
    "musicbrainz/album id": "musicbrainz_albumid",
    "musicbrainz/artist id": "musicbrainz_artistid",
    "acoustid/id": "acoustid_id",
}


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
