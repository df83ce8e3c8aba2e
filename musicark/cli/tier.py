"""`musicark transcode`."""

from __future__ import annotations

import click

from musicark.cli.common import archive_option, echo_json, get_archive, progress_bar


@click.command("transcode")
@click.option(
    "--plan",
    default="latest",
    show_default=True,
    help="Plan file whose selected tracks to derive renditions for (latest: the archive's last).",
)
@click.option(
    "--tier",
    type=click.Choice(["zero", "main"]),
    default="zero",
    show_default=True,
    help="Plan tier to derive renditions for (zero: the popularity-0 long tail).",
)
@click.option(
    "--codec",
    type=click.Choice(["opus"]),
    default="opus",
    show_default=True,
    help="Codec of the derived renditions.",
)
@click.option(
    "--bitrate",
    default=None,
    help="Bit rate, e.g. 75k (default: [plan] bitrate_zero_popularity, 75k).",
)
@click.option(
    "--jobs",
    type=int,
    default=None,
    help="Encoder processes (0: one per core; default: [ingest] jobs).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@archive_option
def transcode_command(
    plan: str,
    tier: str,
    codec: str,
    bitrate: str | None,
    jobs: int | None,
    as_json: bool,
    archive_path: str | None,
) -> None:
    """Derive a checked rendition (Opus) of each selected track of a plan tier.

    Each derived file must decode to its source's duration and match its Chromaprint
    fingerprint; a failed check is recorded and nothing is stored (exit status 1).
    """
    from musicark.tier.transcode import transcode
    from musicark.units import parse_bitrate

    archive = get_archive(archive_path)
    rate = (
        parse_bitrate(bitrate, what="--bitrate")
        if bitrate
        else archive.config.plan.bitrate_zero_popularity
    )
    with progress_bar(enabled=not as_json) as callback:
        summary = transcode(
            archive, plan=plan, tier=tier, codec=codec, bitrate=rate, jobs=jobs, progress=callback
        )
    data = summary.to_dict()
    if as_json:
        echo_json(data)
    else:
        for f in data["failures"]:
            click.echo(f"failed {f['source_sha256']}: {f['reason']}")
        rt = f", {data['realtime']}x realtime" if data["realtime"] else ""
        click.echo(
            f"transcode ({tier} tier, {codec} {rate // 1000}k): {data['selected']} tracks"
            f" selected, {data['held']} held; {data['transcoded']} transcoded,"
            f" {data['already']} done before, {data['not_needed']} not needed,"
            f" {data['failed']} failed checks, {data['failed_before']} failed before,"
            f" {data['missing_source']} sources missing in {data['seconds']:.1f} s{rt}"
        )
    if not summary.ok:
        raise click.exceptions.Exit(1)


def register(cli: click.Group) -> None:
    cli.add_command(transcode_command)
