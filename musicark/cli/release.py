"""`musicark pack`, `musicark publish` and `musicark locate`."""

from __future__ import annotations

from pathlib import Path

import click

from musicark.cli.common import archive_option, echo_json, get_archive, progress_bar


@click.command("pack")
@click.argument("release")
@click.option(
    "--plan",
    "plan",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Plan file (from `musicark plan`): pack tracks in its rank order.",
)
@click.option(
    "--target-size",
    default=None,
    help="Bytes of audio per data folder, e.g. 100GB (default: [release] target_size).",
)
@click.option(
    "--max-files",
    type=int,
    default=None,
    help="Files per data folder at most (default: [release] max_files).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["v1", "hybrid", "v2"]),
    default=None,
    help="Torrent format (default: [release] format, v1).",
)
@click.option(
    "--tracker",
    "trackers",
    multiple=True,
    help="Tracker announce URL; repeat for more (default: [release] trackers).",
)
@click.option(
    "--web-seed",
    "web_seeds",
    multiple=True,
    help="Web seed base URL (BEP 19); repeat for more (default: [release] web_seeds).",
)
@click.option(
    "--piece-size",
    default=None,
    help="auto, or a power of two such as 4MiB (default: [release] piece_size).",
)
@click.option(
    "--include-restricted",
    is_flag=True,
    help="Also pack all-rights-reserved and unknown rights (recorded in the release).",
)
@click.option("--jobs", type=int, default=0, help="Hashing workers (default: one per core).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@archive_option
def pack_command(
    release: str,
    plan: Path | None,
    target_size: str | None,
    max_files: int | None,
    fmt: str | None,
    trackers: tuple[str, ...],
    web_seeds: tuple[str, ...],
    piece_size: str | None,
    include_restricted: bool,
    jobs: int,
    as_json: bool,
    archive_path: str | None,
) -> None:
    """Pack stored, not yet released audio into data folders with deterministic torrents.

    Earlier folders of RELEASE are never changed: each run adds folders for what is new.
    """
    from musicark.release.pack import pack

    archive = get_archive(archive_path)
    with progress_bar(enabled=not as_json) as progress:
        summary = pack(
            archive,
            release,
            plan=plan,
            target_size=target_size,
            max_files=max_files,
            format=fmt,
            piece_size=piece_size,
            trackers=list(trackers) if trackers else None,
            web_seeds=list(web_seeds) if web_seeds else None,
            include_restricted=include_restricted,
            jobs=jobs,
            progress=progress,
        )
    if as_json:
        echo_json(summary.to_dict())
        return
    for folder in summary.folders:
        click.echo(f"{folder.name}: {folder.files} files, {folder.torrent_path}")
    click.echo(summary.describe())


@click.command("publish")
@click.argument("release")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["v1", "hybrid", "v2"]),
    default=None,
    help="Format of the metadata torrent (default: [release] format).",
)
@click.option("--tracker", "trackers", multiple=True, help="Tracker URL; repeat for more.")
@click.option("--web-seed", "web_seeds", multiple=True, help="Web seed URL (BEP 19).")
@click.option(
    "--no-catalog",
    "--no-catalogue",
    "no_catalog",
    is_flag=True,
    help="Leave the catalogue export out of the metadata (--no-catalogue works too).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@archive_option
def publish_command(
    release: str,
    fmt: str | None,
    trackers: tuple[str, ...],
    web_seeds: tuple[str, ...],
    no_catalog: bool,
    as_json: bool,
    archive_path: str | None,
) -> None:
    """Write RELEASE's metadata (catalogue, ledger, torrents.json, locate index) as a torrent."""
    from musicark.release.publish import publish

    archive = get_archive(archive_path)
    with progress_bar(enabled=not as_json) as progress:
        summary = publish(
            archive,
            release,
            format=fmt,
            trackers=list(trackers) if trackers else None,
            web_seeds=list(web_seeds) if web_seeds else None,
            catalog=not no_catalog,
            progress=progress,
        )
    if as_json:
        echo_json(summary.to_dict())
    else:
        click.echo(summary.describe())


@click.command("locate")
@click.argument("query")
@click.option(
    "--metadata",
    "metadata",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="A downloaded metadata release folder: answer offline, without an archive.",
)
@click.option("--release", default=None, help="Only this release.")
@click.option("--json", "as_json", is_flag=True, help="Print the locations as JSON.")
@archive_option
def locate_command(
    query: str,
    metadata: Path | None,
    release: str | None,
    as_json: bool,
    archive_path: str | None,
) -> None:
    """Find a track by id, ISRC, sha256 or "artist - title": torrent, path, magnet, range."""
    from musicark.errors import ReleaseError
    from musicark.release.locate import locate

    source = metadata if metadata is not None else get_archive(archive_path)
    found = locate(source, query, release=release)
    if as_json:
        echo_json([loc.to_dict() for loc in found])
        return
    if not found:
        raise ReleaseError(f"{query!r} is in no released torrent")
    for loc in found:
        first, last = loc.byte_range
        who = ", ".join(loc.artists)
        click.echo(f"{who} - {loc.title}" + (" (obsolete torrent)" if loc.obsolete else ""))
        click.echo(f"  torrent: {loc.torrent}  (release {loc.release})")
        click.echo(f"  path:    {loc.full_path}")
        click.echo(f"  bytes:   {first}-{last} of the torrent ({loc.size} bytes)")
        click.echo(f"  pieces:  {loc.first_piece}-{loc.last_piece} ({loc.piece_length} bytes each)")
        click.echo(f"  sha256:  {loc.sha256}")
        click.echo(f"  magnet:  {loc.magnet}")


def register(cli: click.Group) -> None:
    cli.add_command(pack_command)
    cli.add_command(publish_command)
    cli.add_command(locate_command)
