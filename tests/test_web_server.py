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


def test_redirects_are_relative(base: str, archive: Archive) -> None:
    r = httpx.get(f"{base}/search/?q=love")
    assert r.status_code == 308
    assert r.headers["location"] == "/search?q=love"
    followed = httpx.get(f"{base}/health/", follow_redirects=True)
    assert followed.status_code == 200 and str(followed.url) == f"{base}/health"
    # even where any Host is accepted, a redirect never names it
    from starlette.testclient import TestClient

    from musicark.web import create_app

    with TestClient(create_app(archive), raise_server_exceptions=False) as c:
        r = c.get("/search/?q=love", headers={"Host": "evil.com"}, follow_redirects=False)
        assert r.status_code == 308 and r.headers["location"] == "/search?q=love"
        for path in ("//evil.com/", "/%2F%2Fevil.com/", "/nothing-here/"):
            r = c.get(f"http://testserver{path}", headers={"Host": "evil.com"})
            assert r.status_code == 404, path
            assert "evil.com" not in r.headers.get("location", "")


def test_only_our_host_names_are_answered(base: str) -> None:
    port = base.rsplit(":", 1)[1]
    for host in ("evil.com", f"evil.com:{port}", "127.0.0.1.evil.com"):
        r = httpx.get(f"{base}/search/?q=love", headers={"Host": host})
        assert r.status_code == 400, host
        assert "location" not in r.headers
        assert r.headers["x-content-type-options"] == "nosniff"
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost"):
        assert httpx.get(f"{base}/api/health", headers={"Host": host}).status_code == 200


def test_allowed_hosts_defaults() -> None:
    from musicark.web.server import default_allowed_hosts

    assert default_allowed_hosts("0.0.0.0") == ["*"]
    assert default_allowed_hosts("192.0.2.7")[:3] == ["192.0.2.7", "localhost", "127.0.0.1"]


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
