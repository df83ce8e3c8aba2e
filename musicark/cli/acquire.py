"""`musicark acquire` and `musicark sources`."""

from __future__ import annotations

from typing import Any

import click

from musicark.cli.common import archive_option, echo_json, get_archive, progress_bar


def _lines(data: dict[str, Any], *, dry_run: bool) -> list[str]:
    if dry_run:
        lines = []
        for item in data["planned"]:
            first = item["offers"][0]
            size = f"{first['size']} bytes" if first["size"] is not None else "size unknown"
            track = f"track {item['track_id']}" if item["track_id"] is not None else "unmatched"
            licence = first["rights"] or "no licence stated"
            lines.append(f"{track}: {first['where']} ({size}, {licence}) from {first['source']}")
        lines.append(f"would fetch {len(data['planned'])} files ({data['mode']} mode)")
        return lines + [f"  {p['problem']}" for p in data["problems"] if "problem" in p]
    lines = [
        f"  {p['status']}: {p['offer']}: {p['reason']}" for p in data["problems"] if "status" in p
    ]
    lines += [f"  {p['problem']}" for p in data["problems"] if "problem" in p]
    counts = ", ".join(f"{n} {s}" for s, n in data["counts"].items()) or "nothing new"
    head = f"acquired in {data['seconds']:.1f} s ({data['mode']} mode): {counts}"
    extra = []
    failed = data.get("unchanged_failed", 0)
    if data["unchanged"] - failed:
        extra.append(f"{data['unchanged'] - failed} done by earlier runs")
    if failed:
        extra.append(f"{failed} failed in earlier runs, not retried (see the ledger)")
    if data["unmatched_offers"]:
        extra.append(f"{data['unmatched_offers']} offers match no catalogue track")
    if extra:
        head += f" ({'; '.join(extra)})"
    return [head, *lines]


@click.command("acquire")
@click.argument("sources", nargs=-1, required=True)
@click.option(
    "--plan",
    default="auto",
    show_default=True,
    help="`latest` (the archive's plan), a plan FILE, or `none` (every offer); "
    "`auto` uses the latest plan when there is one.",
)
@click.option("--limit", type=int, default=None, help="Fetch at most N tracks this run.")
@click.option(
    "--max-bytes", default=None, metavar="SIZE", help="Stop after about SIZE (e.g. 50GB)."
)
@click.option("--concurrency", type=int, default=8, show_default=True, help="Transfers at once.")
@click.option(
    "--per-host", type=int, default=4, show_default=True, help="Transfers at once per host."
)
@click.option(
    "--rate-limit",
    type=float,
    default=0.0,
    show_default=True,
    metavar="R",
    help="Requests per second per host (0: no limit; robots.txt Crawl-delay still applies).",
)
@click.option(
    "--ia-base-url",
    default="https://archive.org",
    show_default=True,
    help="Internet Archive endpoint for `ia:` sources (a mirror).",
)
@click.option("--no-fingerprint", is_flag=True, help="Store without Chromaprint fingerprints.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="List what would be fetched, from where, with sizes and licences.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@archive_option
def acquire_command(
    sources: tuple[str, ...],
    plan: str,
    limit: int | None,
    max_bytes: str | None,
    concurrency: int,
    per_host: int,
    rate_limit: float,
    ia_base_url: str,
    no_fingerprint: bool,
    dry_run: bool,
    as_json: bool,
    archive_path: str | None,
) -> None:
    """Fetch tracks from SOURCES (NAME:ARGUMENT, see `musicark sources`) into the store.

    With a plan, works through its selected tracks in rank order; each file is verified
    (size, the source's checksums, a decode probe) before the store takes it, and every
    outcome goes to the ledger. Stop it at any time: the next run resumes.
    Exit status 1 when an offer of this run failed for a reason other than availability.
    """
    from musicark.acquire import HttpSettings, acquire
    from musicark.units import parse_size

    budget = parse_size(max_bytes, what="--max-bytes") if max_bytes else None
    archive = get_archive(archive_path)
    settings = HttpSettings(concurrency=concurrency, per_host=per_host, rate_limit=rate_limit)
    with progress_bar(enabled=not as_json and not dry_run) as callback:
        summary = acquire(
            archive,
            list(sources),
            plan=plan,
            limit=limit,
            max_bytes=budget,
            http=settings,
            dry_run=dry_run,
            fingerprint=not no_fingerprint,
            ia_base_url=ia_base_url,
            progress=callback,
        )
    data = summary.to_dict()
    if as_json:
        echo_json(data)
    else:
        for line in _lines(data, dry_run=dry_run):
            click.echo(line)
    if not summary.ok:
        raise click.exceptions.Exit(1)


@click.command("sources")
@click.option("--json", "as_json", is_flag=True, help="Print the sources as JSON.")
def sources_command(as_json: bool) -> None:
    """List the acquisition sources (built in and plugins) and what each needs."""
    from musicark.acquire import source_classes

    rows = [
        {"name": name, "needs": cls.needs, "summary": cls.summary, "module": cls.__module__}
        for name, cls in source_classes().items()
    ]
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        click.echo(f"{row['name']}:  {row['summary']}")
        click.echo(f"    {row['name']}:{row['needs']}")


def register(group: click.Group) -> None:
    group.add_command(acquire_command)
    group.add_command(sources_command)
