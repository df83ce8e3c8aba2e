"""The vectorised id hash equals the one-string hash, for any text and any slice."""

from __future__ import annotations

import random

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from musicark.catalog.ids import entity_id, hash_strings, stable_hash


@given(st.lists(st.none() | st.text(max_size=40), max_size=30), st.integers(0, 5))
def test_hash_strings_matches_stable_hash(values: list[str | None], skip: int) -> None:
    column = pa.array(values, pa.string()).slice(min(skip, len(values)))
    expected = [stable_hash(v or "") for v in values[min(skip, len(values)) :]]
    assert hash_strings(column).tolist() == expected
    assert all(0 <= h < 2**63 for h in expected)


def test_ids_are_stable_values() -> None:
    # Published ids must never change (docs/catalogue-format.md): golden values.
    assert entity_id("spotify", "track", "4uLU6hMCjMI75M1A2tKUQC") == 7265357589804187806
    assert stable_hash("abc") == 1318289917348992669
    assert stable_hash("") != stable_hash("\x00")
    assert entity_id("a", "track", "b") != entity_id("a", "album", "b")


def test_hash_strings_matches_stable_hash_on_long_columns() -> None:
    # Enough rows for every vectorised pass: short values, values past the first words
    # hashed over all rows, a long one finished alone, nulls, slices and chunks.
    rng = random.Random(7)
    alphabet = "ab\x00\x1fé€𝄞 "
    values: list[str | None] = [
        None if rng.random() < 0.1 else "".join(rng.choices(alphabet, k=rng.randint(0, 90)))
        for _ in range(3000)
    ]
    values[5] = "x" * 5000
    for column in (
        pa.array(values, pa.string()),
        pa.array(values, pa.large_string()).slice(3),
        pa.chunked_array([pa.array(values[:100]), pa.array(values[100:])]),
    ):
        expected = [stable_hash(v or "") for v in column.to_pylist()]
        assert hash_strings(column).tolist() == expected
