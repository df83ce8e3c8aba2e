"""Every command has help text and an entry in docs/cli.md."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from musicark.cli import cli

DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def _commands(group: click.Group, prefix: str = "musicark") -> Iterator[tuple[str, click.Command]]:
    for name, command in sorted(group.commands.items()):
        path = f"{prefix} {name}"
        yield path, command
        if isinstance(command, click.Group):
            yield from _commands(command, path)


ALL = list(_commands(cli))


def test_there_are_commands() -> None:
    assert any(path == "musicark init" for path, _ in ALL)


@pytest.mark.parametrize(("path", "command"), ALL, ids=[p for p, _ in ALL])
def test_command_has_help(path: str, command: click.Command) -> None:
    assert (command.help or "").strip(), f"{path} has no help text"
    for param in command.params:
        if isinstance(param, click.Option):
            assert (param.help or "").strip(), f"{path} {param.opts[0]} has no help text"


@pytest.mark.parametrize(("path", "command"), ALL, ids=[p for p, _ in ALL])
def test_command_is_documented(path: str, command: click.Command) -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert f"## `{path}`" in text or f"### `{path}`" in text, f"{path} is missing from docs/cli.md"
