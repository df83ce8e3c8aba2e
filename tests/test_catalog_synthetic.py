"""The synthetic catalogue generator: the realistic (wordfreq) vocabulary's shape, and that
the default output is unchanged by it."""

from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from musicark.catalog.synthetic import generate_catalog
from musicark.catalog.synthetic_words import vocabulary


def _digest(table: pa.Table) -> str:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


def test_default_vocabulary_is_unchanged() -> None:
    # pinned before the realistic vocabulary existed: refactoring must keep it
    assert _digest(generate_catalog(20_000, seed=3)) == (
        "81e7e1671bad834a4eed350c14b8c44a113076cd1a039a4188185fd0f60868d4"
    )


def test_wordfreq_catalogue_is_realistic_and_seeded() -> None:
    n = 100_000
    table = generate_catalog(n, seed=5, vocabulary="wordfreq")
    assert table.num_rows == n
    assert table.schema == generate_catalog(10, seed=5).schema
    assert _digest(table) == _digest(generate_catalog(n, seed=5, vocabulary="wordfreq"))

    pop = table.column("popularity").to_numpy()
    assert 0.6 < (pop == 0).mean() < 0.8  # most tracks have almost no listens
    assert 0.0005 <= (pop >= 50).mean() <= 0.002  # ~0.1 % at 50 or more

    words = Counter(w.lower() for t in table.column("title").to_pylist() for w in t.split())
    assert len(words) > 20_000  # a real vocabulary, not a few dozen words
    _, top_count = words.most_common(1)[0]
    rare = sum(1 for c in words.values() if c == 1)
    assert top_count > 100 * np.median(list(words.values())) and rare > 5_000  # Zipfian
    assert any(not w.isascii() for w in words)  # several languages and scripts

    sizes = np.bincount(pc.cast(pc.utf8_slice_codeunits(table.column("album_id"), 2), pa.int64()))
    assert sizes.min() >= 1 and sizes.max() >= 15 and (sizes <= 2).mean() > 0.2
    first_artist = pc.struct_field(pc.list_element(table.column("artists"), 0), "id")
    per_artist = Counter(first_artist.to_pylist())
    assert max(per_artist.values()) > 20 * np.median(list(per_artist.values()))


def test_vocabulary_is_large_and_multilingual() -> None:
    voc = vocabulary()
    assert len(set(voc.words)) > 100_000
    assert abs(voc.shares.sum() - 1) < 1e-9


def test_unknown_vocabulary_is_refused() -> None:
    with pytest.raises(ValueError, match="vocabulary"):
        generate_catalog(10, vocabulary="klingon")
