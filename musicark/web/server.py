"""Running the web application under uvicorn, with time limits for slow clients.

uvicorn's keep-alive timer is cancelled by any byte received, so a client that sends its
request headers one byte a second holds a connection open for ever (slowloris). The
protocol classes below give every request a deadline: from the moment a connection is
made, or a response is finished, the next request's headers must arrive within
`header_timeout` seconds, or the connection is closed. A request whose headers arrived
is never cut short, however long its handler takes.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from musicark.archive import ENV_VAR, Archive
from musicark.web.app import THREADS

try:  # uvicorn's faster parser, when installed (as uvicorn itself prefers it)
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools is a dependency of uvicorn[standard]
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_KEEP_ALIVE = 5


class _HeaderDeadline:
    """Mixin for a uvicorn HTTP protocol: close connections whose headers come too slowly."""

    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    cycle: Any
    config: uvicorn.Config

    def _arm_deadline(self) -> None:
        self._disarm_deadline()
        timeout = getattr(self.config, "header_timeout", DEFAULT_HEADER_TIMEOUT)
        self._deadline: asyncio.TimerHandle | None = self.loop.call_later(
            timeout, self._deadline_passed
        )

    def _disarm_deadline(self) -> None:
        handle = getattr(self, "_deadline", None)
        if handle is not None:
            handle.cancel()
            self._deadline = None

    def _deadline_passed(self) -> None:
        self._deadline = None
        # a request in progress (its headers arrived) is left to finish
        if (self.cycle is None or self.cycle.response_complete) and not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if not self.transport.is_closing():
            self._arm_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_deadline()
        super().connection_lost(exc)  # type: ignore[misc]


class H11WithDeadline(_HeaderDeadline, H11Protocol):
    pass


if HttpToolsProtocol is not None:

    class HttpToolsWithDeadline(_HeaderDeadline, HttpToolsProtocol):
        pass

    PROTOCOL: type[asyncio.Protocol] = HttpToolsWithDeadline
else:  # pragma: no cover
    PROTOCOL = H11WithDeadline


@dataclass(frozen=True, slots=True)
class ServeOptions:
    host: str
    port: int
    workers: int = 1
    log_level: str = "info"
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    keep_alive: int = DEFAULT_KEEP_ALIVE
    audio: bool = True
    threads: int = THREADS
    allowed_hosts: tuple[str, ...] = ()  # empty: default_allowed_hosts(host)


def make_config(archive: Archive, options: ServeOptions) -> uvicorn.Config:
    """uvicorn's configuration for serving `archive` read-only with `options`."""
    from musicark.web.app import create_app

    target: Any
    extra: dict[str, Any] = {}
    hosts = list(options.allowed_hosts) or default_allowed_hosts(options.host)
    if options.workers > 1:  # uvicorn starts worker processes from an import string
        os.environ[ENV_VAR] = str(archive.root)
        os.environ[AUDIO_ENV] = "1" if options.audio else "0"
        os.environ[THREADS_ENV] = str(options.threads)
        os.environ[HOSTS_ENV] = ",".join(hosts)
        target = "musicark.web.app:app_from_env"
        extra = {"factory": True, "workers": options.workers}
    else:
        target = create_app(
            archive, audio=options.audio, threads=options.threads, allowed_hosts=hosts
        )
    config = uvicorn.Config(
        target,
        host=options.host,
        port=options.port,
        log_level=options.log_level,
        access_log=False,
        server_header=False,
        http=PROTOCOL,
        timeout_keep_alive=options.keep_alive,
        **extra,
    )
    config.header_timeout = options.header_timeout  # type: ignore[attr-defined]
    return config


AUDIO_ENV = "MUSICARK_SERVE_AUDIO"
THREADS_ENV = "MUSICARK_SERVE_THREADS"
HOSTS_ENV = "MUSICARK_SERVE_ALLOWED_HOSTS"
_ANY_ADDRESS = {"0.0.0.0", "::", ""}


def default_allowed_hosts(host: str) -> list[str]:
    """The bound address and localhost; any host when listening on every address (the
    operator then reaches it by names this process cannot know)."""
    if host in _ANY_ADDRESS:
        return ["*"]
    return list(dict.fromkeys([host, "localhost", "127.0.0.1", "::1", "[::1]"]))


def run(config: uvicorn.Config) -> None:
    """Serve until interrupted (one process, or a supervisor and `workers` processes)."""
    if config.workers > 1:
        from uvicorn.supervisors import Multiprocess

        sock = config.bind_socket()
        Multiprocess(config, sockets=[sock]).run()
    else:
        uvicorn.Server(config).run()
