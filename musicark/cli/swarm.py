"""`musicark seed`, `verify`, `seedlist` and `torrents`."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from musicark.archive import Archive
from musicark.cli.common import (
    archive_option,
    echo_json,
    executor_option,
    get_archive,
    progress_bar,
)
from musicark.errors import ArchiveError, SwarmError, UsageError
from musicark.units import format_size, parse_size

if TYPE_CHECKING:  # the swarm modules load libtorrent: imported when a command runs
    from musicark.swarm.seed import SeedStatus
    from musicark.swarm.seedlist import SeedList
    from musicark.swarm.sources import SwarmTorrent
    from musicark.swarm.targets import Failure, Selection
    from musicark.swarm.verify import VerifyReport

LEVEL_CHOICE = click.Choice(["presence", "size", "full"])
F = TypeVar("F", bound=Callable[..., Any])


# ---------------------------------------------------------------- verify


def _print_report(rep: VerifyReport, *, verbose: bool) -> None:
    counts = ", ".join(f"{n} {status}" for status, n in rep.counts().items() if n)
    figures = ""
    if rep.level == "full":
        rate = rep.bytes_hashed / rep.seconds if rep.seconds > 0 else 0
        figures = (
            f"; {rep.pieces_checked} pieces checked, {rep.pieces_failed} failed,"
            f" {format_size(rep.bytes_hashed)} hashed in {rep.seconds:.2f} s ({format_size(rate)}/s)"
        )
    verdict = "OK" if rep.ok else "PROBLEMS"
    click.echo(f"{verdict} {rep.torrent} [{rep.level}] {rep.data}: {counts}{figures}")
    for f in rep.files if verbose else rep.problems():
        detail = []
        if f.bad_pieces:
            shown = ", ".join(str(p) for p in f.bad_pieces[:20])
            more = f" (+{len(f.bad_pieces) - 20} more)" if len(f.bad_pieces) > 20 else ""
            detail.append(f"failing pieces {shown}{more}")
        if f.reason and f.reason != "pieces fail":
            detail.append(f.reason)
        tail = f"  ({'; '.join(detail)})" if detail else ""
        click.echo(f"  {f.status:<10} {f.path}{tail}")


@click.command("verify")
@click.argument("torrent", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--data",
    "data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Data folder: the torrent's own folder as a client saves it, or the folder holding it.",
)
@click.option(
    "--release",
    "releases",
    multiple=True,
    help="Verify this release (or torrent) of the archive from its data folders; repeatable.",
)
@click.option(
    "--metadata",
    type=click.Path(file_okay=False, path_type=Path),
    help="A downloaded metadata release: verify each of its torrents found under --data.",
)
@click.option(
    "--level", type=LEVEL_CHOICE, default="full", show_default=True, help="How deep to check."
)
@click.option(
    "--jobs",
    type=int,
    default=0,
    help=(
        "Hashing workers (0: one process per core; two threads per core for a check under"
        " 64 MiB); with --executor dask://..., the cluster's workers hash."
    ),
)
@click.option("--verbose", "-v", is_flag=True, help="List every file, not only the problems.")
@click.option(
    "--repair",
    is_flag=True,
    help="Fetch missing and corrupt files back from the torrent's peers and web seeds.",
)
@click.option(
    "--repair-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=300.0,
    show_default=True,
    metavar="SECONDS",
    help="With --repair: how long to wait for each torrent's swarm.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the reports as JSON.")
@archive_option
def verify_command(
    torrent: Path | None,
    data: Path | None,
    releases: tuple[str, ...],
    metadata: Path | None,
    level: str,
    jobs: int,
    verbose: bool,
    repair: bool,
    repair_timeout: float,
    as_json: bool,
    archive_path: str | None,
) -> None:
    """Check data against torrents: presence, size, or full piece hashes (v1 and v2).

    Give TORRENT with --data DIR, or --release NAME, or --metadata DIR with --data DIR;
    with none of these, every torrent of the archive's releases is verified. Each file
    is reported ok, missing, corrupt (with its failing pieces) or unexpected; the exit
    status is 1 when anything is wrong.
    """
    from musicark.swarm.targets import verify_archive, verify_files, verify_selection

    if sum(x is not None and x != () for x in (torrent, releases, metadata)) > 1:
        raise UsageError("give one of TORRENT, --release or --metadata")
    if torrent is not None or metadata is not None:
        if data is None:
            raise UsageError("--data DIR is needed to say where the downloaded data is")
        selection = verify_files(torrent, metadata, data)
        where = executor_option() or "local"
    else:
        archive = get_archive(archive_path)
        selection = verify_archive(archive, releases, data)
        where = archive.config.ingest.executor
    with progress_bar(enabled=not as_json) as progress:
        outcome = verify_selection(
            selection, level=level, jobs=jobs, where=where, progress=progress
        )
        repairs: list[Any] = []
        if repair and not outcome.ok:
            from musicark.swarm.repair import repair_selection

            if not as_json:
                click.echo(
                    "fetching missing and corrupt files from the swarm"
                    f" (up to {repair_timeout:g} s per torrent)",
                    err=True,
                )
            repairs, outcome = repair_selection(
                selection,
                outcome,
                listen_host=_listen_host(archive_path),
                level=level,
                jobs=jobs,
                timeout=repair_timeout,
                progress=progress,
            )
    if as_json:
        extra = {"repairs": [r.to_dict() for r in repairs]} if repair else {}
        echo_json({**outcome.to_dict(), **extra})
    else:
        _print_warnings(outcome.warnings)
        for rep in outcome.reports:
            _print_report(rep, verbose=verbose)
        for r in repairs:
            click.echo(f"{r.status} {r.torrent}/{r.path}{': ' + r.detail if r.detail else ''}")
        if outcome.absent:
            click.echo(f"{len(outcome.absent)} torrent(s) have no data under {data}: not checked")
        _print_failures(outcome.failures)
    if not outcome.reports and not outcome.failures:
        raise SwarmError(f"none of the torrents in {metadata} has data under {data}")
    if not outcome.ok:
        sys.exit(1)


def _listen_host(archive_path: str | None) -> str:
    """Where a repair session listens: the archive's `[seed] listen` host, if any."""
    from musicark.errors import ArchiveError
    from musicark.swarm.session import parse_listen

    try:
        return parse_listen(get_archive(archive_path).config.seed.listen)[0]
    except ArchiveError:
        return "127.0.0.1"


def _print_warnings(warnings: Sequence[str]) -> None:
    for warning in warnings:
        click.echo(f"musicark: warning: {warning}", err=True)


def _print_failures(failures: Sequence[Failure]) -> None:
    for failure in failures:
        click.echo(f"musicark: error: {failure.error}", err=True)


# ---------------------------------------------------------------- seed


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, frame: object) -> None:
        stop.set()

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _status_line(status: SeedStatus) -> str:
    states: dict[str, int] = {}
    for ts in status.torrents:
        states[ts.state] = states.get(ts.state, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    line = (
        f"[{status.elapsed:6.0f} s] {len(status.torrents)} torrents ({summary}),"
        f" {status.peers} peers, up {format_size(status.upload_rate)}/s,"
        f" uploaded {format_size(status.uploaded)}"
    )
    if len(status.torrents) <= 3:  # a few torrents: each one's state too
        line += "".join(f" | {t.name[:24]}: {t.state}, {t.peers} peers" for t in status.torrents)
    return line


@click.command("seed")
@click.argument("releases", nargs=-1)
@click.option(
    "--listen",
    help="Address to listen on, HOST:PORT (default: [seed] listen in musicark.toml).",
)
@click.option(
    "--tracker", "trackers", multiple=True, help="Also announce to this tracker; repeatable."
)
@click.option(
    "--seconds",
    type=click.FloatRange(min=0, min_open=True),
    help="Stop after this many seconds (default: until Ctrl-C).",
)
@click.option(
    "--torrent",
    "torrent_files",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Seed this .torrent (or a folder of them) instead of releases, with --data; repeatable.",
)
@click.option(
    "--data",
    type=click.Path(exists=True, path_type=Path),
    help="With --torrent: the torrent's data folder, or the folder holding the torrents' data.",
)
@click.option("--dht", is_flag=True, help="Use the DHT (off by default).")
@click.option("--lsd", is_flag=True, help="Use local service discovery (off by default).")
@click.option("--upnp", is_flag=True, help="Map the port with UPnP and NAT-PMP (off by default).")
@click.option("--upload-limit", help="Upload rate limit in bytes/s, e.g. 5MB (default: none).")
@click.option(
    "--interval",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Seconds between status updates.",
)
@archive_option
def seed_command(
    releases: tuple[str, ...],
    listen: str | None,
    trackers: tuple[str, ...],
    seconds: float | None,
    torrent_files: tuple[Path, ...],
    data: Path | None,
    dht: bool,
    lsd: bool,
    upnp: bool,
    upload_limit: str | None,
    interval: float,
    archive_path: str | None,
) -> None:
    """Seed the torrents of RELEASES (all by default) from their data folders.

    One libtorrent session listens where told; DHT, LSD, UPnP and NAT-PMP stay off unless
    asked for. Resume data is kept in state.sqlite so a restart does not check everything
    again. Stops cleanly on Ctrl-C or SIGTERM.
    """
    from musicark.swarm.history import SqliteResumeStore
    from musicark.swarm.seed import seed
    from musicark.swarm.session import SessionOptions, parse_listen
    from musicark.swarm.targets import seed_archive, seed_files

    archive: Archive | None
    try:
        archive = get_archive(archive_path)
    except ArchiveError:
        if not torrent_files:
            raise
        archive = None  # lone torrents can be seeded without an archive (no resume data)
    if torrent_files:
        if releases:
            raise UsageError("give either RELEASE names or --torrent, not both")
        if data is None:
            raise UsageError("--torrent needs --data DIR")
        selection = seed_files(torrent_files, data)
        if selection.absent:
            click.echo(
                f"{len(selection.absent)} torrent(s) have no data under {data}: not seeded",
                err=True,
            )
        nothing = f"none of the torrents has data under {data}"
    else:
        assert archive is not None
        selection = seed_archive(archive, releases)
        nothing = "the archive has no release torrents to seed"
    _print_warnings(selection.warnings)
    _print_failures(selection.failures)
    items = selection.targets
    if not items:
        if selection.failures:
            sys.exit(1)
        raise SwarmError(nothing)
    listen = listen or (archive.config.seed.listen if archive else "127.0.0.1:6881")
    parse_listen(listen)
    limit = parse_size(upload_limit, what="upload limit") if upload_limit else 0
    options = SessionOptions(
        listen=listen, dht=dht, lsd=lsd, upnp=upnp, natpmp=upnp, upload_limit=limit
    )
    conn = archive.connect_state() if archive else None
    resume = SqliteResumeStore(conn) if conn else None
    tty = sys.stderr.isatty()
    last_text, last_at = [""], [0.0]
    seen: set[str] = set()
    announced: list[bool] = []

    def on_status(status: SeedStatus) -> None:
        if not announced:
            announced.append(True)
            click.echo(f"listening on {status.listening or listen}", err=True)
        text = _status_line(status)
        now = time.monotonic()
        if tty:
            click.echo("\r" + text.ljust(100), nl=False, err=True)
        else:  # a log: a line when the states or peers change, else every 30 s
            key = f"{status.peers} {[(t.name, t.state) for t in status.torrents]}"
            if key != last_text[0] or now - last_at[0] >= 30:
                click.echo(text, err=True)
                for ts in status.torrents:
                    if ts.state != "seeding":
                        click.echo(
                            f"  {ts.name}: {ts.state} {ts.progress:.0%} {ts.error}", err=True
                        )
                last_text[0], last_at[0] = key, now
        for message in status.messages:
            if message not in seen:
                seen.add(message)
                click.echo(f"{'' if not tty else chr(10)}tracker: {message}", err=True)

    click.echo(f"seeding {len(items)} torrent(s)", err=True)
    try:
        with _stop_on_signals() as stop:
            final = seed(
                items,
                options=options,
                resume=resume,
                trackers=trackers,
                seconds=seconds,
                stop=stop,
                on_status=on_status,
            )
    finally:
        if conn is not None:
            conn.close()
    if tty:
        click.echo("", err=True)
    click.echo(
        f"stopped after {final.elapsed:.0f} s: {len(final.torrents)} torrents,"
        f" {final.count('seeding')} seeding, uploaded {format_size(final.uploaded)}"
    )
    for state in final.torrents:
        if state.state == "error":
            click.echo(f"  {state.name}: error: {state.error}")
    if selection.failures:
        click.echo(f"{len(selection.failures)} torrent(s) could not be seeded (see above)")
        sys.exit(1)


# ---------------------------------------------------------------- seedlist / torrents


def _torrents(archive: Archive, paths: Sequence[Path]) -> Selection[SwarmTorrent]:
    from musicark.swarm.targets import listed_torrents

    selection = listed_torrents(archive, paths)
    _print_warnings(selection.warnings)
    _print_failures(selection.failures)
    return selection


def torrent_paths_option(verb: str) -> Callable[[F], F]:
    return click.option(
        "--torrent",
        "paths",
        multiple=True,
        type=click.Path(exists=True, path_type=Path),
        help=f"{verb} these .torrent files (or folders of them); repeatable.",
    )


def _figure(value: int | None) -> str:
    return "?" if value is None else str(value)


@click.command("seedlist")
@click.option("--max-size", required=True, help="Space you can give, e.g. 2TB or 500GiB.")
@torrent_paths_option("Also consider")
@click.option(
    "--no-scrape", is_flag=True, help="Use the recorded figures; do not ask the trackers."
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds to wait for each tracker.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the proposal as JSON.")
@click.option("--magnets", is_flag=True, help="Print only the chosen torrents' magnet links.")
@archive_option
def seedlist_command(
    max_size: str,
    paths: tuple[Path, ...],
    no_scrape: bool,
    timeout: float,
    as_json: bool,
    magnets: bool,
    archive_path: str | None,
) -> None:
    """Propose which torrents to seed to help most within --max-size of space.

    Scrapes the release trackers (HTTP scrape) for seeders and leechers, records them in
    the archive's swarm history, and takes torrents least-seeded first while they fit.
    """
    from musicark.swarm.seedlist import seedlist

    if as_json and magnets:
        raise UsageError("give --json or --magnets, not both")
    limit = parse_size(max_size, what="--max-size")
    archive = get_archive(archive_path)
    selection = _torrents(archive, paths)
    if not selection.targets and not selection.failures:
        raise SwarmError("no torrents: the archive has no releases and no --torrent was given")
    conn = archive.connect_state()
    try:
        with progress_bar(enabled=not (as_json or magnets)) as progress:
            result = seedlist(
                conn,
                selection.targets,
                max_size=limit,
                scrape_first=not no_scrape,
                timeout=timeout,
                progress=progress,
            )
    finally:
        conn.close()
    _print_warnings(result.errors)
    if as_json:
        echo_json(result.to_dict())
    elif magnets:
        for c in result.chosen:
            click.echo(c.torrent.magnet)
    else:
        _print_seedlist(result)
    if selection.failures:
        sys.exit(1)


def _print_seedlist(result: SeedList) -> None:
    click.echo(
        f"{len(result.chosen)} torrent(s), {format_size(result.total_size)}"
        f" of {format_size(result.max_size)}:"
    )
    for c in result.chosen:
        click.echo(
            f"  {_figure(c.seeders):>4} seeders {_figure(c.leechers):>4} leechers"
            f"  {format_size(c.torrent.size):>9}  {c.torrent.name}"
        )
    if result.passed_over:
        click.echo(f"{len(result.passed_over)} more do not fit")


@click.command("torrents")
@torrent_paths_option("Also list")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@archive_option
def torrents_command(paths: tuple[Path, ...], as_json: bool, archive_path: str | None) -> None:
    """List the archive's torrents with their latest recorded swarm figures."""
    from musicark.swarm.seedlist import listing

    archive = get_archive(archive_path)
    selection = _torrents(archive, paths)
    conn = archive.connect_state()
    try:
        rows = listing(conn, selection.targets)
    finally:
        conn.close()
    if as_json:
        echo_json([c.to_dict() for c in rows])
    for c in rows if not as_json else ():
        when = c.figures.scraped_at if c.figures else "never scraped"
        click.echo(
            f"{c.torrent.infohash[:12]}  {format_size(c.torrent.size):>9}"
            f"  {_figure(c.seeders):>4} S {_figure(c.leechers):>4} L  {when}  {c.torrent.name}"
        )
    if selection.failures:
        sys.exit(1)


def register(cli: click.Group) -> None:
    cli.add_command(seed_command)
    cli.add_command(verify_command)
    cli.add_command(seedlist_command)
    cli.add_command(torrents_command)
