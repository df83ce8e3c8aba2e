"""`musicark plan --budget SIZE ...` and `musicark plan show PLAN`."""

from __future__ import annotations

from pathlib import Path

import click

from musicark.cli.common import (
    archive_option,
    echo_json,
    get_archive,
    progress_bar,
    writable_file,
)
from musicark.errors import ArchiveError
from musicark.units import parse_bitrate, parse_size


@click.group("plan", invoke_without_command=True)
@click.option("--budget", help="Storage budget: 300TB, 2.5TiB, 800GB, ...")
@click.option(
    "--budget-tracks", type=int, help="At most this many tracks (with or without --budget)."
)
@click.option(
    "--strategy",
    type=click.Choice(["per-byte", "popularity"]),
    help="per-byte: most expected listens per byte (default, [plan] strategy); "
    "popularity: highest popularity first.",
)
@click.option(
    "--bitrate", help="Assumed bit rate of audio not yet held (default [plan] bitrate, 160k)."
)
@click.option(
    "--bitrate-zero-popularity",
    help="Assumed bit rate of the popularity-0 tier (default [plan] bitrate_zero_popularity, 75k).",
)
@click.option(
    "--one-per-isrc/--every-isrc-copy",
    default=None,
    help="Plan one track per ISRC, the others skipped_isrc_has_download (default: on).",
)
@click.option(
    "--rights",
    type=click.Choice(["all", "public"]),
    default="all",
    show_default=True,
    help="public: only what may be redistributed; all: the dark archive too.",
)
@click.option(
    "--min-zero-score",
    type=click.FloatRange(0, 100),
    help="Skip tracks with no expected listens whose secondary score (0-100) is below this.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    callback=writable_file,
    help="Also write the plan (Parquet) here; it is always kept as ARCHIVE/plans/latest.parquet.",
)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    callback=writable_file,
    help="Write the coverage curve (PNG): % of listens and of tracks against storage.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@archive_option
@click.pass_context
def plan_group(
    ctx: click.Context,
    budget: str | None,
    budget_tracks: int | None,
    strategy: str | None,
    bitrate: str | None,
    bitrate_zero_popularity: str | None,
    one_per_isrc: bool | None,
    rights: str,
    min_zero_score: float | None,
    out: Path | None,
    plot: Path | None,
    as_json: bool,
    archive_path: str | None,
) -> None:
    """Rank every catalogue track and select the prefix that fits a storage budget.

    Writes the plan (every track with its rank, expected bytes and listens, cumulative
    totals and status) and prints its summary: share of tracks and of listens covered,
    the marginal listens per extra TB at the budget and the knee of the coverage curve.
    `musicark plan show PLAN` prints the summary of a saved plan.
    """
    if ctx.invoked_subcommand is not None:
        return
    from musicark.plan import PlanOptions, format_summary, plan_archive

    archive = get_archive(archive_path)
    options = PlanOptions.from_config(
        archive.config,
        budget_bytes=parse_size(budget, what="budget") if budget is not None else None,
        budget_tracks=budget_tracks,
        strategy=strategy,
        bitrate=parse_bitrate(bitrate, what="--bitrate") if bitrate else None,
        bitrate_zero=parse_bitrate(bitrate_zero_popularity, what="--bitrate-zero-popularity")
        if bitrate_zero_popularity
        else None,
        one_per_isrc=one_per_isrc,
        rights=rights,
        min_zero_score=min_zero_score,
    )
    with progress_bar(enabled=not as_json) as callback:
        result = plan_archive(archive, options, out=out, plot=plot, progress=callback)
    meta = result.plan.metadata()
    if as_json:
        echo_json(
            {
                "summary": meta["summary"],
                "plan": [str(p) for p in result.paths],
                "plot": str(result.plot) if result.plot else None,
            }
        )
        return
    click.echo(format_summary(meta))
    click.echo(f"plan written to {', '.join(str(p) for p in result.paths)}")
    if result.plot:
        click.echo(f"coverage curve: {result.plot}")


@plan_group.command("show")
@click.argument("plan", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the summary (and curve) as JSON.")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    callback=writable_file,
    help="Write the saved plan's coverage curve (PNG) here.",
)
@archive_option
def show_command(
    plan: Path | None, as_json: bool, plot: Path | None, archive_path: str | None
) -> None:
    """Print the summary of a saved PLAN (default: the archive's latest plan)."""
    from musicark.plan import format_summary, latest_plan, load_plan_summary, plot_coverage

    path = plan if plan is not None else latest_plan(get_archive(archive_path))
    if plan is None and not path.exists():  # the archive's state, not the command line
        raise ArchiveError("the archive has no plan yet: make one with `musicark plan`")
    meta = load_plan_summary(path)
    if plot is not None:
        plot_coverage(meta, plot)
    if as_json:
        echo_json(meta)
    else:
        click.echo(format_summary(meta))


def register(cli: click.Group) -> None:
    cli.add_command(plan_group)
