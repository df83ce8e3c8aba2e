"""Stages announce their changes (musicark.events); the search index follows the catalogue
for library callers too, not only for the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from musicark import events
from musicark.archive import Archive
from musicark.catalog.importer import import_catalog
from musicark.errors import UsageError
from musicark.search import search
from musicark.search.index import index_root, read_state
from musicark.store.ingest import ingest
from tests.audio import make_file, track


def _jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


@pytest.fixture
def heard() -> Iterator[list[Any]]:
    got: list[Any] = []

    def note(event: Any) -> None:
        got.append(event)

    for name in events.EVENTS:
        events.listen(name, note)  # type: ignore[call-overload]
    yield got
    for name in events.EVENTS:
        events.unlisten(name, note)


def test_library_import_keeps_the_search_index_current(archive: Archive, tmp_path: Path) -> None:
    first = _jsonl(tmp_path / "a.jsonl", [track("t1", "Quokka Sunrise", "Ana Lima")])
    import_catalog(archive, [first], source="test")
    assert [h.title for h in search(archive, "quokka").hits] == ["Quokka Sunrise"]

    second = _jsonl(
        tmp_path / "b.jsonl",
        [track("t1", "Wombat Dusk", "Ana Lima"), track("t2", "Numbat Noon", "Bo Chen")],
    )
    import_catalog(archive, [second], source="test")
    assert [h.title for h in search(archive, "wombat").hits] == ["Wombat Dusk"]
    assert search(archive, "numbat").total == 1
    assert search(archive, "quokka").total == 0


def test_follow_catalog_off_leaves_the_index_alone(archive: Archive, tmp_path: Path) -> None:
    quiet = archive.with_settings({"search.follow_catalog": False})
    import_catalog(quiet, [_jsonl(tmp_path / "a.jsonl", [track("t1", "A", "B")])], source="t")
    assert read_state(index_root(archive)) is None


def test_stages_send_typed_payloads(archive: Archive, tmp_path: Path, heard: list[Any]) -> None:
    import_catalog(archive, [_jsonl(tmp_path / "a.jsonl", [track("t1", "A", "B")])], source="t")
    assert [type(e) for e in heard] == [events.CatalogChanged]
    assert heard[0].archive is archive

    (tmp_path / "in").mkdir()
    make_file(tmp_path / "in" / "a.mp3", seed=1, seconds=2)
    ingest(archive, [tmp_path / "in"], jobs=1, fingerprint=False)
    assert [type(e) for e in heard[1:]] == [events.StoreChanged]


def test_unknown_events_and_fields_fail_in_the_sender(archive: Archive) -> None:
    with pytest.raises(UsageError, match="unknown event"):
        events.send("catalogue.changed", archive=archive)
    with pytest.raises(TypeError):
        events.send("release.changed", archive=archive, relase="x", stage="pack")
    with pytest.raises(UsageError, match="unknown event"):
        events.listen("nope", print)  # type: ignore[call-overload]
