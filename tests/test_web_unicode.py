"""Accent-blind search whatever the Unicode form: NFC and compatibility folding at index
time and at query time, through the CLI and the web alike."""

from __future__ import annotations

import json
import unicodedata

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from starlette.testclient import TestClient

from musicark.archive import Archive, init_archive
from musicark.catalog.importer import import_catalog
from musicark.catalog.synthetic import generate_catalog
from musicark.search.analysis import parse_query, words
from musicark.web import create_app
from tests.runner import Runner

TITLES = [
    "Déjà Wombat",  # composed (NFC)
    unicodedata.normalize("NFD", "Crème Numbat"),  # decomposed in the catalogue
    "Ｆｕｌｌｗｉｄｔｈ Quokka",  # full-width letters
    "Chapter Ⅳ Bilby",  # a roman-numeral compatibility character
]


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Archive:
    root = tmp_path_factory.mktemp("unicode")
    archive = init_archive(root / "archive")
    table = generate_catalog(300, seed=11)
    titles = table.column("title").to_pylist()
    titles[: len(TITLES)] = TITLES
    table = table.set_column(table.schema.get_field_index("title"), "title", pa.array(titles))
    pq.write_table(table, root / "cat.parquet")
    import_catalog(archive, [root / "cat.parquet"])
    Runner(archive)("index", "rebuild")
    return archive


def _cli_titles(archive: Archive, query: str) -> list[str]:
    out = Runner(archive)("search", "--json", "--limit", "100", query).output
    return [h["title"] for h in json.loads(out)["hits"]]


def _web_titles(client: TestClient, query: str) -> list[str]:
    r = client.get("/api/search", params={"q": query, "limit": 100})
    assert r.status_code == 200, r.text
    return [h["title"] for h in r.json()["hits"]]


@pytest.mark.parametrize(
    ("query", "title"),
    [
        ("de\u0301ja\u0300 wombat", "Déjà Wombat"),  # decomposed query, composed catalogue
        ("déjà wombat", "Déjà Wombat"),
        ("crème numbat", TITLES[1]),  # composed query, decomposed catalogue
        ("cre\u0300me numbat", TITLES[1]),
        ("creme numbat", TITLES[1]),
        ("fullwidth quokka", TITLES[2]),
        ("ＦＵＬＬＷＩＤＴＨ", TITLES[2]),  # full-width query
        ("chapter iv bilby", TITLES[3]),
    ],
)
def test_same_results_in_any_form(archive: Archive, query: str, title: str) -> None:
    with TestClient(create_app(archive)) as client:
        web = _web_titles(client, query)
    cli = _cli_titles(archive, query)
    assert title in web and title in cli
    assert web == cli


def test_decomposed_finds_what_composed_finds(archive: Archive) -> None:
    with TestClient(create_app(archive)) as client:
        composed = _web_titles(client, "déjà")
        decomposed = _web_titles(client, "de\u0301ja\u0300")
    assert composed and composed == decomposed
    assert _cli_titles(archive, "de\u0301ja\u0300") == composed


def test_analysis_forms() -> None:
    assert words("de\u0301ja\u0300") == words("déjà") == ["deja"]
    assert words("Ｂｅｅｔｌｅｓ") == ["beetles"]
    assert words("\u01a6\u0280\u026a") == ["rri"]  # small capitals fold to lower case
    assert parse_query("de\u0301ja\u0300").text == "déjà"
    assert parse_query("ＵＳＡＢＣ２４００１０１").keys[0] == "usabc2400101"


def test_index_and_query_use_one_normaliser() -> None:
    """index.make_document and parse_query both go through analysis.normalize_text."""
    import inspect

    from musicark.search import analysis, index

    assert "normalize_text(" in inspect.getsource(index.make_document)
    assert "normalize_text(" in inspect.getsource(analysis.parse_query)


def test_marks_only_is_a_query_with_no_words(archive: Archive) -> None:
    parsed = parse_query("\u0301\u0300")  # only combining marks: no words, no key
    assert parsed.words == () and parsed.keys == ()
    with TestClient(create_app(archive)) as client:
        assert _web_titles(client, "\u0301\u0300") == []
