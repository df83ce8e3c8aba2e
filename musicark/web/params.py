"""Request parameters, checked and bounded: anything else is a 400 with a clear message."""

from __future__ import annotations

from starlette.datastructures import QueryParams

from musicark.errors import QueryError
from musicark.search.analysis import MAX_QUERY_CHARS, has_text

INT64_MAX = 2**63 - 1


class NotFound(Exception):
    """The thing asked for is not in the archive (a 404)."""


def parse_id(text: str, *, what: str) -> int:
    """A catalogue id from a URL: decimal digits, within int64."""
    if not text or len(text) > 19 or not text.isascii() or not text.isdigit():
        raise QueryError(f"{what} id {text[:40]!r} is not a number")
    value = int(text)
    if value > INT64_MAX:
        raise NotFound(f"no {what} with id {text} (ids are below 2**63)")
    return value


def parse_int(params: QueryParams, name: str, *, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if len(raw) > 12 or not raw.isascii() or not raw.lstrip("-").isdigit():
        raise QueryError(f"{name} must be a whole number between {low} and {high}")
    value = int(raw)
    if not low <= value <= high:
        raise QueryError(f"{name} must be between {low} and {high}, not {value}")
    return value


def parse_query_text(params: QueryParams, *, required: bool) -> str:
    """The `q` parameter. Required (the API): missing or "" is a 400, as the OpenAPI schema
    says (`minLength: 1`); any other text is a query, even one that can match nothing."""
    q = params.get("q")
    if q is None or q == "" or (not required and not has_text(q)):
        if required:
            raise QueryError("the q parameter (what to search for) is missing or empty")
        return ""
    if len(q) > MAX_QUERY_CHARS:
        raise QueryError(f"the query is {len(q)} characters long; the limit is {MAX_QUERY_CHARS}")
    try:
        q.encode("utf-8")
    except UnicodeEncodeError:
        raise QueryError("the query is not valid text") from None
    return q
