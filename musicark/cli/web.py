"""`musicark serve`."""

from __future__ import annotations

import os
import socket
from typing import Any

import click

from musicark.archive import ENV_VAR
from musicark.cli.common import archive_option, get_archive
from musicark.errors import UsageError


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
@archive_option
def serve_command(
    host: str | None, port: int | None, workers: int, log_level: str, archive_path: str | None
) -> None:
    """Serve the read-only web UI and JSON API (/api/, described at /api/openapi.json)."""
    import uvicorn

    from musicark.web import create_app

    archive = get_archive(archive_path)
    host = host or archive.config.serve.host
    port = archive.config.serve.port if port is None else port
    _check_listen(host, port)
    click.echo(f"serving {archive.root} read-only at http://{host}:{port}/", err=True)
    target: Any
    options: dict[str, Any] = {}
    if workers > 1:  # uvicorn starts worker processes from an import string
        os.environ[ENV_VAR] = str(archive.root)
        target = "musicark.web.app:app_from_env"
        options = {"factory": True, "workers": workers}
    else:
        target = create_app(archive)
    try:
        uvicorn.run(
            target,
            host=host,
            port=port,
            log_level=log_level,
            access_log=False,
            server_header=False,
            **options,
        )
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def _check_listen(host: str, port: int) -> None:
    """Fail with one line before starting when the address cannot be listened on."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def register(cli: click.Group) -> None:
    cli.add_command(serve_command)
