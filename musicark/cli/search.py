"""`musicark search` and `musicark index ...`."""

from __future__ import annotations

import click

from musicark.cli.common import archive_option, echo_json, get_archive, progress_bar


def _duration(ms: int | None) -> str:
    if ms is None:
        return "-:--"
    seconds = ms // 1000
    return f"{seconds // 60}:{seconds % 60:02d}"


@click.command("search")
@click.argument("query")
@click.option(
    "--limit",
    type=click.IntRange(1, 100),
    default=20,
    show_default=True,
    help="Number of results (1-100).",
)
@click.option(
    "--offset",
    type=click.IntRange(0, 10_000),
    default=0,
    show_default=True,
    help="Results to skip (for paging).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@archive_option
def search_command(
    query: str, limit: int, offset: int, as_json: bool, archive_path: str | None
) -> None:
    """Find tracks by title, artist or album words, or by ISRC, UPC or external id.

    Words are matched without regard to case or accents; the last word also matches as
    a prefix. Results are ranked by relevance blended with popularity.
    """
    from musicark.search import search

    results = search(get_archive(archive_path), query, limit=limit, offset=offset)
    if as_json:
        echo_json(results.to_dict())
        return
    if not results.hits:
        click.echo(f"no tracks match {results.query!r}")
        return
    for n, hit in enumerate(results.hits, start=results.offset + 1):
        click.echo(
            f"{n:>4}. {hit.title} — {hit.artists or '?'} — {hit.album or '?'}"
            f"  [{_duration(hit.duration_ms)}, popularity {hit.popularity}, id {hit.id}]"
        )
    shown = results.offset + len(results.hits)
    kind = "exact identifier match" if results.mode == "id" else "tracks match"
    at_least = "" if results.total_exact else "at least "
    click.echo(f"{results.offset + 1}-{shown} of {at_least}{results.total} ({kind})")


@click.group("index")
def index_group() -> None:
    """Build and update the search index (ARCHIVE/index/)."""


@index_group.command("rebuild")
@archive_option
def rebuild_command(archive_path: str | None) -> None:
    """Build the search index again from the whole catalogue."""
    from musicark.search import rebuild_index

    archive = get_archive(archive_path)
    with progress_bar() as progress:
        summary = rebuild_index(archive, progress=progress)
    click.echo(summary.describe())


@index_group.command("update")
@archive_option
def update_command(archive_path: str | None) -> None:
    """Apply catalogue changes made since the last update (builds the index if missing)."""
    from musicark.search import update_index

    archive = get_archive(archive_path)
    with progress_bar() as progress:
        summary = update_index(archive, progress=progress)
    click.echo(summary.describe())


@index_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@archive_option
def status_command(as_json: bool, archive_path: str | None) -> None:
    """Show what the search index holds and how many catalogue changes it lacks."""
    from musicark.search import index_status

    status = index_status(get_archive(archive_path))
    if as_json:
        echo_json(status.to_dict())
    elif status.state is None:
        click.echo("no search index yet; build it with `musicark index rebuild`")
    else:
        pending = "?" if status.pending_changes is None else status.pending_changes
        click.echo(
            f"search index {status.state.generation}: {status.documents} tracks,"
            f" built {status.state.built}, {pending} catalogue changes pending"
        )


def register(cli: click.Group) -> None:
    cli.add_command(search_command)
    cli.add_command(index_group)
