"""HTML pages, rendered with Jinja2 (autoescape on for every template)."""

from __future__ import annotations

import math
from typing import Any

from jinja2 import Environment, PackageLoader
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from musicark.errors import SearchError
from musicark.search.query import MAX_OFFSET
from musicark.units import format_size
from musicark.web.api import entity, health_data, reader, run_search
from musicark.web.coverage import coverage_data, svg_points, svg_x
from musicark.web.media import with_links
from musicark.web.params import parse_int, parse_query_text

PAGE_SIZE = 20
MAX_PAGE = MAX_OFFSET // PAGE_SIZE + 1


def _duration(ms: Any) -> str:
    if not isinstance(ms, int):
        return "–"
    s = ms // 1000
    return f"{s // 60}:{s % 60:02d}"


def _size(n: Any) -> str:
    return format_size(n) if isinstance(n, int | float) else "–"


def _bitrate(n: Any) -> str:
    return f"{round(n / 1000)} kbit/s" if isinstance(n, int | float) and n else "–"


def _count(n: Any) -> str:
    return f"{int(n):,}" if isinstance(n, int | float) and math.isfinite(n) else "–"


def _percent(x: Any) -> str:
    return f"{x * 100:.1f} %" if isinstance(x, int | float) and math.isfinite(x) else "–"


_env = Environment(
    loader=PackageLoader("musicark.web", "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters.update(
    duration=_duration, size=_size, bitrate=_bitrate, percent=_percent, count=_count
)


def render(name: str, **context: Any) -> str:
    return _env.get_template(name).render(**context)


def page(name: str, status: int = 200, **context: Any) -> Response:
    return HTMLResponse(render(name, **context), status_code=status)


def search_page(request: Request) -> Response:
    q = parse_query_text(request.query_params, required=False)
    number = parse_int(request.query_params, "page", default=1, low=1, high=MAX_PAGE)
    results, no_index = None, None
    if q:
        try:
            results = run_search(request, limit=PAGE_SIZE, offset=(number - 1) * PAGE_SIZE, q=q)
        except SearchError as exc:
            if exc.__class__ is not SearchError:
                raise  # QueryError: a 400
            no_index = str(exc)
    pages = 0
    if results:
        pages = min(MAX_PAGE, math.ceil(results["total"] / PAGE_SIZE))
    return page(
        "search.html",
        q=q,
        results=results,
        page_number=number,
        pages=pages,
        no_index=no_index,
        page_size=PAGE_SIZE,
    )


def track_page(request: Request) -> Response:
    return page("track.html", track=entity(request, "track"), audio=request.app.state.audio)


def album_page(request: Request) -> Response:
    return page("album.html", album=entity(request, "album"))


def artist_page(request: Request) -> Response:
    return page("artist.html", artist=entity(request, "artist"))


def coverage_page(request: Request) -> Response:
    data = coverage_data(request.app.state.archive, reader(request))
    plan = data["plan"]
    curve = plan["curve"] if plan else []
    view = plan["overview"] if plan else {}
    top = max((p["bytes"] for p in curve), default=0)
    step = max(1, len(curve) // 10)
    return page(
        "coverage.html",
        data=data,
        plan=plan,
        listens_points=svg_points(curve, "listens_share"),
        tracks_points=svg_points(curve, "tracks_share"),
        figures=curve[::step] + ([curve[-1]] if curve and (len(curve) - 1) % step else []),
        top_bytes=top,
        view=view,
        budget_x=svg_x(view.get("selected_bytes"), curve),
        knee_x=svg_x((view.get("knee") or {}).get("bytes"), curve),
    )


def releases_page(request: Request) -> Response:
    return page("releases.html", data=with_links(reader(request).releases()))


def health_page(request: Request) -> Response:
    r = reader(request)
    return page("health.html", **health_data(request.app.state.archive, r))


def routes() -> list[Route]:
    return [
        Route("/", search_page, methods=["GET"]),
        Route("/search", search_page, methods=["GET"]),
        Route("/tracks/{track_id}", track_page, methods=["GET"]),
        Route("/albums/{album_id}", album_page, methods=["GET"]),
        Route("/artists/{artist_id}", artist_page, methods=["GET"]),
        Route("/coverage", coverage_page, methods=["GET"]),
        Route("/releases", releases_page, methods=["GET"]),
        Route("/health", health_page, methods=["GET"]),
    ]
