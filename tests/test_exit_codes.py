"""Exit codes through the CLI: 2 for a command line that cannot be acted on as written,
1 for everything else that fails, always one line and never a traceback (docs/cli.md)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from musicark.archive import Archive, init_archive
from tests.runner import Runner

# (arguments, exit code, part of the message); {missing}, {folder}, {fifo}, {junk}, {text},
# {busy} and {nowhere} are filled in with paths made for the test.
USAGE = [
    (["nosuchcommand"], "No such command"),
    (["catalog", "nosuch"], "No such command"),
    (["pack"], "Missing argument"),
    (["pack", "BAD/NAME"], "release name"),
    (["publish", "BAD/NAME"], "release name"),
    (["pack", "r1", "--max-files", "x"], "not a valid integer"),
    (["pack", "r1", "--max-files", "0"], "at least 1"),
    (["pack", "r1", "--target-size", "lots"], "not a size"),
    (["pack", "r1", "--piece-size", "3"], "power of two"),
    (["pack", "r1", "--format", "v9"], "is not one of"),
    (["catalog", "import", "{missing}"], "no such file"),
    (["catalog", "import", "{folder}"], "is a folder"),
    (["catalog", "import", "{fifo}"], "FIFO"),
    (["catalog", "import", "{text}", "--rights", "bogus"], "unknown rights"),
    (["catalog", "import", "{text}", "--format", "nope"], "is not one of"),
    (["catalog", "stats", "--bitrate", "fast"], "not a bit rate"),
    (["catalog", "export", "{folder}/out.xyz"], "export format"),
    (["catalog", "export", "{folder}"], "is a directory"),
    (["plan", "--budget", "lots"], "not a size"),
    (["search"], "Missing argument"),
    (["search", "x", "--limit", "0"], "range"),
    (["ingest", "{missing}"], "does not exist"),
    (["ingest", "{folder}", "--jobs", "-1"], "0 (one per core) or more"),
    (["transcode", "--jobs", "-2"], "0 (one per core) or more"),
    (["audit", "--level", "full", "--jobs", "-1"], "0 (one per core) or more"),
    (["ingest", "{folder}", "--mode", "fly"], "is not one of"),
    (["dupes", "--prefer", "weird"], "sha256"),
    (["audit", "--level", "weird"], "is not one of"),
    (["seedlist", "--max-size", "lots"], "not a size"),
    (["torrents", "--torrent", "{missing}"], "does not exist"),
    (["serve", "--port", "99999"], "range"),
    (["acquire", "bogus"], "unknown source"),
    (["acquire", "urls:{missing}"], "no such file"),
    (["acquire", "--plan", "{missing}", "urls:{text}"], "no plan"),
    (["transcode", "--plan", "{missing}"], "no plan"),
    (["transcode", "--bitrate", "fast"], "not a bit rate"),
    (["plan", "show", "{missing}"], "no plan"),
    (["plan", "--budget", "1TB", "--plot", "{junk}/curve.png"], "is not a folder"),
    (["plan", "--budget", "1TB", "--out", "{junk}/sub/plan.parquet"], "is not a folder"),
    (["audit", "--budget", "lots"], "not a duration"),
    (["init", "{junk}"], "is a file"),
]
FAILURE = [
    (["publish", "nosuch"], "no release named"),
    (["pack", "r1"], "store is empty"),
    (["plan", "--budget", "1TB"], "no tracks"),
    (["torrents", "--torrent", "{junk}"], "bencode"),
    (["verify", "--release", "nosuch"], "no release"),
    (["catalog", "import", "{junk}"], "not a catalogue"),
    (["transcode"], "no plan"),
    (["init", "{busy}"], "not empty"),
    (["--archive", "{nowhere}", "search", "x"], "no musicark archive"),
    (["search", "x", "--archive", "{nowhere}"], "no musicark archive"),
]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Runner:
    """One archive for the whole table: none of these commands may change it."""
    return Runner(init_archive(tmp_path_factory.mktemp("exit") / "archive"))


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp_path = tmp_path_factory.mktemp("paths")
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "junk.bin").write_bytes(b"garbage\x00\x01")
    (tmp_path / "cat.jsonl").write_text('{"id": "t1", "title": "A"}\n')
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    (tmp_path / "nowhere").mkdir()
    return {
        "missing": str(tmp_path / "missing.jsonl"),
        "folder": str(tmp_path / "folder"),
        "fifo": str(tmp_path / "fifo"),
        "junk": str(tmp_path / "junk.bin"),
        "text": str(tmp_path / "cat.jsonl"),
        "busy": str(tmp_path / "busy"),
        "nowhere": str(tmp_path / "nowhere"),
    }


def _check(run: Runner, args: list[str], paths: dict[str, str], code: int, message: str) -> None:
    argv = [a.format(**paths) for a in args]
    result = run(*argv, check=False)
    shown = result.output.strip()
    assert result.exit_code == code, f"musicark {' '.join(argv)} -> {result.exit_code}: {shown}"
    assert message in shown, shown
    assert "Traceback" not in shown
    if shown.startswith("musicark: error:"):
        assert len(shown.splitlines()) == 1, shown


@pytest.mark.parametrize(("args", "message"), USAGE, ids=[" ".join(a) for a, _ in USAGE])
def test_usage_errors_exit_2(
    shared: Runner, paths: dict[str, str], args: list[str], message: str
) -> None:
    _check(shared, args, paths, 2, message)


@pytest.mark.parametrize(("args", "message"), FAILURE, ids=[" ".join(a) for a, _ in FAILURE])
def test_other_failures_exit_1(
    shared: Runner, paths: dict[str, str], args: list[str], message: str
) -> None:
    _check(shared, args, paths, 1, message)


def test_archive_before_the_command(run: Runner, archive: Archive, tmp_path: Path) -> None:
    elsewhere = {"MUSICARK_ARCHIVE": str(tmp_path)}  # not an archive: the option must win
    out = run("--archive", archive.root, "index", "status", env=elsewhere).output
    assert "no search index" in out or "search index" in out
    # after the command wins over before it
    result = run("--archive", tmp_path, "index", "status", "--archive", archive.root, check=False)
    assert result.exit_code == 0, result.output


def test_unexpected_error_is_one_logged_line_and_debug_shows_the_traceback(
    run: Runner, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import musicark.catalog.stats

    def broken(*args: object, **kwargs: object) -> None:
        try:
            {}["missing"]
        except KeyError as exc:
            raise RuntimeError("a bug") from exc

    monkeypatch.setattr(musicark.catalog.stats, "catalog_stats", broken)
    result = run("catalog", "stats", check=False)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines == [
        "musicark: error: unexpected RuntimeError: a bug"
        " (--debug or MUSICARK_DEBUG=1 shows the traceback)"
    ]
    # the traceback still reaches other log handlers (here pytest's, shown on a failure)
    assert any(r.exc_info and "a bug" in str(r.exc_info[1]) for r in caplog.records)
    for argv, env in ((["--debug"], {}), ([], {"MUSICARK_DEBUG": "1"})):
        result = run(*argv, "catalog", "stats", check=False, env=env)
        assert result.exit_code == 1
        assert "Traceback" in result.output and "KeyError: 'missing'" in result.output
        assert "direct cause" in result.output  # the cause is kept
