"""`musicark ingest`, `musicark dupes` and `musicark audit`."""

from __future__ import annotations

from typing import Any

import click

from musicark.cli.common import archive_option, echo_json, get_archive, progress_bar


def _summary_lines(data: dict[str, Any]) -> list[str]:
    lines = []
    for p in data["problems"]:
        lines.append(f"  {p['status']}: {p['path']}: {p['reason']}")
    if data["more_problems"]:
        lines.append(f"  ... and {data['more_problems']} more (see the ledger)")
    counts = ", ".join(f"{n} {status}" for status, n in data["counts"].items()) or "nothing new"
    rate = f", {data['files_per_second']} files/s" if data["files_per_second"] else ""
    files = f"{data['files']} file" + ("" if data["files"] == 1 else "s")
    head = f"ingested {files} in {data['seconds']:.1f} s{rate}: {counts}"
    extra = []
    if data["unchanged"]:
        extra.append(f"{data['unchanged']} unchanged since the last run")
    if data["repeated"]:
        extra.append(f"{data['repeated']} paths given more than once")
    if extra:
        head += f" ({'; '.join(extra)})"
    return [head, *lines]


@click.command("ingest")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=str))
@click.option(
    "--mode",
    type=click.Choice(["copy", "hardlink", "move"]),
    default="copy",
    show_default=True,
    help="copy the files, hard-link them (same filesystem), or move them (deleted after verification).",
)
@click.option(
    "--jobs",
    type=int,
    default=None,
    help="Worker processes (0: one per core; default: [ingest] jobs, else one per core).",
)
@click.option(
    "--no-fingerprint",
    is_flag=True,
    help="Skip Chromaprint fingerprints (no acoustic dedupe for these files).",
)
@click.option(
    "--source",
    default=None,
    help="Name of where the files come from, kept with each provenance record.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@archive_option
def ingest_command(
    paths: tuple[str, ...],
    mode: str,
    jobs: int | None,
    no_fingerprint: bool,
    source: str | None,
    as_json: bool,
    archive_path: str | None,
) -> None:
    """Store audio files and folders (PATHS) by sha256, probe, tag, fingerprint and match them.

    Exit status 1 when any file of this run ended in an error (the others are ingested).
    """
    from musicark.store.ingest import ingest

    archive = get_archive(archive_path)
    with progress_bar(enabled=not as_json) as callback:
        summary = ingest(
            archive,
            list(paths),
            mode=mode,
            jobs=jobs,
            fingerprint=not no_fingerprint,
            source=source,
            progress=callback,
        )
    data = summary.to_dict()
    if as_json:
        echo_json(data)
    else:
        for line in _summary_lines(data):
            click.echo(line)
    if not summary.ok:
        raise click.exceptions.Exit(1)  # some files could not be ingested (see the ledger)


@click.command("dupes")
@click.option(
    "--acoustic", is_flag=True, help="Also find near-duplicates by Chromaprint fingerprint."
)
@click.option(
    "--prefer",
    "prefer_sha",
    default=None,
    metavar="SHA256",
    help="Make this blob the preferred rendition of its track.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@archive_option
def dupes_command(
    acoustic: bool, prefer_sha: str | None, as_json: bool, archive_path: str | None
) -> None:
    """Exact duplicates, renditions of one recording (and which is preferred), acoustic near-duplicates."""
    from musicark.store.dupes import find_dupes, prefer

    archive = get_archive(archive_path)
    if prefer_sha:
        result = prefer(archive, prefer_sha)
        if as_json:
            echo_json(result.to_dict())
        else:
            click.echo(f"preferred {result.sha256} for track {result.track_id}")
        return
    data = find_dupes(archive, acoustic=acoustic).to_dict()
    if as_json:
        echo_json(data)
        return
    click.echo(f"{data['blobs']} blobs; {len(data['exact'])} with several source paths")
    for item in data["exact"]:
        click.echo(f"exact {item['sha256']}: {item['copies']} paths")
        for path in item["paths"]:
            click.echo(f"    {path}")
    click.echo(f"{len(data['same_recording'])} tracks with several renditions")
    for group in data["same_recording"]:
        click.echo(f"track {group['track_id']}:")
        for r in group["renditions"]:
            mark = "*" if r["preferred"] else " "
            kbps = f" {round(r['bitrate'] / 1000)} kbit/s" if r["bitrate"] else ""
            why = f"  ({r['preferred_reason']})" if r["preferred"] else ""
            click.echo(f"  {mark} {r['sha256']} {r['codec']}{kbps}{why}")
    click.echo(f"{len(data['derived'])} derived renditions")
    for d in data["derived"]:
        click.echo(
            f"  {d['sha256']} <- {d['source_sha256']} ({d['codec']}"
            f" {round(d['bitrate'] / 1000)} kbit/s, track {d['track_id']})"
        )
    if acoustic:
        click.echo(f"{len(data['acoustic'])} acoustic near-duplicate pairs")
        for d in data["acoustic"]:
            click.echo(
                f"  {d['a']} ~ {d['b']}: {d['ber']:.1%} bits differ, offset {d['offset_s']} s,"
                f" overlap {d['overlap_s']} s"
            )


@click.command("audit")
@click.option(
    "--level",
    type=click.Choice(["presence", "size", "full"]),
    default="full",
    show_default=True,
    help="presence: files exist; size: and have their size; full: and re-hash to their name.",
)
@click.option(
    "--jobs",
    type=int,
    default=None,
    help="Hashing threads for --level full (0: one per core; default: [ingest] jobs).",
)
@click.option(
    "--sample",
    type=float,
    default=None,
    metavar="PERCENT",
    help="Rolling audit: re-hash this share of the blobs, least recently verified first.",
)
@click.option(
    "--budget",
    default=None,
    metavar="DURATION",
    help="Rolling audit: re-hash least recently verified blobs for this long (90s, 15m, 2h).",
)
@click.option(
    "--repair",
    is_flag=True,
    help="Fetch changed and missing blobs back from the swarm of the releases holding them.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@archive_option
def audit_command(
    level: str,
    jobs: int | None,
    sample: float | None,
    budget: str | None,
    repair: bool,
    as_json: bool,
    archive_path: str | None,
) -> None:
    """Check the store's fixity: changed, missing and untracked blobs (exit status 1 if any)."""
    from musicark.store.audit import audit
    from musicark.store.fixity import parse_duration

    archive = get_archive(archive_path)
    seconds = parse_duration(budget) if budget is not None else None
    with progress_bar(enabled=not as_json) as callback:
        result = audit(
            archive,
            level=level,
            jobs=jobs,
            sample=sample,
            budget=seconds,
            repair=repair,
            progress=callback,
        )
    data = result.to_dict()
    if as_json:
        echo_json(data)
    else:
        for item in data["changed"]:
            click.echo(f"changed {item['sha256']}: {item['problem']}")
        for sha in data["missing"]:
            click.echo(f"missing {sha}")
        for rel in data["untracked"]:
            click.echo(f"untracked store/{rel}")
        c = data["counts"]
        verdict = "ok" if data["ok"] else "PROBLEMS"
        click.echo(
            f"audit ({data['level']}) {verdict}: {data['checked']} blobs checked,"
            f" {c['changed']} changed, {c['missing']} missing, {c['untracked']} untracked"
            f" in {data['seconds']:.1f} s"
        )
        if result.rolling is not None:
            r = result.rolling
            click.echo(
                f"rolling: {r['share_checked']:.1%} of {r['store_blobs']} blobs checked;"
                f" {r['verified_recent_share']:.1%} verified in the last {r['recent_days']} days,"
                f" {r['never_verified']} never verified"
            )
        for rep in result.repairs or []:
            where = f" ({rep['torrent']}: {rep['path']})" if rep["torrent"] else ""
            detail = f": {rep['detail']}" if rep["detail"] else ""
            click.echo(f"{rep['status']} {rep['sha256']}{where}{detail}")
    if not result.ok and not result.healed:  # exit 0 when every problem was repaired
        raise click.exceptions.Exit(1)


def register(cli: click.Group) -> None:
    cli.add_command(ingest_command)
    cli.add_command(dupes_command)
    cli.add_command(audit_command)
