"""The `musicark` command: parses, calls the library, prints. Nothing else."""

from __future__ import annotations

from importlib import import_module
from typing import IO, Any

import click

from musicark import __version__
from musicark.errors import MusicarkError, UsageError

# One module per domain; each defines `register(group)`.
COMMAND_MODULES = ("catalog", "plan", "release", "search", "store", "swarm", "web")


class CommandError(click.ClickException):
    """A library error shown as one line: `musicark: error: ...`."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click declares it a ClassVar

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"musicark: error: {self.format_message()}", err=True, file=file)


class MusicarkGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            raise CommandError(str(exc), 2) from None
        except MusicarkError as exc:
            raise CommandError(str(exc), 1) from None
        except KeyboardInterrupt:
            raise CommandError("interrupted; run the command again to resume", 130) from None


@click.group(
    cls=MusicarkGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="musicark")
def cli() -> None:
    """musicark: build, verify and distribute music preservation archives."""


for _name in COMMAND_MODULES:
    import_module(f"musicark.cli.{_name}").register(cli)


def main() -> None:
    cli(prog_name="musicark")
