"""Parsing and formatting of sizes and bit rates as users write them, and of timestamps."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from musicark.errors import UsageError

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "p": 10**15,
    "pb": 10**15,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
    "pib": 2**50,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str, *, what: str = "size", allow_zero: bool = False) -> int:
    """`'300TB'`, `'2.5 TiB'`, `'800GB'`, `'4MiB'`, `'1048576'` -> bytes."""
    m = _SIZE_RE.match(str(text))
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        raise UsageError(f"{what} {text!r} is not a size (try 800GB, 2.5TiB or 4MiB)")
    value = int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])
    if value <= 0 and not allow_zero:
        raise UsageError(f"{what} {text!r} must be larger than zero")
    return value


_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(k|kbps|kbit/s|kb/s|m|mbps)?\s*$", re.I)


def parse_bitrate(text: str, *, what: str = "bit rate") -> int:
    """`'160k'`, `'75kbps'`, `'1.4m'`, `'320000'` -> bits per second."""
    m = _RATE_RE.match(str(text))
    if not m:
        raise UsageError(f"{what} {text!r} is not a bit rate (try 160k)")
    unit = (m.group(2) or "").lower()
    factor = 10**6 if unit.startswith("m") else 10**3 if unit else 1
    value = int(float(m.group(1)) * factor)
    if value <= 0:
        raise UsageError(f"{what} {text!r} must be larger than zero")
    return value


def format_size(n: float) -> str:
    """Bytes in SI units with three significant figures: `1.23 TB`."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 999.5 or unit == "PB":  # 999.7 would print as "1e+03"
            return f"{n:.3g} {unit}" if unit != "B" and abs(n) < 999.5 else f"{n:.0f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def now() -> str:
    """The time as every table and file of an archive records it: ISO-8601 UTC with
    microseconds, `2026-11-30T08:15:29.123456Z` (strings sort in time order)."""
    return format_time(datetime.now(UTC))


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def parse_time(text: str) -> datetime:
    """A recorded time, with or without fractional seconds (older rows have none)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
