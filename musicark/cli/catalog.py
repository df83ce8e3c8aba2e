"""`musicark init` and `musicark catalog ...`."""

from __future__ import annotations

from pathlib import Path

import click

from musicark.archive import init_archive
from musicark.catalog.formats.base import format_names
from musicark.cli.common import archive_option, echo_json, get_archive, progress_bar
from musicark.units import parse_bitrate


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def init_command(directory: Path) -> None:
    """Create an archive in DIRECTORY: settings, catalogue, store and release folders."""
    archive = init_archive(directory)
    click.echo(f"archive ready at {archive.root}")


@click.group("catalog")
def catalog_group() -> None:
    """Import, summarise and export the catalogue of tracks, albums and artists."""


@catalog_group.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", *format_names()]),
    default="auto",
    show_default=True,
    help="Input format; auto recognises each file from its content. Plugins add formats "
    "(docs/plugins.md).",
)
@click.option("--source", help="Source name for records that carry none (default: local).")
@click.option("--rights", "default_rights", help="Rights of records that carry none.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@archive_option
def import_command(
    files: tuple[Path, ...],
    fmt: str,
    source: str | None,
    default_rights: str | None,
    as_json: bool,
    archive_path: str | None,
) -> None:
    """Import catalogue FILES (musicark JSONL/CSV/Parquet, MusicBrainz dump; zst/gz/xz)."""
    from musicark.catalog.importer import import_catalog

    archive = get_archive(archive_path)
    with progress_bar() as progress:
        summary = import_catalog(
            archive,
            list(files),
            format=fmt,
            source=source,
            default_rights=default_rights,
            progress=progress,
        )
    if as_json:
        echo_json(summary.as_dict())
        return
    for f in summary.files:
        click.echo(
            f"{f.path} ({f.format}): {f.imported} imported, {f.updated} updated, "
            f"{f.unchanged} unchanged, {f.rejected} rejected"
        )
        if f.rejects_file:
            click.echo(f"  rejected rows, with line and reason: {f.rejects_file}")
    if len(summary.files) > 1:
        click.echo(f"total: {summary.describe()}")


@catalog_group.command("stats")
@click.option(
    "--bitrate", default="160k", show_default=True, help="Bit rate for the audio size estimate."
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@archive_option
def stats_command(bitrate: str, as_json: bool, archive_path: str | None) -> None:
    """Tracks, artists, albums, ISRCs, popularity, rights, sources and estimated audio size."""
    from musicark.catalog.stats import catalog_stats, format_stats

    stats = catalog_stats(get_archive(archive_path), bitrate=parse_bitrate(bitrate))
    if as_json:
        echo_json(stats)
    else:
        click.echo(format_stats(stats))


@catalog_group.command("export")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["sqlite", "parquet", "jsonl"]),
    default=None,
    help="Output format (default: from OUT's name: .sqlite, .parquet, .jsonl; .zst, .gz or .xz after .sqlite or .jsonl compresses).",
)
@archive_option
def export_command(out: Path, fmt: str | None, archive_path: str | None) -> None:
    """Write the catalogue to OUT as SQLite, Parquet or interchange JSONL (.zst/.gz/.xz compress)."""
    from musicark.catalog.export import export_catalog

    archive = get_archive(archive_path)
    with progress_bar() as progress:
        n = export_catalog(archive, out, format=fmt, progress=progress)
    click.echo(f"exported {n} tracks to {out}")


@catalog_group.command("enrich")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--key",
    type=click.Choice(["mbid", "isrc", "id"]),
    required=True,
    help="What the file's rows name: a MusicBrainz recording id, an ISRC, or the source's "
    "track id.",
)
@click.option(
    "--field",
    type=click.Choice(["listens", "listeners"]),
    default="listens",
    show_default=True,
    help="Which count becomes the play count.",
)
@click.option("--source", help="Name recorded as the counts' source (default: FILE's name).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@archive_option
def enrich_command(
    file: Path,
    key: str,
    field: str,
    source: str | None,
    as_json: bool,
    archive_path: str | None,
) -> None:
    """Set play counts from listening data in FILE (CSV, Parquet or JSONL; zst/gz/xz)."""
    from musicark.catalog.enrich import enrich_catalog

    archive = get_archive(archive_path)
    with progress_bar() as progress:
        s = enrich_catalog(archive, file, key=key, field=field, source=source, progress=progress)
    if as_json:
        echo_json(s.to_dict())
        return
    click.echo(
        f"{s.path}: {s.rows} rows, {s.matched} matched, {s.unknown} unknown keys, "
        f"{s.rejected} rejected; {s.tracks_updated} tracks updated, "
        f"{s.tracks_unchanged} unchanged (source {s.source})"
    )
    if s.rejects_file:
        click.echo(f"  rejected rows, with line and reason: {s.rejects_file}")


def register(cli: click.Group) -> None:
    cli.add_command(init_command)
    cli.add_command(catalog_group)
