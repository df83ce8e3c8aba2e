"""Sizes, bit rates and timestamps as users write and read them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from musicark.errors import UsageError
from musicark.units import format_size, now, parse_bitrate, parse_size, parse_time


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("300TB", 300 * 10**12),
        ("2.5 TiB", int(2.5 * 2**40)),
        ("800GB", 800 * 10**9),
        ("4MiB", 4 << 20),
        ("1048576", 1 << 20),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["0", "-1TB", "lots", "5 parsecs", ""])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(UsageError):
        parse_size(text)


def test_parse_bitrate() -> None:
    assert parse_bitrate("160k") == 160_000
    assert parse_bitrate("1.4m") == 1_400_000
    with pytest.raises(UsageError):
        parse_bitrate("fast")


@given(st.integers(min_value=0, max_value=10**18))
def test_format_size_is_short_and_never_scientific(n: int) -> None:
    text = format_size(n)
    number, unit = text.split(" ")
    assert "e" not in number
    assert float(number) < 1000 or unit == "PB"
    assert unit in ("B", "kB", "MB", "GB", "TB", "PB")


def test_one_timestamp_format_and_old_rows_still_read() -> None:
    import re
    from datetime import UTC, datetime
    from pathlib import Path

    stamp = now()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp)
    assert parse_time(stamp).tzinfo is not None
    # rows written before there was one format have whole seconds
    assert parse_time("2026-11-30T08:15:29Z") == datetime(2026, 11, 30, 8, 15, 29, tzinfo=UTC)
    assert parse_time("2026-11-30T08:15:29Z") < parse_time("2026-11-30T08:15:29.5Z")
    # nobody else formats a timestamp of their own
    root = Path(__file__).resolve().parents[1] / "musicark"
    own = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if p.name != "units.py" and re.search(r"strftime\(|%H:%M:%S", p.read_text())
    ]
    assert own == []
