"""`musicark serve`."""

from __future__ import annotations

import socket

import click

from musicark.cli.common import archive_option, get_archive
from musicark.errors import UsageError

# the server's defaults (musicark.web.server), repeated here so `--help` needs no uvicorn
HEADER_TIMEOUT = 10.0
KEEP_ALIVE = 5
THREADS = 6


@click.command("serve")
@click.option(
    "--host", default=None, help="Address to listen on (default: [serve] host, 127.0.0.1)."
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port (default: [serve] port, 8000).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Server processes answering requests.",
)
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info"]),
    default="info",
    show_default=True,
    help="uvicorn log level.",
)
@click.option(
    "--header-timeout",
    type=click.FloatRange(0.1, 3600),
    default=HEADER_TIMEOUT,
    show_default=True,
    help="Seconds a client has to send a request's headers (after connecting or after the"
    " previous response); slower connections are closed.",
)
@click.option(
    "--keep-alive",
    type=click.IntRange(1, 3600),
    default=KEEP_ALIVE,
    show_default=True,
    help="Seconds an idle keep-alive connection stays open.",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 256),
    default=THREADS,
    show_default=True,
    help="Threads answering requests in each server process (more threads on two cores"
    " make the slowest answers slower).",
)
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    help="A Host header to answer (repeat; `*.example.org` and `*` allowed); others get 400."
    " Default: the listening address and localhost (any host when listening on 0.0.0.0 or ::).",
)
@click.option(
    "--no-audio",
    is_flag=True,
    help="Do not serve audio: track pages show no player and audio URLs answer 404.",
)
@archive_option
def serve_command(
    host: str | None,
    port: int | None,
    workers: int,
    log_level: str,
    header_timeout: float,
    keep_alive: int,
    threads: int,
    allowed_hosts: tuple[str, ...],
    no_audio: bool,
    archive_path: str | None,
) -> None:
    """Serve the read-only web UI and JSON API (/api/, described at /api/openapi.json)."""
    from musicark.web.server import ServeOptions, make_config, run

    archive = get_archive(archive_path)
    host = host or archive.config.serve.host
    port = archive.config.serve.port if port is None else port
    _check_listen(host, port)
    click.echo(f"serving {archive.root} read-only at http://{host}:{port}/", err=True)
    options = ServeOptions(
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        header_timeout=header_timeout,
        keep_alive=keep_alive,
        audio=not no_audio,
        threads=threads,
        allowed_hosts=allowed_hosts,
    )
    try:
        run(make_config(archive, options))
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


def _check_listen(host: str, port: int) -> None:
    """Fail with one line before starting when the address cannot be listened on."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


def register(cli: click.Group) -> None:
    cli.add_command(serve_command)
