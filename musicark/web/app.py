"""The web application: pages, the JSON API, static files, security headers.

Read-only by construction: every route is GET, databases are opened `mode=ro`, the search
index is opened for reading, and no path from a request reaches the filesystem (static
files are read from the package once, at start, and looked up by name in memory).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import AsyncIterator, Sequence
from importlib import resources
from typing import Any
from urllib.parse import quote

import anyio.to_thread
import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from musicark.archive import Archive
from musicark.errors import MusicarkError, QueryError, SearchError
from musicark.search.query import TrackIndex
from musicark.web.data import ArchiveReader
from musicark.web.params import NotFound

SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        b" media-src 'self';"
        b" connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
THREADS = 6  # request threads per server process
STATIC_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
}


class JSON(JSONResponse):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


class SecurityHeaders:
    """Adds the security headers to every response (a plain ASGI middleware: cheap)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RelativeSlashRedirect:
    """`/search/` -> `/search`, with a relative Location (never built from the Host header),
    and only when the path without its slash is one of our routes."""

    def __init__(self, app: ASGIApp, routes: list[BaseRoute]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and len(path) > 1 and path.endswith("/"):
            bare = path.rstrip("/")
            other = {**scope, "path": bare}
            if (
                bare.startswith("/")
                and not bare.startswith("//")
                and any(route.matches(other)[0] == Match.FULL for route in self.routes)
            ):
                query = scope.get("query_string", b"").decode("latin-1")
                location = quote(bare, safe="/:@!$&'()*+,;=-._~") + (f"?{query}" if query else "")
                await Response(status_code=308, headers={"location": location})(
                    scope, receive, send
                )
                return
        await self.app(scope, receive, send)


class IndexHolder:
    """The search index, opened on first use and again after it is (re)built."""

    def __init__(self, archive: Archive) -> None:
        self.archive = archive
        self._index: TrackIndex | None = None
        self._lock = threading.Lock()

    def get(self) -> TrackIndex:
        if self._index is None:
            with self._lock:
                if self._index is None:
                    self._index = TrackIndex.open(self.archive)  # SearchError if none yet
        return self._index


def load_static() -> dict[str, tuple[bytes, str]]:
    files: dict[str, tuple[bytes, str]] = {}
    folder = resources.files("musicark.web").joinpath("static")
    for entry in folder.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
        if entry.is_file() and suffix in STATIC_TYPES:
            files[entry.name] = (entry.read_bytes(), STATIC_TYPES[suffix])
    return files


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def create_app(
    archive: Archive,
    *,
    audio: bool = True,
    threads: int = THREADS,
    allowed_hosts: Sequence[str] | None = None,
) -> Starlette:
    """The ASGI application serving `archive` read-only; `audio=False` serves no audio;
    `allowed_hosts` (host names, `*.example.org`, or `*`) refuses other `Host` headers (400).

    Handlers are plain functions: Starlette runs them in its thread pool, so a slow SQLite
    or tantivy call holds one thread, never the event loop (each thread has its own
    read-only connections, see `ArchiveReader`).
    """
    from musicark.web import api, media, pages

    static = load_static()

    async def static_file(request: Request) -> Response:  # memory only: on the event loop
        found = static.get(request.path_params["name"])
        if found is None:
            raise NotFound("no such static file")
        body, media_type = found
        return Response(body, media_type=media_type, headers={"cache-control": "max-age=3600"})

    async def on_query_error(request: Request, exc: Exception) -> Response:
        return _error(request, 400, str(exc))

    async def on_not_found(request: Request, exc: Exception) -> Response:
        return _error(request, 404, str(exc) or "not found")

    async def on_search_error(request: Request, exc: Exception) -> Response:
        return _error(request, 503, str(exc))

    async def on_error(request: Request, exc: Exception) -> Response:
        return _error(request, 500, str(exc))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _error(request, exc.status_code, exc.detail)

    routes = [
        *pages.routes(),
        *api.routes(),
        *media.routes(),
        Route("/static/{name}", static_file, methods=["GET"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Few threads, served in order: with dozens, every thread that gives up the GIL
        # waits behind all the others, and a loaded server's slowest answers take seconds.
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = threads
        yield

    app = Starlette(
        lifespan=lifespan,
        routes=routes,
        exception_handlers={
            QueryError: on_query_error,
            NotFound: on_not_found,
            SearchError: on_search_error,
            MusicarkError: on_error,
            HTTPException: on_http,
        },
    )
    app.router.redirect_slashes = False  # it copies the Host header into Location
    app.state.archive = archive
    app.state.reader = ArchiveReader(archive)
    app.state.index = IndexHolder(archive)
    app.state.audio = audio
    app.add_middleware(RelativeSlashRedirect, routes=app.router.routes)
    if allowed_hosts is not None:  # a page bound to 127.0.0.1 is no one else's (DNS rebinding)
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    app.add_middleware(SecurityHeaders)
    return app


def app_from_env() -> Starlette:
    """The application for the archive named by $MUSICARK_ARCHIVE (for uvicorn workers)."""
    from musicark.archive import open_archive
    from musicark.web.server import AUDIO_ENV, HOSTS_ENV, THREADS_ENV

    hosts = os.environ.get(HOSTS_ENV)
    return create_app(
        open_archive(None),
        audio=os.environ.get(AUDIO_ENV, "1") != "0",
        threads=int(os.environ.get(THREADS_ENV, THREADS)),
        allowed_hosts=hosts.split(",") if hosts else None,
    )


def _error(request: Request, status: int, message: str) -> Response:
    if is_api(request):
        return JSON({"error": message, "status": status}, status_code=status)
    from musicark.web.pages import render

    return HTMLResponse(render("error.html", status=status, message=message), status_code=status)
