"""`musicark init` and `musicark catalog ...`."""

from __future__ import annotations

from pathlib import Path

import click

from musicark.archive import init_archive


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def init_command(directory: Path) -> None:
    """Create an archive in DIRECTORY: settings, catalogue, store and release folders."""
    archive = init_archive(directory)
    click.echo(f"archive ready at {archive.root}")


@click.group("catalog")
def catalog_group() -> None:
    """Import, summarise and export the catalogue of tracks, albums and artists."""


def register(cli: click.Group) -> None:
    cli.add_command(init_command)
    cli.add_command(catalog_group)
