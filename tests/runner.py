"""`musicark ...` in-process through click's runner, against one archive, as a user runs it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from click.testing import CliRunner, Result

from musicark.archive import Archive
from musicark.cli import cli


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
