"""Files the web UI hands out: held audio (to play) and a release's .torrent and torrents.json.

Audio: `/tracks/{id}/audio/{sha256}` serves a rendition of that track from the store, with
HTTP Range (206), `ETag` = the sha256 (content-addressed: cached for a year) and the
container's media type, only when the track's rights allow redistribution; a dark
rendition answers 403 with the reason, and nothing is served with `serve --no-audio`.

Release files are looked up by name in the release tables, and the path found there must
lie inside that release's folder: no part of a request's path reaches the filesystem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from musicark.catalog.rights import REDISTRIBUTABLE
from musicark.store.blobs import blob_path, is_sha256
from musicark.web.data import ArchiveReader
from musicark.web.params import NotFound, parse_id

AUDIO_CACHE = "public, max-age=31536000, immutable"
_MEDIA_TYPES = {
    "ogg": "audio/ogg",
    "opus": "audio/ogg",
    "flac": "audio/flac",
    "mp3": "audio/mpeg",
    "mov": "audio/mp4",
    "mp4": "audio/mp4",
    "m4a": "audio/mp4",
    "wav": "audio/wav",
    "matroska": "audio/webm",
    "webm": "audio/webm",
    "aiff": "audio/aiff",
}
_TORRENT_TYPE = "application/x-bittorrent"


def media_type(container: str | None, codec: str | None) -> str:
    """The Content-Type of a stored file from the container the probe named."""
    name = (container or "").split(",", 1)[0].strip().lower()
    if name in _MEDIA_TYPES:
        return _MEDIA_TYPES[name]
    return _MEDIA_TYPES.get((codec or "").lower(), "application/octet-stream")


def audio_url(track_id: Any, sha256: str) -> str:
    return f"/tracks/{track_id}/audio/{sha256}"


def dark_reason(rights: str | None) -> str | None:
    """Why a track's audio may not be served (None when its rights allow it)."""
    if rights in REDISTRIBUTABLE:
        return None
    return (
        f"the track's rights ({rights or 'not recorded'}) do not allow redistribution;"
        " it is kept in the dark archive"
    )


def with_audio(track: dict[str, Any], *, enabled: bool) -> dict[str, Any]:
    """`track` with every rendition's `audio_url` (None when not playable) and the reason,
    and every location's `torrent_url`."""
    for loc in track.get("locations", []):
        ok = loc.get("release") and loc.get("torrent")
        loc["torrent_url"] = torrent_url(loc["release"], loc["torrent"]) if ok else None
    reason = dark_reason(track.get("rights")) if enabled else "audio is turned off on this server"
    for r in track.get("renditions", []):
        r["audio_url"] = None if reason else audio_url(track["id"], r["sha256"])
        r["media_type"] = media_type(r.get("container"), r.get("codec"))
        r["not_playable"] = reason
    return track


def with_held(
    reader: ArchiveReader, tracks: list[dict[str, Any]], *, enabled: bool
) -> list[dict[str, Any]]:
    """Each listed track (or search hit) with `held` (bool), `release`, `torrent` and
    `audio_url` (None unless held, redistributable and audio is on)."""
    held = reader.held([t.get("id") for t in tracks])
    rights = reader.rights_of([int(k) for k in held]) if held else {}
    for t in tracks:
        entry = held.get(str(t.get("id")))
        t["held"] = entry is not None
        t["release"] = entry.get("release") if entry else None
        t["torrent"] = entry.get("torrent") if entry else None
        playable = entry is not None and enabled and dark_reason(rights.get(str(t["id"]))) is None
        t["audio_url"] = audio_url(t["id"], entry["sha256"]) if entry and playable else None
    return tracks


def torrent_url(release: str, name: str) -> str:
    return f"/releases/{quote(release, safe='')}/torrents/{quote(name, safe='')}.torrent"


def with_links(data: dict[str, Any]) -> dict[str, Any]:
    """The releases listing with download URLs: each torrent's .torrent, each published
    release's torrents.json, release.json and newest metadata torrent."""
    for t in data["torrents"]:
        ok = t.get("release") and t.get("name")
        t["torrent_url"] = torrent_url(t["release"], t["name"]) if ok else None
    for r in data["releases"]:
        name = r.get("name")
        mine = [t for t in data["torrents"] if t.get("release") == name]
        audio = [t for t in mine if t.get("kind") != "metadata"]
        meta = [t for t in mine if t.get("kind") == "metadata" and not t.get("obsolete")]
        r["torrents"] = len(audio)
        r["files"] = sum(t.get("file_count") or 0 for t in audio)
        r["data_size"] = sum(t.get("data_size") or 0 for t in audio)
        r["metadata"] = meta[-1]["name"] if meta else None
        r["metadata_torrent_url"] = meta[-1]["torrent_url"] if meta else None
        r["metadata_magnet"] = meta[-1]["magnet"] if meta else None
        base = f"/releases/{quote(str(name), safe='')}"
        r["torrents_json_url"] = f"{base}/torrents.json" if meta else None
        r["release_json_url"] = f"{base}/release.json" if meta else None
    return data


def _reader(request: Request) -> ArchiveReader:
    reader: ArchiveReader = request.app.state.reader
    return reader


def track_audio(request: Request) -> Response:
    if not request.app.state.audio:
        raise NotFound("audio is turned off on this server")
    track_id = parse_id(request.path_params["track_id"], what="track")
    sha = request.path_params["sha256"]
    if not is_sha256(sha):
        raise NotFound("no such rendition")
    reader = _reader(request)
    rendition = reader.rendition(track_id, sha)
    if rendition is None:
        raise NotFound(f"track {track_id} has no rendition {sha}")
    reason = dark_reason(reader.track_rights(track_id))
    if reason:
        raise HTTPException(403, reason)
    archive = request.app.state.archive
    path = blob_path(archive, sha)
    try:
        stat = path.stat()
    except OSError:
        raise NotFound("the file is not in the store (see `musicark audit`)") from None
    etag = f'"{sha}"'
    headers = {"etag": etag, "cache-control": AUDIO_CACHE}
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    return FileResponse(
        path,
        stat_result=stat,
        media_type=media_type(rendition.get("container"), rendition.get("codec")),
        headers=headers,
    )


def _inside(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except OSError:
        return False


def _release_file(request: Request, relative: str | None, release: str) -> Path:
    """A file named by the release tables, if it lies inside the release's folder."""
    archive = request.app.state.archive
    folder = archive.releases_dir / release
    if not relative:
        raise NotFound("no such file in this release")
    path = archive.root / relative
    if not _inside(path, folder) or not path.is_file():
        raise NotFound("no such file in this release")
    return path


def torrent_file(request: Request) -> Response:
    release, name = request.path_params["release"], request.path_params["name"]
    torrent = _reader(request).torrent_named(name)
    if torrent is None or torrent.get("release") != release:
        raise NotFound(f"release {release[:100]!r} has no torrent {name[:200]!r}")
    path = _release_file(request, torrent.get("torrent_path"), release)
    return FileResponse(
        path,
        media_type=_TORRENT_TYPE,
        headers={
            "content-disposition": f"attachment; filename*=UTF-8''{quote(name)}.torrent",
            "cache-control": "public, max-age=300",
        },
    )


def release_metadata_file(request: Request) -> Response:
    """`torrents.json` or `release.json` of the release's latest metadata folder."""
    release, file = request.path_params["release"], request.path_params["file"]
    if file not in ("torrents.json", "release.json"):
        raise NotFound("no such file in this release")
    meta = _reader(request).latest_metadata(release)
    if meta is None:
        raise NotFound(f"release {release[:100]!r} has not been published yet")
    data = meta.get("data_path")
    path = _release_file(request, f"{data}/{file}" if data else None, release)
    return FileResponse(path, media_type="application/json", headers={"cache-control": "no-cache"})


def routes() -> list[Route]:
    return [
        Route("/tracks/{track_id}/audio/{sha256}", track_audio, methods=["GET", "HEAD"]),
        Route("/releases/{release}/torrents/{name}.torrent", torrent_file, methods=["GET"]),
        Route("/releases/{release}/{file}", release_metadata_file, methods=["GET"]),
    ]
