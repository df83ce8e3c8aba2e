"""The real server on 127.0.0.1: slow clients are dropped, handlers never block the loop,
redirects never name a host taken from the request."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from musicark.archive import Archive
from musicark.web.server import ServeOptions, make_config
from tests.net import free_port
from tests.web_data import make_web_archive


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Archive:
    return make_web_archive(tmp_path_factory.mktemp("server"))


@pytest.fixture(scope="module")
def base(archive: Archive) -> Iterator[str]:
    port = free_port()
    options = ServeOptions(
        host="127.0.0.1", port=port, log_level="critical", header_timeout=0.6, keep_alive=1
    )
    server = uvicorn.Server(make_config(archive, options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1024) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except BlockingIOError:
        return False


def test_slow_clients_are_dropped(base: str) -> None:
    port = int(base.rsplit(":", 1)[1])
    slow = []
    for _ in range(40):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /api/health HTTP/1.1\r\n")
        s.setblocking(False)
        slow.append(s)
    started = time.monotonic()
    open_ = list(slow)
    # one byte every 0.1 s: each byte would reset a plain keep-alive timer
    while open_ and time.monotonic() - started < 5:
        still = []
        for s in open_:
            if _closed(s):
                s.close()
                continue
            try:
                s.send(b"X")
            except OSError:
                s.close()
                continue
            still.append(s)
        open_ = still
        # a well-behaved client is answered meanwhile
        assert httpx.get(f"{base}/api/health", timeout=5).status_code == 200
        time.sleep(0.1)
    for s in open_:
        s.close()
    assert not open_, f"{len(open_)} slow connections still open after 5 s"
    assert time.monotonic() - started < 3.0


def test_idle_keep_alive_is_closed(base: str) -> None:
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        s.settimeout(5)
        assert s.recv(1024) == b""  # closed by the server, not by our time-out
        assert time.monotonic() - started < 2.5


def test_redirects_are_relative(base: str) -> None:
    r = httpx.get(f"{base}/search/?q=love", headers={"Host": "evil.com"})
    assert r.status_code == 308
    assert r.headers["location"] == "/search?q=love"
    for path in ("//evil.com/", "/%2F%2Fevil.com/", "/nothing-here/"):
        r = httpx.get(f"{base}{path}", headers={"Host": "evil.com"})
        assert r.status_code == 404, path
        assert "evil.com" not in r.headers.get("location", "")
    followed = httpx.get(f"{base}/health/", follow_redirects=True)
    assert followed.status_code == 200 and str(followed.url) == f"{base}/health"


def test_handlers_run_off_the_event_loop(archive: Archive) -> None:
    """Every route that reads SQLite or tantivy is a plain function (Starlette runs it in
    its thread pool): an `async def` one would block every other request while it runs."""
    import inspect

    from starlette.routing import Route

    from musicark.web import create_app

    routes = [r for r in create_app(archive).routes if isinstance(r, Route)]
    assert len(routes) > 10
    on_loop = {r.path for r in routes if inspect.iscoroutinefunction(r.endpoint)}
    # only what answers from memory runs on the event loop (never waits in the thread pool)
    assert on_loop == {"/static/{name}", "/api/openapi.json"}


def test_cli_defaults_match_the_server(tmp_path: Path) -> None:
    from musicark.cli import web
    from musicark.web import server

    assert web.HEADER_TIMEOUT == server.DEFAULT_HEADER_TIMEOUT
    assert web.KEEP_ALIVE == server.DEFAULT_KEEP_ALIVE
    assert web.THREADS == server.THREADS
