"""Property: importing an export gives back the same catalogue (hypothesis round trips)."""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicark.archive import init_archive
from musicark.catalog.export import export_catalog
from musicark.catalog.importer import import_catalog
from musicark.catalog.rights import RIGHTS
from tests.catalog_data import dump_catalog, write_jsonl
from tests.test_catalog_compression import MAGIC

text = st.text(min_size=1, max_size=20).filter(lambda s: s.strip() != "")
maybe_int = st.none() | st.integers(min_value=0, max_value=2**40)
artist = st.fixed_dictionaries(
    {"name": text},
    optional={
        "id": st.sampled_from(["a1", "a2", "a3"]),
        "role": st.sampled_from(["main", "featured", "composer"]),
    },
)
isrc = st.from_regex(r"[A-Z]{2}[A-Z0-9]{3}[0-9]{7}", fullmatch=True)
counter = itertools.count()


@st.composite
def rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(min_value=1, max_value=12))
    out = []
    for i in range(n):
        row: dict[str, Any] = {"id": f"r{i}", "title": draw(text)}
        optional = {
            "isrc": st.none() | isrc,
            "duration_ms": maybe_int,
            "popularity": st.none() | st.integers(min_value=0, max_value=100),
            "play_count": maybe_int,
            "explicit": st.none() | st.booleans(),
            "rights": st.sampled_from(RIGHTS),
            "genres": st.none() | st.lists(text, max_size=3),
            "artists": st.lists(artist, max_size=3),
            "album_id": st.none() | st.sampled_from(["al1", "al2"]),
            "external_ids": st.none()
            | st.dictionaries(st.sampled_from(["musicbrainz", "discogs"]), text, max_size=2),
            "label_note": st.none() | text,  # an unknown field: kept in `extra`
            "extra": st.none()
            | st.dictionaries(
                st.sampled_from(["x", "y"]),
                st.integers(min_value=-(2**63), max_value=2**63 - 1) | text,
                max_size=2,
            ),
        }
        for key, strategy in optional.items():
            if draw(st.booleans()):
                row[key] = draw(strategy)
        if row.get("album_id"):
            row["album_title"] = "Album " + row["album_id"]  # one album, one title
        # one artist id, one name: the catalogue keeps a single name per artist
        for a in row.get("artists", []):
            if "id" in a:
                a["name"] = "Artist " + a["id"]
        out.append(row)
    return out


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=rows(), fmt=st.sampled_from(["parquet", "jsonl", "jsonl.zst", "jsonl.gz", "jsonl.xz"]))
def test_export_then_import_gives_the_same_catalogue(data: list[dict[str, Any]], fmt: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        first = init_archive(root / "first")
        import_catalog(first, [write_jsonl(root / "in.jsonl", data)], source="prop")
        out = root / f"export.{fmt}"
        export_catalog(first, out)
        head = out.read_bytes()[:6]
        assert head.startswith(
            MAGIC.get(fmt.rsplit(".", 1)[-1], b"PAR1" if fmt == "parquet" else b"{")
        )
        second = init_archive(root / "second")
        summary = import_catalog(second, [out])
        assert summary.rejected == 0
        assert dump_catalog(second) == dump_catalog(first)
        # and exporting the second gives the same bytes for deterministic formats
        if fmt == "jsonl":
            again = root / "again.jsonl"
            export_catalog(second, again)
            assert sorted(again.read_bytes().splitlines()) == sorted(out.read_bytes().splitlines())
