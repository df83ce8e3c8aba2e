"""The musicark interchange format: one track per row, artists and album inline.

See docs/catalogue-format.md. `SCHEMA` is the Arrow schema of a normalized batch; JSONL
and CSV rows go through `coerce_row`, which checks types and keeps unknown fields in
`extra`, so that an export gives back what came in.
"""

from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa

ARTIST_TYPE = pa.struct(
    [
        ("id", pa.string()),
        ("name", pa.string()),
        ("role", pa.string()),
        ("popularity", pa.int64()),
        ("followers", pa.int64()),
    ]
)
# An object of strings in JSONL; in Arrow a list of (key, value), which keeps order.
EXTERNAL_IDS_TYPE = pa.list_(pa.struct([("key", pa.string()), ("value", pa.string())]))

SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("id", pa.string()),
        ("title", pa.string()),
        ("isrc", pa.string()),
        ("duration_ms", pa.int64()),
        ("popularity", pa.int64()),
        ("play_count", pa.int64()),
        ("track_number", pa.int64()),
        ("disc_number", pa.int64()),
        ("explicit", pa.bool_()),
        ("rights", pa.string()),
        ("license_url", pa.string()),
        ("genres", pa.list_(pa.string())),
        ("artists", pa.list_(ARTIST_TYPE)),
        ("album_id", pa.string()),
        ("album_title", pa.string()),
        ("album_type", pa.string()),
        ("album_upc", pa.string()),
        ("album_label", pa.string()),
        ("album_release_date", pa.string()),
        ("album_release_date_precision", pa.string()),
        ("album_popularity", pa.int64()),
        ("album_total_tracks", pa.int64()),
        ("external_ids", EXTERNAL_IDS_TYPE),
        ("extra", pa.string()),
    ]
)
COLUMNS = tuple(SCHEMA.names)
INT_FIELDS = frozenset(f.name for f in SCHEMA if f.type == pa.int64())
STR_FIELDS = frozenset(f.name for f in SCHEMA if f.type == pa.string()) - {"extra"}
LINE = "_line"  # column carrying each row's line (or row) number in its file


class RowError(ValueError):
    """A row that cannot be imported; the message is the reject reason."""


def _int(name: str, value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise RowError(f"{name}: expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise RowError(f"{name}: expected an integer, got {str(value)[:40]!r}")


def _str(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise RowError(f"{name}: expected a string, got {type(value).__name__}")


def _bool(name: str, value: Any) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise RowError(f"{name}: expected true or false, got {str(value)[:40]!r}")


def _maybe_json(name: str, value: Any) -> Any:
    """CSV cells hold nested values as JSON text."""
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            raise RowError(f"{name}: not valid JSON") from None
    return value


def _artists(value: Any) -> list[dict[str, Any]]:
    value = _maybe_json("artists", value)
    if value is None or value == "":
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise RowError("artists: expected a list")
    out = []
    for item in value:
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict):
            raise RowError("artists: expected objects with a name")
        unknown = set(item) - set(ARTIST_TYPE.names)
        if unknown:
            raise RowError(f"artists: unknown field {sorted(unknown)[0]!r}")
        out.append(
            {
                "id": _str("artists.id", item.get("id")),
                "name": _str("artists.name", item.get("name")),
                "role": _str("artists.role", item.get("role")),
                "popularity": _int("artists.popularity", item.get("popularity")),
                "followers": _int("artists.followers", item.get("followers")),
            }
        )
    return out


def _genres(value: Any) -> list[str] | None:
    value = _maybe_json("genres", value)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(g, str) for g in value):
        raise RowError("genres: expected a list of strings")
    return value


def _external_ids(value: Any) -> list[dict[str, str]] | None:
    value = _maybe_json("external_ids", value)
    if value is None or value == "":
        return None
    if isinstance(value, list):  # (key, value) pairs, as Arrow maps come out
        try:
            value = {
                (p["key"] if isinstance(p, dict) else p[0]): (
                    p["value"] if isinstance(p, dict) else p[1]
                )
                for p in value
            }
        except (KeyError, IndexError, TypeError):
            raise RowError("external_ids: expected an object of strings") from None
    if not isinstance(value, dict):
        raise RowError("external_ids: expected an object of strings")
    out = []
    for key in sorted(value):
        v = value[key]
        if not isinstance(v, str | int) or isinstance(v, bool):
            raise RowError(f"external_ids.{key}: expected a string")
        out.append({"key": str(key), "value": str(v)})
    return out


def coerce_row(row: dict[str, Any]) -> dict[str, Any]:
    """A JSONL/CSV row as a dict of `SCHEMA`'s columns; raises RowError with the reason."""
    out: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in row.items():
        if key in INT_FIELDS:
            out[key] = _int(key, value)
        elif key in STR_FIELDS:
            out[key] = _str(key, value)
        elif key == "explicit":
            out[key] = _bool(key, value)
        elif key == "artists":
            out[key] = _artists(value)
        elif key == "genres":
            out[key] = _genres(value)
        elif key == "external_ids":
            out[key] = _external_ids(value)
        elif key == "extra":
            value = _maybe_json("extra", value)
            if value in (None, ""):
                continue
            if not isinstance(value, dict):
                raise RowError("extra: expected an object")
            extra.update(value)
        else:
            extra[key] = value
    try:
        out["extra"] = orjson.dumps(extra, option=orjson.OPT_SORT_KEYS).decode() if extra else None
    except TypeError as exc:  # e.g. an integer beyond 64 bits from a Parquet decimal
        raise RowError(f"extra fields: {exc}") from exc
    return out
