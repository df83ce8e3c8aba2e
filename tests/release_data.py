"""Shared by the release tests: an archive with a small catalogue and real ingested audio."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from musicark.archive import Archive, open_archive
from tests.audio import import_catalog_rows, make_file, track
from tests.runner import Runner

# (id, title, artist, isrc, rights)
TRACKS = [
    ("t1", "Silver Moon", "Anna Berg", "USABC2400001", "cc0"),
    ("t2", "Paper Heart", "Ben Costa", "USABC2400002", "cc-by"),
    ("t3", "Glass River", "Clara Dahl", "USABC2400003", "public-domain"),
    ("t4", "Café Naïve", "Émile Zoë", "USABC2400004", "cc0"),
    ("t5", "Night Song", "Anna Berg", "USABC2400005", "cc-by-sa"),
    ("t6", "Closed Door", "Dora Evans", "USABC2400006", "all-rights-reserved"),
    ("t7", "Who Knows", "Felix Ito", "USABC2400007", "unknown"),
]
EXTRA = [("t8", "Late Arrival", "Grace Hugo", "USABC2400008", "cc0")]


def _rows(tracks: list[tuple[str, str, str, str, str]]) -> list[dict[str, object]]:
    rows = []
    for tid, title, artist, isrc, rights in tracks:
        row = track(tid, title, artist, isrc=isrc, duration_ms=2000)
        row["rights"] = rights
        rows.append(row)
    return rows


def _ingest(
    run: Runner, src: Path, tracks: list[tuple[str, str, str, str, str]], seed0: int
) -> None:
    src.mkdir(parents=True, exist_ok=True)
    for i, (_tid, title, artist, isrc, _r) in enumerate(tracks):
        make_file(
            src / f"{i}.ogg",
            seed=seed0 + i,
            seconds=2.0,
            tags={"title": title, "artist": artist, "isrc": isrc},
        )
    run("ingest", src, "--jobs", "1", "--no-fingerprint")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An archive with a catalogue of TRACKS (and EXTRA) and audio for TRACKS only."""
    from musicark.archive import init_archive

    base = tmp_path_factory.mktemp("template")
    archive = init_archive(base / "archive")
    import_catalog_rows(archive, _rows(TRACKS + EXTRA), base)
    _ingest(Runner(archive), base / "in", TRACKS, 100)
    return archive.root


@pytest.fixture
def arc(template: Path, tmp_path: Path) -> Archive:
    root = tmp_path / "archive"
    shutil.copytree(template, root)
    return open_archive(root)


@pytest.fixture
def cli(arc: Archive) -> Runner:
    return Runner(arc)


def _state(arc: Archive) -> sqlite3.Connection:
    return sqlite3.connect(arc.state_path)
