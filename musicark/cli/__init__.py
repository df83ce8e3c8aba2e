"""The `musicark` command: parses, calls the library, prints. Nothing else.

Exit codes (docs/cli.md): 0 done; 1 the command was understood but failed; 2 the command
line cannot be acted on as written (click's own usage errors and `musicark.errors.UsageError`);
130 interrupted. An error that is not a `MusicarkError` is a bug: it is logged through
`logging` as one line (its traceback with `--debug` or MUSICARK_DEBUG=1) and exits 1.
"""

from __future__ import annotations

import logging
from importlib import import_module
from typing import IO, Any

import click

from musicark import __version__
from musicark.cli.common import ARCHIVE_HELP, configure_logging
from musicark.errors import MusicarkError, UsageError

# One module per domain; each defines `register(group)`.
COMMAND_MODULES = (
    "acquire",
    "catalog",
    "plan",
    "release",
    "search",
    "store",
    "swarm",
    "tier",
    "web",
)

log = logging.getLogger("musicark")


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
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except UsageError as exc:
            log.debug("usage error", exc_info=True)
            raise CommandError(str(exc), 2) from exc
        except MusicarkError as exc:
            log.debug("error", exc_info=True)
            raise CommandError(str(exc), 1) from exc
        except KeyboardInterrupt:
            raise CommandError("interrupted; run the command again to resume", 130) from None
        except Exception as exc:
            debug = bool(ctx.params.get("debug"))
            hint = "" if debug else " (--debug or MUSICARK_DEBUG=1 shows the traceback)"
            log.error("unexpected %s: %s%s", type(exc).__name__, exc, hint, exc_info=debug)
            if not debug:  # for handlers beyond the terminal's (a test's log capture)
                log.debug("the unexpected error's traceback", exc_info=exc)
            raise click.exceptions.Exit(1) from exc


def _executor_value(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from musicark.executor import parse_where

    try:
        return None if value is None else parse_where(value)
    except UsageError as exc:
        raise click.BadParameter(str(exc).removeprefix("--executor ")) from exc


@click.group(
    cls=MusicarkGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--archive",
    "archive_path",
    type=click.Path(file_okay=False, path_type=str),
    default=None,
    help=ARCHIVE_HELP + " Also accepted after the command.",
)
@click.option(
    "--debug",
    is_flag=True,
    envvar="MUSICARK_DEBUG",
    help="Show the traceback of an error, with its causes, and debug log records "
    "(also MUSICARK_DEBUG=1).",
)
@click.option(
    "--executor",
    "executor",
    envvar="MUSICARK_EXECUTOR",
    default=None,
    metavar="local|dask://HOST:PORT",
    callback=_executor_value,
    help="Where the per-file work runs: this machine, or a Dask cluster's workers "
    "(default: [ingest] executor; also MUSICARK_EXECUTOR).",
)
@click.version_option(__version__, prog_name="musicark")
def cli(archive_path: str | None, debug: bool, executor: str | None) -> None:
    """musicark: build, verify and distribute music preservation archives."""
    configure_logging(debug=debug)


for _name in COMMAND_MODULES:
    import_module(f"musicark.cli.{_name}").register(cli)


def main() -> None:
    cli(prog_name="musicark")
