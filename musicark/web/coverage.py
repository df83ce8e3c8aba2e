"""The coverage page's data: the latest plan's curve and tiers, and what the store holds.

The plan part keeps `ARCHIVE/plans/latest.json` ({"format", "summary", "curve"}, the curve
as columns `bytes`, `tracks`, `pct_listens`, `pct_tracks`) and `plans/latest.parquet`
(one row per track: `tier`, `size_source` = held/estimated/unknown, `expected_listens`,
...). Both are read as untrusted input: numbers and short strings only, the curve
downsampled; the per-tier figures are computed once per version of the plan file.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import orjson

from musicark.archive import Archive
from musicark.web.data import ArchiveReader

PLANS = "plans"
MAX_PLAN_BYTES = 20_000_000
CURVE_POINTS = 200
_tier_cache: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
_tier_lock = threading.Lock()


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, int):
        return value
    return float(value) if math.isfinite(value) else None


def flatten(data: Any, prefix: str = "", depth: int = 0) -> dict[str, Any]:
    """Scalars of a nested summary as `a.b.c` keys (short strings, finite numbers)."""
    out: dict[str, Any] = {}
    if not isinstance(data, dict) or depth > 3:
        return out
    for key, value in list(data.items())[:200]:
        name = f"{prefix}{str(key)[:60]}"
        if isinstance(value, dict):
            out.update(flatten(value, name + ".", depth + 1))
        elif (
            isinstance(value, bool)
            or (isinstance(value, str) and len(value) <= 200)
            or _number(value) is not None
        ):
            out[name] = value
    return out


def _curve(raw: Any) -> list[dict[str, float]]:
    """Points {bytes, listens_share, tracks_share} (shares in 0-1) from the plan's columns."""
    if not isinstance(raw, dict) or not isinstance(raw.get("bytes"), list):
        return []
    xs = raw["bytes"]
    got_l, got_t = raw.get("pct_listens"), raw.get("pct_tracks")
    listens: list[Any] = got_l if isinstance(got_l, list) else []
    tracks: list[Any] = got_t if isinstance(got_t, list) else []
    points = []
    for i, x in enumerate(xs[:100_000]):
        nx = _number(x)
        ny = _number(listens[i]) if i < len(listens) else None
        nt = _number(tracks[i]) if i < len(tracks) else None
        if nx is None or ny is None:
            continue
        points.append(
            {
                "bytes": nx,
                "listens_share": min(max(ny / 100.0, 0.0), 1.0),
                "tracks_share": min(max((nt or 0.0) / 100.0, 0.0), 1.0),
            }
        )
    if len(points) > CURVE_POINTS:
        step = len(points) / CURVE_POINTS
        points = [points[int(i * step)] for i in range(CURVE_POINTS)] + [points[-1]]
    return points


def _tiers(parquet: Path) -> list[dict[str, Any]]:
    """Per tier: tracks, tracks held, expected listens and the share of them held, and of
    the tracks the plan selected, how many are held."""
    try:
        st = parquet.stat()
    except OSError:
        return []
    key = (str(parquet), st.st_mtime_ns, st.st_size)
    with _tier_lock:
        if key in _tier_cache:
            return _tier_cache[key]
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        names = pq.read_schema(parquet).names
        columns = ["tier", "size_source", "expected_listens"]
        t = pq.read_table(parquet, columns=columns + (["status"] if "status" in names else []))
        if "status" not in names:
            t = t.append_column("status", pa.nulls(t.num_rows, pa.string()))
        for name in ("tier", "size_source", "status"):
            i = t.schema.get_field_index(name)
            t = t.set_column(i, name, pc.cast(t.column(name), "string"))
        t = t.set_column(2, "expected_listens", pc.fill_null(t.column("expected_listens"), 0.0))
        groups = t.group_by(["tier", "size_source", "status"]).aggregate(
            [("expected_listens", "sum"), ("expected_listens", "count")]
        )
    except Exception:  # a plan file being replaced, or of another version: no figures
        return []
    tiers: dict[str, dict[str, float]] = {}
    for row in groups.to_pylist():
        tier = str(row["tier"])[:40]
        entry = tiers.setdefault(
            tier,
            {"tracks": 0, "held": 0, "listens": 0.0, "held_listens": 0.0, "sel": 0, "sel_held": 0},
        )
        n, listens = row["expected_listens_count"], row["expected_listens_sum"] or 0.0
        held, selected = row["size_source"] == "held", row["status"] == "selected"
        entry["tracks"] += n
        entry["listens"] += listens
        entry["held"] += n if held else 0
        entry["held_listens"] += listens if held else 0.0
        entry["sel"] += n if selected else 0
        entry["sel_held"] += n if selected and held else 0
    out = [
        {
            "tier": name,
            "tracks": int(v["tracks"]),
            "tracks_held": int(v["held"]),
            "share_of_tracks_held": v["held"] / v["tracks"] if v["tracks"] else None,
            "expected_listens": v["listens"],
            "share_of_listens_held": v["held_listens"] / v["listens"] if v["listens"] else None,
            "selected": int(v["sel"]),
            "selected_held": int(v["sel_held"]),
        }
        for name, v in sorted(tiers.items())
    ]
    with _tier_lock:
        _tier_cache.clear()
        _tier_cache[key] = out
    return out


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _share(part: Any, whole: Any) -> float | None:
    p, w = _number(part), _number(whole)
    return p / w if p is not None and w else None


STRATEGIES = {
    "per-byte": "most expected listens per byte first",
    "popularity": "most popular first",
}
TIER_NAMES = {
    "main": "main (tracks with listens)",
    "zero": "popularity 0 (re-encoded smaller)",
}


def overview(summary: Any) -> dict[str, Any]:
    """The plan's summary as a person reads it: what the budget buys, in shares."""
    n, listens = (
        _get(summary, "catalogue", "tracks"),
        _get(summary, "catalogue", "expected_listens"),
    )
    sel = _get(summary, "selected") or {}
    strategy = _get(summary, "options", "strategy")
    tiers = _get(sel, "tiers")
    knee = _get(summary, "knee")
    return {
        "budget_bytes": _number(_get(summary, "options", "budget_bytes")),
        "budget_tracks": _number(_get(summary, "options", "budget_tracks")),
        "strategy": STRATEGIES.get(str(strategy), str(strategy)[:60] if strategy else None),
        "public_only": _get(summary, "options", "rights") == "public",
        "catalogue_tracks": _number(n),
        "selected_tracks": _number(_get(sel, "tracks")),
        "selected_bytes": _number(_get(sel, "bytes")),
        "share_of_tracks": _share(_get(sel, "tracks"), n),
        "share_of_listens": _share(_get(sel, "expected_listens"), listens),
        "bytes_held": _number(_get(sel, "bytes_held")),
        "bytes_to_acquire": _number(_get(sel, "bytes_to_acquire")),
        "tiers": [
            {
                "tier": TIER_NAMES.get(str(name), str(name)[:40]),
                "tracks": _number(_get(v, "tracks")),
                "bytes": _number(_get(v, "bytes")),
                "share_of_listens": _share(_get(v, "listens"), listens),
            }
            for name, v in (list(tiers.items())[:20] if isinstance(tiers, dict) else [])
        ],
        "rights": [
            {
                "kind": kind,
                "tracks": _number(_get(sel, key, "tracks")),
                "bytes": _number(_get(sel, key, "bytes")),
                "share_of_listens": _share(_get(sel, key, "listens"), listens),
            }
            for key, kind in (("redistributable", "redistributable"), ("dark", "dark archive"))
            if isinstance(_get(sel, key), dict)
        ],
        "knee": {
            "tracks": _number(_get(knee, "tracks")),
            "bytes": _number(_get(knee, "bytes")),
            "share_of_listens": (_number(_get(knee, "pct_listens")) or 0.0) / 100,
            "share_of_tracks": (_number(_get(knee, "pct_tracks")) or 0.0) / 100,
        }
        if isinstance(knee, dict) and _number(_get(knee, "bytes")) is not None
        else None,
    }


def read_plan(archive: Archive) -> dict[str, Any] | None:
    folder = archive.root / PLANS
    path = folder / "latest.json"
    try:
        if path.stat().st_size > MAX_PLAN_BYTES:
            return None
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    summary = data.get("summary") if isinstance(data.get("summary"), dict) else {}
    selected = summary.get("selected") if isinstance(summary, dict) else None
    selected_tiers = selected.get("tiers") if isinstance(selected, dict) else None
    return {
        "summary": flatten(summary),
        "overview": overview(summary),
        "curve": _curve(data.get("curve")),
        "selected_tiers": flatten(selected_tiers) if isinstance(selected_tiers, dict) else {},
        "tiers": _tiers(folder / "latest.parquet"),
    }


def coverage_data(archive: Archive, reader: ArchiveReader) -> dict[str, Any]:
    holdings = reader.holdings()
    tracks = holdings["tracks"] or 0
    holdings["share_of_tracks_held"] = (holdings["tracks_held"] / tracks) if tracks else None
    return {"plan": read_plan(archive), "holdings": holdings}


def svg_x(value: float | None, curve: list[dict[str, float]], *, width: int = 600) -> float | None:
    """Where `value` bytes falls on the curve's x axis (None when off the chart)."""
    top = max((p["bytes"] for p in curve), default=0.0)
    if value is None or not top or not 0 <= value <= top:
        return None
    return round(value / top * width, 1)


def svg_points(
    curve: list[dict[str, float]],
    key: str = "listens_share",
    *,
    width: int = 600,
    height: int = 300,
) -> str:
    """One line of the curve as an SVG polyline `points` attribute (numbers only)."""
    if not curve:
        return ""
    top = max(p["bytes"] for p in curve) or 1.0
    return " ".join(f"{p['bytes'] / top * width:.1f},{height - p[key] * height:.1f}" for p in curve)
