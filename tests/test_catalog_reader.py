"""The catalogue reader: the one place that reads catalogue tables."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pyarrow as pa
import pytest

import musicark
from musicark.archive import Archive
from musicark.catalog.reader import CatalogReader, ColumnReader
from musicark.errors import CatalogError
from tests.audio import import_catalog_rows, track

CATALOG_TABLES = (
    "tracks",
    "artists",
    "albums",
    "track_artists",
    "external_ids",
    "sources",
    "imports",
    "track_changes",
)
_SQL = re.compile(
    r"\b(?:FROM|JOIN|INTO|UPDATE|TABLE)\s+(?:\w+\.)?(" + "|".join(CATALOG_TABLES) + r")\b"
)
ALLOWED: set[str] = set()


def _strings(tree: ast.AST) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append((node.lineno, node.value))
        elif isinstance(node, ast.JoinedStr):  # f-strings: their literal parts, joined
            text = "".join(
                v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else "?"
                for v in node.values
            )
            out.append((node.lineno, text))
    return out


def _offenders(package: Path) -> list[str]:
    found: set[str] = set()
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).as_posix()
        if rel.startswith("catalog/") or rel in ALLOWED:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for line, text in _strings(tree):
            m = _SQL.search(text)
            if m:
                found.add(f"{rel}:{line}: {m.group(0)}")
    return sorted(found)


def test_nothing_outside_the_catalogue_package_names_a_catalogue_table() -> None:
    package = Path(musicark.__file__).parent
    assert _offenders(package) == []


def test_the_source_check_finds_sql_on_catalogue_tables(tmp_path: Path) -> None:
    (tmp_path / "catalog").mkdir()
    (tmp_path / "catalog" / "fine.py").write_text('Q = "SELECT id FROM tracks"\n')
    (tmp_path / "other.py").write_text(
        'A = "SELECT * FROM blobs"\n'
        'B = f"SELECT t.id FROM tracks t WHERE t.id IN ({1})"\n'
        'C = ("SELECT a FROM x"\n     " JOIN track_artists ta ON 1")\n'
        'D = "tracks from the catalogue"\n'
    )
    assert _offenders(tmp_path) == [
        "other.py:2: FROM tracks",
        "other.py:3: JOIN track_artists",
    ]


@pytest.fixture
def catalog(archive: Archive, tmp_path: Path) -> Archive:
    rows = [
        track("t1", "First Song", "Alpha", isrc="USAAA0000001", mbid="mb-1"),
        track("t2", "Second Song", "Beta", isrc="USAAA0000001"),
        track("t3", "Third Song", "Alpha"),
    ]
    rows[1]["popularity"] = 80
    rows[2]["artists"] = [
        {"id": "ar-Gamma", "name": "Gamma", "role": "main"},
        {"id": "ar-Alpha", "name": "Alpha", "role": "featured"},
    ]
    rows[2]["track_number"] = 1
    import_catalog_rows(archive, rows, tmp_path)
    return archive


def _ids(reader: CatalogReader) -> dict[str, int]:
    cur = reader.titles()
    return {title: tid for tid, title in cur.fetchall()}


def test_tracks_by_id_come_with_album_source_and_credits_in_order(catalog: Archive) -> None:
    with CatalogReader.open(catalog.catalog_path) as reader:
        ids = _ids(reader)
        found = reader.tracks([ids["Third Song"], ids["First Song"], 12345])
        assert set(found) == {ids["Third Song"], ids["First Song"]}
        third = found[ids["Third Song"]]
        assert third.title == "Third Song" and third.album == "Test Album"
        assert third.source == "test" and third.rights == "cc0" and third.track_number == 1
        assert [(c.name, c.role, c.position) for c in third.artists] == [
            ("Gamma", "main", 0),
            ("Alpha", "featured", 1),
        ]
        assert third.artist_names == ["Gamma", "Alpha"]
        d = third.to_dict()
        assert d["artists"][1]["name"] == "Alpha" and d["album"] == "Test Album"
        assert reader.track(12345) is None


def test_look_ups_by_isrc_external_id_album_and_artist(catalog: Archive) -> None:
    with CatalogReader.open(catalog.catalog_path) as reader:
        ids = _ids(reader)
        same = reader.by_isrc("USAAA0000001")
        assert [t.title for t in same] == ["Second Song", "First Song"]  # most popular first
        others = reader.by_isrc("USAAA0000001", exclude=ids["Second Song"])
        assert [t.id for t in others] == [ids["First Song"]]
        assert reader.by_isrc("XXAAA0000009") == []
        assert reader.by_external_id(("mbid", "musicbrainz"), "mb-1") == [ids["First Song"]]
        assert reader.by_external_id(("musicbrainz",), "mb-2") == []
        first = reader.track(ids["First Song"])
        assert first is not None and first.album_id is not None
        album = reader.album(first.album_id)
        assert album is not None and album.title == "Test Album"
        assert len(reader.by_album(first.album_id, limit=10)) == 3
        alpha = first.artists[0].artist_id
        artist = reader.artist(alpha)
        assert artist is not None and artist.name == "Alpha"
        assert {t.title for t in reader.by_artist(alpha, limit=10)} == {
            "First Song",
            "Third Song",
        }
        # Alpha is credited first on one album's track
        assert [a.id for a in reader.albums_of_artist(alpha, limit=10)] == [album.id]


def test_changes_since_a_sequence_number(catalog: Archive, tmp_path: Path) -> None:
    with CatalogReader.open(catalog.catalog_path) as reader:
        last = reader.last_change()
        assert last >= 3 and reader.pending_changes(0) == reader.change_summary()[0]
        first_two = reader.changes_since(0, limit=2)
        assert len(first_two) == 2 and first_two[0][0] < first_two[1][0]
        assert reader.changes_since(last, limit=10) == []
    changed = track("t4", "Fourth Song", "Delta")
    (tmp_path / "more").mkdir()
    import_catalog_rows(catalog, [changed], tmp_path / "more")
    with CatalogReader.open(catalog.catalog_path) as reader:
        after = reader.changes_since(last, limit=10)
        assert len(after) == 1 and reader.pending_changes(last) == 1
        assert [t for _, t in reader.titles(changed_since=last).fetchall()] == ["Fourth Song"]
        assert reader.tracks([after[0][1]])[after[0][1]].title == "Fourth Song"


def test_column_reader_reads_ranges_pages_and_side_tables(catalog: Archive) -> None:
    with ColumnReader(catalog.catalog_path) as reader:
        assert reader.track_count() == 3 and reader.last_change() >= 3
        top = reader.max_rowid()
        whole = pa.Table.from_batches(
            list(reader.track_batches(("id", "title", "redistributable"), batch_rows=2))
        )
        parts = [
            pa.Table.from_batches(list(reader.track_batches(("id",), upto=1))),
            pa.Table.from_batches(list(reader.track_batches(("id",), above=1, upto=top))),
        ]
        assert whole.column("id").to_pylist() == [
            i for p in parts for i in p.column("id").to_pylist()
        ]
        assert whole.column("redistributable").to_pylist() == [1, 1, 1]
        page = reader.track_page(
            ("rowid", "title", "album", "isrc"), after_rowid=1, limit=5, defaults={"isrc": "-"}
        )
        assert page.column("title").to_pylist() == ["Second Song", "Third Song"]
        assert page.column("isrc").to_pylist() == ["USAAA0000001", "-"]
        assert page.column("album").to_pylist() == ["Test Album", "Test Album"]
        credits = reader.credits(("track_id", "position", "artist_id"))
        assert credits.num_rows == 4
        names = reader.artists(("id", "name"))
        assert sorted(names.column("name").to_pylist()) == ["Alpha", "Beta", "Gamma"]
        assert reader.albums(("id", "title")).num_rows == 1
        with pytest.raises(ValueError, match="unknown catalogue column"):
            reader.track_page(("rowid", "title; DROP TABLE x"), after_rowid=0, limit=1)


def test_missing_catalogue_is_a_catalogue_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="no catalogue"):
        ColumnReader(tmp_path / "nothing.sqlite")
    with pytest.raises(CatalogError, match="no catalogue"):
        CatalogReader.open(tmp_path / "nothing.sqlite")
