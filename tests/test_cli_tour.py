"""Bad input met while following the README's tour: one-line errors and the right exit code."""

from __future__ import annotations

from pathlib import Path

from musicark.archive import Archive
from tests.acquire_server import FaultServer, Running
from tests.runner import Runner


def test_acquire_urls_list_that_is_not_text_is_one_line_error(
    archive: Archive, tmp_path: Path
) -> None:
    run = Runner(archive)
    binary = tmp_path / "tracks.parquet"
    binary.write_bytes(b"PAR1\x15\x04\x15\xa0\x00\x00\xff\xfe" * 50)
    latin = tmp_path / "list.csv"
    latin.write_bytes(b"url,track_id\nhttp://127.0.0.1:9/a.ogg,1\ncaf\xe9,2\n")
    for path, reason in ((binary, "not a CSV or JSONL list"), (latin, "not UTF-8 text")):
        result = run("acquire", f"urls:{path}", "--plan", "none", check=False)
        assert result.exit_code == 1, result.output
        assert reason in result.output
        assert "unexpected" not in result.output
        assert "Traceback" not in result.output


def test_a_file_that_is_not_a_plan_exits_1(archive: Archive, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    run = Runner(archive)
    other = tmp_path / "tracks.parquet"
    pq.write_table(pa.table({"x": [1]}), other)
    text = tmp_path / "notes.parquet"
    text.write_text("not parquet\n")
    for path in (other, text):
        for args in (["plan", "show", path], ["pack", "r1", "--plan", path]):
            result = run(*args, check=False)
            assert result.exit_code == 1, (args, result.output)
            assert result.output.startswith("musicark: error:"), result.output
    missing = run("plan", "show", tmp_path / "nope.parquet", check=False)
    assert missing.exit_code == 2


def test_seed_and_seedlist_times_must_be_positive(archive: Archive) -> None:
    run = Runner(archive)
    for args in (
        ["seed", "--seconds", "-5"],
        ["seed", "--seconds", "0"],
        ["seed", "--interval", "0"],
        ["seedlist", "--max-size", "1TB", "--timeout", "0"],
    ):
        result = run(*args, check=False)
        assert result.exit_code == 2, (args, result.output)
        assert "not in the range" in result.output


def test_locate_metadata_folder_that_does_not_exist_is_usage(tmp_path: Path) -> None:
    run = Runner(None)
    missing = run("locate", "x - y", "--metadata", tmp_path / "nowhere", check=False)
    assert missing.exit_code == 2 and "does not exist" in missing.output
    empty = run("locate", "x - y", "--metadata", tmp_path, check=False)
    assert empty.exit_code == 1 and "no locate.sqlite" in empty.output


def test_export_into_a_folder_that_does_not_exist_is_usage(
    archive: Archive, tmp_path: Path
) -> None:
    run = Runner(archive)
    result = run("catalog", "export", tmp_path / "nowhere" / "out.parquet", check=False)
    assert result.exit_code == 2, result.output
    assert result.output.strip() == (
        f"musicark: error: cannot write {tmp_path / 'nowhere' / 'out.parquet'}:"
        f" no folder {tmp_path / 'nowhere'}"
    )
    assert not (tmp_path / "nowhere").exists()


def test_no_archive_names_the_folder_once(tmp_path: Path) -> None:
    run = Runner(None)
    nowhere = tmp_path / "nowhere"
    result = run("--archive", nowhere, "search", "x", check=False)
    assert result.exit_code == 1
    assert result.output.startswith(f"musicark: error: no musicark archive at {nowhere};")
    env = run("search", "x", env={"MUSICARK_ARCHIVE": str(nowhere)}, check=False)
    assert env.exit_code == 1 and env.output.count(str(nowhere)) == 1


def test_acquire_ia_search_that_fails_is_one_line_error(archive: Archive) -> None:
    run = Runner(archive)
    app = FaultServer()  # answers 404 to advancedsearch.php
    with Running(app):
        result = run(
            "acquire", "ia:collection:x", "--ia-base-url", app.base, "--plan", "none",
            "--dry-run", check=False,
        )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert result.output.startswith("musicark: error: ia:collection:x: search failed:")
    assert "HTTP 404" in result.output and "unexpected" not in result.output


def test_verify_repair_gives_up_after_repair_timeout(tmp_path: Path) -> None:
    import random
    import time

    from musicark.torrent.create import create_torrent

    root = tmp_path / "downloads" / "Album"
    root.mkdir(parents=True)
    (root / "01.opus").write_bytes(random.Random(3).randbytes(70_000))
    torrent = tmp_path / "album.torrent"
    torrent.write_bytes(create_torrent(root, format="hybrid", piece_size=32 * 1024).data)
    with open(root / "01.opus", "r+b") as f:
        f.seek(1000)
        f.write(b"XXXX")
    run = Runner(None)
    ok = run("verify", torrent, "--data", root, "--level", "full", check=False)
    assert "B hashed in" in ok.output  # bytes read (pieces, and sha256 when known), not data
    t0 = time.monotonic()
    result = run(
        "verify", torrent, "--data", root, "--repair", "--repair-timeout", "1", check=False
    )
    assert time.monotonic() - t0 < 60
    assert result.exit_code == 1, result.output
    assert "up to 1 s per torrent" in result.output
    assert "failed Album/01.opus: not fetched within 1 s" in result.output
    bad = run("verify", torrent, "--data", root, "--repair-timeout", "0", check=False)
    assert bad.exit_code == 2


def test_an_archive_without_a_plan_exits_1(archive: Archive, tmp_path: Path) -> None:
    run = Runner(archive)
    urls = tmp_path / "urls.csv"
    urls.write_text("url,track_id\n")
    for args in (["plan", "show"], ["acquire", f"urls:{urls}", "--plan", "latest"]):
        result = run(*args, check=False)
        assert result.exit_code == 1, (args, result.output)
        assert "the archive has no plan yet" in result.output
    assert run("plan", "show", tmp_path / "nope.parquet", check=False).exit_code == 2


def test_plan_outputs_that_cannot_be_written_exit_2(archive: Archive, tmp_path: Path) -> None:
    """Checked before planning (a usage error, exit 2), so nothing is planned or written."""
    from tests.audio import import_catalog_rows, track

    import_catalog_rows(archive, [track(f"t{i}", f"Song {i}", "Anna") for i in range(3)], tmp_path)
    run = Runner(archive)
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder is needed")
    for args in (
        ["plan", "--budget", "1GB", "--plot", blocker / "c.png"],
        ["plan", "--budget", "1GB", "--out", blocker / "p.parquet"],
        ["plan", "show", "--plot", blocker / "c.png"],
    ):
        result = run(*args, check=False)
        assert result.exit_code == 2, (args, result.output)
        assert f"{blocker} is not a folder" in result.output
        assert not (archive.root / "plans").exists() or not any((archive.root / "plans").iterdir())


def test_acquire_again_tells_earlier_failures_from_earlier_fetches(
    archive: Archive, tmp_path: Path
) -> None:
    from tests.audio import make_file

    good = make_file(tmp_path / "good.ogg", seed=11, seconds=4).read_bytes()
    bad = make_file(tmp_path / "bad.ogg", seed=12, seconds=4).read_bytes()
    run = Runner(archive)
    app = FaultServer()
    with Running(app):
        urls = tmp_path / "urls.csv"
        urls.write_text(
            f"url,sha256\n{app.add('/good.ogg', good)},\n{app.add('/bad.ogg', bad)},{'0' * 64}\n"
        )
        first = run("acquire", f"urls:{urls}", "--plan", "none", check=False)
        assert first.exit_code == 1 and "error_checksum" in first.output
        again = run("acquire", f"urls:{urls}", "--plan", "none", check=False)
    head = again.output.splitlines()[0]
    assert "1 done by earlier runs" in head, again.output
    assert "1 failed in earlier runs, not retried" in head, again.output


def test_plan_score_is_a_usage_error_out_of_range(archive: Archive) -> None:
    run = Runner(archive)
    out = run("plan", "--budget", "1GB", "--min-zero-score", "200", check=False)
    assert out.exit_code == 2
    assert "0<=x<=100" in out.output or "range" in out.output
