"""The JSON API under /api/: the same data as the pages, read-only.

Identifiers are strings of decimal digits (track ids are 63-bit; JavaScript numbers are
not). The OpenAPI description at /api/openapi.json is built from `OPENAPI` below.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from musicark.archive import Archive
from musicark.search.analysis import has_text
from musicark.search.query import MAX_LIMIT, MAX_OFFSET
from musicark.web.coverage import coverage_data
from musicark.web.data import ArchiveReader, sid
from musicark.web.media import with_audio, with_held, with_links
from musicark.web.params import NotFound, parse_id, parse_int, parse_query_text


def reader(request: Request) -> ArchiveReader:
    r: ArchiveReader = request.app.state.reader
    return r


def run_search(request: Request, *, limit: int, offset: int, q: str) -> dict[str, Any]:
    if not has_text(q):  # spaces or control characters only: a query that matches nothing
        return {
            "query": "",
            "mode": "text",
            "total": 0,
            "total_exact": True,
            "offset": offset,
            "limit": limit,
            "hits": [],
        }
    results = request.app.state.index.get().search(q, limit=limit, offset=offset)
    data = results.to_dict()
    for hit in data["hits"]:
        hit["id"] = sid(hit["id"])
        hit["album_id"] = sid(hit["album_id"])
    with_held(reader(request), data["hits"], enabled=request.app.state.audio)
    return data


def api_search(request: Request) -> Response:
    from musicark.web.app import JSON

    q = parse_query_text(request.query_params, required=True)
    limit = parse_int(request.query_params, "limit", default=20, low=1, high=MAX_LIMIT)
    offset = parse_int(request.query_params, "offset", default=0, low=0, high=MAX_OFFSET)
    return JSON(run_search(request, limit=limit, offset=offset, q=q))


def entity(request: Request, kind: str) -> dict[str, Any]:
    """The track, album or artist the path names, with what is held and playable."""
    value = parse_id(request.path_params[f"{kind}_id"], what=kind)
    r = reader(request)
    found = getattr(r, kind)(value)
    if found is None:
        raise NotFound(f"no {kind} with id {value} in the catalogue")
    found = dict(found)
    audio = request.app.state.audio
    if kind == "track":
        with_audio(found, enabled=audio)
        with_held(r, found["same_isrc"], enabled=audio)
    else:
        with_held(r, found["tracks"], enabled=audio)
    return found


def api_track(request: Request) -> Response:
    from musicark.web.app import JSON

    return JSON(entity(request, "track"))


def api_album(request: Request) -> Response:
    from musicark.web.app import JSON

    return JSON(entity(request, "album"))


def api_artist(request: Request) -> Response:
    from musicark.web.app import JSON

    return JSON(entity(request, "artist"))


def api_coverage(request: Request) -> Response:
    from musicark.web.app import JSON

    return JSON(coverage_data(request.app.state.archive, reader(request)))


def api_releases(request: Request) -> Response:
    from musicark.web.app import JSON

    return JSON(with_links(reader(request).releases()))


def api_health(request: Request) -> Response:
    from musicark.web.app import JSON

    return JSON(health_data(request.app.state.archive, reader(request)))


def health_data(archive: Archive, r: ArchiveReader) -> dict[str, Any]:
    """The last audit, the last full audit, how fresh verification is, what is held."""
    from musicark.store.fixity import verification_status

    return {
        "audit": r.last_audit(),
        "full_audit": r.last_audit(level="full"),
        "verification": r.cached("verification", lambda: verification_status(archive)),
        "holdings": r.holdings(),
    }


async def api_openapi(request: Request) -> Response:  # memory only: on the event loop
    from musicark.web.app import JSON

    return JSON(OPENAPI)


def routes() -> list[Route]:
    return [
        Route("/api/search", api_search, methods=["GET"]),
        Route("/api/tracks/{track_id}", api_track, methods=["GET"]),
        Route("/api/albums/{album_id}", api_album, methods=["GET"]),
        Route("/api/artists/{artist_id}", api_artist, methods=["GET"]),
        Route("/api/coverage", api_coverage, methods=["GET"]),
        Route("/api/releases", api_releases, methods=["GET"]),
        Route("/api/health", api_health, methods=["GET"]),
        Route("/api/openapi.json", api_openapi, methods=["GET"]),
    ]


# ---------------------------------------------------------------- OpenAPI description

_ID = {"type": "string", "pattern": "^[0-9]{1,19}$"}
_STR = {"type": ["string", "null"]}
_INT = {"type": ["integer", "null"]}
_NUM = {"type": ["number", "null"]}
_BOOL = {"type": ["boolean", "null"]}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required or list(props)}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_ERROR = {
    "description": "Error",
    "content": {"application/json": {"schema": _ref("Error")}},
}


def _ok(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _id_param(name: str, what: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": f"The {what}'s catalogue id (decimal).",
        "schema": {"type": "string", "pattern": "^[0-9]{1,19}$"},
    }


_HELD = {
    "held": {"type": "boolean"},
    "release": _STR,
    "torrent": _STR,
    "audio_url": {
        "type": ["string", "null"],
        "description": "Where to play it (HTTP Range); null unless held and redistributable.",
    },
}
_CREDIT = _obj({"id": _ID, "name": {"type": "string"}, "role": _STR})
_TRACK_ITEM = _obj(
    {
        "id": _ID,
        "title": {"type": "string"},
        "artists": {"type": "array", "items": _CREDIT},
        "album_id": {"anyOf": [_ID, {"type": "null"}]},
        "album": _STR,
        "popularity": _INT,
        "duration_ms": _INT,
        "isrc": _STR,
        "track_number": _INT,
        "disc_number": _INT,
        "rights": _STR,
        **_HELD,
    }
)
_RENDITION = _obj(
    {
        "sha256": {"type": "string"},
        "size": _INT,
        "container": _STR,
        "codec": _STR,
        "bitrate": _INT,
        "sample_rate": _INT,
        "channels": _INT,
        "lossless": _BOOL,
        "duration_ms": _INT,
        "preferred": {"type": "boolean"},
        "preferred_reason": _STR,
        "match_method": _STR,
        "confidence": _NUM,
        "audio_url": _HELD["audio_url"],
        "media_type": {"type": "string"},
        "not_playable": {**_STR, "description": "Why it cannot be played, if it cannot."},
    }
)
_LOCATION = _obj(
    {
        "path": _STR,
        "size": _INT,
        "sha256": _STR,
        "torrent": _STR,
        "release": _STR,
        "magnet": _STR,
        "infohash": _STR,
        "first_piece": _INT,
        "last_piece": _INT,
        "torrent_url": {**_STR, "description": "Where to download the .torrent"},
    }
)

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "musicark archive API",
        "version": "1",
        "description": "Read-only access to a musicark archive: search, tracks, albums, artists,"
        " coverage, releases and health. Ids are decimal strings.",
    },
    "paths": {
        "/api/search": {
            "get": {
                "summary": "Search tracks by words or identifiers (ISRC, UPC, external ids)",
                "operationId": "search",
                "parameters": [
                    {
                        "name": "q",
                        "in": "query",
                        "required": True,
                        "description": "Words (the last one matches as a prefix) or an"
                        " identifier; 1-256 characters. A query of spaces or control characters"
                        " only is answered with no hits.",
                        "schema": {"type": "string", "minLength": 1, "maxLength": 256},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_LIMIT,
                            "default": 20,
                        },
                    },
                    {
                        "name": "offset",
                        "in": "query",
                        "required": False,
                        "schema": {
                            "type": "integer",
                            "minimum": 0,
                            "maximum": MAX_OFFSET,
                            "default": 0,
                        },
                    },
                ],
                "responses": {
                    "200": _ok(_ref("SearchResults"), "Ranked results"),
                    "400": _ERROR,
                    "503": _ERROR,
                },
            }
        },
        "/api/tracks/{track_id}": {
            "get": {
                "summary": "A track: metadata, renditions held, duplicates and release locations",
                "operationId": "track",
                "parameters": [_id_param("track_id", "track")],
                "responses": {"200": _ok(_ref("Track"), "The track"), "400": _ERROR, "404": _ERROR},
            }
        },
        "/api/albums/{album_id}": {
            "get": {
                "summary": "An album and its tracks",
                "operationId": "album",
                "parameters": [_id_param("album_id", "album")],
                "responses": {"200": _ok(_ref("Album"), "The album"), "400": _ERROR, "404": _ERROR},
            }
        },
        "/api/artists/{artist_id}": {
            "get": {
                "summary": "An artist, their albums and most popular tracks",
                "operationId": "artist",
                "parameters": [_id_param("artist_id", "artist")],
                "responses": {
                    "200": _ok(_ref("Artist"), "The artist"),
                    "400": _ERROR,
                    "404": _ERROR,
                },
            }
        },
        "/api/coverage": {
            "get": {
                "summary": "The plan's coverage curve and the share of listens and tracks held",
                "operationId": "coverage",
                "responses": {"200": _ok({"type": "object"}, "Coverage (plan may be null)")},
            }
        },
        "/api/releases": {
            "get": {
                "summary": "Releases and torrents with their swarm health",
                "operationId": "releases",
                "responses": {"200": _ok(_ref("Releases"), "Releases and torrents")},
            }
        },
        "/api/health": {
            "get": {
                "summary": "The last audit's result and what the store holds",
                "operationId": "health",
                "responses": {"200": _ok(_ref("Health"), "Archive health")},
            }
        },
    },
    "components": {
        "schemas": {
            "Error": _obj({"error": {"type": "string"}, "status": {"type": "integer"}}),
            "SearchHit": _obj(
                {
                    "id": _ID,
                    "title": {"type": "string"},
                    "artists": {"type": "string"},
                    "album": {"type": "string"},
                    "album_id": {"anyOf": [_ID, {"type": "null"}]},
                    "popularity": {"type": "integer"},
                    "isrc": _STR,
                    "duration_ms": _INT,
                    "score": {"type": "number"},
                    **_HELD,
                }
            ),
            "SearchResults": _obj(
                {
                    "query": {"type": "string"},
                    "mode": {"type": "string", "enum": ["id", "text"]},
                    "total": {"type": "integer", "minimum": 0},
                    # false: at least `total` match (counted up to what paging needs)
                    "total_exact": {"type": "boolean"},
                    "offset": {"type": "integer", "minimum": 0},
                    "limit": {"type": "integer", "minimum": 1},
                    "hits": {"type": "array", "items": _ref("SearchHit"), "maxItems": MAX_LIMIT},
                }
            ),
            "Track": _obj(
                {
                    "id": _ID,
                    "title": {"type": "string"},
                    "source": _STR,
                    "external_id": _STR,
                    "isrc": _STR,
                    "duration_ms": _INT,
                    "popularity": _INT,
                    "play_count": _INT,
                    "track_number": _INT,
                    "disc_number": _INT,
                    "explicit": _BOOL,
                    "rights": _STR,
                    "license_url": _STR,
                    "genres": {"type": "array", "items": {"type": "string"}},
                    "external_ids": {"type": "object", "additionalProperties": {"type": "string"}},
                    "album": {"anyOf": [{"type": "object"}, {"type": "null"}]},
                    "artists": {"type": "array", "items": _CREDIT},
                    "same_isrc": {"type": "array", "items": _TRACK_ITEM},
                    "renditions": {"type": "array", "items": _RENDITION},
                    "duplicates": {"type": "array", "items": {"type": "object"}},
                    "held": {"type": "boolean"},
                    "locations": {"type": "array", "items": _LOCATION},
                    "released": {"type": "boolean"},
                }
            ),
            "Album": _obj(
                {
                    "id": _ID,
                    "title": _STR,
                    "album_type": _STR,
                    "upc": _STR,
                    "label": _STR,
                    "release_date": _STR,
                    "popularity": _INT,
                    "total_tracks": _INT,
                    "tracks": {"type": "array", "items": _TRACK_ITEM},
                }
            ),
            "Artist": _obj(
                {
                    "id": _ID,
                    "name": _STR,
                    "popularity": _INT,
                    "followers": _INT,
                    "albums": {"type": "array", "items": {"type": "object"}},
                    "tracks": {"type": "array", "items": _TRACK_ITEM},
                }
            ),
            "Releases": _obj(
                {
                    "releases": {"type": "array", "items": {"type": "object"}},
                    "torrents": {"type": "array", "items": {"type": "object"}},
                }
            ),
            "Health": _obj(
                {
                    "audit": {"anyOf": [{"type": "object"}, {"type": "null"}]},
                    "full_audit": {"anyOf": [{"type": "object"}, {"type": "null"}]},
                    "verification": {"type": "object"},
                    "holdings": {"type": "object"},
                }
            ),
        }
    },
}
