"""Shared fixtures: real archives in tmp_path, the CLI through click's runner."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import settings

from musicark.archive import Archive, init_archive
from musicark.cli import cli

# Property tests (hypothesis, schemathesis): free exploration locally; in CI the same
# examples every run (derandomized, no example database), so a submission never fails on luck.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI", "").lower() in ("true", "1") else "default")


@pytest.fixture
def archive(tmp_path: Path) -> Archive:
    return init_archive(tmp_path / "archive")


class Runner:
    """Runs `musicark ...` in-process against one archive, like a user would."""

    def __init__(self, archive: Archive | None) -> None:
        self.archive = archive
        self._runner = CliRunner()

    def __call__(
        self, *args: str | Path, check: bool = True, env: dict[str, str] | None = None
    ) -> Result:
        argv: Sequence[str] = [str(a) for a in args]
        environ = {"MUSICARK_ARCHIVE": str(self.archive.root)} if self.archive else {}
        environ.update(env or {})
        result = self._runner.invoke(cli, argv, env=environ, catch_exceptions=False)
        if check and result.exit_code != 0:
            raise AssertionError(
                f"musicark {' '.join(argv)} exited {result.exit_code}:\n{result.output}"
            )
        return result


@pytest.fixture
def run(archive: Archive) -> Runner:
    return Runner(archive)
