"""The search index through the CLI: build on import, folded/prefix/identifier search,
incremental updates from track_changes, rebuilds, bounds and interruptions."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicark.archive import Archive
from musicark.catalog.synthetic import generate_catalog
from musicark.errors import Cancelled, QueryError
from musicark.progress import Progress
from musicark.search import TrackIndex, index_status, rebuild_index, search, update_index
from musicark.search.analysis import parse_query, words
from musicark.search.index import index_root, read_state


def _set_titles(table: pa.Table, titles: dict[int, str]) -> pa.Table:
    values = table.column("title").to_pylist()
    for row, title in titles.items():
        values[row] = title
    return table.set_column(table.schema.get_field_index("title"), "title", pa.array(values))


def _import(run, tmp_path: Path, table: pa.Table, name: str = "cat.parquet") -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / name
    pq.write_table(table, path)
    run("catalog", "import", path)


@pytest.fixture
def catalog(run, tmp_path: Path) -> pa.Table:  # type: ignore[no-untyped-def]
    table = generate_catalog(3000, seed=11)
    table = _set_titles(
        table,
        {
            0: "Café Crème Straße",
            1: "Déjà Vu",
            2: "Quokkafied Zebrawave",
            3: "Marsupial Anthem (demo)",
            4: "Marsupial Anthem",
        },
    )
    pops = table.column("popularity").to_pylist()
    pops[3], pops[4] = 5, 90
    table = table.set_column(
        table.schema.get_field_index("popularity"), "popularity", pa.array(pops)
    )
    _import(run, tmp_path, table)
    return table


def _search(run, *args: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    return json.loads(run("search", "--json", *args).output)


def test_import_builds_index_and_words_are_folded(run, catalog: pa.Table) -> None:  # type: ignore[no-untyped-def]
    status = json.loads(run("index", "status", "--json").output)
    assert status["exists"] and status["documents"] == 3000 and status["pending_changes"] == 0
    for query, title in (
        ("cafe creme strasse", "Café Crème Straße"),
        ("CAFÉ CRÈME", "Café Crème Straße"),
        ("creme", "Café Crème Straße"),
        ("deja vu", "Déjà Vu"),
        ("DÉJÀ VU", "Déjà Vu"),
    ):
        hits = _search(run, query, "--limit", "100")["hits"]
        assert title in [h["title"] for h in hits], query
    # the last word is a prefix while typing; a trailing space makes it a whole word
    assert _search(run, "quokkaf")["hits"][0]["title"] == "Quokkafied Zebrawave"
    assert _search(run, "zebraw")["total"] == 1
    assert _search(run, "zebraw ")["total"] == 0
    # every word must match somewhere in title, artists or album
    assert _search(run, "quokkafied nonexistentword")["total"] == 0


def test_ranking_blends_relevance_and_popularity(run, catalog: pa.Table) -> None:  # type: ignore[no-untyped-def]
    hits = _search(run, "love", "--limit", "50")["hits"]
    assert len(hits) == 50
    assert all("love" in (h["title"] + h["artists"] + h["album"]).lower() for h in hits)
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    # same text, different popularity: the popular one first
    ranked = [h["title"] for h in _search(run, "marsupial")["hits"]]
    assert ranked[:2] == ["Marsupial Anthem", "Marsupial Anthem (demo)"]


def test_exact_identifier_lookups(run, catalog: pa.Table) -> None:  # type: ignore[no-untyped-def]
    row = 7
    isrc = catalog.column("isrc")[row].as_py()
    upc = catalog.column("album_upc")[row].as_py()
    ext = catalog.column("id")[row].as_py()
    title = catalog.column("title")[row].as_py()
    by_isrc = _search(run, isrc)
    assert by_isrc["mode"] == "id" and title in [h["title"] for h in by_isrc["hits"]]
    assert all(h["isrc"] == isrc for h in by_isrc["hits"])
    dashed = f"{isrc[:2]}-{isrc[2:5]}-{isrc[5:7]}-{isrc[7:]}".lower()
    assert _search(run, dashed)["hits"] == by_isrc["hits"]
    assert _search(run, f"isrc:{isrc}")["hits"] == by_isrc["hits"]
    by_upc = _search(run, upc)
    album = catalog.column("album_id")[row].as_py()
    expected = pc.sum(pc.equal(catalog.column("album_id"), album)).as_py()
    assert by_upc["mode"] == "id" and by_upc["total"] == expected
    by_ext = _search(run, ext)
    assert by_ext["mode"] == "id" and by_ext["total"] == 1 and by_ext["hits"][0]["title"] == title


def test_external_id_lookup(run, archive: Archive, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.audio import import_catalog_rows, track

    row = track("x1", "Numbat Hymn", "Ida Olsen", isrc="GBXYZ2500001", mbid="5B2E-77 aa")
    import_catalog_rows(archive, [row], tmp_path)
    run("index", "update")
    for query in (
        "musicbrainz:5b2e-77aa",
        "MUSICBRAINZ:5B2E77AA",
        "5b2e77aa",
        "x1",
        "isrc:gbxyz2500001",
    ):
        found = _search(run, query)
        assert found["mode"] == "id" and [h["title"] for h in found["hits"]] == ["Numbat Hymn"], (
            query
        )
    assert _search(run, "discogs:5b2e77aa")["total"] == 0


def test_paging_and_bounds(run, catalog: pa.Table) -> None:  # type: ignore[no-untyped-def]
    first = _search(run, "love", "--limit", "10")
    second = _search(run, "love", "--limit", "10", "--offset", "10")
    ids = [h["id"] for h in first["hits"]] + [h["id"] for h in second["hits"]]
    assert len(set(ids)) == 20 and first["total"] == second["total"]
    for bad in (["--limit", "0"], ["--limit", "101"], ["--offset", "-1"]):
        result = run("search", "love", *bad, check=False)
        assert result.exit_code == 2
    for query, reason in (("", "empty"), ("  ", "empty"), ("x" * 300, "limit is 256")):
        result = run("search", query, check=False)
        assert result.exit_code == 2 and reason in result.output
        assert "Traceback" not in result.output


def test_text_output(run, catalog: pa.Table) -> None:  # type: ignore[no-untyped-def]
    out = run("search", "quokkafied").output
    assert "Quokkafied Zebrawave" in out and "1-1 of 1" in out
    assert "no tracks match" in run("search", "zzzzqqqq").output


def test_incremental_update_from_track_changes(
    run, archive: Archive, tmp_path: Path, catalog: pa.Table
) -> None:  # type: ignore[no-untyped-def]
    state = read_state(index_root(archive))
    assert state is not None
    changed = _set_titles(catalog.slice(0, 10), {2: "Renamed Wombatcore"})
    _import(run, tmp_path, changed, "changed.parquet")  # the import runs update_index
    after = read_state(index_root(archive))
    assert after is not None and after.generation == state.generation  # updated in place
    assert after.seq > state.seq
    assert _search(run, "wombatcore")["total"] == 1
    assert _search(run, "quokkafied")["total"] == 0
    assert json.loads(run("index", "status", "--json").output)["documents"] == 3000
    # nothing new: nothing to do
    assert update_index(archive).action == "unchanged"


def test_rebuild_switches_generation_and_cancel_keeps_old(
    run, archive: Archive, catalog: pa.Table
) -> None:  # type: ignore[no-untyped-def]
    before = read_state(index_root(archive))
    assert before is not None

    def stop(p: Progress) -> bool:
        return p.done == 0

    with pytest.raises(Cancelled):
        rebuild_index(archive, progress=stop)
    same = read_state(index_root(archive))
    assert same == before
    assert sorted(p.name for p in index_root(archive).glob("g*")) == [before.generation]
    assert search(archive, "quokkafied").total == 1

    out = run("index", "rebuild").output
    assert "3000 tracks" in out
    after = read_state(index_root(archive))
    assert after is not None and after.generation != before.generation
    assert not (index_root(archive) / before.generation).exists()
    assert search(archive, "quokkafied").total == 1


def test_open_handle_sees_updates_and_rebuilds(
    run, archive: Archive, tmp_path: Path, catalog: pa.Table
) -> None:  # type: ignore[no-untyped-def]
    handle = TrackIndex.open(archive)
    assert handle.search("quokkafied").total == 1
    _import(run, tmp_path, _set_titles(catalog.slice(0, 5), {2: "Platypunk"}), "c2.parquet")
    rebuild_index(archive)
    handle.refresh(force=True)
    assert handle.search("platypunk").total == 1 and handle.search("quokkafied").total == 0


def test_no_index_yet(tmp_path: Path) -> None:
    from musicark.archive import init_archive

    archive = init_archive(tmp_path / "empty")
    assert index_status(archive).exists is False
    from musicark.errors import SearchError

    with pytest.raises(SearchError, match="index rebuild"):
        search(archive, "love")
    assert update_index(archive).action == "rebuilt"
    assert search(archive, "love").total == 0


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_a_query_or_a_clear_error(text: str) -> None:
    try:
        parsed = parse_query(text)
    except QueryError as exc:
        assert str(exc)
        return
    assert parsed.words == tuple(words(parsed.text))
    assert parsed.text == parsed.text.strip() and parsed.text
    assert all(w == w.lower() for w in parsed.words)


def test_large_totals_are_lower_bounds(
    run, catalog: pa.Table, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """Past what paging needs, the bands left unscored are not counted: `total` is then
    at least the count, and says so."""
    from musicark.search import query

    exact = _search(run, "love")
    assert exact["total_exact"] is True
    monkeypatch.setattr(query, "EXHAUSTIVE_BELOW", 0)
    monkeypatch.setattr(query, "COUNT_UP_TO", 20)
    bound = _search(run, "love")
    assert bound["total_exact"] is False and 20 <= bound["total"] < exact["total"]
    assert bound["hits"] == exact["hits"]
    assert f"of at least {bound['total']} " in run("search", "love").output
