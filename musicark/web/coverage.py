"""The coverage page's data: the latest plan's curve and tiers, and what the store holds.

The plan part writes `ARCHIVE/plans/latest.json` (summary and coverage curve). It is read
as untrusted input: only numbers and short strings are kept, the curve is downsampled.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from musicark.archive import Archive
from musicark.web.data import ArchiveReader

PLAN_SUMMARY = ("plans", "latest.json")
MAX_PLAN_BYTES = 20_000_000
CURVE_POINTS = 200
_X_KEYS = ("bytes", "cumulative_bytes", "size", "budget", "x")
_Y_KEYS = ("listens_share", "share", "coverage", "listens_fraction", "y")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _scalars(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in list(data.items())[:100]:
        if isinstance(value, bool | int | float) or (isinstance(value, str) and len(value) <= 200):
            out[str(key)[:100]] = value
    return out


def _pick(point: dict[str, Any], keys: tuple[str, ...]) -> float | None:
    for key in keys:
        if key in point:
            return _number(point[key])
    return None


def _curve(raw: Any) -> list[dict[str, float]]:
    points: list[tuple[float, float]] = []
    if isinstance(raw, dict):  # columns: {"bytes": [...], "listens_share": [...]}
        xs: list[Any] = next((raw[k] for k in _X_KEYS if isinstance(raw.get(k), list)), [])
        ys: list[Any] = next((raw[k] for k in _Y_KEYS if isinstance(raw.get(k), list)), [])
        for x, y in zip(xs, ys, strict=False):
            nx, ny = _number(x), _number(y)
            if nx is not None and ny is not None:
                points.append((nx, ny))
    elif isinstance(raw, list):
        for p in raw:
            if isinstance(p, dict):
                x, y = _pick(p, _X_KEYS), _pick(p, _Y_KEYS)
            elif isinstance(p, list | tuple) and len(p) >= 2:
                x, y = _number(p[0]), _number(p[1])
            else:
                continue
            if x is not None and y is not None:
                points.append((x, y))
    if len(points) > CURVE_POINTS:
        step = len(points) / CURVE_POINTS
        points = [points[int(i * step)] for i in range(CURVE_POINTS)] + [points[-1]]
    if points and max(y for _, y in points) > 1.0 + 1e-9:  # percentages
        points = [(x, y / 100.0) for x, y in points]
    return [{"bytes": x, "listens_share": y} for x, y in points]


def _tiers(raw: Any) -> list[dict[str, Any]]:
    if isinstance(raw, dict):
        raw = [{"tier": k, **v} for k, v in raw.items() if isinstance(v, dict)]
    if not isinstance(raw, list):
        return []
    return [_scalars(t) for t in raw[:50] if isinstance(t, dict)]


def read_plan(archive: Archive) -> dict[str, Any] | None:
    path = archive.root.joinpath(*PLAN_SUMMARY)
    try:
        if path.stat().st_size > MAX_PLAN_BYTES:
            return None
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    summary = data.get("summary") if isinstance(data.get("summary"), dict) else data
    assert isinstance(summary, dict)
    return {
        "summary": _scalars(summary),
        "curve": _curve(data.get("curve", summary.get("curve"))),
        "tiers": _tiers(data.get("tiers", summary.get("tiers"))),
    }


def coverage_data(archive: Archive, reader: ArchiveReader) -> dict[str, Any]:
    holdings = reader.holdings()
    tracks = holdings["tracks"] or 0
    holdings["share_of_tracks_held"] = (holdings["tracks_held"] / tracks) if tracks else None
    return {"plan": read_plan(archive), "holdings": holdings}


def svg_points(curve: list[dict[str, float]], *, width: int = 600, height: int = 300) -> str:
    """The curve as an SVG polyline `points` attribute (numbers only)."""
    if not curve:
        return ""
    top = max(p["bytes"] for p in curve) or 1.0
    return " ".join(
        f"{p['bytes'] / top * width:.1f},{height - max(0.0, min(1.0, p['listens_share'])) * height:.1f}"
        for p in curve
    )
