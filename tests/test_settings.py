"""Settings have one source of truth (musicark.config.SETTINGS): the written musicark.toml,
the typed Config and docs/settings.md all agree with it; bad values fail when loaded."""

from __future__ import annotations

import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from musicark.archive import Archive, open_archive
from musicark.config import SETTINGS, Config, default_toml, load_config, settings_table
from musicark.errors import ArchiveError

DOCS = Path(__file__).resolve().parents[1] / "docs" / "settings.md"


def test_docs_show_every_setting_with_its_default_and_help() -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert settings_table() in text, (
        "docs/settings.md is out of date; paste the output of "
        "`python -c 'from musicark.config import settings_table; print(settings_table())'`"
    )


def test_written_file_config_and_table_agree(tmp_path: Path) -> None:
    data = tomllib.loads(default_toml())
    written = {f"{section}.{key}": v for section, kv in data.items() for key, v in kv.items()}
    assert written == {s.name: s.default for s in SETTINGS}
    typed = {
        f"{section.name}.{f.name}"
        for section in fields(Config)
        for f in fields(getattr(Config(), section.name))
    }
    assert typed == {s.name for s in SETTINGS}
    path = tmp_path / "musicark.toml"
    path.write_text(default_toml())
    assert load_config(path) == Config()


def test_sizes_and_bit_rates_are_parsed_once_on_load(archive: Archive) -> None:
    path = archive.root / "musicark.toml"
    path.write_text(
        path.read_text()
        .replace('bitrate = "160k"', 'bitrate = "96kbps"')
        .replace('target_size = "100GB"', 'target_size = "2GiB"')
        .replace('piece_size = "auto"', 'piece_size = "4MiB"')
    )
    config = open_archive(archive.root).config
    assert config.plan.bitrate == 96_000
    assert config.plan.bitrate_zero_popularity == 75_000
    assert config.release.target_size == 2 * 2**30
    assert config.release.piece_size == 4 * 2**20
    assert Config().release.piece_size is None  # auto


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[plan]\nbitrate = "fast"\n', "[plan] bitrate = 'fast'"),
        ('[plan]\nstrategy = "random"\n', "must be one of: per-byte, popularity"),
        ('[release]\ntarget_size = "lots"\n', "not a size"),
        ('[release]\nformat = "v3"\n', "must be one of"),
        ("[release]\nmax_files = 0\n", "at least 1"),
        ('[catalog]\ndefault_rights = "mine"\n', "unknown rights"),
        ('[catalog]\nbatch_rows = "many"\n', "must be int"),
        ("[plan]\none_per_isrc = 1\n", "must be bool"),
        ("[serve]\nprot = 80\n", "unknown setting [serve] prot"),
        ("[sevre]\nport = 80\n", "unknown section [sevre]"),
    ],
)
def test_bad_values_fail_when_the_file_is_loaded(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "musicark.toml"
    path.write_text(text)
    with pytest.raises(ArchiveError) as err:
        load_config(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_bad_setting_through_the_cli_is_one_line_exit_1(run, archive: Archive) -> None:  # type: ignore[no-untyped-def]
    path = archive.root / "musicark.toml"
    path.write_text(path.read_text().replace('format = "v1"', 'format = "v7"'))
    result = run("catalog", "stats", check=False)
    assert result.exit_code == 1
    assert result.output.startswith("musicark: error: ") and "[release] format" in result.output


def test_with_settings_changes_this_process_only(archive: Archive) -> None:
    changed = archive.with_settings({"plan.bitrate": "96k", "search.follow_catalog": False})
    assert changed.config.plan.bitrate == 96_000 and not changed.config.search.follow_catalog
    assert changed.config.plan.strategy == archive.config.plan.strategy
    assert open_archive(archive.root).config == archive.config
    with pytest.raises(ArchiveError, match="unknown setting"):
        archive.with_settings({"plan.bitrat": "96k"})
