"""What every command shares: the --archive option, logging, JSON output, the progress bar."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from musicark.archive import ENV_VAR, Archive, open_archive
from musicark.progress import Progress as Snapshot
from musicark.progress import ProgressCallback

F = TypeVar("F", bound=Callable[..., Any])

err_console = Console(stderr=True)

ARCHIVE_HELP = f"Archive folder (default: ${ENV_VAR}, else the current folder)."


def _archive_value(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    # `musicark --archive A cmd` is as good as `musicark cmd --archive A`; either beats $ENV_VAR.
    source = ctx.get_parameter_source(param.name or "")
    if source == click.core.ParameterSource.COMMANDLINE:
        return value
    outer = ctx.find_root().params.get("archive_path")
    return outer if outer is not None else value


def archive_option(func: F) -> F:
    return click.option(
        "--archive",
        "archive_path",
        envvar=ENV_VAR,
        type=click.Path(file_okay=False, path_type=str),
        default=None,
        callback=_archive_value,
        help=ARCHIVE_HELP,
    )(func)


def writable_file(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """Callback of an output file's option: checked before any work starts, so that a long
    plan is not lost to a typo. Missing folders are made later; the nearest one that exists
    must be a writable folder."""
    if value is None:
        return None
    folder = value.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise click.BadParameter(f"{value}: {folder} is not a folder", ctx, param)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise click.BadParameter(f"{value}: the folder {folder} is not writable", ctx, param)
    return value


class _LevelFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        record.level = record.levelname.lower()
        return super().format(record)


def configure_logging(*, debug: bool) -> None:
    """Log records of `musicark.*` to stderr: warnings and errors, everything with --debug.

    The logger itself passes debug records on (tracebacks of errors among them), so a
    handler someone else installs on the root logger, such as pytest's, still gets them.
    """
    logger = logging.getLogger("musicark")
    for handler in [h for h in logger.handlers if getattr(h, "musicark_cli", False)]:
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)  # the stderr of this run (CliRunner swaps it)
    handler.musicark_cli = True  # type: ignore[attr-defined]
    handler.setFormatter(_LevelFormatter("musicark: %(level)s: %(message)s"))
    handler.setLevel(logging.DEBUG if debug else logging.WARNING)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)


def executor_option() -> str | None:
    """The global `--executor` (or MUSICARK_EXECUTOR), when given."""
    ctx = click.get_current_context(silent=True)
    return ctx.find_root().params.get("executor") if ctx is not None else None


def get_archive(archive_path: str | None) -> Archive:
    """The archive, with the global `--executor` (when given) over its setting."""
    archive = open_archive(archive_path)
    executor = executor_option()
    if executor:
        archive = archive.with_settings({"ingest.executor": executor})
    return archive


def echo_json(data: Any) -> None:
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())


@contextmanager
def progress_bar(*, enabled: bool = True) -> Iterator[ProgressCallback | None]:
    """A callback for the library that draws one rich bar per stage on stderr."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[message]}"),  # a stage's own figures (acquire: MB/s)
    )
    with Progress(*columns, console=err_console, transient=True) as bar:
        tasks: dict[str, Any] = {}

        def callback(p: Snapshot) -> bool:
            if p.stage not in tasks:
                tasks[p.stage] = bar.add_task(p.stage, total=p.total, unit=p.unit, message="")
            bar.update(tasks[p.stage], completed=p.done, total=p.total, message=p.message)
            return True

        yield callback
